//! The gateway's memory of recent orders: what lets it open an order's
//! stream without a call to payment-core.
//!
//! The upstream hands the gateway every event after its starting point, in
//! sequence order, with no gap (it resumes after the last sequence it saw).
//! An order whose `created` event came through it therefore has its whole
//! history here: the `created` event starts the entry, and each later event
//! of that order extends it. An order created before the gateway started
//! (or evicted since) has no entry and is read from the core, so an entry is
//! never a history with its beginning missing.
//!
//! Bounds: at most `capacity` orders and [`BYTES_PER_ORDER`] times that in
//! bytes (frames plus a fixed cost per entry), evicted oldest-created
//! first, so that orders with long descriptions cannot grow the memory past
//! its budget (they just keep fewer orders); and at most
//! [`MAX_EVENTS_PER_ORDER`] events per order (an order that somehow has
//! more is forgotten, not truncated). An entry costs its order's secret and
//! a reference to each of its events, whose frames the hub's connections
//! share anyway; BENCHMARKS.md measures it.
//!
//! An event the gateway could not decode is a hole in its order's history:
//! [`RecentOrders::forget`] drops the order, which is then read from the
//! core (which fails loudly rather than answer a wrong history).
//!
//! No lock here: the hub keeps one `RecentOrders` per shard, under the
//! shard's lock, so that recording an event and handing it to the live
//! connections happen in one step (see `hub`).

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use crate::event::{OrderHistory, OrderId, SecretDigest, Status, WireEvent};

/// A real order has three events at most (created, processing, a result);
/// more means something unforeseen, and the core is asked instead.
pub const MAX_EVENTS_PER_ORDER: usize = 8;
/// The byte budget per order held: an order's frames are ~0.3 KB each with
/// a short description, up to ~4 KB with the longest one.
pub const BYTES_PER_ORDER: usize = 1024;
/// What an entry costs besides its frames (map slot, id, secret, event
/// headers), counted against the budget.
const ENTRY_OVERHEAD: usize = 256;

pub struct RecentOrders {
    capacity: usize,
    /// Frames plus [`ENTRY_OVERHEAD`] per entry, of the orders held.
    bytes: usize,
    orders: HashMap<OrderId, OrderHistory>,
    /// Order ids in the order their entries were made: the eviction order.
    /// Never longer than `capacity`; an id whose entry was dropped early
    /// (too many events) stays until its turn comes.
    arrival: VecDeque<OrderId>,
}

