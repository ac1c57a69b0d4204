//! A payment-core stand-in behind the gateway's `PaymentCore` seam, for
//! what the real one cannot be made to do on cue: commit an event at the
//! worst moment of a stream's set-up, fail, hang, or answer late.
//!
//! It keeps an in-memory log with the real core's rules (sequences grow by
//! one, commits are published to watchers in order), and serves the
//! all-orders stream from it. It knows when the gateway's upstream has
//! handed an event to the hub: the upstream asks its stream for the next
//! event only after publishing the previous one.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use futures::StreamExt;
use sse_gateway::{
    PaymentCore,
    event::{
        EventData, NewOrder, OrderId, OrderView, SecretDigest, Status, UpstreamEvent, UpstreamItem,
        WireEvent,
    },
    payment_core::{CoreError, EventStream, EventsPage, OrderHistory},
};
use tokio::sync::{Notify, broadcast, watch};
use tokio_util::sync::CancellationToken;

/// What the next `order_history` call does.
pub enum HistoryCall {
    /// Commits `Status` for the order after reading the history, and
    /// answers once the gateway's upstream has published it to the hub: the
    /// event is in the live channel only.
    CommitAfterReading(Status),
    /// Notifies `entered`, waits for `release`, then answers: a slow core.
    WaitFor {
        entered: Arc<Notify>,
        release: Arc<Notify>,
    },
    /// Fails as an unreachable core does.
    Unavailable,
    /// Never answers.
    Hang,
}

struct Order {
    id: OrderId,
    secret: String,
}

#[derive(Default)]
struct Log {
    events: Vec<WireEvent>,
    orders: Vec<Order>,
    /// Events the real core would send in a form the gateway cannot read
    /// (its `ListOrderEvents` of their orders fails the same way).
    unreadable: std::collections::HashSet<u64>,
}

impl Log {
    /// `event` as the all-orders stream carries it: with its order's
    /// secret, or as unreadable.
    fn upstream(&self, event: &WireEvent) -> UpstreamItem {
        if self.unreadable.contains(&event.sequence) {
            return UpstreamItem::Unreadable {
                sequence: event.sequence,
                order_id: Some(event.order_id),
            };
        }
        let secret = self
            .orders
            .iter()
            .find(|order| order.id == event.order_id)
            .map(|order| order.secret.as_str())
            .unwrap_or_default();
        UpstreamItem::Event(UpstreamEvent {
            event: event.clone(),
            client_secret_digest: digest(secret),
        })
    }

    fn has_unreadable(&self, order_id: OrderId) -> bool {
        self.events
            .iter()
            .any(|event| event.order_id == order_id && self.unreadable.contains(&event.sequence))
    }
}

/// What payment-core sends instead of the secret.
fn digest(secret: &str) -> SecretDigest {
    SecretDigest(payments_proto::contract::client_secret_sha256(secret))
}

