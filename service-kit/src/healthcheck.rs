//! The `healthcheck` subcommand of the HTTP services: GET a path on the
//! local port and exit 0 on 200, for container HEALTHCHECKs (no curl in
//! the image). A request and a response head over a socket ([`wire`]) is
//! all it takes.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use tokio::{io::AsyncWriteExt, net::TcpStream};

use crate::wire;

/// Succeeds if `GET path` on the local port of `listen` answers 200.
pub async fn http_ok(listen: SocketAddr, path: &str) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], listen.port()));
    let request = wire::encode_request(
        "GET",
        path,
        &[("Host", "localhost"), ("Connection", "close")],
        None,
    )?;
    let head = tokio::time::timeout(Duration::from_secs(3), async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(&request).await?;
        anyhow::Ok(wire::read_head(&mut stream, &mut Vec::new()).await?)
    })
    .await
    .context("health check timed out")?
    .with_context(|| format!("GET {path} on {addr}"))?;
    anyhow::ensure!(
        head.status == 200,
        "{path} answered `{}`",
        head.status_line()
    );
    Ok(())
}
