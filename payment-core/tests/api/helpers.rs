//! Shared setup for payment-core's integration tests: a real server on a
//! loopback port over a real SQLite file in a temporary directory.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use clap::Parser;
use payment_core::{Application, Config};
use payments_proto::{
    contract::dev,
    payments::v1::{
        self as pb, payment_service_client::PaymentServiceClient,
        provider_service_client::ProviderServiceClient,
    },
    signature,
};
use service_kit::{core_client::KeyedChannel, credentials::DevMode};
use testkit::PROVIDER_SECRET;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// The service's defaults (as with no flags) for a test: port 0, the given
/// database, the test systems' provider secret, fast expiry sweeps, and
/// development mode (the public development keys, unless a test sets its
/// own).
pub fn test_config(database: &Path) -> Config {
    #[derive(Parser)]
    struct Defaults {
        #[command(flatten)]
        config: Config,
    }
    let mut config = Defaults::parse_from(["payment-core"]).config;
    config.listen = "127.0.0.1:0".parse().expect("valid address");
    config.database_url = Some(format!("sqlite://{}", database.display()).as_str().into());
    config.provider_secret = Some(PROVIDER_SECRET.into());
    config.dev = DevMode::ON;
    config.expiry_interval_ms = 50;
    config.shutdown_grace_secs = 2;
    config.metrics_listen = Some("127.0.0.1:0".parse().expect("valid address"));
    config
}

pub struct TestApp {
    /// Calls with the development gateway key (roles merchant and gateway).
    pub payments: PaymentServiceClient<KeyedChannel>,
    pub channel: Channel,
    pub addr: std::net::SocketAddr,
    /// Where `GET /metrics` is served (test configs set a port).
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub provider: ProviderServiceClient<Channel>,
    pub shutdown: CancellationToken,
    pub server: JoinHandle<anyhow::Result<()>>,
    pub database: PathBuf,
    /// Keeps the directory (and the database) alive for the test.
    pub dir: std::sync::Arc<tempfile::TempDir>,
}

pub async fn spawn_app() -> TestApp {
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    spawn_app_in(dir, |_| {}).await
}

/// Starts a server on the database in `dir`, after `adjust` has changed the config.
pub async fn spawn_app_in(
    dir: std::sync::Arc<tempfile::TempDir>,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    let database = dir.path().join("payments.db");
    let mut config = test_config(&database);
    adjust(&mut config);
    let app = Application::build(config).await.expect("app builds");
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    // Lazy: a TLS test's server refuses this plaintext channel, and uses
    // its own; the listener is bound already, so the others connect at once.
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    TestApp {
        payments: testkit::payments_client(channel.clone(), dev::GATEWAY_API_KEY),
        provider: ProviderServiceClient::new(channel.clone()),
        channel,
        addr,
        metrics_addr,
        shutdown,
        server,
        database,
        dir,
    }
}

impl TestApp {
    /// Stops the server and waits for it, as SIGTERM would.
    pub async fn stop(self) -> std::sync::Arc<tempfile::TempDir> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("server stops within its drain bound")
            .expect("server task")
            .expect("server ran cleanly");
        self.dir
    }

    /// PaymentService as the holder of `api_key` calls it.
    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let addr = self.metrics_addr.expect("the test config serves metrics");
        testkit::metrics::scrape(&format!("http://{addr}/metrics")).await
    }

    pub fn payments_as(&self, api_key: &str) -> PaymentServiceClient<KeyedChannel> {
        testkit::payments_client(self.channel.clone(), api_key)
    }

    pub async fn create_order(&self, amount_minor: i64) -> pb::Order {
        self.payments
            .clone()
            .create_order(pb::CreateOrderRequest {
                amount_minor,
                currency: "EUR".into(),
                description: "test order".into(),
                idempotency_key: String::new(),
            })
            .await
            .expect("order created")
            .into_inner()
            .order
            .expect("order in response")
    }

    /// Reports `outcome` as the provider does: signed now with the test secret.
    pub async fn report(
        &self,
        order_id: &str,
        outcome: pb::PaymentOutcome,
        reason: &str,
    ) -> Result<pb::ReportPaymentResultResponse, tonic::Status> {
        let request = testkit::report_request(order_id, outcome, reason);
        self.provider
            .clone()
            .report_payment_result(signature::signed_now(PROVIDER_SECRET.as_bytes(), request))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn order_events(&self, order_id: &str) -> Vec<pb::PaymentEvent> {
        self.payments
            .clone()
            .list_order_events(pb::ListOrderEventsRequest {
                order_id: order_id.into(),
                after_sequence: 0,
            })
            .await
            .expect("events listed")
            .into_inner()
            .events
    }

    pub async fn head_sequence(&self) -> u64 {
        head_sequence_of(self.payments.clone()).await
    }

    pub async fn watch(
        &self,
        selector: pb::watch_payments_request::Selector,
        after_sequence: u64,
    ) -> tonic::Streaming<pb::PaymentEvent> {
        self.payments
            .clone()
            .watch_payments(pb::WatchPaymentsRequest {
                selector: Some(selector),
                after_sequence,
            })
            .await
            .expect("watch starts")
            .into_inner()
    }
}

/// Reads events until the stream ends or `count` arrived, with a bound.
pub async fn collect(
    stream: &mut tonic::Streaming<pb::PaymentEvent>,
    count: usize,
) -> Vec<pb::PaymentEvent> {
    let mut events = Vec::new();
    while events.len() < count {
        match tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("event within 10s")
        {
            Ok(Some(event)) => events.push(event),
            Ok(None) => break,
            Err(status) => panic!("stream failed: {status}"),
        }
    }
    events
}

pub fn statuses(events: &[pb::PaymentEvent]) -> Vec<pb::OrderStatus> {
    events.iter().map(|event| event.status()).collect()
}

/// The field named by the BadRequest detail of an INVALID_ARGUMENT status.
pub fn violated_field(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let bad_request = details.bad_request().expect("BadRequest details");
    bad_request.field_violations[0].field.clone()
}

/// The last sequence in the log, as the payment-core behind `client` reads it.
pub async fn head_sequence_of(mut client: PaymentServiceClient<KeyedChannel>) -> u64 {
    client
        .list_events(pb::ListEventsRequest {
            after_sequence: 0,
            page_size: 1,
        })
        .await
        .expect("events listed")
        .into_inner()
        .head_sequence
}
