//! What operators and orchestrators ask: liveness, readiness, metrics.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};

use crate::{
    routes::{HEALTHZ, METRICS, READYZ},
    state::AppState,
};

/// Alive: the process answers, whatever the core does.
#[utoipa::path(
    get,
    path = HEALTHZ,
    tag = "ops",
    summary = "Liveness",
    responses((status = OK, description = "The process answers.", content_type = "text/plain", body = String, example = "ok")),
)]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the upstream stream is open (without it, live events stop)
/// and the gateway is not shutting down.
#[utoipa::path(
    get,
    path = READYZ,
    tag = "ops",
    summary = "Readiness",
    responses(
        (status = OK, description = "The stream from payment-core is open.", content_type = "text/plain", body = String, example = "ready"),
        (status = SERVICE_UNAVAILABLE, description = "The stream from payment-core is down (live events would not arrive), or the gateway is shutting down.", content_type = "text/plain", body = String),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    // Draining: a proxy that asks should send nothing new here.
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    if state.upstream_is_up() {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "payment-core stream is down",
        )
    }
}

/// The OpenMetrics text format (README, "Metrics", lists them).
#[utoipa::path(
    get,
    path = METRICS,
    tag = "ops",
    summary = "Metrics",
    responses((status = OK, description = "OpenMetrics 1.0 text: the gateway's metrics and the process metrics.", content_type = "application/openmetrics-text", body = String)),
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    service_kit::metrics::metrics_handler(State(state.metrics_registry)).await
}
