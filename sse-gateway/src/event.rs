//! The gateway's own types, parsed once at the edge: order ids, statuses,
//! orders as the JSON API shows them, and events rendered once for
//! `text/event-stream`. No protobuf message reaches this module: the
//! gRPC edge (the `payment_core` module, which uses this one) converts them
//! into these.

use std::{fmt, sync::Arc, time::SystemTime};

use bytes::Bytes;
use payments_proto::payments::v1::OrderStatus as ContractStatus;
use serde::{Serialize, Serializer};
use service_kit::telemetry::RemoteTrace;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use uuid::Uuid;

/// An order id: a UUID, always spelled the canonical way (lower case,
/// hyphenated), the way payment-core spells it in events. The hub routes by
/// it, so an upper-case or braced id in a URL still meets its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderId(Uuid);

#[derive(Debug, thiserror::Error)]
#[error("order id must be a UUID")]
pub struct InvalidOrderId;

impl OrderId {
    pub fn parse(raw: &str) -> Result<Self, InvalidOrderId> {
        Uuid::try_parse(raw).map(Self).map_err(|_| InvalidOrderId)
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl Serialize for OrderId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Where an order stands. Whether a status is final, and its name on the
/// wire, are the contract's rules (`payments_proto::contract`); this type
/// only guarantees that the status is a real one, never `Unspecified`.
/// Its OpenAPI schema spells the variants in snake case, as the contract
/// does (a test checks the two agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(
    rename_all = "snake_case",
    description = "Where an order stands. `succeeded`, `failed`, `canceled` and `expired` are final: nothing follows them."
)]
pub enum Status {
    Created,
    Processing,
    Succeeded,
    Failed,
    Canceled,
    Expired,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown order status {0}")]
pub struct UnknownStatus(pub i32);

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 6] = [
        Status::Created,
        Status::Processing,
        Status::Succeeded,
        Status::Failed,
        Status::Canceled,
        Status::Expired,
    ];
}

impl TryFrom<ContractStatus> for Status {
    type Error = UnknownStatus;

    fn try_from(status: ContractStatus) -> Result<Self, Self::Error> {
        Ok(match status {
            ContractStatus::Created => Self::Created,
            ContractStatus::Processing => Self::Processing,
            ContractStatus::Succeeded => Self::Succeeded,
            ContractStatus::Failed => Self::Failed,
            ContractStatus::Canceled => Self::Canceled,
            ContractStatus::Expired => Self::Expired,
            ContractStatus::Unspecified => return Err(UnknownStatus(status as i32)),
        })
    }
}

impl From<Status> for ContractStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Created => Self::Created,
            Status::Processing => Self::Processing,
            Status::Succeeded => Self::Succeeded,
            Status::Failed => Self::Failed,
            Status::Canceled => Self::Canceled,
            Status::Expired => Self::Expired,
        }
    }
}

impl Status {
    /// The SSE `event:` name and the JSON `status`.
    pub fn name(self) -> &'static str {
        // Every status but `Unspecified` has a name, and `self` is never that.
        ContractStatus::from(self).event_name().unwrap_or("unknown")
    }

    /// Whether nothing follows: an order stream ends after such an event.
    pub fn is_terminal(self) -> bool {
        ContractStatus::from(self).is_terminal()
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// An order as the JSON API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderView {
    /// The order's id.
    #[schema(value_type = uuid::Uuid)]
    pub order_id: OrderId,
    pub status: Status,
    /// In the currency's minor unit (cents for EUR).
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    pub description: String,
    /// Only in payment-core's answer to a create: handed to the creator
    /// once, never read back.
    #[serde(skip)]
    pub client_secret: String,
    /// What a presented secret is checked against.
    #[serde(skip)]
    pub client_secret_digest: SecretDigest,
    /// The provider's page where the payer pays.
    pub payment_url: String,
    /// Why the order reached its status (a decline reason); may be empty.
    pub reason: String,
    /// RFC 3339; empty if payment-core sent no time.
    pub created_at: String,
    /// RFC 3339; empty if payment-core sent no time.
    pub updated_at: String,
    /// RFC 3339; empty if payment-core sent no time.
    pub expires_at: String,
}

/// What the checkout asks payment-core to create.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub amount_minor: i64,
    pub currency: String,
    pub description: String,
    /// Empty when the client sent none.
    pub idempotency_key: String,
}

/// payment-core's sequence number of an event: a uint64 in the contract,
/// and the resume point of a stream. Only its OpenAPI schema is used: an
/// integer from 0, with no `format`, since utoipa would call a `u64` an
/// int64 (half the range) or spell uint64 `u-int64`.
pub struct Sequence;

