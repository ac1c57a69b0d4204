//! The browser-facing event streams, framed by the WHATWG rules.
//!
//! Every stream starts with a `retry:` frame, then sends the history the
//! client has not seen (after `Last-Event-ID`), then live events from the
//! hub, each with `id:` = the core's sequence and `event:` = the status.
//! Heartbeat events keep idle connections open through proxies and let
//! pages detect a dead one.
//!
//! An order stream's history comes from the gateway's memory of recent
//! orders when the gateway saw the order created (no call to the core), and
//! from the core otherwise. The connection registers with the hub *before*
//! it reads history: from memory under the same lock as the registration,
//! from the core after it. It skips any live event whose sequence it
//! already sent: an event is then either in the history, or in the live
//! channel, or both, never in neither.
//!
//! An order stream ends after the order's final event (also when the
//! client's resume point is past it), and a reconnect that has already seen
//! it gets 204, which tells EventSource to stop.
//!
//! A process holds at most `MAX_STREAMS` streams: one more is a lone
//! `retry:` frame with a long, jittered delay that ends at once (counted in
//! `/metrics`), checked before anything costs a call to the core.
//!
//! When the gateway cannot promise the live part, the stream is a lone
//! `retry:` frame that ends at once, and the browser comes back shortly:
//! - while the upstream stream is not open: an event committed after the
//!   history read but before the upstream's starting point would reach
//!   nobody;
//! - when the core fails for any transient reason: EventSource treats a
//!   non-200 answer as final, so a 5xx would stop a browser that should
//!   simply try again.

use std::{
    collections::VecDeque,
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures::{Stream, StreamExt, stream};
use payments_proto::contract::HEARTBEAT_EVENT;
use tokio::time::{Interval, MissedTickBehavior};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        RefOr, Type,
        schema::{ObjectBuilder, OneOfBuilder, Ref, Schema},
    },
};

use crate::{
    error::{ApiError, ErrorBody},
    event::{EventData, OrderHistory, OrderId, Sequence, Status, WireEvent},
    extract::{AdminAccess, OrderCredential, OrderIdPath, ResumeFrom},
    hub::Subscription,
    metrics::{ConnectionGauge, EventSource, HistorySource, RefusalReason, StreamKind},
    payment_core::{CoreError, PaymentCore, bounded},
    routes::{DASHBOARD_EVENTS, ORDER_EVENTS},
    state::AppState,
};

/// Events per `ListEvents` page when a dashboard catches up.
const BACKFILL_PAGE: u32 = 500;

/// One event of a stream as EventSource hands it to a page: the schema of
/// the `text/event-stream` responses in the OpenAPI description (OpenAPI
/// 3.1 tools, schemathesis among them, read a stream's schema as that of
/// each event). The `retry:` frame carries no data, so it is no event.
pub struct StreamEvent;

