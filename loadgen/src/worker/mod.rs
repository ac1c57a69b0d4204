//! `loadgen worker`: holds up to ~15k SSE connections in one process (the
//! host caps a process at 20,000 fds) and reports to the coordinator as JSON
//! lines on stdout (see [`crate::protocol`]).
//!
//! - this file: the process: its flags, reading the subscriptions and
//!   commands, opening the connections a few at a time, writing the lines.
//! - [`stream`]: one watched connection, across reconnects: reading its
//!   events, counting terminal events, duplicates and what went wrong.

mod stream;

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use anyhow::{Context, bail};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines, Stdin},
    sync::{Semaphore, mpsc},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{
    clock::mono_ns,
    protocol::{InLine, OutLine, Status},
    target::Target,
};

#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    #[arg(long, value_enum)]
    pub target: Target,
    /// The server, host:port (loopback).
    #[arg(long)]
    pub addr: SocketAddr,
    /// Where connections go once told of a storm (default: `--addr`).
    #[arg(long)]
    pub failover_addr: Option<SocketAddr>,
    /// Source addresses, comma-separated (127.x.y.z); connections take them in turn.
    #[arg(long, value_delimiter = ',')]
    pub sources: Vec<IpAddr>,
    /// Connections being set up at once in this worker.
    #[arg(long, default_value_t = 128)]
    pub connect_concurrency: usize,
    /// Reconnects allowed per connection before it counts as failed.
    #[arg(long, default_value_t = 5)]
    pub max_attempts: u32,
    /// Hard bound on the worker's life, seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

/// The process's counts, updated by every connection; sent as [`Status`].
#[derive(Default)]
struct Counters {
    ready: AtomicU64,
    failed: AtomicU64,
    reconnects: AtomicU64,
    dups: AtomicU64,
    events: AtomicU64,
    terms: AtomicU64,
    missing_created: AtomicU64,
    no_content: AtomicU64,
    wrong_result: AtomicU64,
    first_connect_ns: AtomicU64,
    last_ready_ns: AtomicU64,
    restored: AtomicU64,
    last_restored_ns: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> Status {
        Status {
            ready: self.ready.load(Relaxed),
            failed: self.failed.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            dups: self.dups.load(Relaxed),
            events: self.events.load(Relaxed),
            terms: self.terms.load(Relaxed),
            missing_created: self.missing_created.load(Relaxed),
            no_content: self.no_content.load(Relaxed),
            wrong_result: self.wrong_result.load(Relaxed),
            first_connect_ns: self.first_connect_ns.load(Relaxed),
            last_ready_ns: self.last_ready_ns.load(Relaxed),
            restored: self.restored.load(Relaxed),
            last_restored_ns: self.last_restored_ns.load(Relaxed),
        }
    }
}

/// What every connection of the process shares.
struct Ctx {
    args: WorkerArgs,
    host: String,
    counters: Counters,
    out: mpsc::UnboundedSender<OutLine>,
    cancel: CancellationToken,
    errors_reported: AtomicU64,
    /// Set by `storm`: connections go to the failover address.
    storm: AtomicBool,
    /// Fired by `drop`: every stream is closed and reopened.
    dropped: CancellationToken,
}

impl Ctx {
    /// Where a connection goes: the failover server once the storm began.
    fn server(&self, after_storm: bool) -> SocketAddr {
        if after_storm {
            self.args.failover_addr.unwrap_or(self.args.addr)
        } else {
            self.args.addr
        }
    }

    fn error(&self, i: u32, msg: String) {
        // The first few errors are worth a line each; the counters carry the rest.
        if self.errors_reported.fetch_add(1, Relaxed) < 20 {
            let _ = self.out.send(OutLine::Err { i, msg });
        }
    }
}

pub fn main(args: WorkerArgs) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let timeout = Duration::from_secs(args.timeout);
    runtime.block_on(async move {
        match tokio::time::timeout(timeout, run(args)).await {
            Ok(result) => result.map(|()| 0),
            Err(_) => bail!("worker timed out"),
        }
    })
}

