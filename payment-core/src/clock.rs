//! Wall-clock time that follows tokio's clock.
//!
//! `now()` is the system time at construction plus the tokio time elapsed
//! since, so tests that pause and advance tokio time (expiry) move this clock
//! too, while production reads the same wall clock as everyone else.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::domain::Timestamp;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start_unix_millis: i64,
    start: Instant,
}

impl Clock {
    pub fn new() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            start_unix_millis: since_epoch.as_millis() as i64,
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> Timestamp {
        Timestamp(self.start_unix_millis + self.start.elapsed().as_millis() as i64)
    }

    pub fn now_unix_secs(&self) -> i64 {
        self.now().0.div_euclid(1000)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
