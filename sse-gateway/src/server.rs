//! The HTTP/1.1 server: accepts connections and serves each with the router.
//!
//! Most of what one gateway holds is idle SSE connections, so what each one
//! costs decides how many fit (BENCHMARKS.md). hyper keeps two 8 KiB buffers
//! per connection for its whole life, more than the rest of an idle stream
//! together. So each connection's first request head is read here:
//! - a `GET` for an event stream (the paths [`routes::is_event_stream_path`]
//!   names) is answered through the same router, and the response is written
//!   straight to the socket: status line, headers, then the body's frames as
//!   they come, delimited by closing the connection. Idle, such a connection
//!   is the socket, this task and the stream's own state;
//! - anything else goes to hyper with the bytes already read put back in
//!   front, and hyper serves it and the rest of the connection, event
//!   streams requested later on a kept-alive connection included.
//!
//! Both paths call the same router, so handlers, status codes, application
//! headers and error bodies are the same whichever serves a request; only
//! the framing differs (`connection: close` here, chunked from hyper). An
//! event-stream connection serves one request: anything a client pipelines
//! after it is read and dropped, and the connection closes when the stream
//! ends (EventSource never pipelines).
//!
//! Why not `axum::serve`: it detects HTTP/1 or HTTP/2 per connection and
//! rebuilds the router's state per connection. Browsers speak HTTP/2 only
//! over TLS, which the proxy in front terminates, so HTTP/1.1 is all the
//! gateway needs.
//!
//! Shutdown: the accept loop stops when the token fires; event streams end
//! on the same token (see `sse`), and so does a write stuck on a client that
//! stopped reading; hyper connections finish their request and close.
//! [`serve`] returns when every connection task has ended; the caller bounds
//! that wait.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, HttpBody},
    http::{HeaderName, HeaderValue, Method, Request, Version, header},
};
use bytes::{Buf, Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

use crate::routes;

/// How long a client may take to send its request head (slowloris bound).
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Request heads up to this size are looked at here; larger ones (big
/// cookies, say) go to hyper, which serves or refuses them by its own rules.
const MAX_HEAD: usize = 8 * 1024;
/// First allocation for reading a head: a browser's is 0.5–2 KiB. Freed once
/// the head is parsed.
const HEAD_BUFFER: usize = 1024;
/// Most header lines parsed here; more go to hyper.
const MAX_HEADERS: usize = 48;
/// Most bytes of ready frames gathered into one write: a resuming dashboard's
/// backlog goes out in writes of about this size, not in one huge buffer.
const COALESCE_LIMIT: usize = 16 * 1024;

/// A write that cannot complete this long means the client stopped reading
/// and its socket buffer is full: the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes a client may send after an event-stream request (it has no reason
/// to send any) before the connection is closed.
const MAX_IGNORED_INPUT: usize = 64 * 1024;

/// Serves `app` on `listener` until `shutdown` fires, then waits for the
/// connections to finish (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let hyper_connections = GracefulShutdown::new();
    let tasks = TaskTracker::new();
    loop {
        let (stream, _peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before
                    // accept: pause instead of spinning, then go on.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        tasks.spawn(serve_connection(
            stream,
            app.clone(),
            hyper_connections.watcher(),
            shutdown.clone(),
        ));
    }
    drop(listener);
    tasks.close();
    tokio::join!(hyper_connections.shutdown(), tasks.wait());
    Ok(())
}

