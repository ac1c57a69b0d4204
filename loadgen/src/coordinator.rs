//! `loadgen run`: set-up, measurement and the summary.

use service_kit::core_client::{ApiKey, KeyedChannel};
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use payments_proto::{
    contract::dev,
    payments::v1::{
        self as pb, payment_service_client::PaymentServiceClient,
        provider_service_client::ProviderServiceClient,
    },
    signature::signed_now,
};
use serde::Serialize;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    process::{Child, Command},
};
use tonic::transport::Channel;

use crate::{
    Target, http, mono_ns,
    worker::{OutLine, Status},
};

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[arg(long, value_enum, default_value = "gateway")]
    pub target: Target,
    /// Base URL of the gateway or of nginx (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// payment-core's gRPC endpoint (gateway target; loopback only).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub core_url: String,
    /// API key for `--create-via grpc` (role `merchant`).
    #[arg(long, env = "PAYMENT_CORE_API_KEY", default_value = payments_proto::contract::dev::MERCHANT_API_KEY, hide_default_value = true, hide_env_values = true)]
    pub core_api_key: String,
    /// Where reports go instead of `--core-url` (repeatable: the report
    /// channels are spread over them in turn), e.g. other replicas than the
    /// gateway's, to measure events crossing replicas.
    #[arg(long = "report-url")]
    pub report_urls: Vec<String>,
    /// Secret the provider signs reports with.
    #[arg(long, env = "PROVIDER_SECRET", default_value = dev::PROVIDER_SECRET, hide_default_value = true)]
    pub provider_secret: String,
    /// SSE connections to open.
    #[arg(long, short = 'n', default_value_t = 300)]
    pub connections: usize,
    /// Connections per order (or nchan channel); >1 is the fan-out workload.
    #[arg(long, default_value_t = 1)]
    pub watchers_per_order: usize,
    /// Results reported per second; 0 = idle run (connect, measure, close).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Report as fast as `--report-concurrency` allows instead of pacing.
    #[arg(long)]
    pub unpaced: bool,
    /// Reports in flight at most.
    #[arg(long, default_value_t = 256)]
    pub report_concurrency: usize,
    /// Attempts per report: a failed one is sent again over the next
    /// report channel (to the next `--report-url`) after 200 ms. Reports
    /// to payment-core are idempotent, so a repeat after an unknown outcome
    /// is safe (not so nchan's publishes: gateway target only). 1 for
    /// benchmarks; more for fault drills.
    #[arg(long, default_value_t = 1)]
    pub report_attempts: u32,
    /// Reconnects allowed per SSE connection before it counts as failed.
    #[arg(long, default_value_t = 5)]
    pub max_attempts: u32,
    /// gRPC (HTTP/2) connections the reports are spread over.
    #[arg(long, default_value_t = 4)]
    pub report_channels: usize,
    /// How orders are created: through the gateway's API (realistic) or gRPC.
    #[arg(long, value_enum, default_value = "api")]
    pub create_via: CreateVia,
    /// Order creations in flight.
    #[arg(long, default_value_t = 32)]
    pub create_concurrency: usize,
    /// Loopback source addresses 127.0.0.2, 127.0.0.3, ... to spread connections
    /// over (each gives ~28k ephemeral ports); 0 = enough for N, at least 4.
    #[arg(long, default_value_t = 0)]
    pub sources: u8,
    /// Most connections per worker process.
    #[arg(long, default_value_t = 15_000)]
    pub per_worker: usize,
    /// Connection set-ups in flight, over all workers.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Seconds to wait after the last connection is up before sampling memory.
    #[arg(long, default_value_t = 3)]
    pub settle_secs: u64,
    /// Extra seconds to hold idle connections (heartbeats keep flowing).
    #[arg(long, default_value_t = 0)]
    pub hold_secs: u64,
    /// Seconds to wait for outstanding terminal events after the last report.
    #[arg(long, default_value_t = 15)]
    pub drain_secs: u64,
    /// pid(s) of the server holding the SSE connections (gateway, or the nginx worker).
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// pid(s) of payment-core (repeatable: every replica of the run).
    #[arg(long = "core-pid")]
    pub core_pids: Vec<u32>,
    /// Write the summary as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Write every sample as `report_offset_ms latency_ms` lines here (for plots).
    #[arg(long)]
    pub samples: Option<std::path::PathBuf>,
    /// A name for this run in the summary.
    #[arg(long, default_value = "")]
    pub label: String,
    /// Bound on the whole run, seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// A reconnect storm once every connection is up: `--storm-stop-pid`
    /// is stopped (SIGTERM), or without it every stream is closed from this
    /// side; all of them reconnect at once, with Last-Event-ID, to
    /// `--failover-url`. The reports (if any) start at the same instant.
    #[arg(long)]
    pub storm: bool,
    /// Where connections go in a storm (default: `--url`).
    #[arg(long)]
    pub failover_url: Option<String>,
    /// The server the storm stops (a gateway holding every connection).
    #[arg(long)]
    pub storm_stop_pid: Option<u32>,
}

fn source_count(args: &RunArgs) -> u8 {
    if args.sources > 0 {
        args.sources
    } else {
        (args.connections.div_ceil(20_000) + 1).clamp(4, 200) as u8
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CreateVia {
    Api,
    Grpc,
}

/// Refuses anything but loopback: this tool must never load another host.
fn loopback_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// URLs"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = authority
        .rsplit_once(':')
        .with_context(|| format!("{url}: needs an explicit port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = if host == "localhost" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse()
            .with_context(|| format!("{url}: host must be a loopback IP or localhost"))?
    };
    ensure!(
        ip.is_loopback(),
        "{url}: refusing a non-loopback target ({ip})"
    );
    Ok(SocketAddr::new(ip, port.parse().context("bad port")?))
}

/// Memory of a set of processes: (Rss, Pss) in KiB, from smaps_rollup.
fn memory_kib(pids: &[u32]) -> (u64, u64) {
    let mut rss = 0;
    let mut pss = 0;
    for pid in pids {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
            for line in text.lines() {
                let value = || {
                    line.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                if line.starts_with("Rss:") {
                    rss += value();
                } else if line.starts_with("Pss:") {
                    pss += value();
                }
            }
        } else if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            for line in text.lines() {
                if let Some(value) = line.strip_prefix("VmRSS:") {
                    let kib: u64 = value
                        .split_whitespace()
                        .next()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    rss += kib;
                    pss += kib;
                }
            }
        }
    }
    (rss, pss)
}

/// CPU seconds (user + system) used so far by a set of processes.
fn cpu_secs(pids: &[u32]) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .map(|stat| {
            // Fields after the parenthesised command name; utime and stime are 14 and 15.
            let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
            let fields: Vec<&str> = after.split_whitespace().collect();
            let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
            (field(14).unwrap_or(0.0) + field(15).unwrap_or(0.0)) / ticks
        })
        .sum()
}

