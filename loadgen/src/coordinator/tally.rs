//! What the workers and the report tasks record during the run, for the
//! score at its end: when each connection read its terminal event, when
//! each order's report was sent and acknowledged, and each worker's counts.

use std::sync::{Mutex, atomic::AtomicU64};

use super::summary::Summary;
use crate::protocol::Status;

/// Written by the tasks reading the workers' lines and by the report
/// tasks, at once: atomics, and locks held only to copy a status.
pub(super) struct Tally {
    /// Per connection: CLOCK_MONOTONIC ns its terminal event was read, 0 = not yet.
    pub(super) term_ns: Vec<AtomicU64>,
    /// Per order: ns the report was sent, 0 = not yet.
    pub(super) report_ns: Vec<AtomicU64>,
    /// Per order: ns the report's acknowledgement arrived, 0 = not (yet).
    pub(super) acked_ns: Vec<AtomicU64>,
    /// Terminal events a connection read a second time (the workers count
    /// most; these are the ones only the coordinator sees).
    pub(super) dups: AtomicU64,
    /// Connections whose terminal event was read.
    pub(super) terms: AtomicU64,
    /// Per worker: its latest counts.
    pub(super) statuses: Mutex<Vec<Status>>,
    /// Per worker: its final counts, once it sent them.
    pub(super) finals: Mutex<Vec<Option<Status>>>,
}

impl Tally {
    pub(super) fn new(summary: &Summary) -> Self {
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

/// The workers' latest counts, summed (the earliest first connection,
/// the latest ready and restored).
pub(super) fn totals(tally: &Tally) -> Status {
    let statuses = tally.statuses.lock().expect("not poisoned");
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

/// Workers that exited without their final `done` line.
pub(super) fn count_missing_finals(tally: &Tally) -> usize {
    let finals = tally.finals.lock().expect("not poisoned");
    finals.iter().filter(|f| f.is_none()).count()
}