impl utoipa::PartialSchema for Sequence {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::Integer)
            .minimum(Some(0))
            .maximum(Some(u64::MAX as f64))
            .description(Some(
                "payment-core's sequence number of an event (uint64): events of all orders are numbered in one increasing sequence.",
            ))
            .into()
    }
}

impl ToSchema for Sequence {}

/// The JSON `data:` of an SSE event.
#[derive(Debug, Serialize, ToSchema)]
#[schema(description = "The JSON in the `data` of an order's event.")]
pub struct EventData<'a> {
    /// The event's sequence, also its `id`: the resume point.
    #[schema(value_type = Sequence)]
    pub sequence: u64,
    #[schema(value_type = uuid::Uuid)]
    pub order_id: OrderId,
    /// The order's status after the event, also its `event` name.
    pub status: Status,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub description: &'a str,
    pub reason: &'a str,
    /// RFC 3339.
    pub occurred_at: String,
}

/// One event, ready to write to any number of SSE connections: its whole
/// `text/event-stream` frame is rendered once when it arrives from the core,
/// and every connection writes the same bytes (a clone is a reference count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireEvent {
    pub sequence: u64,
    pub order_id: OrderId,
    pub status: Status,
    /// `id:`, `event:`, `data:` and the blank line that ends the frame.
    pub frame: Bytes,
    /// When payment-core committed it: the start of its delivery lag.
    pub committed_at: Option<SystemTime>,
    /// The order's trace (read once, from its W3C traceparent), which each
    /// connection's write of the event joins.
    pub trace: Option<RemoteTrace>,
}

impl WireEvent {
    pub fn from_data(data: &EventData<'_>) -> Result<Self, serde_json::Error> {
        let json = serde_json::to_string(data)?;
        Ok(Self::new(data.sequence, data.order_id, data.status, &json))
    }

    /// Renders the frame: `id:` is the core's sequence (the resume point),
    /// `event:` the status, `data:` the JSON. serde_json escapes line breaks
    /// inside strings, but each line still gets its own `data:` field so no
    /// `data` can end the frame early or inject a field.
    pub fn new(sequence: u64, order_id: OrderId, status: Status, data: &str) -> Self {
        let mut frame = format!("id: {sequence}\nevent: {}\n", status.name());
        // CRLF, LF and CR each end a line (WHATWG).
        for line in data.split("\r\n").flat_map(|line| line.split(['\n', '\r'])) {
            frame.push_str("data: ");
            frame.push_str(line);
            frame.push('\n');
        }
        frame.push('\n');
        Self {
            sequence,
            order_id,
            status,
            frame: Bytes::from(frame),
            committed_at: None,
            trace: None,
        }
    }

    /// The event as committed at `committed_at` in the trace `trace_parent`
    /// (empty: untraced).
    pub fn with_origin(mut self, committed_at: Option<SystemTime>, trace_parent: &str) -> Self {
        self.committed_at = committed_at;
        self.trace = RemoteTrace::parse(trace_parent);
        self
    }

    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }
}

/// The SHA-256 of an order's client secret
/// (`contract::client_secret_sha256`), which payment-core sends with every
/// order and event instead of the secret: a browser's secret opens the
/// order when its digest is this one. The gateway never holds a secret it
/// did not create the order for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretDigest(pub [u8; 32]);

impl SecretDigest {
    /// The digest in a payment-core message, if it is one (32 bytes).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// Whether `presented` is the secret this is the digest of, compared
    /// in constant time. An empty secret opens nothing.
    pub fn opened_by(&self, presented: &str) -> bool {
        !presented.is_empty()
            && bool::from(payments_proto::contract::client_secret_sha256(presented).ct_eq(&self.0))
    }
}

/// One order's events, oldest first, and the digest of the secret that lets
/// a browser watch them: what a stream needs to open, from payment-core or
/// from the gateway's memory of recent orders.
#[derive(Debug, Clone)]
pub struct OrderHistory {
    pub client_secret_digest: SecretDigest,
    pub events: Vec<Arc<WireEvent>>,
}

impl OrderHistory {
    /// Whether this history is as far as a client that saw `sequence`:
    /// its last event is at or past it, or final (nothing follows).
    pub fn reaches(&self, sequence: u64) -> bool {
        self.events
            .last()
            .is_some_and(|last| last.sequence >= sequence || last.is_terminal())
    }

    /// The events after `sequence`, and whether the order has reached a
    /// final state (its last event is final).
    pub fn after(self, sequence: u64) -> (Vec<Arc<WireEvent>>, bool) {
        let finished = self.events.last().is_some_and(|event| event.is_terminal());
        let newer = self
            .events
            .into_iter()
            .filter(|event| event.sequence > sequence)
            .collect();
        (newer, finished)
    }
}

