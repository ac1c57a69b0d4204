//! The demo knobs. What the provider sends is checked against a fake core
//! that records every report (the real one ignores a repeat, so its event
//! log cannot tell one report from two); what the payer and payment-core
//! end up with is checked against the real core.

use std::time::{Duration, Instant};

use payments_proto::payments::v1::{
    self as pb,
    OrderStatus::{Created, Succeeded},
};
use testkit::PROVIDER_SECRET;

use crate::{
    fake_core::{FakeCore, Received},
    helpers::{decide, spawn_system, start_provider},
};

const DELAY_MS: u64 = 300;

/// Starts a provider reporting to `core` with `knobs`, POSTs a decline with
/// a reason to it, checks the payer got the result page, and returns when
/// the POST was sent.
async fn decline_through_provider(core: &FakeCore, knobs: &[(&str, String)]) -> (String, Instant) {
    let provider = start_provider(core.addr, PROVIDER_SECRET, knobs);
    let order_id = uuid::Uuid::new_v4().to_string();
    let sent = Instant::now();
    let (status, page) = decide(
        &reqwest::Client::new(),
        &provider,
        &order_id,
        &[("decision", "decline"), ("reason", "insufficient funds")],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("data-outcome=\"failed\""), "{page}");
    (order_id, sent)
}

fn assert_is_the_signed_decline(received: &Received, order_id: &str) {
    assert_eq!(received.signature, Ok(()), "signed with the shared secret");
    assert_eq!(received.report.order_id, order_id);
    assert_eq!(received.report.outcome(), pb::PaymentOutcome::Failed);
    assert_eq!(received.report.reason, "insufficient funds");
}

#[tokio::test]
async fn with_the_duplicate_knob_each_decision_is_reported_twice_signed_and_identical() {
    let core = FakeCore::start().await;
    let (order_id, _) =
        decline_through_provider(&core, &[("PROVIDER_DUPLICATE_REPORTS", "true".into())]).await;
    let received = testkit::eventually("the provider sent a second report", || async {
        let received = core.received();
        (received.len() >= 2).then_some(received)
    })
    .await;
    assert_eq!(received.len(), 2, "exactly two reports: {received:#?}");
    for report in &received {
        assert_is_the_signed_decline(report, &order_id);
    }
    assert_eq!(
        received[0].report, received[1].report,
        "the repeat is the same report"
    );
}

#[tokio::test]
async fn without_the_duplicate_knob_each_decision_is_reported_once() {
    let core = FakeCore::start().await;
    let (order_id, _) = decline_through_provider(&core, &[]).await;
    // The page shows the result only after payment-core answered the report.
    let received = core.received();
    assert_eq!(received.len(), 1, "exactly one report: {received:#?}");
    assert_is_the_signed_decline(&received[0], &order_id);
}

#[tokio::test]
async fn the_delay_knob_holds_the_report_back_by_the_set_time() {
    let core = FakeCore::start().await;
    let (order_id, sent) =
        decline_through_provider(&core, &[("PROVIDER_REPORT_DELAY_MS", DELAY_MS.to_string())])
            .await;
    let received = core.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_is_the_signed_decline(&received[0], &order_id);
    assert!(
        received[0].at.duration_since(sent) >= Duration::from_millis(DELAY_MS),
        "the report arrived {:?} after the decision",
        received[0].at.duration_since(sent)
    );
}

#[tokio::test]
async fn with_both_knobs_the_payer_sees_the_result_after_the_delay_and_the_core_records_it_once() {
    let system = spawn_system(&[
        ("PROVIDER_DUPLICATE_REPORTS", "true".into()),
        ("PROVIDER_REPORT_DELAY_MS", DELAY_MS.to_string()),
    ]);
    let order_id = system.create_order(100, "EUR", "").await;
    let started = Instant::now();
    let (status, page) = system.decide(&order_id, &[("decision", "pay")]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("data-outcome=\"succeeded\""), "{page}");
    assert!(
        started.elapsed() >= Duration::from_millis(DELAY_MS),
        "the report waited"
    );
    assert_eq!(
        system.statuses(&order_id).await,
        [Created, Succeeded],
        "the repeated report wrote nothing"
    );
}
