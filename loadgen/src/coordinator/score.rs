//! Step 5: each connection's terminal event matched with its order's
//! report: report-to-browser latency, what was lost, what came before it
//! was reported.

use std::{fmt::Write, sync::atomic::Ordering::Relaxed};

use super::{
    args::RunArgs,
    summary::{Summary, percentiles},
    tally::Tally,
};

/// Each connection's terminal event matched with its order's report.
#[derive(Default)]
pub(super) struct Arrivals {
    /// Report-to-browser latencies, µs.
    latencies: Vec<u64>,
    /// `report_offset_ms latency_ms` lines, when asked for.
    pub(super) samples: String,
    /// Reported, but the terminal event never came.
    lost: u64,
    /// A terminal event nobody reported (or before the report).
    early: u64,
    first_report: u64,
    last_term: u64,
}

pub(super) fn match_arrivals(tally: &Tally, load: bool, keep_samples: bool) -> Arrivals {
    let order_count = tally.report_ns.len();
    let run_start = tally
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
    for (i, term) in tally.term_ns.iter().enumerate() {
        let term = term.load(Relaxed);
        let report = tally.report_ns[i % order_count].load(Relaxed);
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
pub(super) fn max_wait_after_ack(tally: &Tally) -> u64 {
    let order_count = tally.acked_ns.len().max(1);
    tally
        .term_ns
        .iter()
        .enumerate()
        .filter_map(|(i, term)| {
            let (term, acked) = (
                term.load(Relaxed),
                tally.acked_ns[i % order_count].load(Relaxed),
            );
            (term != 0 && acked != 0).then(|| term.saturating_sub(acked))
        })
        .max()
        .unwrap_or(0)
}

/// Terminal events, their rate and latency, and what was lost.
pub(super) fn score(
    args: &RunArgs,
    arrivals: Arrivals,
    no_content: u64,
    load: bool,
    summary: &mut Summary,
) {
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
