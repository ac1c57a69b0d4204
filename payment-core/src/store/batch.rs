//! Group commit, as both stores do it: callers put a [`WriteCommand`] on a
//! bounded queue and wait for its answer; one writer per store takes
//! whatever is queued, commits it as one transaction (one durable flush for
//! the whole batch), and answers every caller only after that commit.
//!
//! A domain refusal (unknown order, status conflict, reused idempotency key)
//! writes nothing and is answered on its own; a database error rolls the
//! whole batch back and every caller in it gets that error. One case is
//! unknowable: a connection lost while COMMIT was under way may have
//! committed. Its callers get UNAVAILABLE and retry; a retried report or an
//! idempotency-keyed create then finds what was committed (creates without a
//! key can make a second order, which is what the key is for).

use std::time::Instant;

use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};
use tokio::sync::{mpsc, oneshot};

use super::{Applied, Created, StoreError};
use crate::domain::{NewOrder, OrderId, PaymentEvent, StatusChange};

/// Commands waiting for the writer. 1024 absorbs bursts well beyond what one
/// batch commits; when it is full, callers wait in `send`, which pushes back
/// on the gRPC handlers instead of growing memory.
const WRITE_QUEUE: usize = 1024;
/// Most commands committed in one transaction: bounds the latency of the
/// first caller in a batch and the size of a rolled-back batch.
pub(super) const MAX_BATCH: usize = 256;

pub(super) enum WriteCommand {
    Create {
        new: NewOrder,
        reply: oneshot::Sender<Result<Created, StoreError>>,
    },
    Apply {
        id: OrderId,
        change: StatusChange,
        reply: oneshot::Sender<Result<Applied, StoreError>>,
    },
}

/// What one command of a batch came to, in the batch's order.
pub(super) enum Outcome {
    Created(Result<Created, StoreError>),
    Applied(Result<Applied, StoreError>),
}

impl Outcome {
    /// The database error that spoils the batch, if this is one. Domain
    /// refusals are answers, not failures.
    pub(super) fn database_error(&self) -> Option<&StoreError> {
        match self {
            Outcome::Created(Err(e @ (StoreError::Database(_) | StoreError::Unavailable(_))))
            | Outcome::Applied(Err(e @ (StoreError::Database(_) | StoreError::Unavailable(_)))) => {
                Some(e)
            }
            _ => None,
        }
    }

    /// The event this command wrote, if it wrote one.
    pub(super) fn event(&self) -> Option<&PaymentEvent> {
        match self {
            Outcome::Created(Ok(Created::New(event)))
            | Outcome::Applied(Ok(Applied::Moved(event))) => Some(event),
            _ => None,
        }
    }
}

/// The writer's figures. Clones share them: the store keeps one to
/// register, its writer updates its own.
#[derive(Clone)]
pub struct WriteMetrics {
    /// From the writer taking a batch to its commit (or rollback) being done.
    commit_seconds: Histogram,
    /// Commands per committed batch.
    batch_commands: Histogram,
    /// Batches rolled back (every caller in one got an error).
    failed_batches: Counter,
    /// The last sequence this process committed (on PostgreSQL, the log's
    /// head is the highest of the replicas').
    head: Gauge,
}

impl Default for WriteMetrics {
    fn default() -> Self {
        Self {
            commit_seconds: Histogram::new(service_kit::metrics::LATENCY_BUCKETS),
            // 1, 2, 4 … 256 (MAX_BATCH).
            batch_commands: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 9),
            ),
            failed_batches: Counter::default(),
            head: Gauge::default(),
        }
    }
}

impl WriteMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "commit",
            "Time from the writer taking a batch of commands to its transaction being committed.",
            Unit::Seconds,
            self.commit_seconds.clone(),
        );
        registry.register(
            "commit_batch_commands",
            "Commands committed per write transaction (group commit).",
            self.batch_commands.clone(),
        );
        registry.register(
            "commit_failures",
            "Write batches rolled back: every command in one was answered with an error.",
            self.failed_batches.clone(),
        );
        registry.register(
            "log_head_sequence",
            "The last event sequence this process committed (replicas: the log's head is the highest).",
            self.head.clone(),
        );
    }
}

/// The callers' end of the queue.
#[derive(Clone)]
pub(super) struct WriteQueue(mpsc::Sender<WriteCommand>);

impl WriteQueue {
    /// A queue and the receiver its writer takes batches from.
    pub(super) fn new() -> (Self, mpsc::Receiver<WriteCommand>) {
        let (sender, receiver) = mpsc::channel(WRITE_QUEUE);
        (Self(sender), receiver)
    }

    pub(super) async fn create(&self, new: NewOrder) -> Result<Created, StoreError> {
        self.write(|reply| WriteCommand::Create { new, reply })
            .await
    }

    pub(super) async fn apply(
        &self,
        id: OrderId,
        change: StatusChange,
    ) -> Result<Applied, StoreError> {
        self.write(|reply| WriteCommand::Apply { id, change, reply })
            .await
    }

    async fn write<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> WriteCommand,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.0
            .send(command(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// Adds to `batch` (which holds the command that woke the writer) whatever
/// else is queued right now, up to [`MAX_BATCH`]. It does not wait: a lone
/// command is committed at once.
pub(super) fn take_queued(
    commands: &mut mpsc::Receiver<WriteCommand>,
    batch: &mut Vec<WriteCommand>,
) {
    while batch.len() < MAX_BATCH {
        match commands.try_recv() {
            Ok(command) => batch.push(command),
            Err(_) => break,
        }
    }
}

/// Answers every caller of a committed batch, which the writer took at
/// `started`, with its outcome. A caller that went away (request
/// cancelled) no longer needs the answer.
pub(super) fn answer(
    batch: &mut Vec<WriteCommand>,
    outcomes: Vec<Outcome>,
    metrics: &WriteMetrics,
    started: Instant,
) {
    debug_assert_eq!(batch.len(), outcomes.len());
    metrics
        .commit_seconds
        .observe(started.elapsed().as_secs_f64());
    metrics.batch_commands.observe(batch.len() as f64);
    if let Some(last) = outcomes
        .iter()
        .filter_map(Outcome::event)
        .map(|e| e.sequence)
        .max()
    {
        metrics.head.set(i64::try_from(last).unwrap_or(i64::MAX));
    }
    for (command, outcome) in batch.drain(..).zip(outcomes) {
        match (command, outcome) {
            (WriteCommand::Create { reply, .. }, Outcome::Created(result)) => {
                drop(reply.send(result))
            }
            (WriteCommand::Apply { reply, .. }, Outcome::Applied(result)) => {
                drop(reply.send(result))
            }
            _ => unreachable!("outcomes are built from the batch in order"),
        }
    }
}

/// Answers every caller of a rolled-back batch with `error`.
pub(super) fn fail(batch: &mut Vec<WriteCommand>, error: &StoreError, metrics: &WriteMetrics) {
    metrics.failed_batches.inc();
    tracing::error!(%error, batch = batch.len(), "write batch rolled back");
    for command in batch.drain(..) {
        match command {
            WriteCommand::Create { reply, .. } => drop(reply.send(Err(error.clone()))),
            WriteCommand::Apply { reply, .. } => drop(reply.send(Err(error.clone()))),
        }
    }
}
