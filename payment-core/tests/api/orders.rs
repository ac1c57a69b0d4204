//! The unary RPCs over a real socket: creation, idempotency, bad input,
//! signed reports, state-machine answers and cancellation.

use payments_proto::{payments::v1 as pb, signature};
use testkit::{PROVIDER_SECRET, report_request};
use tonic::{Code, metadata::MetadataValue};

use crate::helpers::{spawn_app, statuses, violated_field};

fn create(
    amount_minor: i64,
    currency: &str,
    description: &str,
    key: &str,
) -> pb::CreateOrderRequest {
    pb::CreateOrderRequest {
        amount_minor,
        currency: currency.into(),
        description: description.into(),
        idempotency_key: key.into(),
    }
}

#[tokio::test]
async fn create_then_get_returns_the_same_order_with_secret_and_payment_url() {
    let app = spawn_app().await;
    let order = app.create_order(1999).await;
    assert_eq!(order.status(), pb::OrderStatus::Created);
    assert_eq!((order.amount_minor, order.currency.as_str()), (1999, "EUR"));
    assert!(
        order.client_secret.len() >= 64,
        "client secret is long and random"
    );
    assert!(
        order
            .payment_url
            .ends_with(&format!("/pay/{}", order.order_id))
    );
    assert!(order.expires_at.unwrap().seconds > order.created_at.unwrap().seconds);

    let fetched = app
        .payments
        .clone()
        .get_order(pb::GetOrderRequest {
            order_id: order.order_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(fetched, order);
    let events = app.order_events(&order.order_id).await;
    assert_eq!(statuses(&events), [pb::OrderStatus::Created]);
}

#[tokio::test]
async fn every_bad_create_input_is_invalid_argument_naming_the_field_and_stores_nothing() {
    let app = spawn_app().await;
    let cases = [
        (create(0, "EUR", "", ""), "amount_minor"),
        (create(-5, "EUR", "", ""), "amount_minor"),
        (create(100_000_000_001, "EUR", "", ""), "amount_minor"),
        (create(100, "eur", "", ""), "currency"),
        (create(100, "XYZ", "", ""), "currency"),
        (create(100, "", "", ""), "currency"),
        (create(100, "EUR", &"d".repeat(501), ""), "description"),
        (create(100, "EUR", "", &"k".repeat(256)), "idempotency_key"),
        (create(100, "EUR", "", "has space"), "idempotency_key"),
    ];
    for (request, field) in cases {
        let status = app
            .payments
            .clone()
            .create_order(request)
            .await
            .unwrap_err();
        assert_eq!(violated_field(&status), field);
        assert!(
            status.message().starts_with(field),
            "message names the field: {}",
            status.message()
        );
    }
    assert_eq!(app.head_sequence().await, 0, "nothing was stored");
}

#[tokio::test]
async fn malformed_order_ids_and_a_watch_without_selector_are_invalid_argument() {
    let app = spawn_app().await;
    let existing = app.create_order(100).await;
    let mut payments = app.payments.clone();
    let bad = "not-a-uuid".to_string();
    let status = payments
        .get_order(pb::GetOrderRequest {
            order_id: bad.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_field(&status), "order_id");
    let status = payments
        .cancel_order(pb::CancelOrderRequest {
            order_id: bad.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_field(&status), "order_id");
    let status = payments
        .list_order_events(pb::ListOrderEventsRequest {
            order_id: bad.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_field(&status), "order_id");
    let status = payments
        .watch_payments(pb::WatchPaymentsRequest {
            selector: None,
            after_sequence: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_field(&status), "selector");
    let status = payments
        .watch_payments(pb::WatchPaymentsRequest {
            selector: Some(pb::watch_payments_request::Selector::AllOrders(false)),
            after_sequence: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_field(&status), "selector");
    let status = payments
        .watch_payments(pb::WatchPaymentsRequest {
            selector: Some(pb::watch_payments_request::Selector::OrderId(bad)),
            after_sequence: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_field(&status), "order_id");
    let report = app
        .report("nope", pb::PaymentOutcome::Succeeded, "")
        .await
        .unwrap_err();
    assert_eq!(violated_field(&report), "order_id");
    let status = app
        .report(
            &existing.order_id,
            pb::PaymentOutcome::Failed,
            &"r".repeat(501),
        )
        .await
        .unwrap_err();
    assert_eq!(violated_field(&status), "reason");
    let status = app
        .payments
        .clone()
        .cancel_order(pb::CancelOrderRequest {
            order_id: existing.order_id.clone(),
            reason: "r".repeat(501),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_field(&status), "reason");
    assert_eq!(
        app.head_sequence().await,
        1,
        "no bad request wrote anything"
    );
}

#[tokio::test]
async fn unknown_orders_are_not_found() {
    let app = spawn_app().await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let status = app
        .payments
        .clone()
        .get_order(pb::GetOrderRequest {
            order_id: unknown.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = app
        .payments
        .clone()
        .watch_payments(pb::WatchPaymentsRequest {
            selector: Some(pb::watch_payments_request::Selector::OrderId(
                unknown.clone(),
            )),
            after_sequence: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = app
        .report(&unknown, pb::PaymentOutcome::Succeeded, "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = app
        .payments
        .clone()
        .list_order_events(pb::ListOrderEventsRequest {
            order_id: unknown,
            after_sequence: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn a_known_order_with_nothing_after_the_given_sequence_lists_no_events() {
    let app = spawn_app().await;
    let order = app.create_order(100).await;
    let history = |after_sequence| {
        let mut payments = app.payments.clone();
        let order_id = order.order_id.clone();
        async move {
            payments
                .list_order_events(pb::ListOrderEventsRequest {
                    order_id,
                    after_sequence,
                })
                .await
                .expect("a known order lists")
                .into_inner()
                .events
        }
    };
    let all = history(0).await;
    assert_eq!(all.len(), 1, "its created event");
    assert!(history(all[0].sequence).await.is_empty());
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_order_and_different_parameters_conflict() {
    let app = spawn_app().await;
    let mut payments = app.payments.clone();
    let first = payments
        .create_order(create(500, "USD", "book", "key-1"))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    let again = payments
        .create_order(create(500, "USD", "book", "key-1"))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(first, again, "same key, same parameters: same order");

    for changed in [
        create(501, "USD", "book", "key-1"),
        create(500, "EUR", "book", "key-1"),
        create(500, "USD", "pen", "key-1"),
    ] {
        let status = payments.create_order(changed).await.unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists);
        assert!(
            status.message().contains("idempotency_key"),
            "{}",
            status.message()
        );
    }
    assert_eq!(app.head_sequence().await, 1, "one order, one event");

    let other = payments
        .create_order(create(500, "USD", "book", "key-2"))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_ne!(other.order_id, first.order_id, "a new key is a new order");
}

#[tokio::test]
async fn concurrent_creates_with_one_key_make_one_order() {
    let app = spawn_app().await;
    let creates = (0..20).map(|_| {
        let mut payments = app.payments.clone();
        async move {
            payments
                .create_order(create(700, "EUR", "race", "same-key"))
                .await
                .unwrap()
                .into_inner()
                .order
                .unwrap()
        }
    });
    let orders = futures::future::join_all(creates).await;
    assert!(
        orders
            .iter()
            .all(|order| order.order_id == orders[0].order_id)
    );
    assert_eq!(app.head_sequence().await, 1);
}

#[tokio::test]
async fn reports_without_valid_fresh_signatures_are_unauthenticated_and_change_nothing() {
    let app = spawn_app().await;
    let order = app.create_order(1000).await;
    let request = report_request(&order.order_id, pb::PaymentOutcome::Succeeded, "");
    let mut provider = app.provider.clone();

    let secret = PROVIDER_SECRET.as_bytes();
    let now = signature::unix_now();

    let missing = tonic::Request::new(request.clone());
    let forged = signature::signed_now(b"not-the-secret", request.clone());
    // Correctly signed, but just outside the server's 300 s tolerance.
    let stale = signature::signed_request(secret, now - 301, request.clone());
    let future = signature::signed_request(secret, now + 301, request.clone());
    let mut tampered = signature::signed_now(secret, request.clone());
    tampered.get_mut().outcome = pb::PaymentOutcome::Failed as i32;
    let mut garbage = tonic::Request::new(request.clone());
    garbage
        .metadata_mut()
        .insert(signature::TIMESTAMP_HEADER, MetadataValue::from(now));
    garbage
        .metadata_mut()
        .insert(signature::SIGNATURE_HEADER, "v1=zz".parse().unwrap());

    for (name, attempt) in [
        ("missing", missing),
        ("forged", forged),
        ("stale", stale),
        ("future", future),
        ("tampered", tampered),
        ("garbage", garbage),
    ] {
        let status = provider.report_payment_result(attempt).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{name}");
        assert!(
            !status.message().contains("mismatch"),
            "the cause is not leaked: {}",
            status.message()
        );
    }
    assert_eq!(
        statuses(&app.order_events(&order.order_id).await),
        [pb::OrderStatus::Created],
        "order unchanged"
    );

    let valid = signature::signed_now(secret, request);
    let answer = provider
        .report_payment_result(valid)
        .await
        .unwrap()
        .into_inner();
    assert!(answer.changed);
    assert_eq!(answer.order.unwrap().status(), pb::OrderStatus::Succeeded);
}

#[tokio::test]
async fn a_repeated_report_is_ok_without_a_new_event_and_a_conflicting_one_fails() {
    let app = spawn_app().await;
    let order = app.create_order(1000).await;
    let id = &order.order_id;
    assert!(
        app.report(id, pb::PaymentOutcome::Processing, "")
            .await
            .unwrap()
            .changed
    );
    assert!(
        !app.report(id, pb::PaymentOutcome::Processing, "")
            .await
            .unwrap()
            .changed,
        "page opened twice"
    );
    let declined = app
        .report(id, pb::PaymentOutcome::Failed, "insufficient funds")
        .await
        .unwrap();
    assert!(declined.changed);
    assert_eq!(
        declined.order.as_ref().unwrap().reason,
        "insufficient funds"
    );
    assert!(
        !app.report(id, pb::PaymentOutcome::Failed, "insufficient funds")
            .await
            .unwrap()
            .changed
    );

    for conflicting in [
        pb::PaymentOutcome::Succeeded,
        pb::PaymentOutcome::Canceled,
        pb::PaymentOutcome::Processing,
    ] {
        let status = app.report(id, conflicting, "").await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{conflicting:?}");
    }
    let events = app.order_events(id).await;
    assert_eq!(
        statuses(&events),
        [
            pb::OrderStatus::Created,
            pb::OrderStatus::Processing,
            pb::OrderStatus::Failed
        ]
    );
    assert!(
        events
            .windows(2)
            .all(|pair| pair[0].sequence < pair[1].sequence)
    );
    let status = app
        .report(id, pb::PaymentOutcome::Unspecified, "")
        .await
        .unwrap_err();
    assert_eq!(violated_field(&status), "outcome");
}

#[tokio::test]
async fn merchants_cancel_open_orders_but_not_paid_ones() {
    let app = spawn_app().await;
    let mut payments = app.payments.clone();
    let open = app.create_order(300).await;
    let cancel = |order_id: String| pb::CancelOrderRequest {
        order_id,
        reason: "customer asked".into(),
    };
    let canceled = payments
        .cancel_order(cancel(open.order_id.clone()))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(
        (canceled.status(), canceled.reason.as_str()),
        (pb::OrderStatus::Canceled, "customer asked")
    );
    payments
        .cancel_order(cancel(open.order_id.clone()))
        .await
        .expect("cancelling twice is a no-op");
    assert_eq!(app.order_events(&open.order_id).await.len(), 2);

    let paid = app.create_order(300).await;
    app.report(&paid.order_id, pb::PaymentOutcome::Succeeded, "")
        .await
        .unwrap();
    let status = payments
        .cancel_order(cancel(paid.order_id.clone()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn list_events_pages_through_every_order_in_sequence_order() {
    let app = spawn_app().await;
    for amount in 1..=5 {
        app.create_order(amount).await;
    }
    let mut payments = app.payments.clone();
    let first = payments
        .list_events(pb::ListEventsRequest {
            after_sequence: 0,
            page_size: 3,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first.events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(first.head_sequence, 5);
    let rest = payments
        .list_events(pb::ListEventsRequest {
            after_sequence: 3,
            page_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        rest.events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [4, 5]
    );
}
