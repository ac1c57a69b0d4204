//! Step 2 and 4: the worker processes that hold the connections. Each gets
//! its share of the subscriptions on stdin; its stdout lines go into the
//! [`Tally`]; at the end each is told to close and waited for.

use std::{
    net::SocketAddr,
    path::Path,
    process::Stdio,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use anyhow::Context;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin, ChildStdout, Command},
    task::JoinHandle,
};

use super::{
    args::{RunArgs, loopback_addr, source_count},
    orders::Order,
    progress,
    tally::Tally,
};
use crate::{
    protocol::{self, OutLine, Subscription},
    target::Target,
};

/// A running worker: its process, the pipe it takes commands on, and the
/// task reading its lines.
pub(super) struct WorkerHandle {
    pub(super) child: Child,
    pub(super) stdin: ChildStdin,
    reader: JoinHandle<()>,
}

/// Step 2: starts the worker processes and hands each its share of the
/// connections; they start opening them at once.
pub(super) async fn spawn_workers(
    args: &RunArgs,
    addr: SocketAddr,
    orders: &[Order],
    tally: &Arc<Tally>,
) -> anyhow::Result<Vec<WorkerHandle>> {
    let workers = args.connections.div_ceil(args.per_worker.max(1)).max(1);
    let sources: Vec<String> = (0..source_count(args))
        .map(|k| format!("127.0.0.{}", 2 + k as u32))
        .collect();
    let exe = std::env::current_exe()?;
    let mut handles = Vec::new();
    for w in 0..workers {
        let mut child = worker_command(&exe, args, addr, &sources, workers)
            .spawn()
            .context("spawning a worker")?;
        let mut stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let reader = tokio::spawn(read_worker(w, stdout, Arc::clone(tally)));
        let feed = worker_feed(w, workers, args.connections, orders)?;
        stdin.write_all(&feed).await.context("feeding a worker")?;
        stdin.flush().await?;
        handles.push(WorkerHandle {
            child,
            stdin,
            reader,
        });
    }
    Ok(handles)
}

fn worker_command(
    exe: &Path,
    args: &RunArgs,
    addr: SocketAddr,
    sources: &[String],
    workers: usize,
) -> Command {
    let mut command = Command::new(exe);
    command
        .arg("worker")
        .arg("--target")
        .arg(match args.target {
            Target::Gateway => "gateway",
            Target::Nchan => "nchan",
        })
        .arg("--addr")
        .arg(addr.to_string())
        .args(
            args.failover_url
                .as_deref()
                .and_then(|url| loopback_addr(url).ok())
                .map(|failover| format!("--failover-addr={failover}")),
        )
        .arg("--sources")
        .arg(sources.join(","))
        .arg("--connect-concurrency")
        .arg((args.connect_concurrency / workers).max(1).to_string())
        .arg("--timeout")
        .arg(args.timeout.to_string())
        .arg("--max-attempts")
        .arg(args.max_attempts.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    command
}

/// Worker `w`'s share: connections w, w + workers, ... (interleaved), then
/// the command to open them.
fn worker_feed(w: usize, workers: usize, n: usize, orders: &[Order]) -> anyhow::Result<Vec<u8>> {
    let mut feed = Vec::new();
    for i in (w..n).step_by(workers) {
        let order = &orders[i % orders.len()];
        let subscription = Subscription {
            i,
            p: &order.sub_path,
            a: order.authorization.as_deref(),
        };
        serde_json::to_writer(&mut feed, &subscription)?;
        feed.push(b'\n');
    }
    feed.extend_from_slice(protocol::OPEN);
    Ok(feed)
}

/// Reads worker `w`'s stdout into `tally` until it ends.
async fn read_worker(w: usize, stdout: ChildStdout, tally: Arc<Tally>) {
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(message) = serde_json::from_str::<OutLine>(&line) else {
            progress(&format!("worker {w}: unreadable line {line:?}"));
            continue;
        };
        match message {
            OutLine::Status(status) => tally.statuses.lock().expect("not poisoned")[w] = status,
            OutLine::Term { i, ns } => {
                if let Some(slot) = tally.term_ns.get(i as usize) {
                    if slot.compare_exchange(0, ns, Relaxed, Relaxed).is_err() {
                        tally.dups.fetch_add(1, Relaxed);
                    } else {
                        tally.terms.fetch_add(1, Relaxed);
                    }
                }
            }
            OutLine::Dup { i } => {
                progress(&format!("DUPLICATE event on connection {i}"));
            }
            OutLine::Err { i, msg } => progress(&format!("connection {i}: {msg}")),
            OutLine::Done(status) => {
                tally.statuses.lock().expect("not poisoned")[w] = status.clone();
                tally.finals.lock().expect("not poisoned")[w] = Some(status);
            }
        }
    }
}

/// Step 4: tells every worker to close, waits for it (killing one that does
/// not exit in 20 s) and for its last lines.
pub(super) async fn close_workers(mut workers: Vec<WorkerHandle>) {
    for worker in &mut workers {
        let _ = worker.stdin.write_all(protocol::CLOSE).await;
        let _ = worker.stdin.flush().await;
    }
    for worker in &mut workers {
        match tokio::time::timeout(Duration::from_secs(20), worker.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                progress("a worker did not exit; killing it");
                let _ = worker.child.kill().await;
            }
        }
    }
    for worker in workers {
        let _ = tokio::time::timeout(Duration::from_secs(5), worker.reader).await;
    }
}
