//! WatchPayments over a real socket: history then live, per-order endings,
//! several watchers, resume, and shutdown ending open streams.

use std::time::Duration;

use payments_proto::payments::v1::{self as pb, watch_payments_request::Selector};
use tonic::Code;

use crate::helpers::{collect, spawn_app, statuses};

#[tokio::test]
async fn a_result_reported_before_anyone_watches_is_delivered_and_the_stream_ends() {
    let app = spawn_app().await;
    let order = app.create_order(1200).await;
    app.report(&order.order_id, pb::PaymentOutcome::Processing, "")
        .await
        .unwrap();
    app.report(&order.order_id, pb::PaymentOutcome::Succeeded, "")
        .await
        .unwrap();

    let mut stream = app
        .watch(Selector::OrderId(order.order_id.clone()), 0)
        .await;
    let events = collect(&mut stream, usize::MAX).await;
    assert_eq!(
        statuses(&events),
        [
            pb::OrderStatus::Created,
            pb::OrderStatus::Processing,
            pb::OrderStatus::Succeeded
        ]
    );
    assert_eq!(
        events[2].order.as_ref().unwrap().status(),
        pb::OrderStatus::Succeeded
    );

    // A watcher that already has the final event gets nothing and an OK end.
    let mut caught_up = app
        .watch(
            Selector::OrderId(order.order_id.clone()),
            events[2].sequence,
        )
        .await;
    assert!(collect(&mut caught_up, usize::MAX).await.is_empty());
}

#[tokio::test]
async fn two_watchers_of_one_order_each_get_every_event_live() {
    let app = spawn_app().await;
    let order = app.create_order(800).await;
    let mut first = app
        .watch(Selector::OrderId(order.order_id.clone()), 0)
        .await;
    let mut second = app
        .watch(Selector::OrderId(order.order_id.clone()), 0)
        .await;
    assert_eq!(
        collect(&mut first, 1).await.len(),
        1,
        "history arrives before the result"
    );

    app.report(&order.order_id, pb::PaymentOutcome::Processing, "")
        .await
        .unwrap();
    app.report(&order.order_id, pb::PaymentOutcome::Failed, "card declined")
        .await
        .unwrap();

    let rest_of_first = collect(&mut first, usize::MAX).await;
    let all_of_second = collect(&mut second, usize::MAX).await;
    assert_eq!(
        statuses(&rest_of_first),
        [pb::OrderStatus::Processing, pb::OrderStatus::Failed]
    );
    assert_eq!(
        statuses(&all_of_second),
        [
            pb::OrderStatus::Created,
            pb::OrderStatus::Processing,
            pb::OrderStatus::Failed
        ]
    );
    assert_eq!(all_of_second[2].reason, "card declined");
}

#[tokio::test]
async fn resuming_in_the_middle_of_a_payment_gets_exactly_the_events_after() {
    let app = spawn_app().await;
    let order = app.create_order(800).await;
    let mut stream = app
        .watch(Selector::OrderId(order.order_id.clone()), 0)
        .await;
    app.report(&order.order_id, pb::PaymentOutcome::Processing, "")
        .await
        .unwrap();
    let seen = collect(&mut stream, 2).await;
    drop(stream);

    app.report(&order.order_id, pb::PaymentOutcome::Succeeded, "")
        .await
        .unwrap();
    let mut resumed = app
        .watch(Selector::OrderId(order.order_id.clone()), seen[1].sequence)
        .await;
    let after = collect(&mut resumed, usize::MAX).await;
    assert_eq!(statuses(&after), [pb::OrderStatus::Succeeded]);
}

#[tokio::test]
async fn an_all_orders_watch_sees_every_order_in_sequence_order_from_its_resume_point() {
    let app = spawn_app().await;
    let first = app.create_order(100).await;
    let mut stream = app.watch(Selector::AllOrders(true), 1).await;
    let second = app.create_order(200).await;
    app.report(&first.order_id, pb::PaymentOutcome::Succeeded, "")
        .await
        .unwrap();
    let events = collect(&mut stream, 2).await;
    assert_eq!(
        events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(events[0].order_id, second.order_id);
    assert_eq!(
        (events[1].order_id.as_str(), events[1].status()),
        (first.order_id.as_str(), pb::OrderStatus::Succeeded)
    );
}

#[tokio::test]
async fn shutdown_ends_open_streams_with_unavailable_and_the_server_stops_within_its_bound() {
    let app = spawn_app().await;
    let order = app.create_order(100).await;
    let mut all = app.watch(Selector::AllOrders(true), 0).await;
    let mut one = app
        .watch(Selector::OrderId(order.order_id.clone()), 0)
        .await;
    collect(&mut all, 1).await;
    collect(&mut one, 1).await;

    app.shutdown.cancel();
    for stream in [&mut all, &mut one] {
        let end = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("stream ends promptly");
        let status = end.expect_err("ends with a status");
        assert_eq!(status.code(), Code::Unavailable);
        assert!(
            status.message().contains("after_sequence=1"),
            "{}",
            status.message()
        );
    }
    tokio::time::timeout(Duration::from_secs(5), app.server)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
}
