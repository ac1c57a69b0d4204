//! [`PaymentCore`] over payments.v1: the only place in the gateway where
//! protobuf messages and tonic statuses exist. They become gateway types
//! and [`CoreError`] here.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use payments_proto::payments::v1::{self as pb, payment_service_client::PaymentServiceClient};
use service_kit::{
    core_client::{self, ApiKey, CoreClientTls, KeyedChannel},
    replicas::{Replicas, within},
};
use tonic::Code;
use tonic_types::StatusExt;

use super::{CoreError, EventStream, EventsPage, OrderHistory, PaymentCore};
use crate::event::{
    EventData, NewOrder, OrderId, OrderView, SecretDigest, Status, UpstreamEvent, UpstreamItem,
    WireEvent,
};

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

fn rfc3339(timestamp: Option<prost_types::Timestamp>) -> String {
    timestamp.map(|t| t.to_string()).unwrap_or_default()
}

/// What payment-core sent that the gateway cannot read: a contract mismatch.
/// The digest of `order`'s client secret, which payment-core sends with
/// every order.
fn digest_of(order: &pb::Order) -> Result<SecretDigest, CoreError> {
    SecretDigest::from_slice(&order.client_secret_sha256)
        .ok_or_else(|| malformed("client_secret_sha256 is not 32 bytes"))
}

fn malformed(what: impl std::fmt::Display) -> CoreError {
    CoreError::Other(format!("malformed answer from payment-core: {what}"))
}

fn status_of(raw: i32) -> Result<Status, CoreError> {
    let contract = pb::OrderStatus::try_from(raw).unwrap_or(pb::OrderStatus::Unspecified);
    Status::try_from(contract).map_err(|_| malformed(format!("order status {raw}")))
}

fn order_id_of(raw: &str) -> Result<OrderId, CoreError> {
    OrderId::parse(raw).map_err(|_| malformed(format!("order id `{raw}`")))
}

impl TryFrom<pb::Order> for OrderView {
    type Error = CoreError;

    fn try_from(order: pb::Order) -> Result<Self, Self::Error> {
        let client_secret_digest = digest_of(&order)?;
        Ok(Self {
            order_id: order_id_of(&order.order_id)?,
            status: status_of(order.status)?,
            amount_minor: order.amount_minor,
            currency: order.currency,
            description: order.description,
            client_secret: order.client_secret,
            client_secret_digest,
            payment_url: order.payment_url,
            reason: order.reason,
            created_at: rfc3339(order.created_at),
            updated_at: rfc3339(order.updated_at),
            expires_at: rfc3339(order.expires_at),
        })
    }
}

impl TryFrom<&pb::PaymentEvent> for WireEvent {
    type Error = CoreError;

    fn try_from(event: &pb::PaymentEvent) -> Result<Self, Self::Error> {
        let order = event
            .order
            .as_ref()
            .ok_or_else(|| malformed("event without order"))?;
        WireEvent::from_data(&EventData {
            sequence: event.sequence,
            order_id: order_id_of(&event.order_id)?,
            status: status_of(event.status)?,
            amount_minor: order.amount_minor,
            currency: &order.currency,
            description: &order.description,
            reason: &event.reason,
            occurred_at: rfc3339(event.occurred_at),
        })
        .map(|wire| {
            let committed_at = event
                .occurred_at
                .and_then(|at| std::time::SystemTime::try_from(at).ok());
            wire.with_origin(committed_at, &order.trace_parent)
        })
        .map_err(malformed)
    }
}

fn wire_events(events: &[pb::PaymentEvent]) -> Result<Vec<WireEvent>, CoreError> {
    events.iter().map(WireEvent::try_from).collect()
}

type Client = PaymentServiceClient<KeyedChannel>;

/// payment-core's `PaymentService` on one or several replicas, each over a
/// lazily connected channel (see `service_kit::replicas`).
#[derive(Clone)]
pub struct GrpcCore {
    replicas: Arc<Replicas<Client>>,
    /// Bound on one attempt on one replica: the call's bound shared among
    /// the replicas, so that a call that moves past a replica that never
    /// answers still ends within the bound the routes put on it. Also sent
    /// as each unary call's gRPC deadline, so the core can give up too.
    attempt_timeout: Duration,
}

impl GrpcCore {
    /// `urls`: one or more comma-separated replica URLs. Connects lazily:
    /// the gateway starts (and serves pages) while the core is still down.
    pub fn new(
        urls: &str,
        tls: &CoreClientTls,
        api_key: &str,
        call_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let api_key = ApiKey::new(api_key)?;
        let endpoints = core_client::endpoints(urls, tls)?;
        let attempt_timeout = call_timeout / u32::try_from(endpoints.len()).unwrap_or(u32::MAX);
        let clients = endpoints
            .into_iter()
            .map(|endpoint| {
                let channel = endpoint
                    .connect_timeout(Duration::from_secs(3))
                    .http2_keep_alive_interval(Duration::from_secs(20))
                    .keep_alive_timeout(Duration::from_secs(10))
                    .keep_alive_while_idle(true)
                    .tcp_nodelay(true)
                    .connect_lazy();
                PaymentServiceClient::with_interceptor(channel, api_key.clone())
            })
            .collect();
        Ok(Self {
            replicas: Arc::new(Replicas::new(clients)),
            attempt_timeout,
        })
    }

