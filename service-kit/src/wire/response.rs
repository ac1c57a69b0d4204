//! Reading a response: its head (status and headers, parsed by `httparse`),
//! and, for the callers that want it whole, its body.
//!
//! Every read goes into the caller's buffer, so bytes after the head (the
//! start of the body) stay there for the [`BodyDecoder`], and a caller
//! holding many connections decides how large each buffer may grow.

use tokio::io::{AsyncRead, AsyncReadExt};

use super::{BodyDecoder, WireError};

/// The largest response head read; a larger one is refused.
pub const MAX_HEAD: usize = 16 * 1024;
/// Headers a response may have.
const MAX_HEADERS: usize = 64;
/// Room made in a buffer before each read: small, so that a buffer holding
/// little keeps a small capacity (loadgen holds one per connection).
const READ_ROOM: usize = 512;

/// A response's status line and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub minor_version: u8,
    pub status: u16,
    pub reason: String,
    /// In the order received; names in lower case, values trimmed.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// Parses the head at the start of `bytes`: `None` while it is
    /// incomplete, else the head and its length in bytes (blank line
    /// included).
    pub fn parse(bytes: &[u8]) -> Result<Option<(Self, usize)>, WireError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let length = match response.parse(bytes).map_err(WireError::BadHead)? {
            httparse::Status::Complete(length) => length,
            httparse::Status::Partial => return Ok(None),
        };
        let head = Self {
            minor_version: response.version.unwrap_or(1),
            status: response.code.unwrap_or_default(),
            reason: response.reason.unwrap_or_default().to_owned(),
            headers: response
                .headers
                .iter()
                .map(|header| {
                    let value = String::from_utf8_lossy(header.value);
                    (header.name.to_ascii_lowercase(), value.trim().to_owned())
                })
                .collect(),
        };
        Ok(Some((head, length)))
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// `HTTP/1.1 200 OK`, for messages.
    pub fn status_line(&self) -> String {
        format!(
            "HTTP/1.{} {} {}",
            self.minor_version, self.status, self.reason
        )
    }

    /// Whether the server closes the connection after this response
    /// (`Connection: close`, or HTTP/1.0 without `keep-alive`).
    pub fn closes_connection(&self) -> bool {
        let has = |token: &str| {
            self.header("connection").is_some_and(|value| {
                value
                    .split(',')
                    .any(|option| option.trim().eq_ignore_ascii_case(token))
            })
        };
        has("close") || (self.minor_version == 0 && !has("keep-alive"))
    }
}

/// Reads into `buf` until it holds a whole response head; answers the head
/// and leaves the bytes after it (the body's start) in `buf`.
pub async fn read_head<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> Result<ResponseHead, WireError> {
    loop {
        if let Some((head, length)) = ResponseHead::parse(buf)? {
            buf.drain(..length);
            return Ok(head);
        }
        if buf.len() >= MAX_HEAD {
            return Err(WireError::HeadTooLarge);
        }
        if read_some(reader, buf).await? == 0 {
            return Err(WireError::ClosedBeforeHead);
        }
    }
}

/// The rest of a body, up to `limit` bytes: what `buf` holds and what is
/// read after it, undone from its framing by `decoder`.
pub async fn read_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    decoder: &mut BodyDecoder,
    limit: usize,
) -> Result<Vec<u8>, WireError> {
    let mut body = Vec::new();
    loop {
        decoder.decode_into(buf, &mut body)?;
        if body.len() > limit {
            return Err(WireError::BodyTooLarge(limit));
        }
        if decoder.is_done() {
            return Ok(body);
        }
        if read_some(reader, buf).await? == 0 {
            decoder.at_close()?;
            return Ok(body);
        }
    }
}

