//! A response body's framing undone as its bytes arrive: chunked transfer
//! coding, a `Content-Length`, or everything until the connection closes.
//!
//! The decoder copies nothing: [`BodyDecoder::decode`] answers where the
//! next body bytes lie in what was read and how much of it the framing
//! used; the caller parses them in place and then drops what was used.
//! Invariant: framing the decoder cannot finish yet (a chunk-size line cut
//! by a read) is left unconsumed, never buffered here, so its only state
//! is where it is in the framing.

use super::{ResponseHead, WireError};

/// A chunk-size or trailer line longer than this is refused, so that a
/// peer cannot make a caller buffer without bound waiting for its end.
const MAX_FRAMING_LINE: usize = 4096;

/// Where a body's framing stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyDecoder {
    framing: Framing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Chunked(Chunk),
    /// `Content-Length`: bytes still to come.
    Length(u64),
    /// No length: the body ends when the connection does.
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk: bytes still to come.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last (empty) chunk: trailer lines until a blank one.
    Trailer,
    Done,
}

/// The next body bytes found in a read.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// Bytes of the input used up, framing and data alike; 0 when the
    /// input holds nothing more the decoder can use yet.
    pub consumed: usize,
    /// The body bytes among them (a slice of the input).
    pub data: &'a [u8],
}

impl BodyDecoder {
    /// How `head`'s body is framed (RFC 9112 §6.3): none after 1xx, 204
    /// and 304; chunked when that is the last transfer coding; any other
    /// coding, or no length, runs to the close.
    pub fn for_response(head: &ResponseHead) -> Result<Self, WireError> {
        if matches!(head.status, 100..=199 | 204 | 304) {
            return Ok(Self::length(0));
        }
        if let Some(codings) = head.header("transfer-encoding") {
            let last = codings.rsplit(',').next().unwrap_or_default().trim();
            return Ok(if last.eq_ignore_ascii_case("chunked") {
                Self::chunked()
            } else {
                Self::until_close()
            });
        }
        match head.header("content-length") {
            Some(value) => value
                .parse()
                .map(Self::length)
                .map_err(|_| WireError::BadContentLength(value.to_owned())),
            None => Ok(Self::until_close()),
        }
    }

    pub fn chunked() -> Self {
        Self {
            framing: Framing::Chunked(Chunk::Size),
        }
    }

    pub fn length(length: u64) -> Self {
        Self {
            framing: Framing::Length(length),
        }
    }

    pub fn until_close() -> Self {
        Self {
            framing: Framing::UntilClose,
        }
    }

    /// Whether the whole body has been seen (never, for one that runs to
    /// the close).
    pub fn is_done(&self) -> bool {
        matches!(
            self.framing,
            Framing::Chunked(Chunk::Done) | Framing::Length(0)
        )
    }

    /// The connection closed: fine for a body that runs to the close or is
    /// complete, else the body was cut short.
    pub fn at_close(&self) -> Result<(), WireError> {
        if self.is_done() || self.framing == Framing::UntilClose {
            Ok(())
        } else {
            Err(WireError::ClosedMidBody)
        }
    }

    /// The next run of body bytes at the start of `input`, skipping the
    /// framing before it. Call again on what follows `consumed` until
    /// `consumed` is 0; bytes after the body's end are never consumed (the
    /// next response on a kept-alive connection).
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<Decoded<'a>, WireError> {
        let mut consumed = 0;
        loop {
            let rest = &input[consumed..];
            let data = match &mut self.framing {
                Framing::UntilClose => rest.len(),
                Framing::Length(left) => take(left, rest),
                Framing::Chunked(chunk) => {
                    if let Chunk::Data(left) = chunk {
                        let data = take(left, rest);
                        if *left == 0 {
                            *chunk = Chunk::DataEnd;
                        }
                        data
                    } else {
                        match chunk.skip_framing(rest)? {
                            0 => 0,
                            used => {
                                consumed += used;
                                continue;
                            }
                        }
                    }
                }
            };
            return Ok(Decoded {
                consumed: consumed + data,
                data: &rest[..data],
            });
        }
    }

    /// Moves the body bytes `raw` holds to `out`; leaves in `raw` what
    /// cannot be decoded yet (or belongs after the body).
    pub fn decode_into(&mut self, raw: &mut Vec<u8>, out: &mut Vec<u8>) -> Result<(), WireError> {
        let mut used = 0;
        let outcome = loop {
            match self.decode(&raw[used..]) {
                Ok(Decoded { consumed: 0, .. }) => break Ok(()),
                Ok(step) => {
                    out.extend_from_slice(step.data);
                    used += step.consumed;
                }
                Err(error) => break Err(error),
            }
        };
        raw.drain(..used);
        outcome
    }
}

