//! A minimal `text/event-stream` client over a raw TCP socket.
//!
//! It speaks HTTP/1.1 by hand so tests see exactly what went over the wire:
//! the status line, the headers, comments (heartbeats), `retry:`, and every
//! field of every event. Chunked transfer encoding is decoded; nothing else
//! is interpreted.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// One thing the server sent: an event, a comment, or a bare `retry:`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    /// `data:` lines joined with `\n`, as the WHATWG parser does.
    pub data: Option<String>,
    pub retry: Option<u64>,
    pub comments: Vec<String>,
    /// Number of `data:` lines the frame had.
    pub data_lines: usize,
}

impl Frame {
    /// Whether this is the gateway's heartbeat event.
    pub fn is_heartbeat(&self) -> bool {
        self.event.as_deref() == Some(payments_proto::contract::HEARTBEAT_EVENT)
    }

    /// The interval a heartbeat announces.
    pub fn heartbeat_interval(&self) -> Option<Duration> {
        let data = self.data.as_deref()?.strip_prefix("{\"interval_ms\":")?;
        let millis = data.strip_suffix('}')?.parse().ok()?;
        self.is_heartbeat().then(|| Duration::from_millis(millis))
    }
}

pub struct SseConnection {
    pub status: u16,
    pub headers: HashMap<String, String>,
    reader: BufReader<TcpStream>,
    chunked: bool,
    /// Decoded body bytes not yet split into lines.
    body: Vec<u8>,
    finished: bool,
}

impl SseConnection {
    /// `GET path` with `extra_headers` on a new connection; reads the status
    /// line and headers.
    pub async fn open(
        addr: SocketAddr,
        path: &str,
        extra_headers: &[(&str, &str)],
    ) -> std::io::Result<Self> {
        Self::open_on(TcpStream::connect(addr).await?, addr, path, extra_headers).await
    }

    /// [`SseConnection::open`] on a connection that already served other
    /// requests (kept alive), whose responses the caller has read in full.
    pub async fn open_on(
        mut stream: TcpStream,
        addr: SocketAddr,
        path: &str,
        extra_headers: &[(&str, &str)],
    ) -> std::io::Result<Self> {
        let mut request =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        for (name, value) in extra_headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).await?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let chunked = headers
            .get("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"));
        let finished = headers.get("content-length").is_some_and(|v| v == "0") || status == 204;
        Ok(Self {
            status,
            headers,
            reader,
            chunked,
            body: Vec::new(),
            finished,
        })
    }

    /// Reads the rest of a non-streaming body (for error responses).
    pub async fn read_body(&mut self) -> String {
        if let Some(length) = self
            .headers
            .get("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            let mut body = vec![0; length];
            let read =
                tokio::time::timeout(Duration::from_secs(5), self.reader.read_exact(&mut body))
                    .await;
            self.finished = true;
            return match read {
                Ok(Ok(_)) => String::from_utf8_lossy(&body).into_owned(),
                _ => String::new(),
            };
        }
        let mut text = String::new();
        while let Ok(Some(line)) = self.next_line(Duration::from_secs(5)).await {
            text.push_str(&line);
            text.push('\n');
        }
        text
    }

    async fn fill(&mut self) -> std::io::Result<bool> {
        if self.finished {
            return Ok(false);
        }
        if self.chunked {
            let mut size_line = String::new();
            if self.reader.read_line(&mut size_line).await? == 0 {
                self.finished = true;
                return Ok(false);
            }
            let size = usize::from_str_radix(size_line.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            self.reader.read_exact(&mut chunk).await?;
            chunk.truncate(size);
            if size == 0 {
                self.finished = true;
                return Ok(false);
            }
            self.body.extend_from_slice(&chunk);
        } else {
            let mut buf = [0u8; 4096];
            let read = self.reader.read(&mut buf).await?;
            if read == 0 {
                self.finished = true;
                return Ok(false);
            }
            self.body.extend_from_slice(&buf[..read]);
        }
        Ok(true)
    }

    /// The next body line, `Ok(None)` at the end of the body.
    async fn next_line(&mut self, bound: Duration) -> std::io::Result<Option<String>> {
        loop {
            if let Some(position) = self.body.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.body.drain(..=position).collect();
                let line = String::from_utf8_lossy(&line[..line.len() - 1])
                    .trim_end_matches('\r')
                    .to_owned();
                return Ok(Some(line));
            }
            let more = tokio::time::timeout(bound, self.fill())
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "no SSE data in time")
                })??;
            if !more {
                return Ok(None);
            }
        }
    }

    /// The next frame (up to a blank line), `Ok(None)` when the stream ended.
    pub async fn next_frame(&mut self, bound: Duration) -> std::io::Result<Option<Frame>> {
        let mut frame = Frame::default();
        let mut any = false;
        loop {
            let Some(line) = self.next_line(bound).await? else {
                return Ok(any.then_some(frame));
            };
            if line.is_empty() {
                if any {
                    return Ok(Some(frame));
                }
                continue;
            }
            any = true;
            if let Some(comment) = line.strip_prefix(':') {
                frame.comments.push(comment.trim_start().to_owned());
                continue;
            }
            let (field, value) = line.split_once(':').map_or((line.as_str(), ""), |(f, v)| {
                (f, v.strip_prefix(' ').unwrap_or(v))
            });
            match field {
                "id" => frame.id = Some(value.to_owned()),
                "event" => frame.event = Some(value.to_owned()),
                "retry" => frame.retry = value.parse().ok(),
                "data" => {
                    frame.data_lines += 1;
                    frame.data = Some(match frame.data.take() {
                        Some(previous) => format!("{previous}\n{value}"),
                        None => value.to_owned(),
                    });
                }
                _ => {}
            }
        }
    }

    /// The next frame that is an event (skipping comments, bare retry and
    /// heartbeats).
    pub async fn next_event(&mut self, bound: Duration) -> std::io::Result<Option<Frame>> {
        loop {
            match self.next_frame(bound).await? {
                Some(frame) if frame.is_heartbeat() => continue,
                Some(frame) if frame.data.is_some() || frame.event.is_some() => {
                    return Ok(Some(frame));
                }
                Some(_) => continue,
                None => return Ok(None),
            }
        }
    }

    /// The next event, which must arrive within ten seconds.
    pub async fn expect_event(&mut self) -> Frame {
        match self.next_event(Duration::from_secs(10)).await {
            Ok(Some(frame)) => frame,
            Ok(None) => panic!("the stream ended before the expected event"),
            Err(error) => panic!("no event: {error}"),
        }
    }

    /// The name (`event:` field) of the next event.
    pub async fn expect_event_name(&mut self) -> String {
        self.expect_event().await.event.unwrap_or_default()
    }

    /// Events until the stream ends, each within `bound` of the previous one.
    pub async fn events_until_end(&mut self, bound: Duration) -> std::io::Result<Vec<Frame>> {
        let mut events = Vec::new();
        while let Some(frame) = self.next_event(bound).await? {
            events.push(frame);
        }
        Ok(events)
    }
}
