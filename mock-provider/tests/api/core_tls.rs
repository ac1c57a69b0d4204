//! mock-provider as payment-core's client over mutual TLS, with an API key
//! of its own: the real binaries, certificates from a throwaway CA.

use payments_proto::{
    contract::dev,
    payments::v1::{self as pb, OrderStatus},
};
use service_kit::core_client::{self, CoreClientTls, KeyedChannel};
use testkit::{Process, tls::TestPki};

use crate::helpers::{decide, get, start_provider};

const PROVIDER_KEY: &str = "key-of-this-provider";
const SHOP_KEY: &str = "key-of-the-shop";

/// The core binary serving mutual TLS, accepting only the provider's
/// `reader` key and the shop's key.
fn start_mtls_core(pki: &TestPki, dir: &tempfile::TempDir) -> Process {
    let server = pki.server();
    let keys = [
        testkit::api_key_entry("page", "provider", "reader", PROVIDER_KEY),
        testkit::api_key_entry("shop", "shop", "merchant+gateway", SHOP_KEY),
    ]
    .join(",");
    testkit::start_payment_core_with(
        &dir.path().join("core.db"),
        testkit::PROVIDER_SECRET,
        &[
            ("TLS_CERT_FILE", server.cert.display().to_string()),
            ("TLS_KEY_FILE", server.key.display().to_string()),
            ("TLS_CLIENT_CA_FILE", pki.ca().display().to_string()),
            ("PAYMENT_CORE_API_KEYS", keys),
        ],
    )
}

/// The client settings of the core's clients: trust the PKI's CA, and
/// present its client certificate when `with_certificate`.
fn client_env(
    pki: &TestPki,
    core: &Process,
    api_key: &str,
    with_certificate: bool,
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        (
            "PAYMENT_CORE_URL",
            format!("https://127.0.0.1:{}", core.addr.port()),
        ),
        ("PAYMENT_CORE_CA_FILE", pki.ca().display().to_string()),
        ("PAYMENT_CORE_TLS_DOMAIN", "localhost".to_owned()),
        ("PAYMENT_CORE_API_KEY", api_key.to_owned()),
    ];
    if with_certificate {
        let client = pki.client();
        env.push((
            "PAYMENT_CORE_CLIENT_CERT_FILE",
            client.cert.display().to_string(),
        ));
        env.push((
            "PAYMENT_CORE_CLIENT_KEY_FILE",
            client.key.display().to_string(),
        ));
    }
    env
}

/// The shop's client of the mutual-TLS core.
async fn shop(
    pki: &TestPki,
    core: &Process,
) -> pb::payment_service_client::PaymentServiceClient<KeyedChannel> {
    let client = pki.client();
    let tls = CoreClientTls {
        ca_file: Some(pki.ca()),
        client_cert_file: Some(client.cert),
        client_key_file: Some(client.key),
        domain: Some("localhost".into()),
    };
    let url = format!("https://127.0.0.1:{}", core.addr.port());
    let endpoint = core_client::endpoints(&url, &tls).expect("valid settings")[0].clone();
    let channel = endpoint.connect().await.expect("the shop connects");
    testkit::payments_client(channel, SHOP_KEY)
}

async fn create(
    shop: &mut pb::payment_service_client::PaymentServiceClient<KeyedChannel>,
) -> String {
    shop.create_order(pb::CreateOrderRequest {
        amount_minor: 1999,
        currency: "EUR".into(),
        ..Default::default()
    })
    .await
    .expect("created")
    .into_inner()
    .order
    .expect("order in the answer")
    .order_id
}

async fn statuses(
    shop: &mut pb::payment_service_client::PaymentServiceClient<KeyedChannel>,
    order_id: &str,
) -> Vec<OrderStatus> {
    shop.list_order_events(pb::ListOrderEventsRequest {
        order_id: order_id.to_owned(),
        after_sequence: 0,
    })
    .await
    .expect("events read")
    .into_inner()
    .events
    .iter()
    .map(|event| event.status())
    .collect()
}