async fn serve_connection(
    mut stream: TcpStream,
    app: Router,
    hyper_connections: Watcher,
    shutdown: CancellationToken,
) {
    let head = tokio::select! {
        () = shutdown.cancelled() => return,
        head = Box::pin(tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream))) => match head {
            Ok(Ok(head)) => head,
            // Timed out, closed before a whole head, or a socket error.
            Ok(Err(_)) | Err(_) => return,
        },
    };
    // This task lives as long as the connection, and a task's size is that
    // of its largest state: the router's answer and the hyper connection
    // run boxed, so that an idle event stream keeps only its write loop.
    let answered = Box::pin(answer_event_stream(&app, &head)).await;
    match answered {
        Some((response_head, body)) => {
            // Nothing below needs them, and every idle stream would keep them.
            drop((head, app, hyper_connections));
            write_response(stream, response_head, body, &shutdown).await;
        }
        None => {
            Box::pin(serve_with_hyper(
                Rewind::new(head.freeze(), stream),
                app,
                hyper_connections,
            ))
            .await;
        }
    }
}

/// The response's head and body when `request_head` is an event-stream
/// request (see [`event_stream_request`]), answered by the router.
async fn answer_event_stream(app: &Router, request_head: &[u8]) -> Option<(BytesMut, Body)> {
    let request = event_stream_request(request_head)?;
    let Ok(response) = app.clone().oneshot(request).await;
    let (parts, body) = response.into_parts();
    Some((response_head(&parts, body.size_hint().exact()), body))
}

/// Reads until the buffer holds a whole request head, or [`MAX_HEAD`] bytes,
/// or something that is not HTTP; hyper judges the last two. Fails if the
/// client closes before sending anything useful.
async fn read_head(stream: &mut TcpStream) -> io::Result<BytesMut> {
    let mut buffer = BytesMut::with_capacity(HEAD_BUFFER);
    loop {
        if stream.read_buf(&mut buffer).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let parsed = httparse::Request::new(&mut headers).parse(&buffer);
        if !matches!(parsed, Ok(httparse::Status::Partial)) || buffer.len() >= MAX_HEAD {
            return Ok(buffer);
        }
        if buffer.capacity() == buffer.len() {
            buffer.reserve(buffer.len());
        }
    }
}

/// The request, if `head` is exactly one plain `GET` of an event stream:
/// a whole head, no body, nothing pipelined after it, nothing unusual.
/// Everything else is hyper's to serve. `pub` only for the fuzz targets
/// (`crate::fuzzing`); the module stays private.
pub fn event_stream_request(head: &[u8]) -> Option<Request<Body>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(length) = parsed.parse(head).ok()? else {
        return None;
    };
    if length != head.len() || parsed.method? != "GET" {
        return None;
    }
    let target = parsed.path?;
    if !routes::is_event_stream_path(target.split('?').next().unwrap_or(target)) {
        return None;
    }
    let version = match parsed.version? {
        0 => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(target)
        .version(version);
    // hyper keeps one of several equal Content-Length fields; a second one
    // goes to hyper so that both paths see the same headers.
    let mut content_length_seen = false;
    for field in parsed.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).ok()?;
        if name == header::CONTENT_LENGTH {
            if content_length_seen || field.value != b"0" {
                return None;
            }
            content_length_seen = true;
        }
        if name == header::TRANSFER_ENCODING || name == header::UPGRADE {
            return None;
        }
        request = request.header(name, HeaderValue::from_bytes(field.value).ok()?);
    }
    request.body(Body::empty()).ok()
}

