//! The run's result: every figure measured ([`Summary`], also written as
//! JSON for `bench/`), printed as a table on stdout, and the exit status.
//! `bench/` scripts read both: the row names and the JSON fields stay.

use anyhow::Context;
use serde::Serialize;

use super::args::{RunArgs, source_count};

#[derive(Serialize, Default, Clone)]
pub struct Percentiles {
    pub samples: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

pub(super) fn percentiles(mut micros: Vec<u64>) -> Percentiles {
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

impl Summary {
    /// The run as planned from the flags; the measurements fill the rest.
    pub(super) fn planned(args: &RunArgs) -> Self {
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

    /// Whether the run passed: nothing lost, duplicated, wrong, early or
    /// failed, every stream served again after a storm (`storm`), and every
    /// worker's final counts in (`missing_finals` is those without).
    pub(super) fn passed(&self, storm: bool, missing_finals: usize) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.wrong_result == 0
            && self.early_terminal == 0
            && self.report_errors == 0
            && self.reports_unchanged == 0
            && self.failed_connections == 0
            && (!storm || self.storm_restored == self.connected)
            && missing_finals == 0
    }
}

/// Prints the summary, writes the JSON, and answers the exit status.
pub(super) fn finish(
    args: &RunArgs,
    summary: &Summary,
    missing_finals: usize,
) -> anyhow::Result<i32> {
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
