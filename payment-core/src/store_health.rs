//! Keeping the service true to its store: a probe reads the store every
//! second. Once it has failed twice in a row (one slow probe under load is
//! not an outage, and ending every watch for it would add a reconnect storm
//! to the load), the replica is NOT_SERVING on grpc.health.v1 (it
//! acknowledges nothing, so load balancers and gateways should go
//! elsewhere) and every open WatchPayments stream is ended with UNAVAILABLE
//! and its resume position (its live feed has stopped, and a watcher left
//! open would look healthy while missing every event). Once a probe
//! succeeds, it serves again.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;

use crate::store::Store;

/// How often the store is probed, and how long one probe may take.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Failed probes in a row that make an outage.
const FAILURES_FOR_OUTAGE: u32 = 2;

/// Tells watchers when the store is found unreachable.
#[derive(Clone, Default)]
pub struct StoreOutages {
    /// The token of the current period in which the store answers: cancelled
    /// when the probe finds it unreachable, and replaced by a fresh one when
    /// it answers again. The lock is held only to clone or swap the token.
    current: Arc<Mutex<CancellationToken>>,
}

impl StoreOutages {
    /// A token cancelled at the next outage; already cancelled during one.
    pub fn next(&self) -> CancellationToken {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn begin(&self) {
        self.next().cancel();
    }

    fn end(&self) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.is_cancelled() {
            *current = CancellationToken::new();
        }
    }
}

/// Probes `store` until `shutdown`, reporting what it finds to `outages`
/// and, for each of `services`, to `health`. Shutdown's NOT_SERVING is the
/// drain's, set elsewhere.
pub async fn report(
    store: Arc<dyn Store>,
    health: tonic_health::server::HealthReporter,
    services: &[&'static str],
    outages: StoreOutages,
    shutdown: CancellationToken,
) {
    let mut serving = true;
    let mut failures = 0;
    let mut probe = tokio::time::interval(PROBE_INTERVAL);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = probe.tick() => {}
        }
        let reachable = tokio::time::timeout(PROBE_INTERVAL, store.head_sequence())
            .await
            .is_ok_and(|head| head.is_ok());
        failures = if reachable { 0 } else { failures + 1 };
        let up = failures < FAILURES_FOR_OUTAGE;
        if up == serving || shutdown.is_cancelled() {
            continue;
        }
        serving = up;
        let status = if serving {
            tracing::info!("the store answers again; serving");
            outages.end();
            ServingStatus::Serving
        } else {
            tracing::error!("the store does not answer; not serving until it does");
            outages.begin();
            ServingStatus::NotServing
        };
        for service in services {
            health.set_service_status(*service, status).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_taken_before_an_outage_fires_and_one_taken_after_it_does_not() {
        let outages = StoreOutages::default();
        let before = outages.next();
        outages.begin();
        assert!(before.is_cancelled());
        assert!(outages.next().is_cancelled(), "during the outage");
        outages.end();
        assert!(!outages.next().is_cancelled(), "after it");
    }
}
