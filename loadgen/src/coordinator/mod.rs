//! `loadgen run`: set-up, measurement and the summary, one step after the
//! other (each module says which it is):
//!
//! 1. [`orders`]: the orders (or nchan channels) to watch.
//! 2. [`setup`] and [`workers`]: the servers' baseline, the worker
//!    processes opening every connection, the idle sample.
//! 3. [`storm`] (if asked for) and [`load`]: the reconnect storm, and one
//!    result reported per order at the set rate.
//! 4. [`workers`]: the workers closed and their final counts collected.
//! 5. [`score`] and [`summary`]: latency, lost and duplicated events, the
//!    table on stdout, the JSON and the exit status.
//!
//! [`args`] holds the flags, [`tally`] what the steps record for the
//! score, [`procfs`] the servers' memory and CPU.

mod args;
mod load;
mod orders;
mod procfs;
mod score;
mod setup;
mod storm;
mod summary;
mod tally;
mod workers;

pub use args::RunArgs;

use std::{
    net::SocketAddr,
    sync::{Arc, LazyLock, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use anyhow::Context;

use self::{
    args::check_args,
    load::{System, apply_load},
    orders::{Order, create_orders},
    score::{match_arrivals, max_wait_after_ack, score},
    setup::{record_setup, sample_baseline, settle_and_sample_idle, wait_for_setup},
    storm::start_storm,
    summary::{Summary, finish, percentiles},
    tally::{Tally, count_missing_finals, totals},
    workers::{WorkerHandle, close_workers, spawn_workers},
};

/// A progress line on stderr, stamped with the time since the run began.
fn progress(msg: &str) {
    eprintln!("[loadgen {:>7.1}s] {msg}", START.elapsed().as_secs_f64());
}

static START: LazyLock<Instant> = LazyLock::new(Instant::now);

pub fn main(args: RunArgs) -> anyhow::Result<i32> {
    LazyLock::force(&START);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let timeout = Duration::from_secs(args.timeout);
    runtime.block_on(async move {
        match tokio::time::timeout(timeout, run(args)).await {
            Ok(result) => result,
            Err(_) => {
                eprintln!("loadgen: FAILED: the run exceeded --timeout");
                Ok(3)
            }
        }
    })
}

async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let addr = check_args(&args)?;
    let mut summary = Summary::planned(&args);
    let orders = create_timed(&args, addr, &mut summary).await?;
    let (mut workers, tally) = connect_all(&args, addr, &orders, &mut summary).await?;

    // 3. The storm, if asked for: its reports below start at once.
    let storm = if args.storm {
        Some(start_storm(&args, &mut workers, &tally).await?)
    } else {
        None
    };
    // 3. Reports at the set rate, and the terminal events they cause.
    let load = args.rate > 0.0 || args.unpaced;
    let mut call_us = Vec::new();
    if load {
        let system = System {
            addr,
            workers: &workers,
            core_pids: &args.core_pids,
        };
        call_us = apply_load(&args, &system, &orders, &tally, &mut summary).await?;
    }
    if let Some(storm) = storm {
        storm.await.context("the storm task")?.record(&mut summary);
    }

    // 4. Close the workers and collect their final counts.
    close_workers(workers).await;
    let missing_finals = count_missing_finals(&tally);
    let no_content = record_final_counts(&tally, &mut summary);

    // 5. Latency, lost and duplicated.
    score_arrivals(&args, &tally, load, no_content, &mut summary)?;
    summary.report_call = percentiles(call_us);
    summary.ok = summary.passed(args.storm, missing_finals);
    finish(&args, &summary, missing_finals)
}

/// Step 1: orders (or channels), timed.
async fn create_timed(
    args: &RunArgs,
    addr: SocketAddr,
    summary: &mut Summary,
) -> anyhow::Result<Arc<Vec<Order>>> {
    progress(&format!(
        "creating {} orders via {:?}",
        summary.orders, args.create_via
    ));
    let t = Instant::now();
    let orders = Arc::new(create_orders(args, addr, summary.orders).await?);
    summary.create_secs = t.elapsed().as_secs_f64();
    Ok(orders)
}

/// Step 2: baseline memory, then connections, settled and sampled idle.
async fn connect_all(
    args: &RunArgs,
    addr: SocketAddr,
    orders: &[Order],
    summary: &mut Summary,
) -> anyhow::Result<(Vec<WorkerHandle>, Arc<Tally>)> {
    let baseline = sample_baseline(args, &args.core_pids, summary).await;
    let tally = Arc::new(Tally::new(summary));
    progress(&format!(
        "opening {} SSE connections in {} worker(s) from {} source address(es)",
        args.connections, summary.workers, summary.source_addresses
    ));
    let workers = spawn_workers(args, addr, orders, &tally).await?;
    wait_for_setup(args, &tally).await;
    record_setup(args, &tally, summary);
    settle_and_sample_idle(args, &args.core_pids, &baseline, summary).await;
    Ok((workers, tally))
}

/// Step 4: the workers' final counts; answers how many streams ended with a
/// 204 before their terminal event.
fn record_final_counts(tally: &Tally, summary: &mut Summary) -> u64 {
    let total = totals(tally);
    summary.events_received = total.events;
    summary.reconnects = total.reconnects;
    summary.missing_created = total.missing_created;
    summary.wrong_result = total.wrong_result;
    summary.duplicated = total.dups.max(tally.dups.load(Relaxed));
    total.no_content
}

/// Step 5: each terminal event against its report: latency, lost, early; the
/// samples file when asked for.
fn score_arrivals(
    args: &RunArgs,
    tally: &Tally,
    load: bool,
    no_content: u64,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let arrivals = match_arrivals(tally, load, args.samples.is_some());
    summary.max_wait_after_ack_ms = max_wait_after_ack(tally) as f64 / 1e6;
    if let Some(path) = &args.samples {
        std::fs::write(path, &arrivals.samples)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    score(args, arrivals, no_content, load, summary);
    Ok(())
}
