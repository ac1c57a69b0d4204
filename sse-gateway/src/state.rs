//! What every request handler shares: [`AppState`].

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use payments_proto::contract::HEARTBEAT_EVENT;

use crate::{config::Config, hub::Hub, metrics::Metrics, payment_core::PaymentCore};

/// Cheap to clone: `Arc`s and small values.
#[derive(Clone)]
pub struct AppState {
    /// payment-core behind the seam: gRPC in production, a fake in tests.
    pub core: Arc<dyn PaymentCore>,
    /// Bound on every unary call to the core made for a request.
    pub core_timeout: Duration,
    /// Routes the upstream's events to the connections watching them.
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    /// True while the upstream stream is open. Written only by the upstream
    /// task; event streams are not served while it is false.
    pub upstream_up: Arc<AtomicBool>,
    /// The dashboard's token, compared in constant time.
    pub admin_token: Arc<str>,
    /// This gateway's name in `/metrics` and the `X-Gateway-Instance` header.
    pub instance: Arc<str>,
    /// Silence after which an event stream sends a heartbeat.
    pub heartbeat: Duration,
    /// The `retry:` frame every event stream opens with, rendered once.
    pub retry_frame: Bytes,
    /// The heartbeat event (see [`HEARTBEAT_EVENT`]), rendered once: sent
    /// when a stream opens and after each `heartbeat` of silence.
    pub heartbeat_frame: Bytes,
    /// Fires at shutdown: open SSE responses end so browsers reconnect elsewhere.
    pub shutdown: CancellationToken,
}

impl AppState {
    pub fn new(config: &Config, core: Arc<dyn PaymentCore>) -> Self {
        let metrics = Arc::new(Metrics::default());
        Self {
            core,
            core_timeout: config.core_timeout(),
            hub: Hub::new(Arc::clone(&metrics)),
            metrics,
            upstream_up: Arc::new(AtomicBool::new(false)),
            admin_token: config.admin_token.as_str().into(),
            instance: config.instance.as_str().into(),
            heartbeat: config.heartbeat(),
            retry_frame: format!("retry: {}\n\n", config.sse_retry().as_millis()).into(),
            heartbeat_frame: format!(
                "event: {HEARTBEAT_EVENT}\ndata: {{\"interval_ms\":{}}}\n\n",
                config.heartbeat().as_millis()
            )
            .into(),
            shutdown: CancellationToken::new(),
        }
    }

    pub fn upstream_is_up(&self) -> bool {
        self.upstream_up.load(Ordering::Relaxed)
    }
}