pub struct FakeCore {
    /// Guards the log; held only to append or copy, never across an await.
    log: Mutex<Log>,
    /// Committed events, for the all-orders stream. 1024 outlasts any test;
    /// a watcher that lags is failed, and the gateway resumes from the log.
    live: broadcast::Sender<UpstreamItem>,
    /// While true, the all-orders streams hold the next event back: a
    /// gateway whose upstream lags behind the log.
    held: watch::Sender<bool>,
    /// The highest sequence the gateway's upstream has handed to the hub.
    delivered: watch::Sender<u64>,
    /// How many `events` pages were asked for.
    pages_read: AtomicUsize,
    /// How many `order_history` calls were made.
    histories_read: AtomicUsize,
    /// Fires to break every open all-orders stream (replaced after).
    break_streams: Mutex<CancellationToken>,
    /// While set, opening an all-orders stream fails as an unreachable core.
    streams_down: AtomicBool,
    /// Behaviours for the next `order_history` calls of each order, in
    /// order; an order without one is answered at once.
    history_calls: Mutex<HashMap<OrderId, VecDeque<HistoryCall>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FakeCore {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            log: Mutex::default(),
            live: broadcast::channel(1024).0,
            delivered: watch::channel(0).0,
            held: watch::channel(false).0,
            pages_read: AtomicUsize::new(0),
            histories_read: AtomicUsize::new(0),
            break_streams: Mutex::default(),
            streams_down: AtomicBool::new(false),
            history_calls: Mutex::default(),
        })
    }

    /// Queues the behaviour of a coming `order_history` call for `order_id`.
    pub fn on_history(&self, order_id: OrderId, call: HistoryCall) {
        lock(&self.history_calls)
            .entry(order_id)
            .or_default()
            .push_back(call);
    }

    /// Creates an order: its `created` event is committed. Answers the id
    /// and the client secret.
    pub fn create(&self) -> (OrderId, String) {
        let id = OrderId::parse(&uuid::Uuid::new_v4().to_string()).expect("a UUID");
        let secret = format!("cs_{}", uuid::Uuid::new_v4().simple());
        lock(&self.log).orders.push(Order {
            id,
            secret: secret.clone(),
        });
        self.commit(id, Status::Created);
        (id, secret)
    }

    /// Commits an event for `order_id` that reaches the gateway in a form
    /// it cannot read (a status from a newer contract, say).
    pub fn commit_unreadable(&self, order_id: OrderId) -> u64 {
        let sequence = lock(&self.log).events.len() as u64 + 1;
        lock(&self.log).unreadable.insert(sequence);
        self.commit(order_id, Status::Processing).sequence
    }

    /// The all-orders streams hold back what comes next until
    /// [`FakeCore::release_streams`].
    pub fn hold_streams(&self) {
        self.held.send_replace(true);
    }

    pub fn release_streams(&self) {
        self.held.send_replace(false);
    }

    /// Appends an event for `order_id` and publishes it, as a commit does.
    pub fn commit(&self, order_id: OrderId, status: Status) -> WireEvent {
        let mut log = lock(&self.log);
        let sequence = log.events.len() as u64 + 1;
        let event = WireEvent::from_data(&EventData {
            sequence,
            order_id,
            status,
            amount_minor: 100,
            currency: "EUR",
            description: "fake",
            reason: "",
            occurred_at: "2026-11-30T00:00:00Z".into(),
        })
        .expect("renders");
        log.events.push(event.clone());
        // Published under the log's lock, so watchers see commit order.
        let _ = self.live.send(log.upstream(&event));
        event
    }

    /// How many pages of the log were read (`ListEvents` calls).
    pub fn pages_read(&self) -> usize {
        self.pages_read.load(Ordering::Relaxed)
    }

    /// How many `order_history` calls were made.
    pub fn histories_read(&self) -> usize {
        self.histories_read.load(Ordering::Relaxed)
    }

    /// Ends every open all-orders stream with an error and refuses new
    /// ones until [`FakeCore::restore_streams`]: a core that is restarting.
    pub fn break_streams(&self) {
        self.streams_down.store(true, Ordering::SeqCst);
        std::mem::take(&mut *lock(&self.break_streams)).cancel();
    }

    pub fn restore_streams(&self) {
        self.streams_down.store(false, Ordering::SeqCst);
    }

    /// Waits until the gateway's upstream has handed `sequence` to the hub.
    /// Bounded: a gateway that never takes it fails the test.
    pub async fn delivered(&self, sequence: u64) {
        let mut delivered = self.delivered.subscribe();
        let handed = delivered.wait_for(|handed| *handed >= sequence);
        tokio::time::timeout(std::time::Duration::from_secs(10), handed)
            .await
            .unwrap_or_else(|_| panic!("the gateway's upstream never took event {sequence}"))
            .expect("the fake core outlives the test");
    }

    fn history_now(&self, order_id: OrderId) -> Result<OrderHistory, CoreError> {
        let log = lock(&self.log);
        if log.has_unreadable(order_id) {
            return Err(CoreError::Other(
                "malformed answer from payment-core".into(),
            ));
        }
        let order = log
            .orders
            .iter()
            .find(|order| order.id == order_id)
            .ok_or(CoreError::NotFound)?;
        Ok(OrderHistory {
            client_secret_digest: digest(&order.secret),
            events: log
                .events
                .iter()
                .filter(|event| event.order_id == order_id)
                .map(|event| Arc::new(event.clone()))
                .collect(),
        })
    }
}

