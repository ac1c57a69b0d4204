//! The router driven in-process with `oneshot`: the answers that need no
//! payment-core at all (pages, refused requests), so they hold even when
//! the core is down.

use axum::{
    body::{Body, to_bytes},
    http::{Request, StatusCode},
};
use tower::ServiceExt;

use crate::helpers::router_without_core;

async fn call(request: Request<Body>) -> (StatusCode, String) {
    let response = router_without_core()
        .oneshot(request)
        .await
        .expect("router answers");
    let status = response.status();
    let body = to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn post_orders(content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut request = Request::post("/api/orders");
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.body(body.into()).unwrap()
}

#[tokio::test]
async fn the_checkout_page_is_served_without_the_core() {
    let (status, body) = call(Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#"from "/sdk/payments-push.js""#));
}

#[tokio::test]
async fn the_client_module_and_its_types_are_served_to_any_origin_and_revalidated() {
    for (path, content_type, marker) in [
        (
            "/sdk/payments-push.js",
            "text/javascript; charset=utf-8",
            "export function watchPayment(",
        ),
        (
            "/sdk/payments-push.d.ts",
            "application/typescript; charset=utf-8",
            "export function watchPayment(options: WatchOptions): Watch;",
        ),
    ] {
        let request = || {
            Request::get(path)
                .header("origin", "https://shop.example")
                .body(Body::empty())
                .unwrap()
        };
        let response = router_without_core()
            .oneshot(request())
            .await
            .expect("router answers");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], content_type);
        assert_eq!(headers["access-control-allow-origin"], "*", "{path}");
        assert_eq!(headers["cache-control"], "no-cache");
        let etag = headers["etag"].clone();
        let body = to_bytes(response.into_body(), 1 << 20).await.expect("body");
        assert!(String::from_utf8_lossy(&body).contains(marker), "{path}");

        // The same version again: 304, no body.
        let mut again = request();
        again.headers_mut().insert("if-none-match", etag.clone());
        let response = router_without_core()
            .oneshot(again)
            .await
            .expect("router answers");
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(response.headers()["etag"], etag);
        // Another version: the body.
        let mut other = request();
        other
            .headers_mut()
            .insert("if-none-match", "\"other\"".parse().unwrap());
        let response = router_without_core()
            .oneshot(other)
            .await
            .expect("router answers");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn malformed_requests_are_refused_before_reaching_the_core() {
    let cases = [
        (
            post_orders(None, "{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post_orders(Some("application/json"), "[1,"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post_orders(Some("application/json"), vec![b' '; 17 * 1024]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            Request::get("/api/orders/123/events")
                .header("authorization", "Bearer cs_x")
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Request::get("/api/events").body(Body::empty()).unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Request::get("/api/unknown").body(Body::empty()).unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (request, status, code) in cases {
        let uri = request.uri().clone();
        let (got, body) = call(request).await;
        assert_eq!(got, status, "{uri}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON error body");
        assert_eq!(json["error"]["code"], code, "{uri}");
    }
}

#[tokio::test]
async fn an_unreachable_core_is_a_503_for_the_api_and_a_retry_for_event_streams() {
    let (status, body) = call(post_orders(
        Some("application/json"),
        r#"{"amount_minor":1,"currency":"EUR"}"#,
    ))
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = call(
        Request::get(format!("/api/orders/{}/events", uuid::Uuid::new_v4()))
            .header("authorization", "Bearer cs_x")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "EventSource must not give up");
    assert_eq!(body, "retry: 2000\n\n", "nothing but the reconnect delay");
}

#[tokio::test]
async fn a_method_a_path_does_not_take_is_a_json_405_naming_those_it_does() {
    for (method, uri, allow) in [
        ("GET", "/api/orders", "POST"),
        (
            "DELETE",
            "/api/orders/6f1c1a52-2a55-4d5c-9a55-2f0d8f5b0b1e",
            "GET,HEAD",
        ),
        ("POST", "/healthz", "GET,HEAD"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = router_without_core().oneshot(request).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}"
        );
        assert_eq!(response.headers()["allow"], allow, "{method} {uri}");
        let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON error body");
        assert_eq!(
            json["error"]["code"], "method_not_allowed",
            "{method} {uri}"
        );
    }
    let (status, body) = call(Request::delete("/api/unknown").body(Body::empty()).unwrap()).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an unknown API path, whatever the method: {body}"
    );
}

#[tokio::test]
async fn a_gateway_shutting_down_is_not_ready() {
    let state = crate::helpers::state_without_core();
    let shutdown = state.shutdown.clone();
    let app = sse_gateway::router(state);
    let readyz = || Request::get("/readyz").body(Body::empty()).unwrap();
    // Without its core it is not ready either; the reason tells them apart.
    let response = app.clone().oneshot(readyz()).await.unwrap();
    let body = to_bytes(response.into_body(), 1024).await.unwrap();
    assert_eq!(&body[..], b"payment-core stream is down");
    shutdown.cancel();
    let response = app.oneshot(readyz()).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = to_bytes(response.into_body(), 1024).await.unwrap();
    assert_eq!(&body[..], b"shutting down");
}
