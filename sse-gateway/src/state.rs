//! What every request handler shares: [`AppState`].

use std::{sync::Arc, time::Duration};

use axum::http::HeaderValue;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use payments_proto::contract::HEARTBEAT_EVENT;

use crate::{
    access::Signer,
    config::{Config, Credentials},
    hub::Hub,
    metrics::Metrics,
    payment_core::PaymentCore,
    routes::pages::Pages,
};

/// Cheap to clone: `Arc`s and small values.
#[derive(Clone)]
pub struct AppState {
    /// payment-core behind the seam: gRPC in production, a fake in tests.
    pub core: Arc<dyn PaymentCore>,
    /// Bound on every unary call to the core made for a request.
    pub core_timeout: Duration,
    /// Routes the upstream's events to the connections watching them, and
    /// remembers recent orders' histories.
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    /// What `/metrics` renders: `metrics` and the process metrics.
    pub metrics_registry: Arc<prometheus_client::registry::Registry>,
    /// Foreign origins allowed to use the API (`ALLOWED_ORIGINS`); empty:
    /// same-origin only.
    pub allowed_origins: Arc<[HeaderValue]>,
    /// The dashboard's token, compared in constant time.
    pub admin_token: Arc<str>,
    /// Signs and checks stream tokens and dashboard sessions (keys derived
    /// from the admin token).
    pub signer: Arc<Signer>,
    /// How long a stream token opens its order's stream.
    pub stream_token_ttl: Duration,
    /// How long a dashboard sign-in lasts.
    pub session_ttl: Duration,
    /// The checkout and the dashboard as served (with the development-mode
    /// marker in development mode), rendered once.
    pub pages: Pages,
    /// This gateway's name in `/metrics` and the `X-Gateway-Instance` header.
    pub instance: Arc<str>,
    /// Silence after which an event stream sends a heartbeat.
    pub heartbeat: Duration,
    /// Most event streams open at once (`MAX_STREAMS`).
    pub max_streams: u64,
    /// Base of the reconnect delay told to a stream over `max_streams`.
    pub overload_retry: Duration,
    /// The `retry:` frame every event stream opens with, rendered once.
    pub retry_frame: Bytes,
    /// The reconnect delay that frame tells (`SSE_RETRY_MS`); at shutdown
    /// each stream's last frame tells a jittered one around it.
    pub sse_retry: Duration,
    /// The heartbeat event (see [`HEARTBEAT_EVENT`]), rendered once: sent
    /// when a stream opens and after each `heartbeat` of silence.
    pub heartbeat_frame: Bytes,
    /// Fires at shutdown: open SSE responses end so browsers reconnect elsewhere.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// Fails on a refused credential ([`Config::credentials`]) and on an
    /// `ALLOWED_ORIGINS` that is not a list of origins.
    pub fn new(config: &Config, core: Arc<dyn PaymentCore>) -> anyhow::Result<Self> {
        Self::with_credentials(config, &config.credentials()?, core)
    }

    /// [`AppState::new`] with the credentials checked already.
    pub fn with_credentials(
        config: &Config,
        credentials: &Credentials,
        core: Arc<dyn PaymentCore>,
    ) -> anyhow::Result<Self> {
        let (metrics, metrics_registry) = Metrics::new(&config.instance);
        Ok(Self {
            allowed_origins: config.allowed_origins()?,
            core,
            core_timeout: config.core_timeout(),
            hub: Hub::new(Arc::clone(&metrics), config.recent_orders),
            metrics,
            metrics_registry,
            admin_token: credentials.admin_token.secret.expose().into(),
            signer: Arc::new(Signer::new(credentials.admin_token.secret.expose())),
            stream_token_ttl: Duration::from_secs(config.stream_token_ttl_secs.max(1)),
            session_ttl: Duration::from_secs(config.dashboard_session_secs.max(1)),
            pages: Pages::new(config.dev),
            instance: config.instance.as_str().into(),
            heartbeat: config.heartbeat(),
            max_streams: config.max_streams,
            overload_retry: Duration::from_millis(config.overload_retry_ms.max(1)),
            retry_frame: format!("retry: {}\n\n", config.sse_retry().as_millis()).into(),
            sse_retry: config.sse_retry(),
            heartbeat_frame: format!(
                "event: {HEARTBEAT_EVENT}\ndata: {{\"interval_ms\":{}}}\n\n",
                config.heartbeat().as_millis()
            )
            .into(),
            shutdown: CancellationToken::new(),
        })
    }

    /// Whether the upstream stream is open (set only by the upstream
    /// task): event streams are not served while it is not.
    pub fn upstream_is_up(&self) -> bool {
        self.metrics.upstream_is_up()
    }
}
