//! One watcher of the event log: history after a sequence, then live events,
//! with no gap and no duplicate.
//!
//! The order of operations is what makes it gap-free:
//! 1. subscribe to the store's live channel (it buffers from now on);
//! 2. read the log after `after_sequence`, page by page, and send it;
//! 3. forward live events, skipping those whose sequence was already sent.
//!
//! An event committed before step 1 is in the log read at step 2; one
//! committed after step 1 is in the channel; one in both is skipped at step 3
//! because the channel carries events in sequence order. If the watcher falls
//! so far behind that the channel drops events for it (`Lagged`), it goes
//! back to the log from the last sequence it saw: the log is the truth, the
//! channel only a fast path.
//!
//! The watcher writes into a bounded per-watcher channel that the gRPC
//! response drains. If that channel stays full for `slow_timeout`, the client
//! is not reading: the watcher stops ([`WatchEnd::TooSlow`]) so that it holds
//! no memory or database work for a client that cannot keep up.

use std::{sync::Arc, time::Duration};

use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{
    domain::{PaymentEvent, Scope},
    metrics::WatchEndReason,
    store::{Store, StoreError},
};

/// Events read from the log per query while catching up.
const PAGE_SIZE: u32 = 500;

/// Why a watch ended. `resume_after` is the last sequence handed to the
/// client: passing it back as `after_sequence` continues without a gap.
#[derive(Debug)]
pub enum WatchEnd {
    /// The watched order reached a final state and its event was sent.
    Completed,
    /// The client went away.
    ClientGone,
    /// The client left its buffer full for too long.
    TooSlow { resume_after: u64 },
    /// The server is shutting down.
    ShuttingDown { resume_after: u64 },
    /// The store stopped answering: this replica's live feed has stopped.
    StoreLost { resume_after: u64 },
    /// The log could not be read.
    Failed {
        error: StoreError,
        resume_after: u64,
    },
}

impl WatchEnd {
    pub fn reason(&self) -> WatchEndReason {
        match self {
            WatchEnd::Completed => WatchEndReason::Completed,
            WatchEnd::ClientGone => WatchEndReason::ClientGone,
            WatchEnd::TooSlow { .. } => WatchEndReason::TooSlow,
            WatchEnd::ShuttingDown { .. } => WatchEndReason::ShuttingDown,
            WatchEnd::StoreLost { .. } => WatchEndReason::StoreLost,
            WatchEnd::Failed { .. } => WatchEndReason::Failed,
        }
    }
}

enum Flow {
    Continue,
    Completed,
}

struct Cursor<'a> {
    store: &'a dyn Store,
    scope: Scope,
    /// Highest sequence seen, sent or skipped as out of scope.
    seen: u64,
    /// Highest sequence handed to the client.
    sent: u64,
    out: mpsc::Sender<Arc<PaymentEvent>>,
    slow_timeout: Duration,
    shutdown: CancellationToken,
    /// Fires when the probe finds the store unreachable: reads of the log
    /// stop waiting then.
    store_lost: CancellationToken,
}

