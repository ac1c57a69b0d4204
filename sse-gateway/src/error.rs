//! Every way an HTTP request can fail, as a status and a JSON body
//! `{"error": {"code", "message"}}`. Internal causes are logged once here
//! and never sent to the browser.

use axum::{
    Json,
    extract::rejection::JsonRejection,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::payment_core::CoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("order not found")]
    NotFound,
    #[error("missing or invalid admin token")]
    Unauthorized,
    #[error("requests from this origin are not allowed (see ALLOWED_ORIGINS)")]
    OriginNotAllowed,
    #[error("{0}")]
    IdempotencyConflict(String),
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("the payment service is unavailable; retry shortly")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::OriginNotAllowed => (StatusCode::FORBIDDEN, "origin_not_allowed"),
            Self::IdempotencyConflict(_) => (StatusCode::CONFLICT, "idempotency_conflict"),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(error: CoreError) -> Self {
        match error {
            // The core's message names the field ("currency: must be ...").
            CoreError::InvalidArgument { message, .. } => Self::BadRequest(message),
            CoreError::NotFound => Self::NotFound,
            CoreError::AlreadyExists(message) => Self::IdempotencyConflict(message),
            CoreError::Unavailable(cause) => Self::Unavailable(cause),
            timed_out @ CoreError::TimedOut(_) => Self::Unavailable(timed_out.to_string()),
            CoreError::Other(cause) => Self::Internal(cause),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType,
            JsonRejection::BytesRejection(_)
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Self::PayloadTooLarge
            }
            // Syntax and data errors: axum's text says what and where.
            other => Self::BadRequest(other.body_text()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Unavailable(cause) => tracing::warn!(%cause, "payment-core unavailable"),
            Self::Internal(cause) => tracing::error!(%cause, "internal error"),
            _ => {}
        }
        let (status, code) = self.status_and_code();
        (
            status,
            Json(json!({ "error": { "code": code, "message": self.to_string() } })),
        )
            .into_response()
    }
}