#[tokio::test]
async fn a_provider_with_its_key_and_certificate_serves_and_reports_to_a_mutual_tls_core() {
    let pki = TestPki::generate();
    let dir = tempfile::tempdir().expect("temp dir");
    let core = start_mtls_core(&pki, &dir);
    let provider = start_provider(
        core.addr,
        testkit::PROVIDER_SECRET,
        &client_env(&pki, &core, PROVIDER_KEY, true),
    );
    let mut shop = shop(&pki, &core).await;
    let http = reqwest::Client::new();

    let paid = create(&mut shop).await;
    let (status, page) = get(&http, &format!("http://{}/pay/{paid}", provider.addr)).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("19.99 EUR"),
        "the order read over mTLS: {page}"
    );
    let (status, page) = decide(&http, &provider, &paid, &[("decision", "pay")]).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        statuses(&mut shop, &paid).await,
        [
            OrderStatus::Created,
            OrderStatus::Processing,
            OrderStatus::Succeeded
        ]
    );

    // The `report` command takes the same settings.
    let declined = create(&mut shop).await;
    let output = std::process::Command::new(testkit::binary_path("mock-provider"))
        .args(["report", "--order", &declined, "--outcome", "failed"])
        .envs(client_env(&pki, &core, PROVIDER_KEY, true))
        .env("PROVIDER_SECRET", testkit::PROVIDER_SECRET)
        .output()
        .expect("the command runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        statuses(&mut shop, &declined).await,
        [OrderStatus::Created, OrderStatus::Failed]
    );
}

#[tokio::test]
async fn a_provider_without_a_client_certificate_or_with_an_unknown_key_reads_and_changes_nothing()
{
    let pki = TestPki::generate();
    let dir = tempfile::tempdir().expect("temp dir");
    let core = start_mtls_core(&pki, &dir);
    let mut shop = shop(&pki, &core).await;
    let http = reqwest::Client::new();
    let order_id = create(&mut shop).await;
    // Without a certificate nothing reaches the core: neither the order
    // read nor the signed report.
    let uncertified = start_provider(
        core.addr,
        testkit::PROVIDER_SECRET,
        &client_env(&pki, &core, PROVIDER_KEY, false),
    );
    let page_url = |provider: &Process| format!("http://{}/pay/{order_id}", provider.addr);
    let (status, page) = get(&http, &page_url(&uncertified)).await;
    assert!((500..600).contains(&status), "{status} {page}");
    let (status, page) = decide(&http, &uncertified, &order_id, &[("decision", "pay")]).await;
    assert!((500..600).contains(&status), "{status} {page}");
    // With a key the core does not hold, the order is not read (reports
    // are proven by their signature, not by the key).
    let unkeyed = start_provider(
        core.addr,
        testkit::PROVIDER_SECRET,
        &client_env(&pki, &core, dev::PROVIDER_API_KEY, true),
    );
    let (status, page) = get(&http, &page_url(&unkeyed)).await;
    assert!((500..600).contains(&status), "{status} {page}");
    assert!(!page.contains("19.99"), "the order was shown: {page}");
    assert_eq!(statuses(&mut shop, &order_id).await, [OrderStatus::Created]);
}

#[tokio::test]
async fn a_provider_moves_past_a_replica_that_never_finishes_the_tls_handshake() {
    let pki = TestPki::generate();
    let dir = tempfile::tempdir().expect("temp dir");
    let core = start_mtls_core(&pki, &dir);
    // Connections are accepted by the kernel, and never read: a frozen replica.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bound");
    let mut env = client_env(&pki, &core, PROVIDER_KEY, true);
    env.push((
        "PAYMENT_CORE_URL",
        format!(
            "https://127.0.0.1:{},https://127.0.0.1:{}",
            silent.local_addr().expect("bound").port(),
            core.addr.port()
        ),
    ));
    let provider = start_provider(core.addr, testkit::PROVIDER_SECRET, &env);
    let mut shop = shop(&pki, &core).await;
    let order_id = create(&mut shop).await;
    // Bounded, so that a provider stuck on the silent replica fails the test.
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client");
    let (status, page) = get(&http, &format!("http://{}/pay/{order_id}", provider.addr)).await;
    assert_eq!(status, 200, "{page}");
    let (status, page) = decide(&http, &provider, &order_id, &[("decision", "pay")]).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        statuses(&mut shop, &order_id).await,
        [
            OrderStatus::Created,
            OrderStatus::Processing,
            OrderStatus::Succeeded
        ]
    );
}