/// Writes a response straight to the socket: `head`, then the body's frames
/// as they come, then closes the connection, which ends the body. Stops
/// early when the client goes away.
async fn write_response(
    mut stream: TcpStream,
    mut head: BytesMut,
    body: Body,
    shutdown: &CancellationToken,
) {
    let (mut reader, mut writer) = stream.split();
    let mut frames = body.into_data_stream();
    let mut ignored_input = 0;
    let mut ended = false;
    while !ended {
        let frame = tokio::select! {
            frame = frames.next() => frame,
            () = peer_closed(&mut reader, &mut ignored_input) => return,
        };
        let Some(Ok(frame)) = frame else {
            break;
        };
        // Whatever else is ready goes out in the same write, after the head
        // (if not sent yet): a stream's opening (retry, heartbeat, history)
        // is one segment rather than one per frame. A lone live event is
        // written as it is, without a copy.
        let mut coalesced = std::mem::take(&mut head);
        let mut first = Some(frame);
        while coalesced.len() < COALESCE_LIMIT {
            match frames.next().now_or_never() {
                Some(Some(Ok(more))) => {
                    if let Some(first) = first.take() {
                        coalesced.extend_from_slice(&first);
                    }
                    coalesced.extend_from_slice(&more);
                }
                Some(_) => {
                    ended = true;
                    break;
                }
                None => break,
            }
        }
        let written = match first {
            Some(frame) if coalesced.is_empty() => {
                write_bounded(&mut writer, &frame, shutdown).await
            }
            Some(frame) => {
                coalesced.extend_from_slice(&frame);
                write_bounded(&mut writer, &coalesced, shutdown).await
            }
            None => write_bounded(&mut writer, &coalesced, shutdown).await,
        };
        if !written {
            return;
        }
    }
    if !head.is_empty() {
        write_bounded(&mut writer, &head, shutdown).await;
    }
    // Closing the connection ends the response (it has no length). A TCP
    // shutdown only queues the FIN: it does not wait for the client.
    let _ = writer.shutdown().await;
}

/// Writes `bytes` within [`WRITE_TIMEOUT`]; false if the connection failed,
/// the client stopped reading, or the gateway is shutting down (the client
/// resumes from its last event elsewhere). Boxed, so that the timer lives
/// only while a write is under way, not in every idle connection's task.
async fn write_bounded(
    writer: &mut tokio::net::tcp::WriteHalf<'_>,
    bytes: &[u8],
    shutdown: &CancellationToken,
) -> bool {
    Box::pin(async {
        tokio::select! {
            // The write first: a frame the socket takes at once still goes
            // out during shutdown (a stream's last `retry:`); only one that
            // would wait is cut short.
            biased;
            written = tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(bytes)) => {
                matches!(written, Ok(Ok(())))
            }
            () = shutdown.cancelled() => false,
        }
    })
    .await
}

