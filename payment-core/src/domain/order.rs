//! Orders and the events that record their changes.

use super::{
    Amount, ClientSecret, Currency, Description, IdempotencyKey, OrderId, OrderStatus,
    ProviderReference, Reason, Timestamp,
};

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub status: OrderStatus,
    pub amount: Amount,
    pub currency: Currency,
    pub description: Description,
    pub client_secret: ClientSecret,
    pub idempotency_key: Option<IdempotencyKey>,
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
}

/// A parsed CreateOrder request with the values the service chose for it.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub id: OrderId,
    pub amount: Amount,
    pub currency: Currency,
    pub description: Description,
    pub idempotency_key: Option<IdempotencyKey>,
    pub client_secret: ClientSecret,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

impl NewOrder {
    pub fn into_order(self) -> Order {
        Order {
            id: self.id,
            status: OrderStatus::Created,
            amount: self.amount,
            currency: self.currency,
            description: self.description,
            client_secret: self.client_secret,
            idempotency_key: self.idempotency_key,
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
