//! The tool's sockets. It holds tens of thousands of connections, so each
//! is a bare `TcpStream` plus a few small buffers; the HTTP/1.1 and
//! event-stream framing is `service_kit::wire`'s, shared with the tests'
//! client.
//!
//! - [`connect`]: from a chosen loopback source address (one address has
//!   only ~28k ephemeral ports; a run spreads over several).
//! - [`KeepAlive`]: one request at a time on a kept-alive connection, for
//!   creating orders and publishing to nchan.
//! - [`exchange`], [`get_ok`]: one request and its whole response.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    os::fd::AsRawFd,
};

use anyhow::ensure;
use service_kit::wire::{self, BodyDecoder};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpSocket, TcpStream},
};

/// `IP_BIND_ADDRESS_NO_PORT` from linux/in.h: bind() picks no port; the
/// port is chosen at connect() time for the full 4-tuple, so one source
/// address is not limited to one connection per ephemeral port overall.
const IP_BIND_ADDRESS_NO_PORT: libc::c_int = 24;

/// The largest response body read whole (order creations, nchan publish
/// answers, the gateway's `/metrics`).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Neither std nor rustix wraps this option: a direct setsockopt.
#[allow(unsafe_code)]
fn bind_address_no_port(socket: &TcpSocket) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: a valid fd owned by `socket`, a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            IP_BIND_ADDRESS_NO_PORT,
            (&raw const one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Connects to `target`, from `source` (port chosen by the kernel at connect).
pub async fn connect(target: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(source) = source {
        bind_address_no_port(&socket)?;
        socket.bind(SocketAddr::new(source, 0))?;
    }
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A whole response.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// The server closes the connection after it.
    pub closes: bool,
}

/// Sends `request` (as `wire::encode_request` wrote it) and reads the whole
/// response; bytes read past it stay in `buf`.
pub async fn exchange(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    request: &[u8],
) -> anyhow::Result<Response> {
    stream.write_all(request).await?;
    let head = wire::read_head(stream, buf).await?;
    let mut framing = BodyDecoder::for_response(&head)?;
    let body = wire::read_body(stream, buf, &mut framing, MAX_BODY).await?;
    Ok(Response {
        status: head.status,
        body,
        // A body that ran to the close ended the connection with it.
        closes: head.closes_connection() || !framing.is_done(),
    })
}

/// One keep-alive HTTP/1.1 connection to a loopback server, opened on first
/// use and again after an error or a `Connection: close`.
pub struct KeepAlive {
    addr: SocketAddr,
    host: String,
    conn: Option<TcpStream>,
    buf: Vec<u8>,
}

impl KeepAlive {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            host: addr.to_string(),
            conn: None,
            buf: Vec::new(),
        }
    }

    /// POSTs a JSON `body` to `path`; answers the status and the body.
    pub async fn post_json(&mut self, path: &str, body: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let request = wire::encode_request(
            "POST",
            path,
            &[
                ("Host", &self.host),
                ("Content-Type", "application/json"),
                ("Accept", "*/*"),
            ],
            Some(body.as_bytes()),
        )?;
        if self.conn.is_none() {
            self.conn = Some(connect(self.addr, None).await?);
            self.buf.clear();
        }
        let stream = self.conn.as_mut().expect("just set");
        let response = exchange(stream, &mut self.buf, &request)
            .await
            .inspect_err(|_| self.conn = None)?;
        if response.closes {
            self.conn = None;
        }
        Ok((response.status, response.body))
    }
}

/// `GET path` on a new connection to `addr`; answers the body of a 200.
pub async fn get_ok(addr: SocketAddr, path: &str) -> anyhow::Result<Vec<u8>> {
    let request = wire::encode_request("GET", path, &[("Host", "loadgen")], None)?;
    let mut stream = TcpStream::connect(addr).await?;
    let response = exchange(&mut stream, &mut Vec::new(), &request).await?;
    ensure!(
        response.status == 200,
        "GET {path}: HTTP {}",
        response.status
    );
    Ok(response.body)
}