impl PartialSchema for StreamEvent {
    fn schema() -> RefOr<Schema> {
        let string = || ObjectBuilder::new().schema_type(Type::String);
        let sequence = || string().pattern(Some("^[0-9]+$"));
        let heartbeat = ObjectBuilder::new()
            .title(Some("heartbeat"))
            .description(Some(
                "Sent when the stream opens and after each interval of silence; a page that hears nothing for about 2.5 intervals reopens the stream.",
            ))
            .property("event", string().enum_values(Some([HEARTBEAT_EVENT])))
            .property(
                "data",
                string()
                    .content_media_type("application/json")
                    .pattern(Some(r#"^\{"interval_ms":[0-9]+\}$"#)),
            )
            .property(
                "id",
                sequence().description(Some("The last order event's id, which EventSource keeps.")),
            )
            .required("event")
            .required("data");
        let order_event = ObjectBuilder::new()
            .title(Some("order event"))
            .description(Some("One of payment-core's events."))
            .property("event", Ref::from_schema_name(<Status as ToSchema>::name()))
            .property(
                "data",
                string()
                    .content_media_type("application/json")
                    .description(Some("An `EventData`, as JSON.")),
            )
            .property(
                "id",
                sequence().description(Some(
                    "The event's sequence: sent back as Last-Event-ID to resume after it.",
                )),
            )
            .required("event")
            .required("data")
            .required("id");
        OneOfBuilder::new()
            .item(heartbeat)
            .item(order_event)
            .description(Some("One server-sent event, as EventSource delivers it."))
            .into()
    }
}

impl ToSchema for StreamEvent {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        for (name, schema) in [
            (<Status as ToSchema>::name(), Status::schema()),
            (EventData::name(), EventData::schema()),
        ] {
            schemas.push((name.into_owned(), schema));
        }
        // And what they refer to (the sequence, which the parameters use too).
        EventData::schemas(schemas);
    }
}

/// `GET /api/orders/{id}/events`, with the client secret as a bearer
/// token or a stream token in the query: one order's events.
#[utoipa::path(
    get,
    path = ORDER_EVENTS,
    tag = "streams",
    summary = "Watch one order's events",
    description = "A `text/event-stream`: a `retry:` frame, a `heartbeat` event, the order's events after the resume point (`id:` = sequence, `event:` = status, `data:` = JSON), then live ones; it ends after the order's final event. While the gateway cannot promise live events, or holds MAX_STREAMS streams already, it answers the `retry:` frame alone and ends, so that EventSource comes back.",
    params(
        ("id" = uuid::Uuid, Path, description = "The order's id."),
        ("last_event_id" = Option<Sequence>, Query, description = "Resume after this sequence, for clients that cannot set Last-Event-ID (the header wins)."),
        ("Last-Event-ID" = Option<Sequence>, Header, nullable = false, description = "Resume after this sequence (EventSource sends it when it reconnects)."),
    ),
    security(("client_secret" = []), ("stream_token" = [])),
    responses(
        (status = OK, description = "The order's event stream; it never ends before the order's final event.", content_type = "text/event-stream", body = StreamEvent),
        (status = NO_CONTENT, description = "The client has seen the order's final event already: nothing more will come, and EventSource stops."),
        (status = BAD_REQUEST, description = "The id is not a UUID, the resume point is not a sequence number, the query is malformed, or it carries a `client_secret` (a secret never goes in a URL).", body = ErrorBody),
        (status = UNAUTHORIZED, description = "Neither a client secret nor a stream token was presented, or the stream token is expired or not this order's.", body = ErrorBody),
        (status = FORBIDDEN, description = "The request carries an Origin that is neither the gateway's own nor in ALLOWED_ORIGINS.", body = ErrorBody),
        (status = NOT_FOUND, description = "No such order, or the client secret is not its own (the two look the same).", body = ErrorBody),
    ),
)]
pub async fn order_events(
    State(state): State<AppState>,
    OrderIdPath(order_id): OrderIdPath,
    ResumeFrom(after): ResumeFrom,
    credential: OrderCredential,
) -> Result<Response, ApiError> {
    const KIND: StreamKind = StreamKind::Order;
    let started = Instant::now();
    let access = credential.check(order_id, &state.signer)?;
    let Some(gauge) = state.metrics.try_open_stream(state.max_streams, KIND) else {
        return Ok(over_capacity(&state));
    };
    if !state.upstream_is_up() {
        return Ok(retry_later(
            &state,
            KIND,
            RefusalReason::UpstreamDown,
            "the payment-core stream is not open yet",
        ));
    }
    // Registered before the history is read: see the module's invariant.
    let (subscription, known) = state.hub.subscribe_order(order_id);
    let after = after.unwrap_or(0);
    let history = match known {
        // A resume point past what the gateway remembers means its copy is
        // behind (its upstream is still catching up): the core is not, and
        // knows whether the client has seen the end (204).
        Some(history) if history.reaches(after) => {
            state.metrics.history_read(HistorySource::Memory);
            history
        }
        _ => match read_history(&state, order_id).await {
            Ok(history) => history,
            Err(refused) => return refused,
        },
    };
    // A wrong secret looks exactly like an unknown order.
    if !access.opens(&history.client_secret_digest) {
        state.metrics.stream_refused(KIND, RefusalReason::NotFound);
        return Err(ApiError::NotFound);
    }
    let (history, finished) = history.after(after);
    if history.is_empty() && finished {
        // Already saw the final event: 204 makes EventSource stop reconnecting.
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let feed = Feed::order(history, subscription, after, gauge);
    state.metrics.stream_set_up(KIND, started.elapsed());
    Ok(sse_response(&state, feed.into_stream()))
}

/// An order's history from payment-core, for an order this gateway did not
/// see created or remembers less of than the client has seen; `Err` is the
/// answer to give the browser instead.
async fn read_history(
    state: &AppState,
    order_id: OrderId,
) -> Result<OrderHistory, Result<Response, ApiError>> {
    const KIND: StreamKind = StreamKind::Order;
    state.metrics.history_read(HistorySource::Core);
    match bounded(state.core_timeout, state.core.order_history(order_id)).await {
        Ok(history) => Ok(history),
        Err(error) if error.is_transient() => Err(Ok(retry_later(
            state,
            KIND,
            RefusalReason::CoreUnavailable,
            &error.to_string(),
        ))),
        Err(error) => {
            if matches!(error, CoreError::NotFound) {
                state.metrics.stream_refused(KIND, RefusalReason::NotFound);
            }
            Err(Err(error.into()))
        }
    }
}

/// `GET /api/events`, with a dashboard session or the admin token as a
/// bearer token: every order's events, for the dashboard.
#[utoipa::path(
    get,
    path = DASHBOARD_EVENTS,
    tag = "streams",
    summary = "Watch every order's events (dashboard)",
    description = "A `text/event-stream` that never ends: a `retry:` frame, a `heartbeat` event, then every order's events: the recent ones this gateway has seen, or all of them after the resume point, then live ones. While the gateway cannot promise live events, or holds MAX_STREAMS streams already, it answers the `retry:` frame alone and ends.",
    params(
        ("last_event_id" = Option<Sequence>, Query, description = "Resume after this sequence, for clients that cannot set Last-Event-ID (the header wins)."),
        ("Last-Event-ID" = Option<Sequence>, Header, nullable = false, description = "Resume after this sequence (EventSource sends it when it reconnects)."),
    ),
    security(("dashboard_session" = []), ("admin_bearer" = [])),
    responses(
        (status = OK, description = "Every order's event stream.", content_type = "text/event-stream", body = StreamEvent),
        (status = BAD_REQUEST, description = "The resume point is not a sequence number, the query is malformed, or it carries a `token` (the admin token never goes in a URL).", body = ErrorBody),
        (status = UNAUTHORIZED, description = "No dashboard session and no admin token, or a wrong or expired one.", body = ErrorBody),
        (status = FORBIDDEN, description = "The request carries an Origin that is neither the gateway's own nor in ALLOWED_ORIGINS.", body = ErrorBody),
    ),
)]
pub async fn dashboard_events(
    State(state): State<AppState>,
    _: AdminAccess,
    ResumeFrom(after): ResumeFrom,
) -> Result<Response, ApiError> {
    const KIND: StreamKind = StreamKind::Dashboard;
    let started = Instant::now();
    let Some(gauge) = state.metrics.try_open_stream(state.max_streams, KIND) else {
        return Ok(over_capacity(&state));
    };
    if !state.upstream_is_up() {
        return Ok(retry_later(
            &state,
            KIND,
            RefusalReason::UpstreamDown,
            "the payment-core stream is not open yet",
        ));
    }
    let (subscription, recent) = state.hub.subscribe_dashboard();
    let feed = match after {
        Some(after) => Feed::dashboard_resume(subscription, after, &state, gauge),
        None => Feed::dashboard(recent, subscription, gauge),
    };
    state.metrics.stream_set_up(KIND, started.elapsed());
    Ok(sse_response(&state, feed.into_stream()))
}

