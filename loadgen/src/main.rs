//! Load generator for the SSE gateway, and for nginx + nchan as a peer.
//!
//! `loadgen run` creates the orders (or nchan channels), spreads N SSE
//! connections over `loadgen worker` child processes (the host caps one
//! process at 20,000 fds) and several loopback source addresses, samples
//! the servers' memory before and after, reports one result per order at a
//! set rate, and measures report-to-browser latency, lost and duplicated
//! events. It only ever talks to loopback addresses.
//!
//! - [`coordinator`]: `loadgen run`, from set-up to the summary.
//! - [`worker`]: `loadgen worker`, one process holding a share of the
//!   connections.
//! - [`protocol`]: the lines the coordinator and its workers exchange.
//! - [`http`]: the sockets: connecting from a chosen source address, and
//!   one request at a time on a kept-alive connection.
//! - [`clock`]: the one clock every process of a run reads.
//! - [`target`]: the server under load.

// The tool's report is what it prints: the summary on stdout, progress on stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod clock;
mod coordinator;
mod http;
mod protocol;
mod target;
mod worker;

use clap::{Parser, Subcommand};

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
