//! What operators and orchestrators ask: liveness, readiness, metrics.

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};

use crate::state::AppState;

/// Alive: the process answers, whatever the core does.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the upstream stream is open: without it, live events stop.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.upstream_is_up() {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "payment-core stream is down",
        )
    }
}

/// The Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state
            .metrics
            .render(&state.instance, state.upstream_is_up()),
    )
}
