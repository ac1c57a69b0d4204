//! `loadgen worker`: holds up to ~15k SSE connections in one process (the
//! host caps a process at 20,000 fds) and reports to the coordinator as JSON
//! lines on stdout.
//!
//! stdin:  `{"i":<conn>,"p":"<path>"}` lines, then `{"cmd":"open"}`; later
//!         `{"cmd":"storm"}` (the server is about to stop: from now on
//!         connect to the failover address, at once), `{"cmd":"drop"}` (the
//!         same, and close every stream now, as a proxy restart does), and
//!         `{"cmd":"close"}` (or EOF), which ends the worker.
//! stdout: `status` lines every 250 ms, one `term` line per terminal event
//!         (with the CLOCK_MONOTONIC time it was parsed), `dup` and `err`
//!         lines, and a final `done`.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use anyhow::{Context, bail};
use payments_proto::{contract::HEARTBEAT_EVENT, payments::v1::OrderStatus};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{
    Target,
    http::{self, Body, SseEvent, SseParser},
    mono_ns,
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

#[derive(Deserialize)]
struct InLine {
    i: Option<u32>,
    p: Option<String>,
    cmd: Option<String>,
}

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

#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum OutLine {
    Status(Status),
    Term { i: u32, ns: u64 },
    Dup { i: u32 },
    Err { i: u32, msg: String },
    Done(Status),
}

struct Ctx {
    args: WorkerArgs,
    host: String,
    counters: Counters,
    out: mpsc::UnboundedSender<OutLine>,
    cancel: CancellationToken,
    errors_reported: AtomicU64,
    /// Set by `storm`: connections go to the failover address.
    storm: std::sync::atomic::AtomicBool,
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

    /// Counts `watch` as served again after the storm, once.
    fn restored(&self, watch: &mut Watch) {
        if self.storm.load(Relaxed) && !watch.restored {
            watch.restored = true;
            self.counters.restored.fetch_add(1, Relaxed);
            self.counters.last_restored_ns.fetch_max(mono_ns(), Relaxed);
        }
    }
}

impl Ctx {
    fn error(&self, i: u32, msg: String) {
        // The first few errors are worth a line each; the counters carry the rest.
        if self.errors_reported.fetch_add(1, Relaxed) < 20 {
            let _ = self.out.send(OutLine::Err { i, msg });
        }
    }
}

/// What one watched connection has seen, across reconnects.
struct Watch {
    i: u32,
    path: String,
    source: Option<IpAddr>,
    last_id: Option<String>,
    last_seq: u64,
    saw_created: bool,
    got_terminal: bool,
    ready: bool,
    /// Served again since the storm (see [`Ctx::restored`]).
    restored: bool,
    /// Already closed by a `drop`.
    dropped: bool,
    permit: Option<OwnedSemaphorePermit>,
    /// The gateway's heartbeat interval, as its heartbeat event announces
    /// it: a stream silent for WATCHDOG_INTERVALS of them is given up and
    /// reopened, as the gateway's own pages do.
    heartbeat: Duration,
}

/// Heartbeat intervals of silence after which a stream is reopened (the
/// pages' `assets/live-stream.js` uses the same).
const WATCHDOG_INTERVALS: f64 = 2.5;
/// The gateway's default heartbeat, until a stream announces its own.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

enum End {
    /// Saw the terminal event (and, for the gateway, the end of the response).
    Finished,
    /// 204: the server says there is nothing more.
    NoContent,
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
    let (out, mut out_rx) = mpsc::unbounded_channel::<OutLine>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        let mut batch = Vec::with_capacity(64 * 1024);
        while let Some(line) = out_rx.recv().await {
            let done = matches!(line, OutLine::Done(_));
            serde_json::to_writer(&mut batch, &line).expect("serializable");
            batch.push(b'\n');
            while let Ok(line) = out_rx.try_recv() {
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
    });

    let ctx = Arc::new(Ctx {
        host: args.addr.to_string(),
        args,
        counters: Counters::default(),
        out,
        cancel: CancellationToken::new(),
        errors_reported: AtomicU64::new(0),
        storm: std::sync::atomic::AtomicBool::new(false),
        dropped: CancellationToken::new(),
    });

    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut subs = Vec::new();
    while let Some(line) = stdin.next_line().await? {
        let line: InLine = serde_json::from_str(&line).context("bad stdin line")?;
        match (line.i, line.p, line.cmd.as_deref()) {
            (Some(i), Some(p), _) => subs.push((i, p)),
            (_, _, Some("open")) => break,
            (_, _, Some("close")) => return Ok(()),
            _ => bail!("unexpected stdin line"),
        }
    }

