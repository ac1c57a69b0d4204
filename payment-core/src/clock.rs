//! Wall-clock time, and a variant that follows tokio's clock for tests.
//!
//! Production reads the system clock on every call, so it follows NTP
//! corrections like the provider that signs reports does. Tests that pause
//! and advance tokio time (expiry) use [`Clock::following_tokio_time`]: the
//! system time at construction plus the tokio time elapsed since.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::domain::Timestamp;

#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    FollowsTokio {
        start_unix_millis: i64,
        start: Instant,
    },
}

fn system_unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

impl Clock {
    pub fn system() -> Self {
        Self::System
    }

    pub fn following_tokio_time() -> Self {
        Self::FollowsTokio {
            start_unix_millis: system_unix_millis(),
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> Timestamp {
        match self {
            Self::System => Timestamp(system_unix_millis()),
            Self::FollowsTokio {
                start_unix_millis,
                start,
            } => Timestamp(start_unix_millis + start.elapsed().as_millis() as i64),
        }
    }

    pub fn now_unix_secs(&self) -> i64 {
        self.now().0.div_euclid(1000)
    }
}
