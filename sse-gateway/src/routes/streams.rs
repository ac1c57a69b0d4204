//! The browser-facing event streams, framed by the WHATWG rules.
//!
//! Every stream starts with a `retry:` frame, then sends the history the
//! client has not seen (after `Last-Event-ID`), then live events from the
//! hub, each with `id:` = the core's sequence and `event:` = the status.
//! Heartbeat comments keep idle connections open through proxies.
//!
//! The connection registers with the hub *before* it reads history from the
//! core, and skips any live event whose sequence it already sent: an event
//! is then either in the history, or in the live channel, or both, never in
//! neither.
//!
//! An order stream ends after the order's final event, and a reconnect that
//! has already seen it gets 204, which tells EventSource to stop.
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
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::Body,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures::{Stream, StreamExt, stream};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::time::{Interval, MissedTickBehavior};

use crate::{
    core_client::{CoreClient, CoreError},
    error::ApiError,
    event::WireEvent,
    hub::Subscription,
    metrics::Metrics,
    startup::AppState,
};

/// Events per `ListEvents` page when a dashboard catches up.
const BACKFILL_PAGE: u32 = 500;

#[derive(Debug, Deserialize)]
pub struct OrderStreamQuery {
    client_secret: Option<String>,
    /// For clients that cannot set the Last-Event-ID header.
    last_event_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct DashboardQuery {
    token: Option<String>,
    last_event_id: Option<String>,
}

/// `Last-Event-ID` from the header, or the query for clients that cannot set it.
fn resume_point(headers: &HeaderMap, from_query: Option<&str>) -> Result<Option<u64>, ApiError> {
    let raw =
        match headers.get("last-event-id") {
            Some(value) => Some(value.to_str().map_err(|_| {
                ApiError::BadRequest("Last-Event-ID must be a sequence number".into())
            })?),
            None => from_query,
        };
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| ApiError::BadRequest("Last-Event-ID must be a sequence number".into())),
    }
}

pub fn secrets_match(expected: &str, given: Option<&str>) -> bool {
    given.is_some_and(|given| {
        !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    })
}

