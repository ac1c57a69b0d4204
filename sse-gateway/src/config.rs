//! Configuration from flags and environment variables.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum::http::HeaderValue;

use payments_proto::contract::dev;
use service_kit::{
    core_client::CoreClientTls,
    credentials::{self, Credential, CredentialError, DevMode, Resolved, Secret},
};

/// The dashboard's token.
pub const ADMIN_TOKEN: Credential = Credential {
    name: "ADMIN_TOKEN",
    development: dev::ADMIN_TOKEN,
    public: dev::PUBLIC,
    make: credentials::MAKE_RANDOM,
};

/// The gateway's own API key for payment-core.
pub const PAYMENT_CORE_API_KEY: Credential = Credential {
    name: "PAYMENT_CORE_API_KEY",
    development: dev::GATEWAY_API_KEY,
    public: dev::PUBLIC,
    make: "the gateway's own key, printed by `payment-core api-key --name gateway --merchant \
           MERCHANT --roles merchant+gateway` (its entry goes to the core's \
           PAYMENT_CORE_API_KEYS)",
};

/// The credentials the gateway holds, each checked ([`Config::credentials`]).
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Its key for payment-core.
    pub payment_core_api_key: Resolved,
    /// The dashboard's token.
    pub admin_token: Resolved,
}

impl Credentials {
    /// The variables whose public development values are in use.
    pub fn public_in_use(&self) -> Vec<String> {
        [&self.payment_core_api_key, &self.admin_token]
            .into_iter()
            .filter(|credential| credential.public)
            .map(|credential| credential.name.to_owned())
            .collect()
    }
}

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
    /// Whether the public development credentials are accepted.
    #[command(flatten)]
    pub dev: DevMode,
    /// This gateway's API key for payment-core (roles `merchant` and
    /// `gateway`). Required outside development mode.
    #[arg(long, env = "PAYMENT_CORE_API_KEY", hide_env_values = true)]
    pub payment_core_api_key: Option<Secret>,
    /// A file holding the key, instead of `PAYMENT_CORE_API_KEY`.
    #[arg(long, env = "PAYMENT_CORE_API_KEY_FILE", value_parser = credentials::file_setting)]
    pub payment_core_api_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub payment_core_tls: CoreClientTls,
    /// Web origins besides the gateway's own that may create orders and
    /// open streams, comma-separated (`https://shop.example`). Empty (the
    /// default): same-origin pages only.
    #[arg(long, env = "ALLOWED_ORIGINS", default_value = "")]
    pub allowed_origins: String,
    /// Token for the merchant dashboard and its all-orders stream.
    /// Required outside development mode.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// A file holding the token, instead of `ADMIN_TOKEN`.
    #[arg(long, env = "ADMIN_TOKEN_FILE", value_parser = credentials::file_setting)]
    pub admin_token_file: Option<PathBuf>,
    /// How long a stream token (`POST /api/orders/{id}/stream-tokens`)
    /// opens its order's stream. It is checked when a stream opens; pages
    /// reuse one until a stream is refused, then get another.
    #[arg(long, env = "STREAM_TOKEN_TTL_SECS", default_value_t = 300)]
    pub stream_token_ttl_secs: u64,
    /// How long a dashboard sign-in (its session cookie) lasts.
    #[arg(long, env = "DASHBOARD_SESSION_SECS", default_value_t = 8 * 3600)]
    pub dashboard_session_secs: u64,
    /// Seconds of silence after which an SSE stream sends a heartbeat event
    /// (pages reconnect after about 2.5 intervals without a byte).
    #[arg(long, env = "HEARTBEAT_SECS", default_value_t = 15)]
    pub heartbeat_secs: u64,
    /// Most event streams this process holds open. One more is answered
    /// with a lone `retry:` frame of about `OVERLOAD_RETRY_MS` and closed,
    /// so EventSource comes back later instead of giving up (it gives up on
    /// any status but 200). Keep it under the process's file-descriptor
    /// limit, with room for the API's own connections.
    #[arg(long, env = "MAX_STREAMS", default_value_t = 15_000)]
    pub max_streams: u64,
    /// Orders whose whole history this gateway keeps in memory, from the
    /// `created` events it sees, so that opening a stream for one of them
    /// (a reconnect storm when another gateway stops) costs no call to
    /// payment-core. Oldest created go first, and sooner when the orders'
    /// events pass 1 KiB per order on average (long descriptions); a new
    /// order costs about 0.8 KiB (BENCHMARKS.md). Orders it did not see
    /// created are read from the core. 0 keeps none.
    #[arg(long, env = "RECENT_ORDERS", default_value_t = 50_000)]
    pub recent_orders: usize,
    /// Reconnect delay told to a stream refused for `MAX_STREAMS`: this
    /// plus up to as much again at random, so refused browsers do not all
    /// come back in the same instant.
    #[arg(long, env = "OVERLOAD_RETRY_MS", default_value_t = 15_000)]
    pub overload_retry_ms: u64,
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
    /// After binding, write the bound address there as JSON
    /// (`{"http":"…"}`): for supervisors and tests that start it on port 0.
    #[arg(long, env = "ADDRESS_FILE")]
    pub address_file: Option<PathBuf>,
    /// Bound on each call to payment-core, shared among the replicas when
    /// there are several (a replica that never answers gets its share, then
    /// the next one is tried), and on the opening of the gateway's upstream
    /// stream. A stream whose history read takes longer tells the browser
    /// to retry.
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

    pub fn allowed_origins(&self) -> anyhow::Result<Arc<[HeaderValue]>> {
        parse_origins(&self.allowed_origins)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// The gateway's credentials, each from its variable or its file;
    /// refused when one is missing, or public outside development mode.
    pub fn credentials(&self) -> Result<Credentials, CredentialError> {
        Ok(Credentials {
            payment_core_api_key: PAYMENT_CORE_API_KEY.resolve(
                self.dev,
                self.payment_core_api_key.as_ref(),
                self.payment_core_api_key_file.as_deref(),
            )?,
            admin_token: ADMIN_TOKEN.resolve(
                self.dev,
                self.admin_token.as_ref(),
                self.admin_token_file.as_deref(),
            )?,
        })
    }
}