impl RecentOrders {
    /// Keeps at most `capacity` orders; 0 keeps none.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity,
            bytes: 0,
            orders: HashMap::new(),
            arrival: VecDeque::new(),
        }
    }

    fn budget(&self) -> usize {
        self.capacity * BYTES_PER_ORDER
    }

    fn cost(history: &OrderHistory) -> usize {
        ENTRY_OVERHEAD
            + history
                .events
                .iter()
                .map(|event| event.frame.len())
                .sum::<usize>()
    }

    fn remove(&mut self, order_id: &OrderId) {
        if let Some(history) = self.orders.remove(order_id) {
            self.bytes -= Self::cost(&history);
        }
    }

    /// Forgets one order (an event of it could not be decoded); answers the
    /// change in the number of orders held.
    pub fn forget(&mut self, order_id: OrderId) -> i64 {
        let before = self.orders.len() as i64;
        self.remove(&order_id);
        self.orders.len() as i64 - before
    }

    /// The digest of a held order's client secret.
    pub fn secret_digest(&self, order_id: OrderId) -> Option<SecretDigest> {
        self.orders
            .get(&order_id)
            .map(|history| history.client_secret_digest)
    }

    /// Forgets every order (an undecodable event named no order).
    pub fn forget_all(&mut self) -> i64 {
        let before = self.orders.len() as i64;
        self.orders.clear();
        self.arrival.clear();
        self.bytes = 0;
        -before
    }

    /// Records an event the upstream delivered; answers the change in the
    /// number of orders held (for the gauge).
    pub fn record(&mut self, event: &Arc<WireEvent>, client_secret_digest: SecretDigest) -> i64 {
        if self.capacity == 0 {
            return 0;
        }
        let before = self.orders.len() as i64;
        if event.status == Status::Created {
            let history = OrderHistory {
                client_secret_digest,
                events: vec![Arc::clone(event)],
            };
            self.bytes += Self::cost(&history);
            // An id is created once; a repeat would mean a replayed log.
            if let Some(replaced) = self.orders.insert(event.order_id, history) {
                self.bytes -= Self::cost(&replaced);
            } else {
                self.arrival.push_back(event.order_id);
            }
        } else if let Some(history) = self.orders.get_mut(&event.order_id) {
            if history.events.len() == MAX_EVENTS_PER_ORDER {
                self.remove(&event.order_id);
            } else {
                history.events.push(Arc::clone(event));
                self.bytes += event.frame.len();
            }
        }
        while self.arrival.len() > self.capacity || self.bytes > self.budget() {
            let Some(oldest) = self.arrival.pop_front() else {
                break;
            };
            self.remove(&oldest);
        }
        self.orders.len() as i64 - before
    }

    /// The order's whole history, if this gateway saw it from its start.
    pub fn get(&self, order_id: OrderId) -> Option<OrderHistory> {
        self.orders.get(&order_id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(secret: &str) -> SecretDigest {
        SecretDigest(payments_proto::contract::client_secret_sha256(secret))
    }

    fn order(n: u8) -> OrderId {
        OrderId::parse(&format!("{n:08x}-0000-4000-8000-000000000000")).expect("uuid")
    }

    fn event(sequence: u64, order_id: OrderId, status: Status) -> Arc<WireEvent> {
        Arc::new(WireEvent::new(sequence, order_id, status, "{}"))
    }

    fn sequences(history: &OrderHistory) -> Vec<u64> {
        history.events.iter().map(|event| event.sequence).collect()
    }

    #[test]
    fn an_order_seen_from_its_creation_is_known_with_its_secret_and_every_event() {
        let mut recent = RecentOrders::with_capacity(10);
        assert_eq!(
            recent.record(&event(1, order(1), Status::Created), digest("cs_1")),
            1
        );
        assert_eq!(
            recent.record(&event(2, order(1), Status::Processing), digest("cs_1")),
            0
        );
        let history = recent.get(order(1)).expect("known");
        assert_eq!(history.client_secret_digest, digest("cs_1"));
        assert_eq!(sequences(&history), [1, 2]);
    }

    #[test]
    fn an_order_first_seen_after_its_creation_is_left_to_the_core() {
        let mut recent = RecentOrders::with_capacity(10);
        assert_eq!(
            recent.record(&event(5, order(1), Status::Processing), digest("cs_1")),
            0
        );
        assert_eq!(
            recent.record(&event(6, order(1), Status::Succeeded), digest("cs_1")),
            0
        );
        assert!(
            recent.get(order(1)).is_none(),
            "a history without its start"
        );
    }

    #[test]
    fn the_oldest_order_goes_first_and_does_not_come_back_half_known() {
        let mut recent = RecentOrders::with_capacity(2);
        recent.record(&event(1, order(1), Status::Created), digest("cs_1"));
        recent.record(&event(2, order(2), Status::Created), digest("cs_2"));
        assert_eq!(
            recent.record(&event(3, order(3), Status::Created), digest("cs_3")),
            0
        );
        assert!(recent.get(order(1)).is_none());
        recent.record(&event(4, order(1), Status::Succeeded), digest("cs_1"));
        assert!(recent.get(order(1)).is_none(), "evicted stays unknown");
        assert!(recent.get(order(2)).is_some() && recent.get(order(3)).is_some());
        assert!(recent.arrival.len() <= 2);
    }

    #[test]
    fn an_order_with_too_many_events_is_forgotten_not_truncated() {
        let mut recent = RecentOrders::with_capacity(10);
        recent.record(&event(1, order(1), Status::Created), digest("cs_1"));
        for sequence in 2..=MAX_EVENTS_PER_ORDER as u64 {
            recent.record(
                &event(sequence, order(1), Status::Processing),
                digest("cs_1"),
            );
        }
        assert_eq!(
            recent.get(order(1)).expect("at the bound").events.len(),
            MAX_EVENTS_PER_ORDER
        );
        assert_eq!(
            recent.record(&event(99, order(1), Status::Succeeded), digest("cs_1")),
            -1
        );
        assert!(recent.get(order(1)).is_none());
    }

    #[test]
    fn a_capacity_of_zero_keeps_nothing() {
        let mut recent = RecentOrders::with_capacity(0);
        assert_eq!(
            recent.record(&event(1, order(1), Status::Created), digest("cs_1")),
            0
        );
        assert!(recent.get(order(1)).is_none());
    }

    #[test]
    fn long_frames_keep_fewer_orders_within_the_byte_budget() {
        let mut recent = RecentOrders::with_capacity(10);
        let long = "x".repeat(3000);
        for n in 0..10 {
            let big = Arc::new(WireEvent::new(
                u64::from(n) + 1,
                order(n),
                Status::Created,
                &long,
            ));
            recent.record(&big, digest("cs"));
        }
        assert!(
            recent.bytes <= recent.budget(),
            "{} > {}",
            recent.bytes,
            recent.budget()
        );
        assert!(recent.orders.len() < 10, "fewer orders, not more memory");
        assert!(recent.get(order(9)).is_some(), "the newest stays");
        let held: usize = recent.orders.values().map(RecentOrders::cost).sum();
        assert_eq!(held, recent.bytes, "the count follows the entries");
    }

    #[test]
    fn a_forgotten_order_is_left_to_the_core_and_its_later_events_too() {
        let mut recent = RecentOrders::with_capacity(10);
        recent.record(&event(1, order(1), Status::Created), digest("cs_1"));
        recent.record(&event(2, order(2), Status::Created), digest("cs_2"));
        assert_eq!(recent.forget(order(1)), -1);
        recent.record(&event(3, order(1), Status::Succeeded), digest("cs_1"));
        assert!(recent.get(order(1)).is_none());
        assert_eq!(recent.forget_all(), -1);
        assert!(recent.get(order(2)).is_none());
        assert_eq!(recent.bytes, 0);
    }
}
