//! Signed `ReportPaymentResult` calls to payment-core: what a real provider's
//! webhook would be, over gRPC, signed with the shared secret.

use std::{sync::Arc, time::Duration};

use crate::config::{CoreConfig, Credentials};

use payments_proto::{
    payments::v1::{
        self as pb, payment_service_client::PaymentServiceClient,
        provider_service_client::ProviderServiceClient,
    },
    signature,
};
use service_kit::{
    core_client::{self, ApiKey, KeyedChannel},
    replicas::{Replicas, within},
    telemetry,
};
use tracing::Instrument;

use crate::metrics::{ProviderMetrics, ReportAnswer, ReportedResult};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Outcome {
    Processing,
    Succeeded,
    Failed,
    Canceled,
}

impl From<Outcome> for ReportedResult {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Processing => Self::Processing,
            Outcome::Succeeded => Self::Succeeded,
            Outcome::Failed => Self::Failed,
            Outcome::Canceled => Self::Canceled,
        }
    }
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

/// One replica's two services, over one channel.
#[derive(Clone)]
struct Replica {
    payments: PaymentServiceClient<KeyedChannel>,
    provider: ProviderServiceClient<Channel>,
}

/// Reports to one or several payment-core replicas (see
/// `service_kit::replicas`): reports are idempotent, so a report refused as
/// UNAVAILABLE by one replica is sent to the next.
#[derive(Clone)]
pub struct Reporter {
    replicas: Arc<Replicas<Replica>>,
    secret: Vec<u8>,
    metrics: ProviderMetrics,
}

impl Reporter {
    /// To the replicas `core` lists, with the key and the secret of
    /// `credentials`.
    pub fn new(
        core: &CoreConfig,
        credentials: &Credentials,
        metrics: ProviderMetrics,
    ) -> anyhow::Result<Self> {
        let api_key = ApiKey::new(credentials.payment_core_api_key.secret.expose())?;
        let secret = credentials.provider_secret.secret.expose();
        let replicas = core_client::endpoints(&core.payment_core_url, &core.payment_core_tls)?
            .into_iter()
            .map(|endpoint| {
                let channel = endpoint
                    .connect_timeout(Duration::from_secs(3))
                    .connect_lazy();
                Replica {
                    payments: PaymentServiceClient::with_interceptor(
                        channel.clone(),
                        api_key.clone(),
                    ),
                    provider: ProviderServiceClient::new(channel),
                }
            })
            .collect();
        Ok(Self {
            replicas: Arc::new(Replicas::new(replicas)),
            secret: secret.as_bytes().to_vec(),
            metrics,
        })
    }

    pub async fn order(&self, order_id: &str) -> Result<pb::Order, ReportError> {
        let message = pb::GetOrderRequest {
            order_id: order_id.to_owned(),
        };
        let order = self
            .replicas
            .call(|mut replica| {
                let mut request = tonic::Request::new(message.clone());
                request.set_timeout(CALL_TIMEOUT);
                async move { within(CALL_TIMEOUT, replica.payments.get_order(request)).await }
            })
            .await?
            .into_inner()
            .order;
        order.ok_or_else(|| ReportError::Other("GetOrder answered without an order".into()))
    }

    /// Reports `outcome`, signed now, in the order's trace when
    /// `trace_parent` names it. Answers the order after the report and
    /// whether it changed (a repeat does not).
    pub async fn report(
        &self,
        order_id: &str,
        outcome: Outcome,
        reason: &str,
        trace_parent: Option<&str>,
    ) -> Result<(pb::Order, bool), ReportError> {
        let span = tracing::info_span!("report", %order_id, ?outcome);
        if let Some(trace_parent) = trace_parent {
            telemetry::follow(&span, trace_parent);
        }
        let answer = self
            .send_report(order_id, outcome, reason)
            .instrument(span.clone())
            .await;
        span.in_scope(|| match &answer {
            Ok((_, changed)) => tracing::info!(changed, "report sent"),
            Err(error) => tracing::warn!(%error, "report not taken"),
        });
        let how = match &answer {
            Ok((_, true)) => ReportAnswer::Applied,
            Ok((_, false)) => ReportAnswer::Repeated,
            Err(ReportError::Unavailable(_) | ReportError::Other(_)) => ReportAnswer::Unavailable,
            Err(_) => ReportAnswer::Refused,
        };
        self.metrics.report_sent(ReportedResult::from(outcome), how);
        answer
    }

    async fn send_report(
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
        let answer = self
            .replicas
            .call(|mut replica| {
                let mut request = signature::signed_now(&self.secret, message.clone());
                request.set_timeout(CALL_TIMEOUT);
                telemetry::inject(request.metadata_mut());
                async move {
                    within(
                        CALL_TIMEOUT,
                        replica.provider.report_payment_result(request),
                    )
                    .await
                }
            })
            .await?
            .into_inner();
        let order = answer
            .order
            .ok_or_else(|| ReportError::Other("report answered without an order".into()))?;
        Ok((order, answer.changed))
    }
}
