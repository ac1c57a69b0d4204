//! mock-provider's Prometheus metrics (README, "Metrics and traces"), at `GET /metrics`
//! of the page server: the reports it sent, by result and by how
//! payment-core answered.

use std::sync::Arc;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use service_kit::metrics::ServiceRegistry;

/// The result a report carried.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ReportedResult {
    Processing,
    Succeeded,
    Failed,
    Canceled,
}

service_kit::label_values!(ReportedResult {
    Processing => "processing",
    Succeeded => "succeeded",
    Failed => "failed",
    Canceled => "canceled",
});

/// How payment-core answered a report.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ReportAnswer {
    /// The order moved.
    Applied,
    /// The order was already there: a repeat, nothing changed.
    Repeated,
    /// Refused for good (unknown order, already finished, bad signature…).
    Refused,
    /// Not taken now (unreachable, timed out, failed): worth retrying.
    Unavailable,
}

service_kit::label_values!(ReportAnswer {
    Applied => "applied",
    Repeated => "repeated",
    Refused => "refused",
    Unavailable => "unavailable",
});

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReportLabels {
    result: ReportedResult,
    outcome: ReportAnswer,
}

#[derive(Clone, Default)]
pub struct ProviderMetrics {
    reports: Family<ReportLabels, Counter>,
}

impl ProviderMetrics {
    /// The metrics and the registry that renders them with the process metrics.
    pub fn new() -> (Self, Arc<Registry>) {
        let metrics = Self::default();
        let mut registry = ServiceRegistry::new("mock_provider");
        registry.service().register(
            "reports",
            "Reports sent to payment-core, by the result reported and how it answered (applied, repeated, refused, unavailable).",
            metrics.reports.clone(),
        );
        (metrics, registry.finish())
    }

    pub fn report_sent(&self, result: ReportedResult, answer: ReportAnswer) {
        self.reports
            .get_or_create(&ReportLabels {
                result,
                outcome: answer,
            })
            .inc();
    }
}