#[derive(Serialize, Default, Clone)]
pub struct Percentiles {
    pub samples: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

fn percentiles(mut micros: Vec<u64>) -> Percentiles {
    if micros.is_empty() {
        return Percentiles::default();
    }
    micros.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * micros.len() as f64).ceil() as usize).clamp(1, micros.len());
        micros[rank - 1] as f64 / 1000.0
    };
    Percentiles {
        samples: micros.len(),
        p50_ms: at(0.50),
        p90_ms: at(0.90),
        p99_ms: at(0.99),
        p999_ms: at(0.999),
        max_ms: *micros.last().expect("non-empty") as f64 / 1000.0,
    }
}

#[derive(Serialize, Default)]
pub struct Summary {
    pub label: String,
    pub target: String,
    pub connections: usize,
    pub orders: usize,
    pub watchers_per_order: usize,
    pub workers: usize,
    pub source_addresses: u8,
    pub create_secs: f64,
    pub setup_secs: f64,
    pub setup_per_sec: f64,
    pub connected: u64,
    pub failed_connections: u64,
    pub server_kib_before: u64,
    pub server_kib_idle: u64,
    pub server_bytes_per_idle_conn: f64,
    pub server_kib_after_load: u64,
    pub core_kib_before: u64,
    pub core_kib_idle: u64,
    pub core_bytes_per_idle_conn: f64,
    pub server_cpu_secs_setup: f64,
    pub core_cpu_secs_setup: f64,
    pub requested_rate: f64,
    pub unpaced: bool,
    pub reports: usize,
    pub report_errors: u64,
    pub reports_unchanged: u64,
    pub achieved_report_rate: f64,
    pub max_schedule_lag_ms: f64,
    pub report_call: Percentiles,
    pub report_to_browser: Percentiles,
    pub terminal_events: usize,
    pub events_received: u64,
    pub terminal_events_per_sec: f64,
    pub server_cpu_secs_load: f64,
    pub core_cpu_secs_load: f64,
    /// CPU the load tool itself used during the load phase (coordinator + workers).
    pub loadgen_cpu_secs_load: f64,
    pub lost: u64,
    pub duplicated: u64,
    pub missing_created: u64,
    /// Terminal events other than the result reported.
    pub wrong_result: u64,
    /// The longest a watcher waited for its result after the report was
    /// acknowledged (0 when every result came before its acknowledgement).
    /// Unlike report→browser, it leaves out the time a report spent being
    /// refused and retried.
    pub max_wait_after_ack_ms: f64,
    pub reconnects: u64,
    pub early_terminal: u64,
    /// Reconnect storm: connections served again (by the failover server,
    /// or finished), and the time from the storm to the last of them.
    pub storm_restored: u64,
    pub storm_restore_secs: f64,
    pub storm_restore_per_sec: f64,
    /// CPU of the servers (`--server-pid`) and of the core from the storm
    /// to the last connection served again.
    pub storm_server_cpu_secs: f64,
    pub storm_core_cpu_secs: f64,
    /// Order histories the failover gateway read from payment-core meanwhile
    /// (`sse_gateway_order_histories_read_total{from="core"}`); the others
    /// came from its memory. -1: not a gateway, or not scraped.
    pub storm_core_calls: f64,
    pub ok: bool,
}

struct Shared {
    /// Per connection: CLOCK_MONOTONIC ns its terminal event was read, 0 = not yet.
    term_ns: Vec<AtomicU64>,
    /// Per order: ns the report was sent, 0 = not yet.
    report_ns: Vec<AtomicU64>,
    /// Per order: ns the report's acknowledgement arrived, 0 = not (yet).
    acked_ns: Vec<AtomicU64>,
    dups: AtomicU64,
    terms: AtomicU64,
    statuses: Mutex<Vec<Status>>,
    finals: Mutex<Vec<Option<Status>>>,
}

struct Order {
    /// Gateway: the order id; nchan: the channel name.
    id: String,
    sub_path: String,
}

fn progress(msg: &str) {
    eprintln!("[loadgen {:>7.1}s] {msg}", START.elapsed().as_secs_f64());
}

static START: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

pub fn main(args: RunArgs) -> anyhow::Result<i32> {
    std::sync::LazyLock::force(&START);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let timeout = Duration::from_secs(args.timeout);
    runtime.block_on(async move {
        match tokio::time::timeout(timeout, run(args)).await {
            Ok(result) => result,
            Err(_) => {
                eprintln!("loadgen: FAILED: the run exceeded --timeout");
                Ok(3)
            }
        }
    })
}

/// One keep-alive HTTP/1.1 connection to a loopback server, opened on first
/// use and again after an error or a `Connection: close`.
struct KeepAlive {
    addr: SocketAddr,
    host: String,
    conn: Option<TcpStream>,
    buf: Vec<u8>,
}

impl KeepAlive {
    fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            host: addr.to_string(),
            conn: None,
            buf: Vec::new(),
        }
    }

    /// POSTs a JSON `body` to `path`; answers the status and the body.
    async fn post_json(&mut self, path: &str, body: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        if self.conn.is_none() {
            self.conn = Some(http::connect(self.addr, None).await?);
            self.buf.clear();
        }
        let stream = self.conn.as_mut().expect("just set");
        let (status, body, close) = http::request(
            stream,
            &mut self.buf,
            "POST",
            &self.host,
            path,
            "application/json",
            body.as_bytes(),
        )
        .await
        .inspect_err(|_| self.conn = None)?;
        if close {
            self.conn = None;
        }
        Ok((status, body))
    }
}

/// Step 1: the orders to watch. For nchan, channel names (nothing to
/// create); for the gateway, orders created `--create-concurrency` at a time.
async fn create_orders(
    args: &RunArgs,
    addr: SocketAddr,
    count: usize,
) -> anyhow::Result<Vec<Order>> {
    let run_id = format!("{:x}", mono_ns() & 0xffff_ffff);
    if args.target == Target::Nchan {
        return Ok(nchan_channels(&run_id, count));
    }
    let slots = Arc::new(Slots {
        orders: (0..count).map(|_| Mutex::new(None)).collect(),
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.create_concurrency.clamp(1, 512) {
        let (via, core_url, api_key, slots) = (
            args.create_via,
            args.core_url.clone(),
            args.core_api_key.clone(),
            Arc::clone(&slots),
        );
        tasks.spawn(async move {
            let creator = OrderCreator::connect(via, core_url, &api_key, addr).await?;
            fill_slots(creator, &slots).await
        });
    }
    let ticker = {
        let slots = Arc::clone(&slots);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                progress(&format!(
                    "created {}/{count} orders",
                    slots.done.load(Relaxed)
                ));
            }
        })
    };
    let mut outcome = Ok(());
    while let Some(joined) = tasks.join_next().await {
        if let Err(error) = joined? {
            outcome = Err(error);
            tasks.abort_all();
        }
    }
    ticker.abort();
    outcome?;
    // The ticker may still hold the slots for a moment after the abort.
    slots
        .orders
        .iter()
        .map(|slot| {
            slot.lock()
                .expect("not poisoned")
                .take()
                .context("order missing")
        })
        .collect()
}

