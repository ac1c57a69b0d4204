//! The payment domain: orders, their parsed field types and the state
//! machine. Pure: no I/O, no clock, no protobuf. Every value that reaches the
//! store has been parsed into one of these types, so the store never sees an
//! invalid amount, currency or id.

mod order;
mod status;
mod values;

pub use order::{NewOrder, Order, PaymentEvent, Scope, StatusChange};
pub use status::{Decision, OrderStatus, StatusConflict};
pub use values::{
    Amount, ClientSecret, Currency, Description, IdempotencyKey, OrderId, ProviderReference,
    Reason, Timestamp, ValidationError,
};
