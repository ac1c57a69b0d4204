//! The gateway's `/metrics` against the real payment-core: each metric the
//! README lists moves when what it counts happens.

use payments_proto::payments::v1::PaymentOutcome;
use testkit::{eventually, metrics::sum};

use crate::helpers::{ADMIN_BEARER, metrics_of, sample, spawn_gateway, spawn_system};

#[tokio::test]
async fn a_payment_moves_the_stream_delivery_and_upstream_metrics() {
    let system = spawn_system().await;
    let order = system.create_order(1200, "measured").await;
    let mut stream = system.open(&order.events_url, &[]).await;
    assert_eq!(stream.expect_event_name().await, "created");
    let mut dashboard = system
        .open("/api/events", &[("Authorization", ADMIN_BEARER)])
        .await;
    system
        .report(&order.order_id, PaymentOutcome::Succeeded, "")
        .await;
    assert_eq!(stream.expect_event_name().await, "succeeded");
    assert_eq!(dashboard.expect_event_name().await, "created");
    assert_eq!(dashboard.expect_event_name().await, "succeeded");
    let wrong_secret = system
        .open(
            &order.plain_events_url,
            &[("Authorization", "Bearer cs_wrong")],
        )
        .await;
    assert_eq!(wrong_secret.status, 404);

    let metrics = system.metrics().await;
    let of = |name: &str, labels: &[(&str, &str)]| {
        let mut labels = labels.to_vec();
        labels.push(("gateway", "test-gateway"));
        sum(&metrics, name, &labels)
    };
    // The order's stream ended after its final event; the dashboard's goes on.
    assert_eq!(
        of("sse_gateway_open_streams", &[("kind", "order")]),
        Some(0.0)
    );
    assert_eq!(
        of("sse_gateway_open_streams", &[("kind", "dashboard")]),
        Some(1.0)
    );
    assert_eq!(
        of(
            "sse_gateway_stream_setup_seconds_count",
            &[("kind", "order")]
        ),
        Some(1.0)
    );
    assert_eq!(
        of(
            "sse_gateway_stream_setup_seconds_count",
            &[("kind", "dashboard")]
        ),
        Some(1.0)
    );
    // `created` came from the order's history (its stream opened after
    // the commit); `succeeded` live, to the order's stream and the dashboard.
    assert_eq!(
        of(
            "sse_gateway_events_sent_total",
            &[("kind", "order"), ("source", "replay")]
        ),
        Some(1.0)
    );
    assert_eq!(
        of(
            "sse_gateway_events_sent_total",
            &[("kind", "order"), ("source", "live")]
        ),
        Some(1.0)
    );
    assert_eq!(
        of(
            "sse_gateway_delivery_lag_seconds_count",
            &[("source", "live")]
        ),
        Some(2.0)
    );
    assert!(
        of(
            "sse_gateway_delivery_lag_seconds_sum",
            &[("source", "live")]
        )
        .unwrap()
            > 0.0
    );
    assert_eq!(
        of(
            "sse_gateway_streams_refused_total",
            &[("reason", "not_found")]
        ),
        Some(1.0)
    );
    assert_eq!(of("sse_gateway_upstream_events_total", &[]), Some(2.0));
    assert_eq!(of("sse_gateway_upstream_position", &[]), Some(2.0));
    assert_eq!(of("sse_gateway_upstream_up", &[]), Some(1.0));

    drop((stream, dashboard));
    eventually("closed streams stop counting as open", || async {
        let metrics = system.metrics().await;
        (sum(&metrics, "sse_gateway_open_streams", &[]) == Some(0.0)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn orders_the_gateway_saw_created_open_from_memory_and_older_ones_from_the_core() {
    let system = spawn_system().await;
    let order = system.create_order(1200, "remembered").await;
    eventually("the gateway sees the order created", || async {
        (sample(&system.metrics().await, "sse_gateway_recent_orders") == Some(1.0)).then_some(())
    })
    .await;
    let mut warm = system.open(&order.events_url, &[]).await;
    assert_eq!(warm.expect_event_name().await, "created");

    // A gateway started after the order was created never saw it.
    let late = spawn_gateway(system.core_port, |_| {}).await;
    let mut cold = late.open(&order.events_url, &[]).await;
    assert_eq!(cold.expect_event_name().await, "created");

    let reads = |metrics: &str, from: &str| {
        sum(
            metrics,
            "sse_gateway_order_histories_read_total",
            &[("from", from)],
        )
    };
    let first = system.metrics().await;
    assert_eq!(reads(&first, "memory"), Some(1.0));
    assert_eq!(reads(&first, "core"), Some(0.0));
    let second = metrics_of(&system.http, late.addr).await;
    assert_eq!(reads(&second, "memory"), Some(0.0));
    assert_eq!(reads(&second, "core"), Some(1.0));
    assert_eq!(sample(&second, "sse_gateway_recent_orders"), Some(0.0));
}
