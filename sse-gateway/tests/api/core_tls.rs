//! The gateway as payment-core's client over mutual TLS, with an API key of
//! its own: the real core binary, certificates from a throwaway CA.

use payments_proto::contract::dev;
use testkit::tls::TestPki;

use sse_gateway::{
    Config, PaymentCore,
    event::NewOrder,
    payment_core::{GrpcCore, bounded},
};

use crate::helpers::{Gateway, create_order, spawn_gateway, spawn_gateway_unready};

const GATEWAY_KEY: &str = "key-of-this-gateway";

/// The core binary serving mutual TLS, accepting only [`GATEWAY_KEY`].
fn start_mtls_core(pki: &TestPki, dir: &tempfile::TempDir) -> testkit::Process {
    let server = pki.server();
    let keys = testkit::api_key_entry("edge", "shop", "merchant+gateway", GATEWAY_KEY);
    testkit::start_payment_core_on(
        &format!("sqlite://{}", dir.path().join("core.db").display()),
        testkit::PROVIDER_SECRET,
        &[
            ("TLS_CERT_FILE", server.cert.display().to_string()),
            ("TLS_KEY_FILE", server.key.display().to_string()),
            ("TLS_CLIENT_CA_FILE", pki.ca().display().to_string()),
            ("PAYMENT_CORE_API_KEYS", keys),
        ],
    )
}

/// Points `config` at the core(s) at `urls` over mutual TLS, with
/// [`GATEWAY_KEY`] and the PKI's client certificate.
fn use_mtls(config: &mut Config, pki: &TestPki, urls: String) {
    let client = pki.client();
    config.payment_core_url = urls;
    config.payment_core_api_key = Some(GATEWAY_KEY.into());
    config.payment_core_tls.ca_file = Some(pki.ca());
    config.payment_core_tls.client_cert_file = Some(client.cert);
    config.payment_core_tls.client_key_file = Some(client.key);
    config.payment_core_tls.domain = Some("localhost".into());
}

/// An order made through `gateway` reaches its stream.
async fn assert_order_streams(gateway: &Gateway) {
    let http = reqwest::Client::new();
    let order = create_order(&http, gateway.addr, 1200, "over mTLS").await;
    let mut stream = gateway.open(&order.events_url, &[]).await;
    assert_eq!(stream.expect_event_name().await, "created");
}

#[tokio::test]
async fn a_gateway_with_its_key_and_certificate_streams_from_a_mutual_tls_core() {
    let pki = TestPki::generate();
    let dir = tempfile::tempdir().expect("temp dir");
    let core = start_mtls_core(&pki, &dir);
    let port = core.addr.port();
    let gateway = spawn_gateway(port, |config| {
        use_mtls(config, &pki, format!("https://127.0.0.1:{port}"));
    })
    .await;
    assert_order_streams(&gateway).await;
}

/// A mutual-TLS core listed after a replica whose connections the kernel
/// accepts and nobody reads (a frozen one), and what must outlive the test.
struct BehindASilentReplica {
    pki: TestPki,
    core_port: u16,
    /// Both replicas' URLs, the silent one first.
    urls: String,
    _core: testkit::Process,
    _dir: tempfile::TempDir,
    _silent: std::net::TcpListener,
}

fn behind_a_silent_replica() -> BehindASilentReplica {
    let pki = TestPki::generate();
    let dir = tempfile::tempdir().expect("temp dir");
    let core = start_mtls_core(&pki, &dir);
    let core_port = core.addr.port();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bound");
    let silent_port = silent.local_addr().expect("bound").port();
    BehindASilentReplica {
        pki,
        core_port,
        urls: format!("https://127.0.0.1:{silent_port},https://127.0.0.1:{core_port}"),
        _core: core,
        _dir: dir,
        _silent: silent,
    }
}

#[tokio::test]
async fn a_gateway_moves_past_a_replica_that_never_finishes_the_tls_handshake() {
    let system = behind_a_silent_replica();
    let gateway = spawn_gateway(system.core_port, |config| {
        use_mtls(config, &system.pki, system.urls.clone());
        config.core_timeout_ms = 500;
    })
    .await;
    assert_order_streams(&gateway).await;
}

#[tokio::test]
async fn a_gateway_without_a_client_certificate_or_with_a_wrong_key_is_never_ready() {
    let pki = TestPki::generate();
    let dir = tempfile::tempdir().expect("temp dir");
    let core = start_mtls_core(&pki, &dir);
    let port = core.addr.port();
    let http = reqwest::Client::new();
    for (what, with_certificate, key) in [
        ("no client certificate", false, GATEWAY_KEY),
        ("the development key", true, dev::GATEWAY_API_KEY),
    ] {
        let gateway = spawn_gateway_unready(port, |config| {
            use_mtls(config, &pki, format!("https://127.0.0.1:{port}"));
            config.payment_core_api_key = Some(key.into());
            if !with_certificate {
                config.payment_core_tls.client_cert_file = None;
                config.payment_core_tls.client_key_file = None;
            }
        })
        .await;
        let created = http
            .post(format!("http://{}/api/orders", gateway.addr))
            .json(&serde_json::json!({"amount_minor": 100, "currency": "EUR"}))
            .send()
            .await
            .expect("an answer");
        assert!(
            created.status().is_server_error(),
            "{what}: {}",
            created.status()
        );
        let ready = http
            .get(format!("http://{}/readyz", gateway.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(
            ready.status(),
            503,
            "{what}: the upstream stream never opens"
        );
    }
}

#[tokio::test]
async fn a_call_moves_past_a_replica_that_never_answers_within_the_calls_own_bound() {
    let system = behind_a_silent_replica();
    let mut config = crate::helpers::test_config("http://127.0.0.1:1");
    use_mtls(&mut config, &system.pki, system.urls.clone());
    let bound = std::time::Duration::from_millis(1000);
    // No upstream stream here: nothing but this call moves past the silent
    // replica, and it must do so inside the bound a route puts on it.
    let core = GrpcCore::new(
        &config.payment_core_url,
        &config.payment_core_tls,
        GATEWAY_KEY,
        bound,
    )
    .expect("valid settings");
    let created = bounded(
        bound,
        core.create_order(NewOrder {
            amount_minor: 100,
            currency: "EUR".into(),
            description: String::new(),
            idempotency_key: "past-the-silent-one".into(),
        }),
    )
    .await;
    assert!(created.is_ok(), "{created:?}");
}