/// The answer to a stream over `MAX_STREAMS`: come back in the base delay
/// plus up to as much again, spread at random so that a crowd refused
/// together does not return together.
fn over_capacity(state: &AppState) -> Response {
    let base = state.overload_retry.as_millis() as u64;
    let delay = base + rand::random_range(0..=base);
    tracing::warn!(
        max_streams = state.max_streams,
        retry_ms = delay,
        "stream refused: at MAX_STREAMS"
    );
    sse_body_response(
        state,
        stream::iter([Bytes::from(format!("retry: {delay}\n\n"))]),
    )
}

/// The last frame of a stream ended by shutdown: a reconnect delay drawn
/// between half and one and a half `SSE_RETRY_MS`, so that the browsers of
/// a gateway that stops come back spread out rather than all at once.
fn farewell_frame(retry: Duration) -> Bytes {
    let base = retry.as_millis().max(2) as u64;
    let delay = rand::random_range(base / 2..=base + base / 2);
    Bytes::from(format!("retry: {delay}\n\n"))
}

fn retry_later(state: &AppState, kind: StreamKind, reason: RefusalReason, cause: &str) -> Response {
    state.metrics.stream_refused(kind, reason);
    tracing::warn!(%cause, "cannot serve the event stream now; telling the browser to retry");
    // Only the reconnect delay: the response ends at once, so there is no
    // connection for a heartbeat to vouch for.
    sse_body_response(state, stream::iter([state.retry_frame.clone()]))
}

