//! Prometheus metrics, served the same way by every service: one
//! `prometheus-client` registry per running service (never a global one, so
//! tests can run several services in one process and read each one's own
//! figures), the standard `process_*` metrics in it, and `GET /metrics`
//! rendering it in the OpenMetrics text format.
//!
//! Each service registers its own metrics under its prefix
//! ([`ServiceRegistry::service`]) and keeps the handles: counters, gauges and
//! histograms are atomics (a histogram a short lock) that hot paths update
//! without touching the registry.

use std::{fmt, sync::Arc};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
pub use prometheus_client;
use prometheus_client::{encoding::text::encode, registry::Registry};

/// What `/metrics` answers with (OpenMetrics 1.0 text, which Prometheus
/// negotiates and reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Where each service serves its metrics.
pub const PATH: &str = "/metrics";

/// Buckets of the latency histograms, in seconds: 250 µs to 10 s. The
/// targets (a result in the browser within tens of milliseconds) sit in the
/// dense lower half; the upper half tells a stall from a slow path.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Implements `EncodeLabelValue` for a fieldless enum, each variant spelled
/// as given (snake_case, as Prometheus label values are; the crate's derive
/// would write the variant's own name).
#[macro_export]
macro_rules! label_values {
    ($type:ty { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $crate::metrics::prometheus_client::encoding::EncodeLabelValue for $type {
            fn encode(
                &self,
                encoder: &mut $crate::metrics::prometheus_client::encoding::LabelValueEncoder<'_>,
            ) -> Result<(), std::fmt::Error> {
                let name: &str = match self {
                    $(Self::$variant => $name),+
                };
                $crate::metrics::prometheus_client::encoding::EncodeLabelValue::encode(&name, encoder)
            }
        }
    };
}

/// One service's registry: the process metrics at the root, the service's
/// own under its prefix.
pub struct ServiceRegistry {
    root: Registry,
    prefix: &'static str,
}

impl ServiceRegistry {
    /// A registry for the service whose metric names start with `prefix`
    /// (`payment_core`, `sse_gateway`, `mock_provider`).
    pub fn new(prefix: &'static str) -> Self {
        let mut root = Registry::default();
        // Linux only (it reads /proc); elsewhere the service runs without them.
        if let Err(error) =
            kubert_prometheus_process::register(root.sub_registry_with_prefix("process"))
        {
            tracing::warn!(%error, "process metrics unavailable");
        }
        Self { root, prefix }
    }

    /// Where the service registers its own metrics.
    pub fn service(&mut self) -> &mut Registry {
        self.root.sub_registry_with_prefix(self.prefix)
    }

    /// Done registering: the registry to render.
    pub fn finish(self) -> Arc<Registry> {
        Arc::new(self.root)
    }
}

/// The registry in the OpenMetrics text format.
pub fn render(registry: &Registry) -> Result<String, fmt::Error> {
    let mut text = String::with_capacity(8 * 1024);
    encode(&mut text, registry)?;
    Ok(text)
}

/// `GET /metrics` answering from `registry`, for a service whose metrics
/// have a port of their own (payment-core); the others add
/// [`metrics_handler`] to their router.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route(PATH, get(metrics_handler))
        .with_state(registry)
}

pub async fn metrics_handler(State(registry): State<Arc<Registry>>) -> Response {
    match render(&registry) {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "encoding metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    #[test]
    fn a_service_metric_is_prefixed_and_process_metrics_are_not() {
        let mut registry = ServiceRegistry::new("demo");
        let counter = Counter::<u64>::default();
        registry
            .service()
            .register("things", "Things done.", counter.clone());
        counter.inc();
        let text = render(&registry.finish()).unwrap();
        assert!(text.contains("demo_things_total 1"), "{text}");
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
        assert!(text.contains("\nprocess_open_fds "), "{text}");
        assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
        assert!(text.contains("\nprocess_start_time_seconds "), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
