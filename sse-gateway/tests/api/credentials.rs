//! The built gateway's credentials: outside development mode a missing,
//! public or doubly given credential stops it with one line on stderr
//! (exit 78); each can come from its `NAME_FILE`; in development mode it
//! starts with none, logs the banner that says so, and its pages show it.

use std::{net::SocketAddr, time::Duration};

use payments_proto::contract::dev;
use service_kit::credentials::DEV_MODE_MARKER;
use testkit::{Process, api_key_entry, eventually, refusal, sse::SseConnection};

use crate::helpers::create_order;

const OWN_KEY: &str = "a-gateway-key-of-our-own";
const OWN_TOKEN: &str = "an-admin-token-of-our-own";

/// Development mode off and every credential unset (empty counts as unset,
/// and overrides what the test's own environment may hold); then `extra`.
fn env(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = [
        "PAYMENT_CORE_API_KEY",
        "PAYMENT_CORE_API_KEY_FILE",
        "ADMIN_TOKEN",
        "ADMIN_TOKEN_FILE",
    ]
    .into_iter()
    .map(|name| (name, String::new()))
    .collect();
    env.push(("PAYMENTS_PUSH_DEV", "0".to_owned()));
    env.push(("PAYMENT_CORE_URL", "http://127.0.0.1:1".to_owned()));
    env.extend(extra.iter().cloned());
    env
}

async fn wait_ready(http: &reqwest::Client, gateway: SocketAddr) {
    let url = format!("http://{gateway}/readyz");
    eventually("the gateway's stream from the core opens", || async {
        let answer = http.get(&url).send().await;
        answer
            .is_ok_and(|answer| answer.status() == 200)
            .then_some(())
    })
    .await;
}

async fn page(http: &reqwest::Client, gateway: SocketAddr, path: &str) -> String {
    let answer = http
        .get(format!("http://{gateway}{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{path}");
    answer.text().await.unwrap()
}

/// The status `/api/events` answers `Authorization: Bearer <token>` with.
async fn dashboard_stream_status(gateway: SocketAddr, token: &str) -> u16 {
    let bearer = format!("Bearer {token}");
    let stream = tokio::time::timeout(
        Duration::from_secs(10),
        SseConnection::open(gateway, "/api/events", &[("Authorization", &bearer)]),
    )
    .await
    .expect("the gateway answers")
    .expect("an answer");
    stream.status
}

#[test]
fn without_development_mode_a_missing_credential_is_refused_in_one_line_naming_it() {
    let line = refusal("sse-gateway", &env(&[]));
    assert!(
        line.starts_with(
            "PAYMENT_CORE_API_KEY is not set: set it (or PAYMENT_CORE_API_KEY_FILE) to"
        ) && line.contains("payment-core api-key --name gateway")
            && line.contains("PAYMENTS_PUSH_DEV=1"),
        "{line}"
    );
    let line = refusal(
        "sse-gateway",
        &env(&[("PAYMENT_CORE_API_KEY", OWN_KEY.into())]),
    );
    assert!(
        line.starts_with("ADMIN_TOKEN is not set: set it (or ADMIN_TOKEN_FILE) to")
            && line.contains("openssl rand -hex 32"),
        "{line}"
    );
}

#[test]
fn without_development_mode_a_public_development_value_is_refused() {
    let line = refusal(
        "sse-gateway",
        &env(&[
            ("PAYMENT_CORE_API_KEY", OWN_KEY.into()),
            ("ADMIN_TOKEN", dev::ADMIN_TOKEN.into()),
        ]),
    );
    assert!(
        line.starts_with("ADMIN_TOKEN is a public development value: set it"),
        "{line}"
    );
    // Any public value, also one made for another credential.
    for public in [dev::GATEWAY_API_KEY, dev::MERCHANT_API_KEY] {
        let line = refusal(
            "sse-gateway",
            &env(&[
                ("PAYMENT_CORE_API_KEY", public.into()),
                ("ADMIN_TOKEN", OWN_TOKEN.into()),
            ]),
        );
        assert!(
            line.starts_with("PAYMENT_CORE_API_KEY is a public development value"),
            "{line}"
        );
        assert!(!line.contains(public), "{line}");
    }
}

#[test]
fn a_credential_given_both_as_a_value_and_as_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, OWN_TOKEN).unwrap();
    let line = refusal(
        "sse-gateway",
        &env(&[
            ("PAYMENT_CORE_API_KEY", OWN_KEY.into()),
            ("ADMIN_TOKEN", OWN_TOKEN.into()),
            ("ADMIN_TOKEN_FILE", token_file.display().to_string()),
        ]),
    );
    assert_eq!(
        line,
        "ADMIN_TOKEN and ADMIN_TOKEN_FILE are both set: keep one"
    );
}

