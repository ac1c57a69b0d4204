//! `GET /metrics`: the reports the provider sent, by result and by how
//! payment-core answered, and the process metrics.

use testkit::metrics::sum;

use crate::helpers::spawn_system;

#[tokio::test]
async fn reports_are_counted_by_result_and_by_the_cores_answer() {
    let system = spawn_system(&[]);
    let order_id = system.create_order(700, "EUR", "counted").await;
    assert_eq!(system.get(&format!("/pay/{order_id}")).await.0, 200);
    assert_eq!(
        system.decide(&order_id, &[("decision", "pay")]).await.0,
        200
    );
    // The order is final: a second decision is refused by the core.
    system.decide(&order_id, &[("decision", "cancel")]).await;

    let metrics = testkit::metrics::scrape(&system.url("/metrics")).await;
    let reports = |labels: &[(&str, &str)]| sum(&metrics, "mock_provider_reports_total", labels);
    assert_eq!(
        reports(&[("result", "processing"), ("outcome", "applied")]),
        Some(1.0)
    );
    assert_eq!(
        reports(&[("result", "succeeded"), ("outcome", "applied")]),
        Some(1.0)
    );
    assert_eq!(
        reports(&[("result", "canceled"), ("outcome", "refused")]),
        Some(1.0)
    );
    for process_metric in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
    ] {
        assert!(
            sum(&metrics, process_metric, &[]).is_some(),
            "{process_metric}:\n{metrics}"
        );
    }
}