/// Up to `left` bytes of `rest`, counted off `left`.
fn take(left: &mut u64, rest: &[u8]) -> usize {
    let data = usize::try_from(*left).map_or(rest.len(), |left| left.min(rest.len()));
    *left -= data as u64;
    data
}

impl Chunk {
    /// Skips the framing at the start of `rest` (a chunk-size line, the
    /// CRLF after data, a trailer line); answers the bytes it used, 0 when
    /// `rest` does not hold the whole of it yet.
    fn skip_framing(&mut self, rest: &[u8]) -> Result<usize, WireError> {
        match *self {
            Chunk::Size => match httparse::parse_chunk_size(rest) {
                Ok(httparse::Status::Complete((used, size))) => {
                    *self = if size == 0 {
                        Chunk::Trailer
                    } else {
                        Chunk::Data(size)
                    };
                    Ok(used)
                }
                Ok(httparse::Status::Partial) => incomplete_line(rest),
                Err(httparse::InvalidChunkSize) => Err(WireError::BadChunk("chunk-size line")),
            },
            Chunk::DataEnd => match rest {
                [b'\r', b'\n', ..] => {
                    *self = Chunk::Size;
                    Ok(2)
                }
                [] | [b'\r'] => Ok(0),
                _ => Err(WireError::BadChunk("no CRLF after a chunk's data")),
            },
            Chunk::Trailer => match rest.iter().position(|&byte| byte == b'\n') {
                Some(end) => {
                    // A blank line ends the trailer section.
                    if matches!(rest[..end], [] | [b'\r']) {
                        *self = Chunk::Done;
                    }
                    Ok(end + 1)
                }
                None => incomplete_line(rest),
            },
            Chunk::Data(_) | Chunk::Done => Ok(0),
        }
    }
}

