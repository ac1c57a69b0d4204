//! The system under test for the gateway, and how tests drive it:
//! - [`spawn_system`]: the real payment-core binary on a real SQLite file,
//!   and the gateway itself on a loopback port;
//! - [`spawn_with_fake_core`]: the gateway in front of a [`FakeCore`],
//!   for what a real core cannot be made to do on cue;
//! - [`router_without_core`]: the router alone, driven in process;
//! - [`test_config`]: the gateway's configuration for tests.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use payments_proto::payments::v1::PaymentOutcome;
use serde_json::Value;
use service_kit::credentials::DevMode;
use sse_gateway::{AppState, Application, Config, payment_core::GrpcCore, router};
use testkit::{Process, ReservedAddress, eventually, sse::SseConnection};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::fake_core::FakeCore;

pub const ADMIN_TOKEN: &str = "test-admin-token";
/// The `Authorization` value that opens the dashboard stream.
pub const ADMIN_BEARER: &str = "Bearer test-admin-token";
/// Bound on reading a stream to its end.
pub const BOUND: Duration = Duration::from_secs(10);

/// The gateway's defaults, on port 0, in front of `payment_core_url`.
pub fn test_config(payment_core_url: &str) -> Config {
    #[derive(clap::Parser)]
    struct Defaults {
        #[command(flatten)]
        config: Config,
    }
    let mut config = <Defaults as clap::Parser>::parse_from(["sse-gateway"]).config;
    config.listen = "127.0.0.1:0".parse().expect("valid address");
    config.payment_core_url = payment_core_url.to_owned();
    config.admin_token = Some(ADMIN_TOKEN.into());
    // The other credential, the core key, is the public development one.
    config.dev = DevMode::ON;
    config.instance = "test-gateway".into();
    config.shutdown_grace_secs = 2;
    config
}

/// The router with a core that is never there: port 1 on loopback, where
/// nothing listens. Calls to the core fail at once, as when it is down.
pub fn router_without_core() -> axum::Router {
    router(state_without_core())
}

/// The state [`router_without_core`] serves.
pub fn state_without_core() -> AppState {
    let config = test_config("http://127.0.0.1:1");
    let credentials = config.credentials().expect("development mode");
    let core = GrpcCore::new(
        &config.payment_core_url,
        &config.payment_core_tls,
        credentials.payment_core_api_key.secret.expose(),
        config.core_timeout(),
    )
    .expect("client");
    AppState::with_credentials(&config, &credentials, Arc::new(core)).expect("valid config")
}

pub struct Gateway {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub server: JoinHandle<anyhow::Result<()>>,
}

impl Gateway {
    async fn start(app: Application) -> Self {
        let addr = app.local_addr();
        let shutdown = app.shutdown_token();
        let server = tokio::spawn(app.run_until_stopped());
        Self {
            addr,
            shutdown,
            server,
        }
    }

    /// Waits until /readyz says the upstream stream is open.
    pub async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        let url = format!("http://{}/readyz", self.addr);
        eventually("the gateway's upstream stream opens", || async {
            let ready = http.get(&url).send().await;
            ready
                .is_ok_and(|answer| answer.status() == 200)
                .then_some(())
        })
        .await;
    }

    pub async fn open(&self, path: &str, headers: &[(&str, &str)]) -> SseConnection {
        SseConnection::open(self.addr, path, headers)
            .await
            .expect("SSE connection")
    }
}

pub async fn spawn_gateway(core_port: u16, adjust: impl FnOnce(&mut Config)) -> Gateway {
    let gateway = spawn_gateway_unready(core_port, adjust).await;
    gateway.wait_ready().await;
    gateway
}

/// A gateway that may not have reached payment-core yet.
pub async fn spawn_gateway_unready(core_port: u16, adjust: impl FnOnce(&mut Config)) -> Gateway {
    let mut config = test_config(&format!("http://127.0.0.1:{core_port}"));
    adjust(&mut config);
    Gateway::start(Application::build(config).await.expect("gateway builds")).await
}

/// The gateway in front of `core`, ready.
pub async fn spawn_with_fake_core(
    core: Arc<FakeCore>,
    adjust: impl FnOnce(&mut Config),
) -> Gateway {
    // Nothing listens on port 1: the gRPC client is never used.
    let mut config = test_config("http://127.0.0.1:1");
    adjust(&mut config);
    let app = Application::build_with_core(config, core)
        .await
        .expect("gateway builds");
    let gateway = Gateway::start(app).await;
    gateway.wait_ready().await;
    gateway
}

pub struct TestSystem {
    pub core: Process,
    pub core_port: u16,
    /// Holds the core's address while it is killed: see
    /// [`TestSystem::kill_core`].
    core_reservation: Option<ReservedAddress>,
    pub gateway: Gateway,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

pub async fn spawn_system() -> TestSystem {
    spawn_system_with(|_| {}).await
}

pub async fn spawn_system_with(adjust: impl FnOnce(&mut Config)) -> TestSystem {
    let dir = tempfile::tempdir().expect("temp dir");
    let core = start_core(&dir, None);
    let core_port = core.addr.port();
    let gateway = spawn_gateway(core_port, adjust).await;
    TestSystem {
        core,
        core_port,
        core_reservation: None,
        gateway,
        http: reqwest::Client::new(),
        dir,
    }
}

/// The payment-core binary over `dir`'s database, on `listen`, or on a port
/// of its choosing.
pub fn start_core(dir: &tempfile::TempDir, listen: Option<SocketAddr>) -> Process {
    let listen: Vec<_> = listen
        .map(|addr| ("PAYMENT_CORE_LISTEN", addr.to_string()))
        .into_iter()
        .collect();
    testkit::start_payment_core_with(
        &dir.path().join("core.db"),
        testkit::PROVIDER_SECRET,
        &listen,
    )
}

/// What POST /api/orders answered.
#[derive(Debug, Clone)]
pub struct CreatedOrder {
    pub order_id: String,
    pub client_secret: String,
    /// The stream's URL with a stream token in it, as a page's EventSource
    /// opens it (from POST /api/orders/{id}/stream-tokens).
    pub events_url: String,
    /// The stream's URL as created, which needs the secret in a header.
    pub plain_events_url: String,
    /// The provider's page where the payer pays.
    pub payment_url: String,
    pub body: Value,
}

impl CreatedOrder {
    /// `Authorization: Bearer <client_secret>`.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.client_secret)
    }
}

