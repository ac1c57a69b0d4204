//! `POST /pay/{order_id}`: the payer's decision, reported to the real
//! payment-core, and the page the payer sees after it.

use payments_proto::payments::v1::OrderStatus::{Canceled, Created, Failed, Processing, Succeeded};

use crate::helpers::{decide, element_text, spawn_system, start_provider};

#[tokio::test]
async fn pay_decline_and_cancel_show_the_payer_the_result_and_record_the_reason() {
    let system = spawn_system(&[]);
    // (form, final status, data-outcome, title, message, reason recorded)
    let cases = [
        (
            vec![("decision", "pay")],
            Succeeded,
            "succeeded",
            "Payment approved",
            "You paid 500 JPY to Larkspur Roasters.",
            "",
        ),
        (
            vec![("decision", "decline"), ("reason", "insufficient funds")],
            Failed,
            "failed",
            "Payment declined",
            "Your payment of 500 JPY was declined: insufficient funds.",
            "insufficient funds",
        ),
        (
            vec![("decision", "cancel")],
            Canceled,
            "canceled",
            "Payment canceled",
            "You canceled the payment of 500 JPY. Nothing was charged.",
            "canceled by the payer",
        ),
    ];
    for (form, final_status, outcome, title, message, reason) in cases {
        let order_id = system.create_order(500, "JPY", "").await;
        system.get(&format!("/pay/{order_id}")).await;
        let (status, page) = system.decide(&order_id, &form).await;
        assert_eq!(status, 200, "{page}");
        assert!(
            page.contains(&format!("data-outcome=\"{outcome}\"")),
            "{page}"
        );
        assert_eq!(element_text(&page, "h1", None), title);
        assert_eq!(element_text(&page, "p", Some("message")), message);
        let events = system.events(&order_id).await;
        let statuses: Vec<_> = events.iter().map(|event| event.status()).collect();
        assert_eq!(statuses, [Created, Processing, final_status]);
        assert_eq!(
            events.last().map(|event| event.reason.as_str()),
            Some(reason),
            "the reason payment-core recorded for {outcome}"
        );
    }
}

#[tokio::test]
async fn a_decline_without_a_reason_is_recorded_as_card_declined() {
    let system = spawn_system(&[]);
    let order_id = system.create_order(500, "JPY", "").await;
    let (status, page) = system
        .decide(&order_id, &[("decision", "decline"), ("reason", "  ")])
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        element_text(&page, "p", Some("message")),
        "Your payment of 500 JPY was declined: card declined."
    );
    let events = system.events(&order_id).await;
    assert_eq!(
        events.last().map(|event| event.reason.as_str()),
        Some("card declined")
    );
}

#[tokio::test]
async fn unknown_finished_and_malformed_orders_get_a_clear_page() {
    let system = spawn_system(&[]);
    let (status, page) = system.get(&format!("/pay/{}", uuid::Uuid::new_v4())).await;
    assert_eq!((status, page.contains("id=\"message\"")), (404, true));
    let (status, _) = system.get("/pay/not-an-order").await;
    assert_eq!(status, 404);

    let paid = system.create_order(100, "EUR", "").await;
    system.decide(&paid, &[("decision", "pay")]).await;
    let (status, page) = system.get(&format!("/pay/{paid}")).await;
    assert_eq!(status, 409);
    assert!(page.contains("already paid"), "{page}");
    let (status, page) = system.decide(&paid, &[("decision", "decline")]).await;
    assert_eq!(status, 409, "{page}");
    assert_eq!(
        system.statuses(&paid).await,
        [Created, Succeeded],
        "a second decision changes nothing"
    );

    let open = system.create_order(100, "EUR", "").await;
    let (status, page) = system.decide(&open, &[("decision", "refund")]).await;
    assert_eq!(status, 400);
    assert!(page.contains("Unknown decision"));
    let (status, _) = system.decide(&open, &[("reason", "no decision")]).await;
    assert_eq!(status, 400);
    assert_eq!(system.statuses(&open).await, [Created]);
}

#[tokio::test]
async fn a_provider_with_the_wrong_secret_cannot_change_orders() {
    let system = spawn_system(&[]);
    let forger = start_provider(system.core_addr, "not-the-secret", &[]);
    let order_id = system.create_order(100, "EUR", "").await;
    let (status, page) = decide(&system.http, &forger, &order_id, &[("decision", "pay")]).await;
    assert_eq!(status, 502);
    assert!(page.contains("not charged"), "{page}");
    assert_eq!(system.statuses(&order_id).await, [Created]);
}

#[tokio::test]
async fn with_payment_core_down_the_payer_is_told_to_try_again() {
    // Bound and not listening: the core's connections are refused.
    let unreachable = testkit::refused_address();
    let provider = start_provider(unreachable.addr, testkit::PROVIDER_SECRET, &[]);
    let order_id = uuid::Uuid::new_v4().to_string();
    let (status, page) = decide(
        &reqwest::Client::new(),
        &provider,
        &order_id,
        &[("decision", "pay")],
    )
    .await;
    assert_eq!(status, 503, "{page}");
    assert_eq!(element_text(&page, "h1", None), "Temporarily unavailable");
}
