//! The built binary's credentials: outside development mode a missing,
//! public or doubly given credential stops it with one line on stderr
//! (exit 78); each can come from its `NAME_FILE`; in development mode it
//! starts with none and logs the banner that says so.

use std::path::Path;

use payments_proto::{contract::dev, payments::v1 as pb};
use testkit::{Process, api_key_entry, refusal};
use tonic::Code;

const OWN_SECRET: &str = "a-provider-secret-of-our-own";
const OWN_KEY: &str = "a-merchant-key-of-our-own";

/// Development mode off and every credential unset (empty counts as unset,
/// and overrides what the test's own environment may hold), over a database
/// in `dir`; then `extra`.
fn env(dir: &Path, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = [
        "PROVIDER_SECRET",
        "PROVIDER_SECRET_FILE",
        "PAYMENT_CORE_API_KEYS",
        "PAYMENT_CORE_API_KEYS_FILE",
        "DATABASE_URL_FILE",
    ]
    .into_iter()
    .map(|name| (name, String::new()))
    .collect();
    env.push(("PAYMENTS_PUSH_DEV", "0".to_owned()));
    env.push((
        "DATABASE_URL",
        format!("sqlite://{}", dir.join("core.db").display()),
    ));
    env.extend(extra.iter().cloned());
    env
}

fn own_keys() -> String {
    api_key_entry("shop", "shop", "merchant", OWN_KEY)
}

fn create_request() -> pb::CreateOrderRequest {
    pb::CreateOrderRequest {
        amount_minor: 1250,
        currency: "EUR".into(),
        description: "credentials".into(),
        idempotency_key: String::new(),
    }
}

#[test]
fn without_development_mode_a_missing_credential_is_refused_in_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let line = refusal("payment-core", &env(dir.path(), &[]));
    assert!(
        line.starts_with("PROVIDER_SECRET is not set: set it (or PROVIDER_SECRET_FILE) to")
            && line.contains("openssl rand -hex 32")
            && line.contains("PAYMENTS_PUSH_DEV=1"),
        "{line}"
    );
    let line = refusal(
        "payment-core",
        &env(dir.path(), &[("PROVIDER_SECRET", OWN_SECRET.into())]),
    );
    assert!(
        line.starts_with(
            "PAYMENT_CORE_API_KEYS is not set: set it (or PAYMENT_CORE_API_KEYS_FILE)"
        ) && line.contains("payment-core api-key --name"),
        "{line}"
    );
    assert!(
        !dir.path().join("core.db").exists(),
        "refused before opening the store"
    );
}

#[test]
fn without_development_mode_a_public_development_value_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let line = refusal(
        "payment-core",
        &env(
            dir.path(),
            &[
                ("PROVIDER_SECRET", dev::PROVIDER_SECRET.into()),
                ("PAYMENT_CORE_API_KEYS", own_keys()),
            ],
        ),
    );
    assert!(
        line.starts_with("PROVIDER_SECRET is a public development value: set it"),
        "{line}"
    );
    // A public key among keys of one's own is refused as well.
    let keys = [
        own_keys(),
        api_key_entry("left-over", "shop", "merchant", dev::MERCHANT_API_KEY),
    ]
    .join(",");
    let line = refusal(
        "payment-core",
        &env(
            dir.path(),
            &[
                ("PROVIDER_SECRET", OWN_SECRET.into()),
                ("PAYMENT_CORE_API_KEYS", keys),
            ],
        ),
    );
    assert!(
        line.starts_with("PAYMENT_CORE_API_KEYS holds public development keys (left-over)"),
        "{line}"
    );
    assert!(!line.contains(dev::MERCHANT_API_KEY), "{line}");
}

