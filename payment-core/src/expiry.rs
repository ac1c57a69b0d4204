//! The background task that moves orders past `expires_at` to EXPIRED.
//!
//! Each sweep asks the store for due orders and applies EXPIRED to them
//! through the same state machine as every other change, so an order paid a
//! moment before the sweep stays paid (the change is refused as a conflict
//! and skipped) and each expiry is one event in the log.

use std::{sync::Arc, time::Duration};

use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use crate::{
    clock::Clock,
    domain::{OrderStatus, Reason, StatusChange},
    metrics::CoreMetrics,
    store::{Applied, Store, StoreError},
};

/// Orders expired per store query; a sweep repeats until none are due.
const SWEEP_BATCH: u32 = 200;
const EXPIRED_REASON: &str = "payment window expired";

/// Sweeps every `interval` until `shutdown` fires.
pub async fn run(
    store: Arc<dyn Store>,
    clock: Clock,
    interval: Duration,
    metrics: CoreMetrics,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticker.tick() => {
                match sweep(store.as_ref(), &clock).await {
                    Ok(0) => {}
                    Ok(expired) => {
                        metrics.orders_expired(expired as u64);
                        tracing::info!(expired, "orders expired");
                    }
                    Err(error) => tracing::warn!(%error, "expiry sweep failed; retrying next tick"),
                }
            }
        }
    }
    tracing::debug!("expiry task stopped");
}

/// Expires every order due now; returns how many moved to EXPIRED.
pub async fn sweep(store: &dyn Store, clock: &Clock) -> Result<usize, StoreError> {
    let mut expired = 0;
    loop {
        let now = clock.now();
        let due = store.due_for_expiry(now, SWEEP_BATCH).await?;
        let change = StatusChange {
            target: OrderStatus::Expired,
            reason: Reason::parse("reason", EXPIRED_REASON).expect("constant reason is valid"),
            provider_reference: None,
            at: now,
        };
        // Issued together so the writer commits them in one transaction.
        let results = join_all(due.iter().map(|id| store.apply(*id, change.clone()))).await;
        for result in results {
            match result {
                Ok(Applied::Moved(_)) => expired += 1,
                // Paid, canceled or already expired in the meantime: nothing to do.
                Ok(Applied::Unchanged(_))
                | Err(StoreError::Conflict(_))
                | Err(StoreError::NotFound) => {}
                Err(error) => return Err(error),
            }
        }
        if due.len() < SWEEP_BATCH as usize {
            return Ok(expired);
        }
    }
}