#[async_trait::async_trait]
impl PaymentCore for FakeCore {
    async fn create_order(&self, _: NewOrder) -> Result<OrderView, CoreError> {
        Err(CoreError::Other(
            "the fake core takes orders from tests only".into(),
        ))
    }

    async fn get_order(&self, _: OrderId) -> Result<OrderView, CoreError> {
        Err(CoreError::Other("the fake core serves streams only".into()))
    }

    async fn order_history(&self, order_id: OrderId) -> Result<OrderHistory, CoreError> {
        self.histories_read.fetch_add(1, Ordering::Relaxed);
        let call = lock(&self.history_calls)
            .get_mut(&order_id)
            .and_then(VecDeque::pop_front);
        match call {
            None => self.history_now(order_id),
            Some(HistoryCall::CommitAfterReading(status)) => {
                let history = self.history_now(order_id)?;
                let event = self.commit(order_id, status);
                self.delivered(event.sequence).await;
                Ok(history)
            }
            Some(HistoryCall::WaitFor { entered, release }) => {
                entered.notify_one();
                release.notified().await;
                self.history_now(order_id)
            }
            Some(HistoryCall::Unavailable) => {
                Err(CoreError::Unavailable("connection refused".into()))
            }
            Some(HistoryCall::Hang) => std::future::pending().await,
        }
    }

    async fn events(&self, after: u64, page_size: u32) -> Result<EventsPage, CoreError> {
        self.pages_read.fetch_add(1, Ordering::Relaxed);
        let log = lock(&self.log);
        Ok(EventsPage {
            events: log
                .events
                .iter()
                .filter(|event| event.sequence > after)
                .take(page_size as usize)
                .cloned()
                .collect(),
            head_sequence: log.events.len() as u64,
        })
    }

    async fn watch_all(&self, after: u64) -> Result<EventStream, CoreError> {
        if self.streams_down.load(Ordering::SeqCst) {
            return Err(CoreError::Unavailable("the fake core is down".into()));
        }
        // Subscribed under the log's lock: nothing falls between the copy
        // of the log and the live channel.
        let (backlog, live) = {
            let log = lock(&self.log);
            let backlog: VecDeque<_> = log
                .events
                .iter()
                .filter(|event| event.sequence > after)
                .map(|event| log.upstream(event))
                .collect();
            (backlog, self.live.subscribe())
        };
        let delivered = self.delivered.clone();
        let broken = lock(&self.break_streams).clone();
        let held = self.held.subscribe();
        let state = (backlog, live, None::<u64>, delivered, held);
        let stream = futures::stream::unfold(
            state,
            |(mut backlog, mut live, handed, delivered, mut held)| async move {
                // Asked for the next event: the previous one is in the hub.
                if let Some(sequence) = handed {
                    delivered.send_if_modified(|highest| {
                        let newer = sequence > *highest;
                        *highest = (*highest).max(sequence);
                        newer
                    });
                }
                let next = match backlog.pop_front() {
                    Some(event) => Ok(event),
                    None => live
                        .recv()
                        .await
                        .map_err(|lagged| CoreError::Unavailable(lagged.to_string())),
                };
                let _ = held.wait_for(|held| !*held).await;
                let handed = next.as_ref().ok().map(UpstreamItem::sequence);
                Some((next, (backlog, live, handed, delivered, held)))
            },
        );
        // Broken on cue: an error, then nothing (the upstream reconnects).
        let broken = futures::stream::once(async move {
            broken.cancelled_owned().await;
            Err(CoreError::Unavailable(
                "the fake core broke the stream".into(),
            ))
        });
        Ok(futures::stream::select(stream, broken).boxed())
    }
}
