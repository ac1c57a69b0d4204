//! A deliberately small HTTP/1.1 client: the load tool holds tens of
//! thousands of connections, so each one is a bare `TcpStream` plus a few
//! small buffers, not a full client stack.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    os::fd::AsRawFd,
};

use anyhow::{Context, bail};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

/// `IP_BIND_ADDRESS_NO_PORT` from linux/in.h: bind() picks no port; the
/// port is chosen at connect() time for the full 4-tuple, so one source
/// address is not limited to one connection per ephemeral port overall.
const IP_BIND_ADDRESS_NO_PORT: libc::c_int = 24;

fn bind_address_no_port(socket: &TcpSocket) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: a valid fd owned by `socket`, a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
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

/// A parsed response head.
pub struct Head {
    pub status: u16,
    pub chunked: bool,
    pub content_length: Option<usize>,
    pub close: bool,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads until the end of the response head; leftover body bytes stay in `buf`.
pub async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<Head> {
    let mut scratch = [0u8; 2048];
    let end = loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            break end;
        }
        if buf.len() > 16 * 1024 {
            bail!("response head larger than 16 KiB");
        }
        let n = stream.read(&mut scratch).await?;
        if n == 0 {
            bail!("connection closed before the response head");
        }
        buf.extend_from_slice(&scratch[..n]);
    };
    let text = std::str::from_utf8(&buf[..end]).context("non-UTF-8 response head")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut head = Head {
        status,
        chunked: false,
        content_length: None,
        close: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("connection") {
            head.close = value.eq_ignore_ascii_case("close");
        }
    }
    buf.drain(..end + 4);
    Ok(head)
}

/// Incremental decoder of a response body into plain bytes.
pub enum Body {
    Chunked { state: ChunkState, remaining: usize },
    Length(usize),
    UntilClose,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ChunkState {
    Size,
    Data,
    DataEnd,
    Done,
}

impl Body {
    pub fn for_head(head: &Head) -> Self {
        if head.chunked {
            Body::Chunked {
                state: ChunkState::Size,
                remaining: 0,
            }
        } else if let Some(length) = head.content_length {
            Body::Length(length)
        } else {
            Body::UntilClose
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(
            self,
            Body::Chunked {
                state: ChunkState::Done,
                ..
            } | Body::Length(0)
        )
    }

    /// Moves decoded bytes from `raw` to `out`; leaves incomplete framing in `raw`.
    pub fn decode(&mut self, raw: &mut Vec<u8>, out: &mut Vec<u8>) -> anyhow::Result<()> {
        match self {
            Body::UntilClose => {
                out.append(raw);
            }
            Body::Length(left) => {
                let take = (*left).min(raw.len());
                out.extend_from_slice(&raw[..take]);
                raw.drain(..take);
                *left -= take;
            }
            Body::Chunked { state, remaining } => {
                let mut pos = 0;
                loop {
                    match *state {
                        ChunkState::Done => break,
                        ChunkState::Size => {
                            let Some(end) = find(&raw[pos..], b"\r\n") else {
                                break;
                            };
                            let line = std::str::from_utf8(&raw[pos..pos + end])?;
                            let hex = line.split(';').next().unwrap_or("").trim();
                            let size = usize::from_str_radix(hex, 16)
                                .with_context(|| format!("bad chunk size {line:?}"))?;
                            pos += end + 2;
                            if size == 0 {
                                *state = ChunkState::Done;
                            } else {
                                *remaining = size;
                                *state = ChunkState::Data;
                            }
                        }
                        ChunkState::Data => {
                            let take = (*remaining).min(raw.len() - pos);
                            if take == 0 {
                                break;
                            }
                            out.extend_from_slice(&raw[pos..pos + take]);
                            pos += take;
                            *remaining -= take;
                            if *remaining == 0 {
                                *state = ChunkState::DataEnd;
                            }
                        }
                        ChunkState::DataEnd => {
                            if raw.len() - pos < 2 {
                                break;
                            }
                            pos += 2;
                            *state = ChunkState::Size;
                        }
                    }
                }
                raw.drain(..pos);
            }
        }
        Ok(())
    }
}

/// One request on a keep-alive connection; returns the status and body.
pub async fn request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    method: &str,
    host: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> anyhow::Result<(u16, Vec<u8>, bool)> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nAccept: */*\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    stream.write_all(&req).await?;
    let head = read_head(stream, buf).await?;
    let mut decoder = Body::for_head(&head);
    if matches!(decoder, Body::UntilClose) && (head.status == 204 || head.status == 304) {
        decoder = Body::Length(0);
    }
    let mut out = Vec::new();
    let mut scratch = [0u8; 4096];
    loop {
        decoder.decode(buf, &mut out)?;
        if decoder.is_done() {
            break;
        }
        let n = stream.read(&mut scratch).await?;
        if n == 0 {
            if matches!(decoder, Body::UntilClose) {
                return Ok((head.status, out, true));
            }
            bail!("connection closed mid-body");
        }
        buf.extend_from_slice(&scratch[..n]);
    }
    Ok((head.status, out, head.close))
}

/// One event of a `text/event-stream`.
#[derive(Debug, Default, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// The WHATWG event-stream parser, reduced to what the tool needs.
#[derive(Default)]
pub struct SseParser {
    line: Vec<u8>,
    id: Option<String>,
    event: String,
    data: String,
    has_data: bool,
    /// Last `id:` seen, like EventSource's last event ID.
    pub last_id: Option<String>,
}

impl SseParser {
    pub fn feed(&mut self, bytes: &[u8], events: &mut Vec<SseEvent>) {
        for &byte in bytes {
            if byte == b'\n' {
                if self.line.last() == Some(&b'\r') {
                    self.line.pop();
                }
                let line = std::mem::take(&mut self.line);
                self.line_done(&line, events);
                self.line = line;
                self.line.clear();
            } else {
                self.line.push(byte);
            }
        }
    }

    fn line_done(&mut self, line: &[u8], events: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if let Some(id) = self.id.take() {
                self.last_id = Some(id.clone());
                self.id = Some(id);
            }
            if self.has_data {
                events.push(SseEvent {
                    id: self.id.take(),
                    event: std::mem::take(&mut self.event),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.id = None;
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "id" => self.id = Some(value.to_owned()),
            "event" => self.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode_across_splits() {
        let mut body = Body::Chunked {
            state: ChunkState::Size,
            remaining: 0,
        };
        let wire = b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n";
        let mut out = Vec::new();
        let mut raw = Vec::new();
        for byte in wire {
            raw.push(*byte);
            body.decode(&mut raw, &mut out).unwrap();
        }
        assert_eq!(out, b"hello world");
        assert!(body.is_done());
    }

    #[test]
    fn sse_frames_parse_with_ids_and_comments() {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        parser.feed(
            b"retry: 2000\n\n: hb\n\nid: 7\nevent: created\ndata: {\"a\":1}\n\nid: 9\r\nevent: succ",
            &mut events,
        );
        assert_eq!(events.len(), 1);
        parser.feed(b"eeded\r\ndata: x\r\ndata: y\r\n\r\n", &mut events);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].id.as_deref(), Some("7"));
        assert_eq!(events[0].event, "created");
        assert_eq!(events[1].event, "succeeded");
        assert_eq!(events[1].data, "x\ny");
        assert_eq!(parser.last_id.as_deref(), Some("9"));
    }
}
