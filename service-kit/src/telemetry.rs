//! Logs and traces, set up the same way in every service.
//!
//! - Logs: `RUST_LOG` filters them (default `info`); `LOG_FORMAT=json`
//!   writes one JSON object per line, with the `trace_id` and `span_id` of
//!   the span the line was logged in, so one payment's lines can be found in
//!   every service's log by its trace id.
//! - Traces: a service keeps OpenTelemetry spans of its `info` spans,
//!   whatever `RUST_LOG` says, when something reads them: the JSON logs
//!   (their ids) or an exporter (`OTEL_EXPORTER_OTLP_ENDPOINT`: OTLP over
//!   HTTP/protobuf, batched on a thread of the exporter's own;
//!   `OTEL_SERVICE_NAME` and the other standard `OTEL_*` variables apply).
//!   Otherwise none are built: they cost a third of the unpaced throughput
//!   (BENCHMARKS.md), and with no trace nothing is propagated either.
//! - Propagation: W3C `traceparent`/`tracestate`, read from HTTP requests
//!   and gRPC calls ([`continue_trace`]), written on calls to payment-core
//!   ([`inject`]), and kept as text with an order ([`traceparent_of`],
//!   [`follow`], [`link_to`]) so that its later steps join its trace.

use std::collections::HashMap;

use opentelemetry::{
    propagation::{Extractor, TextMapPropagator},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{SdkTracerProvider, Tracer},
};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer, filter::LevelFilter, fmt, layer::Context, prelude::*, registry::LookupSpan,
};

/// The environment variable that turns span export on.
const OTLP_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Keeps the tracer provider; [`Telemetry::shutdown`] exports the spans
/// still queued, within the exporter's own timeout.
#[must_use = "call shutdown at exit, or queued spans are lost"]
pub struct Telemetry {
    provider: SdkTracerProvider,
    exporting: bool,
}

impl Telemetry {
    pub fn shutdown(self) {
        if self.exporting
            && let Err(error) = self.provider.shutdown()
        {
            tracing::warn!(%error, "flushing spans at shutdown failed");
        }
    }
}

/// Installs the global subscriber for `service` (its `service.name` unless
/// `OTEL_SERVICE_NAME` says otherwise). A second call in one process
/// (tests) keeps the first subscriber.
pub fn init(service: &'static str, format: &str) -> anyhow::Result<Telemetry> {
    let exporting = std::env::var(OTLP_ENDPOINT_VAR).is_ok_and(|value| !value.trim().is_empty());
    let provider = tracer_provider(service, exporting)?;
    let tracer = provider.tracer(service);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let log_layer = if format == "json" {
        json_log_layer().with_filter(filter).boxed()
    } else {
        fmt::layer().with_filter(filter).boxed()
    };
    let traced = exporting || format == "json";
    let _ = tracing_subscriber::registry()
        .with(traced.then(|| trace_layer(tracer)))
        .with(log_layer)
        .try_init();
    Ok(Telemetry {
        provider,
        exporting,
    })
}

fn tracer_provider(service: &'static str, exporting: bool) -> anyhow::Result<SdkTracerProvider> {
    let resource = Resource::builder().with_service_name(service).build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if exporting {
        use opentelemetry_otlp::WithExportConfig as _;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// The OpenTelemetry layer: this workspace's `info` spans and above become
/// OpenTelemetry spans (a library's internal spans do not).
fn trace_layer<S>(tracer: Tracer) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    let ours = tracing_subscriber::filter::Targets::new()
        .with_default(LevelFilter::OFF)
        .with_target("payment_core", LevelFilter::INFO)
        .with_target("sse_gateway", LevelFilter::INFO)
        .with_target("mock_provider", LevelFilter::INFO)
        .with_target("service_kit", LevelFilter::INFO);
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(ours)
}

/// JSON lines as `tracing-subscriber`'s (`timestamp`, `level`, `fields`,
/// `target`, `span`), plus the OpenTelemetry ids of the line's span.
fn json_log_layer<S>() -> json_subscriber::fmt::Layer<S>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    let mut layer = json_subscriber::fmt::layer().with_current_span(true);
    layer.inner_layer_mut().add_multiple_dynamic_fields(
        |event, context: &Context<'_, S>, fields| {
            let Some(span) = context.event_span(event) else {
                return;
            };
            let Some(otel) = tracing::dispatcher::get_default(|dispatch| {
                tracing_opentelemetry::get_otel_context(&span.id(), dispatch)
            }) else {
                return;
            };
            let otel_span = otel.span();
            let ids = otel_span.span_context();
            if ids.is_valid() {
                let _ = fields.write_field("trace_id", ids.trace_id().to_string());
                let _ = fields.write_field("span_id", ids.span_id().to_string());
            }
        },
    );
    layer
}