fn nchan_channels(run_id: &str, count: usize) -> Vec<Order> {
    (0..count)
        .map(|o| {
            let id = format!("lg{run_id}-{o}");
            Order {
                sub_path: format!("/sub/{id}"),
                id,
            }
        })
        .collect()
}

/// The orders being created, filled in by the creation tasks.
struct Slots {
    orders: Vec<Mutex<Option<Order>>>,
    /// The next order number to create.
    next: AtomicUsize,
    /// Orders created so far.
    done: AtomicUsize,
}

/// One creation task: creates the next order until all slots are taken.
async fn fill_slots(mut creator: OrderCreator, slots: &Slots) -> anyhow::Result<()> {
    loop {
        let o = slots.next.fetch_add(1, Relaxed);
        if o >= slots.orders.len() {
            return Ok(());
        }
        let order = creator.create_with_retries(o).await?;
        *slots.orders[o].lock().expect("not poisoned") = Some(order);
        slots.done.fetch_add(1, Relaxed);
    }
}

/// Creates orders through the gateway's API or straight over gRPC.
enum OrderCreator {
    Grpc(PaymentServiceClient<KeyedChannel>),
    Api(KeepAlive),
}

impl OrderCreator {
    async fn connect(
        via: CreateVia,
        core_url: String,
        api_key: &str,
        addr: SocketAddr,
    ) -> anyhow::Result<Self> {
        Ok(match via {
            CreateVia::Grpc => Self::Grpc(PaymentServiceClient::with_interceptor(
                Channel::from_shared(core_url)?.connect().await?,
                ApiKey::new(api_key)?,
            )),
            CreateVia::Api => Self::Api(KeepAlive::new(addr)),
        })
    }

