//! Every way a call can fail, and the status the client sees for it.

use payments_proto::signature::SignatureError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    domain::{StatusConflict, ValidationError},
    store::StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    InvalidArgument(#[from] ValidationError),
    #[error("order not found")]
    OrderNotFound,
    #[error(
        "idempotency_key was already used to create an order with a different amount, currency or description"
    )]
    IdempotencyKeyReused,
    #[error(transparent)]
    Conflict(#[from] StatusConflict),
    #[error("request signature rejected: {0}")]
    Unauthenticated(#[from] SignatureError),
    #[error("server is shutting down")]
    Unavailable,
    #[error("database unavailable: {0}")]
    StoreUnavailable(String),
    #[error("store failure: {0}")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Self::OrderNotFound,
            StoreError::Conflict(conflict) => Self::Conflict(conflict),
            StoreError::IdempotencyKeyReused => Self::IdempotencyKeyReused,
            StoreError::Closed => Self::Unavailable,
            StoreError::Unavailable(cause) => Self::StoreUnavailable(cause),
            StoreError::Database(cause) => Self::Internal(cause),
        }
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::InvalidArgument(ValidationError { field, message }) => {
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!("{field}: {message}"),
                    ErrorDetails::with_bad_request_violation(field, message),
                )
            }
            ApiError::OrderNotFound => Status::not_found("order not found"),
            ApiError::IdempotencyKeyReused => Status::already_exists(error.to_string()),
            ApiError::Conflict(conflict) => Status::failed_precondition(conflict.to_string()),
            ApiError::Unauthenticated(cause) => {
                // The cause is for our logs; a forger learns nothing from the answer.
                tracing::warn!(%cause, "provider report rejected");
                Status::unauthenticated("missing or invalid provider signature")
            }
            ApiError::Unavailable => Status::unavailable("server is shutting down; retry"),
            ApiError::StoreUnavailable(cause) => {
                tracing::error!(%cause, "database unavailable");
                // UNAVAILABLE: clients retry, or move to another replica.
                Status::unavailable("the payment database is unreachable; retry")
            }
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                Status::internal("internal error")
            }
        }
    }
}
