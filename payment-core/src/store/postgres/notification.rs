//! What a batch's `NOTIFY` says: the last sequence it took, then, when they
//! fit, its events themselves (a JSON array, in sequence order, each object
//! keyed by the column names [`event_from_row`] reads). A follower that has
//! published everything before the batch publishes the events straight from
//! the notification, without reading the log: one database round trip less
//! per batch on every replica, which was the largest share of the
//! database's CPU under load (BENCHMARKS.md).
//!
//! The notification stays a hint. A follower that missed one (reconnect,
//! full queue) sees a batch that does not start right after what it
//! published, and reads the log instead; so does one that gets a payload
//! without events or one it cannot parse.
//!
//! Any role that can read `log_head` can LISTEN on the channel, so a
//! payload holds nothing that opens anything: an order's client secret
//! travels as its digest only (`client_secret_sha256`).

use serde_json::{Map, Value, json};

use crate::{
    domain::{IdempotencyKey, MerchantId, Order, PaymentEvent, SecretDigest, TraceParent},
    store::{
        StoreError,
        columns::{Columns, event_from_row},
    },
};

/// PostgreSQL refuses payloads of 8000 bytes or more; this leaves room for
/// the sequence in front. A batch whose events do not fit sends none.
const MAX_EVENTS_JSON: usize = 7900;

/// The events part of a batch's payload (the database puts the last
/// sequence in front): `events` as JSON, or nothing when they do not fit.
pub(super) fn events_json(events: &[&Order]) -> String {
    let mut encoded = String::from("[");
    for (i, order) in events.iter().enumerate() {
        if i > 0 {
            encoded.push(',');
        }
        let event = json!({
            "order_id": order.id.to_string(),
            "status": order.status.as_str(),
            "reason": order.reason.as_str(),
            "provider_reference": order.provider_reference.as_str(),
            "updated_at": order.updated_at.0,
            "amount_minor": order.amount.minor(),
            "currency": order.currency.as_str(),
            "description": order.description.as_str(),
            "client_secret_sha256": hex::encode(order.client_secret_digest.as_bytes()),
            "idempotency_key": order.idempotency_key.as_ref().map(IdempotencyKey::as_str),
            "merchant": order.merchant.as_ref().map(MerchantId::as_str),
            "trace_parent": order.trace_parent.as_ref().map(TraceParent::as_str),
            "created_at": order.created_at.0,
            "expires_at": order.expires_at.0,
        });
        encoded.push_str(&event.to_string());
        // Checked as it grows: a large batch stops encoding at the limit.
        if encoded.len() >= MAX_EVENTS_JSON {
            return String::new();
        }
    }
    encoded.push(']');
    encoded
}

/// What a follower that has published up to `published` should do with a
/// notification.
#[derive(Debug, PartialEq)]
pub(super) enum Next {
    /// Publish these, which continue right after `published`.
    Publish(Vec<PaymentEvent>),
    /// Everything in it was published already.
    Nothing,
    /// Read the log: events are missing in between, or not carried.
    ReadLog,
}

/// Reads `payload` ("LAST" or "LAST JSON") for a follower at `published`.
pub(super) fn next(payload: &str, published: u64) -> Next {
    let (last, events) = payload.split_once(' ').unwrap_or((payload, ""));
    let Ok(last) = last.parse::<u64>() else {
        tracing::warn!(payload, "unreadable notification; reading the log");
        return Next::ReadLog;
    };
    if last <= published {
        return Next::Nothing;
    }
    if events.is_empty() {
        return Next::ReadLog;
    }
    match decode(events, last) {
        Ok(events) => {
            let fresh: Vec<PaymentEvent> = events
                .into_iter()
                .filter(|event| event.sequence > published)
                .collect();
            match fresh.first() {
                Some(first) if first.sequence == published + 1 => Next::Publish(fresh),
                _ => Next::ReadLog,
            }
        }
        Err(error) => {
            tracing::warn!(%error, "unreadable events in a notification; reading the log");
            Next::ReadLog
        }
    }
}

/// The events of a payload whose last sequence is `last`.
fn decode(events: &str, last: u64) -> Result<Vec<PaymentEvent>, StoreError> {
    let parsed: Vec<Map<String, Value>> = serde_json::from_str(events)
        .map_err(|e| StoreError::Database(format!("notification payload: {e}")))?;
    let count = parsed.len() as u64;
    if count == 0 || count > last {
        return Err(StoreError::Database(
            "notification payload: event count does not fit its sequence".into(),
        ));
    }
    let first = last + 1 - count;
    parsed
        .into_iter()
        .zip(first..)
        .map(|(mut columns, sequence)| {
            columns.insert("sequence".into(), Value::from(sequence));
            event_from_row(&Row(columns))
        })
        .collect()
}

/// A decoded event object, read like a database row.
struct Row(Map<String, Value>);