/// `GET /api/orders/{id}/events?client_secret=`: one order's events.
pub async fn order_events(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    Query(query): Query<OrderStreamQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let order_id = crate::api::canonical_order_id(&order_id)?;
    let after = resume_point(&headers, query.last_event_id.as_deref())?;
    if !state.upstream_up.load(Ordering::Relaxed) {
        return Ok(retry_later(
            &state,
            "the payment-core stream is not open yet",
        ));
    }
    let subscription = state.hub.subscribe_order(&order_id);
    // One call to the core per stream: the connection rate of a gateway is
    // bounded by it (BENCHMARKS.md).
    let history = match state.core.order_history(&order_id).await {
        Ok(history) => history,
        Err(error) if is_transient(&error) => return Ok(retry_later(&state, &error.to_string())),
        Err(error) => return Err(error.into()),
    };
    // A wrong secret looks exactly like an unknown order.
    if !secrets_match(&history.client_secret, query.client_secret.as_deref()) {
        return Err(ApiError::NotFound);
    }
    let (history, finished) = history.after(after.unwrap_or(0));
    if history.is_empty() && finished {
        // Already saw the final event: 204 makes EventSource stop reconnecting.
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let history = history.into_iter().map(Arc::new).collect();
    let feed = Feed::new(
        history,
        subscription,
        after.unwrap_or(0),
        true,
        None,
        &state,
    );
    Ok(sse_response(&state, feed.into_stream()))
}

/// `GET /api/events?token=`: every order's events, for the dashboard.
pub async fn dashboard_events(
    State(state): State<AppState>,
    Query(query): Query<DashboardQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if !secrets_match(&state.admin_token, query.token.as_deref().or(bearer)) {
        return Err(ApiError::Unauthorized);
    }
    let after = resume_point(&headers, query.last_event_id.as_deref())?;
    if !state.upstream_up.load(Ordering::Relaxed) {
        return Ok(retry_later(
            &state,
            "the payment-core stream is not open yet",
        ));
    }
    let (subscription, recent) = state.hub.subscribe_dashboard();
    let feed = match after {
        // Resuming: everything after the client's last event, from the core's log.
        Some(after) => Feed::new(
            Vec::new(),
            subscription,
            after,
            false,
            Some(state.core.clone()),
            &state,
        ),
        // Fresh: the recent events this gateway has seen, then live ones.
        None => Feed::new(recent, subscription, 0, false, None, &state),
    };
    Ok(sse_response(&state, feed.into_stream()))
}

/// Failures worth a retry from the browser, as opposed to a wrong request.
fn is_transient(error: &CoreError) -> bool {
    matches!(error, CoreError::Unavailable(_) | CoreError::Other(_))
}

fn retry_later(state: &AppState, cause: &str) -> Response {
    tracing::warn!(%cause, "cannot serve the event stream now; telling the browser to retry");
    sse_response(state, stream::empty())
}

/// A comment line: ignored by EventSource, but it keeps proxies and load
/// balancers from closing an idle connection.
const HEARTBEAT: Bytes = Bytes::from_static(b":\n\n");

fn sse_response(
    state: &AppState,
    frames: impl Stream<Item = Bytes> + Send + Unpin + 'static,
) -> Response {
    let body = WithHeartbeat::new(
        stream::once(std::future::ready(state.retry_frame.clone())).chain(frames),
        state.heartbeat,
    )
    // Shutdown ends the response so the browser reconnects to another gateway.
    .take_until(state.shutdown.clone().cancelled_owned());
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

/// The frames of one response, with a heartbeat comment whenever nothing
/// else was sent for the heartbeat interval. It plays the part of axum's
/// `Sse` + `KeepAlive`, for frames rendered once per event (see
/// [`WireEvent`]) instead of once per connection.
struct WithHeartbeat<S> {
    frames: S,
    heartbeat: Interval,
}

impl<S> WithHeartbeat<S> {
    fn new(frames: S, period: Duration) -> Self {
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { frames, heartbeat }
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
            Poll::Ready(_) => Poll::Ready(Some(Ok(HEARTBEAT))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Counts an open SSE connection for as long as it lives.
struct ConnectionGauge(Arc<Metrics>);

impl ConnectionGauge {
    fn new(metrics: &Arc<Metrics>) -> Self {
        metrics
            .open_connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(Arc::clone(metrics))
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.0
            .open_connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
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
    /// Boxed: a client is ~200 bytes that only resuming dashboards use,
    /// and every connection's state would carry them.
    backfill: Option<Box<CoreClient>>,
    metrics: Arc<Metrics>,
    _gauge: ConnectionGauge,
}

impl Feed {
    fn new(
        history: Vec<Arc<WireEvent>>,
        live: Subscription,
        after: u64,
        ends_at_terminal: bool,
        backfill: Option<CoreClient>,
        state: &AppState,
    ) -> Self {
        Self {
            pending: history.into(),
            live,
            last_sent: after,
            ends_at_terminal,
            finished: false,
            backfill: backfill.map(Box::new),
            metrics: Arc::clone(&state.metrics),
            _gauge: ConnectionGauge::new(&state.metrics),
        }
    }

    async fn next_wire_event(&mut self) -> Option<Arc<WireEvent>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if let Some(core) = &self.backfill {
                // A failed page ends the stream; the browser resumes from its last id.
                // Boxed so that the call's large future is not part of every
                // connection's state, only of the dashboards that backfill.
                let (page, _) = Box::pin(core.events(self.last_sent, BACKFILL_PAGE))
                    .await
                    .ok()?;
                if page.len() < BACKFILL_PAGE as usize {
                    self.backfill = None;
                }
                self.pending.extend(page.into_iter().map(Arc::new));
                continue;
            }
            // `None` when the hub cut this connection off as too slow.
            return self.live.events.recv().await;
        }
    }

    async fn next(mut self) -> Option<(Bytes, Self)> {
        if self.finished {
            return None;
        }
        loop {
            let event = self.next_wire_event().await?;
            if event.sequence <= self.last_sent {
                continue;
            }
            self.last_sent = event.sequence;
            self.finished = self.ends_at_terminal && event.is_terminal();
            self.metrics.event_sent();
            return Some((event.frame.clone(), self));
        }
    }

    /// Boxed: the state machine of `next` is as large as the backfill call
    /// it may await, and it must be pinned to be polled anyway.
    fn into_stream(self) -> impl Stream<Item = Bytes> + Send + Unpin + 'static {
        Box::pin(stream::unfold(self, Feed::next))
    }
}
