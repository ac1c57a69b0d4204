//! The SSE endpoints read by a raw client over a socket: framing, history,
//! resume, ending, and who may watch what.

use std::time::Duration;

use payments_proto::payments::v1::PaymentOutcome;
use testkit::{eventually, sse::SseConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    ADMIN_BEARER, ADMIN_TOKEN, BOUND, create_orders_in_core, data, names, sample, spawn_system,
    spawn_system_with,
};

#[tokio::test]
async fn the_stream_is_framed_by_the_whatwg_rules() {
    let system = spawn_system_with(|config| config.heartbeat_secs = 1).await;
    let order = system.create_order(1999, "line one\nline two").await;
    let mut stream = system
        .open(&order.events_url, &[("Accept-Encoding", "gzip, br")])
        .await;
    assert_eq!(stream.status, 200);
    assert!(stream.headers["content-type"].starts_with("text/event-stream"));
    assert_eq!(stream.headers["cache-control"], "no-cache");
    assert_eq!(stream.headers["x-accel-buffering"], "no");
    assert!(
        !stream.headers.contains_key("content-encoding"),
        "event streams are never compressed"
    );

    let first = stream.next_frame(BOUND).await.unwrap().unwrap();
    assert_eq!(first.retry, Some(2000), "a retry: line comes first");
    assert!(first.data.is_none());
    let opening = stream.next_frame(BOUND).await.unwrap().unwrap();
    assert_eq!(
        opening.heartbeat_interval(),
        Some(Duration::from_secs(1)),
        "then a heartbeat, so the page knows the interval at once: {opening:?}"
    );

    let created = stream.expect_event().await;
    assert_eq!(created.event.as_deref(), Some("created"));
    assert_eq!(created.data_lines, 1, "JSON data never spans lines");
    let body = data(&created);
    assert_eq!(
        created.id.as_deref(),
        Some(body["sequence"].to_string().as_str()),
        "id is the core's sequence"
    );
    assert_eq!(body["order_id"].as_str(), Some(order.order_id.as_str()));
    assert_eq!(
        body["description"], "line one\nline two",
        "a multi-line value survives the framing"
    );
    assert_eq!(
        (body["amount_minor"].as_i64(), body["currency"].as_str()),
        (Some(1999), Some("EUR"))
    );
    assert!(body["occurred_at"].as_str().unwrap().ends_with('Z'));

    // Idle: a heartbeat event, announcing the interval, arrives within it.
    let heartbeat = stream
        .next_frame(Duration::from_secs(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        heartbeat.heartbeat_interval(),
        Some(Duration::from_secs(1)),
        "{heartbeat:?}"
    );
    assert_eq!(
        heartbeat.id, None,
        "a heartbeat does not move the resume point"
    );

    system
        .report(&order.order_id, PaymentOutcome::Processing, "")
        .await;
    system
        .report(
            &order.order_id,
            PaymentOutcome::Failed,
            "insufficient funds",
        )
        .await;
    let rest = stream.events_until_end(BOUND).await.unwrap();
    assert_eq!(
        names(&rest),
        ["processing", "failed"],
        "the response ends after the final event"
    );
    assert_eq!(data(&rest[1])["reason"], "insufficient funds");
    let ids: Vec<u64> = [&created]
        .into_iter()
        .chain(&rest)
        .map(|f| f.id.as_ref().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");

    let mut after_end = system
        .open(
            &order.events_url,
            &[("Last-Event-ID", rest[1].id.as_deref().unwrap())],
        )
        .await;
    assert_eq!(
        after_end.status, 204,
        "a client that saw the final event is told to stop"
    );
    assert!(after_end.events_until_end(BOUND).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_result_that_landed_before_the_page_subscribed_is_delivered() {
    let system = spawn_system().await;
    let order = system.create_order(500, "").await;
    system
        .report(&order.order_id, PaymentOutcome::Succeeded, "")
        .await;
    let mut stream = system.open(&order.events_url, &[]).await;
    assert_eq!(
        names(&stream.events_until_end(BOUND).await.unwrap()),
        ["created", "succeeded"]
    );
}

#[tokio::test]
async fn two_tabs_watching_one_order_each_get_every_event() {
    let system = spawn_system().await;
    let order = system.create_order(500, "").await;
    let mut first = system.open(&order.events_url, &[]).await;
    let mut second = system.open(&order.events_url, &[]).await;
    assert_eq!(first.expect_event_name().await, "created");
    assert_eq!(second.expect_event_name().await, "created");
    system
        .report(&order.order_id, PaymentOutcome::Processing, "")
        .await;
    system
        .report(&order.order_id, PaymentOutcome::Succeeded, "")
        .await;
    assert_eq!(
        names(&first.events_until_end(BOUND).await.unwrap()),
        ["processing", "succeeded"]
    );
    assert_eq!(
        names(&second.events_until_end(BOUND).await.unwrap()),
        ["processing", "succeeded"]
    );
}

#[tokio::test]
async fn a_reconnect_with_last_event_id_mid_payment_gets_exactly_the_rest() {
    let system = spawn_system().await;
    let order = system.create_order(500, "").await;
    let mut stream = system.open(&order.events_url, &[]).await;
    stream.expect_event().await;
    system
        .report(&order.order_id, PaymentOutcome::Processing, "")
        .await;
    let processing = stream.expect_event().await;
    drop(stream);

    system
        .report(&order.order_id, PaymentOutcome::Succeeded, "")
        .await;
    let last_id = processing.id.unwrap();
    let mut resumed = system
        .open(&order.events_url, &[("Last-Event-ID", &last_id)])
        .await;
    let rest = resumed.events_until_end(BOUND).await.unwrap();
    assert_eq!(names(&rest), ["succeeded"]);

    // The same through the query parameter, for clients that cannot set headers.
    let mut by_query = system
        .open(
            &format!("{}&last_event_id={last_id}", order.events_url),
            &[],
        )
        .await;
    assert_eq!(
        names(&by_query.events_until_end(BOUND).await.unwrap()),
        ["succeeded"]
    );
}

#[tokio::test]
async fn a_stream_resumed_past_the_final_event_ends_when_that_event_arrives() {
    let system = spawn_system().await;
    let order = system.create_order(700, "").await;
    // Past every event the order will have: a forged header, or a client
    // whose id came from another order's stream.
    let mut stream = system
        .open(&order.events_url, &[("Last-Event-ID", "1000000")])
        .await;
    assert_eq!(stream.status, 200, "the order is not over yet");
    system
        .report(&order.order_id, PaymentOutcome::Succeeded, "")
        .await;
    let events = stream
        .events_until_end(BOUND)
        .await
        .expect("the stream ends once the order is over, not at the client's leisure");
    assert!(
        events.is_empty(),
        "nothing past the resume point: {events:?}"
    );
}

#[tokio::test]
async fn nobody_watches_an_order_without_its_secret() {
    let system = spawn_system().await;
    let order = system.create_order(500, "").await;
    let base = format!("/api/orders/{}/events", order.order_id);
    let other = format!("/api/orders/{}/events", uuid::Uuid::new_v4());
    let token_for_order = order.events_url.split_once('?').unwrap().1;
    // (path, Authorization, status, code)
    let cases: [(String, Option<String>, u16, &str); 6] = [
        (
            base.clone(),
            Some("Bearer cs_guess".into()),
            404,
            "not_found",
        ),
        (other.clone(), Some(order.bearer()), 404, "not_found"),
        (base.clone(), None, 401, "unauthorized"),
        (base.clone(), Some("Basic x".into()), 401, "unauthorized"),
        // A token opens its own order only.
        (
            format!("{other}?{token_for_order}"),
            None,
            401,
            "unauthorized",
        ),
        (
            format!("{base}?stream_token=v1.1.x"),
            None,
            401,
            "unauthorized",
        ),
    ];
    for (path, authorization, status, code) in cases {
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|value| ("Authorization", value))
            .into_iter()
            .collect();
        let mut stream = system.open(&path, &headers).await;
        assert_eq!(stream.status, status, "{path} {authorization:?}");
        assert!(stream.read_body().await.contains(code), "{path}");
    }
    let mut with_header = system
        .open(
            &order.plain_events_url,
            &[("Authorization", &order.bearer())],
        )
        .await;
    assert_eq!(
        with_header.status, 200,
        "the secret as a bearer token opens it"
    );
    assert_eq!(with_header.expect_event_name().await, "created");
    let mut bad_id = system
        .open(&order.events_url, &[("Last-Event-ID", "yesterday")])
        .await;
    assert_eq!(bad_id.status, 400);
    assert!(bad_id.read_body().await.contains("Last-Event-ID"));
}

#[tokio::test]
async fn the_dashboard_stream_needs_the_admin_token_and_sees_every_order() {
    let system = spawn_system().await;
    for (path, headers) in [
        ("/api/events", vec![]),
        ("/api/events", vec![("Authorization", "Bearer wrong")]),
        (
            "/api/events",
            vec![("Cookie", "payments_push_dashboard=v1.99999999999.00")],
        ),
    ] {
        let mut refused = system.open(path, &headers).await;
        assert_eq!(refused.status, 401, "{path} {headers:?}");
        assert!(refused.read_body().await.contains("\"unauthorized\""));
    }
    let before = system
        .create_order(100, "placed before the dashboard opened")
        .await;
    let mut dashboard = system
        .open("/api/events", &[("Authorization", ADMIN_BEARER)])
        .await;
    assert_eq!(dashboard.status, 200);
    let recent = dashboard.expect_event().await;
    assert_eq!(
        data(&recent)["order_id"].as_str(),
        Some(before.order_id.as_str()),
        "a fresh dashboard sees recent orders"
    );

    let placed = system.create_order(200, "new order").await;
    let created = dashboard.expect_event().await;
    assert_eq!(
        (
            created.event.as_deref(),
            data(&created)["order_id"].as_str()
        ),
        (Some("created"), Some(placed.order_id.as_str()))
    );
    system
        .report(&placed.order_id, PaymentOutcome::Succeeded, "")
        .await;
    let paid = dashboard.expect_event().await;
    assert_eq!(paid.event.as_deref(), Some("succeeded"));

    // Resume from the first event: the core's log fills in the rest, once each.
    let mut resumed = system
        .open(
            "/api/events",
            &[
                ("Authorization", &format!("Bearer {ADMIN_TOKEN}")),
                ("Last-Event-ID", recent.id.as_deref().unwrap()),
            ],
        )
        .await;
    let mut replayed = Vec::new();
    for _ in 0..2 {
        replayed.push(resumed.expect_event().await.id.unwrap());
    }
    assert_eq!(replayed, [created.id.unwrap(), paid.id.unwrap()]);
}

#[tokio::test]
async fn an_order_id_spelled_in_upper_case_still_gets_live_events() {
    let system = spawn_system().await;
    let order = system.create_order(500, "").await;
    let upper = format!("/api/orders/{}/events", order.order_id.to_uppercase());
    let mut stream = system
        .open(&upper, &[("Authorization", &order.bearer())])
        .await;
    assert_eq!(stream.expect_event_name().await, "created");
    system
        .report(&order.order_id, PaymentOutcome::Succeeded, "")
        .await;
    assert_eq!(
        names(&stream.events_until_end(BOUND).await.unwrap()),
        ["succeeded"]
    );
}

#[tokio::test]
async fn a_dashboard_resuming_across_several_pages_of_history_gets_each_event_once() {
    let system = spawn_system().await;
    create_orders_in_core(system.core_port, 1_120).await;
    let mut resumed = system
        .open(
            "/api/events",
            &[
                ("Authorization", &format!("Bearer {ADMIN_TOKEN}")),
                ("Last-Event-ID", "7"),
            ],
        )
        .await;
    let mut ids = Vec::new();
    for _ in 8..=1_120 {
        ids.push(
            resumed
                .expect_event()
                .await
                .id
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        );
    }
    assert_eq!(
        ids,
        (8..=1_120).collect::<Vec<u64>>(),
        "three backfill pages, in order, once each"
    );
    let live = system.create_order(100, "after the backfill").await;
    let next = resumed.expect_event().await;
    assert_eq!(
        (next.id.as_deref(), data(&next)["order_id"].as_str()),
        (Some("1121"), Some(live.order_id.as_str()))
    );
}

#[tokio::test]
async fn a_stream_opened_on_a_kept_alive_connection_is_served_like_one_on_a_new_connection() {
    let system = spawn_system().await;
    let order = system.create_order(500, "kept alive").await;

    // A new connection whose first request is the stream: written straight
    // to the socket, ended by closing the connection.
    let mut fresh = system.open(&order.events_url, &[]).await;
    // A connection that served a page first: hyper serves the stream, chunked.
    let mut socket = tokio::net::TcpStream::connect(system.gateway.addr)
        .await
        .unwrap();
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\nok") {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(BOUND, socket.read(&mut byte)).await;
        assert!(matches!(read, Ok(Ok(1))), "healthz answered: {answer:?}");
        answer.push(byte[0]);
    }
    let mut reused = SseConnection::open_on(socket, system.gateway.addr, &order.events_url, &[])
        .await
        .unwrap();

    assert_eq!(fresh.headers["connection"], "close");
    assert_eq!(reused.headers["transfer-encoding"], "chunked");
    for stream in [&mut fresh, &mut reused] {
        assert_eq!(stream.status, 200);
        assert_eq!(stream.headers["content-type"], "text/event-stream");
        assert_eq!(stream.headers["cache-control"], "no-cache");
        assert_eq!(stream.headers["x-gateway-instance"], "test-gateway");
        assert_eq!(stream.expect_event_name().await, "created");
    }
    system
        .report(&order.order_id, PaymentOutcome::Succeeded, "")
        .await;
    for stream in [&mut fresh, &mut reused] {
        let rest = stream.events_until_end(BOUND).await.unwrap();
        assert_eq!(names(&rest), ["succeeded"], "each gets the result once");
    }
}

#[tokio::test]
async fn a_browser_that_closes_its_stream_is_forgotten_at_once() {
    let system = spawn_system().await;
    let order = system.create_order(500, "closed tab").await;
    let mut stream = system.open(&order.events_url, &[]).await;
    assert_eq!(stream.expect_event_name().await, "created");
    let open_connections = || async { sample(&system.metrics().await, "sse_gateway_open_streams") };
    assert_eq!(open_connections().await, Some(1.0));
    drop(stream);
    eventually("the closed stream stops counting as open", || async {
        (open_connections().await == Some(0.0)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_stream_over_max_streams_is_told_to_retry_later_and_counted() {
    let system = spawn_system_with(|config| {
        config.max_streams = 1;
        config.overload_retry_ms = 20_000;
    })
    .await;
    let order = system.create_order(500, "").await;
    let mut first = system.open(&order.events_url, &[]).await;
    assert_eq!(first.expect_event_name().await, "created");

    for (path, authorization) in [
        (order.plain_events_url.as_str(), order.bearer()),
        ("/api/events", ADMIN_BEARER.to_owned()),
    ] {
        let mut refused = system
            .open(path, &[("Authorization", authorization.as_str())])
            .await;
        assert_eq!(refused.status, 200, "EventSource retries only after a 200");
        let frame = refused
            .next_frame(BOUND)
            .await
            .unwrap()
            .expect("a retry frame");
        let retry = frame.retry.expect("retry: field");
        assert!(
            (20_000..=40_000).contains(&retry),
            "the long, jittered delay: {retry}"
        );
        assert!(frame.event.is_none() && frame.data.is_none());
        assert!(
            refused.next_frame(BOUND).await.unwrap().is_none(),
            "then closed"
        );
    }
    assert_eq!(
        sample(&system.metrics().await, "sse_gateway_streams_refused_total"),
        Some(2.0)
    );

    drop(first);
    eventually("the slot is free again", || async {
        let mut next = system.open(&order.events_url, &[]).await;
        (next
            .next_event(BOUND)
            .await
            .ok()
            .flatten()?
            .event
            .as_deref()
            == Some("created"))
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_dashboard_signs_in_with_a_form_post_that_sets_an_http_only_session_cookie() {
    let system = spawn_system().await;
    let sign_in = |token: &str| {
        system
            .http
            .post(system.url("/api/dashboard/session"))
            .form(&[("token", token)])
            .send()
    };
    let wrong = sign_in("wrong").await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let json = system
        .http
        .post(system.url("/api/dashboard/session"))
        .json(&serde_json::json!({ "token": ADMIN_TOKEN }))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 415, "a form, not JSON");

    let signed_in = sign_in(ADMIN_TOKEN).await.unwrap();
    assert_eq!(signed_in.status(), 204);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains(ADMIN_TOKEN),
        "the cookie is not the token: {cookie}"
    );
    assert!(!cookie.contains("Secure"), "no TLS in front here: {cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    let dashboard = system.open("/api/events", &[("Cookie", &session)]).await;
    assert_eq!(
        dashboard.status, 200,
        "the session opens the dashboard stream"
    );

    let behind_tls = system
        .http
        .post(system.url("/api/dashboard/session"))
        .header("x-forwarded-proto", "https")
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert!(
        behind_tls.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );

    let signed_out = system
        .http
        .delete(system.url("/api/dashboard/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), 204);
    assert!(
        signed_out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}
