//! Configuration from flags and environment variables.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use payments_proto::contract::dev;
use service_kit::core_client::CoreClientTls;

/// How to reach payment-core and sign for it: shared by `serve` and `report`.
#[derive(Debug, Clone, clap::Args)]
pub struct CoreConfig {
    /// payment-core's gRPC endpoint; several replicas as a comma-separated
    /// list (a report refused as unavailable goes to the next one).
    #[arg(
        long,
        global = true,
        env = "PAYMENT_CORE_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub payment_core_url: String,
    // The default is the contract's public development secret, so a local
    // run works without configuration; both services warn when it is in use.
    /// Shared secret for signing reports (HMAC-SHA256).
    #[arg(long, global = true, env = "PROVIDER_SECRET", default_value = dev::PROVIDER_SECRET, hide_default_value = true)]
    pub provider_secret: String,
    /// API key for payment-core's PaymentService (role `reader`: the
    /// payment page reads the order it shows). Defaults to the public
    /// development key.
    #[arg(long, global = true, env = "PAYMENT_CORE_API_KEY", default_value = dev::PROVIDER_API_KEY, hide_default_value = true, hide_env_values = true)]
    pub payment_core_api_key: String,
    #[command(flatten)]
    pub payment_core_tls: CoreClientTls,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeConfig {
    /// Address of the payment page server.
    #[arg(
        long,
        global = true,
        env = "PROVIDER_LISTEN",
        default_value = "0.0.0.0:8081"
    )]
    pub listen: SocketAddr,
    /// After binding, write the bound address there as JSON
    /// (`{"http":"…"}`): for supervisors and tests that start it on port 0.
    #[arg(long, env = "ADDRESS_FILE")]
    pub address_file: Option<PathBuf>,
    /// The merchant name shown on the payment page.
    #[arg(long, env = "MERCHANT_NAME", default_value = "Larkspur Roasters")]
    pub merchant_name: String,
    /// Demo knob: wait this long before reporting a payer's decision.
    #[arg(long, env = "PROVIDER_REPORT_DELAY_MS", default_value_t = 0)]
    pub report_delay_ms: u64,
    /// Demo knob: send every decision report twice (payment-core must ignore the repeat).
    #[arg(long, env = "PROVIDER_DUPLICATE_REPORTS", default_value_t = false)]
    pub duplicate_reports: bool,
    /// Bound on the drain of requests in flight at shutdown.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 5)]
    pub shutdown_grace_secs: u64,
    /// `pretty` for terminals, `json` for log collectors.
    #[arg(long, env = "LOG_FORMAT", default_value = "pretty")]
    pub log_format: String,
}

impl ServeConfig {
    pub fn report_delay(&self) -> Duration {
        Duration::from_millis(self.report_delay_ms)
    }
}
