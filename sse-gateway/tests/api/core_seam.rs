//! The gateway in front of a fake core that commits, fails and stalls on
//! cue: the delivery rules of a stream's set-up, which a real core hits
//! only by chance. Orders a test means the gateway to read from the core
//! are created before the gateway starts: it never saw them created, so
//! they are not among its recent orders.

use std::{sync::Arc, time::Duration};

use sse_gateway::event::Status;
use tokio::sync::Notify;

use crate::{
    fake_core::{FakeCore, HistoryCall},
    helpers::{ADMIN_TOKEN, BOUND, names, spawn_with_fake_core},
};
use testkit::eventually;

fn events_path(order_id: impl std::fmt::Display) -> String {
    format!("/api/orders/{order_id}/events")
}

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

#[tokio::test]
async fn an_event_committed_while_the_history_is_read_still_reaches_the_stream() {
    let core = FakeCore::new();
    let (order, secret) = core.create();
    let gateway = spawn_with_fake_core(Arc::clone(&core), |_| {}).await;
    // Committed after the history was read, and published to the hub before
    // the history answer: only a connection already registered can get it.
    core.on_history(order, HistoryCall::CommitAfterReading(Status::Succeeded));
    let mut stream = gateway
        .open(&events_path(order), &[("Authorization", &bearer(&secret))])
        .await;
    let events = stream.events_until_end(BOUND).await.expect("stream ends");
    assert_eq!(names(&events), ["created", "succeeded"]);
}

#[tokio::test]
async fn an_event_committed_while_the_core_is_slow_is_sent_once_and_other_orders_are_not_held_up() {
    let core = FakeCore::new();
    let (slow_order, slow_secret) = core.create();
    let (quick_order, quick_secret) = core.create();
    let gateway = spawn_with_fake_core(Arc::clone(&core), |_| {}).await;
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    core.on_history(
        slow_order,
        HistoryCall::WaitFor {
            entered: Arc::clone(&entered),
            release: Arc::clone(&release),
        },
    );
    // The response head comes only after the history: open in the background.
    let (addr, slow_path, slow_bearer) =
        (gateway.addr, events_path(slow_order), bearer(&slow_secret));
    let slow = tokio::spawn(async move {
        testkit::sse::SseConnection::open(addr, &slow_path, &[("Authorization", &slow_bearer)])
            .await
    });
    entered.notified().await;

    // Another order is served while the first waits for the core (both
    // created before the gateway started: both are read from the core).
    let mut quick = gateway
        .open(
            &events_path(quick_order),
            &[("Authorization", &bearer(&quick_secret))],
        )
        .await;
    assert_eq!(quick.expect_event_name().await, "created");
    assert_eq!(core.histories_read(), 2);

    // Committed while the slow one waits: in its history *and* live.
    let processing = core.commit(slow_order, Status::Processing);
    core.delivered(processing.sequence).await;
    release.notify_one();
    let mut slow = tokio::time::timeout(BOUND, slow)
        .await
        .expect("answered once released")
        .expect("task")
        .expect("SSE connection");
    assert_eq!(slow.expect_event_name().await, "created");
    assert_eq!(slow.expect_event_name().await, "processing");
    core.commit(slow_order, Status::Succeeded);
    let rest = slow.events_until_end(BOUND).await.expect("stream ends");
    assert_eq!(
        names(&rest),
        ["succeeded"],
        "processing once, then the result"
    );
}

#[tokio::test]
async fn a_core_that_fails_transiently_tells_the_browser_to_retry_instead_of_giving_up() {
    let core = FakeCore::new();
    let (order, secret) = core.create();
    let gateway = spawn_with_fake_core(Arc::clone(&core), |_| {}).await;
    core.on_history(order, HistoryCall::Unavailable);
    let mut refused = gateway
        .open(&events_path(order), &[("Authorization", &bearer(&secret))])
        .await;
    assert_eq!(refused.status, 200, "EventSource gives up on anything else");
    let first = refused
        .next_frame(BOUND)
        .await
        .expect("read")
        .expect("a frame");
    assert_eq!(first.retry, Some(2000));
    assert!(
        refused
            .events_until_end(BOUND)
            .await
            .expect("ends")
            .is_empty()
    );

    // The retry is served.
    let mut retried = gateway
        .open(&events_path(order), &[("Authorization", &bearer(&secret))])
        .await;
    assert_eq!(retried.expect_event_name().await, "created");
}

