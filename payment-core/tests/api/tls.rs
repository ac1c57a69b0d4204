//! gRPC over TLS and mutual TLS, with certificates from a throwaway CA made
//! at run time: plaintext and unknown clients are refused.

use std::sync::Arc;

use payments_proto::{contract::dev, payments::v1 as pb};
use service_kit::core_client::{self, CoreClientTls};
use testkit::tls::{Pair, TestPki};
use tonic::transport::Channel;

use crate::helpers::{TestApp, spawn_app_in};

/// A core serving TLS with the PKI's server certificate; with
/// `mutual`, it also requires client certificates from the PKI's CA.
async fn spawn_tls_app(pki: &TestPki, mutual: bool) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = pki.server();
    spawn_app_in(dir, |config| {
        config.tls_cert_file = Some(server.cert);
        config.tls_key_file = Some(server.key);
        if mutual {
            config.tls_client_ca_file = Some(pki.ca());
        }
    })
    .await
}

/// A CreateOrder over `https` to `app`, trusting the PKI's CA and presenting
/// `client` if given, as the gateway's and the provider's clients do.
async fn create_over_tls(
    app: &TestApp,
    pki: &TestPki,
    client: Option<Pair>,
) -> Result<pb::Order, String> {
    let tls = CoreClientTls {
        ca_file: Some(pki.ca()),
        client_cert_file: client.as_ref().map(|pair| pair.cert.clone()),
        client_key_file: client.map(|pair| pair.key),
        domain: Some("localhost".into()),
    };
    let endpoints = core_client::endpoints(&format!("https://127.0.0.1:{}", app.addr.port()), &tls)
        .map_err(|error| format!("{error:#}"))?;
    let channel = endpoints[0]
        .clone()
        .connect()
        .await
        .map_err(|error| format!("connect: {error:?}"))?;
    create_on(channel).await
}

async fn create_on(channel: Channel) -> Result<pb::Order, String> {
    testkit::payments_client(channel, dev::GATEWAY_API_KEY)
        .create_order(pb::CreateOrderRequest {
            amount_minor: 100,
            currency: "EUR".into(),
            ..Default::default()
        })
        .await
        .map(|response| response.into_inner().order.expect("order"))
        .map_err(|status| format!("{status:?}"))
}

async fn assert_plaintext_refused(app: &TestApp) {
    let plaintext = Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect_lazy();
    let answer = create_on(plaintext).await;
    assert!(answer.is_err(), "a plaintext client is refused: {answer:?}");
}

#[tokio::test]
async fn a_tls_core_serves_clients_that_trust_its_ca_and_refuses_plaintext() {
    let pki = TestPki::generate();
    let app = spawn_tls_app(&pki, false).await;
    create_over_tls(&app, &pki, None)
        .await
        .expect("TLS client served");

    assert_plaintext_refused(&app).await;
}

#[tokio::test]
async fn a_mutual_tls_core_refuses_clients_without_a_certificate_of_its_ca() {
    let pki = TestPki::generate();
    let app = spawn_tls_app(&pki, true).await;
    create_over_tls(&app, &pki, Some(pki.client()))
        .await
        .expect("the CA's client is served");

    let anonymous = create_over_tls(&app, &pki, None).await;
    assert!(anonymous.is_err(), "no client certificate: {anonymous:?}");
    let rogue = create_over_tls(&app, &pki, Some(pki.rogue_client())).await;
    assert!(rogue.is_err(), "an unknown CA's certificate: {rogue:?}");
    assert_plaintext_refused(&app).await;
}

#[tokio::test]
async fn a_client_refuses_a_core_whose_certificate_its_ca_did_not_sign() {
    let pki = TestPki::generate();
    let other = TestPki::generate();
    let app = spawn_tls_app(&pki, false).await;
    let result = create_over_tls(&app, &other, None).await;
    assert!(
        result.is_err(),
        "a server certificate from another CA: {result:?}"
    );
}

#[tokio::test]
async fn the_healthcheck_command_checks_a_mutual_tls_core_with_the_clients_settings() {
    let pki = TestPki::generate();
    let app = spawn_tls_app(&pki, true).await;
    let server = pki.server();
    let healthcheck = |client: Option<Pair>| {
        let mut command = std::process::Command::new(testkit::binary_path("payment-core"));
        command
            .arg("healthcheck")
            .env("PAYMENT_CORE_LISTEN", app.addr.to_string())
            .env("TLS_CERT_FILE", &server.cert)
            .env("TLS_KEY_FILE", &server.key)
            .env("PAYMENT_CORE_CA_FILE", pki.ca())
            .env("PAYMENT_CORE_TLS_DOMAIN", "localhost");
        if let Some(client) = client {
            command
                .env("PAYMENT_CORE_CLIENT_CERT_FILE", client.cert)
                .env("PAYMENT_CORE_CLIENT_KEY_FILE", client.key);
        }
        command
    };
    // The command blocks; the core under test runs on this test's runtime.
    let healthcheck = |client| {
        let mut command = healthcheck(client);
        tokio::task::spawn_blocking(move || command.output().expect("the command runs"))
    };
    let healthy = healthcheck(Some(pki.client())).await.expect("joined");
    assert!(
        healthy.status.success(),
        "{}",
        String::from_utf8_lossy(&healthy.stderr)
    );
    let refused = healthcheck(None).await.expect("joined");
    assert!(
        !refused.status.success(),
        "no client certificate, no answer"
    );
}

#[tokio::test]
async fn the_healthcheck_command_fails_instead_of_hanging_on_a_core_that_never_answers_tls() {
    let pki = TestPki::generate();
    let server = pki.server();
    // Connections are accepted by the kernel, and never read: a frozen core.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bound");
    let mut check = std::process::Command::new(testkit::binary_path("payment-core"))
        .arg("healthcheck")
        .env(
            "PAYMENT_CORE_LISTEN",
            silent.local_addr().expect("bound").to_string(),
        )
        .env("TLS_CERT_FILE", &server.cert)
        .env("TLS_KEY_FILE", &server.key)
        .env("PAYMENT_CORE_CA_FILE", pki.ca())
        .env("PAYMENT_CORE_TLS_DOMAIN", "localhost")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the command runs");
    let ended = testkit::eventually("the check ends", || {
        let status = check.try_wait().expect("waitable");
        async move { status }
    })
    .await;
    let _ = check.kill();
    assert!(!ended.success(), "a silent core is not healthy");
}
