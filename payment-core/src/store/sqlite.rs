//! The embedded store: one SQLite file in WAL mode.
//!
//! Writes go through one writer thread that owns the only write connection.
//! It takes whatever commands are queued (up to [`MAX_BATCH`]), runs them in
//! one `BEGIN IMMEDIATE` transaction, commits once (one fsync for the batch:
//! group commit), and only then answers the callers and publishes the new
//! events. One writer, publishing after commit in the order it wrote, is
//! what makes the live channel carry events in sequence order.
//!
//! Reads run on tokio's blocking pool with connections from a small idle
//! list; WAL lets them read while the writer writes.
//!
//! Durability: `synchronous = FULL` in WAL mode syncs the log on every
//! commit, so an acknowledged write survives a crash or power loss.
//!
//! Checkpoints (copying the WAL back into the database file) run on a
//! background thread with its own connection, not inside a commit on the
//! writer thread, where SQLite's automatic checkpoint would stall every
//! write queued behind it several times a second under load.
//!
//! A lock file next to the database keeps a second payment-core process off
//! the same file: its watchers would miss this process's live events.

use std::{
    fs::{File, OpenOptions},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Instant,
};

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use tokio::sync::{broadcast, mpsc};

use super::{
    Applied, Created, Store, StoreError,
    batch::{
        MAX_BATCH, Outcome, WriteCommand, WriteMetrics, WriteQueue, answer, fail, take_queued,
    },
    columns::{
        Columns, EVENT_COLUMNS, ORDER_COLUMNS, event_from_row, order_from_row, order_id_from_row,
    },
};
use crate::domain::{
    ClientSecret, Decision, IdempotencyKey, MerchantId, NewOrder, Order, OrderId, PaymentEvent,
    Scope, StatusChange, Timestamp, TraceParent,
};