#[tokio::test]
async fn the_key_and_the_admin_token_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let core = testkit::start_payment_core_with(
        &dir.path().join("core.db"),
        testkit::PROVIDER_SECRET,
        &[(
            "PAYMENT_CORE_API_KEYS",
            api_key_entry("edge", "shop", "merchant+gateway", OWN_KEY),
        )],
    );
    let write = |name: &str, content: &str| {
        let path = dir.path().join(name);
        // As a mounted secret holds it: with a trailing newline.
        std::fs::write(&path, format!("{content}\n")).unwrap();
        path.display().to_string()
    };
    let gateway = Process::start(
        "sse-gateway",
        &env(&[
            ("PAYMENT_CORE_URL", format!("http://{}", core.addr)),
            ("PAYMENT_CORE_API_KEY_FILE", write("key", OWN_KEY)),
            ("ADMIN_TOKEN_FILE", write("token", OWN_TOKEN)),
        ]),
    );
    let http = reqwest::Client::new();
    // Its stream of every order's events opens, and a checkout creates:
    // the core accepts the key from the file.
    wait_ready(&http, gateway.addr).await;
    create_order(&http, gateway.addr, 500, "with our own key").await;
    assert_eq!(dashboard_stream_status(gateway.addr, OWN_TOKEN).await, 200);
    assert_eq!(
        dashboard_stream_status(gateway.addr, dev::ADMIN_TOKEN).await,
        401
    );
    for path in ["/", "/dashboard"] {
        let html = page(&http, gateway.addr, path).await;
        assert!(!html.contains("dev-mode"), "{path} is marked");
    }
}

#[tokio::test]
async fn in_development_mode_it_starts_with_nothing_set_says_so_and_marks_its_pages() {
    let dir = tempfile::tempdir().unwrap();
    let core = testkit::start_payment_core(&dir.path().join("core.db"), testkit::PROVIDER_SECRET);
    let log = dir.path().join("gateway.log");
    let gateway = Process::start_logging_to(
        "sse-gateway",
        &env(&[
            ("PAYMENTS_PUSH_DEV", "1".into()),
            ("PAYMENT_CORE_URL", format!("http://{}", core.addr)),
            ("LOG_FORMAT", "json".into()),
        ]),
        &log,
    );
    let http = reqwest::Client::new();
    wait_ready(&http, gateway.addr).await;
    create_order(&http, gateway.addr, 500, "with the public key").await;
    assert_eq!(
        dashboard_stream_status(gateway.addr, dev::ADMIN_TOKEN).await,
        200
    );
    for path in ["/", "/dashboard"] {
        let html = page(&http, gateway.addr, path).await;
        let (_, body) = html.split_once("<body").expect("a body");
        let (_, inside) = body.split_once('>').expect("the tag ends");
        assert!(
            inside.trim_start().starts_with(DEV_MODE_MARKER),
            "{path}: no marker right after <body>"
        );
    }
    let css = page(&http, gateway.addr, "/assets/style.css").await;
    assert!(css.contains(".dev-mode"), "the marker is styled");

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
    assert_eq!(
        banners[0]["fields"]["public_credentials"],
        "PAYMENT_CORE_API_KEY, ADMIN_TOKEN"
    );
}
