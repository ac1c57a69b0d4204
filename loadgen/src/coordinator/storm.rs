//! The reconnect storm (`--storm`): once every connection is up, the
//! server holding them is stopped, or every stream is closed from this
//! side, and all of them reconnect at once, with `Last-Event-ID`, to the
//! failover server; measured until each is served again.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use rustix::process::{Pid, Signal, kill_process};
use tokio::{io::AsyncWriteExt, task::JoinHandle};

use super::{
    args::{RunArgs, loopback_addr},
    procfs::cpu_secs,
    progress,
    summary::Summary,
    tally::{Tally, totals},
    workers::WorkerHandle,
};
use crate::{clock::mono_ns, http, protocol, target::Target};

/// What a storm measured.
pub(super) struct StormResult {
    restored: u64,
    secs: f64,
    server_cpu: f64,
    core_cpu: f64,
    core_calls: Option<f64>,
}

impl StormResult {
    pub(super) fn record(self, summary: &mut Summary) {
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
pub(super) async fn start_storm(
    args: &RunArgs,
    workers: &mut [WorkerHandle],
    tally: &Arc<Tally>,
) -> anyhow::Result<JoinHandle<StormResult>> {
    let failover = loopback_addr(args.failover_url.as_deref().unwrap_or(&args.url))?;
    let before = Sample::take(args, failover).await;
    let command = if args.storm_stop_pid.is_some() {
        protocol::STORM
    } else {
        protocol::DROP
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
        stop(pid);
    }
    progress("storm: every stream reconnects");
    let (args, tally) = (args.clone(), Arc::clone(tally));
    Ok(tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(args.timeout / 2);
        let n = args.connections as u64;
        loop {
            let total = totals(&tally);
            if total.restored + total.failed >= n || Instant::now() > deadline {
                let after = Sample::take(&args, failover).await;
                return StormResult {
                    restored: total.restored,
                    secs: total.last_restored_ns.saturating_sub(started) as f64 / 1e9,
                    server_cpu: after.server_cpu - before.server_cpu,
                    core_cpu: after.core_cpu - before.core_cpu,
                    core_calls: before
                        .core_calls
                        .zip(after.core_calls)
                        .map(|(before, after)| after - before),
                };
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }))
}

/// SIGTERM to the server the storm stops (`--storm-stop-pid`). As before
/// the storm was measured, a failure is not reported: the streams that
/// are then not served again say so.
fn stop(pid: u32) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, Signal::TERM);
    }
}

/// The servers' CPU so far, and the failover gateway's reads from the core.
struct Sample {
    server_cpu: f64,
    core_cpu: f64,
    core_calls: Option<f64>,
}

impl Sample {
    async fn take(args: &RunArgs, failover: SocketAddr) -> Self {
        let core_calls = if args.target == Target::Gateway {
            core_history_reads(failover).await
        } else {
            None
        };
        Self {
            server_cpu: cpu_secs(&args.server_pids),
            core_cpu: cpu_secs(&args.core_pids),
            core_calls,
        }
    }
}

/// The gateway's count of order histories read from payment-core, from
/// its `/metrics`.
async fn core_history_reads(gateway: SocketAddr) -> Option<f64> {
    let body = http::get_ok(gateway, "/metrics").await.ok()?;
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