/// Live events kept for receivers that fall behind. A receiver further
/// behind than this gets `Lagged` and re-reads from the log, so the size only
/// trades memory for how often slow watchers touch the database.
const LIVE_CHANNEL: usize = 8192;
/// Idle read connections kept open; more are opened on demand and closed
/// after use.
const MAX_IDLE_READERS: usize = 8;
/// How often the background thread checkpoints the WAL.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);
/// Reads running at once. Each holds a blocking-pool thread and a
/// connection; a reconnect storm beyond this waits its turn instead of
/// exhausting the blocking pool (which the writer's callers share).
const MAX_CONCURRENT_READS: usize = 32;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS orders (
    order_id           TEXT PRIMARY KEY,
    status             TEXT NOT NULL,
    amount_minor       INTEGER NOT NULL,
    currency           TEXT NOT NULL,
    description        TEXT NOT NULL,
    client_secret      TEXT NOT NULL,
    idempotency_key    TEXT UNIQUE,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    reason             TEXT NOT NULL DEFAULT '',
    provider_reference TEXT NOT NULL DEFAULT '',
    merchant           TEXT,
    trace_parent       TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS orders_open_by_expiry
    ON orders(expires_at) WHERE status IN ('created', 'processing');
CREATE TABLE IF NOT EXISTS events (
    sequence           INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id           TEXT NOT NULL REFERENCES orders(order_id),
    status             TEXT NOT NULL,
    reason             TEXT NOT NULL,
    provider_reference TEXT NOT NULL,
    occurred_at        INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS events_by_order ON events(order_id, sequence);
CREATE TRIGGER IF NOT EXISTS events_are_append_only_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_are_append_only_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
"#;

/// Columns `orders` gained after its first release. A file made before
/// one gets it (NULL for its old orders); `CREATE TABLE IF NOT EXISTS`
/// leaves an existing table as it was.
const ADDED_ORDER_COLUMNS: [&str; 2] = ["merchant", "trace_parent"];

fn add_order_columns(conn: &Connection) -> Result<(), StoreError> {
    for column in ADDED_ORDER_COLUMNS {
        let has_column = conn
            .prepare("SELECT 1 FROM pragma_table_info('orders') WHERE name = ?1")
            .and_then(|mut stmt| stmt.exists([column]))
            .map_err(db)?;
        if !has_column {
            conn.execute_batch(&format!("ALTER TABLE orders ADD COLUMN {column} TEXT"))
                .map_err(db)?;
        }
    }
    Ok(())
}

/// Open orders due at `?1`, at most `?2`. Its condition is the partial
/// index's, so SQLite uses the index.
const DUE_FOR_EXPIRY: &str = "SELECT order_id FROM orders WHERE status IN ('created', 'processing') \
     AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2";

pub struct SqliteStore {
    writer: WriteQueue,
    metrics: WriteMetrics,
    readers: Arc<ReaderPool>,
    live: broadcast::Sender<Arc<PaymentEvent>>,
    /// Dropping it ends the checkpoint thread.
    _checkpoint_stop: std::sync::mpsc::Sender<()>,
    /// Held for the store's lifetime: the OS releases it when the process ends.
    _lock: File,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts the writer thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_live_capacity(path, LIVE_CHANNEL)
    }

    /// [`SqliteStore::open`] with a chosen live-channel size; tests use a
    /// tiny one to make watchers lag.
    pub fn open_with_live_capacity(path: &Path, live_capacity: usize) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Database(format!("creating {}: {e}", dir.display())))?;
        }
        let lock_path = PathBuf::from(format!("{}.lock", path.display()));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Database(format!("opening {}: {e}", lock_path.display())))?;
        lock.try_lock().map_err(|_| {
            StoreError::Database(format!(
                "{} is in use by another payment-core process",
                path.display()
            ))
        })?;

        let conn = Connection::open(path).map_err(db)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
             PRAGMA busy_timeout = 5000; PRAGMA wal_autocheckpoint = 0;",
        )
        .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        add_order_columns(&conn)?;

        let (writer, commands) = WriteQueue::new();
        let (live, _) = broadcast::channel(live_capacity.max(1));
        let publisher = live.clone();
        let metrics = WriteMetrics::default();
        let writer_metrics = metrics.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run_writer(conn, commands, publisher, &writer_metrics))
            .map_err(|e| StoreError::Database(format!("starting writer thread: {e}")))?;
        let readers = Arc::new(ReaderPool {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(MAX_CONCURRENT_READS),
        });
        let (checkpoint_stop, stop_requested) = std::sync::mpsc::channel::<()>();
        let checkpoint_path = path.to_owned();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run_checkpoints(&checkpoint_path, &stop_requested))
            .map_err(|e| StoreError::Database(format!("starting checkpoint thread: {e}")))?;
        Ok(Self {
            writer,
            metrics,
            readers,
            live,
            _checkpoint_stop: checkpoint_stop,
            _lock: lock,
        })
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn create_order(&self, new: NewOrder) -> Result<Created, StoreError> {
        self.writer.create(new).await
    }

    async fn get_order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.readers
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = ?1"
                ))?
                .query_row([id.to_string()], |row| order_from_row(row))
                .optional()
            })
            .await
    }

    async fn client_secret(&self, id: OrderId) -> Result<Option<ClientSecret>, StoreError> {
        self.readers
            .read(move |conn| {
                conn.prepare_cached("SELECT client_secret FROM orders WHERE order_id = ?1")?
                    .query_row([id.to_string()], |row| {
                        row.get(0).map(ClientSecret::from_stored)
                    })
                    .optional()
            })
            .await
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
        self.readers
            .read(move |conn| match scope {
                Scope::Order(id) => conn
                    .prepare_cached(&format!(
                        "SELECT {EVENT_COLUMNS} FROM events e JOIN orders o ON o.order_id = e.order_id \
                         WHERE e.order_id = ?1 AND e.sequence > ?2 ORDER BY e.sequence LIMIT ?3"
                    ))?
                    .query_map(params![id.to_string(), after, limit], |row| event_from_row(row))?
                    .collect(),
                Scope::AllOrders => conn
                    .prepare_cached(&format!(
                        "SELECT {EVENT_COLUMNS} FROM events e JOIN orders o ON o.order_id = e.order_id \
                         WHERE e.sequence > ?1 ORDER BY e.sequence LIMIT ?2"
                    ))?
                    .query_map(params![after, limit], |row| event_from_row(row))?
                    .collect(),
            })
            .await
    }

    async fn head_sequence(&self) -> Result<u64, StoreError> {
        self.readers
            .read(|conn| {
                conn.prepare_cached("SELECT COALESCE(MAX(sequence), 0) AS head FROM events")?
                    .query_row([], |row| row.get::<_, i64>("head"))
            })
            .await
            .map(|head| head as u64)
    }

    async fn due_for_expiry(&self, now: Timestamp, limit: u32) -> Result<Vec<OrderId>, StoreError> {
        self.readers
            .read(move |conn| {
                conn.prepare_cached(DUE_FOR_EXPIRY)?
                    .query_map(params![now.0, limit], |row| order_id_from_row(row))?
                    .collect()
            })
            .await
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<PaymentEvent>> {
        self.live.subscribe()
    }

    fn write_metrics(&self) -> &WriteMetrics {
        &self.metrics
    }
}

