//! A stand-in payment-core on a loopback port that records every
//! `ReportPaymentResult` it receives, with whether its signature verifies
//! with [`PROVIDER_SECRET`], and answers like the real one: `changed` only
//! for the first report of an order. It serves nothing else: the decision
//! path calls nothing else.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use payments_proto::{
    payments::v1::{
        self as pb,
        provider_service_server::{ProviderService, ProviderServiceServer},
    },
    signature,
};
use testkit::PROVIDER_SECRET;
use tonic::{Request, Response, Status, transport::server::TcpIncoming};

/// One report as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub report: pb::ReportPaymentResultRequest,
    /// `Ok`, or why [`signature::verify`] refused it.
    pub signature: Result<(), String>,
    pub at: Instant,
}

#[derive(Clone, Default)]
struct Recorder {
    received: Arc<Mutex<Vec<Received>>>,
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Vec<Received>> {
        // A test that panicked while holding the lock has failed already.
        self.received
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[tonic::async_trait]
impl ProviderService for Recorder {
    async fn report_payment_result(
        &self,
        request: Request<pb::ReportPaymentResultRequest>,
    ) -> Result<Response<pb::ReportPaymentResultResponse>, Status> {
        let signature = signature::verify(
            PROVIDER_SECRET.as_bytes(),
            request.metadata(),
            request.get_ref(),
            signature::unix_now(),
            signature::DEFAULT_TOLERANCE,
        )
        .map_err(|error| error.to_string());
        let report = request.into_inner();
        let verified = signature.is_ok();
        let changed = {
            let mut received = self.lock();
            let first = !received
                .iter()
                .any(|seen| seen.report.order_id == report.order_id && seen.signature.is_ok());
            received.push(Received {
                report: report.clone(),
                signature,
                at: Instant::now(),
            });
            first
        };
        if !verified {
            return Err(Status::unauthenticated("signature does not verify"));
        }
        Ok(Response::new(pb::ReportPaymentResultResponse {
            order: Some(order_after(&report)),
            changed,
        }))
    }
}

/// The order as a report leaves it: 500 JPY, in the status the outcome names.
fn order_after(report: &pb::ReportPaymentResultRequest) -> pb::Order {
    let status = match report.outcome() {
        pb::PaymentOutcome::Succeeded => pb::OrderStatus::Succeeded,
        pb::PaymentOutcome::Failed => pb::OrderStatus::Failed,
        pb::PaymentOutcome::Canceled => pb::OrderStatus::Canceled,
        pb::PaymentOutcome::Processing | pb::PaymentOutcome::Unspecified => {
            pb::OrderStatus::Processing
        }
    };
    pb::Order {
        order_id: report.order_id.clone(),
        status: status as i32,
        amount_minor: 500,
        currency: "JPY".into(),
        reason: report.reason.clone(),
        provider_reference: report.provider_reference.clone(),
        ..pb::Order::default()
    }
}

/// A running fake core; stops when dropped.
pub struct FakeCore {
    pub addr: SocketAddr,
    recorder: Recorder,
    server: tokio::task::JoinHandle<()>,
}

impl FakeCore {
    /// Serves on a free loopback port, in the test's runtime.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let recorder = Recorder::default();
        let service = ProviderServiceServer::new(recorder.clone());
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpIncoming::from(listener))
                .await
                .expect("the fake core serves");
        });
        Self {
            addr,
            recorder,
            server,
        }
    }

    /// Every report received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.recorder.lock().clone()
    }
}

impl Drop for FakeCore {
    fn drop(&mut self) {
        self.server.abort();
    }
}
