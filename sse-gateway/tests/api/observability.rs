//! One payment through the three real binaries, watched the way an
//! operator would: their spans exported over OTLP to a receiver of the
//! test's own, their JSON logs, and Debian's Prometheus scraping their
//! `/metrics`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, routing::post};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest, common::v1::any_value::Value as AnyValue,
};
use prost::Message;
use serde_json::Value;
use testkit::{PortTaken, Process, eventually_within, sse::SseConnection};

use crate::helpers::ADMIN_TOKEN;

/// Batches leave each service this often (`OTEL_BSP_SCHEDULE_DELAY`, ms).
const EXPORT_DELAY_MS: &str = "100";
/// Spans and scrapes are batched and periodic: waits are bounded by this.
const BOUND: Duration = Duration::from_secs(30);
/// The trace the browser's request starts, as a browser's instrumentation
/// would send it.
const BROWSER_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A span as exported: its service, name and trace id (hex).
#[derive(Debug, Clone)]
struct ExportedSpan {
    service: String,
    name: String,
    trace_id: String,
    links: Vec<String>,
    /// Its attributes and events' attributes, as text: for what they must
    /// not hold.
    attributes: String,
}

/// payment-core, mock-provider and a gateway, logging JSON to files and
/// exporting spans to `spans`.
struct ObservedShop {
    core: Process,
    core_metrics: SocketAddr,
    provider: Process,
    gateway: Process,
    spans: Arc<Mutex<Vec<ExportedSpan>>>,
    logs: PathBuf,
    _dir: tempfile::TempDir,
}

