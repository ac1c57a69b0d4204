//! Configuration from flags and environment variables.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use payments_proto::contract::dev;
use service_kit::{
    core_client::CoreClientTls,
    credentials::{self, Credential, CredentialError, DevMode, Resolved, Secret},
};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::auth::ApiKeys;

/// Bound on a TLS handshake: see [`Config::tls`].
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The store when `DATABASE_URL` is unset: a SQLite file in the working
/// directory. Not a credential, so development mode plays no part.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://payment-core.db";

/// The HMAC secret reports are signed with.
pub const PROVIDER_SECRET: Credential = Credential {
    name: "PROVIDER_SECRET",
    development: dev::PROVIDER_SECRET,
    public: dev::PUBLIC,
    make: credentials::MAKE_RANDOM,
};

/// The API keys PaymentService accepts: its name and `make` word the
/// refusals, and [`Config::api_keys`] checks the list itself (a public
/// development key is known by its hash, [`ApiKeys::public_key_names`]).
pub const API_KEYS: Credential = Credential {
    name: "PAYMENT_CORE_API_KEYS",
    development: "",
    public: &[],
    make: "entries of keys of your own, each printed by `payment-core api-key --name NAME \
           --merchant MERCHANT --roles ROLES`",
};

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
    /// Whether the public development credentials are accepted.
    #[command(flatten)]
    pub dev: DevMode,
    /// `sqlite://path/to/file.db` (relative) or `sqlite:///absolute/path.db`
    /// for one process; `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` for
    /// several replicas sharing one log. Unset (and no file):
    /// `sqlite://payment-core.db`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// A file holding the database URL, instead of `DATABASE_URL` (its
    /// password stays out of the environment).
    #[arg(long, env = "DATABASE_URL_FILE", value_parser = credentials::file_setting)]
    pub database_url_file: Option<PathBuf>,
    /// Shared secret the provider signs its reports with (HMAC-SHA256), the
    /// same as mock-provider's. Required outside development mode.
    #[arg(long, env = "PROVIDER_SECRET", hide_env_values = true)]
    pub provider_secret: Option<Secret>,
    /// A file holding the provider secret, instead of `PROVIDER_SECRET`.
    #[arg(long, env = "PROVIDER_SECRET_FILE", value_parser = credentials::file_setting)]
    pub provider_secret_file: Option<PathBuf>,
    /// The API keys PaymentService accepts, hashed: entries
    /// `name:merchant:role[+role]:sha256-hex` separated by commas (roles:
    /// merchant, gateway, reader). `payment-core api-key` makes one.
    /// Required outside development mode (which accepts the public
    /// development keys, and uses them when this is unset).
    #[arg(long, env = "PAYMENT_CORE_API_KEYS", hide_env_values = true)]
    pub api_keys: Option<String>,
    /// A file of API key entries, one per line (`#` comments allowed),
    /// instead of `PAYMENT_CORE_API_KEYS`.
    // Setting both is refused by `api_keys`, not by clap: compose passes an
    // empty `PAYMENT_CORE_API_KEYS`, which clap counts as set.
    #[arg(long, env = "PAYMENT_CORE_API_KEYS_FILE", value_parser = credentials::file_setting)]
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

    /// The secret reports are signed with, from `PROVIDER_SECRET` or its
    /// file; refused when missing or public outside development mode.
    pub fn provider_secret(&self) -> Result<Resolved, CredentialError> {
        PROVIDER_SECRET.resolve(
            self.dev,
            self.provider_secret.as_ref(),
            self.provider_secret_file.as_deref(),
        )
    }

    /// The keys PaymentService accepts, from `PAYMENT_CORE_API_KEYS` or its
    /// file (empty counts as unset, as compose's `${PAYMENT_CORE_API_KEYS:-}`
    /// gives it). Outside development mode, refused when unset or when any
    /// of them is a public development key; in it, the development keys
    /// when unset.
    pub fn api_keys(&self) -> Result<ApiKeys, CredentialError> {
        let list = self.api_keys.as_deref().map(Secret::from);
        let Some(list) =
            credentials::load(API_KEYS.name, list.as_ref(), self.api_keys_file.as_deref())?
        else {
            return if self.dev.enabled {
                Ok(ApiKeys::development())
            } else {
                Err(API_KEYS.missing())
            };
        };
        let keys = ApiKeys::parse(list.expose())
            .map_err(|error| API_KEYS.invalid(format!("{error:#}")))?;
        let public = keys.public_key_names();
        if !public.is_empty() && !self.dev.enabled {
            return Err(API_KEYS.refused_as_public(format!(
                "holds public development keys ({}); remove them",
                public.join(", ")
            )));
        }
        Ok(keys)
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

    /// The store `DATABASE_URL` (or its file) names; unset, the
    /// [`DEFAULT_DATABASE_URL`].
    pub fn database(&self) -> anyhow::Result<Database> {
        let url = credentials::load(
            "DATABASE_URL",
            self.database_url.as_ref(),
            self.database_url_file.as_deref(),
        )?;
        Database::parse(url.as_ref().map_or(DEFAULT_DATABASE_URL, Secret::expose))
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
            matches!(both.api_keys(), Err(CredentialError::BothSet { .. })),
            "two sources of keys: neither is guessed to win"
        );
        let mut neither = config(&[]);
        (neither.api_keys, neither.api_keys_file) = (None, None);
        neither.dev = DevMode::OFF;
        assert!(matches!(
            neither.api_keys(),
            Err(CredentialError::Missing { .. })
        ));
        neither.dev = DevMode::ON;
        assert!(neither.api_keys().expect("keys").are_development());
    }

    #[test]
    fn a_public_development_key_in_the_list_is_accepted_in_development_mode_only() {
        let public = format!(
            "left-over:shop:merchant:{}",
            hash_hex(dev::MERCHANT_API_KEY)
        );
        let mut keys = config(&[
            "--api-keys",
            &format!("{public},own:shop:merchant:{}", hash_hex("own")),
        ]);
        keys.api_keys_file = None;
        keys.dev = DevMode::OFF;
        let refused = keys.api_keys().expect_err("a public key").to_string();
        assert!(
            refused.starts_with("PAYMENT_CORE_API_KEYS holds public development keys (left-over)"),
            "{refused}"
        );
        keys.dev = DevMode::ON;
        assert_eq!(
            keys.api_keys().expect("dev mode").public_key_names(),
            ["left-over"]
        );
    }

    #[test]
    fn the_provider_secret_is_required_and_private_outside_development_mode() {
        let mut secret = config(&[]);
        (secret.provider_secret, secret.provider_secret_file) = (None, None);
        secret.dev = DevMode::OFF;
        assert!(matches!(
            secret.provider_secret(),
            Err(CredentialError::Missing {
                name: "PROVIDER_SECRET",
                ..
            })
        ));
        secret.provider_secret = Some(dev::PROVIDER_SECRET.into());
        assert!(matches!(
            secret.provider_secret(),
            Err(CredentialError::Public { .. })
        ));
        secret.dev = DevMode::ON;
        assert!(secret.provider_secret().expect("dev mode").public);
    }

    #[test]
    fn the_database_url_comes_from_its_file_or_defaults_to_a_sqlite_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("url");
        std::fs::write(&file, "postgres://core:pw@db/payments\n").expect("written");
        let mut database = config(&[]);
        (database.database_url, database.database_url_file) = (None, None);
        database.dev = DevMode::OFF;
        assert_eq!(
            database.database().expect("the default"),
            Database::Sqlite(PathBuf::from("payment-core.db"))
        );
        database.database_url_file = Some(file);
        assert_eq!(
            database.database().expect("from the file"),
            Database::Postgres("postgres://core:pw@db/payments".into())
        );
        database.database_url = Some("sqlite://other.db".into());
        assert!(database.database().is_err(), "both set");
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