/// One read appended to `buf` (0 at the end of the stream). It makes a
/// little room first and reads into the buffer's own capacity: no scratch
/// array in the caller's future.
pub async fn read_some<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < READ_ROOM {
        buf.reserve(READ_ROOM);
    }
    reader.read_buf(buf).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_parsed_once_complete_and_its_length_counts_the_blank_line() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                     X-Gateway-Instance:  a \r\n\r\nbody";
        for end in 0..wire.len() - 4 {
            assert_eq!(ResponseHead::parse(&wire[..end]).unwrap(), None, "{end}");
        }
        let (head, length) = ResponseHead::parse(wire).unwrap().unwrap();
        assert_eq!(&wire[length..], b"body");
        assert_eq!((head.status, head.reason.as_str()), (200, "OK"));
        assert_eq!(head.header("CONTENT-TYPE"), Some("text/event-stream"));
        assert_eq!(head.headers[1], ("x-gateway-instance".into(), "a".into()));
        assert_eq!(head.status_line(), "HTTP/1.1 200 OK");
    }

    #[test]
    fn a_head_with_bare_line_feeds_is_read() {
        let (head, length) = ResponseHead::parse(b"HTTP/1.1 204 No Content\nA: b\n\n")
            .unwrap()
            .unwrap();
        assert_eq!((head.status, length), (204, 30));
    }

    #[test]
    fn a_malformed_status_line_is_an_error() {
        assert!(ResponseHead::parse(b"HTTP/1.1 abc\r\n\r\n").is_err());
        assert!(ResponseHead::parse(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
    }

    #[test]
    fn the_connection_closes_on_close_or_on_http_1_0_without_keep_alive() {
        let head = |wire: &[u8]| ResponseHead::parse(wire).unwrap().unwrap().0;
        assert!(head(b"HTTP/1.1 200 OK\r\nConnection: Close\r\n\r\n").closes_connection());
        assert!(!head(b"HTTP/1.1 200 OK\r\n\r\n").closes_connection());
        assert!(head(b"HTTP/1.0 200 OK\r\n\r\n").closes_connection());
        assert!(!head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n").closes_connection());
    }

    #[tokio::test]
    async fn the_head_is_read_across_reads_and_the_body_s_start_stays_in_the_buffer() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for piece in [
                &b"HTTP/1.1 200 OK\r\nTransfer-"[..],
                b"Encoding: chunked\r",
                b"\n\r\n5\r\nhe",
            ] {
                server.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
            server.write_all(b"llo\r\n0\r\n\r\n").await.unwrap();
        });
        let mut buf = Vec::new();
        let head = read_head(&mut client, &mut buf).await.unwrap();
        assert_eq!(head.header("transfer-encoding"), Some("chunked"));
        let mut decoder = BodyDecoder::for_response(&head).unwrap();
        let body = read_body(&mut client, &mut buf, &mut decoder, 1024)
            .await
            .unwrap();
        assert_eq!(body, b"hello");
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_head_or_mid_body_is_an_error() {
        let (mut client, mut server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut server, b"HTTP/1.1 200 OK\r\n")
            .await
            .unwrap();
        drop(server);
        let error = read_head(&mut client, &mut Vec::new()).await.unwrap_err();
        assert!(matches!(error, WireError::ClosedBeforeHead), "{error}");

        let (mut client, mut server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(
            &mut server,
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
        )
        .await
        .unwrap();
        drop(server);
        let mut buf = Vec::new();
        let head = read_head(&mut client, &mut buf).await.unwrap();
        let mut decoder = BodyDecoder::for_response(&head).unwrap();
        let error = read_body(&mut client, &mut buf, &mut decoder, 1024)
            .await
            .unwrap_err();
        assert!(matches!(error, WireError::ClosedMidBody), "{error}");
    }

    #[tokio::test]
    async fn a_head_past_the_bound_is_refused() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = server.write_all(b"HTTP/1.1 200 OK\r\nX-Filler: ").await;
            while server.write_all(&[b'x'; 1024]).await.is_ok() {}
        });
        let error = read_head(&mut client, &mut Vec::new()).await.unwrap_err();
        assert!(matches!(error, WireError::HeadTooLarge), "{error}");
        drop(client);
        writer.await.unwrap();
    }
}
