//! Around step 2: the servers' memory and CPU before any connection, the
//! wait until every connection is up, and the idle sample once they have
//! settled: the figures for what an idle connection costs.

use std::time::{Duration, Instant};

use super::{
    args::RunArgs,
    procfs::{cpu_secs, memory_kib},
    progress,
    summary::Summary,
    tally::{Tally, totals},
};

/// Memory (Pss, KiB) and CPU seconds of the servers before any connection.
pub(super) struct Baseline {
    server_kib: u64,
    core_kib: u64,
    server_cpu: f64,
    core_cpu: f64,
}

/// Waits a second, then samples the servers before any connection.
pub(super) async fn sample_baseline(
    args: &RunArgs,
    core_pids: &[u32],
    summary: &mut Summary,
) -> Baseline {
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
pub(super) async fn wait_for_setup(args: &RunArgs, tally: &Tally) {
    let n = args.connections;
    let setup_deadline = Instant::now() + Duration::from_secs(args.timeout / 2);
    let mut last_print = Instant::now();
    loop {
        let total = totals(tally);
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
pub(super) fn record_setup(args: &RunArgs, tally: &Tally, summary: &mut Summary) {
    let total = totals(tally);
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
pub(super) async fn settle_and_sample_idle(
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
