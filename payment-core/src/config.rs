//! Configuration from flags and environment variables.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use payments_proto::contract::dev;
use service_kit::core_client::CoreClientTls;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::auth::ApiKeys;

/// Bound on a TLS handshake: see [`Config::tls`].
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Address of the HTTP listener serving `GET /metrics` (Prometheus).
    /// Unset: no metrics listener. It has no authentication: bind it where
    /// only the scraper can reach it.
    #[arg(long, global = true, env = "PAYMENT_CORE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// After binding, write the bound addresses there as JSON
    /// (`{"grpc":"…","metrics":"…"}`): for supervisors and tests that start
    /// it on port 0.
    #[arg(long, env = "ADDRESS_FILE")]
    pub address_file: Option<PathBuf>,
    /// `sqlite://path/to/file.db` (relative) or `sqlite:///absolute/path.db`
    /// for one process; `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` for
    /// several replicas sharing one log.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://payment-core.db")]
    pub database_url: String,
    /// Shared secret the provider signs its reports with (HMAC-SHA256).
    /// Defaults to the contract's public development secret; the service
    /// logs a warning at startup when it is in use.
    #[arg(long, env = "PROVIDER_SECRET", default_value = dev::PROVIDER_SECRET, hide_default_value = true)]
    pub provider_secret: String,
    /// The API keys PaymentService accepts, hashed: entries
    /// `name:merchant:role[+role]:sha256-hex` separated by commas (roles:
    /// merchant, gateway, reader). `payment-core api-key` makes one. Unset
    /// (and no file): the public development keys, with a warning.
    #[arg(long, env = "PAYMENT_CORE_API_KEYS", hide_env_values = true)]
    pub api_keys: Option<String>,
    /// A file of API key entries, one per line (`#` comments allowed),
    /// instead of `PAYMENT_CORE_API_KEYS`.
    // Setting both is refused by `api_keys`, not by clap: compose passes an
    // empty `PAYMENT_CORE_API_KEYS`, which clap counts as set.
    #[arg(long, env = "PAYMENT_CORE_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// PEM certificate chain for TLS; with `TLS_KEY_FILE`, gRPC is served
    /// over TLS only.
    #[arg(long, env = "TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `TLS_CERT_FILE`.
    #[arg(long, env = "TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificates: when set, every client must present a
    /// certificate signed by one of them (mutual TLS).
    #[arg(long, env = "TLS_CLIENT_CA_FILE", requires = "tls_cert_file")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// What `payment-core healthcheck` trusts and presents when the server
    /// speaks TLS: the same settings as the core's other clients.
    #[command(flatten)]
    pub healthcheck_tls: CoreClientTls,
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

    /// The keys PaymentService accepts.
    pub fn api_keys(&self) -> anyhow::Result<ApiKeys> {
        // Empty counts as unset, as compose's `${PAYMENT_CORE_API_KEYS:-}` gives it.
        let list = self
            .api_keys
            .as_deref()
            .filter(|list| !list.trim().is_empty());
        match (list, &self.api_keys_file) {
            (Some(_), Some(_)) => anyhow::bail!(
                "PAYMENT_CORE_API_KEYS and PAYMENT_CORE_API_KEYS_FILE are both set: keep one"
            ),
            (Some(list), None) => ApiKeys::parse(list).context("PAYMENT_CORE_API_KEYS"),
            (None, Some(path)) => ApiKeys::from_file(path),
            (None, None) => Ok(ApiKeys::development()),
        }
    }

    /// The server's TLS settings, read from their files; `None` for
    /// plaintext.
    pub fn tls(&self) -> anyhow::Result<Option<ServerTlsConfig>> {
        let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) else {
            return Ok(None);
        };
        service_kit::core_client::install_crypto_provider();
        let read = |path: &PathBuf| {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))
        };
        // A client that connects and never finishes its handshake is
        // dropped after this, instead of holding a socket and a task.
        let mut tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(read(cert)?, read(key)?))
            .timeout(TLS_HANDSHAKE_TIMEOUT);
        if let Some(ca) = &self.tls_client_ca_file {
            tls = tls.client_ca_root(Certificate::from_pem(read(ca)?));
        }
        Ok(Some(tls))
    }

    /// The store `database_url` names.
    pub fn database(&self) -> anyhow::Result<Database> {
        Database::parse(&self.database_url)
    }
}

