//! CORS and foreign origins over real HTTP, with the real core behind:
//! listed origins may create orders and open streams, others are refused
//! before anything is created, and preflights are answered.

use serde_json::{Value, json};

use crate::helpers::{TestSystem, spawn_system_with};

const SHOP: &str = "https://shop.example";
const STRANGER: &str = "https://evil.example";

async fn spawn_with_allowed_shop() -> TestSystem {
    spawn_system_with(|config| config.allowed_origins = SHOP.into()).await
}

async fn create_from(system: &TestSystem, origin: &str) -> reqwest::Response {
    system
        .http
        .post(system.url("/api/orders"))
        .header("origin", origin)
        .json(&json!({"amount_minor": 1500, "currency": "EUR"}))
        .send()
        .await
        .expect("an answer")
}

/// How many orders the core holds, as the dashboard's backfill reads them.
async fn order_count(system: &TestSystem) -> usize {
    let mut client = testkit::connect_payments(format!("http://{}", system.core_addr()))
        .await
        .expect("core reachable");
    let page = client
        .list_events(payments_proto::payments::v1::ListEventsRequest::default())
        .await
        .expect("events")
        .into_inner();
    page.events.len()
}

#[tokio::test]
async fn a_listed_origin_creates_orders_and_opens_streams_with_cors_headers() {
    let system = spawn_with_allowed_shop().await;
    let created = create_from(&system, SHOP).await;
    assert_eq!(created.status(), 201);
    let headers = created.headers().clone();
    assert_eq!(headers["access-control-allow-origin"], SHOP);
    assert!(headers.get("access-control-allow-credentials").is_none());
    let order: Value = created.json().await.unwrap();

    // A cross-origin page sends the secret in a header (fetch) or asks for
    // a stream token (EventSource); no cookie is involved.
    let bearer = format!("Bearer {}", order["client_secret"].as_str().unwrap());
    let mut stream = system
        .open(
            order["events_url"].as_str().unwrap(),
            &[("Origin", SHOP), ("Authorization", &bearer)],
        )
        .await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.headers["access-control-allow-origin"], SHOP);
    assert_eq!(stream.expect_event_name().await, "created");
}

#[tokio::test]
async fn a_foreign_origin_is_refused_with_403_and_creates_nothing() {
    let system = spawn_with_allowed_shop().await;
    let before = order_count(&system).await;
    let refused = create_from(&system, STRANGER).await;
    assert_eq!(refused.status(), 403);
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let body: Value = refused.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "origin_not_allowed");
    assert_eq!(order_count(&system).await, before, "nothing was created");

    // Its page cannot open a stream either, even with a valid secret.
    let order = system.create_order(900, "").await;
    let mut stream = system
        .open(&order.events_url, &[("Origin", STRANGER)])
        .await;
    assert_eq!(stream.status, 403);
    assert!(stream.read_body().await.contains("origin_not_allowed"));
}

#[tokio::test]
async fn by_default_only_the_gateways_own_origin_is_served() {
    let system = spawn_system_with(|_| {}).await;
    let own = format!("http://{}", system.gateway.addr);
    assert_eq!(
        create_from(&system, &own).await.status(),
        201,
        "same origin"
    );
    assert_eq!(
        create_from(&system, SHOP).await.status(),
        403,
        "nothing is listed"
    );
}

#[tokio::test]
async fn preflights_are_answered_for_listed_origins_only() {
    let system = spawn_with_allowed_shop().await;
    let preflight = |origin: &'static str| {
        system
            .http
            .request(reqwest::Method::OPTIONS, system.url("/api/orders"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, idempotency-key",
            )
            .send()
    };
    let allowed = preflight(SHOP).await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(headers["access-control-allow-origin"], SHOP);
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{methods}"
    );
    let allowed_headers = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(
        allowed_headers.contains("content-type") && allowed_headers.contains("idempotency-key")
    );
    assert!(headers.get("access-control-allow-credentials").is_none());

    let refused = preflight(STRANGER).await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
