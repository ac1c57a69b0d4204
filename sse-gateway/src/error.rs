//! Every way an HTTP request can fail, as a status and a JSON body
//! [`ErrorBody`], `{"error": {"code", "message"}}`. Internal causes are
//! logged once here and never sent to the browser.

use axum::{
    Json,
    extract::rejection::JsonRejection,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::payment_core::CoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("order not found")]
    NotFound,
    /// What the client must present, and how; never whether an order exists.
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("requests from this origin are not allowed (see ALLOWED_ORIGINS)")]
    OriginNotAllowed,
    #[error("this path does not take that method (see the Allow header)")]
    MethodNotAllowed,
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

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people: what was wrong, never an internal cause.
    pub message: String,
}

/// For programs: one code per kind of failure, each with its own status
/// (`ApiError::status_and_code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(
    description = "For programs: invalid_request (400), unauthorized (401), origin_not_allowed (403), not_found (404), method_not_allowed (405), idempotency_conflict (409), payload_too_large (413), unsupported_media_type (415), internal (500), unavailable (503)."
)]
pub enum ErrorCode {
    InvalidRequest,
    Unauthorized,
    OriginNotAllowed,
    NotFound,
    MethodNotAllowed,
    IdempotencyConflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Internal,
    Unavailable,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest),
            Self::NotFound => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
            Self::OriginNotAllowed => (StatusCode::FORBIDDEN, ErrorCode::OriginNotAllowed),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed),
            Self::IdempotencyConflict(_) => (StatusCode::CONFLICT, ErrorCode::IdempotencyConflict),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
            ),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
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
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            // RFC 9110: a 401 names the scheme it wants.
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
