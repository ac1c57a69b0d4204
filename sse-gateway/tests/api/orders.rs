//! The JSON API, pages and operational endpoints over real HTTP, with the
//! real payment-core behind the gateway.

use serde_json::{Value, json};
use testkit::eventually;

use crate::helpers::{ADMIN_TOKEN, sample, spawn_system};
use std::time::Duration;

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
        order.plain_events_url,
        format!("/api/orders/{}/events", order.order_id),
        "no secret in any URL"
    );
    assert_eq!(
        body["stream_tokens_url"],
        format!("/api/orders/{}/stream-tokens", order.order_id)
    );
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));

    let fetched = system
        .http
        .get(system.url(&format!("/api/orders/{}", order.order_id)))
        .header("authorization", order.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), 200);
    let fetched: Value = fetched.json().await.unwrap();
    assert_eq!(fetched["order_id"], order.body["order_id"]);
    assert_eq!(
        fetched["client_secret"],
        Value::Null,
        "handed out once, at creation"
    );
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
    let path = format!("/api/orders/{}", order.order_id);
    let token_query = order.events_url.split_once('?').unwrap().1.to_owned();
    let cases = [
        (path.clone(), Some("Bearer cs_wrong".to_owned()), 404),
        (path.clone(), None, 401),
        (
            format!("/api/orders/{}", uuid::Uuid::new_v4()),
            Some(order.bearer()),
            404,
        ),
        (
            "/api/orders/not-a-uuid".to_owned(),
            Some(order.bearer()),
            400,
        ),
        ("/api/nothing-here".to_owned(), None, 404),
        // A stream token reads its own order, and only it.
        (format!("{path}?{token_query}"), None, 200),
        (
            format!("/api/orders/{}?{token_query}", uuid::Uuid::new_v4()),
            None,
            401,
        ),
    ];
    for (path, authorization, status) in cases {
        let mut request = system.http.get(system.url(&path));
        if let Some(value) = &authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        let got = response.status().as_u16();
        assert_eq!(got, status, "{path} {authorization:?}");
    }
}

#[tokio::test]
async fn a_client_secret_or_admin_token_in_a_url_is_refused_with_what_to_use_instead() {
    let system = spawn_system().await;
    let order = system.create_order(100, "").await;
    let secret_in = |path: String| format!("{path}?client_secret={}", order.client_secret);
    for path in [
        secret_in(format!("/api/orders/{}", order.order_id)),
        secret_in(order.plain_events_url.clone()),
    ] {
        // Refused even with the right secret in the header as well.
        let response = system
            .http
            .get(system.url(&path))
            .header("authorization", order.bearer())
            .send()
            .await
            .unwrap();
        let (status, code, message) = error_of(response).await;
        assert_eq!((status, code.as_str()), (400, "invalid_request"), "{path}");
        assert!(message.contains("Authorization: Bearer"), "{message}");
        assert!(message.contains("stream-tokens"), "{message}");
    }
    let mut stream = system
        .open(&secret_in(order.plain_events_url.clone()), &[])
        .await;
    assert_eq!(
        stream.status, 400,
        "the raw event-stream path refuses it too"
    );
    assert!(stream.read_body().await.contains("must not be in a URL"));

    let response = system
        .http
        .get(system.url(&format!("/api/events?token={ADMIN_TOKEN}")))
        .send()
        .await
        .unwrap();
    let (status, _, message) = error_of(response).await;
    assert_eq!(status, 400);
    assert!(message.contains("POST /api/dashboard/session"), "{message}");
}

#[tokio::test]
async fn a_stream_token_is_had_for_the_secret_in_a_body_and_expires() {
    let system = spawn_system().await;
    let order = system.create_order(100, "").await;
    let tokens = format!("/api/orders/{}/stream-tokens", order.order_id);
    let post = |path: String, body: Value| {
        let request = system.http.post(system.url(&path)).json(&body);
        async move { request.send().await.unwrap() }
    };
    let wrong = post(tokens.clone(), json!({ "client_secret": "cs_wrong" })).await;
    assert_eq!(wrong.status(), 401, "a wrong secret looks like no order");
    let unknown = post(
        format!("/api/orders/{}/stream-tokens", uuid::Uuid::new_v4()),
        json!({ "client_secret": order.client_secret }),
    )
    .await;
    assert_eq!(unknown.status(), 401);
    for bad in [
        json!({}),
        json!({ "client_secret": 5 }),
        json!({ "secret": "x" }),
    ] {
        assert_eq!(
            post(tokens.clone(), bad.clone()).await.status(),
            400,
            "{bad}"
        );
    }
    let granted = post(
        tokens.clone(),
        json!({ "client_secret": order.client_secret }),
    )
    .await;
    assert_eq!(granted.status(), 201);
    let granted: Value = granted.json().await.unwrap();
    let token = granted["stream_token"].as_str().unwrap();
    assert!(!token.contains(&order.client_secret));
    assert!(
        granted["events_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("?stream_token={token}"))
    );

    // One signed by the same deployment, but already expired.
    let order_id = sse_gateway::event::OrderId::parse(&order.order_id).unwrap();
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    let (expired, _) = sse_gateway::access::Signer::new(ADMIN_TOKEN).stream_token(
        order_id,
        an_hour_ago,
        Duration::from_secs(300),
    );
    let mut stream = system
        .open(
            &format!("{}?stream_token={expired}", order.plain_events_url),
            &[],
        )
        .await;
    assert_eq!(stream.status, 401);
    assert!(stream.read_body().await.contains("expired"));
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