/// An event as the upstream delivers it: the event, and its order's client
/// secret digest, which only the gateway's memory of recent orders keeps
/// (no frame carries it).
#[derive(Debug, Clone)]
pub struct UpstreamEvent {
    pub event: WireEvent,
    pub client_secret_digest: SecretDigest,
}

/// What the all-orders stream delivers: an event, or the sequence of one
/// the gateway could not read, with its order when that much was readable
/// (the gateway then forgets that order's history: it has a hole).
#[derive(Debug, Clone)]
pub enum UpstreamItem {
    Event(UpstreamEvent),
    Unreadable {
        sequence: u64,
        order_id: Option<OrderId>,
    },
}

impl UpstreamItem {
    pub fn sequence(&self) -> u64 {
        match self {
            UpstreamItem::Event(upstream) => upstream.event.sequence,
            UpstreamItem::Unreadable { sequence, .. } => *sequence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(statuses: &[Status]) -> OrderHistory {
        let order = OrderId(Uuid::nil());
        OrderHistory {
            client_secret_digest: SecretDigest([0; 32]),
            events: statuses
                .iter()
                .zip(1..)
                .map(|(status, sequence)| Arc::new(WireEvent::new(sequence, order, *status, "{}")))
                .collect(),
        }
    }

    #[test]
    fn a_secret_opens_only_the_order_whose_digest_it_has_and_empty_opens_nothing() {
        let digest = SecretDigest(payments_proto::contract::client_secret_sha256("cs_right"));
        assert!(digest.opened_by("cs_right"));
        assert!(!digest.opened_by("cs_righ"));
        assert!(!digest.opened_by("cs_other"));
        let empty = SecretDigest(payments_proto::contract::client_secret_sha256(""));
        assert!(!empty.opened_by(""));
        assert_eq!(SecretDigest::from_slice(&[1; 31]), None);
        assert_eq!(
            SecretDigest::from_slice(&[1; 32]),
            Some(SecretDigest([1; 32]))
        );
    }

    #[test]
    fn a_history_is_cut_after_the_resume_point_and_knows_when_the_order_is_final() {
        let (newer, finished) = history(&[Status::Created, Status::Processing]).after(1);
        assert_eq!(newer.iter().map(|e| e.sequence).collect::<Vec<_>>(), [2]);
        assert!(!finished);
        let (newer, finished) = history(&[Status::Created, Status::Succeeded]).after(2);
        assert!(newer.is_empty() && finished, "a client that saw the end");
    }

    #[test]
    fn a_frame_carries_id_event_and_one_data_line_per_line() {
        let order = OrderId(Uuid::nil());
        let event = WireEvent::new(7, order, Status::Succeeded, "{\"x\":1}\nevent: forged");
        assert_eq!(
            event.frame,
            "id: 7\nevent: succeeded\ndata: {\"x\":1}\ndata: event: forged\n\n"
        );
        let crlf = WireEvent::new(8, order, Status::Failed, "one\r\ntwo\rthree");
        assert_eq!(
            crlf.frame,
            "id: 8\nevent: failed\ndata: one\ndata: two\ndata: three\n\n"
        );
    }

    #[test]
    fn order_ids_are_parsed_into_one_canonical_spelling() {
        let lower = "6f1c1a52-2a55-4d5c-9a55-2f0d8f5b0b1e";
        for spelling in [
            lower.to_owned(),
            lower.to_uppercase(),
            format!("{{{lower}}}"),
        ] {
            let id = OrderId::parse(&spelling).expect("a UUID");
            assert_eq!(id.to_string(), lower, "{spelling}");
        }
        assert!(OrderId::parse("123").is_err());
    }

    #[test]
    fn statuses_carry_the_contract_names_and_finality() {
        for status in Status::ALL {
            let contract = ContractStatus::from(status);
            assert_eq!(Status::try_from(contract).ok(), Some(status));
            assert_eq!(Some(status.name()), contract.event_name());
        }
        let terminal: Vec<_> = Status::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                Status::Succeeded,
                Status::Failed,
                Status::Canceled,
                Status::Expired
            ]
        );
        assert!(Status::try_from(ContractStatus::Unspecified).is_err());
    }

    #[test]
    fn the_status_schema_lists_the_contract_names() {
        let schema = serde_json::to_value(<Status as utoipa::PartialSchema>::schema()).unwrap();
        let names = Status::ALL.map(Status::name);
        assert_eq!(schema["enum"], serde_json::json!(names));
    }
}
