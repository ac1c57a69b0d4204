//! payment-core's Prometheus metrics (README, "Metrics and traces"), served on their
//! own address (`PAYMENT_CORE_METRICS_LISTEN`) by [`serve`].
//!
//! [`CoreMetrics`] holds the handles the gRPC edge, the watchers and the
//! expiry task update; the store keeps its own ([`crate::store::WriteMetrics`])
//! and registers them here. Handles are atomics shared by clones, so
//! updating one takes no lock and no lookup.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use payments_proto::signature::SignatureError;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::domain::{OrderStatus, Scope};

/// How the provider's report ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ReportOutcome {
    /// The order moved.
    Applied,
    /// The order was already there (a retried report).
    Repeated,
    /// Refused: see [`RefusalReason`].
    Refused,
}

service_kit::label_values!(ReportOutcome {
    Applied => "applied",
    Repeated => "repeated",
    Refused => "refused",
});

/// Why a report was refused.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RefusalReason {
    /// Not refused.
    None,
    /// No signature or timestamp, or not in the signature's format.
    Unsigned,
    /// Signed with another secret, or the message was changed.
    BadSignature,
    /// Signed too long ago (or ahead): outside the tolerance.
    StaleSignature,
    /// A field did not parse.
    InvalidArgument,
    UnknownOrder,
    /// The state machine does not allow the move (paid after canceled).
    IllegalTransition,
    /// The store could not take it now.
    Unavailable,
}

service_kit::label_values!(RefusalReason {
    None => "none",
    Unsigned => "unsigned",
    BadSignature => "bad_signature",
    StaleSignature => "stale_signature",
    InvalidArgument => "invalid_argument",
    UnknownOrder => "unknown_order",
    IllegalTransition => "illegal_transition",
    Unavailable => "unavailable",
});

impl From<&SignatureError> for RefusalReason {
    fn from(error: &SignatureError) -> Self {
        match error {
            SignatureError::MissingTimestamp
            | SignatureError::MalformedTimestamp
            | SignatureError::MissingSignature
            | SignatureError::MalformedSignature => Self::Unsigned,
            SignatureError::OutsideTolerance { .. } => Self::StaleSignature,
            SignatureError::Mismatch => Self::BadSignature,
        }
    }
}

/// The status a report asked for, as a label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ReportedStatus {
    Processing,
    Succeeded,
    Failed,
    Canceled,
    /// A refused report whose fields did not parse.
    Unknown,
}

service_kit::label_values!(ReportedStatus {
    Processing => "processing",
    Succeeded => "succeeded",
    Failed => "failed",
    Canceled => "canceled",
    Unknown => "unknown",
});

impl From<OrderStatus> for ReportedStatus {
    fn from(status: OrderStatus) -> Self {
        match status {
            OrderStatus::Processing => Self::Processing,
            OrderStatus::Succeeded => Self::Succeeded,
            OrderStatus::Failed => Self::Failed,
            OrderStatus::Canceled => Self::Canceled,
            OrderStatus::Created | OrderStatus::Expired => Self::Unknown,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReportLabels {
    pub outcome: ReportOutcome,
    pub reason: RefusalReason,
    pub status: ReportedStatus,
}

/// What a WatchPayments stream follows.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum WatchKind {
    Order,
    AllOrders,
}

service_kit::label_values!(WatchKind {
    Order => "order",
    AllOrders => "all_orders",
});

impl From<&Scope> for WatchKind {
    fn from(scope: &Scope) -> Self {
        match scope {
            Scope::Order(_) => Self::Order,
            Scope::AllOrders => Self::AllOrders,
        }
    }
}

/// Why a watch ended (`crate::watch::WatchEnd`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum WatchEndReason {
    Completed,
    ClientGone,
    /// Cut off: the client left its buffer full too long.
    TooSlow,
    ShuttingDown,
    StoreLost,
    Failed,
}

service_kit::label_values!(WatchEndReason {
    Completed => "completed",
    ClientGone => "client_gone",
    TooSlow => "too_slow",
    ShuttingDown => "shutting_down",
    StoreLost => "store_lost",
    Failed => "failed",
});

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    pub kind: WatchKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchEndLabels {
    pub kind: WatchKind,
    pub reason: WatchEndReason,
}

#[derive(Clone, Default)]
pub struct CoreMetrics {
    orders_created: Counter,
    orders_expired: Counter,
    reports: Family<ReportLabels, Counter>,
    watchers_open: Family<WatchLabels, Gauge>,
    watchers_ended: Family<WatchEndLabels, Counter>,
}

impl CoreMetrics {
    pub fn register(&self, registry: &mut Registry) {
        // Both kinds are shown from the start, at 0.
        for kind in [WatchKind::Order, WatchKind::AllOrders] {
            drop(self.watchers_open.get_or_create(&WatchLabels { kind }));
        }
        registry.register(
            "orders_created",
            "Orders created (a CreateOrder answered from an idempotency key is not counted).",
            self.orders_created.clone(),
        );
        registry.register(
            "orders_expired",
            "Orders moved to EXPIRED by the expiry sweep.",
            self.orders_expired.clone(),
        );
        registry.register(
            "reports",
            "Provider reports by outcome (applied, repeated, refused), refusal reason and the status reported.",
            self.reports.clone(),
        );
        registry.register(
            "watchers_open",
            "Open WatchPayments streams, by kind (order, all_orders).",
            self.watchers_open.clone(),
        );
        registry.register(
            "watchers_ended",
            "WatchPayments streams ended, by kind and reason (too_slow: cut off for not reading).",
            self.watchers_ended.clone(),
        );
    }

    pub fn order_created(&self) {
        self.orders_created.inc();
    }

    pub fn orders_expired(&self, count: u64) {
        self.orders_expired.inc_by(count);
    }

    pub fn report(&self, outcome: ReportOutcome, reason: RefusalReason, status: ReportedStatus) {
        self.reports
            .get_or_create(&ReportLabels {
                outcome,
                reason,
                status,
            })
            .inc();
    }

    /// Counts a watcher open until the returned guard is dropped, and its end.
    pub fn watcher_opened(&self, kind: WatchKind) -> OpenWatcher {
        self.watchers_open
            .get_or_create(&WatchLabels { kind })
            .inc();
        OpenWatcher {
            metrics: self.clone(),
            kind,
        }
    }
}

/// One open watcher, counted in `watchers_open` while it lives.
pub struct OpenWatcher {
    metrics: CoreMetrics,
    kind: WatchKind,
}

impl OpenWatcher {
    pub fn ended(&self, reason: WatchEndReason) {
        self.metrics
            .watchers_ended
            .get_or_create(&WatchEndLabels {
                kind: self.kind,
                reason,
            })
            .inc();
    }
}

impl Drop for OpenWatcher {
    fn drop(&mut self) {
        self.metrics
            .watchers_open
            .get_or_create(&WatchLabels { kind: self.kind })
            .dec();
    }
}

/// The metrics listener, bound at build time (port 0 works in tests).
pub struct MetricsServer {
    listener: TcpListener,
    registry: Arc<Registry>,
}

impl MetricsServer {
    pub async fn bind(address: SocketAddr, registry: Arc<Registry>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("binding the metrics listener {address}"))?;
        Ok(Self { listener, registry })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `GET /metrics` until `shutdown` fires. A scrape is short, so
    /// the drain needs no bound of its own beyond the service's.
    pub async fn serve(self, shutdown: CancellationToken) -> std::io::Result<()> {
        axum::serve(self.listener, service_kit::metrics::router(self.registry))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    }
}
