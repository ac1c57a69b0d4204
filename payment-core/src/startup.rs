//! Building and running the service: open the store, bind the socket, serve
//! gRPC (payments, provider, health, reflection) and the expiry task until
//! the shutdown token fires, then drain within a bound.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use payments_proto::payments::v1::{
    payment_service_server::PaymentServiceServer, provider_service_server::ProviderServiceServer,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{
    server::NamedService,
    transport::{ServerTlsConfig, server::TcpIncoming},
};

use service_kit::credentials::{self, Resolved, Secret};

use crate::{
    auth::ApiKeys,
    clock::Clock,
    config::{Config, Database},
    expiry,
    grpc::{CoreState, PaymentApi, ProviderApi},
    metrics::{CoreMetrics, MetricsServer},
    store::{PostgresStore, SqliteStore, Store},
    store_health::{self, StoreOutages},
};

/// HTTP/2 pings keep long WatchPayments streams alive through idle-timeout
/// middleboxes and detect dead peers.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    metrics_server: Option<MetricsServer>,
    state: CoreState,
    api_keys: ApiKeys,
    provider_secret: Secret,
    tls: Option<ServerTlsConfig>,
    config: Config,
}

impl Application {
    /// Checks its credentials (a [`CredentialError`] when one is missing,
    /// or public outside development mode), opens the store and binds the
    /// listeners (port 0 picks a free port), then writes their addresses to
    /// `ADDRESS_FILE` if it is set.
    ///
    /// [`CredentialError`]: service_kit::credentials::CredentialError
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let provider_secret = config.provider_secret()?;
        let api_keys = config.api_keys()?;
        let database = config.database()?;
        announce_development_mode(&config, &provider_secret, &api_keys);
        let tls = config.tls()?;
        let shutdown = CancellationToken::new();
        let store = open_store(&database, &shutdown).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        let metrics = CoreMetrics::default();
        let mut registry = service_kit::metrics::ServiceRegistry::new("payment_core");
        metrics.register(registry.service());
        store.write_metrics().register(registry.service());
        let metrics_server = match config.metrics_listen {
            Some(address) => Some(MetricsServer::bind(address, registry.finish()).await?),
            None => None,
        };
        let metrics_addr = metrics_server
            .as_ref()
            .map(MetricsServer::local_addr)
            .transpose()?;
        // Every listener is bound: whoever reads the file can connect.
        let bound: Vec<_> = std::iter::once(("grpc", local_addr))
            .chain(metrics_addr.map(|addr| ("metrics", addr)))
            .collect();
        service_kit::address_file::write(config.address_file.as_deref(), &bound)
            .context("ADDRESS_FILE")?;
        let state = CoreState {
            store,
            clock: Clock::system(),
            provider_page_url: config.provider_page_url.trim_end_matches('/').into(),
            order_ttl: config.order_ttl(),
            slow_watcher_timeout: config.slow_watcher_timeout(),
            store_outages: StoreOutages::default(),
            shutdown,
            metrics,
        };
        tracing::info!(
            %local_addr,
            database = %database.describe(),
            api_keys = ?api_keys,
            tls = tls.is_some(),
            mutual_tls = config.tls_client_ca_file.is_some(),
            metrics_addr = ?metrics_addr,
            "payment-core bound"
        );
        Ok(Self {
            listener,
            local_addr,
            metrics_server,
            state,
            api_keys,
            provider_secret: provider_secret.secret,
            tls,
            config,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where `GET /metrics` is served, if `PAYMENT_CORE_METRICS_LISTEN` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_server
            .as_ref()
            .and_then(|server| server.local_addr().ok())
    }

    /// Cancelling this token stops the service (what SIGTERM does).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Serves until the shutdown token fires, then ends open streams and
    /// waits at most the configured grace for calls in flight.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            metrics_server,
            state,
            api_keys,
            provider_secret,
            tls,
            config,
            ..
        } = self;
        let shutdown = state.shutdown.clone();

        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<PaymentServiceServer<PaymentApi>>()
            .await;
        health
            .set_serving::<ProviderServiceServer<ProviderApi>>()
            .await;
        let reflection_v1 = reflection().build_v1().context("building reflection v1")?;
        let reflection_v1alpha = reflection()
            .build_v1alpha()
            .context("building reflection v1alpha")?;

