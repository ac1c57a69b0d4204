//! In-process fan-out of the one upstream stream to SSE connections.
//!
//! Connections watching one order register under that order's id, so an
//! event costs work only for the browsers watching its order, not for all
//! of them. Dashboard connections register for every event.
//!
//! Each connection has a bounded channel. The hub never waits on one: it
//! uses `try_send`, and a connection whose channel is full is dropped from
//! the hub (its stream ends after what it has buffered, the browser
//! reconnects with `Last-Event-ID` and catches up from payment-core). A slow
//! browser therefore neither delays the others nor grows memory.
//!
//! Each shard also keeps its part of the gateway's memory of recent orders
//! ([`RecentOrders`]): an event is recorded there and handed to the order's
//! connections under one lock, and a new connection registers and reads
//! that memory under the same lock. So for an order the gateway knows, the
//! history a stream opens with and its live channel split the order's
//! events exactly: each one is in one of the two, never in neither.
//!
//! Locks: each shard's mutex guards its order -> connections map and its
//! recent orders; the dashboard mutex guards the dashboard list and the
//! recent-events ring. Both are std mutexes held only to register,
//! unregister, copy a handful of references or push to channels without
//! waiting, never across an `.await`.

use std::{
    collections::{HashMap, VecDeque},
    hash::{BuildHasher, RandomState},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::mpsc;

use crate::{
    event::{OrderHistory, OrderId, SecretDigest, UpstreamEvent, WireEvent},
    metrics::Metrics,
    recent::RecentOrders,
};

/// Order connections get at most a handful of events (created, processing,
/// a result); 8 leaves room for a replay after an upstream reconnect.
pub const ORDER_BUFFER: usize = 8;
/// Dashboards get every event; 1024 rides out bursts of thousands per second.
pub const DASHBOARD_BUFFER: usize = 1024;
/// Events a fresh dashboard is shown before live ones.
pub const RECENT_EVENTS: usize = 200;
/// Shards of the order map, so that connects and events for different
/// orders rarely contend on one lock.
const SHARDS: usize = 64;

struct Subscriber {
    id: u64,
    tx: mpsc::Sender<Arc<WireEvent>>,
}

#[derive(Default)]
struct Dashboards {
    subscribers: Vec<Subscriber>,
    recent: VecDeque<Arc<WireEvent>>,
}

/// One shard of the orders: the connections watching them, and the
/// recent ones' histories.
struct Shard {
    watchers: HashMap<OrderId, Vec<Subscriber>>,
    recent: RecentOrders,
}

pub struct Hub {
    /// Sharded by the order id's hash.
    shards: Vec<Mutex<Shard>>,
    dashboards: Mutex<Dashboards>,
    hasher: RandomState,
    /// Tells apart two connections of one order (two tabs) when one leaves.
    next_id: AtomicU64,
    metrics: Arc<Metrics>,
}

enum Key {
    Order(OrderId),
    Dashboard,
}

/// A registration; dropping it unregisters.
pub struct Subscription {
    hub: Arc<Hub>,
    key: Key,
    id: u64,
    pub events: mpsc::Receiver<Arc<WireEvent>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        match &self.key {
            Key::Order(order_id) => {
                let mut shard = self.hub.shard(*order_id);
                if let Some(subscribers) = shard.watchers.get_mut(order_id) {
                    subscribers.retain(|subscriber| subscriber.id != self.id);
                    if subscribers.is_empty() {
                        shard.watchers.remove(order_id);
                    }
                }
            }
            Key::Dashboard => lock(&self.hub.dashboards)
                .subscribers
                .retain(|subscriber| subscriber.id != self.id),
        }
    }
}