fn sse_response(
    state: &AppState,
    frames: impl Stream<Item = Bytes> + Send + Unpin + 'static,
) -> Response {
    // The heartbeat goes first too: the page learns the interval its
    // watchdog needs before anything else can go wrong.
    let opening = [state.retry_frame.clone(), state.heartbeat_frame.clone()];
    sse_body_response(state, stream::iter(opening).chain(frames))
}

fn sse_body_response(
    state: &AppState,
    frames: impl Stream<Item = Bytes> + Send + Unpin + 'static,
) -> Response {
    let shutdown = state.shutdown.clone();
    let retry = state.sse_retry;
    let body = WithHeartbeat::new(frames, state.heartbeat, state.heartbeat_frame.clone())
        // Shutdown ends the response so the browser reconnects to another
        // gateway, after the delay of its last frame.
        .take_until(state.shutdown.clone().cancelled_owned())
        .chain(
            // Drawn only at shutdown: nothing per stream opened.
            stream::once(async move { shutdown.is_cancelled().then(|| Ok(farewell_frame(retry))) })
                .filter_map(std::future::ready),
        );
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// The frames of one response, with a heartbeat whenever nothing else was
/// sent for the heartbeat interval. It plays the part of axum's `Sse` +
/// `KeepAlive`, for frames rendered once per event (see [`WireEvent`])
/// instead of once per connection. The heartbeat is an event, not a
/// comment: it keeps proxies from closing an idle connection, and pages see
/// it (EventSource hides comments) and can tell a quiet stream from a dead
/// one.
struct WithHeartbeat<S> {
    frames: S,
    heartbeat: Interval,
    frame: Bytes,
}

impl<S> WithHeartbeat<S> {
    fn new(frames: S, period: Duration, frame: Bytes) -> Self {
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            frames,
            heartbeat,
            frame,
        }
    }
}

