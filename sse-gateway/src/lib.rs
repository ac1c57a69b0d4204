//! sse-gateway turns payment-core's event stream into browser-facing
//! `text/event-stream` connections, and serves the checkout page and the
//! merchant dashboard.
//!
//! Layout, from the edge inwards (each module only uses those after it):
//! - [`startup`]: [`Application`]: binds, starts the upstream task, runs the
//!   server until the shutdown token fires.
//! - `server`: the HTTP/1.1 accept loop; event streams requested first on
//!   a connection are written straight to the socket, the rest goes to hyper.
//! - [`routes`]: [`router`] and the handlers by concern (orders, streams,
//!   ops, pages); the event-stream paths are declared there once.
//! - [`extract`]: order ids, what a browser presents to open an order or the
//!   dashboard, and the resume point, read from requests by extractors.
//! - [`state`]: [`AppState`], what every handler shares.
//! - [`access`]: the stream tokens and dashboard sessions the gateway signs,
//!   so that no long-lived secret travels in a URL.
//! - [`upstream`]: the one `WatchPayments(all_orders)` stream per gateway,
//!   reconnecting with backoff and resuming after the last sequence seen.
//! - [`hub`]: in-process fan-out to connections, by order, with bounded
//!   per-connection buffers and slow clients cut off; it keeps the
//!   [`recent`] orders' histories, so most streams open without a core call.
//! - [`config`], [`metrics`], [`error`].
//! - [`payment_core`]: the seam to payment-core: the [`PaymentCore`] trait
//!   and its gRPC implementation, where protobuf stops.
//! - [`event`]: the gateway's types: order ids, statuses, orders, events
//!   rendered once for the wire.
//! - `fuzzing`: private functions the fuzz targets (`fuzz/`) call; not an API.

pub mod access;
pub mod config;
pub mod error;
pub mod event;
pub mod extract;
pub mod hub;
pub mod metrics;
pub mod payment_core;
pub mod recent;
pub mod routes;
mod server;
pub mod startup;
pub mod state;
pub mod upstream;

/// What the fuzz targets (`fuzz/`) need that is otherwise private to this
/// crate: re-exported here instead of made part of the API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::server::event_stream_request;
}

pub use config::Config;
pub use payment_core::PaymentCore;
pub use routes::router;
pub use startup::Application;
pub use state::AppState;