/// `ALLOWED_ORIGINS`, parsed: `scheme://host[:port]`, comma-separated,
/// as browsers send them in `Origin` (lower case, no path).
pub fn parse_origins(list: &str) -> anyhow::Result<Arc<[HeaderValue]>> {
    list.split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| {
            let uri: axum::http::Uri = origin
                .parse()
                .map_err(|_| anyhow::anyhow!("ALLOWED_ORIGINS: `{origin}` is not an origin"))?;
            let scheme = uri.scheme_str().filter(|s| matches!(*s, "http" | "https"));
            let (Some(scheme), Some(authority)) = (scheme, uri.authority()) else {
                anyhow::bail!("ALLOWED_ORIGINS: `{origin}` must be http(s)://host[:port]");
            };
            anyhow::ensure!(
                matches!(uri.path(), "" | "/") && uri.query().is_none(),
                "ALLOWED_ORIGINS: `{origin}` must have no path"
            );
            let normalized = format!("{scheme}://{}", authority.as_str().to_ascii_lowercase());
            Ok(HeaderValue::try_from(normalized)?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_origins_are_scheme_host_and_port_only() {
        let parsed = parse_origins("https://Shop.example, http://localhost:3000/").expect("valid");
        assert_eq!(
            &parsed[..],
            ["https://shop.example", "http://localhost:3000"]
        );
        assert!(
            parse_origins("")
                .expect("empty is same-origin only")
                .is_empty()
        );
        for bad in [
            "shop.example",
            "ftp://shop.example",
            "https://shop.example/pay",
            "*",
        ] {
            assert!(parse_origins(bad).is_err(), "{bad}");
        }
    }
}
