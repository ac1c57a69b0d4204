//! Building and running the gateway: the router, the upstream task, and a
//! graceful shutdown that ends open SSE responses (otherwise axum would wait
//! for them forever) within a bound.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use axum::{
    Router,
    extract::{DefaultBodyLimit, State},
    http::{HeaderValue, StatusCode},
    response::IntoResponse,
    routing::{get, post},
};
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tower_http::{set_header::SetResponseHeaderLayer, trace::TraceLayer};

use crate::{
    api, config::Config, core_client::CoreClient, hub::Hub, metrics::Metrics, pages, server, sse,
    upstream::Upstream,
};

/// What every handler shares. Cheap to clone: all `Arc`s and small values.
#[derive(Clone)]
pub struct AppState {
    pub core: CoreClient,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub upstream_up: Arc<AtomicBool>,
    pub admin_token: Arc<str>,
    pub instance: Arc<str>,
    pub heartbeat: Duration,
    /// The `retry:` frame every event stream opens with, rendered once.
    pub retry_frame: bytes::Bytes,
    /// Fires at shutdown: open SSE responses end so browsers reconnect elsewhere.
    pub shutdown: CancellationToken,
}

impl AppState {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::default());
        Ok(Self {
            core: CoreClient::new(&config.payment_core_url).context("PAYMENT_CORE_URL")?,
            hub: Hub::new(Arc::clone(&metrics)),
            metrics,
            upstream_up: Arc::new(AtomicBool::new(false)),
            admin_token: config.admin_token.as_str().into(),
            instance: config.instance.as_str().into(),
            heartbeat: config.heartbeat(),
            retry_frame: format!("retry: {}\n\n", config.sse_retry().as_millis()).into(),
            shutdown: CancellationToken::new(),
        })
    }
}

pub fn router(state: AppState) -> Router {
    let instance = HeaderValue::from_str(&state.instance)
        .unwrap_or_else(|_| HeaderValue::from_static("gateway"));
    Router::new()
        .route("/", get(pages::checkout))
        .route("/dashboard", get(pages::dashboard))
        .route("/assets/style.css", get(pages::stylesheet))
        .route("/api/orders", post(api::create_order))
        .route("/api/orders/{id}", get(api::get_order))
        .route("/api/orders/{id}/events", get(sse::order_events))
        .route("/api/events", get(sse::dashboard_events))
        .route("/api/{*rest}", get(api::not_found).post(api::not_found))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(api::MAX_BODY_BYTES))
        .layer(SetResponseHeaderLayer::overriding(
            axum::http::HeaderName::from_static("x-gateway-instance"),
            instance,
        ))
        // Failures are logged once, by the error type that knows their cause.
        .layer(TraceLayer::new_for_http().on_failure(()))
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state
            .metrics
            .render(&state.instance, state.upstream_up.load(Ordering::Relaxed)),
    )
}

/// Ready when the upstream stream is open: without it, live events stop.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.upstream_up.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "payment-core stream is down",
        )
    }
}

/// The listening socket; with `reuse_port`, shared with the other gateway
/// processes bound to the same address.
fn bind(config: &Config) -> std::io::Result<TcpListener> {
    let socket = match config.listen {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    if config.reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(config.listen)?;
    // The kernel caps the accept queue at net.core.somaxconn; a deep one
    // absorbs reconnect storms after a gateway restart.
    socket.listen(4096)
}

pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: AppState,
    grace: Duration,
}

impl Application {
    /// Binds the listener (port 0 picks a free port). The core is contacted lazily.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        if config.admin_token == crate::config::DEV_ADMIN_TOKEN {
            tracing::warn!(
                "ADMIN_TOKEN is the public development default: anyone can read every order on the dashboard. Set a token of your own in production."
            );
        }
        let state = AppState::new(&config)?;
        let listener = bind(&config).with_context(|| format!("binding {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        tracing::info!(%local_addr, core = %config.payment_core_url, instance = %config.instance, "sse-gateway bound");
        Ok(Self {
            listener,
            local_addr,
            state,
            grace: config.shutdown_grace(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            grace,
            ..
        } = self;
        let shutdown = state.shutdown.clone();
        let upstream = Upstream {
            core: state.core.clone(),
            hub: Arc::clone(&state.hub),
            metrics: Arc::clone(&state.metrics),
            up: Arc::clone(&state.upstream_up),
        };
        let upstream = tokio::spawn(upstream.run(shutdown.child_token()));
        service_kit::shutdown::serve_with_bounded_drain(
            server::serve(listener, router(state), shutdown.clone()),
            &shutdown,
            grace,
        )
        .await
        .context("HTTP server failed")?;
        shutdown.cancel();
        let _ = upstream.await;
        tracing::info!("sse-gateway stopped");
        Ok(())
    }
}
