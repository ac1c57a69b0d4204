//! The gateway's Prometheus metrics (README, "Metrics"), labelled with the
//! instance name (`gateway="…"`) so that several gateways can be told apart
//! behind one scraper, and rendered at `GET /metrics` with the process
//! metrics by `service_kit::metrics`.
//!
//! Handles are atomics (a histogram takes a short lock of its own): they
//! are bumped on hot paths (every event sent) and read only by scrapes.
//! Label sets are small closed enums, so each family's handles are looked up
//! in a map that never grows past a few entries.

use std::{
    sync::Arc,
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
    open_streams: Family<KindLabels, Gauge>,
    stream_setup_seconds: Family<KindLabels, Histogram>,
    streams_refused: Family<RefusalLabels, Counter>,
    events_sent: Family<SentLabels, Counter>,
    delivery_lag_seconds: Family<SentLabels, Histogram>,
    slow_clients_disconnected: Counter,
    upstream_events: Counter,
    upstream_reconnects: Counter,
    upstream_up: Gauge,
    upstream_position: Gauge,
}

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
        let labels = SentLabels {
            kind: self.kind,
            source,
        };
        self.metrics.events_sent.get_or_create(&labels).inc();
        if let Some(lag) = committed_at.and_then(|at| SystemTime::now().duration_since(at).ok()) {
            self.metrics
                .delivery_lag_seconds
                .get_or_create(&labels)
                .observe(lag.as_secs_f64());
        }
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.metrics
            .open_streams
            .get_or_create(&KindLabels { kind: self.kind })
            .dec();
    }
}

impl Metrics {
    /// The metrics and the registry that renders them (with the process
    /// metrics), every one of them labelled `gateway=instance`.
    pub fn new(instance: &str) -> (Arc<Self>, Arc<Registry>) {
        let metrics = Arc::new(Self {
            open_streams: Family::default(),
            stream_setup_seconds: Family::new_with_constructor(latency_histogram),
            streams_refused: Family::default(),
            events_sent: Family::default(),
            delivery_lag_seconds: Family::new_with_constructor(latency_histogram),
            slow_clients_disconnected: Counter::default(),
            upstream_events: Counter::default(),
            upstream_reconnects: Counter::default(),
            upstream_up: Gauge::default(),
            upstream_position: Gauge::default(),
        });
        // Both kinds are shown from the start, at 0: a series that appears
        // only once something happens reads as "unknown" before it.
        for kind in [StreamKind::Order, StreamKind::Dashboard] {
            drop(metrics.open_streams.get_or_create(&KindLabels { kind }));
        }
        let mut registry = ServiceRegistry::new("sse_gateway");
        let service = registry
            .service()
            .sub_registry_with_label(("gateway".into(), instance.to_owned().into()));
        metrics.register(service);
        (metrics, registry.finish())
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "open_streams",
            "Open SSE streams, by kind (order, dashboard).",
            self.open_streams.clone(),
        );
        registry.register_with_unit(
            "stream_setup",
            "Time from a stream's request to its response starting (history read, live registered).",
            Unit::Seconds,
            self.stream_setup_seconds.clone(),
        );
        registry.register(
            "streams_refused",
            "Streams not served, by kind and reason (over_capacity, upstream_down, core_unavailable, not_found).",
            self.streams_refused.clone(),
        );
        registry.register(
            "events_sent",
            "SSE events written to browsers, by stream kind and source (live, replay).",
            self.events_sent.clone(),
        );
        registry.register_with_unit(
            "delivery_lag",
            "Time from payment-core's commit of an event to its frame being handed to the browser's connection.",
            Unit::Seconds,
            self.delivery_lag_seconds.clone(),
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
        // Cloned handles: a family's lookup guard must not be held across
        // another lookup in it.
        let gauge = self
            .open_streams
            .get_or_create(&KindLabels { kind })
            .clone();
        let open_before = gauge.inc();
        let open_of_other_kind = self
            .open_streams
            .get_or_create(&KindLabels {
                kind: match kind {
                    StreamKind::Order => StreamKind::Dashboard,
                    StreamKind::Dashboard => StreamKind::Order,
                },
            })
            .get();
        if u64::try_from(open_before + open_of_other_kind).unwrap_or(0) >= max {
            gauge.dec();
            self.stream_refused(kind, RefusalReason::OverCapacity);
            return None;
        }
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
        self.stream_setup_seconds
            .get_or_create(&KindLabels { kind })
            .observe(took.as_secs_f64());
    }

    pub fn upstream_event_received(&self, sequence: u64) {
        self.upstream_events.inc();
        self.upstream_position
            .set(i64::try_from(sequence).unwrap_or(i64::MAX));
    }

    pub fn upstream_reconnected(&self) {
        self.upstream_reconnects.inc();
    }

    pub fn upstream_is_up(&self, up: bool) {
        self.upstream_up.set(i64::from(up));
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
