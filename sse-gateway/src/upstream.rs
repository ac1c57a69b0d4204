//! The one `WatchPayments(all_orders)` stream per gateway.
//!
//! It starts at the core's current head (connections to orders older than
//! that fetch their own history, so the gateway needs only what happens
//! from now on) and hands every event to the [`Hub`]. When the stream
//! breaks, it reconnects with exponential backoff and full jitter (so a
//! fleet of gateways does not stampede a restarting core) and resumes after
//! the last sequence it saw, so no connected browser misses an event and
//! the hub's recent orders stay whole.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::{event::UpstreamItem, hub::Hub, metrics::Metrics, payment_core::PaymentCore};

const BACKOFF_FLOOR: Duration = Duration::from_millis(100);
const BACKOFF_CEILING: Duration = Duration::from_secs(5);

pub struct Upstream {
    pub core: Arc<dyn PaymentCore>,
    pub hub: Arc<Hub>,
    /// Also where the stream's state is kept (`upstream_up`): what
    /// `/readyz` reports.
    pub metrics: Arc<Metrics>,
}

impl Upstream {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut last_sequence: Option<u64> = None;
        let mut failures: u32 = 0;
        while !shutdown.is_cancelled() {
            if let Err(error) = self
                .follow(&mut last_sequence, &mut failures, &shutdown)
                .await
            {
                tracing::warn!(%error, after_sequence = ?last_sequence, "payment-core stream down; reconnecting");
            }
            let was_up = self.metrics.set_upstream_up(false);
            if shutdown.is_cancelled() {
                break;
            }
            if was_up {
                self.metrics.upstream_reconnected();
            }
            failures = failures.saturating_add(1);
            let delay = backoff(failures);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        self.metrics.set_upstream_up(false);
        tracing::debug!("upstream task stopped");
    }

    /// Opens the stream and forwards it until it ends; `Ok` on shutdown.
    async fn follow(
        &self,
        last_sequence: &mut Option<u64>,
        failures: &mut u32,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        let after = match *last_sequence {
            Some(sequence) => sequence,
            None => {
                self.core
                    .events(0, 1)
                    .await
                    .map_err(|e| e.to_string())?
                    .head_sequence
            }
        };
        let mut stream = self
            .core
            .watch_all(after)
            .await
            .map_err(|e| e.to_string())?;
        *last_sequence = Some(after);
        self.metrics.set_upstream_up(true);
        tracing::info!(after_sequence = after, "payment-core stream open");
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                message = stream.next() => message,
            };
            match message {
                Some(Ok(upstream)) => {
                    *failures = 0;
                    let sequence = upstream.sequence();
                    // The core never repeats on one stream; this guards the
                    // invariant anyway (the recent orders rely on it).
                    if *last_sequence >= Some(sequence) {
                        continue;
                    }
                    *last_sequence = Some(sequence);
                    self.metrics.upstream_event_received(sequence);
                    match upstream {
                        UpstreamItem::Event(event) => self.hub.publish(event),
                        UpstreamItem::Unreadable { order_id, .. } => self.hub.forget(order_id),
                    }
                }
                None => return Err("stream ended".into()),
                Some(Err(error)) => return Err(error.to_string()),
            }
        }
    }
}

/// Full jitter: uniform in [0, min(ceiling, floor * 2^failures)].
fn backoff(failures: u32) -> Duration {
    let exponential = BACKOFF_FLOOR.saturating_mul(1u32 << failures.min(16));
    let cap = exponential.min(BACKOFF_CEILING);
    cap.mul_f64(rand::random_range(0.0..=1.0))
        .max(Duration::from_millis(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_ceiling_and_never_busy_loops() {
        for failures in 0..40 {
            let delay = backoff(failures);
            assert!(
                delay >= Duration::from_millis(10) && delay <= BACKOFF_CEILING,
                "{delay:?}"
            );
        }
    }
}
