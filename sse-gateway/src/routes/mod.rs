//! The gateway's HTTP surface: [`router`] and its handlers, by concern:
//! - [`orders`]: the JSON API the checkout calls;
//! - [`streams`]: the event streams, one order's or every order's;
//! - [`sessions`]: stream tokens and the dashboard's sign-in, so that no
//!   long-lived secret travels in a URL;
//! - [`ops`]: health, readiness and metrics;
//! - [`openapi`]: the OpenAPI description of all of the above but pages;
//! - [`pages`]: the checkout page, the dashboard, their stylesheet, and the
//!   browser client module `/sdk/payments-push.js` with its types;
//! - [`origins`]: CORS and the refusal of foreign origins (`ALLOWED_ORIGINS`).
//!
//! The API's paths are declared once here, and its routes are registered
//! by [`api`] together with their description. The server asks
//! [`is_event_stream_path`] which requests to serve off hyper.

pub mod openapi;
pub mod ops;
pub mod orders;
pub mod origins;
pub mod pages;
pub mod sessions;
pub mod streams;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue},
    middleware,
    routing::{any, get},
};
use tower_http::{set_header::SetResponseHeaderLayer, trace::TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{error::ApiError, state::AppState};

/// Create an order.
pub const ORDERS: &str = "/api/orders";
/// Read an order.
pub const ORDER: &str = "/api/orders/{id}";
/// One order's event stream.
pub const ORDER_EVENTS: &str = "/api/orders/{id}/events";
/// Trade an order's client secret for a stream token.
pub const ORDER_STREAM_TOKENS: &str = "/api/orders/{id}/stream-tokens";
/// Every order's event stream, for the dashboard.
pub const DASHBOARD_EVENTS: &str = "/api/events";
/// The dashboard's sign-in (POST) and sign-out (DELETE).
pub const DASHBOARD_SESSION: &str = "/api/dashboard/session";
pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const METRICS: &str = "/metrics";
/// The OpenAPI description of the API.
pub const OPENAPI: &str = "/openapi.json";

/// The HTTP API: each handler with its `#[utoipa::path]`, registered with
/// axum and added to the OpenAPI description in the same call, so the two
/// cannot disagree. Every API route goes here, never in [`router`] directly.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(orders::create_order))
        .routes(routes!(orders::get_order))
        .routes(routes!(streams::order_events))
        .routes(routes!(streams::dashboard_events))
        .routes(routes!(sessions::create_stream_token))
        .routes(routes!(sessions::sign_in, sessions::sign_out))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(openapi::openapi_json))
}

pub fn router(state: AppState) -> Router {
    let cors = origins::cors(&state.allowed_origins);
    let instance = HeaderValue::from_str(&state.instance)
        .unwrap_or_else(|_| HeaderValue::from_static("gateway"));
    Router::new()
        .route("/", get(pages::checkout))
        .route("/dashboard", get(pages::dashboard))
        .route("/assets/style.css", get(pages::stylesheet))
        .route(pages::CLIENT_MODULE_PATH, get(pages::client_module))
        .route(pages::CLIENT_TYPES_PATH, get(pages::client_types))
        .merge(api())
        .route("/api/{*rest}", any(orders::not_found))
        // After every route: it applies to those registered before it.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(orders::MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            origins::guard,
        ))
        // Outside the guard: CORS answers preflights itself, for listed
        // origins and refused ones alike (the latter without allow headers).
        .layer(cors)
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-gateway-instance"),
            instance,
        ))
        // Failures are logged once, by the error type that knows their cause.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_failure(()),
        )
        .with_state(state)
}

/// A path served, with a method it does not take: a JSON 405 like every
/// other error, rather than axum's empty one. axum still adds the `Allow`
/// header.
async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Whether `path` (without its query) names an event stream: the dashboard
/// stream, or an order stream whose id needs no percent-decoding (the
/// router decodes; paths that need it are left to hyper's path).
/// A request's span. An event stream's lives as long as the stream (the
/// layer keeps it with the body), so it stays a `debug` span, off by
/// default and never an OpenTelemetry span: at 10,000 open streams one
/// would cost 1.5 KiB each (BENCHMARKS.md). Each event's write is a span of
/// its own, in its order's trace (`streams`).
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let path = request.uri().path();
    if is_event_stream_path(path) {
        tracing::debug_span!("http", method = %request.method(), path)
    } else {
        service_kit::telemetry::http_request_span(request)
    }
}

pub fn is_event_stream_path(path: &str) -> bool {
    if path == DASHBOARD_EVENTS {
        return true;
    }
    let Some((prefix, suffix)) = ORDER_EVENTS.split_once("{id}") else {
        return false;
    };
    path.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(suffix))
        .is_some_and(|id| {
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_stream_paths_are_the_two_stream_routes_and_nothing_else() {
        assert!(is_event_stream_path("/api/events"));
        assert!(is_event_stream_path(
            "/api/orders/6f1c1a52-2a55-4d5c-9a55-2f0d8f5b0b1e/events"
        ));
        for other in [
            "/api/orders/6f1c1a52/",
            "/api/orders//events",
            "/api/orders/a%2Fb/events",
            "/api/orders/a/b/events",
            "/api/events/",
            "/api/orders",
            "/",
        ] {
            assert!(!is_event_stream_path(other), "{other}");
        }
    }
}
