//! HTTP/1.1 and `text/event-stream` as bytes on a socket, for the clients
//! of the workspace that talk to a server without a client stack: loadgen
//! (tens of thousands of connections, a few small buffers each), testkit's
//! SSE client (which must see every field the server framed) and the
//! services' `healthcheck` subcommand.
//!
//! - [`request`]: a request as bytes.
//! - [`response`]: reading a response head, and reading a body whole.
//! - [`body`]: a body's framing (chunked, `Content-Length`, until close)
//!   undone incrementally, without copying.
//! - [`sse`]: the WHATWG event-stream parser, incremental over bytes, that
//!   keeps every field of a frame (comments and `retry:` included).
//!
//! Why not a crate for all of it: hyper or reqwest hold far more per
//! connection than loadgen can afford and hide the framing testkit checks;
//! the response head and chunk-size lines are parsed by `httparse`, hyper's
//! own parser, already in the tree. For the event stream,
//! `eventsource-stream` (used by the fuzz targets) drops comments and the
//! number of `data:` lines, which the gateway's tests check, and allocates
//! a new event each time; [`sse::Parser`] reuses its buffers, so once they
//! have grown to the stream's largest frame it allocates nothing more.

pub mod body;
pub mod request;
pub mod response;
pub mod sse;

pub use body::BodyDecoder;
pub use request::encode_request;
pub use response::{ResponseHead, read_body, read_head, read_some};

use std::io;

/// What can go wrong reading or writing HTTP/1.1 by hand.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("the connection closed before the response head")]
    ClosedBeforeHead,
    #[error("the connection closed in the middle of the body")]
    ClosedMidBody,
    #[error("response head larger than {} bytes", response::MAX_HEAD)]
    HeadTooLarge,
    #[error("malformed response head: {0}")]
    BadHead(httparse::Error),
    #[error("malformed Content-Length {0:?}")]
    BadContentLength(String),
    #[error("malformed chunked framing: {0}")]
    BadChunk(&'static str),
    #[error("body larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("{0:?} cannot go into a request line or header")]
    BadRequestPart(String),
}

/// Callers that speak `std::io` (testkit's client) keep doing so: framing
/// errors become `InvalidData`.
impl From<WireError> for io::Error {
    fn from(error: WireError) -> Self {
        match error {
            WireError::Io(error) => error,
            WireError::ClosedBeforeHead | WireError::ClosedMidBody => {
                io::Error::new(io::ErrorKind::UnexpectedEof, error)
            }
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}
