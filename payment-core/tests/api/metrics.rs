//! `GET /metrics` on `PAYMENT_CORE_METRICS_LISTEN`: every metric the README
//! lists is served, and moves when what it counts happens.

use payments_proto::{payments::v1 as pb, signature};
use pb::watch_payments_request::Selector;
use testkit::{eventually, metrics::sum};

use crate::helpers::{collect, spawn_app_in};

#[tokio::test]
async fn the_core_metrics_move_with_orders_reports_watchers_and_expiry() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir, |config| config.order_ttl_secs = 3).await;
    let before = app.metrics().await;
    for process_metric in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
        "process_start_time_seconds",
    ] {
        assert!(
            sum(&before, process_metric, &[]).is_some(),
            "{process_metric} in:\n{before}"
        );
    }
    assert_eq!(
        sum(&before, "payment_core_orders_created_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        sum(&before, "payment_core_commit_seconds_count", &[]),
        Some(0.0)
    );

    let mut all = app.watch(Selector::AllOrders(true), 0).await;
    let order = app.create_order(1500).await;
    let mut one = app
        .watch(Selector::OrderId(order.order_id.clone()), 0)
        .await;
    let watching = app.metrics().await;
    assert_eq!(
        sum(
            &watching,
            "payment_core_watchers_open",
            &[("kind", "all_orders")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sum(
            &watching,
            "payment_core_watchers_open",
            &[("kind", "order")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sum(&watching, "payment_core_orders_created_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        sum(&watching, "payment_core_commit_seconds_count", &[]),
        Some(1.0)
    );
    assert!(sum(&watching, "payment_core_commit_seconds_sum", &[]).unwrap() > 0.0);
    assert_eq!(
        sum(&watching, "payment_core_commit_batch_commands_count", &[]),
        Some(1.0)
    );
    assert_eq!(
        sum(&watching, "payment_core_log_head_sequence", &[]),
        Some(1.0)
    );

    app.report(&order.order_id, pb::PaymentOutcome::Succeeded, "")
        .await
        .expect("applied");
    app.report(&order.order_id, pb::PaymentOutcome::Succeeded, "")
        .await
        .expect("a repeat is answered");
    let refused = app
        .report(&order.order_id, pb::PaymentOutcome::Canceled, "")
        .await
        .expect_err("no cancel after payment");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let forged = signature::signed_now(
        b"not the secret",
        testkit::report_request(&order.order_id, pb::PaymentOutcome::Failed, "x"),
    );
    app.provider
        .clone()
        .report_payment_result(forged)
        .await
        .expect_err("a forged report is refused");
    assert_eq!(
        collect(&mut one, 2).await.len(),
        2,
        "created, then succeeded"
    );

    let reported = app.metrics().await;
    let reports = |labels: &[(&str, &str)]| sum(&reported, "payment_core_reports_total", labels);
    assert_eq!(
        reports(&[("outcome", "applied"), ("status", "succeeded")]),
        Some(1.0)
    );
    assert_eq!(
        reports(&[("outcome", "repeated"), ("status", "succeeded")]),
        Some(1.0)
    );
    assert_eq!(
        reports(&[("outcome", "refused"), ("reason", "illegal_transition")]),
        Some(1.0)
    );
    assert_eq!(
        reports(&[("outcome", "refused"), ("reason", "bad_signature")]),
        Some(1.0)
    );
    assert_eq!(
        sum(&reported, "payment_core_log_head_sequence", &[]),
        Some(2.0)
    );
    eventually(
        "the finished order's watch is counted as completed",
        || async {
            let metrics = app.metrics().await;
            (sum(
                &metrics,
                "payment_core_watchers_ended_total",
                &[("kind", "order"), ("reason", "completed")],
            ) == Some(1.0)
                && sum(&metrics, "payment_core_watchers_open", &[("kind", "order")]) == Some(0.0))
            .then_some(())
        },
    )
    .await;

    app.create_order(900).await;
    eventually("the unpaid order expires and is counted", || async {
        let metrics = app.metrics().await;
        (sum(&metrics, "payment_core_orders_expired_total", &[]) == Some(1.0)).then_some(())
    })
    .await;
    drop(all.message().await);
    drop(all);
    eventually(
        "the dropped all-orders watch is counted as gone",
        || async {
            let metrics = app.metrics().await;
            (sum(
                &metrics,
                "payment_core_watchers_open",
                &[("kind", "all_orders")],
            ) == Some(0.0)
                && sum(
                    &metrics,
                    "payment_core_watchers_ended_total",
                    &[("kind", "all_orders"), ("reason", "client_gone")],
                ) == Some(1.0))
            .then_some(())
        },
    )
    .await;
}
