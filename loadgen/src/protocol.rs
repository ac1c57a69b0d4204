//! What the coordinator and its worker processes say to each other: JSON
//! lines over the workers' stdin and stdout.
//!
//! stdin:  `{"i":<conn>,"p":"<path>","a":"<authorization>"}` lines
//!         ([`Subscription`]; `a` only for streams that need one), then
//!         `{"cmd":"open"}`; later `{"cmd":"storm"}` (the server is about
//!         to stop: from now on connect to the failover address, at once),
//!         `{"cmd":"drop"}` (the same, and close every stream now, as a
//!         proxy restart does), and `{"cmd":"close"}` (or EOF), which ends
//!         the worker.
//! stdout: [`OutLine`]s: `status` lines every 250 ms, one `term` line per
//!         terminal event (with the CLOCK_MONOTONIC time it was parsed),
//!         `dup` and `err` lines, and a final `done`.

use serde::{Deserialize, Serialize};

/// Opens the subscriptions given so far.
pub const OPEN: &[u8] = b"{\"cmd\":\"open\"}\n";
/// The server is about to stop: reconnect to the failover address.
pub const STORM: &[u8] = b"{\"cmd\":\"storm\"}\n";
/// Close every stream now and reconnect to the failover address.
pub const DROP: &[u8] = b"{\"cmd\":\"drop\"}\n";
/// Close everything and report the final counts.
pub const CLOSE: &[u8] = b"{\"cmd\":\"close\"}\n";

/// A stdin line before `open`: a subscription, or a command.
#[derive(Deserialize)]
pub struct InLine {
    pub i: Option<u32>,
    pub p: Option<String>,
    pub a: Option<String>,
    pub cmd: Option<String>,
}

/// Connection `i` (numbered over the whole run) watches `p`.
#[derive(Serialize)]
pub struct Subscription<'a> {
    pub i: usize,
    pub p: &'a str,
    /// The `Authorization` header the stream needs: the gateway's order
    /// streams take the client secret there, never in the URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub a: Option<&'a str>,
}

/// A worker's counts so far.
#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct Status {
    pub ready: u64,
    pub failed: u64,
    pub reconnects: u64,
    pub dups: u64,
    pub events: u64,
    pub terms: u64,
    pub missing_created: u64,
    pub no_content: u64,
    /// Terminal events that were not the result reported (`succeeded`).
    #[serde(default)]
    pub wrong_result: u64,
    pub first_connect_ns: u64,
    pub last_ready_ns: u64,
    /// Connections served again after a storm: answered by the failover
    /// server, or finished.
    #[serde(default)]
    pub restored: u64,
    #[serde(default)]
    pub last_restored_ns: u64,
}

/// A worker's stdout line.
#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum OutLine {
    Status(Status),
    Term { i: u32, ns: u64 },
    Dup { i: u32 },
    Err { i: u32, msg: String },
    Done(Status),
}