    let ticker = {
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move {
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
        })
    };

    let gate = Arc::new(Semaphore::new(ctx.args.connect_concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let sources = ctx.args.sources.clone();
    let opener = {
        let ctx = Arc::clone(&ctx);
        async move {
            for (n, (i, path)) in subs.into_iter().enumerate() {
                let permit = tokio::select! {
                    () = ctx.cancel.cancelled() => break,
                    permit = Arc::clone(&gate).acquire_owned() => permit.expect("never closed"),
                };
                let source = (!sources.is_empty()).then(|| sources[n % sources.len()]);
                let watch = Watch {
                    i,
                    path,
                    source,
                    last_id: None,
                    last_seq: 0,
                    saw_created: false,
                    got_terminal: false,
                    ready: false,
                    restored: false,
                    dropped: false,
                    permit: Some(permit),
                    heartbeat: DEFAULT_HEARTBEAT,
                };
                let _ =
                    ctx.counters
                        .first_connect_ns
                        .compare_exchange(0, mono_ns(), Relaxed, Relaxed);
                tasks.spawn(watch_loop(watch, Arc::clone(&ctx)));
            }
            tasks
        }
    };
    let opener = tokio::spawn(opener);

    // Run until told to close (or the coordinator goes away).
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

async fn watch_loop(mut watch: Watch, ctx: Arc<Ctx>) {
    let mut failures = 0u32;
    loop {
        let result = tokio::select! {
            () = ctx.cancel.cancelled() => return,
            // Closed from this side; reopened at once, to the failover server.
            () = ctx.dropped.cancelled(), if !watch.dropped => {
                watch.dropped = true;
                continue;
            }
            result = attempt(&mut watch, &ctx) => result,
        };
        match result {
            Ok(End::Finished) => {
                ctx.restored(&mut watch);
                return;
            }
            Ok(End::NoContent) => {
                ctx.restored(&mut watch);
                if !watch.got_terminal {
                    ctx.counters.no_content.fetch_add(1, Relaxed);
                    ctx.error(watch.i, "204 before the terminal event was seen".into());
                }
                return;
            }
            Err(error) => {
                failures += 1;
                if failures >= ctx.args.max_attempts {
                    ctx.counters.failed.fetch_add(1, Relaxed);
                    ctx.error(
                        watch.i,
                        format!("gave up after {failures} attempts: {error:#}"),
                    );
                    return;
                }
                if watch.ready {
                    ctx.counters.reconnects.fetch_add(1, Relaxed);
                }
                // EventSource's reconnect, shortened (the gateway says
                // 2000 ms); none when a storm sends every connection to
                // the failover server at once, as a proxy would.
                let delay = if ctx.storm.load(Relaxed) && !watch.restored {
                    Duration::ZERO
                } else {
                    Duration::from_millis(100 * u64::from(failures))
                };
                tokio::select! {
                    () = ctx.cancel.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// What the coordinator reports for every order.
const REPORTED_RESULT: &str = "succeeded";

/// The interval a heartbeat event's data (`{"interval_ms":N}`) announces.
fn heartbeat_interval(data: &str) -> Option<Duration> {
    let millis: u64 = data
        .strip_prefix("{\"interval_ms\":")?
        .strip_suffix('}')?
        .parse()
        .ok()?;
    (millis > 0).then(|| Duration::from_millis(millis))
}

fn is_terminal(target: Target, event: &SseEvent) -> bool {
    match target {
        Target::Gateway => {
            OrderStatus::from_event_name(&event.event).is_some_and(|status| status.is_terminal())
        }
        Target::Nchan => event.data.contains("succeeded"),
    }
}

fn mark_ready(watch: &mut Watch, ctx: &Ctx) {
    if !watch.ready {
        watch.ready = true;
        watch.permit = None;
        ctx.counters.ready.fetch_add(1, Relaxed);
        ctx.counters.last_ready_ns.fetch_max(mono_ns(), Relaxed);
    }
}

async fn attempt(watch: &mut Watch, ctx: &Ctx) -> anyhow::Result<End> {
    let target = ctx.args.target;
    // A connection opened after the storm began goes to the failover
    // server, and only its answer counts as the stream served again.
    let after_storm = ctx.storm.load(Relaxed);
    let mut stream = tokio::time::timeout(
        Duration::from_secs(10),
        http::connect(ctx.server(after_storm), watch.source),
    )
    .await
    .context("connect timed out")?
    .context("connect")?;
    let resume = match &watch.last_id {
        Some(id) => format!("Last-Event-ID: {id}\r\n"),
        None => String::new(),
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n{resume}\r\n",
        watch.path, ctx.host
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::with_capacity(512);
    let watchdog = watch.heartbeat.mul_f64(WATCHDOG_INTERVALS);
    let head = tokio::time::timeout(
        watchdog.min(Duration::from_secs(30)),
        http::read_head(&mut stream, &mut raw),
    )
    .await
    .context("response head timed out")??;
    match head.status {
        // nchan sends nothing on subscribing: its 200 is the stream served.
        200 if after_storm && target == Target::Nchan => ctx.restored(watch),
        200 => {}
        204 => return Ok(End::NoContent),
        status => bail!("HTTP {status}"),
    }
    if target == Target::Nchan {
        mark_ready(watch, ctx);
    }
    let mut body = Body::for_head(&head);
    let mut parser = SseParser::default();
    let mut plain = Vec::with_capacity(512);
    let mut events = Vec::new();
    let mut scratch = vec![0u8; 1024];
    loop {
        body.decode(&mut raw, &mut plain)?;
        parser.feed(&plain, &mut events);
        plain.clear();
        if parser.last_id.is_some() {
            watch.last_id.clone_from(&parser.last_id);
        }
        for event in events.drain(..) {
            if target == Target::Gateway && event.event == HEARTBEAT_EVENT {
                if let Some(interval) = heartbeat_interval(&event.data) {
                    watch.heartbeat = interval;
                }
                // The gateway's stream is served once its heartbeat comes;
                // a lone `retry:` frame (come back later) is not.
                if after_storm {
                    ctx.restored(watch);
                }
                continue;
            }
            ctx.counters.events.fetch_add(1, Relaxed);
            if target == Target::Gateway {
                let seq: u64 = event
                    .id
                    .as_deref()
                    .and_then(|id| id.parse().ok())
                    .context("gateway event without a numeric id")?;
                if seq <= watch.last_seq {
                    ctx.counters.dups.fetch_add(1, Relaxed);
                    let _ = ctx.out.send(OutLine::Dup { i: watch.i });
                    continue;
                }
                watch.last_seq = seq;
                if event.event == "created" {
                    watch.saw_created = true;
                    mark_ready(watch, ctx);
                }
            }
            if is_terminal(target, &event) {
                if watch.got_terminal {
                    ctx.counters.dups.fetch_add(1, Relaxed);
                    let _ = ctx.out.send(OutLine::Dup { i: watch.i });
                    continue;
                }
                watch.got_terminal = true;
                ctx.counters.terms.fetch_add(1, Relaxed);
                if target == Target::Gateway && event.event != REPORTED_RESULT {
                    ctx.counters.wrong_result.fetch_add(1, Relaxed);
                    ctx.error(
                        watch.i,
                        format!(
                            "saw {:?}, but {REPORTED_RESULT:?} was reported",
                            event.event
                        ),
                    );
                }
                let _ = ctx.out.send(OutLine::Term {
                    i: watch.i,
                    ns: mono_ns(),
                });
                if target == Target::Gateway && !watch.saw_created {
                    ctx.counters.missing_created.fetch_add(1, Relaxed);
                }
                if target == Target::Nchan {
                    // nchan keeps the subscription open; a browser page would now close it.
                    return Ok(End::Finished);
                }
            }
        }
        if body.is_done() {
            break;
        }
        let read = stream.read(&mut scratch);
        let n = if watch.got_terminal {
            // The gateway ends the response right after the final event.
            match tokio::time::timeout(Duration::from_secs(5), read).await {
                Ok(n) => n?,
                Err(_) => bail!("response did not end after the terminal event"),
            }
        } else {
            // A stream silent this long is dead (a frozen gateway, a proxy
            // holding a dead upstream): reopen it, resuming after the last id.
            let watchdog = watch.heartbeat.mul_f64(WATCHDOG_INTERVALS);
            match tokio::time::timeout(watchdog, read).await {
                Ok(n) => n?,
                Err(_) => bail!("stream silent for {watchdog:?}"),
            }
        };
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&scratch[..n]);
    }
    if watch.got_terminal {
        Ok(End::Finished)
    } else {
        bail!("stream ended before the terminal event")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_takes_its_interval_from_the_gateways_heartbeat_and_ignores_anything_else() {
        assert_eq!(
            heartbeat_interval("{\"interval_ms\":2000}"),
            Some(Duration::from_secs(2))
        );
        for other in [
            "{\"interval_ms\":0}",
            "{\"interval_ms\":-1}",
            "{}",
            "2000",
            "",
        ] {
            assert_eq!(heartbeat_interval(other), None, "{other}");
        }
    }
}
