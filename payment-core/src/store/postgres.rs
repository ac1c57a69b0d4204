//! The shared store: one PostgreSQL database behind several payment-core
//! replicas.
//!
//! Writes: each command is one transaction on a pooled connection. It locks
//! the order row (`FOR UPDATE`), decides with the state machine against that
//! row, writes the order, and then, as its last statement, takes the next
//! sequence from the one-row `log_head` counter, inserts the event with it
//! and queues a `pg_notify`. The `log_head` row lock is held from that
//! statement until COMMIT, so the next writer gets its sequence only after
//! this one has committed: sequences are dense and their order is commit
//! order. A reader of `events WHERE sequence > n` therefore sees a prefix of
//! the log and never skips an event that commits later than a higher one
//! (with a `bigserial`, sequence 7 can commit after 8, and a reader that saw
//! 8 resumes after it and loses 7 for good). The price: the tail of every
//! write (one statement and the commit's WAL flush) is serialised across all
//! replicas.
//!
//! Fan-out: nothing is published by the writer. One follower task per store
//! reads the log after the last sequence it published, in sequence order,
//! and publishes to this store's broadcast channel; every replica's channel
//! thus carries the same events in the same order, whoever wrote them.
//! `NOTIFY` only tells the follower when to read: it also reads on a poll
//! tick and after every (re)connect, because notifications sent while its
//! connection was down are lost.
//!
//! Durability: a write is acknowledged after COMMIT returns, with
//! `synchronous_commit = on` set on every session, so it is in the WAL on
//! disk.

