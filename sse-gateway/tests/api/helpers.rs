//! The system under test for the gateway: the real payment-core binary on
//! a real SQLite file, and the gateway itself on a loopback port.

#![allow(dead_code)]

use std::{net::SocketAddr, time::Duration};

use payments_proto::{
    payments::v1::{self as pb, provider_service_client::ProviderServiceClient},
    signature,
};
use serde_json::Value;
use sse_gateway::{Application, Config};
use testkit::{Process, free_port, sse::SseConnection};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "gateway-test-secret";
pub const ADMIN_TOKEN: &str = "test-admin-token";

pub struct Gateway {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub server: JoinHandle<anyhow::Result<()>>,
}

pub struct TestSystem {
    pub core: Process,
    pub core_port: u16,
    pub gateway: Gateway,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

pub async fn spawn_gateway(core_port: u16, adjust: impl FnOnce(&mut Config)) -> Gateway {
    let gateway = spawn_gateway_unready(core_port, adjust).await;
    gateway.wait_ready().await;
    gateway
}

/// A gateway that may not have reached payment-core yet.
pub async fn spawn_gateway_unready(core_port: u16, adjust: impl FnOnce(&mut Config)) -> Gateway {
    let mut config = Config::for_tests(&format!("http://127.0.0.1:{core_port}"));
    adjust(&mut config);
    let app = Application::build(config).await.expect("gateway builds");
    let addr = app.local_addr();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    Gateway {
        addr,
        shutdown,
        server,
    }
}

impl Gateway {
    /// Waits (bounded) until /readyz says the upstream stream is open.
    pub async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        for _ in 0..200 {
            let ready = http
                .get(format!("http://{}/readyz", self.addr))
                .send()
                .await;
            if ready.is_ok_and(|response| response.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gateway never became ready");
    }
}

pub async fn spawn_system() -> TestSystem {
    spawn_system_with(|_| {}).await
}

pub async fn spawn_system_with(adjust: impl FnOnce(&mut Config)) -> TestSystem {
    let dir = tempfile::tempdir().expect("temp dir");
    let core_port = free_port();
    let core = testkit::start_payment_core(&dir.path().join("core.db"), SECRET, core_port);
    let gateway = spawn_gateway(core_port, adjust).await;
    TestSystem {
        core,
        core_port,
        gateway,
        http: reqwest::Client::new(),
        dir,
    }
}

/// What POST /api/orders answered.
#[derive(Debug, Clone)]
pub struct CreatedOrder {
    pub order_id: String,
    pub client_secret: String,
    pub events_url: String,
    pub body: Value,
}

impl TestSystem {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.addr)
    }

    pub async fn create_order(&self, amount_minor: i64, description: &str) -> CreatedOrder {
        let response = self
            .http
            .post(self.url("/api/orders"))
            .json(&serde_json::json!({ "amount_minor": amount_minor, "currency": "EUR", "description": description }))
            .send()
            .await
            .expect("POST /api/orders");
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        CreatedOrder {
            order_id: body["order_id"].as_str().unwrap().to_owned(),
            client_secret: body["client_secret"].as_str().unwrap().to_owned(),
            events_url: body["events_url"].as_str().unwrap().to_owned(),
            body,
        }
    }

    /// Reports a result to payment-core the way the provider does: signed.
    pub async fn report(&self, order_id: &str, outcome: pb::PaymentOutcome, reason: &str) {
        report_to(self.core_port, order_id, outcome, reason)
            .await
            .expect("report accepted");
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        response.text().await.expect("metrics body")
    }

    pub async fn open(&self, path: &str, headers: &[(&str, &str)]) -> SseConnection {
        SseConnection::open(self.gateway.addr, path, headers)
            .await
            .expect("SSE connection")
    }

    /// Restarts payment-core on the same port and database after a hard kill.
    pub fn kill_core(&mut self) {
        self.core.kill();
    }

    pub fn restart_core(&mut self) {
        self.core =
            testkit::start_payment_core(&self.dir.path().join("core.db"), SECRET, self.core_port);
    }
}

/// Creates `count` orders straight through payment-core's gRPC, 50 at a time.
pub async fn create_orders_in_core(core_port: u16, count: usize) {
    use payments_proto::payments::v1::payment_service_client::PaymentServiceClient;
    let client = PaymentServiceClient::connect(format!("http://127.0.0.1:{core_port}"))
        .await
        .expect("core reachable");
    for chunk_start in (0..count).step_by(50) {
        let creates = (chunk_start..count.min(chunk_start + 50)).map(|_| {
            let mut client = client.clone();
            async move {
                let request = pb::CreateOrderRequest {
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

pub async fn report_to(
    core_port: u16,
    order_id: &str,
    outcome: pb::PaymentOutcome,
    reason: &str,
) -> Result<(), tonic::Status> {
    let mut provider = ProviderServiceClient::connect(format!("http://127.0.0.1:{core_port}"))
        .await
        .expect("core reachable");
    let request = pb::ReportPaymentResultRequest {
        order_id: order_id.into(),
        outcome: outcome as i32,
        provider_reference: "test".into(),
        reason: reason.into(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    provider
        .report_payment_result(signature::signed_request(SECRET.as_bytes(), now, request))
        .await
        .map(drop)
}

pub const BOUND: Duration = Duration::from_secs(10);

/// Parses the JSON `data:` of an event frame.
pub fn data(frame: &testkit::sse::Frame) -> Value {
    serde_json::from_str(frame.data.as_deref().expect("event has data")).expect("data is JSON")
}

pub fn names(frames: &[testkit::sse::Frame]) -> Vec<String> {
    frames
        .iter()
        .map(|frame| frame.event.clone().unwrap_or_default())
        .collect()
}
