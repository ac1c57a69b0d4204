//! Reading an order and an event back from a row, the same way for both
//! stores: the columns are read by name through [`Columns`], which each
//! store implements for its row type, and parsed into domain types here.
//!
//! The stores only write parsed values, so a value that does not parse
//! means the database was changed behind the store's back: it is reported
//! as a corrupt column, never passed on.

use crate::domain::{
    Amount, ClientSecret, Currency, Description, IdempotencyKey, MerchantId, Order, OrderId,
    OrderStatus, PaymentEvent, ProviderReference, Reason, SecretDigest, Timestamp, TraceParent,
};

/// An event joined with its order (`events e JOIN orders o`), named like the
/// order's columns so that [`order_from_row`] reads it: the order as of the
/// event. Its status, reason and reference are the event's, and its
/// `updated_at` is the event's `occurred_at`.
pub(super) const EVENT_COLUMNS: &str = "e.sequence AS sequence, e.status AS status, e.reason AS reason, \
     e.provider_reference AS provider_reference, e.occurred_at AS updated_at, \
     o.order_id AS order_id, o.amount_minor AS amount_minor, o.currency AS currency, \
     o.description AS description, o.client_secret AS client_secret, \
     o.idempotency_key AS idempotency_key, o.created_at AS created_at, o.expires_at AS expires_at, \
     o.merchant AS merchant, o.trace_parent AS trace_parent";
/// Every column of `orders`, in the order both stores bind them when they
/// insert an order.
pub(super) const ORDER_COLUMNS: &str = "order_id, amount_minor, currency, description, client_secret, \
     idempotency_key, status, created_at, updated_at, expires_at, reason, provider_reference, merchant, trace_parent";

/// A row whose columns can be read by name.
pub(super) trait Columns {
    type Error;
    fn text(&self, name: &str) -> Result<String, Self::Error>;
    fn optional_text(&self, name: &str) -> Result<Option<String>, Self::Error>;
    fn integer(&self, name: &str) -> Result<i64, Self::Error>;
    /// The error for a column holding a value the store never writes.
    fn corrupt(&self, name: &str) -> Self::Error;

    /// The digest of the order's client secret. A database row digests its
    /// `client_secret` column (the secret goes no further than this); a
    /// notification carries the digest alone.
    fn client_secret_digest(&self) -> Result<SecretDigest, Self::Error> {
        Ok(ClientSecret::from_stored(self.text("client_secret")?).digest())
    }
}

fn parsed<R: Columns, T>(row: &R, name: &str, value: Result<T, impl Sized>) -> Result<T, R::Error> {
    value.map_err(|_| row.corrupt(name))
}

fn text<R: Columns, T, E>(
    row: &R,
    name: &'static str,
    parse: impl FnOnce(&'static str, &str) -> Result<T, E>,
) -> Result<T, R::Error> {
    let raw = row.text(name)?;
    parsed(row, name, parse(name, &raw))
}

/// The `order_id` column of a row.
pub(super) fn order_id_from_row<R: Columns>(row: &R) -> Result<OrderId, R::Error> {
    text(row, "order_id", OrderId::parse)
}

/// The `sequence` column of a row.
pub(super) fn sequence_from_row<R: Columns>(row: &R) -> Result<u64, R::Error> {
    let sequence = row.integer("sequence")?;
    parsed(row, "sequence", u64::try_from(sequence))
}

/// An order from a row with the columns of `orders` (or an event row that
/// names its columns like them).
pub(super) fn order_from_row<R: Columns>(row: &R) -> Result<Order, R::Error> {
    let status = row.text("status")?;
    let idempotency_key = match row.optional_text("idempotency_key")? {
        None => None,
        Some(key) => Some(parsed(
            row,
            "idempotency_key",
            IdempotencyKey::from_stored(&key).ok_or(()),
        )?),
    };
    let merchant = match row.optional_text("merchant")? {
        // NULL: an order from before merchants were recorded.
        None => None,
        Some(merchant) => Some(parsed(
            row,
            "merchant",
            MerchantId::parse("merchant", &merchant),
        )?),
    };
    let trace_parent = match row.optional_text("trace_parent")? {
        // NULL: created untraced, or before traces were recorded.
        None => None,
        Some(raw) => Some(parsed(
            row,
            "trace_parent",
            TraceParent::parse("trace_parent", &raw),
        )?),
    };
    Ok(Order {
        id: order_id_from_row(row)?,
        status: parsed(row, "status", OrderStatus::from_str_opt(&status).ok_or(()))?,
        amount: parsed(
            row,
            "amount_minor",
            Amount::parse("amount_minor", row.integer("amount_minor")?),
        )?,
        currency: text(row, "currency", Currency::parse)?,
        description: text(row, "description", Description::parse)?,
        client_secret_digest: row.client_secret_digest()?,
        idempotency_key,
        merchant,
        trace_parent,
        created_at: Timestamp(row.integer("created_at")?),
        updated_at: Timestamp(row.integer("updated_at")?),
        expires_at: Timestamp(row.integer("expires_at")?),
        reason: text(row, "reason", Reason::parse)?,
        provider_reference: text(row, "provider_reference", ProviderReference::parse)?,
    })
}

/// An event from a row of the event columns: `sequence`, and the order as
/// of the event under the order's column names.
pub(super) fn event_from_row<R: Columns>(row: &R) -> Result<PaymentEvent, R::Error> {
    Ok(PaymentEvent {
        sequence: sequence_from_row(row)?,
        order: order_from_row(row)?,
    })
}
