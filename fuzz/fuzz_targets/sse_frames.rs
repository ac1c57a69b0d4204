// Property: any stream of rendered frames (retry, heartbeats, events with arbitrary data), cut into any chunks, reads back through a WHATWG event-stream parser as exactly the events rendered.
#![no_main]

use std::{convert::Infallible, sync::Arc};

use axum::{
    extract::FromRequestParts,
    http::{Request, request::Parts},
};
use bytes::Bytes;
use eventsource_stream::{Event, EventStream};
use futures::{StreamExt, stream};
use libfuzzer_sys::fuzz_target;
use payments_fuzz::{Choices, NoCore};
use payments_proto::contract::HEARTBEAT_EVENT;
use sse_gateway::{
    AppState, Config,
    event::{EventData, OrderId, Status, WireEvent},
    extract::ResumeFrom,
};


fn order_id(choices: &mut Choices) -> OrderId {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&choices.draw().to_le_bytes());
    bytes[8..].copy_from_slice(&choices.draw().to_le_bytes());
    OrderId::parse(&uuid::Uuid::from_bytes(bytes).to_string()).expect("a UUID")
}

/// What a WHATWG parser makes of text split into lines: CRLF, CR and LF
/// each end a line, and the lines of `data` are joined with LF.
fn normalized(data: &str) -> String {
    data.replace("\r\n", "\n").replace('\r', "\n")
}

// The input is the data of one or more events, separated by 0xFF (a byte
// UTF-8 never uses); invalid UTF-8 becomes U+FFFD, as data is a `&str`.
// Each piece is rendered both as raw text and inside the JSON the upstream
// renders; the rest (sequences, statuses, heartbeats, settings, where the
// connection cuts the bytes) is chosen from the input.
fuzz_target!(|raw: &[u8]| {
    let mut choices = Choices::new(raw);
    let config = config(choices.interesting_u64(), choices.interesting_u64());
    let state = AppState::new(&config, Arc::new(NoCore)).expect("the default config is valid");
    let heartbeat_data = format!("{{\"interval_ms\":{}}}", config.heartbeat().as_millis());

    // The retry frame sets the reconnection time and dispatches nothing.
    // This parser reports `retry` only on the event its field came with, so
    // the frame's field is read by ending its event with a data line.
    let retry = read(std::slice::from_ref(&state.retry_frame));
    assert_eq!(retry, [], "the retry frame dispatches no event");
    let probe = read(&[
        state.retry_frame.slice(..state.retry_frame.len() - 1),
        Bytes::from_static(b"data: probe\n\n"),
    ]);
    assert_eq!(
        probe.first().and_then(|event| event.retry),
        Some(config.sse_retry()),
        "the retry frame's field is a valid retry: {:?}",
        state.retry_frame
    );

    // A stream as `routes::streams` writes it: retry, heartbeat, then
    // events and heartbeats.
    let mut body = vec![state.retry_frame.clone(), state.heartbeat_frame.clone()];
    // No event yet: the first heartbeat has no last event id.
    let mut last_id = String::new();
    let mut expected = vec![heartbeat(&heartbeat_data, &last_id)];
    for piece in raw.split(|byte| *byte == 0xFF).take(32) {
        let data = String::from_utf8_lossy(piece);
        let sequence = choices.interesting_u64();
        let status = Status::ALL[choices.below(Status::ALL.len() as u64) as usize];
        let order_id = order_id(&mut choices);

        // Any text as `data`: a WHATWG parser reads its lines back joined
        // with LF (CRLF and CR end lines too, so they come back as LF).
        let event = WireEvent::new(sequence, order_id, status, &data);
        last_id = sequence.to_string();
        body.push(event.frame);
        expected.push(Event {
            event: status.name().to_owned(),
            data: normalized(&data),
            id: last_id.clone(),
            retry: None,
        });

        if choices.below(3) == 0 {
            body.push(state.heartbeat_frame.clone());
            // No `id:`: the resume point stays the last event's.
            expected.push(heartbeat(&heartbeat_data, &last_id));
        }

        // What the upstream renders: the page reads `data` as JSON, so it
        // must come back as the JSON exactly.
        let sequence = choices.interesting_u64();
        let data = EventData {
            sequence,
            order_id,
            status,
            amount_minor: choices.interesting_i64(),
            // The free texts are where hostile text reaches an event; the
            // rest is as the core sends it.
            currency: "EUR",
            description: &data,
            reason: if choices.below(2) == 0 { &data } else { "" },
            occurred_at: "2025-11-30T11:36:07.123Z".to_owned(),
        };
        let event = WireEvent::from_data(&data).expect("serializable");
        last_id = sequence.to_string();
        body.push(event.frame);
        expected.push(Event {
            event: status.name().to_owned(),
            data: serde_json::to_string(&data).expect("serializable"),
            id: last_id.clone(),
            retry: None,
        });
    }

    // Read in pieces cut anywhere: inside a UTF-8 sequence, between CR and
    // LF, and always right after each CR.
    let parsed = read(&cut(&body, &mut choices));
    assert_eq!(parsed, expected);

    // The id the browser keeps is what it sends back as Last-Event-ID, and
    // resumes right after that event.
    for event in parsed.iter().filter(|event| !event.id.is_empty()) {
        let expected: u64 = event.id.parse().expect("ids are sequences");
        assert_eq!(resume(&event.id), Some(expected));
    }
});

