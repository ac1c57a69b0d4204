//! Counters for `/metrics`, in the Prometheus text format, labelled with the
//! instance name so several gateways can be told apart.
//!
//! Plain atomics behind methods: they are bumped on hot paths (every event
//! sent) and read only by scrapes, so no lock is worth its cost. "Events per minute" is a
//! ring of 60 one-second buckets; each bucket remembers which second it
//! counts, so a stale bucket is read as zero instead of being cleared.

use std::{
    fmt::Write,
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering::Relaxed},
    },
    time::{SystemTime, UNIX_EPOCH},
};

pub struct Metrics {
    open_connections: AtomicI64,
    events_sent: AtomicU64,
    upstream_reconnects: AtomicU64,
    slow_clients_disconnected: AtomicU64,
    /// Streams answered "retry later" because `MAX_STREAMS` were open.
    streams_refused: AtomicU64,
    upstream_events: AtomicU64,
    per_second: [SecondBucket; 60],
}

/// Counts one open SSE connection for as long as it lives, and is that
/// connection's handle on the metrics.
pub struct ConnectionGauge(Arc<Metrics>);

impl ConnectionGauge {
    pub fn metrics(&self) -> &Metrics {
        &self.0
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Relaxed);
    }
}

#[derive(Default)]
struct SecondBucket {
    second: AtomicU64,
    count: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            open_connections: AtomicI64::default(),
            events_sent: AtomicU64::default(),
            upstream_reconnects: AtomicU64::default(),
            slow_clients_disconnected: AtomicU64::default(),
            streams_refused: AtomicU64::default(),
            upstream_events: AtomicU64::default(),
            per_second: std::array::from_fn(|_| SecondBucket::default()),
        }
    }
}

fn unix_second() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Metrics {
    /// Counts a new stream in, unless `max` are open already: then counts
    /// it as refused and answers `None`. Racing openers may see the count
    /// one above `max` for an instant; none of them is let in by it.
    pub fn try_open_stream(self: &Arc<Self>, max: u64) -> Option<ConnectionGauge> {
        let open_before = self.open_connections.fetch_add(1, Relaxed);
        if u64::try_from(open_before).unwrap_or(0) >= max {
            self.open_connections.fetch_sub(1, Relaxed);
            self.streams_refused.fetch_add(1, Relaxed);
            return None;
        }
        Some(ConnectionGauge(Arc::clone(self)))
    }

    pub fn streams_refused(&self) -> u64 {
        self.streams_refused.load(Relaxed)
    }

    pub fn open_connections(&self) -> i64 {
        self.open_connections.load(Relaxed)
    }

    pub fn upstream_event_received(&self) {
        self.upstream_events.fetch_add(1, Relaxed);
    }

    pub fn upstream_reconnected(&self) {
        self.upstream_reconnects.fetch_add(1, Relaxed);
    }

    pub fn slow_client_dropped(&self) {
        self.slow_clients_disconnected.fetch_add(1, Relaxed);
    }

    pub fn slow_clients_dropped(&self) -> u64 {
        self.slow_clients_disconnected.load(Relaxed)
    }

    pub fn event_sent(&self) {
        self.events_sent.fetch_add(1, Relaxed);
        let now = unix_second();
        let bucket = &self.per_second[(now % 60) as usize];
        if bucket.second.swap(now, Relaxed) != now {
            // First event of this second in this bucket: forget the minute-old count.
            bucket.count.store(0, Relaxed);
        }
        bucket.count.fetch_add(1, Relaxed);
    }

    /// Events sent to browsers during the last 60 seconds.
    pub fn events_last_minute(&self) -> u64 {
        let now = unix_second();
        self.per_second
            .iter()
            .filter(|bucket| now.saturating_sub(bucket.second.load(Relaxed)) < 60)
            .map(|bucket| bucket.count.load(Relaxed))
            .sum()
    }

    pub fn render(&self, instance: &str, upstream_up: bool) -> String {
        let mut out = String::with_capacity(1024);
        let instance = instance.replace('\\', "\\\\").replace('"', "\\\"");
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{instance=\"{instance}\"}} {value}"
            );
        };
        metric(
            "sse_gateway_open_connections",
            "gauge",
            "Open SSE connections.",
            self.open_connections().to_string(),
        );
        metric(
            "sse_gateway_events_sent_total",
            "counter",
            "SSE events written to browsers.",
            self.events_sent.load(Relaxed).to_string(),
        );
        metric(
            "sse_gateway_events_per_minute",
            "gauge",
            "SSE events written to browsers in the last 60 seconds.",
            self.events_last_minute().to_string(),
        );
        metric(
            "sse_gateway_upstream_events_total",
            "counter",
            "Events received from payment-core.",
            self.upstream_events.load(Relaxed).to_string(),
        );
        metric(
            "sse_gateway_upstream_reconnects_total",
            "counter",
            "Times the payment-core stream was re-established.",
            self.upstream_reconnects.load(Relaxed).to_string(),
        );
        metric(
            "sse_gateway_upstream_up",
            "gauge",
            "1 while the payment-core stream is open.",
            u8::from(upstream_up).to_string(),
        );
        metric(
            "sse_gateway_slow_clients_disconnected_total",
            "counter",
            "SSE clients cut off because they could not keep up.",
            self.slow_clients_dropped().to_string(),
        );
        metric(
            "sse_gateway_streams_refused_total",
            "counter",
            "SSE streams told to retry later because MAX_STREAMS were open.",
            self.streams_refused().to_string(),
        );
        out
    }
}
