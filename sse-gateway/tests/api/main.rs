//! sse-gateway's integration tests, one binary:
//! - [`router`]: the router in process (`oneshot`), no core at all;
//! - [`core_seam`]: the gateway in front of a fake core that commits,
//!   fails and stalls on cue;
//! - [`orders`], [`streams`]: the JSON API and the event streams over real
//!   sockets, with the real payment-core binary behind;
//! - [`resilience`]: crashes, shutdowns, moves between gateways;
//! - [`browser`]: headless Chromium through the checkout and the dashboard.

mod browser;
mod core_seam;
mod fake_core;
mod helpers;
mod orders;
mod resilience;
mod router;
mod streams;
