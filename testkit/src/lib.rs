//! Test support shared by the services' integration tests.
//!
//! - [`Process`]: one of the workspace's services running on loopback on a
//!   port it chose and reported, in development mode unless a test says
//!   otherwise, killed when dropped (`process`); [`refusal`]: the one line
//!   a service that refuses its credentials prints;
//!   [`binary_path`] builds the binaries from the sources under test first
//!   (`binaries`), so any one test can be run alone.
//! - Ports without a race for them (`ports`): [`refused_address`] and
//!   [`reserve_address`] hold an address with a bound socket that never
//!   listens; [`on_a_free_port`] starts an external program (nginx,
//!   PostgreSQL, a browser driver) again elsewhere when its port was taken.
//! - [`eventually`]: the one way tests wait for something to become true.
//! - [`report`]: a provider report to payment-core, signed now with
//!   [`PROVIDER_SECRET`], the secret every test system shares.
//! - [`payments_client`]: a PaymentService client that sends an API key
//!   (the development keys of `contract::dev` unless a test sets its own).
//! - [`metrics`]: reading a service's `/metrics`.
//! - [`postgres`]: a fresh database per test on a real PostgreSQL server.
//! - [`tls`]: a throwaway CA and certificates for TLS and mutual-TLS tests.
//! - [`sse`]: a minimal SSE client over a raw TCP socket that keeps every
//!   byte the server sent, for checking the framing itself.

mod binaries;
pub mod metrics;
pub mod nginx;
mod ports;
pub mod postgres;
mod process;
pub mod sse;
pub mod tls;

use std::{future::Future, net::SocketAddr, time::Duration};

use payments_proto::{
    payments::v1::{
        self as pb, payment_service_client::PaymentServiceClient,
        provider_service_client::ProviderServiceClient,
    },
    signature,
};
use service_kit::core_client::{ApiKey, KeyedChannel};

pub use binaries::binary_path;
pub use ports::{
    PortTaken, ReservedAddress, on_a_free_port, on_free_ports, refused_address, reserve_address,
    reserve_address_at, wait_until_ready,
};
pub use process::{
    AddressFile, Process, refusal, start_payment_core, start_payment_core_on,
    start_payment_core_with,
};

/// The provider secret of every test system.
pub const PROVIDER_SECRET: &str = "test-provider-secret";

/// How long [`eventually`] waits before it fails the test. Generous: CI
/// machines are shared, and a passing test never waits this long.
pub const EVENTUALLY_BOUND: Duration = Duration::from_secs(10);

/// Calls `check` until it answers `Some`, and returns that; fails the test,
/// naming `what`, if it has not after [`EVENTUALLY_BOUND`]. For conditions
/// no event announces (a gauge going down, a port opening); anything that
/// arrives as an event is awaited directly instead.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(EVENTUALLY_BOUND, what, check).await
}

/// [`eventually`] with another bound, for what is slow by nature (a
/// browser starting).
pub async fn eventually_within<T, F, Fut>(bound: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not true after {bound:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reports `outcome` for `order_id` to the payment-core at `core`, signed now
/// with [`PROVIDER_SECRET`], as the provider does.
pub async fn report(
    core: SocketAddr,
    order_id: &str,
    outcome: pb::PaymentOutcome,
    reason: &str,
) -> Result<pb::ReportPaymentResultResponse, tonic::Status> {
    report_signed_with(core, PROVIDER_SECRET, order_id, outcome, reason).await
}

/// [`report`] signed with another secret, to check refusals.
pub async fn report_signed_with(
    core: SocketAddr,
    secret: &str,
    order_id: &str,
    outcome: pb::PaymentOutcome,
    reason: &str,
) -> Result<pb::ReportPaymentResultResponse, tonic::Status> {
    let mut provider = ProviderServiceClient::connect(format!("http://{core}"))
        .await
        .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    let request = report_request(order_id, outcome, reason);
    provider
        .report_payment_result(signature::signed_now(secret.as_bytes(), request))
        .await
        .map(tonic::Response::into_inner)
}

/// A PaymentService client over `channel` whose calls carry `api_key`.
pub fn payments_client(
    channel: tonic::transport::Channel,
    api_key: &str,
) -> PaymentServiceClient<KeyedChannel> {
    PaymentServiceClient::with_interceptor(channel, ApiKey::new(api_key).expect("ASCII key"))
}

/// A PaymentService client of the core at `url` (connected lazily) whose
/// calls carry `api_key`.
pub fn payments_client_at(url: &str, api_key: &str) -> PaymentServiceClient<KeyedChannel> {
    let channel = tonic::transport::Channel::from_shared(url.to_owned())
        .expect("valid URL")
        .connect_lazy();
    payments_client(channel, api_key)
}

/// Connects to the core at `url` as the development gateway key (roles
/// merchant and gateway: every PaymentService call, client secrets shown).
pub async fn connect_payments(
    url: String,
) -> Result<PaymentServiceClient<KeyedChannel>, tonic::transport::Error> {
    let channel = tonic::transport::Channel::from_shared(url)
        .expect("valid URL")
        .connect()
        .await?;
    Ok(payments_client(
        channel,
        payments_proto::contract::dev::GATEWAY_API_KEY,
    ))
}

/// A `PAYMENT_CORE_API_KEYS` entry for `key`: what `payment-core api-key`
/// prints, with a key of the test's choosing.
pub fn api_key_entry(name: &str, merchant: &str, roles: &str, key: &str) -> String {
    use sha2::Digest;
    format!(
        "{name}:{merchant}:{roles}:{}",
        hex::encode(sha2::Sha256::digest(key.as_bytes()))
    )
}

/// The report message the test provider sends.
pub fn report_request(
    order_id: &str,
    outcome: pb::PaymentOutcome,
    reason: &str,
) -> pb::ReportPaymentResultRequest {
    pb::ReportPaymentResultRequest {
        order_id: order_id.into(),
        outcome: outcome as i32,
        provider_reference: format!("ref-{order_id}"),
        reason: reason.into(),
    }
}