use std::{convert::Infallible, sync::Arc, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::{AsyncMessage, NoTls, Row, types::FromSql};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{
    Applied, Created, Store, StoreError,
    columns::{Columns, event_from_row, order_from_row, order_id_from_row, sequence_from_row},
};
use crate::domain::{
    Decision, IdempotencyKey, NewOrder, Order, OrderId, PaymentEvent, Scope, StatusChange,
    Timestamp,
};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Pooled connections per store. Writes hold one only for their own
/// transaction and the tail of every write is serialised anyway, so more
/// connections per replica would mostly queue on the `log_head` row lock.
const POOL_SIZE: usize = 16;
/// How long a caller waits for a pooled connection, and a new session for
/// the server, before the call fails instead of hanging.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Set on every session. `statement_timeout` bounds any one statement
/// (including a wait for a row lock held by a stuck peer);
/// `idle_in_transaction_session_timeout` ends a session that left a
/// transaction open (it would hold `log_head` and stop every writer);
/// `synchronous_commit = on` makes "COMMIT returned" mean "on disk" whatever
/// the server's default.
const SESSION_OPTIONS: &str = "-c statement_timeout=5000 \
     -c idle_in_transaction_session_timeout=10000 -c synchronous_commit=on";
/// The `application_name` of the follower's session, so that operators (and
/// tests) can find it in `pg_stat_activity`.
pub const FOLLOWER_APPLICATION_NAME: &str = "payment-core-follower";
const POOL_APPLICATION_NAME: &str = "payment-core";
/// The advisory lock key that serialises migrations across replicas
/// ("payments" in ASCII).
const MIGRATION_LOCK: i64 = 0x7061_796d_656e_7473;
/// The NOTIFY channel; the payload is the new sequence (informational only).
const NOTIFY_CHANNEL: &str = "payment_events";
/// Live events kept for receivers that fall behind (as in the SQLite store).
const LIVE_CHANNEL: usize = 8192;
/// The follower's fallback read interval. Notifications are lost only
/// around a reconnect (after which the follower reads anyway), so this tick
/// is a backstop: a quarter second bounds the extra latency of an event
/// whose hint went missing well below what a shopper notices, and costs one
/// empty primary-key range scan four times a second per replica.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Events read per follower query.
const FOLLOW_PAGE: usize = 1000;
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Open orders due at `$1`, at most `$2`; its condition is the partial
/// index's, so the index is used.
const DUE_FOR_EXPIRY: &str = "SELECT order_id FROM orders WHERE status IN ('created', 'processing') \
     AND expires_at <= $1 ORDER BY expires_at LIMIT $2";
/// An event joined with its order, named like the order's columns so that
/// [`order_from_row`] reads it as the order as of the event.
const EVENT_COLUMNS: &str = "e.sequence AS sequence, e.status AS status, e.reason AS reason, \
     e.provider_reference AS provider_reference, e.occurred_at AS updated_at, \
     o.order_id AS order_id, o.amount_minor AS amount_minor, o.currency AS currency, \
     o.description AS description, o.client_secret AS client_secret, \
     o.idempotency_key AS idempotency_key, o.created_at AS created_at, o.expires_at AS expires_at";
/// Every column of `orders`, in the order [`PostgresStore::create_order`] binds them.
const ORDER_COLUMNS: &str = "order_id, amount_minor, currency, description, client_secret, \
     idempotency_key, status, created_at, updated_at, expires_at, reason, provider_reference";
/// The tail of every write, one statement so that the `log_head` lock is
/// held for one round trip plus the commit: take the next sequence, append
/// the event with it, queue the notification (sent by the server at commit).
const APPEND_EVENT: &str = "WITH head AS ( \
         UPDATE log_head SET sequence = sequence + 1 RETURNING sequence \
     ), appended AS ( \
         INSERT INTO events (sequence, order_id, status, reason, provider_reference, occurred_at) \
         SELECT sequence, $1::text, $2::text, $3::text, $4::text, $5::bigint FROM head \
         RETURNING sequence \
     ) \
     SELECT sequence, pg_notify('payment_events', sequence::text) FROM appended";

pub struct PostgresStore {
    pool: Pool,
    live: broadcast::Sender<Arc<PaymentEvent>>,
    /// Dropping the store stops its follower (so does the shutdown token).
    _stop_follower: DropGuard,
}

impl PostgresStore {
    /// Connects to `url`, migrates the schema and starts the follower, which
    /// runs until `shutdown` is cancelled or the store is dropped.
    pub async fn connect(url: &str, shutdown: CancellationToken) -> Result<Self, StoreError> {
        Self::connect_with_live_capacity(url, LIVE_CHANNEL, shutdown).await
    }

    /// [`PostgresStore::connect`] with a chosen live-channel size; tests use
    /// a tiny one to make watchers lag.
    pub async fn connect_with_live_capacity(
        url: &str,
        live_capacity: usize,
        shutdown: CancellationToken,
    ) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Database(format!("invalid PostgreSQL URL: {e}")))?;
        // Appended: for a repeated `-c`, the server keeps the last one.
        let options = match config.get_options() {
            Some(given) if !given.is_empty() => format!("{given} {SESSION_OPTIONS}"),
            _ => SESSION_OPTIONS.to_owned(),
        };
        config.options(&options);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name(POOL_APPLICATION_NAME);
        }

        migrate(&config).await?;

        let mut follower_config = config.clone();
        follower_config.application_name(FOLLOWER_APPLICATION_NAME);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Database(format!("building the connection pool: {e}")))?;

        // The follower is listening before `connect` returns, so a store
        // that cannot follow the log fails here, not later in the
        // background; and no session is left half-open by a caller that
        // stops polling right after connecting.
        let first = listen(&follower_config).await?;
        // The follower starts at the head: events before it are history,
        // which watchers read from the log themselves.
        let head = head(&pool).await?;
        let (live, _) = broadcast::channel(live_capacity.max(1));
        let stop = shutdown.child_token();
        tokio::spawn(follow(
            follower_config,
            first,
            live.clone(),
            head,
            stop.clone(),
        ));
        Ok(Self {
            pool,
            live,
            _stop_follower: stop.drop_guard(),
        })
    }

    async fn client(&self) -> Result<Object, StoreError> {
        client(&self.pool).await
    }
}

async fn client(pool: &Pool) -> Result<Object, StoreError> {
    pool.get()
        .await
        .map_err(|e| StoreError::Unavailable(format!("no database connection: {e}")))
}

