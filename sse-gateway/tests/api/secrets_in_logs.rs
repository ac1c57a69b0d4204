//! No secret, token or key in any log: the three services run as shipped
//! (not in development mode, credentials of this test's own), with JSON
//! logs at debug level for the project's crates, behind the project's
//! nginx. Payments go through every path a secret or token travels: the
//! create answer, a stream token, streams opened with the token and with
//! the secret as a bearer token, a read, the dashboard's sign-in and its
//! session cookie, the admin token as a bearer token, a client that still
//! puts its secret in the URL, the provider's signed report. Then every
//! log is searched for every one of them.

use std::path::Path;

use serde_json::{Value, json};
use testkit::{Process, nginx::Nginx, sse::SseConnection};

use crate::helpers::BOUND;

/// A fresh random credential with `prefix`.
fn credential(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

struct Credentials {
    provider_secret: String,
    admin_token: String,
    gateway_key: String,
    provider_key: String,
}

struct Shop {
    nginx: Nginx,
    _gateways: [Process; 2],
    _core: Process,
    provider: Process,
}

/// `extra` after what every service of this test gets.
fn common<'a>(extra: &[(&'a str, String)]) -> Vec<(&'a str, String)> {
    let mut env = vec![
        ("PAYMENTS_PUSH_DEV", "0".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        (
            "RUST_LOG",
            "info,payment_core=debug,sse_gateway=debug,mock_provider=debug,service_kit=debug"
                .to_owned(),
        ),
    ];
    env.extend(extra.iter().cloned());
    env
}

fn open_shop(logs: &Path, credentials: &Credentials) -> Shop {
    let provider_addr = testkit::reserve_address();
    let keys = [
        testkit::api_key_entry(
            "gateway",
            "shop",
            "merchant+gateway",
            &credentials.gateway_key,
        ),
        testkit::api_key_entry("provider", "provider", "reader", &credentials.provider_key),
    ]
    .join(",");
    let core = Process::start_logging_to(
        "payment-core",
        &common(&[
            (
                "DATABASE_URL",
                format!("sqlite://{}", logs.join("core.db").display()),
            ),
            ("PROVIDER_SECRET", credentials.provider_secret.clone()),
            ("PAYMENT_CORE_API_KEYS", keys),
            (
                "PROVIDER_PAGE_URL",
                format!("http://{}/pay", provider_addr.addr),
            ),
        ]),
        &logs.join("payment-core.log"),
    );
    let provider = Process::start_logging_to(
        "mock-provider",
        &common(&[
            ("PROVIDER_LISTEN", provider_addr.addr.to_string()),
            ("PAYMENT_CORE_URL", format!("http://{}", core.addr)),
            ("PROVIDER_SECRET", credentials.provider_secret.clone()),
            ("PAYMENT_CORE_API_KEY", credentials.provider_key.clone()),
        ]),
        &logs.join("mock-provider.log"),
    );
    let gateway = |instance: &str| {
        Process::start_logging_to(
            "sse-gateway",
            &common(&[
                ("GATEWAY_INSTANCE", instance.to_owned()),
                ("PAYMENT_CORE_URL", format!("http://{}", core.addr)),
                ("ADMIN_TOKEN", credentials.admin_token.clone()),
                ("PAYMENT_CORE_API_KEY", credentials.gateway_key.clone()),
            ]),
            &logs.join(format!("{instance}.log")),
        )
    };
    let gateways = [gateway("gateway-1"), gateway("gateway-2")];
    let nginx = Nginx::start([gateways[0].addr, gateways[1].addr], &[]);
    Shop {
        nginx,
        _gateways: gateways,
        _core: core,
        provider,
    }
}

/// Pays one order through every path its secret and tokens take; answers
/// the secrets it saw: the client secret, the stream token, the session.
async fn pay_one_order(shop: &Shop, admin_token: &str) -> (String, Vec<String>) {
    let http = reqwest::Client::new();
    let site = format!("http://{}", shop.nginx.addr);
    let created: Value = testkit::eventually_within(BOUND, "an order through nginx", || async {
        let answer = http
            .post(format!("{site}/api/orders"))
            .json(&json!({ "amount_minor": 4100, "currency": "EUR", "description": "logs" }))
            .send()
            .await
            .ok()?;
        (answer.status() == 201).then_some(answer.json().await.ok()?)
    })
    .await;
    let order_id = created["order_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {secret}");

    let token: Value = http
        .post(format!("{site}/api/orders/{order_id}/stream-tokens"))
        .json(&json!({ "client_secret": secret }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stream_token = token["stream_token"].as_str().unwrap().to_owned();
    let mut by_token =
        SseConnection::open(shop.nginx.addr, token["events_url"].as_str().unwrap(), &[])
            .await
            .unwrap();
    let mut by_header = SseConnection::open(
        shop.nginx.addr,
        created["events_url"].as_str().unwrap(),
        &[("Authorization", &bearer)],
    )
    .await
    .unwrap();
    assert_eq!((by_token.status, by_header.status), (200, 200));
    assert_eq!(by_token.expect_event_name().await, "created");
    assert_eq!(by_header.expect_event_name().await, "created");
    let read = http
        .get(format!("{site}/api/orders/{order_id}"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    // A client that still puts the secret in the URL: refused, and logged
    // nowhere either.
    let in_url = http
        .get(format!(
            "{site}/api/orders/{order_id}?client_secret={secret}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(in_url.status(), 400);

    let signed_in = http
        .post(format!("{site}/api/dashboard/session"))
        .form(&[("token", admin_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 204);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    let session = cookie.split(';').next().unwrap().to_owned();
    let dashboard = SseConnection::open(shop.nginx.addr, "/api/events", &[("Cookie", &session)])
        .await
        .unwrap();
    assert_eq!(dashboard.status, 200);
    let admin_bearer = format!("Bearer {admin_token}");
    let by_admin = SseConnection::open(
        shop.nginx.addr,
        "/api/events",
        &[("Authorization", &admin_bearer)],
    )
    .await
    .unwrap();
    assert_eq!(by_admin.status, 200);

    // The payer pays on the provider's page, which signs its report.
    let pay_page = format!("http://{}/pay/{order_id}", shop.provider.addr);
    let page = http.get(&pay_page).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let decided = http
        .post(&pay_page)
        .form(&[("decision", "pay")])
        .send()
        .await
        .unwrap();
    assert_eq!(decided.status(), 200);
    for stream in [&mut by_token, &mut by_header] {
        assert_eq!(stream.expect_event_name().await, "processing");
        assert_eq!(stream.expect_event_name().await, "succeeded");
    }
    let session_value = session.split_once('=').unwrap().1.to_owned();
    (order_id, vec![secret, stream_token, session_value])
}

#[tokio::test]
async fn no_log_of_any_service_or_of_nginx_holds_a_secret_token_or_key() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = Credentials {
        provider_secret: credential("provider-secret-"),
        admin_token: credential("admin-token-"),
        gateway_key: credential("pcore_gateway_"),
        provider_key: credential("pcore_provider_"),
    };
    let shop = open_shop(dir.path(), &credentials);
    let mut secrets = vec![
        credentials.provider_secret.clone(),
        credentials.admin_token.clone(),
        credentials.gateway_key.clone(),
        credentials.provider_key.clone(),
    ];
    let (order_id, used) = pay_one_order(&shop, &credentials.admin_token).await;
    secrets.extend(used);

    let mut logs = vec![
        ("nginx access log", shop.nginx.access_log()),
        ("nginx error log", shop.nginx.error_log()),
    ];
    for service in ["payment-core", "mock-provider", "gateway-1", "gateway-2"] {
        let log = std::fs::read_to_string(dir.path().join(format!("{service}.log"))).unwrap();
        logs.push((service, log));
    }
    // The search means something: the logs are there, and they name the
    // order the secrets belong to.
    for (name, log) in &logs[..1] {
        assert!(log.contains(&order_id), "{name} names the order:\n{log}");
    }
    for service in ["payment-core", "mock-provider"] {
        let log = &logs.iter().find(|(name, _)| *name == service).unwrap().1;
        assert!(log.contains(&order_id), "{service} names the order:\n{log}");
        assert!(
            log.lines()
                .all(|line| serde_json::from_str::<Value>(line).is_ok())
        );
    }
    for (name, log) in &logs {
        for secret in &secrets {
            assert!(
                !log.contains(secret.as_str()),
                "the {name} holds a secret ({}…):\n{log}",
                &secret[..8]
            );
        }
    }
}
