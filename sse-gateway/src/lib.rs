//! sse-gateway turns payment-core's event stream into browser-facing
//! `text/event-stream` connections, and serves the checkout page and the
//! merchant dashboard.
//!
//! Layout:
//! - [`upstream`]: the one `WatchPayments(all_orders)` stream per gateway,
//!   reconnecting with backoff and resuming after the last sequence seen.
//! - [`hub`]: in-process fan-out to connections, by order, with bounded
//!   per-connection buffers and slow clients cut off.
//! - [`sse`]: the SSE endpoints: history, then live, framed by WHATWG rules.
//! - [`api`]: the JSON API; [`pages`]: the embedded HTML, CSS and JS.
//! - [`core_client`] and [`event`]: payment-core's gRPC at the edge, and the
//!   gateway's own types converted from it.
//! - `server`: the HTTP/1.1 accept loop; event streams requested first on
//!   a connection are written straight to the socket, the rest goes to hyper.
//! - [`startup`], [`config`], [`metrics`], [`error`].

pub mod api;
pub mod config;
pub mod core_client;
pub mod error;
pub mod event;
pub mod hub;
pub mod metrics;
pub mod pages;
mod server;
pub mod sse;
pub mod startup;
pub mod upstream;

pub use config::Config;
pub use startup::{AppState, Application, router};
