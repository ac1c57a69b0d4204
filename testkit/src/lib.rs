//! Test support shared by the services' integration tests.
//!
//! - [`Process`]: one of the workspace's binaries running on loopback,
//!   killed when dropped; [`binary_path`] builds the binaries from the
//!   sources under test first (`binaries`), so any one test can be run alone.
//! - [`free_port`], [`wait_for_port`].
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
pub mod postgres;
pub mod sse;
pub mod tls;

use std::future::Future;

use payments_proto::{
    payments::v1::{
        self as pb, payment_service_client::PaymentServiceClient,
        provider_service_client::ProviderServiceClient,
    },
    signature,
};
use service_kit::core_client::{ApiKey, KeyedChannel};

pub use binaries::binary_path;

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind loopback")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Waits until something accepts connections on `addr`, at most `bound`.
pub fn wait_for_port(addr: SocketAddr, bound: Duration) {
    let deadline = Instant::now() + bound;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {addr} after {bound:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running binary; killed (SIGKILL) when dropped.
pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Process {
    /// Starts `name` with `env`, and waits until `addr` accepts connections.
    pub fn start(name: &str, addr: SocketAddr, env: &[(&str, String)]) -> Self {
        Self::start_with_stdout(name, addr, env, Stdio::null())
    }

    /// [`Process::start`], its log lines (stdout) written to `log`.
    pub fn start_logging_to(
        name: &str,
        addr: SocketAddr,
        env: &[(&str, String)],
        log: &std::path::Path,
    ) -> Self {
        let file = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        Self::start_with_stdout(name, addr, env, Stdio::from(file))
    }

    fn start_with_stdout(
        name: &str,
        addr: SocketAddr,
        env: &[(&str, String)],
        stdout: Stdio,
    ) -> Self {
        let mut command = Command::new(binary_path(name));
        command.stdout(stdout).env("RUST_LOG", "warn");
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let process = Self { child, addr };
        wait_for_port(addr, Duration::from_secs(20));
        process
    }

    /// Freezes the process (SIGSTOP): alive, its sockets open and still
    /// accepting connections in the kernel, but it answers nothing, as a
    /// hung or paused process does.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Lets a frozen process run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} {}", self.child.id());
    }

    /// Kills the process hard, as a crash would, and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// payment-core on `port` over the SQLite file `database`.
pub fn start_payment_core(database: &std::path::Path, secret: &str, port: u16) -> Process {
    start_payment_core_with(database, secret, port, &[])
}

/// payment-core with extra environment (e.g. `PROVIDER_PAGE_URL`).
pub fn start_payment_core_with(
    database: &std::path::Path,
    secret: &str,
    port: u16,
    extra: &[(&str, String)],
) -> Process {
    start_payment_core_on(
        &format!("sqlite://{}", database.display()),
        secret,
        port,
        extra,
    )
}

/// payment-core on `port` over the store `database_url` names (a
/// PostgreSQL database shared by several replicas, say).
pub fn start_payment_core_on(
    database_url: &str,
    secret: &str,
    port: u16,
    extra: &[(&str, String)],
) -> Process {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut env = vec![
        ("PAYMENT_CORE_LISTEN", addr.to_string()),
        ("DATABASE_URL", database_url.to_owned()),
        ("PROVIDER_SECRET", secret.to_owned()),
        ("PROVIDER_PAGE_URL", "http://127.0.0.1:1/pay".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    Process::start("payment-core", addr, &env)
}

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
