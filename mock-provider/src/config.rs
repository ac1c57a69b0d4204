//! Configuration from flags and environment variables.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use payments_proto::contract::dev;
use service_kit::{
    core_client::CoreClientTls,
    credentials::{self, Credential, CredentialError, DevMode, Resolved, Secret},
};

/// The HMAC secret reports are signed with (payment-core's too).
pub const PROVIDER_SECRET: Credential = Credential {
    name: "PROVIDER_SECRET",
    development: dev::PROVIDER_SECRET,
    public: dev::PUBLIC,
    make: credentials::MAKE_RANDOM,
};

/// The provider's own API key for payment-core.
pub const PAYMENT_CORE_API_KEY: Credential = Credential {
    name: "PAYMENT_CORE_API_KEY",
    development: dev::PROVIDER_API_KEY,
    public: dev::PUBLIC,
    make: "the provider's own key, printed by `payment-core api-key --name provider --merchant \
           MERCHANT --roles reader` (its entry goes to the core's PAYMENT_CORE_API_KEYS)",
};

/// The credentials the provider holds, each checked
/// ([`CoreConfig::credentials`]).
#[derive(Debug, Clone)]
pub struct Credentials {
    /// What its reports are signed with.
    pub provider_secret: Resolved,
    /// Its key for payment-core.
    pub payment_core_api_key: Resolved,
}

impl Credentials {
    /// The variables whose public development values are in use.
    pub fn public_in_use(&self) -> Vec<String> {
        [&self.provider_secret, &self.payment_core_api_key]
            .into_iter()
            .filter(|credential| credential.public)
            .map(|credential| credential.name.to_owned())
            .collect()
    }
}

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
    /// Whether the public development credentials are accepted (the
    /// `report` command's too).
    #[command(flatten)]
    pub dev: DevMode,
    /// Shared secret for signing reports (HMAC-SHA256), the same as
    /// payment-core's. Required outside development mode.
    #[arg(long, global = true, env = "PROVIDER_SECRET", hide_env_values = true)]
    pub provider_secret: Option<Secret>,
    /// A file holding the secret, instead of `PROVIDER_SECRET`.
    #[arg(long, global = true, env = "PROVIDER_SECRET_FILE", value_parser = credentials::file_setting)]
    pub provider_secret_file: Option<PathBuf>,
    /// API key for payment-core's PaymentService (role `reader`: the
    /// payment page reads the order it shows). Required outside development
    /// mode.
    #[arg(
        long,
        global = true,
        env = "PAYMENT_CORE_API_KEY",
        hide_env_values = true
    )]
    pub payment_core_api_key: Option<Secret>,
    /// A file holding the key, instead of `PAYMENT_CORE_API_KEY`.
    #[arg(long, global = true, env = "PAYMENT_CORE_API_KEY_FILE", value_parser = credentials::file_setting)]
    pub payment_core_api_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub payment_core_tls: CoreClientTls,
}

impl CoreConfig {
    /// The provider's credentials, each from its variable or its file;
    /// refused when one is missing, or public outside development mode.
    pub fn credentials(&self) -> Result<Credentials, CredentialError> {
        Ok(Credentials {
            provider_secret: PROVIDER_SECRET.resolve(
                self.dev,
                self.provider_secret.as_ref(),
                self.provider_secret_file.as_deref(),
            )?,
            payment_core_api_key: PAYMENT_CORE_API_KEY.resolve(
                self.dev,
                self.payment_core_api_key.as_ref(),
                self.payment_core_api_key_file.as_deref(),
            )?,
        })
    }
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