async fn head(pool: &Pool) -> Result<u64, StoreError> {
    let client = client(pool).await?;
    let statement = client
        .prepare_cached("SELECT sequence FROM log_head")
        .await
        .map_err(db)?;
    let row = client.query_one(&statement, &[]).await.map_err(db)?;
    sequence_from_row(&row)
}

/// Runs the embedded migrations under a session-level advisory lock, so
/// replicas starting together migrate once: the others wait for the lock,
/// then find nothing left to do.
async fn migrate(config: &tokio_postgres::Config) -> Result<(), StoreError> {
    let (mut client, connection) = config.connect(NoTls).await.map_err(db)?;
    let driver = tokio::spawn(connection);
    let result = async {
        // Waiting for another replica's migrations is bounded by this, not
        // by the short per-statement timeout of the pooled sessions.
        client
            .batch_execute("SET statement_timeout = '60s'")
            .await
            .map_err(db)?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db)?;
        embedded::migrations::runner()
            .run_async(&mut client)
            .await
            .map_err(|e| StoreError::Database(format!("migrating the schema: {e}")))?;
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db)?;
        Ok(())
    }
    .await;
    // Closing the session releases the lock even if a step above failed.
    drop(client);
    if let Err(error) = driver.await {
        tracing::warn!(%error, "migration connection task failed");
    }
    result
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn create_order(&self, new: NewOrder) -> Result<Created, StoreError> {
        let mut client = self.client().await?;
        // Returning early drops the transaction, which rolls it back.
        let tx = client.transaction().await.map_err(db)?;
        if let Some(key) = &new.idempotency_key
            && let Some(order) = order_by_key(&tx, key).await?
        {
            return same_request(order, &new);
        }
        let order = new.clone().into_order();
        let insert = tx
            .prepare_cached(&format!(
                "INSERT INTO orders ({ORDER_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (idempotency_key) DO NOTHING"
            ))
            .await
            .map_err(db)?;
        let inserted = tx
            .execute(
                &insert,
                &[
                    &order.id.to_string(),
                    &order.amount.minor(),
                    &order.currency.as_str(),
                    &order.description.as_str(),
                    &order.client_secret.as_str(),
                    &order.idempotency_key.as_ref().map(IdempotencyKey::as_str),
                    &order.status.as_str(),
                    &order.created_at.0,
                    &order.updated_at.0,
                    &order.expires_at.0,
                    &order.reason.as_str(),
                    &order.provider_reference.as_str(),
                ],
            )
            .await
            .map_err(db)?;
        if inserted == 0 {
            // Only the idempotency key can conflict here: a concurrent
            // create with the same key committed after our read above (the
            // insert waited for it). In READ COMMITTED this next statement
            // sees that order, and it is the answer.
            let winner = match &new.idempotency_key {
                Some(key) => order_by_key(&tx, key).await?,
                None => None,
            };
            return match winner {
                Some(order) => same_request(order, &new),
                None => Err(StoreError::Database(
                    "order insert conflicted without a conflicting order".into(),
                )),
            };
        }
        let sequence = append_event(&tx, &order).await?;
        tx.commit().await.map_err(db)?;
        Ok(Created::New(PaymentEvent { sequence, order }))
    }

    async fn get_order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1"
            ))
            .await
            .map_err(db)?;
        client
            .query_opt(&statement, &[&id.to_string()])
            .await
            .map_err(db)?
            .as_ref()
            .map(order_from_row)
            .transpose()
    }

    async fn apply(&self, id: OrderId, change: StatusChange) -> Result<Applied, StoreError> {
        let mut client = self.client().await?;
        // Returning early drops the transaction, which rolls it back.
        let tx = client.transaction().await.map_err(db)?;
        // The row lock makes concurrent changes of one order (a report
        // racing expiry on another replica) decide one after the other,
        // each against the row as the previous one committed it.
        let select = tx
            .prepare_cached(&format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1 FOR UPDATE"
            ))
            .await
            .map_err(db)?;
        let row = tx
            .query_opt(&select, &[&id.to_string()])
            .await
            .map_err(db)?
            .ok_or(StoreError::NotFound)?;
        let mut order = order_from_row(&row)?;
        match order.status.decide(change.target)? {
            Decision::AlreadyThere => return Ok(Applied::Unchanged(order)),
            Decision::Move => {}
        }
        order.status = change.target;
        order.reason = change.reason;
        if let Some(reference) = change.provider_reference {
            order.provider_reference = reference;
        }
        // Timestamps never go backwards, even if a replica's clock does.
        order.updated_at = change.at.max(order.updated_at);
        let update = tx
            .prepare_cached(
                "UPDATE orders SET status = $2, reason = $3, provider_reference = $4, \
                 updated_at = $5 WHERE order_id = $1",
            )
            .await
            .map_err(db)?;
        tx.execute(
            &update,
            &[
                &id.to_string(),
                &order.status.as_str(),
                &order.reason.as_str(),
                &order.provider_reference.as_str(),
                &order.updated_at.0,
            ],
        )
        .await
        .map_err(db)?;
        let sequence = append_event(&tx, &order).await?;
        tx.commit().await.map_err(db)?;
        Ok(Applied::Moved(PaymentEvent { sequence, order }))
    }

    async fn events_after(
        &self,
        scope: Scope,
        after: u64,
        limit: u32,
    ) -> Result<Vec<PaymentEvent>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::from(limit);
        let client = self.client().await?;
        let rows = match scope {
            Scope::Order(id) => {
                let statement = client
                    .prepare_cached(&format!(
                        "SELECT {EVENT_COLUMNS} FROM events e JOIN orders o ON o.order_id = e.order_id \
                         WHERE e.order_id = $1 AND e.sequence > $2 ORDER BY e.sequence LIMIT $3"
                    ))
                    .await
                    .map_err(db)?;
                client
                    .query(&statement, &[&id.to_string(), &after, &limit])
                    .await
            }
            Scope::AllOrders => {
                let statement = client
                    .prepare_cached(&format!(
                        "SELECT {EVENT_COLUMNS} FROM events e JOIN orders o ON o.order_id = e.order_id \
                         WHERE e.sequence > $1 ORDER BY e.sequence LIMIT $2"
                    ))
                    .await
                    .map_err(db)?;
                client.query(&statement, &[&after, &limit]).await
            }
        }
        .map_err(db)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn head_sequence(&self) -> Result<u64, StoreError> {
        head(&self.pool).await
    }

    async fn due_for_expiry(&self, now: Timestamp, limit: u32) -> Result<Vec<OrderId>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(DUE_FOR_EXPIRY).await.map_err(db)?;
        client
            .query(&statement, &[&now.0, &i64::from(limit)])
            .await
            .map_err(db)?
            .iter()
            .map(order_id_from_row)
            .collect()
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<PaymentEvent>> {
        self.live.subscribe()
    }
}

