//! `payments.v1.ProviderService`: signed payment results from the provider.

use std::time::Duration;

use payments_proto::{
    payments::v1::{self as pb, provider_service_server::ProviderService},
    signature,
};
use service_kit::telemetry;
use tonic::{Request, Response, Status};

use super::{ApiError, CoreState, convert};
use crate::{
    domain::{Order, OrderStatus, StatusChange},
    metrics::{RefusalReason, ReportOutcome, ReportedStatus},
    store::Applied,
};

pub struct ProviderApi {
    state: CoreState,
    secret: Vec<u8>,
    tolerance: Duration,
}

impl ProviderApi {
    pub fn new(state: CoreState, secret: &str, tolerance: Duration) -> Self {
        Self {
            state,
            secret: secret.as_bytes().to_vec(),
            tolerance,
        }
    }
}

#[tonic::async_trait]
impl ProviderService for ProviderApi {
    async fn report_payment_result(
        &self,
        request: Request<pb::ReportPaymentResultRequest>,
    ) -> Result<Response<pb::ReportPaymentResultResponse>, Status> {
        let (order, changed, target) = match self.apply_report(&request).await {
            Ok(applied) => applied,
            Err(refused) => {
                let reported = convert::Report::try_from(request.get_ref())
                    .map_or(ReportedStatus::Unknown, |report| report.target.into());
                self.state.metrics.report(
                    ReportOutcome::Refused,
                    refusal_reason(&refused),
                    reported,
                );
                return Err(refused.into());
            }
        };
        let outcome = if changed {
            ReportOutcome::Applied
        } else {
            ReportOutcome::Repeated
        };
        self.state
            .metrics
            .report(outcome, RefusalReason::None, target.into());
        // A provider that did not carry the order's trace context still
        // shows up in it, as a link.
        if let Some(trace_parent) = &order.trace_parent {
            telemetry::link_to(&tracing::Span::current(), trace_parent.as_str());
        }
        Ok(Response::new(pb::ReportPaymentResultResponse {
            // The provider has no use for the client secret.
            order: Some(convert::order(&order, &self.state.provider_page_url, None)),
            changed,
        }))
    }
}

impl ProviderApi {
    /// The order after the report, whether it moved, and the status asked for.
    async fn apply_report(
        &self,
        request: &Request<pb::ReportPaymentResultRequest>,
    ) -> Result<(Order, bool, OrderStatus), ApiError> {
        // Proof first: an unsigned caller learns nothing, not even whether its fields are valid.
        signature::verify(
            &self.secret,
            request.metadata(),
            request.get_ref(),
            self.state.clock.now_unix_secs(),
            self.tolerance,
        )?;
        let report = convert::Report::try_from(request.get_ref())?;
        let target = report.target;
        let change = StatusChange {
            target,
            reason: report.reason,
            provider_reference: report.provider_reference,
            at: self.state.clock.now(),
        };
        Ok(
            match self.state.store.apply(report.order_id, change).await? {
                Applied::Moved(event) => {
                    tracing::info!(order_id = %report.order_id, status = %event.status(), sequence = event.sequence, "payment result applied");
                    (event.order, true, target)
                }
                Applied::Unchanged(order) => {
                    tracing::info!(order_id = %report.order_id, status = %order.status, "repeated payment result ignored");
                    (order, false, target)
                }
            },
        )
    }
}

/// The reason label of a refused report.
fn refusal_reason(error: &ApiError) -> RefusalReason {
    match error {
        ApiError::Unauthenticated(signature) => RefusalReason::from(signature),
        ApiError::InvalidArgument(_) | ApiError::IdempotencyKeyReused => {
            RefusalReason::InvalidArgument
        }
        ApiError::OrderNotFound => RefusalReason::UnknownOrder,
        ApiError::Conflict(_) => RefusalReason::IllegalTransition,
        ApiError::Unavailable | ApiError::StoreUnavailable(_) | ApiError::Internal(_) => {
            RefusalReason::Unavailable
        }
    }
}