/// A poisoned lock only means another thread panicked mid-update of plain
/// vectors; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    /// `recent_orders`: how many orders' histories to keep (spread over
    /// the shards, each holding its share rounded up); 0 keeps none.
    pub fn new(metrics: Arc<Metrics>, recent_orders: usize) -> Arc<Self> {
        let per_shard = recent_orders.div_ceil(SHARDS);
        Arc::new(Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        watchers: HashMap::new(),
                        recent: RecentOrders::with_capacity(per_shard),
                    })
                })
                .collect(),
            dashboards: Mutex::default(),
            hasher: RandomState::new(),
            next_id: AtomicU64::new(0),
            metrics,
        })
    }

    fn shard(&self, order_id: OrderId) -> MutexGuard<'_, Shard> {
        lock(&self.shards[self.hasher.hash_one(order_id) as usize % SHARDS])
    }

    /// Registers for one order's events from now on, and answers the
    /// order's history up to now if the gateway knows the order (see the
    /// module doc); `None` leaves the history to the caller.
    pub fn subscribe_order(
        self: &Arc<Self>,
        order_id: OrderId,
    ) -> (Subscription, Option<OrderHistory>) {
        let (tx, events) = mpsc::channel(ORDER_BUFFER);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let history = {
            let mut shard = self.shard(order_id);
            shard
                .watchers
                .entry(order_id)
                .or_default()
                .push(Subscriber { id, tx });
            shard.recent.get(order_id)
        };
        let subscription = Subscription {
            hub: Arc::clone(self),
            key: Key::Order(order_id),
            id,
            events,
        };
        (subscription, history)
    }

    /// The client secret digest of an order this gateway remembers.
    pub fn recent_secret_digest(&self, order_id: OrderId) -> Option<SecretDigest> {
        self.shard(order_id).recent.secret_digest(order_id)
    }

    /// Registers for every event from now on, and returns the recent ones
    /// taken under the same lock, so nothing falls between the two.
    pub fn subscribe_dashboard(self: &Arc<Self>) -> (Subscription, Vec<Arc<WireEvent>>) {
        let (tx, events) = mpsc::channel(DASHBOARD_BUFFER);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut dashboards = lock(&self.dashboards);
        dashboards.subscribers.push(Subscriber { id, tx });
        let recent = dashboards.recent.iter().cloned().collect();
        (
            Subscription {
                hub: Arc::clone(self),
                key: Key::Dashboard,
                id,
                events,
            },
            recent,
        )
    }

    /// Records `event` in the recent orders and hands it to every
    /// connection that wants it, without waiting.
    pub fn publish(&self, upstream: UpstreamEvent) {
        let event = Arc::new(upstream.event);
        {
            let mut shard = self.shard(event.order_id);
            let held = shard.recent.record(&event, upstream.client_secret_digest);
            self.metrics.recent_orders_changed(held);
            if let Some(subscribers) = shard.watchers.get_mut(&event.order_id) {
                self.offer(subscribers, &event);
            }
        }
        let mut dashboards = lock(&self.dashboards);
        if dashboards.recent.len() == RECENT_EVENTS {
            dashboards.recent.pop_front();
        }
        dashboards.recent.push_back(Arc::clone(&event));
        self.offer(&mut dashboards.subscribers, &event);
    }

    /// Forgets the history of `order_id` (an event of it could not be
    /// read, so the history has a hole), or of every order when the event
    /// named none: their streams then read the core.
    pub fn forget(&self, order_id: Option<OrderId>) {
        match order_id {
            Some(order_id) => {
                let dropped = self.shard(order_id).recent.forget(order_id);
                self.metrics.recent_orders_changed(dropped);
            }
            None => {
                for shard in &self.shards {
                    let dropped = lock(shard).recent.forget_all();
                    self.metrics.recent_orders_changed(dropped);
                }
            }
        }
    }

    fn offer(&self, subscribers: &mut Vec<Subscriber>, event: &Arc<WireEvent>) {
        subscribers.retain(|subscriber| match subscriber.tx.try_send(Arc::clone(event)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.slow_client_dropped();
                tracing::info!(order_id = %event.order_id, "SSE client too slow; disconnecting it");
                false
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use payments_proto::contract::client_secret_sha256;

    use crate::event::Status;

    /// Order "a" and order "b" of the tests.
    fn order(name: &str) -> OrderId {
        let id = if name == "a" { "aaaaaaaa" } else { "bbbbbbbb" };
        OrderId::parse(&format!("{id}-0000-4000-8000-000000000000")).expect("uuid")
    }

    fn event(sequence: u64, order_id: &str) -> UpstreamEvent {
        let status = if sequence == 1 {
            Status::Created
        } else {
            Status::Processing
        };
        UpstreamEvent {
            event: WireEvent::new(sequence, order(order_id), status, "{}"),
            client_secret_digest: SecretDigest(client_secret_sha256(&format!("cs_{order_id}"))),
        }
    }

    #[tokio::test]
    async fn events_reach_only_the_watchers_of_their_order_and_all_dashboards() {
        let hub = Hub::new(Metrics::new("test").0, 100);
        let (mut a, _) = hub.subscribe_order(order("a"));
        let (mut b, _) = hub.subscribe_order(order("b"));
        let (mut dashboard, recent) = hub.subscribe_dashboard();
        assert!(recent.is_empty());
        hub.publish(event(1, "a"));
        assert_eq!(a.events.recv().await.unwrap().sequence, 1);
        assert!(b.events.try_recv().is_err());
        assert_eq!(dashboard.events.recv().await.unwrap().sequence, 1);
    }

    #[tokio::test]
    async fn a_full_connection_is_dropped_without_blocking_the_others() {
        let (metrics, _) = Metrics::new("test");
        let hub = Hub::new(metrics.clone(), 100);
        let (mut slow, _) = hub.subscribe_order(order("a"));
        let (mut fast, _) = hub.subscribe_order(order("a"));
        for sequence in 1..=ORDER_BUFFER as u64 + 1 {
            hub.publish(event(sequence, "a"));
            assert_eq!(fast.events.recv().await.unwrap().sequence, sequence);
        }
        assert_eq!(metrics.slow_clients_dropped(), 1);
        let mut drained = 0;
        while slow.events.recv().await.is_some() {
            drained += 1;
        }
        assert_eq!(
            drained, ORDER_BUFFER,
            "the slow one keeps what it had, then its stream ends"
        );
    }

    #[test]
    fn dropping_a_subscription_unregisters_it() {
        let hub = Hub::new(Metrics::new("test").0, 100);
        let (subscription, _) = hub.subscribe_order(order("a"));
        drop(subscription);
        assert!(!hub.shard(order("a")).watchers.contains_key(&order("a")));
        let (dashboard, _) = hub.subscribe_dashboard();
        drop(dashboard);
        assert!(lock(&hub.dashboards).subscribers.is_empty());
    }

    #[test]
    fn a_new_dashboard_gets_the_recent_events_bounded() {
        let hub = Hub::new(Metrics::new("test").0, 100);
        for sequence in 1..=RECENT_EVENTS as u64 + 5 {
            hub.publish(event(sequence, "a"));
        }
        let (_dashboard, recent) = hub.subscribe_dashboard();
        assert_eq!(recent.len(), RECENT_EVENTS);
        assert_eq!(recent[0].sequence, 6);
    }

    #[tokio::test]
    async fn a_known_orders_history_and_live_channel_split_its_events_exactly() {
        let hub = Hub::new(Metrics::new("test").0, 100);
        hub.publish(event(1, "a"));
        let (mut live, history) = hub.subscribe_order(order("a"));
        let history = history.expect("seen from its creation");
        assert!(history.client_secret_digest.opened_by("cs_a"));
        assert_eq!(
            history
                .events
                .iter()
                .map(|e| e.sequence)
                .collect::<Vec<_>>(),
            [1]
        );
        assert!(live.events.try_recv().is_err(), "not in both");
        hub.publish(event(2, "a"));
        assert_eq!(live.events.recv().await.unwrap().sequence, 2);
        let (_, later) = hub.subscribe_order(order("a"));
        assert_eq!(later.expect("known").events.len(), 2);
    }

    #[test]
    fn a_forgotten_order_is_left_to_the_core() {
        let hub = Hub::new(Metrics::new("test").0, 100);
        hub.publish(event(1, "a"));
        hub.publish(event(1, "b"));
        hub.forget(Some(order("a")));
        assert!(hub.subscribe_order(order("a")).1.is_none());
        assert!(hub.subscribe_order(order("b")).1.is_some());
        hub.forget(None);
        assert!(
            hub.subscribe_order(order("b")).1.is_none(),
            "no order named: all"
        );
    }

    #[test]
    fn an_order_created_before_the_hub_saw_it_is_left_to_the_core() {
        let hub = Hub::new(Metrics::new("test").0, 100);
        hub.publish(event(2, "a"));
        assert!(hub.subscribe_order(order("a")).1.is_none());
        let off = Hub::new(Metrics::new("test").0, 0);
        off.publish(event(1, "b"));
        assert!(
            off.subscribe_order(order("b")).1.is_none(),
            "RECENT_ORDERS=0"
        );
    }

    #[test]
    fn streams_opened_while_their_orders_events_arrive_get_each_event_exactly_once() {
        const ORDERS: u32 = 3_000;
        let hub = Hub::new(Metrics::new("test").0, ORDERS as usize);
        let order_of =
            |k: u32| OrderId::parse(&format!("{k:08x}-0000-4000-8000-000000000000")).expect("uuid");
        let created = AtomicU64::new(0);
        let statuses = [Status::Created, Status::Processing, Status::Succeeded];
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for k in 0..ORDERS {
                    for (step, status) in statuses.into_iter().enumerate() {
                        let sequence = u64::from(k) * 3 + step as u64 + 1;
                        hub.publish(UpstreamEvent {
                            event: WireEvent::new(sequence, order_of(k), status, "{}"),
                            client_secret_digest: SecretDigest([0; 32]),
                        });
                        if step == 0 {
                            created.store(u64::from(k) + 1, Ordering::Release);
                        }
                    }
                }
            });
            let mut subscriptions = Vec::new();
            for k in 0..ORDERS {
                // Opened as soon as the order exists, while its later
                // events are being published.
                while created.load(Ordering::Acquire) <= u64::from(k) {
                    std::hint::spin_loop();
                }
                subscriptions.push(hub.subscribe_order(order_of(k)));
            }
            subscriptions
        })
        .into_iter()
        .zip(0..ORDERS)
        .for_each(|((mut live, history), k)| {
            let mut seen: Vec<u64> = history
                .expect("seen created")
                .events
                .iter()
                .map(|event| event.sequence)
                .collect();
            while let Ok(event) = live.events.try_recv() {
                seen.push(event.sequence);
            }
            let first = u64::from(k) * 3 + 1;
            assert_eq!(seen, [first, first + 1, first + 2], "order {k}");
        });
    }
}