/// Creates an order through the gateway at `gateway`.
pub async fn create_order(
    http: &reqwest::Client,
    gateway: SocketAddr,
    amount_minor: i64,
    description: &str,
) -> CreatedOrder {
    let response = http
        .post(format!("http://{gateway}/api/orders"))
        .json(&serde_json::json!({ "amount_minor": amount_minor, "currency": "EUR", "description": description }))
        .send()
        .await
        .expect("POST /api/orders");
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("JSON order");
    let client_secret = body["client_secret"]
        .as_str()
        .expect("client_secret")
        .to_owned();
    let token = http
        .post(format!(
            "http://{gateway}{}",
            body["stream_tokens_url"]
                .as_str()
                .expect("stream_tokens_url")
        ))
        .json(&serde_json::json!({ "client_secret": client_secret }))
        .send()
        .await
        .expect("POST stream-tokens");
    assert_eq!(token.status(), 201);
    let token: Value = token.json().await.expect("JSON token");
    CreatedOrder {
        order_id: body["order_id"].as_str().expect("order_id").to_owned(),
        client_secret,
        events_url: token["events_url"].as_str().expect("events_url").to_owned(),
        plain_events_url: body["events_url"].as_str().expect("events_url").to_owned(),
        payment_url: body["payment_url"]
            .as_str()
            .expect("payment_url")
            .to_owned(),
        body,
    }
}

impl TestSystem {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.addr)
    }

    pub fn core_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.core_port))
    }

    pub async fn create_order(&self, amount_minor: i64, description: &str) -> CreatedOrder {
        create_order(&self.http, self.gateway.addr, amount_minor, description).await
    }

    /// Reports a result to payment-core the way the provider does: signed.
    pub async fn report(&self, order_id: &str, outcome: PaymentOutcome, reason: &str) {
        testkit::report(self.core_addr(), order_id, outcome, reason)
            .await
            .expect("report accepted");
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        metrics_of(&self.http, self.gateway.addr).await
    }

    pub async fn open(&self, path: &str, headers: &[(&str, &str)]) -> SseConnection {
        self.gateway.open(path, headers).await
    }

    /// Kills payment-core hard, as a crash would. Its address is reserved
    /// at once: the gateway knows no other, so the restart must bind it
    /// again, and no port-0 bind elsewhere may take it meanwhile.
    pub fn kill_core(&mut self) {
        self.core.kill();
        self.core_reservation =
            Some(testkit::reserve_address_at(self.core_addr()).expect("the killed core's port"));
    }

    /// Restarts payment-core on the same address (the one the gateway was
    /// given) and database.
    pub fn restart_core(&mut self) {
        self.core = start_core(&self.dir, Some(self.core_addr()));
        self.core_reservation = None;
    }
}

/// The `/metrics` text of the gateway at `gateway`.
pub async fn metrics_of(http: &reqwest::Client, gateway: SocketAddr) -> String {
    http.get(format!("http://{gateway}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body")
}

/// The sum of the samples `name{gateway="test-gateway",…}` in `metrics`.
pub fn sample(metrics: &str, name: &str) -> Option<f64> {
    testkit::metrics::sum(metrics, name, &[("gateway", "test-gateway")])
}

/// Creates `count` orders straight through payment-core's gRPC, 50 at a time.
pub async fn create_orders_in_core(core_port: u16, count: usize) {
    use payments_proto::payments::v1::CreateOrderRequest;
    let client = testkit::connect_payments(format!("http://127.0.0.1:{core_port}"))
        .await
        .expect("core reachable");
    for chunk_start in (0..count).step_by(50) {
        let creates = (chunk_start..count.min(chunk_start + 50)).map(|_| {
            let mut client = client.clone();
            async move {
                let request = CreateOrderRequest {
                    amount_minor: 100,
                    currency: "EUR".into(),
                    ..Default::default()
                };
                client.create_order(request).await.expect("order created");
            }
        });
        futures::future::join_all(creates).await;
    }
}

/// Parses the JSON `data:` of an event frame.
pub fn data(frame: &testkit::sse::Frame) -> Value {
    serde_json::from_str(frame.data.as_deref().expect("event has data")).expect("data is JSON")
}

/// The `event:` names of `frames`.
pub fn names(frames: &[testkit::sse::Frame]) -> Vec<String> {
    frames
        .iter()
        .map(|frame| frame.event.clone().unwrap_or_default())
        .collect()
}

/// The `id:`s of `frames`, as sequences.
pub fn ids(frames: &[testkit::sse::Frame]) -> Vec<u64> {
    frames
        .iter()
        .map(|frame| {
            frame
                .id
                .as_deref()
                .and_then(|id| id.parse().ok())
                .expect("event id is a sequence")
        })
        .collect()
}
