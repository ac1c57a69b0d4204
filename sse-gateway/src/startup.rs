//! Building and running the gateway: the router, the upstream task, and a
//! graceful shutdown that ends open SSE responses (otherwise axum would wait
//! for them forever) within a bound.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

use crate::{
    config::{Config, Credentials},
    payment_core::{GrpcCore, PaymentCore},
    routes::router,
    server,
    state::AppState,
    upstream::Upstream,
};

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
    /// Checks its credentials (a [`CredentialError`] when one is missing,
    /// or public outside development mode), binds the listener (port 0
    /// picks a free port) and writes its address to `ADDRESS_FILE` if it is
    /// set. The core is contacted lazily.
    ///
    /// [`CredentialError`]: service_kit::credentials::CredentialError
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let credentials = config.credentials()?;
        let core = GrpcCore::new(
            &config.payment_core_url,
            &config.payment_core_tls,
            credentials.payment_core_api_key.secret.expose(),
            config.core_timeout(),
        )
        .context(
            "payment-core client (PAYMENT_CORE_URL, PAYMENT_CORE_API_KEY, PAYMENT_CORE_CA_FILE)",
        )?;
        Self::build_with(config, credentials, Arc::new(core)).await
    }

    /// [`Application::build`] with another payment-core behind the seam.
    pub async fn build_with_core(
        config: Config,
        core: Arc<dyn PaymentCore>,
    ) -> anyhow::Result<Self> {
        let credentials = config.credentials()?;
        Self::build_with(config, credentials, core).await
    }

    async fn build_with(
        config: Config,
        credentials: Credentials,
        core: Arc<dyn PaymentCore>,
    ) -> anyhow::Result<Self> {
        service_kit::credentials::announce(config.dev, &credentials.public_in_use());
        let state = AppState::with_credentials(&config, &credentials, core)?;
        let listener = bind(&config).with_context(|| format!("binding {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        service_kit::address_file::write(config.address_file.as_deref(), &[("http", local_addr)])
            .context("ADDRESS_FILE")?;
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
            core: Arc::clone(&state.core),
            hub: Arc::clone(&state.hub),
            metrics: Arc::clone(&state.metrics),
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
