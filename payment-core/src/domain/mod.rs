//! The payment domain: orders, their parsed field types and the state
//! machine. No database, network or clock (times are passed in), and no
//! protobuf messages. Two things come from outside: new order ids and
//! client secrets draw on the operating system's randomness (`uuid` v4 and
//! `rand`), and currency codes are checked against the contract crate's
//! ISO 4217 table. Every value that reaches the store has been parsed into
//! one of these types, so the store never sees an invalid amount, currency
//! or id.

mod order;
mod status;
mod values;

pub use order::{NewOrder, Order, PaymentEvent, Scope, StatusChange};
pub use status::{Decision, OrderStatus, StatusConflict};
pub use values::{
    Amount, ClientSecret, Currency, Description, IdempotencyKey, MerchantId, OrderId,
    ProviderReference, Reason, SecretDigest, Timestamp, TraceParent, ValidationError,
};
