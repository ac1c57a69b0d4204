//! The project's nginx at the edge over TLS: two gateways behind
//! `docker/nginx.conf` with its TLS listener, a certificate from a
//! throwaway CA, and curl (with nghttp2) as the browser. Its listener must
//! negotiate HTTP/2, since over HTTP/1.1 a browser holds one of its six
//! connections per origin for each event stream; an order's stream must
//! deliver its events over HTTP/2 as it does over HTTP/1.1; and the access
//! log must say which protocol a request came over.

use std::{net::SocketAddr, process::Stdio, time::Duration};

use payments_proto::payments::v1::PaymentOutcome;
use serde_json::Value;
use testkit::{eventually, nginx::Nginx, tls::TestPki};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::helpers::{BOUND, spawn_gateway, spawn_system};

/// Marks the line curl writes after a response's body (`-w`): its HTTP
/// version.
const VERSION_LINE: &str = "curl-http-version=";

/// curl over HTTP/2 (by ALPN, falling back to HTTP/1.1 if the server does
/// not offer it) to nginx's TLS listener at `tls`, trusting only `pki`'s CA
/// and checking the certificate's name: `localhost` is resolved to the
/// listener's loopback address. Killed when dropped: a failed test leaves
/// no curl behind.
fn curl(pki: &TestPki, tls: SocketAddr) -> Command {
    let mut curl = Command::new("curl");
    curl.args(["--http2", "--silent", "--show-error", "--fail"])
        .arg("--cacert")
        .arg(pki.ca())
        .arg("--resolve")
        .arg(format!("localhost:{}:{}", tls.port(), tls.ip()))
        .args(["--max-time", &BOUND.as_secs().to_string()])
        .args([
            "--write-out",
            &format!("\n{VERSION_LINE}%{{http_version}}\n"),
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    curl
}

fn url(tls: SocketAddr, path: &str) -> String {
    format!("https://localhost:{}{path}", tls.port())
}

/// curl's output, once it exited successfully: the body and the HTTP
/// version it spoke.
async fn run(mut curl: Command) -> (String, String) {
    let output = tokio::time::timeout(BOUND + Duration::from_secs(5), curl.output())
        .await
        .expect("curl finishes")
        .expect("curl runs (Debian package curl)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "curl failed ({}): {}{stdout}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let (body, version) = stdout
        .rsplit_once(VERSION_LINE)
        .expect("curl wrote the HTTP version");
    (body.to_owned(), version.trim().to_owned())
}

/// Reads `curl`'s output until a line equal to `wanted`; answers the lines
/// read. Fails the test if the stream ends or [`BOUND`] passes first.
async fn read_until(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    wanted: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    tokio::time::timeout(BOUND, async {
        while let Some(line) = lines.next_line().await.expect("curl's output") {
            let done = line.trim_end() == wanted;
            seen.push(line);
            if done {
                return;
            }
        }
        panic!("the stream ended before {wanted:?}: {seen:#?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {wanted:?} within {BOUND:?}"));
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_serves_event_streams_over_http2_with_tls() {
    let system = spawn_system().await;
    let second = spawn_gateway(system.core_port, |config| {
        config.instance = "test-gateway-2".into();
    })
    .await;
    let pki = TestPki::generate();
    let nginx = Nginx::start_with_tls([system.gateway.addr, second.addr], &[], &pki);
    let tls = nginx.tls_addr.expect("a TLS listener");

    // (a) The TLS listener offers HTTP/2 by ALPN, and a page loads over it.
    let mut page = curl(&pki, tls);
    page.arg(url(tls, "/"));
    let (_, version) = run(page).await;
    assert_eq!(
        version, "2",
        "nginx's TLS listener did not negotiate HTTP/2 (`http2` on its listen line)"
    );

    // (b) An order created over it, and its event stream over it: the
    // events already there, then one pushed live, then the stream ends.
    let mut create = curl(&pki, tls);
    create
        .args(["--header", "Content-Type: application/json"])
        .args([
            "--data",
            r#"{"amount_minor": 2500, "currency": "EUR", "description": "over HTTP/2"}"#,
        ])
        .arg(url(tls, "/api/orders"));
    let (body, version) = run(create).await;
    assert_eq!(version, "2");
    let created: Value = serde_json::from_str(&body).expect("JSON order");
    let order_id = created["order_id"].as_str().expect("order_id").to_owned();
    let secret = created["client_secret"].as_str().expect("client_secret");

    let events_path = format!("/api/orders/{order_id}/events");
    let mut stream = curl(&pki, tls);
    stream
        .arg("--no-buffer")
        .args(["--header", "Accept: text/event-stream"])
        .args(["--header", &format!("Authorization: Bearer {secret}")])
        .arg(url(tls, &events_path))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut stream: Child = stream.spawn().expect("curl runs");
    let mut lines = BufReader::new(stream.stdout.take().expect("curl's stdout")).lines();
    read_until(&mut lines, "event: created").await;

    system
        .report(&order_id, PaymentOutcome::Succeeded, "")
        .await;
    read_until(&mut lines, "event: succeeded").await;
    // After its final event the gateway ends the stream, and curl says
    // what it spoke.
    let rest = read_until(&mut lines, &format!("{VERSION_LINE}2")).await;
    let status = tokio::time::timeout(BOUND, stream.wait())
        .await
        .expect("curl exits once the stream ends")
        .expect("curl's status");
    assert!(status.success(), "curl: {status}, last lines {rest:#?}");

    // (c) The access log names the protocol (and, as ever, the path alone).
    let logged = format!("\"GET {events_path} HTTP/2.0\" 200");
    eventually("nginx logs the stream as HTTP/2.0", || async {
        nginx.access_log().contains(&logged).then_some(())
    })
    .await;
}