#[tokio::test]
async fn a_core_that_never_answers_is_given_up_on_within_the_call_bound() {
    let core = FakeCore::new();
    let (order, secret) = core.create();
    let gateway =
        spawn_with_fake_core(Arc::clone(&core), |config| config.core_timeout_ms = 200).await;
    core.on_history(order, HistoryCall::Hang);
    let mut stream = gateway
        .open(&events_path(order), &[("Authorization", &bearer(&secret))])
        .await;
    assert_eq!(stream.status, 200);
    let rest = tokio::time::timeout(Duration::from_secs(5), stream.events_until_end(BOUND))
        .await
        .expect("ends long before the read bound");
    assert!(rest.expect("ends").is_empty(), "only the retry delay");
}

#[tokio::test]
async fn a_stream_for_an_order_the_gateway_saw_created_opens_without_a_core_call() {
    let core = FakeCore::new();
    let gateway = spawn_with_fake_core(Arc::clone(&core), |_| {}).await;
    let (order, secret) = core.create();
    let processing = core.commit(order, Status::Processing);
    core.delivered(processing.sequence).await;
    // Would refuse the stream, were it asked.
    core.on_history(order, HistoryCall::Unavailable);
    let mut stream = gateway
        .open(&events_path(order), &[("Authorization", &bearer(&secret))])
        .await;
    assert_eq!(stream.expect_event_name().await, "created");
    assert_eq!(stream.expect_event_name().await, "processing");
    core.commit(order, Status::Succeeded);
    let rest = stream.events_until_end(BOUND).await.expect("stream ends");
    assert_eq!(names(&rest), ["succeeded"]);
    assert_eq!(core.histories_read(), 0);

    // Resumed after the first event, from memory too.
    let mut resumed = gateway
        .open(
            &events_path(order),
            &[("Authorization", &bearer(&secret)), ("Last-Event-ID", "1")],
        )
        .await;
    let rest = resumed.events_until_end(BOUND).await.expect("stream ends");
    assert_eq!(names(&rest), ["processing", "succeeded"]);
    // Past the end: 204, still without the core.
    let done = gateway
        .open(
            &events_path(order),
            &[("Authorization", &bearer(&secret)), ("Last-Event-ID", "3")],
        )
        .await;
    assert_eq!(done.status, 204);
    // A wrong secret is refused from memory exactly as the core would.
    let wrong = gateway
        .open(
            &events_path(order),
            &[("Authorization", &bearer("cs_wrong"))],
        )
        .await;
    assert_eq!(wrong.status, 404);
    assert_eq!(core.histories_read(), 0);
}

#[tokio::test]
async fn an_order_created_before_the_gateway_started_is_read_from_the_core() {
    let core = FakeCore::new();
    let (order, secret) = core.create();
    let gateway = spawn_with_fake_core(Arc::clone(&core), |_| {}).await;
    let mut stream = gateway
        .open(&events_path(order), &[("Authorization", &bearer(&secret))])
        .await;
    assert_eq!(stream.expect_event_name().await, "created");
    assert_eq!(core.histories_read(), 1);
}

#[tokio::test]
async fn with_recent_orders_off_every_stream_reads_the_core() {
    let core = FakeCore::new();
    let gateway = spawn_with_fake_core(Arc::clone(&core), |config| config.recent_orders = 0).await;
    let (order, secret) = core.create();
    core.delivered(1).await;
    let mut stream = gateway
        .open(&events_path(order), &[("Authorization", &bearer(&secret))])
        .await;
    assert_eq!(stream.expect_event_name().await, "created");
    assert_eq!(core.histories_read(), 1);
}

