//! Protobuf <-> domain. Requests become domain values through `TryFrom`
//! (parsing names the offending field); domain values become protobuf here
//! and nowhere else.

use payments_proto::payments::v1 as pb;

use crate::domain::{
    Amount, ClientSecret, Currency, Description, IdempotencyKey, MerchantId, Order, OrderId,
    OrderStatus, PaymentEvent, ProviderReference, Reason, Scope, Timestamp, ValidationError,
};

pub fn timestamp(at: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.0.div_euclid(1000),
        nanos: (at.0.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn status(status: OrderStatus) -> pb::OrderStatus {
    match status {
        OrderStatus::Created => pb::OrderStatus::Created,
        OrderStatus::Processing => pb::OrderStatus::Processing,
        OrderStatus::Succeeded => pb::OrderStatus::Succeeded,
        OrderStatus::Failed => pb::OrderStatus::Failed,
        OrderStatus::Canceled => pb::OrderStatus::Canceled,
        OrderStatus::Expired => pb::OrderStatus::Expired,
    }
}

/// `order` as protobuf; `secret` only for the answers that hand it out
/// (CreateOrder, and GetOrder to the order's own merchant).
pub fn order(order: &Order, provider_page_url: &str, secret: Option<&ClientSecret>) -> pb::Order {
    pb::Order {
        order_id: order.id.to_string(),
        status: status(order.status) as i32,
        amount_minor: order.amount.minor(),
        currency: order.currency.as_str().to_owned(),
        description: order.description.as_str().to_owned(),
        client_secret: secret
            .map(|secret| secret.as_str().to_owned())
            .unwrap_or_default(),
        client_secret_sha256: order.client_secret_digest.as_bytes().to_vec(),
        payment_url: format!("{provider_page_url}/{}", order.id),
        created_at: Some(timestamp(order.created_at)),
        updated_at: Some(timestamp(order.updated_at)),
        expires_at: Some(timestamp(order.expires_at)),
        reason: order.reason.as_str().to_owned(),
        provider_reference: order.provider_reference.as_str().to_owned(),
        trace_parent: order
            .trace_parent
            .as_ref()
            .map(|trace| trace.as_str().to_owned())
            .unwrap_or_default(),
    }
}

/// An event never carries its order's client secret, whoever asks.
pub fn event(event: &PaymentEvent, provider_page_url: &str) -> pb::PaymentEvent {
    pb::PaymentEvent {
        sequence: event.sequence,
        order_id: event.order.id.to_string(),
        status: status(event.status()) as i32,
        order: Some(order(&event.order, provider_page_url, None)),
        reason: event.order.reason.as_str().to_owned(),
        occurred_at: Some(timestamp(event.occurred_at())),
    }
}

/// A parsed CreateOrder request.
pub struct CreateOrder {
    pub amount: Amount,
    pub currency: Currency,
    pub description: Description,
    pub idempotency_key: Option<IdempotencyKey>,
}

impl CreateOrder {
    /// `request` from a caller acting for `merchant`, whose namespace the
    /// idempotency key is read in.
    pub fn parse(
        merchant: &MerchantId,
        request: &pb::CreateOrderRequest,
    ) -> Result<Self, ValidationError> {
        Ok(Self {
            amount: Amount::parse("amount_minor", request.amount_minor)?,
            currency: Currency::parse("currency", &request.currency)?,
            description: Description::parse("description", &request.description)?,
            idempotency_key: IdempotencyKey::parse_for(
                merchant,
                "idempotency_key",
                &request.idempotency_key,
            )?,
        })
    }
}

/// A parsed WatchPayments request.
pub struct Watch {
    pub scope: Scope,
    pub after_sequence: u64,
}

impl TryFrom<pb::WatchPaymentsRequest> for Watch {
    type Error = ValidationError;

    fn try_from(request: pb::WatchPaymentsRequest) -> Result<Self, Self::Error> {
        use pb::watch_payments_request::Selector;
        let scope = match request.selector {
            Some(Selector::OrderId(id)) => Scope::Order(OrderId::parse("order_id", &id)?),
            Some(Selector::AllOrders(true)) => Scope::AllOrders,
            Some(Selector::AllOrders(false)) | None => {
                return Err(ValidationError::new(
                    "selector",
                    "set order_id, or all_orders to true",
                ));
            }
        };
        Ok(Self {
            scope,
            after_sequence: request.after_sequence,
        })
    }
}

/// A parsed ReportPaymentResult request.
pub struct Report {
    pub order_id: OrderId,
    pub target: OrderStatus,
    pub provider_reference: Option<ProviderReference>,
    pub reason: Reason,
}

impl TryFrom<&pb::ReportPaymentResultRequest> for Report {
    type Error = ValidationError;

    fn try_from(request: &pb::ReportPaymentResultRequest) -> Result<Self, Self::Error> {
        let target = match pb::PaymentOutcome::try_from(request.outcome) {
            Ok(pb::PaymentOutcome::Processing) => OrderStatus::Processing,
            Ok(pb::PaymentOutcome::Succeeded) => OrderStatus::Succeeded,
            Ok(pb::PaymentOutcome::Failed) => OrderStatus::Failed,
            Ok(pb::PaymentOutcome::Canceled) => OrderStatus::Canceled,
            Ok(pb::PaymentOutcome::Unspecified) | Err(_) => {
                return Err(ValidationError::new(
                    "outcome",
                    "must be PROCESSING, SUCCEEDED, FAILED or CANCELED",
                ));
            }
        };
        let provider_reference =
            ProviderReference::parse("provider_reference", &request.provider_reference)?;
        Ok(Self {
            order_id: OrderId::parse("order_id", &request.order_id)?,
            target,
            provider_reference: (!provider_reference.as_str().is_empty())
                .then_some(provider_reference),
            reason: Reason::parse("reason", &request.reason)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use payments_proto::contract::ORDER_STATUSES;

    use super::*;

    #[test]
    fn contract_final_statuses_and_event_names_match_the_domain_state_machine() {
        for domain in OrderStatus::ALL {
            let contract = status(domain);
            assert_eq!(
                contract.is_terminal(),
                domain.is_terminal(),
                "{domain}: the contract and the state machine disagree on whether it is final"
            );
            assert_eq!(contract.event_name(), Some(domain.as_str()), "{domain}");
        }
        assert_eq!(
            OrderStatus::ALL.map(status),
            ORDER_STATUSES,
            "every contract status is a domain status, in the same order"
        );
    }
}
