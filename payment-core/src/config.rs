//! Configuration from flags and environment variables.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use payments_proto::contract::dev;

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address of the gRPC server.
    #[arg(
        long,
        global = true,
        env = "PAYMENT_CORE_LISTEN",
        default_value = "0.0.0.0:50051"
    )]
    pub listen: SocketAddr,
    /// `sqlite://path/to/file.db` (relative) or `sqlite:///absolute/path.db`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://payment-core.db")]
    pub database_url: String,
    /// Shared secret the provider signs its reports with (HMAC-SHA256).
    /// Defaults to the contract's public development secret; the service
    /// logs a warning at startup when it is in use.
    #[arg(long, env = "PROVIDER_SECRET", default_value = dev::PROVIDER_SECRET, hide_default_value = true)]
    pub provider_secret: String,
    /// Base of each order's `payment_url`; the order id is appended.
    #[arg(
        long,
        env = "PROVIDER_PAGE_URL",
        default_value = "http://localhost:8081/pay"
    )]
    pub provider_page_url: String,
    /// How long an order may wait for its payment before it expires.
    #[arg(long, env = "ORDER_TTL_SECS", default_value_t = 900)]
    pub order_ttl_secs: u64,
    /// How often the expiry sweep runs.
    #[arg(long, env = "EXPIRY_INTERVAL_MS", default_value_t = 1000)]
    pub expiry_interval_ms: u64,
    /// How far a report's signature time may be from ours.
    #[arg(long, env = "SIGNATURE_TOLERANCE_SECS", default_value_t = 300)]
    pub signature_tolerance_secs: u64,
    /// How long a watcher may leave its stream buffer full before it is cut off.
    #[arg(long, env = "SLOW_WATCHER_TIMEOUT_MS", default_value_t = 5000)]
    pub slow_watcher_timeout_ms: u64,
    /// Bound on the drain of open streams at shutdown.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// `pretty` for terminals, `json` for log collectors.
    #[arg(long, env = "LOG_FORMAT", default_value = "pretty")]
    pub log_format: String,
}

impl Config {
    pub fn order_ttl(&self) -> Duration {
        Duration::from_secs(self.order_ttl_secs)
    }

    pub fn expiry_interval(&self) -> Duration {
        Duration::from_millis(self.expiry_interval_ms.max(1))
    }

    pub fn signature_tolerance(&self) -> Duration {
        Duration::from_secs(self.signature_tolerance_secs)
    }

    pub fn slow_watcher_timeout(&self) -> Duration {
        Duration::from_millis(self.slow_watcher_timeout_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn uses_dev_secret(&self) -> bool {
        self.provider_secret == dev::PROVIDER_SECRET
    }

    /// The SQLite file named by `database_url`.
    pub fn sqlite_path(&self) -> anyhow::Result<PathBuf> {
        parse_database_url(&self.database_url)
    }
}

fn parse_database_url(url: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = path.split('?').next().unwrap_or_default();
        anyhow::ensure!(!path.is_empty(), "DATABASE_URL `{url}` names no file");
        return Ok(PathBuf::from(path));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        anyhow::bail!(
            "the PostgreSQL store is not built yet; use a sqlite:// DATABASE_URL (see ARCHITECTURE.md)"
        );
    }
    anyhow::bail!("DATABASE_URL `{url}` is not a sqlite:// URL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_name_relative_and_absolute_files() {
        assert_eq!(
            parse_database_url("sqlite://data/p.db").unwrap(),
            PathBuf::from("data/p.db")
        );
        assert_eq!(
            parse_database_url("sqlite:///data/p.db").unwrap(),
            PathBuf::from("/data/p.db")
        );
        assert_eq!(
            parse_database_url("sqlite:p.db?mode=rwc").unwrap(),
            PathBuf::from("p.db")
        );
        assert!(parse_database_url("postgres://db/payments").is_err());
        assert!(parse_database_url("mysql://x").is_err());
        assert!(parse_database_url("sqlite://").is_err());
    }
}