/// The status line and headers of a response whose body ends when the
/// connection closes.
fn response_head(parts: &axum::http::response::Parts, exact_length: Option<u64>) -> BytesMut {
    let mut head = BytesMut::with_capacity(256);
    let reason = parts.status.canonical_reason().unwrap_or("");
    head.extend_from_slice(format!("HTTP/1.1 {} {reason}\r\n", parts.status.as_u16()).as_bytes());
    if !parts.headers.contains_key(header::DATE) {
        head.extend_from_slice(b"date: ");
        head.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    for (name, value) in &parts.headers {
        if name == header::CONNECTION || name == header::TRANSFER_ENCODING {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    let has_body = !(parts.status.is_informational()
        || parts.status == axum::http::StatusCode::NO_CONTENT
        || parts.status == axum::http::StatusCode::NOT_MODIFIED);
    if let (true, Some(length), false) = (
        has_body,
        exact_length,
        parts.headers.contains_key(header::CONTENT_LENGTH),
    ) {
        head.extend_from_slice(format!("content-length: {length}\r\n").as_bytes());
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    head
}

/// Resolves when the client closes the connection (or it fails). A client
/// has nothing to send on an event stream; what it sends anyway is read
/// into a small stack buffer and dropped, and `ignored` counts it over the
/// connection's life, up to [`MAX_IGNORED_INPUT`].
async fn peer_closed(reader: &mut tokio::net::tcp::ReadHalf<'_>, ignored: &mut usize) {
    let mut probe = [0u8; 64];
    while let Ok(read) = reader.read(&mut probe).await {
        *ignored += read;
        if read == 0 || *ignored > MAX_IGNORED_INPUT {
            return;
        }
    }
}

async fn serve_with_hyper(io: Rewind, app: Router, hyper_connections: Watcher) {
    let service = hyper_util::service::TowerToHyperService::new(app);
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    if let Err(error) = hyper_connections.watch(connection).await {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// A connection with bytes already read from it put back in front, so hyper
/// reads the request head this module looked at.
struct Rewind {
    prefix: Bytes,
    stream: TcpStream,
}

impl Rewind {
    fn new(prefix: Bytes, stream: TcpStream) -> Self {
        Self { prefix, stream }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if !self.prefix.has_remaining() {
                // Frees the read buffer now, not when the connection ends.
                self.prefix = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Response;

    use super::*;

    #[test]
    fn only_plain_gets_of_event_streams_are_served_here() {
        let served = |head: &str| event_stream_request(head.as_bytes()).is_some();
        assert!(served(
            "GET /api/orders/3f2a-b1/events?client_secret=x HTTP/1.1\r\nHost: a\r\nLast-Event-ID: 4\r\n\r\n"
        ));
        assert!(served("GET /api/events?token=t HTTP/1.0\r\n\r\n"));
        assert!(
            !served("GET /api/orders/3f2a HTTP/1.1\r\n\r\n"),
            "not a stream"
        );
        assert!(
            !served("POST /api/events HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            "not a GET"
        );
        assert!(
            !served("GET /api/orders/a%2Fb/events HTTP/1.1\r\n\r\n"),
            "needs decoding"
        );
        assert!(
            !served("GET /api/events HTTP/1.1\r\nContent-Length: 3\r\n\r\n"),
            "announces a body"
        );
        assert!(
            !served("GET /api/events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            "chunked body"
        );
        assert!(
            !served("GET /api/events HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"),
            "upgrade"
        );
        assert!(
            served("GET /api/events HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            "an empty body is no body"
        );
        assert!(
            !served("GET /api/events HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n"),
            "hyper folds repeated lengths into one"
        );
        assert!(
            !served("GET /api/events HTTP/1.1\r\n\r\nabc"),
            "bytes after the head"
        );
        assert!(
            !served("GET /api/events HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n"),
            "pipelined"
        );
        assert!(
            !served("GET /api/events HTTP/1.1\r\nHost: a\r\n"),
            "partial head"
        );
        assert!(!served("GARBAGE\r\n\r\n"), "not HTTP");
    }

    #[tokio::test]
    async fn hyper_reads_the_bytes_already_read_first_then_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.write_all(b" world").await.unwrap();
        drop(client);
        let mut rewound = Rewind::new(Bytes::from_static(b"hello"), server);
        let mut all = String::new();
        rewound.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "hello world");
        assert!(rewound.prefix.is_empty());
    }

    #[test]
    fn the_response_head_ends_the_body_by_closing() {
        let head = |status: u16, headers: &[(&str, &str)], length: Option<u64>| {
            let mut response = Response::builder().status(status);
            for (name, value) in headers {
                response = response.header(*name, *value);
            }
            let (parts, ()) = response.body(()).unwrap().into_parts();
            let head = String::from_utf8(response_head(&parts, length).to_vec()).unwrap();
            // The date changes every second; its presence is checked, then it is cut out.
            let (first, rest) = head.split_once("\r\n").unwrap();
            let (date, rest) = rest.split_once("\r\n").unwrap();
            assert!(
                date.starts_with("date: ") && date.ends_with(" GMT"),
                "{date}"
            );
            format!("{first}\r\n{rest}")
        };
        assert_eq!(
            head(
                200,
                &[
                    ("content-type", "text/event-stream"),
                    ("connection", "keep-alive"),
                    ("transfer-encoding", "chunked"),
                ],
                None
            ),
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
            "the router's framing headers give way to close-delimited framing"
        );
        assert_eq!(
            head(404, &[], Some(12)),
            "HTTP/1.1 404 Not Found\r\ncontent-length: 12\r\nconnection: close\r\n\r\n"
        );
        assert_eq!(
            head(204, &[], Some(0)),
            "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n",
            "no length on a response that has no body"
        );
    }
}