/// The order created with `key`, if any.
async fn order_by_key(
    tx: &deadpool_postgres::Transaction<'_>,
    key: &IdempotencyKey,
) -> Result<Option<Order>, StoreError> {
    let statement = tx
        .prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE idempotency_key = $1"
        ))
        .await
        .map_err(db)?;
    tx.query_opt(&statement, &[&key.as_str()])
        .await
        .map_err(db)?
        .as_ref()
        .map(order_from_row)
        .transpose()
}

/// The answer to a create whose idempotency key is taken by `order`.
fn same_request(order: Order, new: &NewOrder) -> Result<Created, StoreError> {
    if order.same_request_as(new) {
        Ok(Created::Existing(order))
    } else {
        Err(StoreError::IdempotencyKeyReused)
    }
}

/// Appends `order`'s event as the transaction's last statement; see
/// [`APPEND_EVENT`] and the module documentation for why last.
async fn append_event(
    tx: &deadpool_postgres::Transaction<'_>,
    order: &Order,
) -> Result<u64, StoreError> {
    let statement = tx.prepare_cached(APPEND_EVENT).await.map_err(db)?;
    let row = tx
        .query_one(
            &statement,
            &[
                &order.id.to_string(),
                &order.status.as_str(),
                &order.reason.as_str(),
                &order.provider_reference.as_str(),
                &order.updated_at.0,
            ],
        )
        .await
        .map_err(db)?;
    sequence_from_row(&row)
}

