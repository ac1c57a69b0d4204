//! What the gateway sends browsers, converted once from payment-core's
//! protobuf at the edge: orders as JSON for the API, and events rendered
//! for `text/event-stream`.

use bytes::Bytes;
use payments_proto::payments::v1 as pb;
use serde::Serialize;

fn status_name(raw: i32) -> Result<&'static str, String> {
    Ok(match pb::OrderStatus::try_from(raw) {
        Ok(pb::OrderStatus::Created) => "created",
        Ok(pb::OrderStatus::Processing) => "processing",
        Ok(pb::OrderStatus::Succeeded) => "succeeded",
        Ok(pb::OrderStatus::Failed) => "failed",
        Ok(pb::OrderStatus::Canceled) => "canceled",
        Ok(pb::OrderStatus::Expired) => "expired",
        Ok(pb::OrderStatus::Unspecified) | Err(_) => {
            return Err(format!("unknown order status {raw}"));
        }
    })
}

pub fn is_terminal(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "canceled" | "expired")
}

fn rfc3339(timestamp: Option<prost_types::Timestamp>) -> String {
    timestamp.map(|t| t.to_string()).unwrap_or_default()
}

/// An order as the JSON API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct OrderView {
    pub order_id: String,
    pub status: &'static str,
    pub amount_minor: i64,
    pub currency: String,
    pub description: String,
    #[serde(skip)]
    pub client_secret: String,
    pub payment_url: String,
    pub reason: String,
    pub created_at: String,
    pub updated_at: String,
    pub expires_at: String,
}

impl TryFrom<pb::Order> for OrderView {
    type Error = String;

    fn try_from(order: pb::Order) -> Result<Self, Self::Error> {
        Ok(Self {
            status: status_name(order.status)?,
            order_id: order.order_id,
            amount_minor: order.amount_minor,
            currency: order.currency,
            description: order.description,
            client_secret: order.client_secret,
            payment_url: order.payment_url,
            reason: order.reason,
            created_at: rfc3339(order.created_at),
            updated_at: rfc3339(order.updated_at),
            expires_at: rfc3339(order.expires_at),
        })
    }
}

impl OrderView {
    pub fn is_terminal(&self) -> bool {
        is_terminal(self.status)
    }
}

/// The JSON `data:` of an SSE event.
#[derive(Serialize)]
struct EventData<'a> {
    sequence: u64,
    order_id: &'a str,
    status: &'static str,
    amount_minor: i64,
    currency: &'a str,
    description: &'a str,
    reason: &'a str,
    occurred_at: String,
}

/// One event, ready to write to any number of SSE connections: its whole
/// `text/event-stream` frame is rendered once when it arrives from the core,
/// and every connection writes the same bytes (a clone is a reference count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireEvent {
    pub sequence: u64,
    pub order_id: String,
    pub status: &'static str,
    /// `id:`, `event:`, `data:` and the blank line that ends the frame.
    pub frame: Bytes,
}

impl TryFrom<&pb::PaymentEvent> for WireEvent {
    type Error = String;

    fn try_from(event: &pb::PaymentEvent) -> Result<Self, Self::Error> {
        let status = status_name(event.status)?;
        let order = event.order.as_ref().ok_or("event without order")?;
        let data = EventData {
            sequence: event.sequence,
            order_id: &event.order_id,
            status,
            amount_minor: order.amount_minor,
            currency: &order.currency,
            description: &order.description,
            reason: &event.reason,
            occurred_at: rfc3339(event.occurred_at),
        };
        let data = serde_json::to_string(&data).map_err(|e| e.to_string())?;
        Ok(Self::new(
            event.sequence,
            event.order_id.clone(),
            status,
            &data,
        ))
    }
}

impl WireEvent {
    /// Renders the frame: `id:` is the core's sequence (the resume point),
    /// `event:` the status, `data:` the JSON. serde_json escapes line breaks
    /// inside strings, but each line still gets its own `data:` field so no
    /// `data` can end the frame early or inject a field.
    pub fn new(sequence: u64, order_id: String, status: &'static str, data: &str) -> Self {
        let mut frame = format!("id: {sequence}\nevent: {status}\n");
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
        }
    }

    pub fn is_terminal(&self) -> bool {
        is_terminal(self.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_carries_id_event_and_one_data_line_per_line() {
        let event = WireEvent::new(7, "a".into(), "succeeded", "{\"x\":1}\nevent: forged");
        assert_eq!(
            event.frame,
            "id: 7\nevent: succeeded\ndata: {\"x\":1}\ndata: event: forged\n\n"
        );
        let crlf = WireEvent::new(8, "a".into(), "failed", "one\r\ntwo\rthree");
        assert_eq!(
            crlf.frame,
            "id: 8\nevent: failed\ndata: one\ndata: two\ndata: three\n\n"
        );
    }
}