#[tokio::test]
async fn events_committed_while_the_upstream_was_down_complete_the_gateways_memory() {
    let core = FakeCore::new();
    let gateway = spawn_with_fake_core(Arc::clone(&core), |_| {}).await;
    let (order, secret) = core.create();
    core.delivered(1).await;
    // The all-orders stream breaks; the result is committed while it is down.
    core.break_streams();
    let http = reqwest::Client::new();
    let readyz = format!("http://{}/readyz", gateway.addr);
    eventually("the gateway sees its upstream down", || async {
        let answer = http.get(&readyz).send().await.ok()?;
        (answer.status() == 503).then_some(())
    })
    .await;
    core.commit(order, Status::Succeeded);
    core.restore_streams();
    core.delivered(2).await;
    let mut stream = gateway
        .open(&events_path(order), &[("Authorization", &bearer(&secret))])
        .await;
    let events = stream.events_until_end(BOUND).await.expect("stream ends");
    assert_eq!(names(&events), ["created", "succeeded"]);
    assert_eq!(
        core.histories_read(),
        0,
        "the upstream resumed where it stopped"
    );
}

#[tokio::test]
async fn a_resume_point_past_what_the_gateway_remembers_is_answered_by_the_core() {
    let core = FakeCore::new();
    let gateway = spawn_with_fake_core(Arc::clone(&core), |_| {}).await;
    let (order, secret) = core.create();
    core.delivered(1).await;
    // The result is committed, and a browser saw it through another
    // gateway; this one's upstream has not passed it on yet.
    core.hold_streams();
    let result = core.commit(order, Status::Succeeded);
    let done = gateway
        .open(
            &events_path(order),
            &[
                ("Authorization", &bearer(&secret)),
                ("Last-Event-ID", &result.sequence.to_string()),
            ],
        )
        .await;
    assert_eq!(done.status, 204, "the end was seen: EventSource must stop");
    assert_eq!(core.histories_read(), 1);
    core.release_streams();
}

#[tokio::test]
async fn an_event_the_gateway_cannot_read_makes_it_forget_the_order() {
    let core = FakeCore::new();
    let gateway = spawn_with_fake_core(Arc::clone(&core), |_| {}).await;
    let (order, secret) = core.create();
    let unreadable = core.commit_unreadable(order);
    core.delivered(unreadable).await;
    // Not the remembered history with a hole in it: the core, which cannot
    // answer either, so the browser is told to retry.
    let mut stream = gateway
        .open(&events_path(order), &[("Authorization", &bearer(&secret))])
        .await;
    assert_eq!(stream.status, 200);
    let events = stream.events_until_end(BOUND).await.expect("ends");
    assert!(events.is_empty(), "{:?}", names(&events));
    assert_eq!(core.histories_read(), 1);
}

#[tokio::test]
async fn an_order_the_core_does_not_know_is_a_404_not_a_retry() {
    let core = FakeCore::new();
    let gateway = spawn_with_fake_core(Arc::clone(&core), |_| {}).await;
    let mut stream = gateway
        .open(
            &events_path(uuid::Uuid::new_v4()),
            &[("Authorization", &bearer("cs_x"))],
        )
        .await;
    assert_eq!(stream.status, 404);
    assert!(stream.read_body().await.contains("\"not_found\""));
}

#[tokio::test]
async fn a_resuming_dashboard_reads_the_log_once_caught_up_then_only_listens() {
    let core = FakeCore::new();
    let gateway = spawn_with_fake_core(Arc::clone(&core), |_| {}).await;
    let (first, _) = core.create();
    core.commit(first, Status::Succeeded);
    let (second, _) = core.create();
    let pages_before = core.pages_read();

    let mut dashboard = gateway
        .open(
            "/api/events",
            &[
                ("Authorization", &format!("Bearer {ADMIN_TOKEN}")),
                ("Last-Event-ID", "1"),
            ],
        )
        .await;
    for expected in [2, 3] {
        let event = dashboard.expect_event().await;
        assert_eq!(event.id.as_deref(), Some(expected.to_string().as_str()));
    }
    let live = core.commit(second, Status::Processing);
    let event = dashboard.expect_event().await;
    assert_eq!(event.id, Some(live.sequence.to_string()));
    assert_eq!(
        core.pages_read() - pages_before,
        1,
        "one short page ends the backfill; live events come from the hub"
    );
}