async fn spawn_observed_shop() -> ObservedShop {
    let dir = tempfile::tempdir().unwrap();
    let spans = Arc::new(Mutex::new(Vec::new()));
    let receiver = start_otlp_receiver(Arc::clone(&spans)).await;
    fn with_common<'a>(
        receiver: SocketAddr,
        extra: &[(&'a str, String)],
    ) -> Vec<(&'a str, String)> {
        let mut env = vec![
            ("LOG_FORMAT", "json".to_owned()),
            ("RUST_LOG", "info".to_owned()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{receiver}")),
            ("OTEL_BSP_SCHEDULE_DELAY", EXPORT_DELAY_MS.to_owned()),
        ];
        env.extend(extra.iter().cloned());
        env
    }
    let common = |extra: &[(&'static str, String)]| with_common(receiver, extra);
    let logs = dir.path().to_owned();
    // Each of the core and the provider is configured with the other's
    // address. The core never connects to the provider (its address only
    // shapes payment URLs): the provider's address is reserved, the core
    // starts on ports of its choosing, then the provider binds the reserved
    // address.
    let provider_addr = testkit::reserve_address();
    let core = Process::start_logging_to(
        "payment-core",
        &common(&[
            ("PAYMENT_CORE_METRICS_LISTEN", "127.0.0.1:0".to_owned()),
            (
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("core.db").display()),
            ),
            ("PROVIDER_SECRET", testkit::PROVIDER_SECRET.to_owned()),
            (
                "PROVIDER_PAGE_URL",
                format!("http://{}/pay", provider_addr.addr),
            ),
        ]),
        &logs.join("payment-core.log"),
    );
    let provider = Process::start_logging_to(
        "mock-provider",
        &common(&[
            ("PROVIDER_LISTEN", provider_addr.addr.to_string()),
            ("PAYMENT_CORE_URL", format!("http://{}", core.addr)),
            ("PROVIDER_SECRET", testkit::PROVIDER_SECRET.to_owned()),
        ]),
        &logs.join("mock-provider.log"),
    );
    let gateway = Process::start_logging_to(
        "sse-gateway",
        &common(&[
            ("GATEWAY_INSTANCE", "gateway-7".to_owned()),
            ("PAYMENT_CORE_URL", format!("http://{}", core.addr)),
            ("ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ]),
        &logs.join("sse-gateway.log"),
    );
    let core_metrics = core.metrics_addr().expect("the core's metrics listener");
    ObservedShop {
        core,
        core_metrics,
        provider,
        gateway,
        spans,
        logs,
        _dir: dir,
    }
}

impl ObservedShop {
    /// Creates an order through the gateway as a traced browser does, pays
    /// it on the provider's page while its stream is open, and answers the
    /// order id and its client secret once the stream has shown the
    /// payment.
    async fn pay_one_order(&self) -> (String, String) {
        let http = reqwest::Client::new();
        let gateway = self.gateway.addr;
        eventually_within(BOUND, "the gateway is ready", || async {
            let ready = http
                .get(format!("http://{gateway}/readyz"))
                .send()
                .await
                .ok()?;
            ready.status().is_success().then_some(())
        })
        .await;
        let order: Value = http
            .post(format!("http://{gateway}/api/orders"))
            .header(
                "traceparent",
                format!("00-{BROWSER_TRACE_ID}-00f067aa0ba902b7-01"),
            )
            .json(&serde_json::json!({ "amount_minor": 2500, "currency": "EUR", "description": "traced" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let order_id = order["order_id"].as_str().unwrap().to_owned();
        let bearer = format!("Bearer {}", order["client_secret"].as_str().unwrap());
        let mut stream = SseConnection::open(
            gateway,
            order["events_url"].as_str().unwrap(),
            &[("Authorization", &bearer)],
        )
        .await
        .unwrap();
        assert_eq!(stream.expect_event_name().await, "created");

        let pay_page = format!("http://{}/pay/{order_id}", self.provider.addr);
        let page = http
            .get(&pay_page)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let carried = page
            .split("name=\"traceparent\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the page carries the order's trace")
            .to_owned();
        assert!(carried.contains(BROWSER_TRACE_ID), "{carried}");
        let decided = http
            .post(&pay_page)
            .form(&[("decision", "pay"), ("traceparent", carried.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(decided.status(), 200);
        assert_eq!(stream.expect_event_name().await, "processing");
        assert_eq!(stream.expect_event_name().await, "succeeded");
        (
            order_id,
            order["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    fn log_lines(&self, service: &str) -> Vec<Value> {
        std::fs::read_to_string(self.logs.join(format!("{service}.log")))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

#[tokio::test]
async fn one_payment_is_one_trace_across_the_three_services_and_their_json_logs() {
    let shop = spawn_observed_shop().await;
    let (order_id, secret) = shop.pay_one_order().await;

    let spans = eventually_within(BOUND, "every hop's span is exported", || async {
        let spans = shop.spans.lock().unwrap().clone();
        let in_trace = |service: &str, name: &str| {
            spans
                .iter()
                .filter(|span| {
                    span.service == service
                        && span.name == name
                        && span.trace_id == BROWSER_TRACE_ID
                })
                .count()
        };
        // The browser's POST, the core's CreateOrder and reports, both of the
        // provider's reports, and the gateway's write of each of the three
        // events to the stream.
        (in_trace("sse-gateway", "http") >= 1
            && in_trace("payment-core", "grpc") >= 3
            && in_trace("mock-provider", "report") == 2
            && in_trace("sse-gateway", "sse.write") == 3)
            .then_some(spans)
    })
    .await;
    assert!(
        spans.iter().all(|span| span.links.is_empty()),
        "reports carried the trace: nothing needed a link"
    );
    // No span attribute holds a secret, token or key.
    for span in &spans {
        for secret in [
            secret.as_str(),
            ADMIN_TOKEN,
            testkit::PROVIDER_SECRET,
            payments_proto::contract::dev::GATEWAY_API_KEY,
            payments_proto::contract::dev::PROVIDER_API_KEY,
        ] {
            assert!(
                !span.attributes.contains(secret),
                "a {} span of {} holds a secret: {}",
                span.name,
                span.service,
                span.attributes
            );
        }
    }
    assert!(
        spans.iter().any(|span| span.attributes.contains(&order_id)),
        "the spans carry attributes at all (the order id)"
    );

    for service in ["sse-gateway", "payment-core", "mock-provider"] {
        let lines = shop.log_lines(service);
        let traced: Vec<&Value> = lines
            .iter()
            .filter(|line| line["trace_id"] == BROWSER_TRACE_ID)
            .collect();
        assert!(
            !traced.is_empty(),
            "{service} logged nothing with the payment's trace id: {lines:#?}"
        );
        assert!(
            traced
                .iter()
                .all(|line| line["span_id"].as_str().is_some_and(|id| id.len() == 16)),
            "{service}: {traced:#?}"
        );
    }
    let core_lines = shop.log_lines("payment-core");
    assert!(
        core_lines
            .iter()
            .any(|line| line["trace_id"] == BROWSER_TRACE_ID
                && line["fields"]["message"] == "payment result applied"
                && line["fields"]["order_id"] == order_id.as_str()),
        "the core's report log line is in the order's trace: {core_lines:#?}"
    );
}

#[tokio::test]
async fn prometheus_scrapes_the_three_services_and_sees_delivery_lag_and_commits() {
    let Some(prometheus) = which("prometheus") else {
        panic!("Debian's prometheus package is needed (`.ci/run` installs it)");
    };
    let shop = spawn_observed_shop().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n\
             - job_name: payment-core\n  static_configs: [{{targets: ['{}']}}]\n\
             - job_name: sse-gateway\n  static_configs: [{{targets: ['{}']}}]\n\
             - job_name: mock-provider\n  static_configs: [{{targets: ['{}']}}]\n",
            shop.core_metrics, shop.gateway.addr, shop.provider.addr
        ),
    )
    .unwrap();
    let (_prometheus, addr) = testkit::on_a_free_port("prometheus", |port| {
        start_prometheus(&prometheus, &config, dir.path(), port)
    });
    let _ = &shop.core;

    shop.pay_one_order().await;

    let query = |promql: &'static str| async move {
        let answer: Value = reqwest::Client::new()
            .get(format!("http://{addr}/api/v1/query"))
            .query(&[("query", promql)])
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let value = answer["data"]["result"][0]["value"][1].as_str()?;
        value.parse::<f64>().ok()
    };
    eventually_within(BOUND, "all three targets are up", || async {
        (query("sum(up)").await == Some(3.0)).then_some(())
    })
    .await;
    eventually_within(
        BOUND,
        "the delivery-lag histogram has the payment's live events",
        || async {
            let counted =
                query("sum(sse_gateway_delivery_lag_seconds_count{source=\"live\"})").await?;
            let within_ten_seconds =
                query("sum(sse_gateway_delivery_lag_seconds_bucket{source=\"live\",le=\"10.0\"})")
                    .await?;
            (counted >= 2.0 && within_ten_seconds == counted).then_some(())
        },
    )
    .await;
    eventually_within(
        BOUND,
        "the core's commit histogram has the payment's commits",
        || async {
            (query("sum(payment_core_commit_seconds_count)").await? >= 3.0
                && query("sum(payment_core_commit_seconds_bucket{le=\"+Inf\"})").await? >= 3.0)
                .then_some(())
        },
    )
    .await;
    eventually_within(
        BOUND,
        "the provider's reports and the process metrics are there",
        || async {
            (query("sum(mock_provider_reports_total{outcome=\"applied\"})").await? == 2.0
                && query("count(process_resident_memory_bytes > 0)").await? == 3.0)
                .then_some(())
        },
    )
    .await;
}

/// An OTLP/HTTP trace receiver on loopback that keeps what it is sent.
async fn start_otlp_receiver(spans: Arc<Mutex<Vec<ExportedSpan>>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let spans = Arc::clone(&spans);
            async move {
                let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                    return axum::http::StatusCode::BAD_REQUEST;
                };
                let mut kept = spans.lock().unwrap();
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .iter()
                        .flat_map(|resource| &resource.attributes)
                        .find(|attribute| attribute.key == "service.name")
                        .and_then(|attribute| attribute.value.as_ref()?.value.as_ref())
                        .and_then(|value| match value {
                            AnyValue::StringValue(name) => Some(name.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    for scope in resource.scope_spans {
                        for span in scope.spans {
                            kept.push(ExportedSpan {
                                service: service.clone(),
                                name: span.name,
                                trace_id: hex::encode(&span.trace_id),
                                attributes: format!("{:?} {:?}", span.attributes, span.events),
                                links: span
                                    .links
                                    .iter()
                                    .map(|link| hex::encode(&link.trace_id))
                                    .collect(),
                            });
                        }
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file())
}

/// Debian's Prometheus on `addr`, its data in `dir`, killed when dropped.
/// Prometheus on `port` with `config`, its data and log in `dir`, once it
/// says it is ready (it binds its port before that). It cannot bind port 0
/// and report the port: [`PortTaken`] when another process took it first.
fn start_prometheus(
    binary: &Path,
    config: &Path,
    dir: &Path,
    port: u16,
) -> Result<(KillOnDrop, SocketAddr), PortTaken> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = dir.join(format!("prometheus-{port}.log"));
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join(format!("data-{port}")).display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("prometheus starts");
    let mut prometheus = KillOnDrop(child);
    testkit::wait_until_ready("prometheus", &mut prometheus.0, &log, BOUND, || {
        std::fs::read_to_string(&log)
            .is_ok_and(|text| text.contains("Server is ready to receive web requests"))
    })?;
    Ok((prometheus, addr))
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
