//! sse-gateway's integration tests, one binary:
//! - [`router`]: the router in process (`oneshot`), no core at all;
//! - [`openapi`]: the OpenAPI description against the router;
//! - [`core_seam`]: the gateway in front of a fake core that commits,
//!   fails and stalls on cue;
//! - [`core_tls`]: the gateway as the core's client over mutual TLS with
//!   its own API key;
//! - [`credentials`]: the built gateway refuses missing, public or doubly
//!   given credentials outside development mode, reads each from a file,
//!   and marks its pages in development mode;
//! - [`orders`], [`streams`]: the JSON API and the event streams over real
//!   sockets, with the real payment-core binary behind;
//! - [`origins`]: CORS, preflights and foreign origins refused;
//! - [`metrics`]: `/metrics` moving with a payment;
//! - [`observability`]: one payment's trace across the three binaries
//!   (OTLP, JSON logs), and a real Prometheus scraping them;
//! - [`resilience`]: crashes, shutdowns, moves between gateways;
//! - [`browser`]: headless Chromium through the checkout and the dashboard;
//! - [`client_module`]: the browser client module on a shop's own origin,
//!   and behind proxies that buffer or refuse event streams ([`shop`]);
//! - [`many_streams`]: twelve streams on one page over nginx's HTTP/2
//!   listener, and the HTTP/1.1 control that stalls at six;
//! - [`frozen_gateway`]: the same behind the project's nginx, with the
//!   page's gateway frozen mid-stream;
//! - [`edge_tls`]: the project's nginx over TLS and HTTP/2, event streams
//!   through it.

// A panic in a test is a failing test: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod browser;
mod client_module;
mod core_seam;
mod core_tls;
mod credentials;
mod edge_tls;
mod fake_core;
mod frozen_gateway;
mod helpers;
mod many_streams;
mod metrics;
mod observability;
mod openapi;
mod orders;
mod origins;
mod resilience;
mod router;
mod secrets_in_logs;
mod shop;
mod streams;