impl Cursor<'_> {
    async fn offer(&mut self, event: Arc<PaymentEvent>) -> Result<Flow, WatchEnd> {
        if event.sequence <= self.seen {
            return Ok(Flow::Continue);
        }
        self.seen = event.sequence;
        if !self.scope.matches(&event) {
            return Ok(Flow::Continue);
        }
        let ends_watch = matches!(self.scope, Scope::Order(_)) && event.status().is_terminal();
        let sequence = event.sequence;
        self.send(event).await?;
        self.sent = sequence;
        Ok(if ends_watch {
            Flow::Completed
        } else {
            Flow::Continue
        })
    }

    async fn send(&self, event: Arc<PaymentEvent>) -> Result<(), WatchEnd> {
        match self.out.try_send(event) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(WatchEnd::ClientGone),
            Err(mpsc::error::TrySendError::Full(event)) => {
                let sent = tokio::select! {
                    sent = tokio::time::timeout(self.slow_timeout, self.out.send(event)) => sent,
                    () = self.shutdown.cancelled() => {
                        return Err(WatchEnd::ShuttingDown { resume_after: self.sent });
                    }
                };
                match sent {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(WatchEnd::ClientGone),
                    Err(_) => Err(WatchEnd::TooSlow {
                        resume_after: self.sent,
                    }),
                }
            }
        }
    }

    /// Sends everything in the log after `seen`.
    async fn catch_up(&mut self) -> Result<Flow, WatchEnd> {
        loop {
            if self.shutdown.is_cancelled() {
                return Err(WatchEnd::ShuttingDown {
                    resume_after: self.sent,
                });
            }
            // A read of a database that hangs (a partition drops packets
            // rather than refusing them) must not hold the watcher past the
            // outage the probe finds: its client would wait on a stream
            // that looks open, instead of moving to another replica.
            let page = tokio::select! {
                biased;
                () = self.store_lost.cancelled() => {
                    return Err(WatchEnd::StoreLost { resume_after: self.sent });
                }
                page = self.store.events_after(self.scope, self.seen, PAGE_SIZE) => page,
            };
            let page = page.map_err(|error| WatchEnd::Failed {
                error,
                resume_after: self.sent,
            })?;
            let full_page = page.len() == PAGE_SIZE as usize;
            for event in page {
                if let Flow::Completed = self.offer(Arc::new(event)).await? {
                    return Ok(Flow::Completed);
                }
            }
            if !full_page {
                return Ok(Flow::Continue);
            }
        }
    }
}

/// Streams the events of `scope` after `after` into `out` until the order
/// ends, the client goes, it is too slow, `store_lost` fires (the store
/// stopped answering) or `shutdown` fires.
pub async fn watch(
    store: &dyn Store,
    scope: Scope,
    after: u64,
    out: mpsc::Sender<Arc<PaymentEvent>>,
    slow_timeout: Duration,
    store_lost: CancellationToken,
    shutdown: CancellationToken,
) -> WatchEnd {
    let mut live = store.subscribe();
    let mut cursor = Cursor {
        store,
        scope,
        seen: after,
        sent: after,
        out,
        slow_timeout,
        shutdown: shutdown.clone(),
        store_lost: store_lost.clone(),
    };

    match cursor.catch_up().await {
        Ok(Flow::Completed) => return WatchEnd::Completed,
        Err(end) => return end,
        Ok(Flow::Continue) => {}
    }
    if let Scope::Order(id) = scope {
        let order = tokio::select! {
            biased;
            () = store_lost.cancelled() => {
                return WatchEnd::StoreLost { resume_after: cursor.sent };
            }
            order = store.get_order(id) => order,
        };
        match order {
            // A final state is final: one more read of the log has everything
            // (the final event may have landed after the first read).
            Ok(Some(order)) if order.status.is_terminal() => {
                return match cursor.catch_up().await {
                    Ok(_) => WatchEnd::Completed,
                    Err(end) => end,
                };
            }
            Ok(_) => {}
            Err(error) => {
                return WatchEnd::Failed {
                    error,
                    resume_after: cursor.sent,
                };
            }
        }
    }

    loop {
        let received = tokio::select! {
            biased;
            () = shutdown.cancelled() => return WatchEnd::ShuttingDown { resume_after: cursor.sent },
            () = store_lost.cancelled() => return WatchEnd::StoreLost { resume_after: cursor.sent },
            () = cursor.out.closed() => return WatchEnd::ClientGone,
            received = live.recv() => received,
        };
        let flow = match received {
            Ok(event) => cursor.offer(event).await,
            Err(RecvError::Lagged(skipped)) => {
                tracing::debug!(
                    skipped,
                    after = cursor.seen,
                    "watcher lagged; reading the log"
                );
                cursor.catch_up().await
            }
            Err(RecvError::Closed) => {
                return WatchEnd::ShuttingDown {
                    resume_after: cursor.sent,
                };
            }
        };
        match flow {
            Ok(Flow::Continue) => {}
            Ok(Flow::Completed) => return WatchEnd::Completed,
            Err(end) => return end,
        }
    }
}
