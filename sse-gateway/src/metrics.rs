//! The gateway's Prometheus metrics (README, "Metrics and traces"), labelled with the
//! instance name (`gateway="…"`) so that several gateways can be told apart
//! behind one scraper, and rendered at `GET /metrics` with the process
//! metrics by `service_kit::metrics`.
//!
//! Handles are atomics (a histogram takes a short lock of its own): they
//! are bumped on hot paths (every event sent) and read only by scrapes.
//! Label sets are small closed enums: the handles of every label value are
//! resolved once, at start, and the hot paths index them.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};
use service_kit::metrics::{LATENCY_BUCKETS, ServiceRegistry};

/// Which stream a browser opened.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum StreamKind {
    /// One order's stream (the checkout page).
    Order,
    /// Every order's stream (the merchant dashboard).
    Dashboard,
}

service_kit::label_values!(StreamKind {
    Order => "order",
    Dashboard => "dashboard",
});

/// Why a stream was not served.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RefusalReason {
    /// `MAX_STREAMS` were open: told to come back later.
    OverCapacity,
    /// The stream from payment-core was not open: told to retry shortly.
    UpstreamDown,
    /// payment-core failed for a transient reason: told to retry shortly.
    CoreUnavailable,
    /// No such order, or not its client secret.
    NotFound,
}

service_kit::label_values!(RefusalReason {
    OverCapacity => "over_capacity",
    UpstreamDown => "upstream_down",
    CoreUnavailable => "core_unavailable",
    NotFound => "not_found",
});

/// Where a sent event came from.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum EventSource {
    /// Live, as the core committed it.
    Live,
    /// Read back from history (a reconnect, a new page, a resuming
    /// dashboard): its lag includes the time the browser was away.
    Replay,
}

service_kit::label_values!(EventSource {
    Live => "live",
    Replay => "replay",
});

/// Where an order stream's history was read when it opened.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum HistorySource {
    /// The gateway's memory of recent orders: no call to payment-core.
    Memory,
    /// payment-core (`ListOrderEvents`): an order this gateway did not see
    /// created.
    Core,
}

