//! Building and running the payment page server: its credentials checked
//! first.

use std::{future::IntoFuture, net::SocketAddr, sync::Arc};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    config::{CoreConfig, ServeConfig},
    metrics::ProviderMetrics,
    reporter::Reporter,
    web::{ProviderState, router},
};

pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: ProviderState,
    shutdown: CancellationToken,
}

impl Application {
    /// Checks its credentials (a [`CredentialError`] when one is missing,
    /// or public outside development mode), binds the listener (port 0
    /// picks a free port) and writes its address to `ADDRESS_FILE` if it is
    /// set. payment-core is contacted lazily.
    ///
    /// [`CredentialError`]: service_kit::credentials::CredentialError
    pub async fn build(core: CoreConfig, serve: ServeConfig) -> anyhow::Result<Self> {
        let credentials = core.credentials()?;
        service_kit::credentials::announce(core.dev, &credentials.public_in_use());
        let (metrics, metrics_registry) = ProviderMetrics::new();
        let reporter = Reporter::new(&core, &credentials, metrics).context(
            "payment-core client (PAYMENT_CORE_URL, PAYMENT_CORE_API_KEY, PAYMENT_CORE_CA_FILE)",
        )?;
        let listener = TcpListener::bind(serve.listen)
            .await
            .with_context(|| format!("binding {}", serve.listen))?;
        let local_addr = listener.local_addr()?;
        service_kit::address_file::write(serve.address_file.as_deref(), &[("http", local_addr)])
            .context("ADDRESS_FILE")?;
        tracing::info!(%local_addr, core = %core.payment_core_url, "mock-provider bound");
        Ok(Self {
            listener,
            local_addr,
            state: ProviderState {
                reporter,
                config: Arc::new(serve),
                dev: core.dev,
                metrics_registry,
            },
            shutdown: CancellationToken::new(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the token fires; requests in flight get the configured grace.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let grace = std::time::Duration::from_secs(self.state.config.shutdown_grace_secs);
        let shutdown = self.shutdown.clone();
        let server = axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        service_kit::shutdown::serve_with_bounded_drain(server.into_future(), &shutdown, grace)
            .await
            .context("HTTP server failed")?;
        tracing::info!("mock-provider stopped");
        Ok(())
    }
}