    fn timed<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.attempt_timeout);
        request
    }
}

#[async_trait::async_trait]
impl PaymentCore for GrpcCore {
    async fn create_order(&self, order: NewOrder) -> Result<OrderView, CoreError> {
        let request = pb::CreateOrderRequest {
            amount_minor: order.amount_minor,
            currency: order.currency,
            description: order.description,
            idempotency_key: order.idempotency_key,
        };
        // Without an idempotency key a create is not safe to repeat on
        // another replica: the client retries it, with a key if it is wise.
        let retryable = !request.idempotency_key.is_empty();
        let create = |mut client: Client| {
            let (request, bound) = (self.timed(request.clone()), self.attempt_timeout);
            async move { within(bound, client.create_order(request)).await }
        };
        let answer = if retryable {
            self.replicas.call(create).await
        } else {
            self.replicas.call_once(create).await
        };
        let order = answer?.into_inner().order;
        OrderView::try_from(order.ok_or_else(|| malformed("no order"))?)
    }

    async fn get_order(&self, order_id: OrderId) -> Result<OrderView, CoreError> {
        let request = pb::GetOrderRequest {
            order_id: order_id.to_string(),
        };
        let order = self
            .replicas
            .call(|mut client| {
                let (request, bound) = (self.timed(request.clone()), self.attempt_timeout);
                async move { within(bound, client.get_order(request)).await }
            })
            .await?
            .into_inner()
            .order;
        OrderView::try_from(order.ok_or_else(|| malformed("no order"))?)
    }

    async fn order_history(&self, order_id: OrderId) -> Result<OrderHistory, CoreError> {
        let request = pb::ListOrderEventsRequest {
            order_id: order_id.to_string(),
            after_sequence: 0,
        };
        let events = self
            .replicas
            .call(|mut client| {
                let (request, bound) = (self.timed(request.clone()), self.attempt_timeout);
                async move { within(bound, client.list_order_events(request)).await }
            })
            .await?
            .into_inner()
            .events;
        // Every order has at least its `created` event; without one there is
        // no secret to check, so the order is treated as unknown.
        let order = events
            .last()
            .and_then(|event| event.order.as_ref())
            .ok_or(CoreError::NotFound)?;
        Ok(OrderHistory {
            client_secret_digest: digest_of(order)?,
            events: wire_events(&events)?.into_iter().map(Arc::new).collect(),
        })
    }

    async fn events(&self, after_sequence: u64, page_size: u32) -> Result<EventsPage, CoreError> {
        let request = pb::ListEventsRequest {
            after_sequence,
            page_size,
        };
        let page = self
            .replicas
            .call(|mut client| {
                let (request, bound) = (self.timed(request), self.attempt_timeout);
                async move { within(bound, client.list_events(request)).await }
            })
            .await?
            .into_inner();
        Ok(EventsPage {
            events: wire_events(&page.events)?,
            head_sequence: page.head_sequence,
        })
    }

    async fn watch_all(&self, after_sequence: u64) -> Result<EventStream, CoreError> {
        let request = pb::WatchPaymentsRequest {
            selector: Some(pb::watch_payments_request::Selector::AllOrders(true)),
            after_sequence,
        };
        // Only the opening is bounded: the stream is long-lived. When its
        // replica goes, the upstream reconnects, and this call moves to the
        // next replica.
        let stream = self
            .replicas
            .call(|mut client| {
                let (request, bound) = (request.clone(), self.attempt_timeout);
                async move { within(bound, client.watch_payments(request)).await }
            })
            .await?
            .into_inner();
        Ok(stream
            .map(|message| {
                let event = message.map_err(CoreError::from)?;
                let wire = WireEvent::try_from(&event).and_then(|wire| {
                    let order = event.order.as_ref().ok_or_else(|| malformed("event without its order"))?;
                    Ok((wire, digest_of(order)?))
                });
                Ok(match wire {
                    Ok((wire, client_secret_digest)) => UpstreamItem::Event(UpstreamEvent {
                        event: wire,
                        client_secret_digest,
                    }),
                    // One unreadable event must not stop every other
                    // order's: it is logged and passed on as a mark, so
                    // the gateway forgets its order's history.
                    Err(error) => {
                        tracing::error!(%error, sequence = event.sequence, "undecodable event skipped");
                        UpstreamItem::Unreadable {
                            sequence: event.sequence,
                            order_id: OrderId::parse(&event.order_id).ok(),
                        }
                    }
                })
            })
            .boxed())
    }
}
