//! Reaching payment-core as a client: the endpoints `PAYMENT_CORE_URL`
//! lists, over TLS (and mutual TLS) when a CA is configured, and the API
//! key every PaymentService call carries.

use std::path::PathBuf;

use anyhow::Context;
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

/// Makes ring the process's rustls provider, once. tonic's TLS asks
/// rustls for the process default, and a build that links a second provider
/// (aws-lc, which test tools bring) has no default until one is chosen. The
/// first call wins; later ones, and a provider chosen elsewhere, are fine.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// TLS settings of a payment-core client, the same in every service.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CoreClientTls {
    /// PEM CA certificates that payment-core's certificate must chain to.
    /// When set, `PAYMENT_CORE_URL` must use `https://`.
    #[arg(long = "payment-core-ca-file", env = "PAYMENT_CORE_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// PEM certificate this client presents, for a core that requires
    /// mutual TLS.
    #[arg(
        long = "payment-core-client-cert-file",
        env = "PAYMENT_CORE_CLIENT_CERT_FILE",
        requires = "client_key_file"
    )]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[arg(
        long = "payment-core-client-key-file",
        env = "PAYMENT_CORE_CLIENT_KEY_FILE",
        requires = "client_cert_file"
    )]
    pub client_key_file: Option<PathBuf>,
    /// The name payment-core's certificate is checked against, when it is
    /// not the URL's host.
    #[arg(long = "payment-core-tls-domain", env = "PAYMENT_CORE_TLS_DOMAIN")]
    pub domain: Option<String>,
}

impl CoreClientTls {
    /// The rustls client settings, read from their files; `None` for
    /// plaintext.
    pub fn client_config(&self) -> anyhow::Result<Option<ClientTlsConfig>> {
        install_crypto_provider();
        let Some(ca) = &self.ca_file else {
            anyhow::ensure!(
                self.client_cert_file.is_none(),
                "PAYMENT_CORE_CLIENT_CERT_FILE needs PAYMENT_CORE_CA_FILE"
            );
            return Ok(None);
        };
        let read = |path: &PathBuf| {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))
        };
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
        if let (Some(cert), Some(key)) = (&self.client_cert_file, &self.client_key_file) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        if let Some(domain) = &self.domain {
            tls = tls.domain_name(domain.clone());
        }
        Ok(Some(tls))
    }
}

/// The endpoints of comma-separated `urls`, each with `tls` applied.
pub fn endpoints(urls: &str, tls: &CoreClientTls) -> anyhow::Result<Vec<Endpoint>> {
    let tls = tls.client_config()?;
    crate::replicas::parse_urls(urls)?
        .into_iter()
        .map(|endpoint| match &tls {
            None => Ok(endpoint),
            Some(tls) => {
                anyhow::ensure!(
                    endpoint.uri().scheme_str() == Some("https"),
                    "PAYMENT_CORE_CA_FILE is set: `{}` must be an https:// URL",
                    endpoint.uri()
                );
                endpoint
                    .tls_config(tls.clone())
                    .context("TLS configuration")
            }
        })
        .collect()
}

/// Puts `authorization: Bearer <key>` on every call, and the calling span's
/// W3C trace context (so the core's span of the call joins its trace).
#[derive(Clone)]
pub struct ApiKey(MetadataValue<Ascii>);

impl ApiKey {
    pub fn new(key: &str) -> anyhow::Result<Self> {
        let mut value: MetadataValue<Ascii> = format!("Bearer {key}")
            .parse()
            .map_err(|_| anyhow::anyhow!("PAYMENT_CORE_API_KEY must be printable ASCII"))?;
        value.set_sensitive(true);
        Ok(Self(value))
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(..)")
    }
}

impl Interceptor for ApiKey {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        crate::telemetry::inject(request.metadata_mut());
        Ok(request)
    }
}

/// A channel whose calls carry an API key.
pub type KeyedChannel = InterceptedService<Channel, ApiKey>;
