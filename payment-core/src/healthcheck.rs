//! `payment-core healthcheck`: asks the local gRPC health service whether
//! the server is SERVING. For container HEALTHCHECKs, which have no curl.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

pub async fn check(listen: SocketAddr) -> anyhow::Result<()> {
    let target = format!("http://127.0.0.1:{}", listen.port());
    let channel = tonic::transport::Endpoint::from_shared(target.clone())?
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