impl<S: Stream<Item = Bytes> + Unpin> Stream for WithHeartbeat<S> {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.frames.poll_next_unpin(cx) {
            Poll::Ready(Some(frame)) => {
                self.heartbeat.reset();
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        match self.heartbeat.poll_tick(cx) {
            Poll::Ready(_) => Poll::Ready(Some(Ok(self.frame.clone()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The state of one SSE connection: history not yet sent, where the
/// backfill from the core stands (dashboards), and the live subscription.
struct Feed {
    pending: VecDeque<Arc<WireEvent>>,
    live: Subscription,
    /// Highest sequence sent (or the client's Last-Event-ID).
    last_sent: u64,
    ends_at_terminal: bool,
    finished: bool,
    /// Set while a resuming dashboard still reads the core's log; `None`
    /// for every other connection. Boxed so that the others carry 8 bytes.
    backfill: Option<Box<Backfill>>,
    gauge: ConnectionGauge,
}

/// Where a resuming dashboard reads the log it missed.
struct Backfill {
    core: Arc<dyn PaymentCore>,
    timeout: Duration,
}

impl Feed {
    /// One order's stream: its history after the client's last event, then
    /// live events, ending after the final one.
    fn order(
        history: Vec<Arc<WireEvent>>,
        live: Subscription,
        after: u64,
        gauge: ConnectionGauge,
    ) -> Self {
        Self::new(history.into(), live, after, true, None, gauge)
    }

    /// A fresh dashboard: the recent events this gateway has seen, then live ones.
    fn dashboard(recent: Vec<Arc<WireEvent>>, live: Subscription, gauge: ConnectionGauge) -> Self {
        Self::new(recent.into(), live, 0, false, None, gauge)
    }

    /// A dashboard resuming after `after`: everything since from the core's
    /// log, page by page, then live events.
    fn dashboard_resume(
        live: Subscription,
        after: u64,
        state: &AppState,
        gauge: ConnectionGauge,
    ) -> Self {
        let backfill = Backfill {
            core: Arc::clone(&state.core),
            timeout: state.core_timeout,
        };
        Self::new(
            VecDeque::new(),
            live,
            after,
            false,
            Some(Box::new(backfill)),
            gauge,
        )
    }

    fn new(
        pending: VecDeque<Arc<WireEvent>>,
        live: Subscription,
        after: u64,
        ends_at_terminal: bool,
        backfill: Option<Box<Backfill>>,
        gauge: ConnectionGauge,
    ) -> Self {
        Self {
            pending,
            live,
            last_sent: after,
            ends_at_terminal,
            finished: false,
            backfill,
            gauge,
        }
    }

    async fn next_wire_event(&mut self) -> Option<(Arc<WireEvent>, EventSource)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((event, EventSource::Replay));
            }
            if let Some(backfill) = &self.backfill {
                // A failed page ends the stream; the browser resumes from its last id.
                // Boxed, with its timer: only resuming dashboards await it,
                // and every connection's state would carry its size.
                let page = Box::pin(bounded(
                    backfill.timeout,
                    backfill.core.events(self.last_sent, BACKFILL_PAGE),
                ))
                .await
                .ok()?;
                if page.events.len() < BACKFILL_PAGE as usize {
                    self.backfill = None;
                }
                self.pending.extend(page.events.into_iter().map(Arc::new));
                continue;
            }
            // `None` when the hub cut this connection off as too slow.
            return Some((self.live.events.recv().await?, EventSource::Live));
        }
    }

    async fn next(mut self) -> Option<(Bytes, Self)> {
        if self.finished {
            return None;
        }
        loop {
            let (event, source) = self.next_wire_event().await?;
            // Sent already: from the history, or an earlier live copy.
            if event.sequence <= self.last_sent {
                // Or the client's resume point is past it. If it is the
                // order's final event, nothing follows: the stream ends
                // rather than idle until the client leaves.
                if self.ends_at_terminal && event.is_terminal() {
                    return None;
                }
                continue;
            }
            self.last_sent = event.sequence;
            self.finished = self.ends_at_terminal && event.is_terminal();
            // The write of the event to this browser, in the order's trace.
            let span = tracing::info_span!(
                "sse.write",
                sequence = event.sequence,
                order_id = %event.order_id,
                status = event.status.name(),
                kind = ?self.gauge.kind(),
                ?source,
            );
            if let Some(trace) = &event.trace {
                trace.adopt(&span);
            }
            span.in_scope(|| self.gauge.event_sent(source, event.committed_at));
            return Some((event.frame.clone(), self));
        }
    }

    /// Boxed: the state machine of `next` is as large as the backfill call
    /// it may await, and it must be pinned to be polled anyway.
    fn into_stream(self) -> impl Stream<Item = Bytes> + Send + Unpin + 'static {
        Box::pin(stream::unfold(self, Feed::next))
    }
}