async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let (out, out_rx) = mpsc::unbounded_channel::<OutLine>();
    let writer = tokio::spawn(write_lines(out_rx));
    let ctx = Arc::new(Ctx {
        host: args.addr.to_string(),
        args,
        counters: Counters::default(),
        out,
        cancel: CancellationToken::new(),
        errors_reported: AtomicU64::new(0),
        storm: AtomicBool::new(false),
        dropped: CancellationToken::new(),
    });
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let Some(subscriptions) = read_subscriptions(&mut stdin).await? else {
        return Ok(());
    };
    let ticker = tokio::spawn(send_status(Arc::clone(&ctx)));
    let opener = tokio::spawn(open_all(Arc::clone(&ctx), subscriptions));
    follow_commands(&mut stdin, &ctx).await;
    ctx.cancel.cancel();
    let mut tasks = opener.await?;
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        tasks.abort_all();
    }
    ticker.abort();
    let _ = ctx.out.send(OutLine::Done(ctx.counters.snapshot()));
    drop(ctx);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    Ok(())
}

/// Writes the lines to stdout, as many as are waiting in one write, until
/// the `done` line or the coordinator goes away.
async fn write_lines(mut lines: mpsc::UnboundedReceiver<OutLine>) {
    let mut stdout = tokio::io::stdout();
    let mut batch = Vec::with_capacity(64 * 1024);
    while let Some(line) = lines.recv().await {
        let done = matches!(line, OutLine::Done(_));
        serde_json::to_writer(&mut batch, &line).expect("serializable");
        batch.push(b'\n');
        while let Ok(line) = lines.try_recv() {
            serde_json::to_writer(&mut batch, &line).expect("serializable");
            batch.push(b'\n');
            if batch.len() > 60_000 {
                break;
            }
        }
        if stdout.write_all(&batch).await.is_err() {
            break;
        }
        let _ = stdout.flush().await;
        batch.clear();
        if done {
            break;
        }
    }
}

/// The subscriptions up to `open`; `None` when told to close first.
/// One connection to open: its number, path and `Authorization` header.
type Subscription = (u32, String, Option<String>);

async fn read_subscriptions(
    stdin: &mut Lines<BufReader<Stdin>>,
) -> anyhow::Result<Option<Vec<Subscription>>> {
    let mut subscriptions = Vec::new();
    while let Some(line) = stdin.next_line().await? {
        let line: InLine = serde_json::from_str(&line).context("bad stdin line")?;
        match (line.i, line.p, line.cmd.as_deref()) {
            (Some(i), Some(p), _) => subscriptions.push((i, p, line.a)),
            (_, _, Some("open")) => break,
            (_, _, Some("close")) => return Ok(None),
            _ => bail!("unexpected stdin line"),
        }
    }
    Ok(Some(subscriptions))
}

/// A `status` line every 250 ms, until aborted.
async fn send_status(ctx: Arc<Ctx>) {
    let mut interval = tokio::time::interval(Duration::from_millis(250));
    loop {
        interval.tick().await;
        if ctx
            .out
            .send(OutLine::Status(ctx.counters.snapshot()))
            .is_err()
        {
            break;
        }
    }
}

/// Opens every subscription, `--connect-concurrency` set-ups at a time,
/// from the source addresses in turn; answers the connections' tasks.
async fn open_all(ctx: Arc<Ctx>, subscriptions: Vec<Subscription>) -> JoinSet<()> {
    let gate = Arc::new(Semaphore::new(ctx.args.connect_concurrency.max(1)));
    let sources = &ctx.args.sources;
    let mut tasks = JoinSet::new();
    for (n, (i, path, authorization)) in subscriptions.into_iter().enumerate() {
        let permit = tokio::select! {
            () = ctx.cancel.cancelled() => break,
            permit = Arc::clone(&gate).acquire_owned() => permit.expect("never closed"),
        };
        let source = (!sources.is_empty()).then(|| sources[n % sources.len()]);
        let watch = stream::Watch::new(i, path, authorization, source, permit);
        let _ = ctx
            .counters
            .first_connect_ns
            .compare_exchange(0, mono_ns(), Relaxed, Relaxed);
        tasks.spawn(stream::watch_loop(watch, Arc::clone(&ctx)));
    }
    tasks
}

/// Follows the commands after `open` until told to close (or the
/// coordinator goes away).
async fn follow_commands(stdin: &mut Lines<BufReader<Stdin>>, ctx: &Ctx) {
    loop {
        match stdin.next_line().await {
            Ok(Some(line)) if line.contains("close") => break,
            Ok(Some(line)) if line.contains("storm") => ctx.storm.store(true, Relaxed),
            Ok(Some(line)) if line.contains("drop") => {
                ctx.storm.store(true, Relaxed);
                ctx.dropped.cancel();
            }
            Ok(Some(_)) => continue,
            _ => break,
        }
    }
}
