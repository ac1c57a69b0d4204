//! `payments.v1.PaymentService`.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures::Stream;
use payments_proto::payments::v1::{self as pb, payment_service_server::PaymentService};
use service_kit::telemetry;
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use super::{ApiError, CoreState, convert};
use crate::{
    auth::{Caller, Permission},
    domain::{
        ClientSecret, NewOrder, OrderId, OrderStatus, PaymentEvent, Reason, Scope, StatusChange,
        TraceParent,
    },
    metrics::WatchKind,
    store::{Applied, Created},
    watch::{self, WatchEnd},
};

/// Events buffered per WatchPayments stream between the watcher task and
/// the HTTP/2 sender. Enough to ride out a burst; when it stays full the
/// watcher cuts the client off (see `watch`), so memory stays bounded.
const WATCH_BUFFER: usize = 256;
/// Most events ListEvents returns in one page.
const MAX_PAGE: u32 = 1000;
const DEFAULT_PAGE: u32 = 100;
/// Most events ListOrderEvents returns: far above any one order's history
/// (at most three events), so it is a safety bound, not pagination.
const ORDER_EVENTS_LIMIT: u32 = 1000;

pub struct PaymentApi {
    state: CoreState,
}

impl PaymentApi {
    pub fn new(state: CoreState) -> Self {
        Self { state }
    }

    async fn existing_order(&self, raw_id: &str) -> Result<crate::domain::Order, ApiError> {
        let id = OrderId::parse("order_id", raw_id)?;
        self.state
            .store
            .get_order(id)
            .await?
            .ok_or(ApiError::OrderNotFound)
    }

    fn to_pb_events(&self, events: &[PaymentEvent]) -> Vec<pb::PaymentEvent> {
        events
            .iter()
            .map(|event| convert::event(event, &self.state.provider_page_url))
            .collect()
    }

    /// `id`'s client secret, for an answer that hands it out.
    async fn client_secret(&self, id: OrderId) -> Result<ClientSecret, ApiError> {
        self.state
            .store
            .client_secret(id)
            .await?
            .ok_or(ApiError::OrderNotFound)
    }
}

