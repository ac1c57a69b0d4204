//! Failures around the gateway: payment-core crashing mid-payment, the
//! gateway shutting down under open streams, and a second gateway taking
//! over a browser's stream.

use std::time::Duration;

use payments_proto::payments::v1::PaymentOutcome;
use testkit::eventually;

use crate::helpers::{
    ADMIN_BEARER, BOUND, create_order, ids, names, sample, spawn_gateway, spawn_gateway_unready,
    spawn_system, start_core,
};

#[tokio::test]
async fn payment_core_killed_and_restarted_mid_payment_still_delivers_the_result_exactly_once() {
    let mut system = spawn_system().await;
    let order = system.create_order(2500, "").await;
    let mut stream = system.open(&order.events_url, &[]).await;
    assert_eq!(stream.expect_event_name().await, "created");
    system
        .report(&order.order_id, PaymentOutcome::Processing, "")
        .await;
    assert_eq!(stream.expect_event_name().await, "processing");

    system.kill_core();
    eventually("the gateway sees its upstream break", || async {
        let metrics = system.metrics().await;
        (sample(&metrics, "sse_gateway_upstream_up") == Some(0.0)).then_some(())
    })
    .await;
    system.restart_core();
    // The result lands while the gateway may still be reconnecting upstream.
    system
        .report(&order.order_id, PaymentOutcome::Succeeded, "")
        .await;

    let rest = stream.events_until_end(BOUND).await.unwrap();
    assert_eq!(
        names(&rest),
        ["succeeded"],
        "the same connection gets the result once, then ends"
    );
    let metrics = system.metrics().await;
    assert_eq!(
        sample(&metrics, "sse_gateway_upstream_reconnects_total"),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn shutdown_ends_open_event_streams_promptly_and_the_gateway_stops() {
    let system = spawn_system().await;
    let order = system.create_order(100, "").await;
    let mut order_stream = system.open(&order.events_url, &[]).await;
    let mut dashboard = system
        .open("/api/events", &[("Authorization", ADMIN_BEARER)])
        .await;
    order_stream.expect_event().await;
    dashboard.expect_event().await;

    system.gateway.shutdown.cancel();
    // Each stream's last frame spreads the browsers' reconnects: a retry
    // between half and one and a half SSE_RETRY_MS (2 s here).
    for stream in [&mut order_stream, &mut dashboard] {
        let last = tokio::time::timeout(Duration::from_secs(3), async {
            let mut last = None;
            while let Some(frame) = stream.next_frame(BOUND).await.expect("frames") {
                assert!(frame.event.is_none(), "no event after shutdown: {frame:?}");
                last = Some(frame);
            }
            last
        })
        .await
        .expect("stream ends at once")
        .expect("a last frame");
        let retry = last.retry.expect("the last frame is a retry");
        assert!((1000..=3000).contains(&retry), "{retry}");
    }
    tokio::time::timeout(Duration::from_secs(3), system.gateway.server)
        .await
        .expect("gateway stops")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_browser_moved_to_another_gateway_resumes_without_loss_or_repeat() {
    let system = spawn_system().await;
    let second = spawn_gateway(system.core_port, |config| config.instance = "second".into()).await;
    let order = system.create_order(700, "").await;
    let mut on_first = system.open(&order.events_url, &[]).await;
    let created = on_first.expect_event().await;
    system
        .report(&order.order_id, PaymentOutcome::Processing, "")
        .await;
    let processing = on_first.expect_event().await;

    system.gateway.shutdown.cancel();
    assert!(on_first.events_until_end(BOUND).await.unwrap().is_empty());
    system
        .report(&order.order_id, PaymentOutcome::Succeeded, "")
        .await;

    let mut on_second = testkit::sse::SseConnection::open(
        second.addr,
        &order.events_url,
        &[("Last-Event-ID", processing.id.as_deref().unwrap())],
    )
    .await
    .unwrap();
    assert_eq!(on_second.headers["x-gateway-instance"], "second");
    let rest = on_second.events_until_end(BOUND).await.unwrap();
    assert_eq!(names(&rest), ["succeeded"]);
    let seen: Vec<u64> = ids(&[created, processing])
        .into_iter()
        .chain(ids(&rest))
        .collect();
    assert!(
        seen.windows(2).all(|pair| pair[0] < pair[1]),
        "every event once, in order, across both gateways: {seen:?}"
    );
}

#[tokio::test]
async fn a_gateway_that_has_not_reached_payment_core_tells_browsers_to_retry_and_then_serves_them()
{
    let dir = tempfile::tempdir().unwrap();
    // The gateway is told the core's address before the core exists: an
    // address reserved for it, refused until the core binds it.
    let core = testkit::reserve_address();
    let gateway = spawn_gateway_unready(core.addr.port(), |_| {}).await;
    let path = format!("/api/orders/{}/events", uuid::Uuid::new_v4());
    let mut early =
        testkit::sse::SseConnection::open(gateway.addr, &path, &[("Authorization", "Bearer cs_x")])
            .await
            .unwrap();
    assert_eq!(early.status, 200, "EventSource must not give up");
    let frames = early.events_until_end(BOUND).await.unwrap();
    assert!(
        frames.is_empty(),
        "no events, only the retry delay, then the end"
    );

    let _core = start_core(&dir, Some(core.addr));
    gateway.wait_ready().await;
    let created = create_order(&reqwest::Client::new(), gateway.addr, 100, "").await;
    let mut stream = gateway.open(&created.events_url, &[]).await;
    assert_eq!(stream.expect_event_name().await, "created");
    testkit::report(core.addr, &created.order_id, PaymentOutcome::Succeeded, "")
        .await
        .expect("report accepted");
    assert_eq!(stream.expect_event_name().await, "succeeded");
}

#[tokio::test]
async fn gateways_sharing_a_port_with_reuse_port_both_serve_it() {
    let system = spawn_system().await;
    let share = |name: &'static str, listen: std::net::SocketAddr| {
        move |config: &mut sse_gateway::Config| {
            config.listen = listen;
            config.reuse_port = true;
            config.instance = name.into();
        }
    };
    // The first binds port 0; the second shares the port the first got.
    let first = spawn_gateway(
        system.core_port,
        share("first", "127.0.0.1:0".parse().unwrap()),
    )
    .await;
    let listen = first.addr;
    let _second = spawn_gateway(system.core_port, share("second", listen)).await;

    // The kernel picks a process per connection by its address hash: new
    // connections from fresh source ports soon reach both.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..64 {
        let answer = reqwest::Client::new()
            .get(format!("http://{listen}/healthz"))
            .send()
            .await
            .expect("the shared port answers");
        seen.insert(
            answer.headers()["x-gateway-instance"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        if seen.len() == 2 {
            return;
        }
    }
    panic!("only {seen:?} answered 64 new connections");
}

#[tokio::test]
async fn a_gateway_given_several_core_replicas_serves_from_a_live_one_when_the_first_is_gone() {
    let system = spawn_system().await;
    // Connections to the first address are refused: a replica that is down.
    let dead = testkit::refused_address();
    let urls = format!("http://{},http://127.0.0.1:{}", dead.addr, system.core_port);
    let gateway = spawn_gateway(system.core_port, |config| config.payment_core_url = urls).await;
    let http = reqwest::Client::new();
    let order = eventually("an order is created through the live replica", || async {
        let answer = http
            .post(format!("http://{}/api/orders", gateway.addr))
            .header("Idempotency-Key", "replica-test")
            .json(&serde_json::json!({"amount_minor": 300, "currency": "EUR"}))
            .send()
            .await
            .ok()?;
        (answer.status() == 201).then_some(answer)
    })
    .await;
    let order: serde_json::Value = order.json().await.expect("JSON order");
    let bearer = format!("Bearer {}", order["client_secret"].as_str().unwrap());
    let mut stream = gateway
        .open(
            order["events_url"].as_str().expect("events_url"),
            &[("Authorization", &bearer)],
        )
        .await;
    assert_eq!(stream.expect_event_name().await, "created");
    system
        .report(
            order["order_id"].as_str().expect("order_id"),
            PaymentOutcome::Succeeded,
            "",
        )
        .await;
    assert_eq!(
        names(&stream.events_until_end(BOUND).await.expect("ends")),
        ["succeeded"]
    );
}

#[tokio::test]
async fn killing_the_core_replica_a_gateway_streams_from_costs_the_browser_nothing() {
    let database = testkit::postgres::TestDatabase::create().await;
    let start = || testkit::start_payment_core_on(&database.url, testkit::PROVIDER_SECRET, &[]);
    let (mut first, second) = (start(), start());
    let urls = format!("http://{},http://{}", first.addr, second.addr);
    let gateway = spawn_gateway(0, |config| config.payment_core_url = urls).await;
    let http = reqwest::Client::new();
    let order = create_order(&http, gateway.addr, 900, "replicated").await;
    let mut stream = gateway.open(&order.events_url, &[]).await;
    assert_eq!(stream.expect_event_name().await, "created");

    // The gateway's stream (and its first choice for calls) is on `first`.
    first.kill();
    for outcome in [PaymentOutcome::Processing, PaymentOutcome::Succeeded] {
        testkit::report(second.addr, &order.order_id, outcome, "")
            .await
            .expect("the other replica takes the report");
    }
    let rest = stream.events_until_end(BOUND).await.expect("stream ends");
    assert_eq!(
        names(&rest),
        ["processing", "succeeded"],
        "the same connection gets the rest once"
    );
    // A new checkout goes through too (its first attempt may meet the dead replica).
    let next = eventually("a new order is created after the kill", || async {
        let answer = http
            .post(format!("http://{}/api/orders", gateway.addr))
            .json(&serde_json::json!({"amount_minor": 100, "currency": "EUR"}))
            .send()
            .await
            .ok()?;
        (answer.status() == 201).then_some(())
    });
    next.await;
}
