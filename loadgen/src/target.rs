//! The server under load: the gateway, or nginx with nchan as a peer to
//! compare it with. Both subcommands take it, and it decides how orders
//! are made, how results are reported and which event ends a stream.

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The SSE gateway backed by payment-core.
    Gateway,
    /// nginx with the nchan module (`/sub/{channel}`, `/pub/{channel}`).
    Nchan,
}