/// The follower: runs sessions, starting with `first`, until `stop`,
/// reconnecting with backoff. `published` is the last sequence sent to
/// `live`; it survives reconnects, so a new session continues exactly where
/// the last one stopped.
async fn follow(
    config: tokio_postgres::Config,
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
                    None => listen(&config).await?,
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
struct Listening {
    client: tokio_postgres::Client,
    hints: mpsc::Receiver<()>,
}

/// Opens the follower's own (unpooled) session and LISTENs on it.
async fn listen(config: &tokio_postgres::Config) -> Result<Listening, StoreError> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(db)?;
    // Capacity 1: a pending hint already means "read soon", and that read
    // covers every event committed before it; extra hints are dropped.
    let (hint, hints) = mpsc::channel::<()>(1);
    // Ends when the connection fails or the client is dropped.
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    // Full: a read is already due. Closed: the session is over.
                    let _ = hint.try_send(());
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
        .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
        .await
        .map_err(db)?;
    Ok(Listening { client, hints })
}

/// One follower session: read the log after `published` now, on every
/// notification and on every poll tick, until the connection fails.
/// Dropping it (on shutdown) drops the client, which ends the connection
/// task.
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
    loop {
        // Read first: this covers whatever committed while no session was
        // listening (before LISTEN, notifications are not delivered).
        publish_new(&client, &read, live, published).await?;
        tokio::select! {
            hinted = hints.recv() => {
                if hinted.is_none() {
                    return Err(StoreError::Database("follower connection closed".into()));
                }
            }
            _ = tick.tick() => {}
        }
    }
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
            *published = event.sequence;
            // No receivers is fine: nobody is watching right now.
            let _ = live.send(Arc::new(event));
        }
        if rows.len() < FOLLOW_PAGE {
            return Ok(());
        }
    }
}

/// A database error with the server's message (tokio-postgres's own
/// `Display` says only "db error").
/// A database error as the store's: the server refusing a statement is a
/// database error; a connection that is gone, a server shutting down or
/// refusing sessions, or a statement cancelled by its timeout is
/// [`StoreError::Unavailable`], which callers may retry elsewhere.
fn db(error: tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    if let Some(server) = error.as_db_error() {
        let code = server.code();
        let transient = code.code().starts_with("08")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
                SqlState::QUERY_CANCELED,
            ]
            .contains(code);
        return if transient {
            StoreError::Unavailable(server.to_string())
        } else {
            StoreError::Database(server.to_string())
        };
    }
    // No answer from the server at all: the connection failed.
    match std::error::Error::source(&error) {
        Some(cause) => StoreError::Unavailable(format!("{error}: {cause}")),
        None => StoreError::Unavailable(error.to_string()),
    }
}

fn column<'a, T: FromSql<'a>>(row: &'a Row, name: &str) -> Result<T, StoreError> {
    row.try_get(name)
        .map_err(|e| StoreError::Database(format!("reading column {name}: {e}")))
}

impl Columns for Row {
    type Error = StoreError;

    fn text(&self, name: &str) -> Result<String, StoreError> {
        column(self, name)
    }

    fn optional_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        column(self, name)
    }

    fn integer(&self, name: &str) -> Result<i64, StoreError> {
        column(self, name)
    }

    fn corrupt(&self, name: &str) -> StoreError {
        StoreError::Database(format!("stored {name} is invalid"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIGRATION: &str = include_str!("../../migrations/V1__orders_and_event_log.sql");

    #[test]
    fn the_open_statuses_written_in_the_sql_are_those_the_state_machine_can_leave() {
        let condition = super::super::open_statuses_condition();
        assert!(MIGRATION.contains(&condition), "index: {condition}");
        assert!(DUE_FOR_EXPIRY.contains(&condition), "query: {condition}");
    }

    #[test]
    fn the_notify_channel_in_the_append_statement_is_the_one_the_follower_listens_on() {
        assert!(APPEND_EVENT.contains(&format!("pg_notify('{NOTIFY_CHANNEL}'")));
    }
}
