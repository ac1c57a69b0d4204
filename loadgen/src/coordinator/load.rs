//! Step 3: one result per order at `--rate` (or unpaced), from
//! `--report-concurrency` tasks: signed reports to payment-core over gRPC,
//! or publishes to nchan; then the wait for the terminal events they cause,
//! and the servers' CPU and memory meanwhile.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use payments_proto::{
    payments::v1::{self as pb, provider_service_client::ProviderServiceClient},
    signature::signed_now,
};
use tonic::transport::Channel;

use super::{
    args::{RunArgs, report_urls},
    orders::Order,
    procfs::{cpu_secs, memory_kib},
    progress,
    summary::Summary,
    tally::Tally,
    workers::WorkerHandle,
};
use crate::{clock::mono_ns, http::KeepAlive, target::Target};

/// What the load phase reports to and samples.
pub(super) struct System<'a> {
    /// The SSE server (nginx publishes there too).
    pub(super) addr: SocketAddr,
    pub(super) workers: &'a [WorkerHandle],
    pub(super) core_pids: &'a [u32],
}

/// Reports every order's result, waits for the terminal events (at
/// most `--drain-secs`) and samples CPU and memory; answers each report
/// call's duration in µs.
pub(super) async fn apply_load(
    args: &RunArgs,
    system: &System<'_>,
    orders: &Arc<Vec<Order>>,
    tally: &Arc<Tally>,
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
    let stats = report_all(args, reporter, Arc::clone(orders), Arc::clone(tally)).await?;
    summary.reports = orders.len();
    summary.report_errors = stats.errors;
    summary.reports_unchanged = stats.unchanged;
    summary.achieved_report_rate = stats.achieved_rate;
    summary.max_schedule_lag_ms = stats.max_lag_ms;
    let drain_deadline = Instant::now() + Duration::from_secs(args.drain_secs);
    while tally.terms.load(Relaxed) < summary.connected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    summary.server_cpu_secs_load = cpu_secs(&args.server_pids) - cpu_before.0;
    summary.core_cpu_secs_load = cpu_secs(system.core_pids) - cpu_before.1;
    summary.loadgen_cpu_secs_load = cpu_secs(&own_pids) - cpu_before.2;
    tokio::time::sleep(Duration::from_millis(300)).await;
    summary.server_kib_after_load = memory_kib(&args.server_pids).1;
    Ok(stats.call_us)
}

enum Reporter {
    Grpc(Vec<ProviderServiceClient<Channel>>, Arc<str>),
    Nchan(SocketAddr),
}

/// The gateway target reports to payment-core over `--report-channels`
/// gRPC connections; the nchan target publishes to nginx. A replica not
/// reachable yet gets a channel that connects when first used (a rolling
/// update starts it later: `.ci/rolling.sh`), as long as one is reachable
/// now: a run whose every report URL is wrong stops at once.
async fn connect_reporter(args: &RunArgs, addr: SocketAddr) -> anyhow::Result<Reporter> {
    Ok(match args.target {
        Target::Gateway => {
            let mut clients = Vec::new();
            let mut reachable = false;
            let mut last_error = None;
            for url in report_urls(args)
                .cycle()
                .take(args.report_channels.clamp(1, 64))
            {
                let endpoint = Channel::from_shared(url.to_owned())?.tcp_nodelay(true);
                let channel = match endpoint.connect().await {
                    Ok(channel) => {
                        reachable = true;
                        channel
                    }
                    Err(error) => {
                        last_error = Some(error);
                        endpoint.connect_lazy()
                    }
                };
                clients.push(ProviderServiceClient::new(channel));
            }
            if let (false, Some(error)) = (reachable, last_error) {
                return Err(error).context("connecting to payment-core");
            }
            Reporter::Grpc(clients, args.provider_secret.as_str().into())
        }
        Target::Nchan => Reporter::Nchan(addr),
    })
}

/// The state the report tasks share.
struct ReportRun {
    reporter: Reporter,
    orders: Arc<Vec<Order>>,
    tally: Arc<Tally>,
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
    tally: Arc<Tally>,
) -> anyhow::Result<ReportStats> {
    let run = Arc::new(ReportRun {
        reporter,
        orders,
        tally,
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
            run.tally.terms.load(Relaxed)
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
        run.tally.report_ns[k].store(sent, Relaxed);
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
            run.tally.acked_ns[k].store(mono_ns(), Relaxed);
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