fn db(error: rusqlite::Error) -> StoreError {
    StoreError::Database(error.to_string())
}

/// Read connections not in use. The mutex guards only the list: it is held
/// to push or pop a connection, never while a query runs.
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: tokio::sync::Semaphore,
}

impl ReaderPool {
    async fn read<T, F>(self: &Arc<Self>, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            let result = query(&conn).map_err(db);
            pool.give_back(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Database(format!("read task failed: {e}")))?
    }

    fn take(&self) -> Result<Connection, StoreError> {
        if let Some(conn) = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop()
        {
            return Ok(conn);
        }
        let conn = Connection::open(&self.path).map_err(db)?;
        conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;")
            .map_err(db)?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}

/// The checkpoint thread: a PASSIVE checkpoint every [`CHECKPOINT_INTERVAL`]
/// (it never waits for the writer or readers; what it cannot copy now it
/// copies next time), plus a last one when the store is dropped.
fn run_checkpoints(path: &Path, stop_requested: &std::sync::mpsc::Receiver<()>) {
    let conn = match Connection::open(path).and_then(|conn| {
        conn.execute_batch("PRAGMA busy_timeout = 5000;")
            .map(|()| conn)
    }) {
        Ok(conn) => conn,
        Err(error) => {
            tracing::error!(%error, "checkpoint connection failed; the WAL will grow until restart");
            return;
        }
    };
    let checkpoint = || {
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "WAL checkpoint failed; retrying later");
        }
    };
    // Only a timeout means "go on": a message or a dropped sender means stop.
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
        stop_requested.recv_timeout(CHECKPOINT_INTERVAL)
    {
        checkpoint();
    }
    checkpoint();
}

/// The writer thread: runs until every [`SqliteStore`] handle is dropped.
fn run_writer(
    mut conn: Connection,
    mut commands: mpsc::Receiver<WriteCommand>,
    live: broadcast::Sender<Arc<PaymentEvent>>,
    metrics: &WriteMetrics,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = commands.blocking_recv() {
        let started = Instant::now();
        batch.push(first);
        take_queued(&mut commands, &mut batch);
        match commit_batch(&mut conn, &batch) {
            Ok(outcomes) => {
                for event in outcomes.iter().filter_map(Outcome::event) {
                    // No receivers is fine: nobody is watching right now.
                    let _ = live.send(Arc::new(event.clone()));
                }
                answer(&mut batch, outcomes, metrics, started);
            }
            Err(error) => fail(&mut batch, &error, metrics),
        }
    }
    tracing::debug!("sqlite writer stopped");
}

/// Runs `batch` in one transaction. Domain refusals (conflicts, unknown
/// orders) write nothing and do not spoil the batch; a database error rolls
/// the whole batch back and every caller in it gets an error.
fn commit_batch(conn: &mut Connection, batch: &[WriteCommand]) -> Result<Vec<Outcome>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for command in batch.iter() {
        let outcome = match command {
            WriteCommand::Create { new, .. } => Outcome::Created(create(&tx, new)),
            WriteCommand::Apply { id, change, .. } => Outcome::Applied(apply(&tx, *id, change)),
        };
        // Stop at the first failure: some (a full disk) roll the
        // transaction back on their own, and the commands after it
        // would then commit one by one, outside the batch.
        if let Some(error) = outcome.database_error() {
            return Err(error.clone());
        }
        outcomes.push(outcome);
    }
    tx.commit().map_err(db)?;
    Ok(outcomes)
}

