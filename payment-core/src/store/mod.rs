//! The event store: orders, their append-only event log, and live fan-out of
//! new events to watchers in this process.
//!
//! [`Store`] is the whole interface the service needs. [`SqliteStore`] is
//! the embedded default, one process per file; [`PostgresStore`] is for any
//! number of replicas sharing one database (its module says how sequences
//! and fan-out work across processes).
//!
//! Invariants every implementation keeps:
//! - a status change and its event are written in one transaction, and the
//!   state-machine decision is made inside that transaction;
//! - sequences increase across the whole store and are never reused, also
//!   across restarts;
//! - [`Store::subscribe`] delivers committed events in sequence order;
//! - a write is acknowledged only once it is durable.

mod batch;
mod columns;
mod postgres;
mod sqlite;

use std::sync::Arc;

use tokio::sync::broadcast;

pub use batch::WriteMetrics;
pub use postgres::{FOLLOWER_APPLICATION_NAME, PostgresStore};
pub use sqlite::SqliteStore;

use crate::domain::{
    ClientSecret, NewOrder, Order, OrderId, PaymentEvent, Scope, StatusChange, StatusConflict,
    Timestamp,
};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("order not found")]
    NotFound,
    #[error(transparent)]
    Conflict(#[from] StatusConflict),
    #[error("idempotency key already used with different parameters")]
    IdempotencyKeyReused,
    #[error("store is shut down")]
    Closed,
    /// The database cannot be reached now (connection refused or lost,
    /// server restarting, a statement timed out): the caller may retry,
    /// here or on another replica.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(String),
}

/// What CreateOrder did.
#[derive(Debug, Clone)]
pub enum Created {
    /// A new order and its `created` event.
    New(PaymentEvent),
    /// The idempotency key matched an order created with the same parameters.
    Existing(Order),
}

/// What a status change did.
#[derive(Debug, Clone)]
pub enum Applied {
    /// The order moved; this is its new event.
    Moved(PaymentEvent),
    /// The order was already in the requested status; nothing was written.
    Unchanged(Order),
}

/// The SQL condition "the order can still change", as both stores' schemas
/// and expiry queries must spell it: the statuses the state machine can
/// leave. Their tests check their SQL contains it.
#[cfg(test)]
fn open_statuses_condition() -> String {
    let open: Vec<String> = crate::domain::OrderStatus::ALL
        .into_iter()
        .filter(|status| !status.is_terminal())
        .map(|status| format!("'{status}'"))
        .collect();
    format!("status IN ({})", open.join(", "))
}

#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    async fn create_order(&self, new: NewOrder) -> Result<Created, StoreError>;
    async fn get_order(&self, id: OrderId) -> Result<Option<Order>, StoreError>;
    /// The order's client secret, which nothing else the store returns
    /// holds: only for the answers that hand it out.
    async fn client_secret(&self, id: OrderId) -> Result<Option<ClientSecret>, StoreError>;
    /// Applies `change` if the state machine allows it (decided in the write
    /// transaction, against the current row).
    async fn apply(&self, id: OrderId, change: StatusChange) -> Result<Applied, StoreError>;
    /// Events in `scope` with sequence > `after`, oldest first, at most `limit`.
    async fn events_after(
        &self,
        scope: Scope,
        after: u64,
        limit: u32,
    ) -> Result<Vec<PaymentEvent>, StoreError>;
    /// The highest sequence written so far (0 when empty).
    async fn head_sequence(&self) -> Result<u64, StoreError>;
    /// Orders still CREATED or PROCESSING whose `expires_at` <= `now`.
    async fn due_for_expiry(&self, now: Timestamp, limit: u32) -> Result<Vec<OrderId>, StoreError>;
    /// Live events, in sequence order, from about now: at least every event
    /// committed after this call (PostgreSQL may also repeat a few committed
    /// just before it, which readers skip by sequence). A receiver that
    /// falls behind gets `Lagged` and must re-read from
    /// [`Store::events_after`]; the log, not the channel, is the truth.
    fn subscribe(&self) -> broadcast::Receiver<Arc<PaymentEvent>>;
    /// The writer's metrics (commit latency, batch size, head), to register.
    fn write_metrics(&self) -> &WriteMetrics;
}
