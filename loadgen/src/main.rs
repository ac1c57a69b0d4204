//! Load generator for the SSE gateway, and for nginx + nchan as a peer.
//!
//! `loadgen run` creates the orders (or nchan channels), spreads N SSE
//! connections over `loadgen worker` child processes (the host caps one
//! process at 20,000 fds) and several loopback source addresses, samples
//! the servers' memory before and after, reports one result per order at a
//! set rate, and measures report-to-browser latency, lost and duplicated
//! events. It only ever talks to loopback addresses.

mod coordinator;
mod http;
mod worker;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The SSE gateway backed by payment-core.
    Gateway,
    /// nginx with the nchan module (`/sub/{channel}`, `/pub/{channel}`).
    Nchan,
}

#[derive(Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Load generator for the SSE gateway and an nchan peer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one benchmark and print (and optionally write) its summary.
    Run(Box<coordinator::RunArgs>),
    /// Internal: one process holding a share of the connections.
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process on the host,
/// so a worker's arrival time and the coordinator's report time compare.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => coordinator::main(*args),
        Command::Worker(args) => worker::main(args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(error) => {
            eprintln!("loadgen: error: {error:#}");
            std::process::exit(2);
        }
    }
}
