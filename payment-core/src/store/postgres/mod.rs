//! The shared store: one PostgreSQL database behind several payment-core
//! replicas.
//!
//! Writes: one writer task per store commits queued commands in batches,
//! one transaction per batch ([`writer`] lists its statements). The last
//! statement of each takes the batch's sequences from the one-row
//! `log_head` counter, appends its events and queues one `pg_notify`. The
//! `log_head` row lock is held from that statement until COMMIT, so the
//! next batch, on any replica, gets its sequences only after this one has
//! committed: sequences are dense and their order is commit order. A reader
//! of `events WHERE sequence > n` therefore sees a prefix of the log and
//! never skips an event that commits later than a higher one (with a
//! `bigserial`, sequence 7 can commit after 8, and a reader that saw 8
//! resumes after it and loses 7 for good). The price: the tail of every
//! batch (one statement and the commit's WAL flush) is serialised across all
//! replicas; batching spreads it over every event of the batch.
//!
//! Fan-out: nothing is published by the writer. The [`follower`] task
//! publishes to this store's broadcast channel, in sequence order, the
//! events each batch's `NOTIFY` carries, and reads the log after the last
//! sequence it published whenever a notification does not continue it, on
//! a poll tick and after a reconnect.
//!
//! Durability: a write is acknowledged after COMMIT returns, with
//! `synchronous_commit = on` set on every session, so it is in the WAL on
//! disk.

use std::{sync::Arc, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio::sync::broadcast;
use tokio_postgres::{NoTls, Row, types::FromSql};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{
    Applied, Created, Store, StoreError,
    batch::{WriteMetrics, WriteQueue},
    columns::{
        Columns, EVENT_COLUMNS, ORDER_COLUMNS, event_from_row, order_from_row, order_id_from_row,
        sequence_from_row,
    },
};
use crate::domain::{
    ClientSecret, NewOrder, Order, OrderId, PaymentEvent, Scope, StatusChange, Timestamp,
};

mod follower;
mod notification;
mod writer;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Pooled connections per store: one for the writer's batch at a time, the
/// rest for reads (history pages, expiry queries), which a reconnect storm
/// makes many at once; callers beyond this wait for a connection.
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
/// Live events kept for receivers that fall behind (as in the SQLite store).
const LIVE_CHANNEL: usize = 8192;
/// Open orders due at `$1`, at most `$2`; its condition is the partial
/// index's, so the index is used.
const DUE_FOR_EXPIRY: &str = "SELECT order_id FROM orders WHERE status IN ('created', 'processing') \
     AND expires_at <= $1 ORDER BY expires_at LIMIT $2";

pub struct PostgresStore {
    pool: Pool,
    writer: WriteQueue,
    metrics: WriteMetrics,
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
        // A connection whose peer vanished (a partition, a dead host) is
        // noticed in about half a minute instead of the OS's two hours.
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3);

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

        let channel = notify_channel(&pool).await?;
        // The follower is listening before `connect` returns, so a store
        // that cannot follow the log fails here, not later in the
        // background; and no session is left half-open by a caller that
        // stops polling right after connecting.
        let first = follower::listen(&follower_config, &channel).await?;
        // The follower starts at the head: events before it are history,
        // which watchers read from the log themselves.
        let head = head(&pool).await?;
        let (live, _) = broadcast::channel(live_capacity.max(1));
        let stop = shutdown.child_token();
        tokio::spawn(follower::follow(
            follower_config,
            Arc::clone(&channel),
            first,
            live.clone(),
            head,
            stop.clone(),
        ));
        let (writer, commands) = WriteQueue::new();
        let metrics = WriteMetrics::default();
        tokio::spawn(writer::run(
            pool.clone(),
            channel,
            commands,
            metrics.clone(),
        ));
        Ok(Self {
            pool,
            writer,
            metrics,
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

/// The log's NOTIFY channel: random per log (see the migration that adds
/// it), so only roles that can read `log_head` can listen to or forge its
/// notifications, which carry events.
async fn notify_channel(pool: &Pool) -> Result<Arc<str>, StoreError> {
    let client = client(pool).await?;
    let row = client
        .query_one("SELECT notify_channel FROM log_head", &[])
        .await
        .map_err(db)?;
    let channel: String = column(&row, "notify_channel")?;
    // It is written into LISTEN as an identifier: only what the migration
    // generates is accepted.
    if channel.is_empty()
        || !channel
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(StoreError::Database(format!(
            "log_head.notify_channel {channel:?} is not a channel name this store made"
        )));
    }
    Ok(channel.into())
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
        self.writer.create(new).await
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

    async fn client_secret(&self, id: OrderId) -> Result<Option<ClientSecret>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT client_secret FROM orders WHERE order_id = $1")
            .await
            .map_err(db)?;
        client
            .query_opt(&statement, &[&id.to_string()])
            .await
            .map_err(db)?
            .map(|row| row.try_get(0).map(ClientSecret::from_stored))
            .transpose()
            .map_err(db)
    }

    async fn apply(&self, id: OrderId, change: StatusChange) -> Result<Applied, StoreError> {
        self.writer.apply(id, change).await
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

    fn write_metrics(&self) -> &WriteMetrics {
        &self.metrics
    }
}

/// A database error as the store's, with the server's message
/// (tokio-postgres's own `Display` says only "db error"): the server refusing a statement is a
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

    const MIGRATION: &str = include_str!("../../../migrations/V1__orders_and_event_log.sql");

    #[test]
    fn the_open_statuses_written_in_the_sql_are_those_the_state_machine_can_leave() {
        let condition = super::super::open_statuses_condition();
        assert!(MIGRATION.contains(&condition), "index: {condition}");
        assert!(DUE_FOR_EXPIRY.contains(&condition), "query: {condition}");
    }
}