/// The span of one HTTP request (for `tower_http`'s `TraceLayer`): its
/// method and path (never the query, which may hold a client secret), a
/// child of the browser's `traceparent` when it sent one.
pub fn http_request_span<B>(request: &http::Request<B>) -> Span {
    let span = tracing::info_span!(
        "http",
        method = %request.method(),
        path = %request.uri().path(),
    );
    continue_trace(&span, request.headers());
    span
}

/// Makes `span` a child of the W3C trace context in `headers`; one that is
/// absent or malformed leaves `span` the root of a new trace.
pub fn continue_trace(span: &Span, headers: &http::HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Writes the current span's trace context on an outgoing gRPC call.
pub fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    for (name, value) in trace_headers(&Span::current()) {
        if let (Ok(name), Ok(value)) = (
            tonic::metadata::AsciiMetadataKey::from_bytes(name.as_bytes()),
            value.parse(),
        ) {
            metadata.insert(name, value);
        }
    }
}

/// `span`'s trace context as a W3C `traceparent`, to keep with what it
/// started (an order), or `None` if `span` is not traced.
pub fn traceparent_of(span: &Span) -> Option<String> {
    trace_headers(span).remove("traceparent")
}

/// Makes `span` a child of `traceparent` (a step of the order it names);
/// an empty or malformed one leaves `span` as it was.
pub fn follow(span: &Span, traceparent: &str) {
    if let Some(trace) = RemoteTrace::parse(traceparent) {
        trace.adopt(span);
    }
}

/// A W3C trace context read once (an order's `traceparent`), which any
/// number of spans can then join without reading it again: the gateway
/// reads each event's once, and every connection's write of it joins.
#[derive(Clone, Debug)]
pub struct RemoteTrace(opentelemetry::Context);

impl RemoteTrace {
    /// `None` for an empty or malformed `traceparent`.
    pub fn parse(traceparent: &str) -> Option<Self> {
        let context = context_of(traceparent);
        let valid = context.span().span_context().is_valid();
        valid.then_some(Self(context))
    }

    /// Makes `span` a child of this trace context.
    pub fn adopt(&self, span: &Span) {
        let _ = span.set_parent(self.0.clone());
    }
}

impl PartialEq for RemoteTrace {
    fn eq(&self, other: &Self) -> bool {
        self.0.span().span_context() == other.0.span().span_context()
    }
}

impl Eq for RemoteTrace {}

/// Links `span` to the trace `traceparent` names, when `span` belongs to
/// another trace (a report a provider sent without the order's context).
pub fn link_to(span: &Span, traceparent: &str) {
    let linked = context_of(traceparent);
    let linked = linked.span().span_context().clone();
    if linked.is_valid() && linked.trace_id() != span.context().span().span_context().trace_id() {
        span.add_link(linked);
    }
}

fn context_of(traceparent: &str) -> opentelemetry::Context {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    TraceContextPropagator::new().extract(&carrier)
}

fn trace_headers(span: &Span) -> HashMap<String, String> {
    let mut carrier = HashMap::new();
    let context = span.context();
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&context, &mut carrier);
    }
    carrier
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}
