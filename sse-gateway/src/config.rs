//! Configuration from flags and environment variables.

use std::{net::SocketAddr, time::Duration};

use payments_proto::contract::dev;
use service_kit::core_client::CoreClientTls;

/// The admin token used when none is configured: fine on a laptop, never in
/// production. The gateway warns at startup when it is in use.
pub use payments_proto::contract::dev::ADMIN_TOKEN as DEV_ADMIN_TOKEN;

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address of the HTTP server.
    #[arg(
        long,
        global = true,
        env = "GATEWAY_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub listen: SocketAddr,
    /// payment-core's gRPC endpoint; several replicas as a comma-separated
    /// list (calls move to the next one when one is unreachable).
    #[arg(
        long,
        env = "PAYMENT_CORE_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub payment_core_url: String,
    /// This gateway's API key for payment-core (roles `merchant` and
    /// `gateway`). Defaults to the public development key, with a warning.
    #[arg(long, env = "PAYMENT_CORE_API_KEY", default_value = dev::GATEWAY_API_KEY, hide_default_value = true, hide_env_values = true)]
    pub payment_core_api_key: String,
    #[command(flatten)]
    pub payment_core_tls: CoreClientTls,
    /// Token for the merchant dashboard and its all-orders stream.
    #[arg(long, env = "ADMIN_TOKEN", default_value = DEV_ADMIN_TOKEN, hide_default_value = true)]
    pub admin_token: String,
    /// Seconds of silence after which an SSE stream sends a heartbeat event
    /// (pages reconnect after about 2.5 intervals without a byte).
    #[arg(long, env = "HEARTBEAT_SECS", default_value_t = 15)]
    pub heartbeat_secs: u64,
    /// Reconnect delay the browser is told in the SSE `retry:` field.
    #[arg(long, env = "SSE_RETRY_MS", default_value_t = 2000)]
    pub sse_retry_ms: u64,
    /// Name of this instance in /metrics and the X-Gateway-Instance header.
    #[arg(long, env = "GATEWAY_INSTANCE", default_value = "gateway")]
    pub instance: String,
    /// Share the listening port with other gateway processes on this host
    /// (SO_REUSEPORT; the kernel spreads new connections over them), the way
    /// nginx runs one worker per core. Each process also brings its own
    /// file-descriptor limit, so a host holds more connections than one
    /// process may.
    #[arg(long, env = "GATEWAY_REUSE_PORT", default_value_t = false)]
    pub reuse_port: bool,
    /// Bound on each call to payment-core made for a browser's request; a
    /// stream whose history read takes longer tells the browser to retry.
    #[arg(long, env = "CORE_TIMEOUT_MS", default_value_t = 5000)]
    pub core_timeout_ms: u64,
    /// Bound on the drain of open connections at shutdown.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 5)]
    pub shutdown_grace_secs: u64,
    /// `pretty` for terminals, `json` for log collectors.
    #[arg(long, env = "LOG_FORMAT", default_value = "pretty")]
    pub log_format: String,
}

impl Config {
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs.max(1))
    }

    pub fn sse_retry(&self) -> Duration {
        Duration::from_millis(self.sse_retry_ms)
    }

    pub fn core_timeout(&self) -> Duration {
        Duration::from_millis(self.core_timeout_ms.max(1))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}
