//! `payments.v1.ProviderService`: signed payment results from the provider.

use std::time::Duration;

use payments_proto::{
    payments::v1::{self as pb, provider_service_server::ProviderService},
    signature,
};
use tonic::{Request, Response, Status};

use super::{ApiError, CoreState, convert};
use crate::{domain::StatusChange, store::Applied};

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
        // Proof first: an unsigned caller learns nothing, not even whether its fields are valid.
        signature::verify(
            &self.secret,
            request.metadata(),
            request.get_ref(),
            self.state.clock.now_unix_secs(),
            self.tolerance,
        )
        .map_err(ApiError::from)?;
        let report = convert::Report::try_from(request.get_ref()).map_err(ApiError::from)?;
        let change = StatusChange {
            target: report.target,
            reason: report.reason,
            provider_reference: report.provider_reference,
            at: self.state.clock.now(),
        };
        let (order, changed) = match self
            .state
            .store
            .apply(report.order_id, change)
            .await
            .map_err(ApiError::from)?
        {
            Applied::Moved(event) => {
                tracing::info!(order_id = %report.order_id, status = %event.status(), sequence = event.sequence, "payment result applied");
                (event.order, true)
            }
            Applied::Unchanged(order) => {
                tracing::info!(order_id = %report.order_id, status = %order.status, "repeated payment result ignored");
                (order, false)
            }
        };
        Ok(Response::new(pb::ReportPaymentResultResponse {
            // The provider has no use for the client secret.
            order: Some(convert::order(
                &order,
                &self.state.provider_page_url,
                convert::Secrets::Withheld,
            )),
            changed,
        }))
    }
}