    /// Creates order number `o`, trying three times.
    async fn create_with_retries(&mut self, o: usize) -> anyhow::Result<Order> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.create(o).await {
                Ok(order) => return Ok(order),
                Err(error) if tries < 3 => {
                    progress(&format!("order {o}: {error:#}; retrying"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => return Err(error.context(format!("creating order {o}"))),
            }
        }
    }

    async fn create(&mut self, o: usize) -> anyhow::Result<Order> {
        match self {
            Self::Grpc(grpc) => create_via_grpc(grpc, o).await,
            Self::Api(api) => create_via_api(api, o).await,
        }
    }
}

async fn create_via_grpc(
    grpc: &mut PaymentServiceClient<KeyedChannel>,
    o: usize,
) -> anyhow::Result<Order> {
    let order = grpc
        .create_order(pb::CreateOrderRequest {
            amount_minor: 100,
            currency: "EUR".into(),
            description: format!("loadgen {o}"),
            idempotency_key: String::new(),
        })
        .await?
        .into_inner()
        .order
        .context("no order in response")?;
    Ok(Order {
        sub_path: format!(
            "/api/orders/{}/events?client_secret={}",
            order.order_id, order.client_secret
        ),
        id: order.order_id,
    })
}

async fn create_via_api(api: &mut KeepAlive, o: usize) -> anyhow::Result<Order> {
    let body = format!(r#"{{"amount_minor":100,"currency":"EUR","description":"loadgen {o}"}}"#);
    let (status, body) = api.post_json("/api/orders", &body).await?;
    ensure!(
        status == 201,
        "POST /api/orders: HTTP {status}: {}",
        String::from_utf8_lossy(&body)
    );
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    let field = |name: &str| {
        json[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no {name} in the order"))
    };
    Ok(Order {
        id: field("order_id")?,
        sub_path: field("events_url")?,
    })
}

struct WorkerHandle {
    child: Child,
    stdin: tokio::process::ChildStdin,
    reader: tokio::task::JoinHandle<()>,
}

/// Step 2: starts the worker processes and hands each its share of the
/// connections; they start opening them at once.
async fn spawn_workers(
    args: &RunArgs,
    addr: SocketAddr,
    orders: &[Order],
    shared: &Arc<Shared>,
) -> anyhow::Result<Vec<WorkerHandle>> {
    let workers = args.connections.div_ceil(args.per_worker.max(1)).max(1);
    let sources: Vec<String> = (0..source_count(args))
        .map(|k| format!("127.0.0.{}", 2 + k as u32))
        .collect();
    let exe = std::env::current_exe()?;
    let mut handles = Vec::new();
    for w in 0..workers {
        let mut child = worker_command(&exe, args, addr, &sources, workers)
            .spawn()
            .context("spawning a worker")?;
        let mut stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let reader = tokio::spawn(read_worker(w, stdout, Arc::clone(shared)));
        let feed = worker_feed(w, workers, args.connections, orders)?;
        stdin.write_all(&feed).await.context("feeding a worker")?;
        stdin.flush().await?;
        handles.push(WorkerHandle {
            child,
            stdin,
            reader,
        });
    }
    Ok(handles)
}

fn worker_command(
    exe: &std::path::Path,
    args: &RunArgs,
    addr: SocketAddr,
    sources: &[String],
    workers: usize,
) -> Command {
    let mut command = Command::new(exe);
    command
        .arg("worker")
        .arg("--target")
        .arg(match args.target {
            Target::Gateway => "gateway",
            Target::Nchan => "nchan",
        })
        .arg("--addr")
        .arg(addr.to_string())
        .args(
            args.failover_url
                .as_deref()
                .and_then(|url| loopback_addr(url).ok())
                .map(|failover| format!("--failover-addr={failover}")),
        )
        .arg("--sources")
        .arg(sources.join(","))
        .arg("--connect-concurrency")
        .arg((args.connect_concurrency / workers).max(1).to_string())
        .arg("--timeout")
        .arg(args.timeout.to_string())
        .arg("--max-attempts")
        .arg(args.max_attempts.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    command
}

/// Worker `w`'s share: connections w, w + workers, ... (interleaved), then
/// the command to open them.
fn worker_feed(w: usize, workers: usize, n: usize, orders: &[Order]) -> anyhow::Result<Vec<u8>> {
    let mut feed = Vec::new();
    for i in (w..n).step_by(workers) {
        let order = &orders[i % orders.len()];
        serde_json::to_writer(
            &mut feed,
            &serde_json::json!({ "i": i, "p": order.sub_path }),
        )?;
        feed.push(b'\n');
    }
    feed.extend_from_slice(b"{\"cmd\":\"open\"}\n");
    Ok(feed)
}

/// Reads worker `w`'s stdout into `shared` until it ends.
async fn read_worker(w: usize, stdout: tokio::process::ChildStdout, shared: Arc<Shared>) {
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(message) = serde_json::from_str::<OutLine>(&line) else {
            progress(&format!("worker {w}: unreadable line {line:?}"));
            continue;
        };
        match message {
            OutLine::Status(status) => shared.statuses.lock().expect("not poisoned")[w] = status,
            OutLine::Term { i, ns } => {
                if let Some(slot) = shared.term_ns.get(i as usize) {
                    if slot.compare_exchange(0, ns, Relaxed, Relaxed).is_err() {
                        shared.dups.fetch_add(1, Relaxed);
                    } else {
                        shared.terms.fetch_add(1, Relaxed);
                    }
                }
            }
            OutLine::Dup { i } => {
                progress(&format!("DUPLICATE event on connection {i}"));
            }
            OutLine::Err { i, msg } => progress(&format!("connection {i}: {msg}")),
            OutLine::Done(status) => {
                shared.statuses.lock().expect("not poisoned")[w] = status.clone();
                shared.finals.lock().expect("not poisoned")[w] = Some(status);
            }
        }
    }
}

fn totals(shared: &Shared) -> Status {
    let statuses = shared.statuses.lock().expect("not poisoned");
    let mut total = Status::default();
    for s in statuses.iter() {
        total.ready += s.ready;
        total.failed += s.failed;
        total.reconnects += s.reconnects;
        total.dups += s.dups;
        total.events += s.events;
        total.terms += s.terms;
        total.missing_created += s.missing_created;
        total.no_content += s.no_content;
        total.wrong_result += s.wrong_result;
        if s.first_connect_ns != 0
            && (total.first_connect_ns == 0 || s.first_connect_ns < total.first_connect_ns)
        {
            total.first_connect_ns = s.first_connect_ns;
        }
        total.last_ready_ns = total.last_ready_ns.max(s.last_ready_ns);
        total.restored += s.restored;
        total.last_restored_ns = total.last_restored_ns.max(s.last_restored_ns);
    }
    total
}

enum Reporter {
    Grpc(Vec<ProviderServiceClient<Channel>>, Arc<str>),
    Nchan(SocketAddr),
}

/// The state the report tasks share.
struct ReportRun {
    reporter: Reporter,
    orders: Arc<Vec<Order>>,
    shared: Arc<Shared>,
    /// When report 0 is due; report k is due `k * period_ns` later.
    start: tokio::time::Instant,
    period_ns: f64,
    next: AtomicUsize,
    errors: AtomicU64,
    unchanged: AtomicU64,
    max_lag_us: AtomicU64,
    first_ns: AtomicU64,
    /// `--report-attempts`.
    attempts: u32,
}

/// What `report_all` measured.
struct ReportStats {
    call_us: Vec<u64>,
    errors: u64,
    unchanged: u64,
    achieved_rate: f64,
    max_lag_ms: f64,
}

/// Step 3: one result per order, at `--rate` (or unpaced), from
/// `--report-concurrency` tasks.
async fn report_all(
    args: &RunArgs,
    reporter: Reporter,
    orders: Arc<Vec<Order>>,
    shared: Arc<Shared>,
) -> anyhow::Result<ReportStats> {
    let run = Arc::new(ReportRun {
        reporter,
        orders,
        shared,
        start: tokio::time::Instant::now() + Duration::from_millis(50),
        period_ns: if args.unpaced || args.rate <= 0.0 {
            0.0
        } else {
            1e9 / args.rate
        },
        next: AtomicUsize::new(0),
        errors: AtomicU64::new(0),
        unchanged: AtomicU64::new(0),
        max_lag_us: AtomicU64::new(0),
        first_ns: AtomicU64::new(0),
        attempts: args.report_attempts.max(1),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..args.report_concurrency.clamp(1, 4096) {
        tasks.spawn(report_task(task, Arc::clone(&run)));
    }
    let ticker = tokio::spawn(report_progress(Arc::clone(&run)));
    let mut call_us = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        call_us.extend(joined?);
    }
    ticker.abort();
    let last = mono_ns();
    let first = run.first_ns.load(Relaxed);
    let achieved_rate = if last > first {
        run.orders.len() as f64 / ((last - first) as f64 / 1e9)
    } else {
        0.0
    };
    Ok(ReportStats {
        call_us,
        errors: run.errors.load(Relaxed),
        unchanged: run.unchanged.load(Relaxed),
        achieved_rate,
        max_lag_ms: run.max_lag_us.load(Relaxed) as f64 / 1000.0,
    })
}

/// Prints the reports' progress every second, until aborted.
async fn report_progress(run: Arc<ReportRun>) {
    let total = run.orders.len();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        progress(&format!(
            "reported {}/{total}, terminal events read {}",
            run.next.load(Relaxed).min(total),
            run.shared.terms.load(Relaxed)
        ));
    }
}

/// One report task: takes the next order, waits for its turn, reports it;
/// answers each call's duration in µs.
async fn report_task(task: usize, run: Arc<ReportRun>) -> Vec<u64> {
    let mut call_us = Vec::new();
    let mut channel = task;
    let mut sender = Sender::for_task(&run.reporter, channel);
    loop {
        let k = run.next.fetch_add(1, Relaxed);
        if k >= run.orders.len() {
            return call_us;
        }
        let due = run.start + Duration::from_nanos((k as f64 * run.period_ns) as u64);
        tokio::time::sleep_until(due).await;
        let lag = tokio::time::Instant::now().saturating_duration_since(due);
        run.max_lag_us.fetch_max(lag.as_micros() as u64, Relaxed);
        let sent = mono_ns();
        let _ = run.first_ns.compare_exchange(0, sent, Relaxed, Relaxed);
        run.shared.report_ns[k].store(sent, Relaxed);
        let mut result = sender.send(k, &run.orders[k]).await;
        let mut attempt = 1;
        while result.is_err() && attempt < run.attempts {
            tokio::time::sleep(Duration::from_millis(200)).await;
            // The next channel after the one that failed (channels take the
            // report URLs in turn, so this is the next replica).
            channel += 1;
            sender = Sender::for_task(&run.reporter, channel);
            result = sender.send(k, &run.orders[k]).await;
            attempt += 1;
        }
        // A repeat that finds the order already paid: an earlier attempt's
        // outcome was unknown, and it had committed.
        if attempt > 1 && matches!(result, Ok(false)) {
            result = Ok(true);
        }
        if result.is_ok() {
            run.shared.acked_ns[k].store(mono_ns(), Relaxed);
        }
        call_us.push((mono_ns() - sent) / 1000);
        match result {
            Ok(true) => {}
            Ok(false) => {
                run.unchanged.fetch_add(1, Relaxed);
            }
            Err(error) => {
                if run.errors.fetch_add(1, Relaxed) < 10 {
                    progress(&format!("report for order {k} failed: {error:#}"));
                }
            }
        }
    }
}

/// One report task's way to send: its gRPC client (tasks take the
/// channels in turn) or its own keep-alive connection to nginx.
enum Sender {
    Grpc(ProviderServiceClient<Channel>, Arc<str>),
    Nchan(KeepAlive),
}

impl Sender {
    fn for_task(reporter: &Reporter, task: usize) -> Self {
        match reporter {
            Reporter::Grpc(clients, secret) => {
                Self::Grpc(clients[task % clients.len()].clone(), Arc::clone(secret))
            }
            Reporter::Nchan(addr) => Self::Nchan(KeepAlive::new(*addr)),
        }
    }

    /// Reports order `k`'s result; answers whether it changed the order.
    async fn send(&mut self, k: usize, order: &Order) -> anyhow::Result<bool> {
        match self {
            Self::Grpc(client, secret) => report_grpc(client, secret, k, order).await,
            Self::Nchan(nchan) => publish_nchan(nchan, order).await,
        }
    }
}

/// Reports order `k` succeeded, signed now, as the provider does; answers
/// whether payment-core changed the order.
async fn report_grpc(
    client: &mut ProviderServiceClient<Channel>,
    secret: &str,
    k: usize,
    order: &Order,
) -> anyhow::Result<bool> {
    let request = signed_now(
        secret.as_bytes(),
        pb::ReportPaymentResultRequest {
            order_id: order.id.clone(),
            outcome: pb::PaymentOutcome::Succeeded as i32,
            provider_reference: format!("loadgen-{k}"),
            reason: String::new(),
        },
    );
    client
        .report_payment_result(request)
        .await
        .map(|r| r.into_inner().changed)
        .map_err(Into::into)
}

/// Publishes "succeeded" on the order's nchan channel.
async fn publish_nchan(nchan: &mut KeepAlive, order: &Order) -> anyhow::Result<bool> {
    let body = format!(r#"{{"order":"{}","status":"succeeded"}}"#, order.id);
    let (status, _) = nchan
        .post_json(&format!("/pub/{}", order.id), &body)
        .await?;
    ensure!(status == 201 || status == 202, "publish: HTTP {status}");
    Ok(true)
}

async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let addr = check_args(&args)?;
    let mut summary = Summary::planned(&args);
    let core_pids = args.core_pids.clone();

    // 1. Orders (or channels).
    progress(&format!(
        "creating {} orders via {:?}",
        summary.orders, args.create_via
    ));
    let t = Instant::now();
    let orders = Arc::new(create_orders(&args, addr, summary.orders).await?);
    summary.create_secs = t.elapsed().as_secs_f64();

    // 2. Baseline memory, then connections.
    let baseline = sample_baseline(&args, &core_pids, &mut summary).await;
    let shared = Arc::new(Shared::new(&summary));
    progress(&format!(
        "opening {} SSE connections in {} worker(s) from {} source address(es)",
        args.connections, summary.workers, summary.source_addresses
    ));
    let mut workers = spawn_workers(&args, addr, &orders, &shared).await?;
    wait_for_setup(&args, &shared).await;
    record_setup(&args, &shared, &mut summary);
    settle_and_sample_idle(&args, &core_pids, &baseline, &mut summary).await;

    // 3. The storm, if asked for: its reports below start at once.
    let storm = if args.storm {
        Some(start_storm(&args, &mut workers, &shared).await?)
    } else {
        None
    };

    // 3. Reports at the set rate, and the terminal events they cause.
    let load = args.rate > 0.0 || args.unpaced;
    let mut call_us = Vec::new();
    if load {
        let system = System {
            addr,
            workers: &workers,
            core_pids: &core_pids,
        };
        call_us = apply_load(&args, &system, &orders, &shared, &mut summary).await?;
    }

    if let Some(storm) = storm {
        storm.await.context("the storm task")?.record(&mut summary);
    }

    // 4. Close the workers and collect their final counts.
    close_workers(workers).await;
    let missing_finals = count_missing_finals(&shared);
    let total = totals(&shared);
    summary.events_received = total.events;
    summary.reconnects = total.reconnects;
    summary.missing_created = total.missing_created;
    summary.wrong_result = total.wrong_result;
    summary.duplicated = total.dups.max(shared.dups.load(Relaxed));

    // 5. Latency, lost and duplicated.
    let arrivals = match_arrivals(&shared, load, args.samples.is_some());
    summary.max_wait_after_ack_ms = max_wait_after_ack(&shared) as f64 / 1e6;
    if let Some(path) = &args.samples {
        std::fs::write(path, &arrivals.samples)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    score(&args, arrivals, total.no_content, load, &mut summary);
    summary.report_call = percentiles(call_us);
    summary.ok = summary.lost == 0
        && summary.duplicated == 0
        && summary.wrong_result == 0
        && summary.early_terminal == 0
        && summary.report_errors == 0
        && summary.reports_unchanged == 0
        && summary.failed_connections == 0
        && (!args.storm || summary.storm_restored == summary.connected)
        && missing_finals == 0;
    finish(&args, &summary, missing_finals)
}

/// Refuses anything but a sane loopback run; answers the SSE server's address.
fn check_args(args: &RunArgs) -> anyhow::Result<SocketAddr> {
    let addr = loopback_addr(&args.url)?;
    if args.target == Target::Gateway {
        loopback_addr(&args.core_url)?;
        for url in report_urls(args) {
            loopback_addr(url)?;
        }
    }
    ensure!(args.connections > 0, "--connections must be > 0");
    if let Some(url) = &args.failover_url {
        loopback_addr(url)?;
    }
    ensure!(
        args.report_attempts <= 1 || args.target == Target::Gateway,
        "--report-attempts > 1 needs --target gateway: a repeated nchan publish is a second message"
    );
    ensure!(
        args.watchers_per_order > 0,
        "--watchers-per-order must be > 0"
    );
    ensure!(
        args.per_worker <= 19_000,
        "--per-worker above 19000 would pass the 20,000 fd cap of a process"
    );
    Ok(addr)
}

impl Summary {
    /// The run as planned from the flags; the measurements fill the rest.
    fn planned(args: &RunArgs) -> Self {
        let n = args.connections;
        Self {
            label: args.label.clone(),
            target: format!("{:?}", args.target).to_lowercase(),
            connections: n,
            orders: n.div_ceil(args.watchers_per_order),
            watchers_per_order: args.watchers_per_order,
            workers: n.div_ceil(args.per_worker.max(1)).max(1),
            source_addresses: source_count(args),
            requested_rate: args.rate,
            unpaced: args.unpaced,
            ..Self::default()
        }
    }
}

impl Shared {
    fn new(summary: &Summary) -> Self {
        Self {
            term_ns: (0..summary.connections)
                .map(|_| AtomicU64::new(0))
                .collect(),
            report_ns: (0..summary.orders).map(|_| AtomicU64::new(0)).collect(),
            acked_ns: (0..summary.orders).map(|_| AtomicU64::new(0)).collect(),
            dups: AtomicU64::new(0),
            terms: AtomicU64::new(0),
            statuses: Mutex::new(vec![Status::default(); summary.workers]),
            finals: Mutex::new(vec![None; summary.workers]),
        }
    }
}

/// Memory (Pss, KiB) and CPU seconds of the servers before any connection.
struct Baseline {
    server_kib: u64,
    core_kib: u64,
    server_cpu: f64,
    core_cpu: f64,
}

async fn sample_baseline(args: &RunArgs, core_pids: &[u32], summary: &mut Summary) -> Baseline {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, server_kib) = memory_kib(&args.server_pids);
    let (_, core_kib) = memory_kib(core_pids);
    summary.server_kib_before = server_kib;
    summary.core_kib_before = core_kib;
    Baseline {
        server_kib,
        core_kib,
        server_cpu: cpu_secs(&args.server_pids),
        core_cpu: cpu_secs(core_pids),
    }
}

/// Waits until every connection is up or has failed, at most half the
/// run's timeout, printing the progress every second.
async fn wait_for_setup(args: &RunArgs, shared: &Shared) {
    let n = args.connections;
    let setup_deadline = Instant::now() + Duration::from_secs(args.timeout / 2);
    let mut last_print = Instant::now();
    loop {
        let total = totals(shared);
        if total.ready + total.failed >= n as u64 {
            break;
        }
        if Instant::now() > setup_deadline {
            progress("set-up did not finish in time");
            break;
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            progress(&format!(
                "connected {}/{n} (failed {}, server {} MiB)",
                total.ready,
                total.failed,
                memory_kib(&args.server_pids).1 / 1024
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Connected and failed connections, and the set-up rate.
fn record_setup(args: &RunArgs, shared: &Shared, summary: &mut Summary) {
    let total = totals(shared);
    summary.connected = total.ready;
    summary.failed_connections =
        total.failed + (args.connections as u64 - total.ready - total.failed);
    if total.last_ready_ns > total.first_connect_ns {
        summary.setup_secs = (total.last_ready_ns - total.first_connect_ns) as f64 / 1e9;
        summary.setup_per_sec = total.ready as f64 / summary.setup_secs;
    }
    progress(&format!(
        "{} connected, {} failed, in {:.2}s ({:.0}/s); settling {}s",
        total.ready,
        summary.failed_connections,
        summary.setup_secs,
        summary.setup_per_sec,
        args.settle_secs
    ));
}

/// Waits `--settle-secs`, samples the idle memory and the set-up's CPU,
/// then holds the idle connections `--hold-secs`.
async fn settle_and_sample_idle(
    args: &RunArgs,
    core_pids: &[u32],
    baseline: &Baseline,
    summary: &mut Summary,
) {
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let (_, server_idle) = memory_kib(&args.server_pids);
    let (_, core_idle) = memory_kib(core_pids);
    summary.server_kib_idle = server_idle;
    summary.core_kib_idle = core_idle;
    if summary.connected > 0 {
        let connected = summary.connected as f64;
        summary.server_bytes_per_idle_conn =
            (server_idle as f64 - baseline.server_kib as f64) * 1024.0 / connected;
        summary.core_bytes_per_idle_conn =
            (core_idle as f64 - baseline.core_kib as f64) * 1024.0 / connected;
    }
    summary.server_cpu_secs_setup = cpu_secs(&args.server_pids) - baseline.server_cpu;
    summary.core_cpu_secs_setup = cpu_secs(core_pids) - baseline.core_cpu;
    if args.hold_secs > 0 {
        progress(&format!("holding idle for {}s", args.hold_secs));
        tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    }
}

/// What a storm measured.
struct StormResult {
    restored: u64,
    secs: f64,
    server_cpu: f64,
    core_cpu: f64,
    core_calls: Option<f64>,
}

impl StormResult {
    fn record(self, summary: &mut Summary) {
        summary.storm_restored = self.restored;
        summary.storm_restore_secs = self.secs;
        if self.secs > 0.0 {
            summary.storm_restore_per_sec = self.restored as f64 / self.secs;
        }
        summary.storm_server_cpu_secs = self.server_cpu;
        summary.storm_core_cpu_secs = self.core_cpu;
        summary.storm_core_calls = self.core_calls.unwrap_or(-1.0);
        progress(&format!(
            "storm: {} streams served again in {:.3}s ({:.0}/s); server CPU {:.2}s, core CPU {:.2}s, core calls {}",
            self.restored,
            self.secs,
            summary.storm_restore_per_sec,
            self.server_cpu,
            self.core_cpu,
            self.core_calls
                .map_or("-".into(), |calls| format!("{calls:.0}")),
        ));
    }
}

/// Starts the reconnect storm; the task answers once every connection is
/// served again (or failed, or half the run's timeout passed).
async fn start_storm(
    args: &RunArgs,
    workers: &mut [WorkerHandle],
    shared: &Arc<Shared>,
) -> anyhow::Result<tokio::task::JoinHandle<StormResult>> {
    let failover = loopback_addr(args.failover_url.as_deref().unwrap_or(&args.url))?;
    let reads_core = args.target == Target::Gateway;
    let calls_before = if reads_core {
        core_history_reads(failover).await
    } else {
        None
    };
    let (server_pids, core_pids) = (args.server_pids.clone(), args.core_pids.clone());
    let cpu_before = (cpu_secs(&server_pids), cpu_secs(&core_pids));
    let command: &[u8] = if args.storm_stop_pid.is_some() {
        b"{\"cmd\":\"storm\"}\n"
    } else {
        b"{\"cmd\":\"drop\"}\n"
    };
    let started = mono_ns();
    for worker in workers {
        worker
            .stdin
            .write_all(command)
            .await
            .context("telling a worker")?;
        worker.stdin.flush().await?;
    }
    if let Some(pid) = args.storm_stop_pid {
        // SAFETY: kill has no memory preconditions; the pid is the run's own server.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    }
    progress("storm: every stream reconnects");
    let (shared, n) = (Arc::clone(shared), args.connections as u64);
    let deadline = Instant::now() + Duration::from_secs(args.timeout / 2);
    Ok(tokio::spawn(async move {
        loop {
            let total = totals(&shared);
            if total.restored + total.failed >= n || Instant::now() > deadline {
                let secs = total.last_restored_ns.saturating_sub(started) as f64 / 1e9;
                let calls_after = if reads_core {
                    core_history_reads(failover).await
                } else {
                    None
                };
                return StormResult {
                    restored: total.restored,
                    secs,
                    server_cpu: cpu_secs(&server_pids) - cpu_before.0,
                    core_cpu: cpu_secs(&core_pids) - cpu_before.1,
                    core_calls: calls_before
                        .zip(calls_after)
                        .map(|(before, after)| after - before),
                };
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }))
}

/// The gateway's count of order histories read from payment-core, from
/// its `/metrics`.
async fn core_history_reads(gateway: SocketAddr) -> Option<f64> {
    let mut stream = TcpStream::connect(gateway).await.ok()?;
    let mut buf = Vec::new();
    let (status, body, _) = http::request(
        &mut stream,
        &mut buf,
        "GET",
        "loadgen",
        "/metrics",
        "text/plain",
        b"",
    )
    .await
    .ok()?;
    (status == 200).then_some(())?;
    // None from a gateway without the metric (one from before it existed).
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|line| {
            line.starts_with("sse_gateway_order_histories_read_total{")
                && line.contains("from=\"core\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(|a, b| a + b)
}

/// What the load phase reports to and samples.
struct System<'a> {
    /// The SSE server (nginx publishes there too).
    addr: SocketAddr,
    workers: &'a [WorkerHandle],
    core_pids: &'a [u32],
}

/// Step 3: reports every order's result, waits for the terminal events (at
/// most `--drain-secs`) and samples CPU and memory; answers each report
/// call's duration in µs.
async fn apply_load(
    args: &RunArgs,
    system: &System<'_>,
    orders: &Arc<Vec<Order>>,
    shared: &Arc<Shared>,
    summary: &mut Summary,
) -> anyhow::Result<Vec<u64>> {
    let reporter = connect_reporter(args, system.addr).await?;
    let own_pids: Vec<u32> = std::iter::once(std::process::id())
        .chain(system.workers.iter().filter_map(|w| w.child.id()))
        .collect();
    let cpu_before = (
        cpu_secs(&args.server_pids),
        cpu_secs(system.core_pids),
        cpu_secs(&own_pids),
    );
    progress(&format!(
        "reporting {} results {}",
        orders.len(),
        if args.unpaced {
            "unpaced".to_string()
        } else {
            format!("at {}/s", args.rate)
        }
    ));
    let stats = report_all(args, reporter, Arc::clone(orders), Arc::clone(shared)).await?;
    summary.reports = orders.len();
    summary.report_errors = stats.errors;
    summary.reports_unchanged = stats.unchanged;
    summary.achieved_report_rate = stats.achieved_rate;
    summary.max_schedule_lag_ms = stats.max_lag_ms;
    let drain_deadline = Instant::now() + Duration::from_secs(args.drain_secs);
    while shared.terms.load(Relaxed) < summary.connected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    summary.server_cpu_secs_load = cpu_secs(&args.server_pids) - cpu_before.0;
    summary.core_cpu_secs_load = cpu_secs(system.core_pids) - cpu_before.1;
    summary.loadgen_cpu_secs_load = cpu_secs(&own_pids) - cpu_before.2;
    tokio::time::sleep(Duration::from_millis(300)).await;
    summary.server_kib_after_load = memory_kib(&args.server_pids).1;
    Ok(stats.call_us)
}

/// The gateway target reports to payment-core over `--report-channels`
/// gRPC connections; the nchan target publishes to nginx.
async fn connect_reporter(args: &RunArgs, addr: SocketAddr) -> anyhow::Result<Reporter> {
    Ok(match args.target {
        Target::Gateway => {
            let mut clients = Vec::new();
            for url in report_urls(args)
                .cycle()
                .take(args.report_channels.clamp(1, 64))
            {
                let channel = Channel::from_shared(url.to_owned())?
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .context("connecting to payment-core")?;
                clients.push(ProviderServiceClient::new(channel));
            }
            Reporter::Grpc(clients, args.provider_secret.as_str().into())
        }
        Target::Nchan => Reporter::Nchan(addr),
    })
}

/// Where reports go: `--report-url`s, or the core the orders were made on.
fn report_urls(args: &RunArgs) -> impl Iterator<Item = &str> + Clone {
    let urls: &[String] = if args.report_urls.is_empty() {
        std::slice::from_ref(&args.core_url)
    } else {
        &args.report_urls
    };
    urls.iter().map(String::as_str)
}

/// Step 4: tells every worker to close, waits for it (killing one that does
/// not exit in 20 s) and for its last lines.
async fn close_workers(mut workers: Vec<WorkerHandle>) {
    for worker in &mut workers {
        let _ = worker.stdin.write_all(b"{\"cmd\":\"close\"}\n").await;
        let _ = worker.stdin.flush().await;
    }
    for worker in &mut workers {
        match tokio::time::timeout(Duration::from_secs(20), worker.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                progress("a worker did not exit; killing it");
                let _ = worker.child.kill().await;
            }
        }
    }
    for worker in workers {
        let _ = tokio::time::timeout(Duration::from_secs(5), worker.reader).await;
    }
}

/// Workers that exited without their final `done` line.
fn count_missing_finals(shared: &Shared) -> usize {
    let finals = shared.finals.lock().expect("not poisoned");
    finals.iter().filter(|f| f.is_none()).count()
}

/// Each connection's terminal event matched with its order's report.
#[derive(Default)]
struct Arrivals {
    /// Report-to-browser latencies, µs.
    latencies: Vec<u64>,
    /// `report_offset_ms latency_ms` lines, when asked for.
    samples: String,
    /// Reported, but the terminal event never came.
    lost: u64,
    /// A terminal event nobody reported (or before the report).
    early: u64,
    first_report: u64,
    last_term: u64,
}

fn match_arrivals(shared: &Shared, load: bool, keep_samples: bool) -> Arrivals {
    let order_count = shared.report_ns.len();
    let run_start = shared
        .report_ns
        .iter()
        .map(|r| r.load(Relaxed))
        .filter(|&r| r != 0)
        .min()
        .unwrap_or(0);
    let mut arrivals = Arrivals {
        first_report: u64::MAX,
        ..Arrivals::default()
    };
    for (i, term) in shared.term_ns.iter().enumerate() {
        let term = term.load(Relaxed);
        let report = shared.report_ns[i % order_count].load(Relaxed);
        if term == 0 {
            if load && report != 0 {
                arrivals.lost += 1;
            }
            continue;
        }
        if report == 0 || term < report {
            // A terminal event nobody reported: spurious.
            arrivals.early += 1;
            continue;
        }
        arrivals.first_report = arrivals.first_report.min(report);
        arrivals.last_term = arrivals.last_term.max(term);
        arrivals.latencies.push((term - report) / 1000);
        if keep_samples {
            use std::fmt::Write;
            let _ = writeln!(
                arrivals.samples,
                "{:.3} {:.3}",
                (report - run_start) as f64 / 1e6,
                (term - report) as f64 / 1e6
            );
        }
    }
    arrivals
}

/// The longest, over connections, from their order's acknowledged report
/// to their terminal event, in ns.
fn max_wait_after_ack(shared: &Shared) -> u64 {
    let order_count = shared.acked_ns.len().max(1);
    shared
        .term_ns
        .iter()
        .enumerate()
        .filter_map(|(i, term)| {
            let (term, acked) = (
                term.load(Relaxed),
                shared.acked_ns[i % order_count].load(Relaxed),
            );
            (term != 0 && acked != 0).then(|| term.saturating_sub(acked))
        })
        .max()
        .unwrap_or(0)
}

/// Terminal events, their rate and latency, and what was lost.
fn score(args: &RunArgs, arrivals: Arrivals, no_content: u64, load: bool, summary: &mut Summary) {
    summary.terminal_events = arrivals.latencies.len();
    if arrivals.last_term > arrivals.first_report {
        summary.terminal_events_per_sec = arrivals.latencies.len() as f64
            / ((arrivals.last_term - arrivals.first_report) as f64 / 1e9);
    }
    summary.lost = arrivals.lost + summary.missing_created + no_content;
    if !load {
        // Idle run: a connection that never came up lost its `created` event.
        summary.lost += summary.failed_connections;
    } else {
        summary.lost += summary
            .failed_connections
            .min(args.connections as u64 - summary.connected);
    }
    summary.early_terminal = arrivals.early;
    summary.report_to_browser = percentiles(arrivals.latencies);
}

/// Prints the summary, writes the JSON, and answers the exit status.
fn finish(args: &RunArgs, summary: &Summary, missing_finals: usize) -> anyhow::Result<i32> {
    print_summary(summary);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if summary.ok {
        Ok(0)
    } else {
        eprintln!(
            "\nloadgen: FAILED: lost={} duplicated={} failed_connections={} report_errors={} unchanged={} spurious={} workers_without_final_report={}",
            summary.lost,
            summary.duplicated,
            summary.failed_connections,
            summary.report_errors,
            summary.reports_unchanged,
            summary.early_terminal,
            missing_finals
        );
        Ok(1)
    }
}

fn print_summary(s: &Summary) {
    let mut rows = setup_rows(s);
    rows.extend(memory_rows(s));
    rows.extend(load_rows(s));
    rows.push(("result", if s.ok { "OK".into() } else { "FAILED".into() }));
    println!();
    for (name, value) in rows {
        println!("  {name:<26} {value}");
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn latency(p: &Percentiles) -> String {
    format!(
        "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms
    )
}

fn setup_rows(s: &Summary) -> Vec<(&'static str, String)> {
    vec![
        ("label", s.label.clone()),
        ("target", s.target.clone()),
        (
            "connections",
            format!(
                "{} ({} orders x {} watchers, {} worker(s), {} source addr)",
                s.connections, s.orders, s.watchers_per_order, s.workers, s.source_addresses
            ),
        ),
        (
            "connected / failed",
            format!("{} / {}", s.connected, s.failed_connections),
        ),
        ("orders created in", format!("{:.2} s", s.create_secs)),
        (
            "connection set-up",
            format!("{:.2} s = {:.0} conn/s", s.setup_secs, s.setup_per_sec),
        ),
    ]
}

fn memory_rows(s: &Summary) -> Vec<(&'static str, String)> {
    vec![
        (
            "server memory",
            format!(
                "{} -> {} idle -> {} after load",
                mib(s.server_kib_before),
                mib(s.server_kib_idle),
                mib(s.server_kib_after_load)
            ),
        ),
        (
            "server bytes / idle conn",
            format!(
                "{:.0} B ({:.2} KiB)",
                s.server_bytes_per_idle_conn,
                s.server_bytes_per_idle_conn / 1024.0
            ),
        ),
        (
            "core memory",
            format!(
                "{} -> {} idle ({:.0} B/conn)",
                mib(s.core_kib_before),
                mib(s.core_kib_idle),
                s.core_bytes_per_idle_conn
            ),
        ),
    ]
}

fn load_rows(s: &Summary) -> Vec<(&'static str, String)> {
    let requested = if s.unpaced {
        "unpaced".into()
    } else {
        format!("{}/s", s.requested_rate)
    };
    vec![
        (
            "report rate",
            format!(
                "requested {requested}, achieved {:.0}/s, max schedule lag {:.1} ms",
                s.achieved_report_rate, s.max_schedule_lag_ms
            ),
        ),
        ("report call (ms)", latency(&s.report_call)),
        (
            "report->browser (ms)",
            format!(
                "{}  (n={})",
                latency(&s.report_to_browser),
                s.report_to_browser.samples
            ),
        ),
        (
            "terminal events / s",
            format!(
                "{:.0} ({} events read in total)",
                s.terminal_events_per_sec, s.events_received
            ),
        ),
        (
            "cpu during load",
            format!(
                "server {:.2} s, core {:.2} s, loadgen {:.2} s",
                s.server_cpu_secs_load, s.core_cpu_secs_load, s.loadgen_cpu_secs_load
            ),
        ),
        (
            "lost / duplicated",
            format!(
                "{} / {} (reconnects {}, spurious {}, wrong result {})",
                s.lost, s.duplicated, s.reconnects, s.early_terminal, s.wrong_result
            ),
        ),
        (
            "longest wait after ack",
            format!("{:.2} ms", s.max_wait_after_ack_ms),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(loopback_addr("http://127.0.0.1:8080").is_ok());
        assert!(loopback_addr("http://127.3.4.5:80/x").is_ok());
        assert!(loopback_addr("http://localhost:8080").is_ok());
        assert!(loopback_addr("http://[::1]:8080").is_ok());
        assert!(loopback_addr("http://10.0.0.1:8080").is_err());
        assert!(loopback_addr("http://192.168.1.1:8080").is_err());
        assert!(loopback_addr("http://example.com:8080").is_err());
        assert!(loopback_addr("https://127.0.0.1:8080").is_err());
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let p = percentiles((1..=1000).collect());
        assert_eq!(p.samples, 1000);
        assert_eq!(p.p50_ms, 0.5);
        assert_eq!(p.p99_ms, 0.99);
        assert_eq!(p.p999_ms, 0.999);
        assert_eq!(p.max_ms, 1.0);
        assert_eq!(percentiles(Vec::new()).samples, 0);
    }
}