fn create(tx: &rusqlite::Transaction<'_>, new: &NewOrder) -> Result<Created, StoreError> {
    if let Some(key) = &new.idempotency_key {
        let existing = tx
            .prepare_cached(&format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE idempotency_key = ?1"
            ))
            .and_then(|mut stmt| {
                stmt.query_row([key.as_str()], |row| order_from_row(row))
                    .optional()
            })
            .map_err(db)?;
        if let Some(order) = existing {
            return if order.same_request_as(new) {
                Ok(Created::Existing(order))
            } else {
                Err(StoreError::IdempotencyKeyReused)
            };
        }
    }
    let order = new.to_order();
    tx.prepare_cached(&format!(
        "INSERT INTO orders ({ORDER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    ))
    .and_then(|mut stmt| {
        stmt.execute(params![
            order.id.to_string(),
            order.amount.minor(),
            order.currency.as_str(),
            order.description.as_str(),
            new.client_secret.as_str(),
            order.idempotency_key.as_ref().map(IdempotencyKey::as_str),
            order.status.as_str(),
            order.created_at.0,
            order.updated_at.0,
            order.expires_at.0,
            order.reason.as_str(),
            order.provider_reference.as_str(),
            order.merchant.as_ref().map(MerchantId::as_str),
            order.trace_parent.as_ref().map(TraceParent::as_str),
        ])
    })
    .map_err(db)?;
    let sequence = append_event(tx, &order)?;
    Ok(Created::New(PaymentEvent { sequence, order }))
}

fn apply(
    tx: &rusqlite::Transaction<'_>,
    id: OrderId,
    change: &StatusChange,
) -> Result<Applied, StoreError> {
    let mut order = tx
        .prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = ?1"
        ))
        .and_then(|mut stmt| {
            stmt.query_row([id.to_string()], |row| order_from_row(row))
                .optional()
        })
        .map_err(db)?
        .ok_or(StoreError::NotFound)?;
    if order.change(change)? == Decision::AlreadyThere {
        return Ok(Applied::Unchanged(order));
    }
    tx.prepare_cached(
        "UPDATE orders SET status = ?2, reason = ?3, provider_reference = ?4, updated_at = ?5 WHERE order_id = ?1",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            id.to_string(),
            order.status.as_str(),
            order.reason.as_str(),
            order.provider_reference.as_str(),
            order.updated_at.0,
        ])
    })
    .map_err(db)?;
    let sequence = append_event(tx, &order)?;
    Ok(Applied::Moved(PaymentEvent { sequence, order }))
}

fn append_event(tx: &rusqlite::Transaction<'_>, order: &Order) -> Result<u64, StoreError> {
    tx.prepare_cached(
        "INSERT INTO events (order_id, status, reason, provider_reference, occurred_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            order.id.to_string(),
            order.status.as_str(),
            order.reason.as_str(),
            order.provider_reference.as_str(),
            order.updated_at.0,
        ])
    })
    .map_err(db)?;
    Ok(tx.last_insert_rowid() as u64)
}

impl Columns for Row<'_> {
    type Error = rusqlite::Error;

    fn text(&self, name: &str) -> rusqlite::Result<String> {
        self.get(name)
    }

    fn optional_text(&self, name: &str) -> rusqlite::Result<Option<String>> {
        self.get(name)
    }

    fn integer(&self, name: &str) -> rusqlite::Result<i64> {
        self.get(name)
    }

    fn corrupt(&self, name: &str) -> rusqlite::Error {
        match self.as_ref().column_index(name) {
            Ok(index) => rusqlite::Error::FromSqlConversionFailure(
                index,
                rusqlite::types::Type::Text,
                format!("stored {name} is invalid").into(),
            ),
            Err(error) => error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_statuses_written_in_the_sql_are_those_the_state_machine_can_leave() {
        let condition = super::super::open_statuses_condition();
        assert!(SCHEMA.contains(&condition), "index: {condition}");
        assert!(DUE_FOR_EXPIRY.contains(&condition), "query: {condition}");
    }
}
