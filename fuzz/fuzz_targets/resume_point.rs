// Property: Last-Event-ID, ?last_event_id= and order ids parse without panicking, only from what they claim to be, and every value the gateway renders reads back as itself.
#![no_main]

use axum::{
    extract::FromRequestParts,
    http::{HeaderValue, Request, request::Parts},
};
use libfuzzer_sys::fuzz_target;
use payments_fuzz::{Choices, decimal};
use sse_gateway::{event::OrderId, extract::ResumeFrom, routes::is_event_stream_path};

// The input is one value as a client sends it: a `Last-Event-ID`, a query
// string, or an order id. Each is tried in every role.
fuzz_target!(|raw: &[u8]| {
    let mut choices = Choices::new(raw);
    last_event_id(raw);
    query(raw);
    rendered_ids_read_back(&mut choices);
    if let Ok(text) = std::str::from_utf8(raw) {
        order_id(text);
    }
    canonical_order_ids(&mut choices);
});

/// `ResumeFrom` of a request for `uri` with an optional `Last-Event-ID`;
/// `None` when no such request can be built (no client can send it).
fn resume(uri: &str, header: Option<&[u8]>) -> Option<Result<Option<u64>, String>> {
    let mut request = Request::get(uri);
    if let Some(value) = header {
        request = request.header("last-event-id", HeaderValue::from_bytes(value).ok()?);
    }
    let (mut parts, ()): (Parts, ()) = request.body(()).ok()?.into_parts();
    let extracted = futures::executor::block_on(ResumeFrom::from_request_parts(&mut parts, &()));
    Some(
        extracted
            .map(|ResumeFrom(after)| after)
            .map_err(|rejection| format!("{rejection:?}")),
    )
}

/// As a header, beside no query, a good one and a malformed one: a
/// malformed value is refused wherever it is; otherwise the header's
/// sequence wins, and an empty header leaves the query's.
fn last_event_id(raw: &[u8]) {
    for (uri, from_query) in [
        ("/api/events", Some(None)),
        ("/api/events?last_event_id=5", Some(Some(5))),
        ("/api/events?last_event_id=x", None),
    ] {
        let Some(outcome) = resume(uri, Some(raw)) else {
            return;
        };
        let expected = match (decimal(raw), from_query) {
            (Some(from_header), Some(from_query)) => Some(from_header.or(from_query)),
            _ => None,
        };
        match (expected, &outcome) {
            (Some(expected), Ok(got)) => assert_eq!(expected, *got, "{raw:?} with {uri}"),
            (None, Err(_)) => {}
            (expected, got) => panic!("{raw:?} with {uri}: expected {expected:?}, got {got:?}"),
        }
    }
}

/// As a whole query string, and percent-encoded as the `last_event_id`
/// parameter (what a page without header control sends).
fn query(raw: &[u8]) {
    if let Ok(text) = std::str::from_utf8(raw) {
        // Whatever it holds, no panic; its decoding is serde's.
        let _ = resume(&format!("/api/events?{text}"), None);
    }
    let encoded: String = raw.iter().map(|byte| format!("%{byte:02X}")).collect();
    let outcome = resume(&format!("/api/events?last_event_id={encoded}"), None)
        .expect("a percent-encoded query is a valid URI");
    // Decoded, the parameter is `raw` again; header rules apply to it (but
    // it may hold what a header cannot, such as a line feed).
    let expected = match std::str::from_utf8(raw) {
        Ok(text) => decimal(text.trim().as_bytes()),
        Err(_) => None,
    };
    match (expected, &outcome) {
        (Some(expected), Ok(got)) => assert_eq!(expected, *got, "query {raw:?}"),
        (None, Err(_)) => {}
        (expected, got) => panic!("query {raw:?}: expected {expected:?}, got {got:?}"),
    }
}

/// What a browser echoes back is the `id:` the gateway rendered, verbatim
/// (EventSource keeps the field's value as is), maybe with whitespace
/// around it from a proxy: it resumes right after that event.
fn rendered_ids_read_back(choices: &mut Choices) {
    let sequence = choices.interesting_u64();
    let id = sequence.to_string();
    let padded = format!(
        "{}{id}{}",
        [" ", "", "\t"][choices.below(3) as usize],
        [" ", "", "\t"][choices.below(3) as usize]
    );
    assert_eq!(
        resume("/api/events", Some(padded.as_bytes())),
        Some(Ok(Some(sequence))),
        "header {padded:?}"
    );
    assert_eq!(
        resume(&format!("/api/events?last_event_id={id}"), None),
        Some(Ok(Some(sequence)))
    );
}

/// Any spelling that parses has one canonical form, which parses back to
/// the same id: the hub routes by it.
fn order_id(text: &str) {
    let Ok(id) = OrderId::parse(text) else {
        return;
    };
    let canonical = id.to_string();
    assert_eq!(canonical.len(), 36);
    assert!(
        canonical
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'-'))
    );
    assert_eq!(OrderId::parse(&canonical).ok(), Some(id));
    assert_eq!(
        OrderId::parse(&text.to_ascii_uppercase()).ok(),
        Some(id),
        "case does not matter"
    );
}

/// Every id payment-core hands out, in every spelling it may come back in,
/// is the same order, and its stream path is served off hyper.
fn canonical_order_ids(choices: &mut Choices) {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&choices.draw().to_le_bytes());
    bytes[8..].copy_from_slice(&choices.draw().to_le_bytes());
    let uuid = uuid::Uuid::from_bytes(bytes);
    let id = OrderId::parse(&uuid.hyphenated().to_string()).expect("a hyphenated UUID");
    for spelling in [
        uuid.hyphenated().to_string().to_uppercase(),
        uuid.simple().to_string(),
        uuid.braced().to_string(),
        uuid.urn().to_string(),
    ] {
        assert_eq!(OrderId::parse(&spelling).ok(), Some(id), "{spelling}");
    }
    assert!(is_event_stream_path(&format!("/api/orders/{id}/events")));
}