#[test]
fn a_credential_given_both_as_a_value_and_as_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("provider-secret");
    std::fs::write(&secret_file, OWN_SECRET).unwrap();
    let line = refusal(
        "payment-core",
        &env(
            dir.path(),
            &[
                ("PROVIDER_SECRET", OWN_SECRET.into()),
                ("PROVIDER_SECRET_FILE", secret_file.display().to_string()),
                ("PAYMENT_CORE_API_KEYS", own_keys()),
            ],
        ),
    );
    assert_eq!(
        line,
        "PROVIDER_SECRET and PROVIDER_SECRET_FILE are both set: keep one"
    );
    let url_file = dir.path().join("database-url");
    std::fs::write(&url_file, "sqlite://elsewhere.db").unwrap();
    let line = refusal(
        "payment-core",
        &env(
            dir.path(),
            &[
                ("PROVIDER_SECRET", OWN_SECRET.into()),
                ("PAYMENT_CORE_API_KEYS", own_keys()),
                ("DATABASE_URL_FILE", url_file.display().to_string()),
            ],
        ),
    );
    assert_eq!(
        line,
        "DATABASE_URL and DATABASE_URL_FILE are both set: keep one"
    );
}

#[tokio::test]
async fn every_credential_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, content: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    };
    let database = dir.path().join("from-a-file.db");
    let log = dir.path().join("core.log");
    let mut core = Process::start_logging_to(
        "payment-core",
        &env(
            dir.path(),
            &[
                // As a mounted secret holds it: with a trailing newline.
                (
                    "PROVIDER_SECRET_FILE",
                    write("provider-secret", format!("{OWN_SECRET}\n")),
                ),
                (
                    "PAYMENT_CORE_API_KEYS_FILE",
                    write("keys", format!("# ours\n{}\n", own_keys())),
                ),
                ("DATABASE_URL", String::new()),
                (
                    "DATABASE_URL_FILE",
                    write("database-url", format!("sqlite://{}\n", database.display())),
                ),
            ],
        ),
        &log,
    );
    let url = format!("http://{}", core.addr);
    let order = testkit::payments_client_at(&url, OWN_KEY)
        .create_order(create_request())
        .await
        .expect("the key from the file is accepted")
        .into_inner()
        .order
        .unwrap();
    let forged = testkit::report_signed_with(
        core.addr,
        testkit::PROVIDER_SECRET,
        &order.order_id,
        pb::PaymentOutcome::Succeeded,
        "",
    )
    .await;
    assert_eq!(forged.unwrap_err().code(), Code::Unauthenticated);
    let reported = testkit::report_signed_with(
        core.addr,
        OWN_SECRET,
        &order.order_id,
        pb::PaymentOutcome::Succeeded,
        "",
    )
    .await
    .expect("a report signed with the secret from the file is accepted");
    assert_eq!(reported.order.unwrap().status(), pb::OrderStatus::Succeeded);
    core.kill();

    let stored: String = rusqlite::Connection::open(&database)
        .expect("the database the file names")
        .query_row(
            "SELECT status FROM orders WHERE order_id = ?1",
            [&order.order_id],
            |row| row.get(0),
        )
        .expect("the order is in it");
    assert_eq!(stored, "succeeded");
    assert!(
        !dir.path().join("core.db").exists(),
        "DATABASE_URL is unset"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("DEVELOPMENT MODE"), "{text}");
}

#[tokio::test]
async fn in_development_mode_it_starts_with_nothing_set_and_logs_the_banner() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("core.log");
    let core = Process::start_logging_to(
        "payment-core",
        &env(
            dir.path(),
            &[
                ("PAYMENTS_PUSH_DEV", "1".into()),
                ("LOG_FORMAT", "json".into()),
            ],
        ),
        &log,
    );
    let order =
        testkit::payments_client_at(&format!("http://{}", core.addr), dev::MERCHANT_API_KEY)
            .create_order(create_request())
            .await
            .expect("the public merchant key is accepted")
            .into_inner()
            .order
            .unwrap();
    testkit::report_signed_with(
        core.addr,
        dev::PROVIDER_SECRET,
        &order.order_id,
        pb::PaymentOutcome::Succeeded,
        "",
    )
    .await
    .expect("a report signed with the public secret is accepted");

    let text = std::fs::read_to_string(&log).unwrap();
    let banners: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| {
            line["fields"]["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("DEVELOPMENT MODE"))
        })
        .collect();
    assert_eq!(banners.len(), 1, "one banner in:\n{text}");
    assert_eq!(banners[0]["level"], "WARN");
    let public = banners[0]["fields"]["public_credentials"]
        .as_str()
        .unwrap_or_default();
    assert!(
        public.contains("PROVIDER_SECRET")
            && public.contains("PAYMENT_CORE_API_KEYS (dev-gateway, dev-merchant, dev-provider)"),
        "{public}"
    );
}