/// A framing line not ended yet: wait for more, within the bound.
fn incomplete_line(rest: &[u8]) -> Result<usize, WireError> {
    if rest.len() > MAX_FRAMING_LINE {
        Err(WireError::BadChunk("framing line too long"))
    } else {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` to `decoder` in pieces of `piece` bytes, as reads would
    /// deliver it; answers the body and what was left undecoded.
    fn decode_in_pieces(
        decoder: &mut BodyDecoder,
        wire: &[u8],
        piece: usize,
    ) -> (Vec<u8>, Vec<u8>) {
        let (mut raw, mut body) = (Vec::new(), Vec::new());
        for bytes in wire.chunks(piece) {
            raw.extend_from_slice(bytes);
            decoder.decode_into(&mut raw, &mut body).unwrap();
        }
        (body, raw)
    }

    const CHUNKED: &[u8] =
        b"5\r\nhello\r\n6;name=value\r\n world\r\nA \r\n, and more\r\n0\r\nTrailer: x\r\n\r\n";

    #[test]
    fn a_chunked_body_decodes_whatever_the_reads_split() {
        for piece in 1..=CHUNKED.len() {
            let mut decoder = BodyDecoder::chunked();
            let (body, left) = decode_in_pieces(&mut decoder, CHUNKED, piece);
            assert_eq!(body, b"hello world, and more", "pieces of {piece}");
            assert!(left.is_empty() && decoder.is_done(), "pieces of {piece}");
        }
    }

    #[test]
    fn a_read_that_cuts_a_crlf_leaves_it_for_the_next() {
        let mut decoder = BodyDecoder::chunked();
        let step = decoder.decode(b"3\r").unwrap();
        assert_eq!(step.consumed, 0);
        let step = decoder.decode(b"3\r\nabc\r").unwrap();
        assert_eq!((step.consumed, step.data), (6, &b"abc"[..]));
        assert_eq!(decoder.decode(b"\r").unwrap().consumed, 0);
        assert_eq!(decoder.decode(b"\r\n").unwrap().consumed, 2);
        assert!(!decoder.is_done());
    }

    #[test]
    fn decoded_bytes_are_slices_of_the_input_not_copies() {
        let mut decoder = BodyDecoder::chunked();
        let input = b"4\r\ndata\r\n";
        let step = decoder.decode(input).unwrap();
        assert_eq!(step.data.as_ptr(), input[3..].as_ptr());
    }

    #[test]
    fn bytes_after_the_body_are_left_for_the_next_response() {
        let mut decoder = BodyDecoder::chunked();
        let (body, left) = decode_in_pieces(&mut decoder, b"2\r\nok\r\n0\r\n\r\nHTTP/1.1 200", 3);
        assert_eq!(
            (body.as_slice(), left.as_slice()),
            (&b"ok"[..], &b"HTTP/1.1 200"[..])
        );

        let mut decoder = BodyDecoder::length(4);
        let (body, left) = decode_in_pieces(&mut decoder, b"abcdHTTP", 3);
        assert_eq!(
            (body.as_slice(), left.as_slice()),
            (&b"abcd"[..], &b"HTTP"[..])
        );
        assert!(decoder.is_done());
    }

    #[test]
    fn a_body_without_a_length_runs_to_the_close() {
        let mut decoder = BodyDecoder::until_close();
        let (body, _) = decode_in_pieces(&mut decoder, b"all of it", 2);
        assert_eq!(body, b"all of it");
        assert!(!decoder.is_done());
        assert!(decoder.at_close().is_ok());
        assert!(BodyDecoder::length(3).at_close().is_err());
        assert!(BodyDecoder::chunked().at_close().is_err());
        assert!(BodyDecoder::length(0).at_close().is_ok());
    }

    #[test]
    fn malformed_framing_is_an_error() {
        for wire in [
            &b"zz\r\n"[..],
            b"5\r\nhello!!",
            b"5\nhello\r\n",
            &[b'1'; 20],
        ] {
            let mut decoder = BodyDecoder::chunked();
            let (mut raw, mut body) = (wire.to_vec(), Vec::new());
            assert!(
                decoder.decode_into(&mut raw, &mut body).is_err(),
                "{wire:?}"
            );
        }
        let mut decoder = BodyDecoder::chunked();
        let endless = vec![b' '; MAX_FRAMING_LINE + 1];
        assert!(
            decoder
                .decode(&[b"1;", endless.as_slice()].concat())
                .is_err()
        );
    }

    #[test]
    fn the_framing_follows_the_head() {
        let framing = |wire: &str| {
            let (head, _) = ResponseHead::parse(wire.as_bytes()).unwrap().unwrap();
            BodyDecoder::for_response(&head)
        };
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n";
        assert_eq!(framing(chunked).unwrap(), BodyDecoder::chunked());
        let gzip = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(framing(gzip).unwrap(), BodyDecoder::until_close());
        let length = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n";
        assert_eq!(framing(length).unwrap(), BodyDecoder::length(12));
        let no_content = "HTTP/1.1 204 No Content\r\n\r\n";
        assert!(framing(no_content).unwrap().is_done());
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\n\r\n").unwrap(),
            BodyDecoder::until_close()
        );
        assert!(framing("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_err());
    }
}
