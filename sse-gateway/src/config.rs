//! Configuration from flags and environment variables.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum::http::HeaderValue;

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
    /// Web origins besides the gateway's own that may create orders and
    /// open streams, comma-separated (`https://shop.example`). Empty (the
    /// default): same-origin pages only.
    #[arg(long, env = "ALLOWED_ORIGINS", default_value = "")]
    pub allowed_origins: String,
    /// Token for the merchant dashboard and its all-orders stream.
    #[arg(long, env = "ADMIN_TOKEN", default_value = DEV_ADMIN_TOKEN, hide_default_value = true)]
    pub admin_token: String,
    /// How long a stream token (`POST /api/orders/{id}/stream-tokens`)
    /// opens its order's stream. It is checked when a stream opens; pages
    /// get a new one for each reconnect.
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
