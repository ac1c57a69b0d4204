//! The JSON API, pages and operational endpoints over real HTTP, with the
//! real payment-core behind the gateway.

use serde_json::{Value, json};
use testkit::eventually;

use crate::helpers::{sample, spawn_system};

async fn error_of(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("errors are JSON");
    (
        status,
        body["error"]["code"].as_str().unwrap().to_owned(),
        body["error"]["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn creating_an_order_answers_201_with_everything_the_checkout_needs() {
    let system = spawn_system().await;
    let order = system
        .create_order(1999, "Ethiopia Yirgacheffe, 250 g")
        .await;
    let body = &order.body;
    assert_eq!(body["status"], "created");
    assert_eq!(body["amount_minor"], 1999);
    assert_eq!(body["currency"], "EUR");
    assert!(
        body["payment_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/pay/{}", order.order_id))
    );
    assert_eq!(
        order.events_url,
        format!(
            "/api/orders/{}/events?client_secret={}",
            order.order_id, order.client_secret
        )
    );
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));

    let fetched = system
        .http
        .get(system.url(&format!(
            "/api/orders/{}?client_secret={}",
            order.order_id, order.client_secret
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), 200);
    let fetched: Value = fetched.json().await.unwrap();
    assert_eq!(fetched["order_id"], order.body["order_id"]);
}

#[tokio::test]
async fn the_idempotency_key_header_makes_creation_safe_to_retry() {
    let system = spawn_system().await;
    let post = |body: Value| {
        system
            .http
            .post(system.url("/api/orders"))
            .header("Idempotency-Key", "checkout-attempt-1")
            .json(&body)
            .send()
    };
    let first: Value = post(json!({"amount_minor": 500, "currency": "USD"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let again = post(json!({"amount_minor": 500, "currency": "USD"}))
        .await
        .unwrap();
    assert_eq!(again.status(), 201);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["order_id"], again["order_id"]);
    let (status, code, message) = error_of(
        post(json!({"amount_minor": 501, "currency": "USD"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (409, "idempotency_conflict"));
    assert!(message.contains("idempotency_key"), "{message}");
}

#[tokio::test]
async fn bad_input_gets_the_right_4xx_with_a_json_error_and_creates_nothing() {
    let system = spawn_system().await;
    let url = system.url("/api/orders");
    let cases: Vec<(reqwest::RequestBuilder, u16, &str, &str)> = vec![
        (
            system
                .http
                .post(&url)
                .json(&json!({"amount_minor": 0, "currency": "EUR"})),
            400,
            "invalid_request",
            "amount_minor",
        ),
        (
            system
                .http
                .post(&url)
                .json(&json!({"amount_minor": -1, "currency": "EUR"})),
            400,
            "invalid_request",
            "amount_minor",
        ),
        (
            system
                .http
                .post(&url)
                .json(&json!({"amount_minor": 1, "currency": "EURO"})),
            400,
            "invalid_request",
            "currency",
        ),
        (
            system.http.post(&url).json(
                &json!({"amount_minor": 1, "currency": "EUR", "description": "x".repeat(501)}),
            ),
            400,
            "invalid_request",
            "description",
        ),
        (
            system
                .http
                .post(&url)
                .json(&json!({"amount_minor": "ten", "currency": "EUR"})),
            400,
            "invalid_request",
            "amount_minor",
        ),
        (
            system.http.post(&url).json(&json!({"currency": "EUR"})),
            400,
            "invalid_request",
            "amount_minor",
        ),
        (
            system
                .http
                .post(&url)
                .json(&json!({"amount_minor": 1, "currency": "EUR", "amount": 2})),
            400,
            "invalid_request",
            "amount",
        ),
        (
            system
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "invalid_request",
            "",
        ),
        (
            system
                .http
                .post(&url)
                .header("content-type", "text/plain")
                .body("{}"),
            415,
            "unsupported_media_type",
            "JSON",
        ),
        (
            system.http.post(&url).body("{}"),
            415,
            "unsupported_media_type",
            "JSON",
        ),
        (
            system
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body(format!("{{\"description\":\"{}\"}}", "x".repeat(20_000))),
            413,
            "payload_too_large",
            "",
        ),
        (
            system
                .http
                .post(&url)
                .header("Idempotency-Key", "k".repeat(300))
                .json(&json!({"amount_minor": 1, "currency": "EUR"})),
            400,
            "invalid_request",
            "idempotency_key",
        ),
    ];
    for (request, status, code, mentions) in cases {
        let (got_status, got_code, message) = error_of(request.send().await.unwrap()).await;
        assert_eq!((got_status, got_code.as_str()), (status, code), "{message}");
        assert!(
            message.contains(mentions),
            "`{message}` should mention `{mentions}`"
        );
    }
    let metrics = system.metrics().await;
    assert_eq!(
        sample(&metrics, "sse_gateway_upstream_events_total"),
        Some(0.0),
        "no order was created:\n{metrics}"
    );
}

#[tokio::test]
async fn reading_an_order_needs_its_secret_and_a_valid_id() {
    let system = spawn_system().await;
    let order = system.create_order(100, "").await;
    for (path, status) in [
        (
            format!("/api/orders/{}?client_secret=cs_wrong", order.order_id),
            404,
        ),
        (format!("/api/orders/{}", order.order_id), 404),
        (
            format!(
                "/api/orders/{}?client_secret={}",
                uuid::Uuid::new_v4(),
                order.client_secret
            ),
            404,
        ),
        (
            format!(
                "/api/orders/not-a-uuid?client_secret={}",
                order.client_secret
            ),
            400,
        ),
        ("/api/nothing-here".to_owned(), 404),
    ] {
        let (got, code, _) =
            error_of(system.http.get(system.url(&path)).send().await.unwrap()).await;
        assert_eq!(got, status, "{path} ({code})");
    }
}

#[tokio::test]
async fn pages_health_and_metrics_are_served() {
    let system = spawn_system().await;
    for (path, content_type, marker) in [
        ("/", "text/html", "id=\"pay-button\""),
        ("/dashboard", "text/html", "id=\"orders\""),
        ("/assets/style.css", "text/css", "{"),
        ("/healthz", "text/plain", "ok"),
        ("/readyz", "text/plain", "ready"),
        (
            "/metrics",
            "application/openmetrics-text",
            "sse_gateway_upstream_up{gateway=\"test-gateway\"} 1",
        ),
    ] {
        let response = system.http.get(system.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["x-gateway-instance"], "test-gateway");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type),
            "{path}"
        );
        assert!(response.text().await.unwrap().contains(marker), "{path}");
    }
}

#[tokio::test]
async fn readiness_follows_the_upstream_stream() {
    let mut system = spawn_system().await;
    system.kill_core();
    eventually("not ready while payment-core is down", || async {
        let ready = system.http.get(system.url("/readyz")).send().await;
        ready
            .is_ok_and(|answer| answer.status() == 503)
            .then_some(())
    })
    .await;
    assert_eq!(
        system
            .http
            .get(system.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "still alive"
    );
    system.restart_core();
    system.gateway.wait_ready().await;
}