service_kit::label_values!(HistorySource {
    Memory => "memory",
    Core => "core",
});

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FromLabels {
    from: HistorySource,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: StreamKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    kind: StreamKind,
    reason: RefusalReason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SentLabels {
    kind: StreamKind,
    source: EventSource,
}

pub struct Metrics {
    /// Streams open, of every kind: the one count `MAX_STREAMS` is checked
    /// against (one read-modify-write, so racing openers never both slip
    /// in). The per-kind gauges are what is shown.
    open_total: AtomicU64,
    /// Per-kind and per-source handles, indexed by `StreamKind` and
    /// `EventSource` (resolved from their families once, at start), so the
    /// per-event path does no lookup.
    open_streams: [Gauge; 2],
    stream_setup_seconds: [Histogram; 2],
    events_sent: [[Counter; 2]; 2],
    delivery_lag_seconds: [[Histogram; 2]; 2],
    streams_refused: Family<RefusalLabels, Counter>,
    /// Indexed by `HistorySource`.
    histories_read: [Counter; 2],
    recent_orders: Gauge,
    slow_clients_disconnected: Counter,
    upstream_events: Counter,
    upstream_reconnects: Counter,
    /// 1 while the payment-core stream is open: what `/readyz` reports, and
    /// the condition for serving event streams.
    upstream_up: Gauge,
    upstream_position: Gauge,
}

/// In declaration order, so that `kind as usize` and `source as usize`
/// index the handle arrays.
const KINDS: [StreamKind; 2] = [StreamKind::Order, StreamKind::Dashboard];
const SOURCES: [EventSource; 2] = [EventSource::Live, EventSource::Replay];
const HISTORY_SOURCES: [HistorySource; 2] = [HistorySource::Memory, HistorySource::Core];

/// Counts one open SSE stream for as long as it lives, and is that
/// stream's handle on the metrics.
pub struct ConnectionGauge {
    metrics: Arc<Metrics>,
    kind: StreamKind,
}

impl ConnectionGauge {
    pub fn kind(&self) -> StreamKind {
        self.kind
    }

    /// One event written to this stream's browser. `committed_at` is the
    /// core's commit time of it, when known.
    pub fn event_sent(&self, source: EventSource, committed_at: Option<SystemTime>) {
        let (kind, source) = (self.kind as usize, source as usize);
        self.metrics.events_sent[kind][source].inc();
        if let Some(lag) = committed_at.and_then(|at| SystemTime::now().duration_since(at).ok()) {
            self.metrics.delivery_lag_seconds[kind][source].observe(lag.as_secs_f64());
        }
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.metrics.open_streams[self.kind as usize].dec();
        self.metrics.open_total.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// The metrics and the registry that renders them (with the process
    /// metrics), every one of them labelled `gateway=instance`.
    pub fn new(instance: &str) -> (Arc<Self>, Arc<Registry>) {
        let open_streams = Family::<KindLabels, Gauge>::default();
        let stream_setup = Family::<KindLabels, Histogram>::new_with_constructor(latency_histogram);
        let events_sent = Family::<SentLabels, Counter>::default();
        let delivery_lag = Family::<SentLabels, Histogram>::new_with_constructor(latency_histogram);
        let histories_read = Family::<FromLabels, Counter>::default();
        let by_kind = |kind: StreamKind| KindLabels { kind };
        let sent = |kind: StreamKind, source: EventSource| SentLabels { kind, source };
        // Every series exists from the start, at 0: one that appears only
        // once something happens reads as "unknown" before it.
        let metrics = Arc::new(Self {
            open_total: AtomicU64::new(0),
            open_streams: KINDS.map(|kind| open_streams.get_or_create(&by_kind(kind)).clone()),
            stream_setup_seconds: KINDS
                .map(|kind| stream_setup.get_or_create(&by_kind(kind)).clone()),
            events_sent: KINDS.map(|kind| {
                SOURCES.map(|source| events_sent.get_or_create(&sent(kind, source)).clone())
            }),
            delivery_lag_seconds: KINDS.map(|kind| {
                SOURCES.map(|source| delivery_lag.get_or_create(&sent(kind, source)).clone())
            }),
            streams_refused: Family::default(),
            histories_read: HISTORY_SOURCES
                .map(|from| histories_read.get_or_create(&FromLabels { from }).clone()),
            recent_orders: Gauge::default(),
            slow_clients_disconnected: Counter::default(),
            upstream_events: Counter::default(),
            upstream_reconnects: Counter::default(),
            upstream_up: Gauge::default(),
            upstream_position: Gauge::default(),
        });
        let mut registry = ServiceRegistry::new("sse_gateway");
        let service = registry
            .service()
            .sub_registry_with_label(("gateway".into(), instance.to_owned().into()));
        service.register(
            "open_streams",
            "Open SSE streams, by kind (order, dashboard).",
            open_streams,
        );
        service.register_with_unit(
            "stream_setup",
            "Time from a stream's request to its response starting (history read, live registered).",
            Unit::Seconds,
            stream_setup,
        );
        service.register(
            "events_sent",
            "SSE events written to browsers, by stream kind and source (live, replay).",
            events_sent,
        );
        service.register_with_unit(
            "delivery_lag",
            "Time from payment-core's record of an event to its frame being handed to the browser's connection.",
            Unit::Seconds,
            delivery_lag,
        );
        service.register(
            "order_histories_read",
            "Order stream requests, by where their history was read: memory (this gateway saw the order created) or core (a call to payment-core).",
            histories_read,
        );
        metrics.register(service);
        (metrics, registry.finish())
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "streams_refused",
            "Streams not served, by kind and reason (over_capacity, upstream_down, core_unavailable, not_found).",
            self.streams_refused.clone(),
        );
        registry.register(
            "recent_orders",
            "Orders whose whole history this gateway holds in memory (about RECENT_ORDERS at most: each shard holds its share, rounded up; fewer when their frames pass the byte budget).",
            self.recent_orders.clone(),
        );
        registry.register(
            "slow_clients_disconnected",
            "SSE clients cut off because they could not keep up.",
            self.slow_clients_disconnected.clone(),
        );
        registry.register(
            "upstream_events",
            "Events received from payment-core's WatchPayments stream.",
            self.upstream_events.clone(),
        );
        registry.register(
            "upstream_reconnects",
            "Times the payment-core stream was re-established after it had been open.",
            self.upstream_reconnects.clone(),
        );
        registry.register(
            "upstream_up",
            "1 while the payment-core stream is open.",
            self.upstream_up.clone(),
        );
        registry.register(
            "upstream_position",
            "The last event sequence received from payment-core; payment_core_log_head_sequence minus it is the upstream lag.",
            self.upstream_position.clone(),
        );
    }

    /// Counts a new stream of `kind` in, unless `max` are open already
    /// (of all kinds): then counts it as refused and answers `None`. Racing
    /// openers may see the count one above `max` for an instant; none of
    /// them is let in by it.
    pub fn try_open_stream(
        self: &Arc<Self>,
        max: u64,
        kind: StreamKind,
    ) -> Option<ConnectionGauge> {
        if self.open_total.fetch_add(1, Ordering::Relaxed) >= max {
            self.open_total.fetch_sub(1, Ordering::Relaxed);
            self.stream_refused(kind, RefusalReason::OverCapacity);
            return None;
        }
        self.open_streams[kind as usize].inc();
        Some(ConnectionGauge {
            metrics: Arc::clone(self),
            kind,
        })
    }

    pub fn stream_refused(&self, kind: StreamKind, reason: RefusalReason) {
        self.streams_refused
            .get_or_create(&RefusalLabels { kind, reason })
            .inc();
    }

    pub fn stream_set_up(&self, kind: StreamKind, took: Duration) {
        self.stream_setup_seconds[kind as usize].observe(took.as_secs_f64());
    }

    pub fn history_read(&self, from: HistorySource) {
        self.histories_read[from as usize].inc();
    }

    /// `change`: orders added to (or dropped from) the recent orders.
    pub fn recent_orders_changed(&self, change: i64) {
        if change != 0 {
            self.recent_orders.inc_by(change);
        }
    }

    pub fn upstream_event_received(&self, sequence: u64) {
        self.upstream_events.inc();
        self.upstream_position
            .set(i64::try_from(sequence).unwrap_or(i64::MAX));
    }

    pub fn upstream_reconnected(&self) {
        self.upstream_reconnects.inc();
    }

    /// Marks the payment-core stream open or closed; answers whether it
    /// was open.
    pub fn set_upstream_up(&self, up: bool) -> bool {
        self.upstream_up.set(i64::from(up)) == 1
    }

    pub fn upstream_is_up(&self) -> bool {
        self.upstream_up.get() == 1
    }

    pub fn slow_client_dropped(&self) {
        self.slow_clients_disconnected.inc();
    }

    pub fn slow_clients_dropped(&self) -> u64 {
        self.slow_clients_disconnected.get()
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}