        let store_health = tokio::spawn(store_health::report(
            state.store.clone(),
            health.clone(),
            // "" is the server as a whole, which `payment-core healthcheck`
            // (the container health check) asks about.
            &[
                "",
                <PaymentServiceServer<PaymentApi> as NamedService>::NAME,
                <ProviderServiceServer<ProviderApi> as NamedService>::NAME,
            ],
            state.store_outages.clone(),
            shutdown.child_token(),
        ));
        let expiry = tokio::spawn(expiry::run(
            state.store.clone(),
            state.clock,
            config.expiry_interval(),
            state.metrics.clone(),
            shutdown.child_token(),
        ));
        let metrics_server = metrics_server.map(|server| {
            let shutdown = shutdown.child_token();
            tokio::spawn(async move {
                if let Err(error) = server.serve(shutdown).await {
                    tracing::error!(%error, "metrics listener failed");
                }
            })
        });

        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).context("TLS configuration")?;
        }
        let server = builder
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
            .trace_fn(call_span)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(PaymentServiceServer::with_interceptor(
                PaymentApi::new(state.clone()),
                api_keys.interceptor(),
            ))
            .add_service(ProviderServiceServer::new(ProviderApi::new(
                state.clone(),
                provider_secret.expose(),
                config.signature_tolerance(),
            )))
            .serve_with_incoming_shutdown(incoming(listener), {
                let shutdown = shutdown.clone();
                let health = health.clone();
                async move {
                    shutdown.cancelled().await;
                    health
                        .set_not_serving::<PaymentServiceServer<PaymentApi>>()
                        .await;
                    tracing::info!("draining connections");
                }
            });

        service_kit::shutdown::serve_with_bounded_drain(server, &shutdown, config.shutdown_grace())
            .await
            .context("gRPC server failed")?;
        // Also on a server error: stop the background task before returning.
        shutdown.cancel();
        let _ = tokio::join!(expiry, store_health);
        if let Some(metrics_server) = metrics_server {
            let _ = metrics_server.await;
        }
        tracing::info!("payment-core stopped");
        Ok(())
    }
}

/// In development mode, the banner naming the public credentials in use:
/// with the public secret anyone can forge payment results, with a public
/// key anyone who reaches the port can create, cancel and watch orders.
fn announce_development_mode(config: &Config, provider_secret: &Resolved, api_keys: &ApiKeys) {
    let mut public = Vec::new();
    if provider_secret.public {
        public.push(provider_secret.name.to_owned());
    }
    let public_keys = api_keys.public_key_names();
    if !public_keys.is_empty() {
        let name = crate::config::API_KEYS.name;
        public.push(format!("{name} ({})", public_keys.join(", ")));
    }
    credentials::announce(config.dev, &public);
}

/// Every call's span: named after its method, and a child of the caller's
/// trace when the call carries a W3C `traceparent`. PaymentService's
/// interceptor fills `caller` with the API key's name, so every line a call
/// logs names its key.
fn call_span(request: &http::Request<()>) -> tracing::Span {
    let span = tracing::info_span!(
        "grpc",
        rpc = %request.uri().path(),
        caller = tracing::field::Empty
    );
    service_kit::telemetry::continue_trace(&span, request.headers());
    span
}

/// The store `database` names; a PostgreSQL store's background tasks end
/// with `shutdown`.
async fn open_store(
    database: &Database,
    shutdown: &CancellationToken,
) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match database {
        Database::Sqlite(path) => Arc::new(
            SqliteStore::open(path)
                .with_context(|| format!("opening the SQLite store at {}", path.display()))?,
        ),
        Database::Postgres(url) => Arc::new(
            PostgresStore::connect(url, shutdown.child_token())
                .await
                .with_context(|| {
                    format!("opening the PostgreSQL store at {}", database.describe())
                })?,
        ),
    })
}

/// The accepted connections, with Nagle's algorithm off. tonic ignores its
/// own `tcp_nodelay` setting for a listener passed in (port 0 in tests needs
/// one), and with Nagle on, a small HTTP/2 frame written while the previous
/// one is unacknowledged waits for the peer's delayed ACK: 40 ms stalls that
/// hit every event and report behind them (BENCHMARKS.md).
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(payments_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut incoming = incoming(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let accepted = incoming
            .next()
            .await
            .expect("a connection")
            .expect("accepted");
        assert!(accepted.nodelay().expect("nodelay readable"));
    }
}
