//! The follower: one per store, it reads the shared log after the last
//! sequence it published and publishes each event, in sequence order, to
//! the store's broadcast channel. Every replica's channel thus carries the
//! same events in the same order, whoever wrote them.
//!
//! A `NOTIFY` carries its batch's events when they fit ([`notification`]);
//! the follower publishes those when they continue what it published, and
//! otherwise reads the log. It also reads on a poll tick and after every
//! (re)connect, because notifications sent while its connection was down
//! are lost.

use std::{convert::Infallible, sync::Arc, time::Duration};

use futures::StreamExt;
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use super::{
    db,
    notification::{self, Next},
};
use crate::{
    domain::PaymentEvent,
    store::{
        StoreError,
        columns::{EVENT_COLUMNS, event_from_row},
    },
};

/// The fallback read interval. Notifications are lost around a reconnect
/// (after which the follower reads anyway) or dropped by a full
/// [`HINT_QUEUE`], so this tick is a backstop: a quarter second bounds the extra latency of an event whose
/// hint went missing well below what a shopper notices, and costs one empty
/// primary-key range scan four times a second per replica.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Events read per query.
const FOLLOW_PAGE: usize = 1000;
const RECONNECT_MIN: Duration = Duration::from_millis(100);
/// At most this long between attempts: once the server is back, live
/// events resume within about this long.
const RECONNECT_MAX: Duration = Duration::from_secs(1);

/// The follower: runs sessions, starting with `first`, until `stop`,
/// reconnecting with backoff. `published` is the last sequence sent to
/// `live`; it survives reconnects, so a new session continues exactly where
/// the last one stopped.
pub(super) async fn follow(
    config: tokio_postgres::Config,
    channel: Arc<str>,
    first: Listening,
    live: broadcast::Sender<Arc<PaymentEvent>>,
    mut published: u64,
    stop: CancellationToken,
) {
    let mut session = Some(first);
    let mut backoff = RECONNECT_MIN;
    loop {
        let ended = tokio::select! {
            () = stop.cancelled() => break,
            ended = async {
                let listening = match session.take() {
                    Some(listening) => listening,
                    None => listen(&config, &channel).await?,
                };
                backoff = RECONNECT_MIN;
                follow_session(listening, &live, &mut published).await
            } => ended,
        };
        let Err(error) = ended;
        tracing::warn!(%error, retry_in = ?backoff, published, "event follower lost its connection");
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(RECONNECT_MAX);
    }
    tracing::debug!("event follower stopped");
}

/// A follower session that has run LISTEN: its client, and the hints its
/// connection task forwards (closed when the connection ends).
pub(super) struct Listening {
    client: tokio_postgres::Client,
    hints: mpsc::Receiver<String>,
}

/// Notification payloads waiting for the follower. When it is full, new
/// ones are dropped: the follower then finds a batch missing at the next one
/// it reads and reads the log, so the bound costs a query (or, if the
/// dropped one ended a burst, up to a poll interval), never an event.
const HINT_QUEUE: usize = 256;

/// Opens the follower's own (unpooled) session and LISTENs on it.
pub(super) async fn listen(
    config: &tokio_postgres::Config,
    channel: &str,
) -> Result<Listening, StoreError> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(db)?;
    let (hint, hints) = mpsc::channel::<String>(HINT_QUEUE);
    // Ends when the connection fails or the client is dropped.
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(notification)) => {
                    // Full: see HINT_QUEUE. Closed: the session is over.
                    let _ = hint.try_send(notification.payload().to_owned());
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "event follower connection failed");
                    break;
                }
            }
        }
        // Dropping `hint` here tells the session its connection is gone.
    });
    client
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .await
        .map_err(db)?;
    Ok(Listening { client, hints })
}

/// One follower session until its connection fails: read the log after
/// `published` now (this covers whatever committed while no session was
/// listening), then publish each notification's events, or read the log
/// when a notification does not continue what was published, and read it
/// on every poll tick. Dropping it (on shutdown) drops the client, which
/// ends the connection task.
async fn follow_session(
    listening: Listening,
    live: &broadcast::Sender<Arc<PaymentEvent>>,
    published: &mut u64,
) -> Result<Infallible, StoreError> {
    let Listening { client, mut hints } = listening;
    let read = client
        .prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM events e JOIN orders o ON o.order_id = e.order_id \
             WHERE e.sequence > $1 ORDER BY e.sequence LIMIT {FOLLOW_PAGE}"
        ))
        .await
        .map_err(db)?;
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    publish_new(&client, &read, live, published).await?;
    loop {
        tokio::select! {
            hinted = hints.recv() => {
                let Some(payload) = hinted else {
                    return Err(StoreError::Database("follower connection closed".into()));
                };
                match notification::next(&payload, *published) {
                    Next::Publish(events) => {
                        for event in events {
                            publish(live, published, event);
                        }
                    }
                    Next::Nothing => {}
                    Next::ReadLog => publish_new(&client, &read, live, published).await?,
                }
            }
            _ = tick.tick() => publish_new(&client, &read, live, published).await?,
        }
    }
}

/// Hands `event`, the one right after `published`, to this replica's
/// watchers.
fn publish(live: &broadcast::Sender<Arc<PaymentEvent>>, published: &mut u64, event: PaymentEvent) {
    *published = event.sequence;
    // No receivers is fine: nobody is watching right now.
    let _ = live.send(Arc::new(event));
}

/// Publishes every event after `published`, page by page, in sequence
/// order. Because sequence order is commit order, what one query sees is a
/// gap-free continuation of what was published before.
async fn publish_new(
    client: &tokio_postgres::Client,
    read: &tokio_postgres::Statement,
    live: &broadcast::Sender<Arc<PaymentEvent>>,
    published: &mut u64,
) -> Result<(), StoreError> {
    loop {
        let after = i64::try_from(*published).unwrap_or(i64::MAX);
        let rows = client.query(read, &[&after]).await.map_err(db)?;
        for row in &rows {
            let event = event_from_row(row)?;
            if event.sequence != *published + 1 {
                // Cannot happen through the store (sequences are dense);
                // it means rows were written behind its back.
                tracing::error!(
                    after = *published,
                    sequence = event.sequence,
                    "hole in the event log"
                );
            }
            publish(live, published, event);
        }
        if rows.len() < FOLLOW_PAGE {
            return Ok(());
        }
    }
}
