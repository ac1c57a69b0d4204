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
//! Bounds: at most `capacity` orders, evicted oldest-created first, and at
//! most [`MAX_EVENTS_PER_ORDER`] events per order (an order that somehow
//! has more is forgotten, not truncated). An entry costs its order's
//! secret and a reference to each of its events, whose frames the hub's
//! connections share anyway; BENCHMARKS.md measures it.
//!
//! No lock here: the hub keeps one `RecentOrders` per shard, under the
//! shard's lock, so that recording an event and handing it to the live
//! connections happen in one step (see `hub`).

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use crate::event::{OrderHistory, OrderId, Status, WireEvent};

/// A real order has three events at most (created, processing, a result);
/// more means something unforeseen, and the core is asked instead.
pub const MAX_EVENTS_PER_ORDER: usize = 8;

pub struct RecentOrders {
    capacity: usize,
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
            orders: HashMap::new(),
            arrival: VecDeque::new(),
        }
    }

    /// Records an event the upstream delivered; answers the change in the
    /// number of orders held (for the gauge), from -1 to +1.
    pub fn record(&mut self, event: &Arc<WireEvent>, client_secret: &str) -> i64 {
        if self.capacity == 0 {
            return 0;
        }
        let before = self.orders.len() as i64;
        if event.status == Status::Created {
            if self.arrival.len() == self.capacity
                && let Some(oldest) = self.arrival.pop_front()
            {
                self.orders.remove(&oldest);
            }
            self.arrival.push_back(event.order_id);
            self.orders.insert(
                event.order_id,
                OrderHistory {
                    client_secret: client_secret.into(),
                    events: vec![Arc::clone(event)],
                },
            );
        } else if let Some(history) = self.orders.get_mut(&event.order_id) {
            if history.events.len() == MAX_EVENTS_PER_ORDER {
                self.orders.remove(&event.order_id);
            } else {
                history.events.push(Arc::clone(event));
            }
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
            recent.record(&event(1, order(1), Status::Created), "cs_1"),
            1
        );
        assert_eq!(
            recent.record(&event(2, order(1), Status::Processing), "cs_1"),
            0
        );
        let history = recent.get(order(1)).expect("known");
        assert_eq!(&*history.client_secret, "cs_1");
        assert_eq!(sequences(&history), [1, 2]);
    }

    #[test]
    fn an_order_first_seen_after_its_creation_is_left_to_the_core() {
        let mut recent = RecentOrders::with_capacity(10);
        assert_eq!(
            recent.record(&event(5, order(1), Status::Processing), "cs_1"),
            0
        );
        assert_eq!(
            recent.record(&event(6, order(1), Status::Succeeded), "cs_1"),
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
        recent.record(&event(1, order(1), Status::Created), "cs_1");
        recent.record(&event(2, order(2), Status::Created), "cs_2");
        assert_eq!(
            recent.record(&event(3, order(3), Status::Created), "cs_3"),
            0
        );
        assert!(recent.get(order(1)).is_none());
        recent.record(&event(4, order(1), Status::Succeeded), "cs_1");
        assert!(recent.get(order(1)).is_none(), "evicted stays unknown");
        assert!(recent.get(order(2)).is_some() && recent.get(order(3)).is_some());
        assert!(recent.arrival.len() <= 2);
    }

    #[test]
    fn an_order_with_too_many_events_is_forgotten_not_truncated() {
        let mut recent = RecentOrders::with_capacity(10);
        recent.record(&event(1, order(1), Status::Created), "cs_1");
        for sequence in 2..=MAX_EVENTS_PER_ORDER as u64 {
            recent.record(&event(sequence, order(1), Status::Processing), "cs_1");
        }
        assert_eq!(
            recent.get(order(1)).expect("at the bound").events.len(),
            MAX_EVENTS_PER_ORDER
        );
        assert_eq!(
            recent.record(&event(99, order(1), Status::Succeeded), "cs_1"),
            -1
        );
        assert!(recent.get(order(1)).is_none());
    }

    #[test]
    fn a_capacity_of_zero_keeps_nothing() {
        let mut recent = RecentOrders::with_capacity(0);
        assert_eq!(
            recent.record(&event(1, order(1), Status::Created), "cs_1"),
            0
        );
        assert!(recent.get(order(1)).is_none());
    }
}
