//! Which web origins may use the API: same-origin pages always, other
//! origins only when `ALLOWED_ORIGINS` lists them (parsed in `config`).
//!
//! Two parts, because CORS alone only stops a browser from *reading* an
//! answer: an EventSource or a simple form POST from a foreign page is sent
//! anyway. So:
//! - [`cors`]: tower-http's `CorsLayer` answers preflights and adds
//!   `Access-Control-Allow-Origin` for the listed origins (no credentials:
//!   the API authenticates with client secrets and tokens in the request,
//!   never with cookies);
//! - [`guard`]: an `/api/` request whose `Origin` is neither listed nor the
//!   gateway's own (`Host`) is refused with 403 before any handler runs, so
//!   it creates nothing and opens nothing. Requests without `Origin`
//!   (servers, curl, same-origin GETs) pass: the origin is a browser's
//!   claim, and only browsers need the guard.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderName, HeaderValue, Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{error::ApiError, state::AppState};

/// Preflights and `Access-Control-Allow-Origin` for `allowed`.
pub fn cors(allowed: &Arc<[HeaderValue]>) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed.iter().cloned()))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static("idempotency-key"),
        ])
        .allow_credentials(false)
        .max_age(std::time::Duration::from_secs(600))
}

/// Refuses `/api/` requests from a foreign origin that is not allowed.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return next.run(request).await;
    };
    // Preflights are CORS's to answer (it runs before this).
    if request.method() == Method::OPTIONS
        || !request.uri().path().starts_with("/api/")
        || state.allowed_origins.contains(origin)
        || is_same_origin(origin, request.headers().get(header::HOST))
    {
        return next.run(request).await;
    }
    tracing::warn!(origin = ?origin, path = request.uri().path(), "request from a foreign origin refused");
    ApiError::OriginNotAllowed.into_response()
}

/// Whether `origin` names the host the request was sent to. The scheme is
/// not compared: behind a TLS-terminating proxy the gateway cannot see it.
fn is_same_origin(origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
    let (Ok(origin), Some(Ok(host))) = (origin.to_str(), host.map(HeaderValue::to_str)) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_compares_the_host_and_port() {
        let origin = HeaderValue::from_static("http://localhost:8080");
        assert!(is_same_origin(
            &origin,
            Some(&HeaderValue::from_static("localhost:8080"))
        ));
        assert!(!is_same_origin(
            &origin,
            Some(&HeaderValue::from_static("localhost"))
        ));
        assert!(!is_same_origin(&origin, None));
        assert!(!is_same_origin(
            &HeaderValue::from_static("null"),
            Some(&HeaderValue::from_static("null"))
        ));
    }
}
