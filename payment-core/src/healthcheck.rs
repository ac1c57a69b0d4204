//! `payment-core healthcheck`: asks the local gRPC health service whether
//! the server is SERVING. For container HEALTHCHECKs, which have no curl.
//! Over TLS when the server has a certificate: the client side then needs
//! `PAYMENT_CORE_CA_FILE` (and `PAYMENT_CORE_TLS_DOMAIN` unless the
//! certificate names 127.0.0.1), plus a client certificate under mutual TLS.

use std::time::Duration;

use anyhow::Context;
use service_kit::core_client;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::Config;

/// Bound on the whole check. tonic's connect timeout covers the TCP connect
/// only: a server that accepts but never finishes the TLS handshake (frozen,
/// overloaded) would otherwise hold the check forever.
/// Above the connect and call timeouts' sum (2 s each), under compose's 5 s.
const CHECK_TIMEOUT: Duration = Duration::from_millis(4_500);

pub async fn check(config: &Config) -> anyhow::Result<()> {
    tokio::time::timeout(CHECK_TIMEOUT, check_unbounded(config))
        .await
        .context("health check timed out")?
}

async fn check_unbounded(config: &Config) -> anyhow::Result<()> {
    let scheme = if config.tls_cert_file.is_some() {
        "https"
    } else {
        "http"
    };
    let target = format!("{scheme}://127.0.0.1:{}", config.listen.port());
    let [endpoint] = <[_; 1]>::try_from(core_client::endpoints(&target, &config.healthcheck_tls)?)
        .map_err(|_| anyhow::anyhow!("one endpoint"))?;
    let channel = endpoint
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .with_context(|| format!("connecting to {target}"))?;
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .context("health check call")?
        .into_inner()
        .status();
    anyhow::ensure!(
        status == ServingStatus::Serving,
        "payment-core is {status:?}"
    );
    Ok(())
}
