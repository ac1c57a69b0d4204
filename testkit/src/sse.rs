//! A minimal `text/event-stream` client over a raw TCP socket.
//!
//! It speaks HTTP/1.1 by hand ([`service_kit::wire`]) so tests see exactly
//! what went over the wire: the status line, the headers, comments
//! (heartbeats), `retry:`, and every field of every frame, including
//! frames a browser would not dispatch. The transfer framing (chunked, a
//! length, or until close) is undone; nothing else is interpreted.

use std::{collections::HashMap, io, net::SocketAddr, time::Duration};

use service_kit::wire::{self, BodyDecoder, sse};
use tokio::{io::AsyncWriteExt, net::TcpStream};

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

    fn from_wire(frame: &sse::Frame) -> Self {
        Self {
            id: frame.id().map(str::to_owned),
            event: frame.event().map(str::to_owned),
            data: frame.data().map(str::to_owned),
            retry: frame.retry(),
            comments: frame
                .comments()
                .map(|comment| comment.trim_start().to_owned())
                .collect(),
            data_lines: frame.data_lines(),
        }
    }
}

pub struct SseConnection {
    pub status: u16,
    /// Names in lower case; of a repeated header, the last value.
    pub headers: HashMap<String, String>,
    stream: TcpStream,
    /// Bytes read whose transfer framing is not undone yet.
    raw: Vec<u8>,
    framing: BodyDecoder,
    /// Body bytes not yet parsed into frames.
    body: Vec<u8>,
    parser: sse::Parser,
    /// The server closed the connection.
    closed: bool,
}

impl SseConnection {
    /// `GET path` with `extra_headers` on a new connection; reads the status
    /// line and headers.
    pub async fn open(
        addr: SocketAddr,
        path: &str,
        extra_headers: &[(&str, &str)],
    ) -> io::Result<Self> {
        Self::open_on(TcpStream::connect(addr).await?, addr, path, extra_headers).await
    }

    /// [`SseConnection::open`] on a connection that already served other
    /// requests (kept alive), whose responses the caller has read in full.
    pub async fn open_on(
        mut stream: TcpStream,
        addr: SocketAddr,
        path: &str,
        extra_headers: &[(&str, &str)],
    ) -> io::Result<Self> {
        let host = addr.to_string();
        let mut headers = vec![("Host", host.as_str()), ("Accept", "text/event-stream")];
        headers.extend_from_slice(extra_headers);
        let request = wire::encode_request("GET", path, &headers, None)?;
        stream.write_all(&request).await?;
        let mut raw = Vec::new();
        let head = wire::read_head(&mut stream, &mut raw).await?;
        Ok(Self {
            status: head.status,
            framing: BodyDecoder::for_response(&head)?,
            headers: head.headers.into_iter().collect(),
            stream,
            raw,
            body: Vec::new(),
            parser: sse::Parser::default(),
            closed: false,
        })
    }

    /// Reads the rest of a non-streaming body (for error responses), each
    /// read within five seconds; what came before a timeout otherwise.
    pub async fn read_body(&mut self) -> String {
        loop {
            if self
                .framing
                .decode_into(&mut self.raw, &mut self.body)
                .is_err()
            {
                break;
            }
            if self.body_ended() || self.read_more(Duration::from_secs(5)).await.is_err() {
                break;
            }
        }
        String::from_utf8_lossy(&std::mem::take(&mut self.body)).into_owned()
    }

    /// Whether no more body bytes can come.
    fn body_ended(&self) -> bool {
        self.closed || self.framing.is_done()
    }

    /// One more read from the socket, within `bound`.
    async fn read_more(&mut self, bound: Duration) -> io::Result<()> {
        let read = tokio::time::timeout(bound, wire::read_some(&mut self.stream, &mut self.raw))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no SSE data in time"))??;
        self.closed = read == 0;
        Ok(())
    }

    /// The next frame already read, if one is complete.
    fn buffered_frame(&mut self) -> io::Result<Option<Frame>> {
        self.framing.decode_into(&mut self.raw, &mut self.body)?;
        let mut unparsed = self.body.as_slice();
        let frame = self.parser.next_frame(&mut unparsed).map(Frame::from_wire);
        let parsed = self.body.len() - unparsed.len();
        self.body.drain(..parsed);
        Ok(frame)
    }

    /// The next frame (up to a blank line), `Ok(None)` when the stream
    /// ended; a frame the end cut short comes first. Each read must come
    /// within `bound`.
    pub async fn next_frame(&mut self, bound: Duration) -> io::Result<Option<Frame>> {
        loop {
            if let Some(frame) = self.buffered_frame()? {
                return Ok(Some(frame));
            }
            if self.body_ended() {
                return Ok(self.parser.end().map(Frame::from_wire));
            }
            self.read_more(bound).await?;
        }
    }

    /// The next frame that is an event (skipping comments, bare retry and
    /// heartbeats).
    pub async fn next_event(&mut self, bound: Duration) -> io::Result<Option<Frame>> {
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
    pub async fn events_until_end(&mut self, bound: Duration) -> io::Result<Vec<Frame>> {
        let mut events = Vec::new();
        while let Some(frame) = self.next_event(bound).await? {
            events.push(frame);
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    /// Serves one chunked event stream whose chunks cut a frame, a comment
    /// and a CRLF in two; answers the request it read.
    async fn serve_chunked(listener: TcpListener, chunks: &[&'static [u8]]) -> String {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        while !request.ends_with(b"\r\n\r\n") {
            request.push(socket.read_u8().await.unwrap());
        }
        socket
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        for chunk in chunks {
            let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
            socket.write_all(&framed).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        socket.write_all(b"0\r\n\r\n").await.unwrap();
        String::from_utf8(request).unwrap()
    }

    #[tokio::test]
    async fn every_field_of_every_frame_comes_through_whatever_the_chunks_cut() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let chunks: &[&[u8]] = &[
            b"retry: 2000\r\n\r\n: hb",
            b"\n\nid: 1\nevent: created\ndata: a\r",
            b"\ndata: b\n\nevent: cut short\n",
        ];
        let server = tokio::spawn(serve_chunked(listener, chunks));
        let mut stream = SseConnection::open(addr, "/events", &[("Last-Event-ID", "0")])
            .await
            .unwrap();
        assert_eq!(stream.status, 200);
        assert_eq!(stream.headers["transfer-encoding"], "chunked");
        let mut frames = Vec::new();
        while let Some(frame) = stream.next_frame(Duration::from_secs(5)).await.unwrap() {
            frames.push(frame);
        }
        let expected = [
            Frame {
                retry: Some(2000),
                ..Frame::default()
            },
            Frame {
                comments: vec!["hb".into()],
                ..Frame::default()
            },
            Frame {
                id: Some("1".into()),
                event: Some("created".into()),
                data: Some("a\nb".into()),
                data_lines: 2,
                ..Frame::default()
            },
            Frame {
                event: Some("cut short".into()),
                ..Frame::default()
            },
        ];
        assert_eq!(frames, expected);
        let request = server.await.unwrap();
        assert!(request.starts_with("GET /events HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("\r\nLast-Event-ID: 0\r\n"), "{request}");
    }
}
