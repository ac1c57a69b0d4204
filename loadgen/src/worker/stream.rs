//! One watched connection, across reconnects, as a browser page would
//! hold it: EventSource's rules (resume with `Last-Event-ID`, reconnect
//! after a pause, give up a stream silent for too long), and the counts
//! the run is judged by: ready, terminal events, duplicates, results other
//! than the one reported, streams served again after a storm.
//!
//! Memory matters here: a worker holds ~15k of these. Each open stream is
//! a socket, one read buffer and the parser's reused strings; events are
//! handled where they lie in the buffer, never collected.

use std::{
    net::IpAddr,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use anyhow::{Context, bail};
use payments_proto::{contract::HEARTBEAT_EVENT, payments::v1::OrderStatus};
use service_kit::wire::{self, BodyDecoder, sse};
use tokio::{io::AsyncWriteExt, net::TcpStream, sync::OwnedSemaphorePermit};

use super::Ctx;
use crate::{clock::mono_ns, http, protocol::OutLine, target::Target};

/// Heartbeat intervals of silence after which a stream is reopened (the
/// pages' `assets/live-stream.js` uses the same).
const WATCHDOG_INTERVALS: f64 = 2.5;
/// The gateway's default heartbeat, until a stream announces its own.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);
/// What the coordinator reports for every order.
const REPORTED_RESULT: &str = "succeeded";

/// What one watched connection has seen, across reconnects.
pub struct Watch {
    i: u32,
    path: String,
    authorization: Option<String>,
    source: Option<IpAddr>,
    last_id: Option<String>,
    last_seq: u64,
    saw_created: bool,
    got_terminal: bool,
    ready: bool,
    /// Served again since the storm (see [`mark_restored`]).
    restored: bool,
    /// Already closed by a `drop`.
    dropped: bool,
    /// A place among the connections being set up; given back once ready.
    permit: Option<OwnedSemaphorePermit>,
    /// The gateway's heartbeat interval, as its heartbeat event announces
    /// it: a stream silent for WATCHDOG_INTERVALS of them is given up and
    /// reopened, as the gateway's own pages do.
    heartbeat: Duration,
}

impl Watch {
    pub fn new(
        i: u32,
        path: String,
        authorization: Option<String>,
        source: Option<IpAddr>,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        Self {
            i,
            path,
            authorization,
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
        }
    }

    /// How long the stream may stay silent.
    fn watchdog(&self) -> Duration {
        self.heartbeat.mul_f64(WATCHDOG_INTERVALS)
    }
}

/// How a stream ended well.
enum End {
    /// Saw the terminal event (and, for the gateway, the end of the response).
    Finished,
    /// 204: the server says there is nothing more.
    NoContent,
}

/// Holds `watch`'s stream open, reopening it after a failure, until it
/// finished, failed `--max-attempts` times, or the worker is closing.
pub async fn watch_loop(mut watch: Watch, ctx: Arc<Ctx>) {
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
        let error = match result {
            Ok(end) => return ended(end, &mut watch, &ctx),
            Err(error) => error,
        };
        failures += 1;
        let Some(delay) = retry_delay(failures, &error, &watch, &ctx) else {
            return;
        };
        tokio::select! {
            () = ctx.cancel.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

fn ended(end: End, watch: &mut Watch, ctx: &Ctx) {
    mark_restored(watch, ctx);
    if matches!(end, End::NoContent) && !watch.got_terminal {
        ctx.counters.no_content.fetch_add(1, Relaxed);
        ctx.error(watch.i, "204 before the terminal event was seen".into());
    }
}

/// After a failed attempt: the pause before the next, or `None` (counted
/// as failed) once `--max-attempts` attempts failed.
fn retry_delay(failures: u32, error: &anyhow::Error, watch: &Watch, ctx: &Ctx) -> Option<Duration> {
    if failures >= ctx.args.max_attempts {
        ctx.counters.failed.fetch_add(1, Relaxed);
        ctx.error(
            watch.i,
            format!("gave up after {failures} attempts: {error:#}"),
        );
        return None;
    }
    if watch.ready {
        ctx.counters.reconnects.fetch_add(1, Relaxed);
    }
    // EventSource's reconnect, shortened (the gateway says 2000 ms); none
    // when a storm sends every connection to the failover server at once,
    // as a proxy would.
    if ctx.storm.load(Relaxed) && !watch.restored {
        Some(Duration::ZERO)
    } else {
        Some(Duration::from_millis(100 * u64::from(failures)))
    }
}

/// Counts `watch` as served again after the storm, once.
fn mark_restored(watch: &mut Watch, ctx: &Ctx) {
    if ctx.storm.load(Relaxed) && !watch.restored {
        watch.restored = true;
        ctx.counters.restored.fetch_add(1, Relaxed);
        ctx.counters.last_restored_ns.fetch_max(mono_ns(), Relaxed);
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

/// One connection: opened, then read until its terminal event and end.
async fn attempt(watch: &mut Watch, ctx: &Ctx) -> anyhow::Result<End> {
    // A connection opened after the storm began goes to the failover
    // server, and only its answer counts as the stream served again.
    let after_storm = ctx.storm.load(Relaxed);
    let Some(mut stream) = Stream::open(watch, ctx, after_storm).await? else {
        return Ok(End::NoContent);
    };
    loop {
        if let Some(end) = stream.handle_read(watch, ctx, after_storm)? {
            return Ok(end);
        }
        if stream.framing.is_done() || stream.read_more(watch).await? == 0 {
            break;
        }
    }
    if watch.got_terminal {
        Ok(End::Finished)
    } else {
        bail!("stream ended before the terminal event")
    }
}

/// An open event stream: the socket, the bytes read and not yet handled,
/// and where the transfer framing and the event parser stand.
struct Stream {
    socket: TcpStream,
    raw: Vec<u8>,
    framing: BodyDecoder,
    parser: sse::Parser,
}

impl Stream {
    /// Connects, asks for the stream (resuming after the last id seen) and
    /// reads the answer's head; `None` on a 204.
    async fn open(watch: &mut Watch, ctx: &Ctx, after_storm: bool) -> anyhow::Result<Option<Self>> {
        let target = ctx.args.target;
        let mut socket = tokio::time::timeout(
            Duration::from_secs(10),
            http::connect(ctx.server(after_storm), watch.source),
        )
        .await
        .context("connect timed out")?
        .context("connect")?;
        let mut headers = vec![
            ("Host", ctx.host.as_str()),
            ("Accept", "text/event-stream"),
            ("Cache-Control", "no-cache"),
        ];
        headers.extend(watch.last_id.as_deref().map(|id| ("Last-Event-ID", id)));
        headers.extend(watch.authorization.as_deref().map(|a| ("Authorization", a)));
        socket
            .write_all(&wire::encode_request("GET", &watch.path, &headers, None)?)
            .await?;
        let mut raw = Vec::with_capacity(512);
        let head = tokio::time::timeout(
            watch.watchdog().min(Duration::from_secs(30)),
            wire::read_head(&mut socket, &mut raw),
        )
        .await
        .context("response head timed out")??;
        match head.status {
            // nchan sends nothing on subscribing: its 200 is the stream served.
            200 if after_storm && target == Target::Nchan => mark_restored(watch, ctx),
            200 => {}
            204 => return Ok(None),
            status => bail!("HTTP {status}"),
        }
        if target == Target::Nchan {
            mark_ready(watch, ctx);
        }
        Ok(Some(Self {
            socket,
            raw,
            framing: BodyDecoder::for_response(&head)?,
            parser: sse::Parser::default(),
        }))
    }

    /// Handles every frame the bytes read so far complete, where they lie;
    /// `Some` when the stream is done with (what is left unread then no
    /// longer matters).
    fn handle_read(
        &mut self,
        watch: &mut Watch,
        ctx: &Ctx,
        after_storm: bool,
    ) -> anyhow::Result<Option<End>> {
        let mut used = 0;
        loop {
            let step = self.framing.decode(&self.raw[used..])?;
            if step.consumed == 0 {
                break;
            }
            used += step.consumed;
            let mut body = step.data;
            while let Some(frame) = self.parser.next_frame(&mut body) {
                if let Some(end) = on_frame(frame, watch, ctx, after_storm)? {
                    return Ok(Some(end));
                }
            }
        }
        self.raw.drain(..used);
        Ok(None)
    }

    /// One more read; 0 at the end of the stream.
    async fn read_more(&mut self, watch: &Watch) -> anyhow::Result<usize> {
        let read = wire::read_some(&mut self.socket, &mut self.raw);
        if watch.got_terminal {
            // The gateway ends the response right after the final event.
            match tokio::time::timeout(Duration::from_secs(5), read).await {
                Ok(read) => Ok(read?),
                Err(_) => bail!("response did not end after the terminal event"),
            }
        } else {
            // A stream silent this long is dead (a frozen gateway, a proxy
            // holding a dead upstream): reopen it, resuming after the last id.
            let watchdog = watch.watchdog();
            match tokio::time::timeout(watchdog, read).await {
                Ok(read) => Ok(read?),
                Err(_) => bail!("stream silent for {watchdog:?}"),
            }
        }
    }
}

/// One frame, read as EventSource does (an `id:` is the id to resume
/// after; only a frame with data is an event), then counted; `Some` when
/// the stream is done with.
fn on_frame(
    frame: &sse::Frame,
    watch: &mut Watch,
    ctx: &Ctx,
    after_storm: bool,
) -> anyhow::Result<Option<End>> {
    let target = ctx.args.target;
    if let Some(id) = frame.id() {
        remember_last_id(&mut watch.last_id, id);
    }
    let Some(data) = frame.data() else {
        return Ok(None);
    };
    let event = frame.event().unwrap_or_default();
    if target == Target::Gateway && event == HEARTBEAT_EVENT {
        if let Some(interval) = heartbeat_interval(data) {
            watch.heartbeat = interval;
        }
        // The gateway's stream is served once its heartbeat comes; a lone
        // `retry:` frame (come back later) is not.
        if after_storm {
            mark_restored(watch, ctx);
        }
        return Ok(None);
    }
    ctx.counters.events.fetch_add(1, Relaxed);
    if target == Target::Gateway && !next_in_sequence(frame.id(), event, watch, ctx)? {
        return Ok(None);
    }
    if is_terminal(target, event, data) {
        return Ok(on_terminal(event, watch, ctx));
    }
    Ok(None)
}

/// Keeps `id` as the one to resume after, in the string already there.
fn remember_last_id(last_id: &mut Option<String>, id: &str) {
    match last_id {
        Some(last) => {
            last.clear();
            last.push_str(id);
        }
        None => *last_id = Some(id.to_owned()),
    }
}

/// The gateway numbers its events (the id is the order's sequence): one
/// not after the last seen is a duplicate, counted and skipped. Answers
/// whether the event is new.
fn next_in_sequence(
    id: Option<&str>,
    event: &str,
    watch: &mut Watch,
    ctx: &Ctx,
) -> anyhow::Result<bool> {
    let seq: u64 = id
        .and_then(|id| id.parse().ok())
        .context("gateway event without a numeric id")?;
    if seq <= watch.last_seq {
        count_duplicate(watch, ctx);
        return Ok(false);
    }
    watch.last_seq = seq;
    if event == "created" {
        watch.saw_created = true;
        mark_ready(watch, ctx);
    }
    Ok(true)
}

/// The order's final event: its arrival time goes to the coordinator, a
/// second one is a duplicate; `Some` when the stream is done with.
fn on_terminal(event: &str, watch: &mut Watch, ctx: &Ctx) -> Option<End> {
    let target = ctx.args.target;
    if watch.got_terminal {
        count_duplicate(watch, ctx);
        return None;
    }
    watch.got_terminal = true;
    ctx.counters.terms.fetch_add(1, Relaxed);
    if target == Target::Gateway && event != REPORTED_RESULT {
        ctx.counters.wrong_result.fetch_add(1, Relaxed);
        ctx.error(
            watch.i,
            format!("saw {event:?}, but {REPORTED_RESULT:?} was reported"),
        );
    }
    let _ = ctx.out.send(OutLine::Term {
        i: watch.i,
        ns: mono_ns(),
    });
    if target == Target::Gateway && !watch.saw_created {
        ctx.counters.missing_created.fetch_add(1, Relaxed);
    }
    // nchan keeps the subscription open; a browser page would now close it.
    (target == Target::Nchan).then_some(End::Finished)
}

fn count_duplicate(watch: &Watch, ctx: &Ctx) {
    ctx.counters.dups.fetch_add(1, Relaxed);
    let _ = ctx.out.send(OutLine::Dup { i: watch.i });
}

/// The interval a heartbeat event's data (`{"interval_ms":N}`) announces.
fn heartbeat_interval(data: &str) -> Option<Duration> {
    let millis: u64 = data
        .strip_prefix("{\"interval_ms\":")?
        .strip_suffix('}')?
        .parse()
        .ok()?;
    (millis > 0).then(|| Duration::from_millis(millis))
}

fn is_terminal(target: Target, event: &str, data: &str) -> bool {
    match target {
        Target::Gateway => {
            OrderStatus::from_event_name(event).is_some_and(|status| status.is_terminal())
        }
        Target::Nchan => data.contains("succeeded"),
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