fn heartbeat(data: &str, id: &str) -> Event {
    Event {
        event: HEARTBEAT_EVENT.to_owned(),
        data: data.to_owned(),
        id: id.to_owned(),
        retry: None,
    }
}

/// The frames in the reads a connection may deliver: cut at a few chosen
/// offsets, after every CR (so a CR LF pair is split across reads), and
/// half the time between frames too (each frame is one write of the
/// gateway, and small reads keep this target fast: the parser's buffer
/// handling is quadratic in the bytes of one read).
fn cut(frames: &[Bytes], choices: &mut Choices) -> Vec<Bytes> {
    let bytes = frames.concat();
    let mut at: Vec<usize> = (0..choices.below(8))
        .map(|_| choices.below(bytes.len() as u64 + 1) as usize)
        .collect();
    at.extend(
        bytes
            .iter()
            .enumerate()
            .filter(|(_, byte)| **byte == b'\r')
            .map(|(index, _)| index + 1),
    );
    if choices.below(2) == 0 {
        at.extend(frames.iter().scan(0, |end, frame| {
            *end += frame.len();
            Some(*end)
        }));
    }
    at.extend([0, bytes.len()]);
    at.sort_unstable();
    at.dedup();
    at.windows(2)
        .map(|window| Bytes::copy_from_slice(&bytes[window[0]..window[1]]))
        .collect()
}

/// The events a browser's EventSource dispatches for these reads.
fn read(chunks: &[Bytes]) -> Vec<Event> {
    let chunks = chunks.iter().cloned().map(Ok::<_, Infallible>);
    futures::executor::block_on(EventStream::new(stream::iter(chunks)).collect::<Vec<_>>())
        .into_iter()
        .map(|event| event.expect("the stream parses"))
        .collect()
}

fn resume(last_event_id: &str) -> Option<u64> {
    let request = Request::get("/api/events").header("last-event-id", last_event_id);
    let (mut parts, ()): (Parts, ()) = request.body(()).expect("a request").into_parts();
    futures::executor::block_on(ResumeFrom::from_request_parts(&mut parts, &()))
        .expect("a rendered id is a valid resume point")
        .0
}

/// The gateway's defaults (as with no flags but `--dev`, for its
/// credentials), with the two settings the frames depend on.
fn config(heartbeat_secs: u64, sse_retry_ms: u64) -> Config {
    #[derive(clap::Parser)]
    struct Defaults {
        #[command(flatten)]
        config: Config,
    }
    let mut config = <Defaults as clap::Parser>::parse_from(["sse-gateway", "--dev"]).config;
    config.heartbeat_secs = heartbeat_secs;
    config.sse_retry_ms = sse_retry_ms;
    config
}
