//! The built provider's credentials, for its page and its `report`
//! command: outside development mode a missing, public or doubly given
//! credential stops it with one line on stderr (exit 78); each can come
//! from its `NAME_FILE`; in development mode it starts with none, logs the
//! banner that says so, and the payer's pages show it.

use std::process::{Command, Output};

use payments_proto::{
    contract::dev,
    payments::v1::{self as pb, OrderStatus},
};
use service_kit::credentials::{DEV_MODE_MARKER, EXIT_REFUSED};
use testkit::{Process, api_key_entry, refusal};

use crate::helpers::{decide, get, provider_url};

const OWN_SECRET: &str = "a-provider-secret-of-our-own";
const OWN_KEY: &str = "a-provider-key-of-our-own";
const SHOP_KEY: &str = "a-shop-key-of-our-own";

/// Development mode off and every credential unset (empty counts as unset,
/// and overrides what the test's own environment may hold); then `extra`.
fn env(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = [
        "PROVIDER_SECRET",
        "PROVIDER_SECRET_FILE",
        "PAYMENT_CORE_API_KEY",
        "PAYMENT_CORE_API_KEY_FILE",
    ]
    .into_iter()
    .map(|name| (name, String::new()))
    .collect();
    env.push(("PAYMENTS_PUSH_DEV", "0".to_owned()));
    env.push(("PAYMENT_CORE_URL", "http://127.0.0.1:1".to_owned()));
    env.extend(extra.iter().cloned());
    env
}

/// `mock-provider report` of `outcome` for `order`, with `env` and `args`.
fn report(env: &[(&str, String)], args: &[&str], order: &str, outcome: &str) -> Output {
    Command::new(testkit::binary_path("mock-provider"))
        .args(["report", "--order", order, "--outcome", outcome])
        .args(args)
        .envs(env.iter().map(|(key, value)| (key, value)))
        .output()
        .expect("the command runs")
}

async fn create(core: &Process, key: &str) -> String {
    testkit::payments_client_at(&format!("http://{}", core.addr), key)
        .create_order(pb::CreateOrderRequest {
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

async fn status_as(core: &Process, key: &str, order_id: &str) -> OrderStatus {
    testkit::payments_client_at(&format!("http://{}", core.addr), key)
        .get_order(pb::GetOrderRequest {
            order_id: order_id.to_owned(),
        })
        .await
        .expect("read")
        .into_inner()
        .order
        .expect("order in the answer")
        .status()
}

/// Whether `page` holds the development-mode marker right after `<body>`.
fn marked(page: &str) -> bool {
    page.split_once("<body")
        .and_then(|(_, body)| body.split_once('>'))
        .is_some_and(|(_, inside)| inside.trim_start().starts_with(DEV_MODE_MARKER))
}

#[test]
fn without_development_mode_a_missing_credential_is_refused_in_one_line_naming_it() {
    let line = refusal("mock-provider", &env(&[]));
    assert!(
        line.starts_with("PROVIDER_SECRET is not set: set it (or PROVIDER_SECRET_FILE) to")
            && line.contains("openssl rand -hex 32")
            && line.contains("PAYMENTS_PUSH_DEV=1"),
        "{line}"
    );
    let line = refusal(
        "mock-provider",
        &env(&[("PROVIDER_SECRET", OWN_SECRET.into())]),
    );
    assert!(
        line.starts_with(
            "PAYMENT_CORE_API_KEY is not set: set it (or PAYMENT_CORE_API_KEY_FILE) to"
        ) && line.contains("payment-core api-key --name provider"),
        "{line}"
    );
    // The `report` command alike, before it calls anyone.
    let order = uuid::Uuid::new_v4().to_string();
    let refused = report(&env(&[]), &[], &order, "succeeded");
    assert_eq!(refused.status.code(), Some(EXIT_REFUSED.into()));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("PROVIDER_SECRET is not set"), "{stderr}");
}

#[test]
fn without_development_mode_a_public_development_value_is_refused() {
    let line = refusal(
        "mock-provider",
        &env(&[
            ("PROVIDER_SECRET", dev::PROVIDER_SECRET.into()),
            ("PAYMENT_CORE_API_KEY", OWN_KEY.into()),
        ]),
    );
    assert!(
        line.starts_with("PROVIDER_SECRET is a public development value: set it"),
        "{line}"
    );
    assert!(!line.contains(dev::PROVIDER_SECRET), "{line}");
    let line = refusal(
        "mock-provider",
        &env(&[
            ("PROVIDER_SECRET", OWN_SECRET.into()),
            ("PAYMENT_CORE_API_KEY", dev::PROVIDER_API_KEY.into()),
        ]),
    );
    assert!(
        line.starts_with("PAYMENT_CORE_API_KEY is a public development value"),
        "{line}"
    );
}

#[test]
fn a_credential_given_both_as_a_value_and_as_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, OWN_KEY).unwrap();
    let line = refusal(
        "mock-provider",
        &env(&[
            ("PROVIDER_SECRET", OWN_SECRET.into()),
            ("PAYMENT_CORE_API_KEY", OWN_KEY.into()),
            ("PAYMENT_CORE_API_KEY_FILE", key_file.display().to_string()),
        ]),
    );
    assert_eq!(
        line,
        "PAYMENT_CORE_API_KEY and PAYMENT_CORE_API_KEY_FILE are both set: keep one"
    );
}