/// Where the event log lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An embedded SQLite file, owned by this one process.
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by any number of replicas; the URL as
    /// given (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`).
    Postgres(String),
}

impl Database {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or_default();
            anyhow::ensure!(!path.is_empty(), "DATABASE_URL `{url}` names no file");
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            url.parse::<tokio_postgres::Config>().map_err(|error| {
                anyhow::anyhow!("DATABASE_URL is not a PostgreSQL URL: {error}")
            })?;
            return Ok(Self::Postgres(url.to_owned()));
        }
        anyhow::bail!("DATABASE_URL must start with sqlite:// or postgres://")
    }

    /// For logs: the file, or the server and database without the password.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => match url.parse::<tokio_postgres::Config>() {
                Ok(config) => format!(
                    "postgres://{:?}/{}",
                    config.get_hosts(),
                    config.get_dbname().unwrap_or_default()
                ),
                Err(_) => "postgres://(unparsable)".into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::hash_hex;

    fn config(args: &[&str]) -> Config {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            config: Config,
        }
        let args = std::iter::once("payment-core").chain(args.iter().copied());
        <Cli as clap::Parser>::try_parse_from(args)
            .expect("valid flags")
            .config
    }

    #[test]
    fn keys_come_from_the_list_or_the_file_and_an_empty_list_is_unset() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("keys");
        std::fs::write(&file, format!("shop:shop:merchant:{}\n", hash_hex("k"))).expect("written");
        let file = file.to_str().expect("utf-8 path");
        let entry = format!("edge:shop:gateway:{}", hash_hex("g"));

        let from_file = config(&["--api-keys", "", "--api-keys-file", file]);
        assert_eq!(
            format!("{:?}", from_file.api_keys().expect("keys")),
            r#"["shop"]"#
        );
        // A source the case leaves out is cleared: clap also reads the
        // environment, which may hold the developer's own keys.
        let mut from_list = config(&["--api-keys", &entry]);
        from_list.api_keys_file = None;
        assert_eq!(
            format!("{:?}", from_list.api_keys().expect("keys")),
            r#"["edge"]"#
        );
        let both = config(&["--api-keys", &entry, "--api-keys-file", file]);
        assert!(
            both.api_keys().is_err(),
            "two sources of keys: neither is guessed to win"
        );
        let mut neither = config(&[]);
        (neither.api_keys, neither.api_keys_file) = (None, None);
        assert!(neither.api_keys().expect("keys").are_development());
    }

    #[test]
    fn database_urls_name_a_sqlite_file_or_a_postgres_database() {
        let sqlite = |url| Database::parse(url).ok();
        assert_eq!(
            sqlite("sqlite://data/p.db"),
            Some(Database::Sqlite(PathBuf::from("data/p.db")))
        );
        assert_eq!(
            sqlite("sqlite:///data/p.db"),
            Some(Database::Sqlite(PathBuf::from("/data/p.db")))
        );
        assert_eq!(
            sqlite("sqlite:p.db?mode=rwc"),
            Some(Database::Sqlite(PathBuf::from("p.db")))
        );
        let postgres = "postgres://core:secret@db:5432/payments";
        assert_eq!(
            Database::parse(postgres).ok(),
            Some(Database::Postgres(postgres.into()))
        );
        let described = Database::parse(postgres).expect("valid").describe();
        assert!(!described.contains("secret"), "{described}");
        assert!(Database::parse("mysql://x").is_err());
        assert!(Database::parse("sqlite://").is_err());
        assert!(Database::parse("postgres://db:notaport/p").is_err());
    }
}
