//! The gateway's HTTP surface: [`router`] and its handlers, by concern:
//! - [`orders`]: the JSON API the checkout calls;
//! - [`streams`]: the event streams, one order's or every order's;
//! - [`ops`]: health, readiness and metrics;
//! - [`pages`]: the checkout page, the dashboard and their stylesheet;
//! - [`origins`]: CORS and the refusal of foreign origins (`ALLOWED_ORIGINS`).
//!
//! The event-stream paths are declared once here: the server asks
//! [`is_event_stream_path`] which requests to serve off hyper.

pub mod ops;
pub mod orders;
pub mod origins;
pub mod pages;
pub mod streams;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue},
    middleware,
    routing::{get, post},
};
use tower_http::{set_header::SetResponseHeaderLayer, trace::TraceLayer};

use crate::state::AppState;

/// One order's event stream.
pub const ORDER_EVENTS: &str = "/api/orders/{id}/events";
/// Every order's event stream, for the dashboard.
pub const DASHBOARD_EVENTS: &str = "/api/events";

pub fn router(state: AppState) -> Router {
    let cors = origins::cors(&state.allowed_origins);
    let instance = HeaderValue::from_str(&state.instance)
        .unwrap_or_else(|_| HeaderValue::from_static("gateway"));
    Router::new()
        .route("/", get(pages::checkout))
        .route("/dashboard", get(pages::dashboard))
        .route("/assets/style.css", get(pages::stylesheet))
        .route("/assets/live-stream.js", get(pages::live_stream_script))
        .route("/api/orders", post(orders::create_order))
        .route("/api/orders/{id}", get(orders::get_order))
        .route(ORDER_EVENTS, get(streams::order_events))
        .route(DASHBOARD_EVENTS, get(streams::dashboard_events))
        .route(
            "/api/{*rest}",
            get(orders::not_found).post(orders::not_found),
        )
        .route("/metrics", get(ops::metrics))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .layer(DefaultBodyLimit::max(orders::MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            origins::guard,
        ))
        // Outside the guard: preflights are answered, and refusals carry
        // CORS headers so a listed page can read them.
        .layer(cors)
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-gateway-instance"),
            instance,
        ))
        // Failures are logged once, by the error type that knows their cause.
        .layer(TraceLayer::new_for_http().on_failure(()))
        .with_state(state)
}

/// Whether `path` (without its query) names an event stream: the dashboard
/// stream, or an order stream whose id needs no percent-decoding (the
/// router decodes; paths that need it are left to hyper's path).
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