impl Row {
    fn value(&self, name: &str) -> Result<&Value, StoreError> {
        self.0
            .get(name)
            .ok_or_else(|| StoreError::Database(format!("notification payload: no {name}")))
    }
}

impl Columns for Row {
    type Error = StoreError;

    fn text(&self, name: &str) -> Result<String, StoreError> {
        self.value(name)?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.corrupt(name))
    }

    fn optional_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        match self.value(name)? {
            Value::Null => Ok(None),
            Value::String(text) => Ok(Some(text.clone())),
            _ => Err(self.corrupt(name)),
        }
    }

    fn integer(&self, name: &str) -> Result<i64, StoreError> {
        self.value(name)?.as_i64().ok_or_else(|| self.corrupt(name))
    }

    fn corrupt(&self, name: &str) -> StoreError {
        StoreError::Database(format!("notification payload: invalid {name}"))
    }

    fn client_secret_digest(&self) -> Result<SecretDigest, StoreError> {
        const NAME: &str = "client_secret_sha256";
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(self.text(NAME)?, &mut bytes).map_err(|_| self.corrupt(NAME))?;
        Ok(SecretDigest::from_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        Amount, ClientSecret, Currency, Description, NewOrder, OrderId, Timestamp,
    };

    fn order(description: &str, key: Option<&str>) -> Order {
        new_order(description, key).to_order()
    }

    fn new_order(description: &str, key: Option<&str>) -> NewOrder {
        NewOrder {
            id: OrderId::new_random(),
            amount: Amount::parse("amount_minor", 1250).unwrap(),
            currency: Currency::parse("currency", "EUR").unwrap(),
            description: Description::parse("description", description).unwrap(),
            idempotency_key: key.and_then(IdempotencyKey::from_stored),
            // One with a merchant, one without: both must come back as sent.
            merchant: key.map(|_| MerchantId::parse("merchant", "shop-7").unwrap()),
            trace_parent: Some(
                TraceParent::parse(
                    "trace_parent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
                .unwrap(),
            ),
            client_secret: ClientSecret::generate(),
            created_at: Timestamp(1_000),
            expires_at: Timestamp(61_000),
        }
    }

    fn payload(last: u64, events: &[&Order]) -> String {
        format!("{last} {}", events_json(events))
    }

    #[test]
    fn a_batch_right_after_what_was_published_is_published_from_the_payload_unchanged() {
        let (a, b) = (
            order("tea \"earl grey\" ☕", Some("cart-1")),
            order("", None),
        );
        let Next::Publish(events) = next(&payload(12, &[&a, &b]), 10) else {
            panic!("publishes");
        };
        assert_eq!(
            events,
            [
                PaymentEvent {
                    sequence: 11,
                    order: a
                },
                PaymentEvent {
                    sequence: 12,
                    order: b
                },
            ]
        );
    }

    #[test]
    fn a_missed_batch_an_eventless_payload_or_an_unreadable_one_sends_the_follower_to_the_log() {
        let a = order("x", None);
        assert_eq!(
            next(&payload(12, &[&a]), 10),
            Next::ReadLog,
            "11 is missing"
        );
        assert_eq!(next("12 ", 11), Next::ReadLog);
        assert_eq!(next("12", 11), Next::ReadLog);
        assert_eq!(next("12 [{\"order_id\": 5}]", 11), Next::ReadLog);
        assert_eq!(next("twelve", 11), Next::ReadLog);
    }

    #[test]
    fn a_batch_already_published_is_skipped_and_one_partly_published_gives_the_rest() {
        let (a, b) = (order("a", None), order("b", None));
        assert_eq!(next(&payload(12, &[&a, &b]), 12), Next::Nothing);
        let Next::Publish(events) = next(&payload(12, &[&a, &b]), 11) else {
            panic!("publishes");
        };
        assert_eq!(
            events,
            [PaymentEvent {
                sequence: 12,
                order: b
            }]
        );
    }

    #[test]
    fn a_payload_carries_the_secret_digest_never_the_secret() {
        let new = NewOrder {
            client_secret: ClientSecret::generate(),
            ..new_order("tea", None)
        };
        let order = new.to_order();
        let payload = payload(1, &[&order]);
        assert!(!payload.contains(new.client_secret.as_str()), "{payload}");
        assert!(!payload.contains("\"client_secret\""), "{payload}");
        let Next::Publish(events) = next(&payload, 0) else {
            panic!("publishes");
        };
        assert_eq!(
            events[0].order.client_secret_digest,
            new.client_secret.digest()
        );
    }

    #[test]
    fn events_too_large_for_one_notification_are_left_out() {
        let long = order(&"x".repeat(Description::MAX_CHARS), None);
        let many: Vec<&Order> = std::iter::repeat_n(&long, 20).collect();
        assert_eq!(events_json(&many), "");
        assert!(events_json(&many[..1]).len() < MAX_EVENTS_JSON);
    }
}
