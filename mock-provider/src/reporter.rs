//! Signed `ReportPaymentResult` calls to payment-core: what a real provider's
//! webhook would be, over gRPC, signed with the shared secret.

use std::time::Duration;

use payments_proto::{
    payments::v1::{
        self as pb, payment_service_client::PaymentServiceClient,
        provider_service_client::ProviderServiceClient,
    },
    signature,
};
use tonic::{Code, transport::Channel};

const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("order not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("order is already finished: {0}")]
    AlreadyFinished(String),
    #[error("payment-core rejected our signature; check PROVIDER_SECRET")]
    Unauthenticated,
    #[error("payment-core is unavailable: {0}")]
    Unavailable(String),
    #[error("payment-core failed: {0}")]
    Other(String),
}

impl From<tonic::Status> for ReportError {
    fn from(status: tonic::Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            Code::NotFound => Self::NotFound,
            Code::InvalidArgument => Self::Invalid(message),
            Code::FailedPrecondition => Self::AlreadyFinished(message),
            Code::Unauthenticated => Self::Unauthenticated,
            Code::Unavailable | Code::DeadlineExceeded => Self::Unavailable(message),
            code => Self::Other(format!("{code:?}: {message}")),
        }
    }
}

/// The payment outcomes a payer (or a script) can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Outcome {
    Processing,
    Succeeded,
    Failed,
    Canceled,
}

impl From<Outcome> for pb::PaymentOutcome {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Processing => Self::Processing,
            Outcome::Succeeded => Self::Succeeded,
            Outcome::Failed => Self::Failed,
            Outcome::Canceled => Self::Canceled,
        }
    }
}

#[derive(Clone)]
pub struct Reporter {
    payments: PaymentServiceClient<Channel>,
    provider: ProviderServiceClient<Channel>,
    secret: Vec<u8>,
}

impl Reporter {
    pub fn new(core_url: &str, secret: &str) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(core_url.to_owned())?
            .connect_timeout(Duration::from_secs(3))
            .connect_lazy();
        Ok(Self {
            payments: PaymentServiceClient::new(channel.clone()),
            provider: ProviderServiceClient::new(channel),
            secret: secret.as_bytes().to_vec(),
        })
    }

    pub async fn order(&self, order_id: &str) -> Result<pb::Order, ReportError> {
        let mut request = tonic::Request::new(pb::GetOrderRequest {
            order_id: order_id.to_owned(),
        });
        request.set_timeout(CALL_TIMEOUT);
        let order = self
            .payments
            .clone()
            .get_order(request)
            .await?
            .into_inner()
            .order;
        order.ok_or_else(|| ReportError::Other("GetOrder answered without an order".into()))
    }

    /// Reports `outcome`, signed now. Answers the order after the report and
    /// whether it changed (a repeat does not).
    pub async fn report(
        &self,
        order_id: &str,
        outcome: Outcome,
        reason: &str,
    ) -> Result<(pb::Order, bool), ReportError> {
        let message = pb::ReportPaymentResultRequest {
            order_id: order_id.to_owned(),
            outcome: pb::PaymentOutcome::from(outcome) as i32,
            provider_reference: format!("mockpay_{}", order_id.replace('-', "")),
            reason: reason.to_owned(),
        };
        let mut request = signature::signed_now(&self.secret, message);
        request.set_timeout(CALL_TIMEOUT);
        let answer = self
            .provider
            .clone()
            .report_payment_result(request)
            .await?
            .into_inner();
        let order = answer
            .order
            .ok_or_else(|| ReportError::Other("report answered without an order".into()))?;
        Ok((order, answer.changed))
    }
}
