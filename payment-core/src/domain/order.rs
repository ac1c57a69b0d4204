//! Orders and the events that record their changes.

use super::{
    Amount, ClientSecret, Currency, Decision, Description, IdempotencyKey, MerchantId, OrderId,
    OrderStatus, ProviderReference, Reason, SecretDigest, StatusConflict, Timestamp, TraceParent,
};

/// An order as stored, but for its client secret: only its digest, so that
/// no event (nor anything fed from one) can carry the secret. The store
/// hands the secret out on its own (`Store::client_secret`), to the two
/// answers that may carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub status: OrderStatus,
    pub amount: Amount,
    pub currency: Currency,
    pub description: Description,
    pub client_secret_digest: SecretDigest,
    pub idempotency_key: Option<IdempotencyKey>,
    /// The merchant whose key created the order; `None` for orders from
    /// before merchants were recorded, which every merchant may see.
    pub merchant: Option<MerchantId>,
    /// The trace the order was created in, if its creation was traced.
    pub trace_parent: Option<TraceParent>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub expires_at: Timestamp,
    pub reason: Reason,
    pub provider_reference: ProviderReference,
}

impl Order {
    /// Whether a CreateOrder with these parameters asks for this same order.
    pub fn same_request_as(&self, new: &NewOrder) -> bool {
        self.amount == new.amount
            && self.currency == new.currency
            && self.description == new.description
    }

    /// Makes `change` if the state machine allows it. On [`Decision::Move`]
    /// the order takes the new status and reason, and the new reference if
    /// one is given; on [`Decision::AlreadyThere`] it is left as it was.
    /// `updated_at` never goes backwards, even if a replica's clock does.
    pub fn change(&mut self, change: &StatusChange) -> Result<Decision, StatusConflict> {
        let decision = self.status.decide(change.target)?;
        if decision == Decision::Move {
            self.status = change.target;
            self.reason = change.reason.clone();
            if let Some(reference) = &change.provider_reference {
                self.provider_reference = reference.clone();
            }
            self.updated_at = change.at.max(self.updated_at);
        }
        Ok(decision)
    }
}

/// A parsed CreateOrder request with the values the service chose for it.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub id: OrderId,
    pub amount: Amount,
    pub currency: Currency,
    pub description: Description,
    pub idempotency_key: Option<IdempotencyKey>,
    pub merchant: Option<MerchantId>,
    pub trace_parent: Option<TraceParent>,
    pub client_secret: ClientSecret,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

impl NewOrder {
    /// The order as created; the secret stays behind (the store keeps it).
    pub fn to_order(&self) -> Order {
        Order {
            id: self.id,
            status: OrderStatus::Created,
            amount: self.amount,
            currency: self.currency.clone(),
            description: self.description.clone(),
            client_secret_digest: self.client_secret.digest(),
            idempotency_key: self.idempotency_key.clone(),
            merchant: self.merchant.clone(),
            trace_parent: self.trace_parent.clone(),
            created_at: self.created_at,
            updated_at: self.created_at,
            expires_at: self.expires_at,
            reason: Reason::default(),
            provider_reference: ProviderReference::default(),
        }
    }
}

/// A requested status change, from the provider, the merchant or expiry.
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub target: OrderStatus,
    pub reason: Reason,
    /// `None` keeps the reference the order already has.
    pub provider_reference: Option<ProviderReference>,
    pub at: Timestamp,
}

/// One entry of the append-only log: an order moved to `order.status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentEvent {
    /// Increases across the whole store, never reused.
    pub sequence: u64,
    /// The order right after this event.
    pub order: Order,
}

impl PaymentEvent {
    pub fn status(&self) -> OrderStatus {
        self.order.status
    }

    pub fn occurred_at(&self) -> Timestamp {
        self.order.updated_at
    }
}

/// Which events a reader wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Order(OrderId),
    AllOrders,
}

impl Scope {
    pub fn matches(&self, event: &PaymentEvent) -> bool {
        match self {
            Scope::Order(id) => event.order.id == *id,
            Scope::AllOrders => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order_updated_at(updated_at: i64) -> Order {
        let mut order = NewOrder {
            id: OrderId::new_random(),
            amount: Amount::parse("amount_minor", 100).unwrap(),
            currency: Currency::parse("currency", "EUR").unwrap(),
            description: Description::parse("description", "tea").unwrap(),
            idempotency_key: None,
            merchant: None,
            trace_parent: None,
            client_secret: ClientSecret::generate(),
            created_at: Timestamp(updated_at),
            expires_at: Timestamp(updated_at + 60_000),
        }
        .to_order();
        order.provider_reference = ProviderReference::parse("ref", "first").unwrap();
        order
    }

    fn to(target: OrderStatus, at: i64, reference: Option<&str>) -> StatusChange {
        StatusChange {
            target,
            reason: Reason::parse("reason", "why").unwrap(),
            provider_reference: reference.map(|r| ProviderReference::parse("ref", r).unwrap()),
            at: Timestamp(at),
        }
    }

    #[test]
    fn a_move_takes_the_new_status_reason_and_reference_and_keeps_the_old_reference_when_none_is_given()
     {
        let mut order = order_updated_at(1_000);
        let moved = order.change(&to(OrderStatus::Processing, 2_000, None));
        assert_eq!(moved, Ok(Decision::Move));
        assert_eq!(order.status, OrderStatus::Processing);
        assert_eq!(order.reason.as_str(), "why");
        assert_eq!(order.provider_reference.as_str(), "first");
        assert_eq!(order.updated_at, Timestamp(2_000));
        order
            .change(&to(OrderStatus::Succeeded, 3_000, Some("second")))
            .unwrap();
        assert_eq!(order.provider_reference.as_str(), "second");
    }

    #[test]
    fn updated_at_never_goes_backwards_when_the_changing_clock_is_behind() {
        let mut order = order_updated_at(5_000);
        order
            .change(&to(OrderStatus::Succeeded, 4_000, None))
            .unwrap();
        assert_eq!(order.updated_at, Timestamp(5_000));
    }

    #[test]
    fn a_refused_or_repeated_change_leaves_the_order_as_it_was() {
        let mut order = order_updated_at(1_000);
        order.change(&to(OrderStatus::Failed, 2_000, None)).unwrap();
        let before = order.clone();
        assert!(
            order
                .change(&to(OrderStatus::Succeeded, 3_000, Some("x")))
                .is_err()
        );
        assert_eq!(
            order.change(&to(OrderStatus::Failed, 4_000, Some("y"))),
            Ok(Decision::AlreadyThere)
        );
        assert_eq!(order, before);
    }
}
