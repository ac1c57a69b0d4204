//! The gateway's view of payment-core: the gRPC calls it makes, with
//! protobuf turned into gateway types and statuses into [`CoreError`].

use std::time::Duration;

use payments_proto::payments::v1::{self as pb, payment_service_client::PaymentServiceClient};
use tonic::{Code, transport::Channel};
use tonic_types::StatusExt;

use crate::event::{OrderView, WireEvent};

/// Bound on every unary call, so a stuck core cannot hold a browser request forever.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

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
    #[error("payment-core failed: {0}")]
    Other(String),
}

impl From<tonic::Status> for CoreError {
    fn from(status: tonic::Status) -> Self {
        match status.code() {
            Code::InvalidArgument => {
                let field = status
                    .get_details_bad_request()
                    .and_then(|details| details.field_violations.first().map(|v| v.field.clone()))
                    .unwrap_or_default();
                Self::InvalidArgument {
                    field,
                    message: status.message().to_owned(),
                }
            }
            Code::NotFound => Self::NotFound,
            Code::AlreadyExists => Self::AlreadyExists(status.message().to_owned()),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                Self::Unavailable(status.message().to_owned())
            }
            _ => Self::Other(format!("{:?}: {}", status.code(), status.message())),
        }
    }
}

#[derive(Clone)]
pub struct CoreClient {
    payments: PaymentServiceClient<Channel>,
}

/// One order's events, oldest first, and the secret that lets a browser
/// watch them.
pub struct OrderHistory {
    pub client_secret: String,
    pub events: Vec<WireEvent>,
}

impl OrderHistory {
    /// The events after `sequence`, and whether the order has reached a
    /// final state (its last event is final).
    pub fn after(self, sequence: u64) -> (Vec<WireEvent>, bool) {
        let finished = self.events.last().is_some_and(WireEvent::is_terminal);
        let newer = self
            .events
            .into_iter()
            .filter(|event| event.sequence > sequence)
            .collect();
        (newer, finished)
    }
}

impl CoreClient {
    /// Connects lazily: the gateway starts (and serves pages) while the core is still down.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(url.to_owned())?
            .connect_timeout(Duration::from_secs(3))
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Self {
            payments: PaymentServiceClient::new(channel),
        })
    }

    fn timed<T>(message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(CALL_TIMEOUT);
        request
    }

    pub async fn create_order(
        &self,
        request: pb::CreateOrderRequest,
    ) -> Result<OrderView, CoreError> {
        let order = self
            .payments
            .clone()
            .create_order(Self::timed(request))
            .await?
            .into_inner()
            .order;
        OrderView::try_from(order.unwrap_or_default()).map_err(CoreError::Other)
    }

    pub async fn get_order(&self, order_id: &str) -> Result<OrderView, CoreError> {
        let request = pb::GetOrderRequest {
            order_id: order_id.to_owned(),
        };
        let order = self
            .payments
            .clone()
            .get_order(Self::timed(request))
            .await?
            .into_inner()
            .order;
        OrderView::try_from(order.unwrap_or_default()).map_err(CoreError::Other)
    }

    /// Everything about one order a browser stream needs, in one call: its
    /// whole history (at most a handful of events) and its secret.
    pub async fn order_history(&self, order_id: &str) -> Result<OrderHistory, CoreError> {
        let request = pb::ListOrderEventsRequest {
            order_id: order_id.to_owned(),
            after_sequence: 0,
        };
        let events = self
            .payments
            .clone()
            .list_order_events(Self::timed(request))
            .await?
            .into_inner()
            .events;
        // Every order has at least its `created` event; without one there is
        // no secret to check, so the order is treated as unknown.
        let client_secret = events
            .last()
            .and_then(|event| event.order.as_ref())
            .map(|order| order.client_secret.clone())
            .ok_or(CoreError::NotFound)?;
        let events = events
            .iter()
            .map(WireEvent::try_from)
            .collect::<Result<_, _>>()
            .map_err(CoreError::Other)?;
        Ok(OrderHistory {
            client_secret,
            events,
        })
    }

    /// One page of every order's events after `after_sequence`.
    pub async fn events(
        &self,
        after_sequence: u64,
        page_size: u32,
    ) -> Result<(Vec<WireEvent>, u64), CoreError> {
        let request = pb::ListEventsRequest {
            after_sequence,
            page_size,
        };
        let page = self
            .payments
            .clone()
            .list_events(Self::timed(request))
            .await?
            .into_inner();
        let events = page
            .events
            .iter()
            .map(WireEvent::try_from)
            .collect::<Result<_, _>>()
            .map_err(CoreError::Other)?;
        Ok((events, page.head_sequence))
    }

    /// The all-orders stream after `after_sequence` (no call timeout: it is long-lived).
    pub async fn watch_all(
        &self,
        after_sequence: u64,
    ) -> Result<tonic::Streaming<pb::PaymentEvent>, CoreError> {
        let request = pb::WatchPaymentsRequest {
            selector: Some(pb::watch_payments_request::Selector::AllOrders(true)),
            after_sequence,
        };
        Ok(self
            .payments
            .clone()
            .watch_payments(request)
            .await?
            .into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(statuses: &[&'static str]) -> OrderHistory {
        OrderHistory {
            client_secret: "cs".into(),
            events: statuses
                .iter()
                .zip(1..)
                .map(|(status, sequence)| WireEvent::new(sequence, "a".into(), status, "{}"))
                .collect(),
        }
    }

    #[test]
    fn a_history_is_cut_after_the_resume_point_and_knows_when_the_order_is_final() {
        let (newer, finished) = history(&["created", "processing"]).after(1);
        assert_eq!(newer.iter().map(|e| e.sequence).collect::<Vec<_>>(), [2]);
        assert!(!finished);
        let (newer, finished) = history(&["created", "succeeded"]).after(2);
        assert!(newer.is_empty() && finished, "a client that saw the end");
    }
}
