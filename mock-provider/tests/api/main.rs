//! The provider's page and command line, run as the real binary: against the
//! real payment-core (what the payer sees, what payment-core records) and
//! against a fake core that records every report it receives (what the
//! provider sends, which the real core's idempotent log cannot show).
//!
//! One test binary, one module per concern; the set-up lives in `helpers`
//! and `fake_core`. `credentials`: the refusals outside development mode,
//! the `_FILE` variables, the banner and the page's marker.

// A panic in a test is a failing test: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod core_tls;
mod credentials;
mod decisions;
mod fake_core;
mod helpers;
mod knobs;
mod metrics;
mod payment_page;
mod report_command;
