//! The `healthcheck` subcommand of the HTTP services: GET a path on the
//! local port and exit 0 on 200, for container HEALTHCHECKs (no curl in
//! the image). A plain HTTP/1.0 request over a
//! socket is all it takes.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Succeeds if `GET path` on the local port of `listen` answers 200.
pub async fn http_ok(listen: SocketAddr, path: &str) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], listen.port()));
    let status_line = tokio::time::timeout(Duration::from_secs(3), async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await?;
        let mut head = vec![0; 64];
        let read = stream.read(&mut head).await?;
        anyhow::Ok(
            String::from_utf8_lossy(&head[..read])
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        )
    })
    .await
    .context("health check timed out")?
    .with_context(|| format!("GET {path} on {addr}"))?;
    anyhow::ensure!(
        status_line.split_whitespace().nth(1) == Some("200"),
        "{path} answered `{status_line}`"
    );
    Ok(())
}