#[tokio::test]
async fn the_secret_and_the_key_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        api_key_entry("page", "provider", "reader", OWN_KEY),
        api_key_entry("shop", "shop", "merchant", SHOP_KEY),
    ]
    .join(",");
    let core = testkit::start_payment_core_with(
        &dir.path().join("core.db"),
        OWN_SECRET,
        &[("PAYMENT_CORE_API_KEYS", keys)],
    );
    let write = |name: &str, content: &str| {
        let path = dir.path().join(name);
        // As a mounted secret holds it: with a trailing newline.
        std::fs::write(&path, format!("{content}\n")).unwrap();
        path.display().to_string()
    };
    let files = env(&[
        ("PAYMENT_CORE_URL", format!("http://{}", core.addr)),
        ("PROVIDER_SECRET_FILE", write("secret", OWN_SECRET)),
        ("PAYMENT_CORE_API_KEY_FILE", write("key", OWN_KEY)),
    ]);
    let provider = Process::start("mock-provider", &files);
    let http = reqwest::Client::new();

    // The page reads the order with the key from its file and reports
    // that the payer opened it, signed with the secret from its file.
    let paid = create(&core, SHOP_KEY).await;
    let (status, page) = get(&http, &provider_url(&provider, &format!("/pay/{paid}"))).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        !page.contains("dev-mode"),
        "marked outside development mode"
    );
    assert_eq!(status_of(&core, &paid).await, OrderStatus::Processing);
    let (status, page) = decide(&http, &provider, &paid, &[("decision", "pay")]).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(status_of(&core, &paid).await, OrderStatus::Succeeded);

    // The `report` command takes the same files.
    let declined = create(&core, SHOP_KEY).await;
    let output = report(&files, &[], &declined, "failed");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(status_of(&core, &declined).await, OrderStatus::Failed);
}

async fn status_of(core: &Process, order_id: &str) -> OrderStatus {
    status_as(core, SHOP_KEY, order_id).await
}

#[tokio::test]
async fn in_development_mode_it_starts_with_nothing_set_says_so_and_marks_the_payers_pages() {
    let dir = tempfile::tempdir().unwrap();
    let core = testkit::start_payment_core(&dir.path().join("core.db"), dev::PROVIDER_SECRET);
    let log = dir.path().join("provider.log");
    let provider = Process::start_logging_to(
        "mock-provider",
        &env(&[
            ("PAYMENTS_PUSH_DEV", "1".into()),
            ("PAYMENT_CORE_URL", format!("http://{}", core.addr)),
            ("LOG_FORMAT", "json".into()),
        ]),
        &log,
    );
    let http = reqwest::Client::new();
    let order = create(&core, dev::MERCHANT_API_KEY).await;
    let (status, page) = get(&http, &provider_url(&provider, &format!("/pay/{order}"))).await;
    assert_eq!(status, 200, "{page}");
    assert!(marked(&page), "no marker on the payment page:\n{page}");
    let (status, page) = decide(&http, &provider, &order, &[("decision", "pay")]).await;
    assert_eq!(status, 200, "{page}");
    assert!(marked(&page), "no marker on the result page:\n{page}");
    let (_, css) = get(&http, &provider_url(&provider, "/assets/mockpay.css")).await;
    assert!(css.contains(".dev-mode"), "the marker is styled");

    let text = std::fs::read_to_string(&log).unwrap();
    let banners: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("DEVELOPMENT MODE"))
        .collect();
    assert_eq!(banners.len(), 1, "one banner in:\n{text}");
    assert!(
        banners[0].contains("WARN") && banners[0].contains("PROVIDER_SECRET, PAYMENT_CORE_API_KEY"),
        "{}",
        banners[0]
    );

    // The `report` command takes `--dev` as well as the variable.
    let declined = create(&core, dev::MERCHANT_API_KEY).await;
    let output = report(
        &env(&[("PAYMENT_CORE_URL", format!("http://{}", core.addr))]),
        &["--dev"],
        &declined,
        "failed",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        status_as(&core, dev::MERCHANT_API_KEY, &declined).await,
        OrderStatus::Failed
    );
}