#[tonic::async_trait]
impl PaymentService for PaymentApi {
    async fn create_order(
        &self,
        request: Request<pb::CreateOrderRequest>,
    ) -> Result<Response<pb::CreateOrderResponse>, Status> {
        let caller = Caller::of(&request, Permission::Create)?;
        let parsed = convert::CreateOrder::parse(&caller.merchant, request.get_ref())
            .map_err(ApiError::from)?;
        let now = self.state.clock.now();
        let new = NewOrder {
            id: OrderId::new_random(),
            amount: parsed.amount,
            currency: parsed.currency,
            description: parsed.description,
            idempotency_key: parsed.idempotency_key,
            merchant: Some(caller.merchant.clone()),
            // This call's span, which continues the caller's trace.
            trace_parent: telemetry::traceparent_of(&tracing::Span::current())
                .and_then(|raw| TraceParent::parse("traceparent", &raw).ok()),
            client_secret: ClientSecret::generate(),
            created_at: now,
            expires_at: now.plus_millis(self.state.order_ttl.as_millis() as i64),
        };
        let secret = new.client_secret.clone();
        let (order, secret) = match self
            .state
            .store
            .create_order(new)
            .await
            .map_err(ApiError::from)?
        {
            Created::New(event) => {
                self.state.metrics.order_created();
                tracing::info!(order_id = %event.order.id, sequence = event.sequence, "order created");
                (event.order, secret)
            }
            // A retry with the same key answers the order made first, and
            // its secret (the caller may never have seen the first answer).
            Created::Existing(order) => {
                let secret = self.client_secret(order.id).await?;
                (order, secret)
            }
        };
        Ok(Response::new(pb::CreateOrderResponse {
            order: Some(convert::order(
                &order,
                &self.state.provider_page_url,
                Some(&secret),
            )),
        }))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::GetOrderResponse>, Status> {
        let caller = Caller::of(&request, Permission::Read)?;
        let order = self.existing_order(&request.get_ref().order_id).await?;
        if !caller.sees(&order) {
            return Err(ApiError::OrderNotFound.into());
        }
        let secret = match caller.may_read_secret_of(&order) {
            true => Some(self.client_secret(order.id).await?),
            false => None,
        };
        Ok(Response::new(pb::GetOrderResponse {
            order: Some(convert::order(
                &order,
                &self.state.provider_page_url,
                secret.as_ref(),
            )),
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::CancelOrderResponse>, Status> {
        let caller = Caller::of(&request, Permission::Cancel)?;
        let request = request.into_inner();
        let id = OrderId::parse("order_id", &request.order_id).map_err(ApiError::from)?;
        let reason = Reason::parse("reason", &request.reason).map_err(ApiError::from)?;
        // Another merchant's order is NOT_FOUND, as to a read; its merchant
        // never changes, so reading it first leaves no race.
        if !caller.owns(&self.existing_order(&request.order_id).await?) {
            return Err(ApiError::OrderNotFound.into());
        }
        let change = StatusChange {
            target: OrderStatus::Canceled,
            reason,
            provider_reference: None,
            at: self.state.clock.now(),
        };
        let order = match self
            .state
            .store
            .apply(id, change)
            .await
            .map_err(ApiError::from)?
        {
            Applied::Moved(event) => {
                tracing::info!(order_id = %id, sequence = event.sequence, "order canceled by merchant");
                event.order
            }
            Applied::Unchanged(order) => order,
        };
        Ok(Response::new(pb::CancelOrderResponse {
            order: Some(convert::order(&order, &self.state.provider_page_url, None)),
        }))
    }

    async fn list_order_events(
        &self,
        request: Request<pb::ListOrderEventsRequest>,
    ) -> Result<Response<pb::ListOrderEventsResponse>, Status> {
        let caller = Caller::of(&request, Permission::History)?;
        let request = request.into_inner();
        let id = OrderId::parse("order_id", &request.order_id).map_err(ApiError::from)?;
        let events = self
            .state
            .store
            .events_after(Scope::Order(id), request.after_sequence, ORDER_EVENTS_LIMIT)
            .await
            .map_err(ApiError::from)?;
        // Every order has its `created` event, so only an empty answer needs
        // a second read to tell an unknown order from one with nothing new.
        // One read per call matters: every browser stream opens with it.
        let order = match events.last() {
            Some(event) => event.order.clone(),
            None => self.existing_order(&request.order_id).await?,
        };
        if !caller.sees_events_of(&order) {
            return Err(ApiError::OrderNotFound.into());
        }
        Ok(Response::new(pb::ListOrderEventsResponse {
            events: self.to_pb_events(&events),
        }))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let caller = Caller::of(&request, Permission::History)?;
        let request = request.into_inner();
        let page_size = match request.page_size {
            0 => DEFAULT_PAGE,
            size => size.min(MAX_PAGE),
        };
        // Head first: every event in the page is then at or below it or newer,
        // never a head lower than the page's last sequence.
        let head_sequence = self
            .state
            .store
            .head_sequence()
            .await
            .map_err(ApiError::from)?;
        let events = self
            .state
            .store
            .events_after(Scope::AllOrders, request.after_sequence, page_size)
            .await
            .map_err(ApiError::from)?;
        let next_after_sequence = events
            .last()
            .map_or(request.after_sequence, |last| last.sequence);
        let head_sequence = events
            .last()
            .map_or(head_sequence, |last| last.sequence.max(head_sequence));
        // A merchant key's page holds its own orders' events only; the page
        // was read over every order, so the reader continues after it.
        let events: Vec<PaymentEvent> = events
            .into_iter()
            .filter(|event| caller.sees_events_of(&event.order))
            .collect();
        Ok(Response::new(pb::ListEventsResponse {
            events: self.to_pb_events(&events),
            head_sequence,
            next_after_sequence,
        }))
    }

    type WatchPaymentsStream = EventStream;

    async fn watch_payments(
        &self,
        request: Request<pb::WatchPaymentsRequest>,
    ) -> Result<Response<Self::WatchPaymentsStream>, Status> {
        let caller = Caller::of(&request, Permission::History)?;
        let watch_request =
            convert::Watch::try_from(request.into_inner()).map_err(ApiError::from)?;
        // While this replica cannot read its store, a watch is refused at
        // the door rather than opened and ended at once: a client moves to
        // another replica on a refused call (service-kit's replicas), but
        // would open an ended stream here again and again.
        if self.state.store_outages.next().is_cancelled() {
            return Err(Status::unavailable(format!(
                "this replica cannot reach its database; watch on another replica \
                 with after_sequence={}",
                watch_request.after_sequence
            )));
        }
        if let Scope::Order(id) = watch_request.scope {
            let order = self
                .state
                .store
                .get_order(id)
                .await
                .map_err(ApiError::from)?
                .ok_or(ApiError::OrderNotFound)?;
            if !caller.sees_events_of(&order) {
                return Err(ApiError::OrderNotFound.into());
            }
        }
        let (events_tx, events_rx) = mpsc::channel(WATCH_BUFFER);
        let (end_tx, end_rx) = oneshot::channel();
        let state = self.state.clone();
        let watcher = state
            .metrics
            .watcher_opened(WatchKind::from(&watch_request.scope));
        tokio::spawn(async move {
            let end = watch::watch(
                state.store.as_ref(),
                watch_request.scope,
                watch_request.after_sequence,
                events_tx,
                state.slow_watcher_timeout,
                state.store_outages.next(),
                state.shutdown.child_token(),
            )
            .await;
            watcher.ended(end.reason());
            // The receiver is gone when the client is; nothing to tell then.
            let _ = end_tx.send(end_status(end, &watch_request.scope));
        });
        Ok(Response::new(EventStream {
            events: events_rx,
            end: Some(end_rx),
            provider_page_url: self.state.provider_page_url.clone(),
            caller,
        }))
    }
}

/// The status that ends a stream, or `None` for a clean end.
fn end_status(end: WatchEnd, scope: &Scope) -> Option<Status> {
    match end {
        WatchEnd::Completed | WatchEnd::ClientGone => None,
        WatchEnd::TooSlow { resume_after } => {
            tracing::warn!(?scope, resume_after, "watcher too slow; cut off");
            Some(Status::resource_exhausted(format!(
                "watcher fell behind and was cut off; watch again with after_sequence={resume_after}"
            )))
        }
        WatchEnd::ShuttingDown { resume_after } => Some(Status::unavailable(format!(
            "server is shutting down; watch again with after_sequence={resume_after}"
        ))),
        WatchEnd::StoreLost { resume_after } => Some(Status::unavailable(format!(
            "this replica lost its database; watch again, here or on another replica, \
             with after_sequence={resume_after}"
        ))),
        WatchEnd::Failed {
            error,
            resume_after,
        } => {
            let status = Status::from(ApiError::from(error));
            Some(Status::new(
                status.code(),
                format!(
                    "{}; watch again with after_sequence={resume_after}",
                    status.message()
                ),
            ))
        }
    }
}

/// The WatchPayments response: the watcher's events, then its end status.
/// Events always come first, so a client that drains the stream sees every
/// event before the status that tells it where to resume.
pub struct EventStream {
    events: mpsc::Receiver<Arc<PaymentEvent>>,
    end: Option<oneshot::Receiver<Option<Status>>>,
    provider_page_url: Arc<str>,
    /// Events of orders the caller may not see events of are skipped (a
    /// merchant key's all-orders watch).
    caller: Arc<Caller>,
}

impl Stream for EventStream {
    type Item = Result<pb::PaymentEvent, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match self.events.poll_recv(cx) {
                Poll::Ready(Some(event)) if !self.caller.sees_events_of(&event.order) => continue,
                Poll::Ready(Some(event)) => {
                    return Poll::Ready(Some(Ok(convert::event(&event, &self.provider_page_url))));
                }
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => break,
            }
        }
        let Some(end) = self.end.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(end).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                self.end = None;
                Poll::Ready(match result {
                    Ok(status) => status.map(Err),
                    // The watcher task died without saying why: never let that look like a clean end.
                    Err(_) => Some(Err(Status::internal(
                        "watch stopped unexpectedly; resume with after_sequence",
                    ))),
                })
            }
        }
    }
}
