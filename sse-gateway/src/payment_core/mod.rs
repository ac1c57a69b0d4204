//! The seam between the gateway and payment-core: the calls the gateway
//! makes, as a trait over the gateway's own types.
//!
//! [`GrpcCore`] implements it over payments.v1; tests put a fake core
//! behind it to commit events at the worst moment, fail, or hang. The
//! callers bound every unary call themselves ([`bounded`]), so a core that
//! never answers cannot hold a browser request, whichever implementation
//! is behind the seam.

mod grpc;

use std::{future::Future, time::Duration};

use futures::stream::BoxStream;

pub use grpc::GrpcCore;

pub use crate::event::OrderHistory;
use crate::event::{NewOrder, OrderId, OrderView, UpstreamItem, WireEvent};

/// Every way a call to payment-core can fail, in the terms the gateway acts on.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{message}")]
    InvalidArgument { field: String, message: String },
    #[error("order not found")]
    NotFound,
    #[error("{0}")]
    AlreadyExists(String),
    #[error("payment-core is unavailable: {0}")]
    Unavailable(String),
    #[error("payment-core did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("payment-core failed: {0}")]
    Other(String),
}

impl CoreError {
    /// Failures a browser should simply retry, as opposed to a wrong request.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::TimedOut(_) | Self::Other(_) => true,
            Self::InvalidArgument { .. } | Self::NotFound | Self::AlreadyExists(_) => false,
        }
    }
}

/// One page of every order's events, and the newest sequence in the log.
#[derive(Debug, Clone, Default)]
pub struct EventsPage {
    pub events: Vec<WireEvent>,
    pub head_sequence: u64,
}

/// The all-orders stream: events in sequence order, each with its order's
/// secret (or the mark of one that could not be read), until it breaks.
pub type EventStream = BoxStream<'static, Result<UpstreamItem, CoreError>>;

/// What the gateway asks of payment-core.
#[async_trait::async_trait]
pub trait PaymentCore: Send + Sync + 'static {
    async fn create_order(&self, order: NewOrder) -> Result<OrderView, CoreError>;

    async fn get_order(&self, order_id: OrderId) -> Result<OrderView, CoreError>;

    /// Everything a browser stream needs, in one call: the order's whole
    /// history (a handful of events) and its secret. An order with no
    /// event is unknown ([`CoreError::NotFound`]).
    async fn order_history(&self, order_id: OrderId) -> Result<OrderHistory, CoreError>;

    /// Every order's events after `after_sequence`, at most `page_size`.
    async fn events(&self, after_sequence: u64, page_size: u32) -> Result<EventsPage, CoreError>;

    /// Every event after `after_sequence`, then live ones (long-lived).
    async fn watch_all(&self, after_sequence: u64) -> Result<EventStream, CoreError>;
}

/// `call`, or [`CoreError::TimedOut`] after `bound`.
pub async fn bounded<T>(
    bound: Duration,
    call: impl Future<Output = Result<T, CoreError>>,
) -> Result<T, CoreError> {
    tokio::time::timeout(bound, call)
        .await
        .unwrap_or(Err(CoreError::TimedOut(bound)))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[tokio::test(start_paused = true)]
    async fn a_call_that_never_answers_times_out_as_a_transient_failure() {
        let bound = Duration::from_secs(5);
        let hung = bounded(bound, std::future::pending::<Result<(), CoreError>>()).await;
        let error = hung.expect_err("bounded");
        assert!(matches!(error, CoreError::TimedOut(_)) && error.is_transient());
    }
}
