//! Who may call what: API keys, their roles, client secrets only for the
//! gateway role, and idempotency keys in their merchant's namespace.

use std::sync::Arc;

use futures::StreamExt;
use payment_core::auth::hash_hex;
use payments_proto::{
    contract::dev,
    payments::v1::{self as pb, watch_payments_request::Selector},
};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::{TestApp, head_sequence_of, spawn_app, spawn_app_in};

const SHOP_A: &str = "key-shop-a";
const SHOP_A_ROTATED: &str = "key-shop-a-2";
const SHOP_B: &str = "key-shop-b";
const GATEWAY_ONLY: &str = "key-gateway";
const READER: &str = "key-reader";
/// shop-b's key that also holds `reader`, as a provider run by a merchant might.
const SHOP_B_PAGE: &str = "key-shop-b-page";

/// A core with keys of two merchants (shop-a with two live keys), a
/// gateway-only key and a reader.
async fn spawn_app_with_keys() -> TestApp {
    let keys = [
        format!("shop-a-1:shop-a:merchant:{}", hash_hex(SHOP_A)),
        format!("shop-a-2:shop-a:merchant:{}", hash_hex(SHOP_A_ROTATED)),
        format!("shop-b:shop-b:merchant:{}", hash_hex(SHOP_B)),
        format!("edge:shop-a:gateway:{}", hash_hex(GATEWAY_ONLY)),
        format!("page:provider:reader:{}", hash_hex(READER)),
        format!(
            "shop-b-page:shop-b:merchant+reader:{}",
            hash_hex(SHOP_B_PAGE)
        ),
    ]
    .join(",");
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    spawn_app_in(dir, |config| config.api_keys = Some(keys)).await
}

fn create_request(idempotency_key: &str, amount_minor: i64) -> pb::CreateOrderRequest {
    pb::CreateOrderRequest {
        amount_minor,
        currency: "EUR".into(),
        description: "auth test".into(),
        idempotency_key: idempotency_key.into(),
    }
}

/// An order created with `api_key`.
async fn create_as(app: &TestApp, api_key: &str) -> pb::Order {
    app.payments_as(api_key)
        .create_order(create_request("", 100))
        .await
        .expect("created")
        .into_inner()
        .order
        .expect("order in the answer")
}

/// The client secret GetOrder answers the holder of `api_key` for an order.
async fn secret_read_by(app: &TestApp, api_key: &str, order_id: &str) -> String {
    app.payments_as(api_key)
        .get_order(pb::GetOrderRequest {
            order_id: order_id.to_owned(),
        })
        .await
        .expect("order read")
        .into_inner()
        .order
        .expect("order in the answer")
        .client_secret
}

/// Every PaymentService call once, as the holder of `api_key`, with each
/// answer's code.
async fn every_call(app: &TestApp, api_key: &str, order_id: &str) -> Vec<(&'static str, Code)> {
    let mut client = app.payments_as(api_key);
    let code = |result: Result<(), tonic::Status>| result.err().map_or(Code::Ok, |s| s.code());
    vec![
        (
            "CreateOrder",
            code(client.create_order(create_request("", 100)).await.map(drop)),
        ),
        (
            "GetOrder",
            code(
                client
                    .get_order(pb::GetOrderRequest {
                        order_id: order_id.into(),
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "ListOrderEvents",
            code(
                client
                    .list_order_events(pb::ListOrderEventsRequest {
                        order_id: order_id.into(),
                        after_sequence: 0,
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "ListEvents",
            code(
                client
                    .list_events(pb::ListEventsRequest::default())
                    .await
                    .map(drop),
            ),
        ),
        (
            "WatchPayments",
            code(
                client
                    .watch_payments(pb::WatchPaymentsRequest {
                        selector: Some(Selector::AllOrders(true)),
                        after_sequence: 0,
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "CancelOrder",
            code(
                client
                    .cancel_order(pb::CancelOrderRequest {
                        order_id: order_id.into(),
                        reason: String::new(),
                    })
                    .await
                    .map(drop),
            ),
        ),
    ]
}

#[tokio::test]
async fn calls_without_a_key_or_with_an_unknown_key_are_unauthenticated_and_change_nothing() {
    let app = spawn_app_with_keys().await;
    let order = create_as(&app, SHOP_A).await;
    let head = head_sequence_of(app.payments_as(GATEWAY_ONLY)).await;

    let mut bare = pb::payment_service_client::PaymentServiceClient::new(app.channel.clone());
    let refused = bare
        .create_order(create_request("", 100))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(
        refused.message().contains("authorization"),
        "tells how to authenticate: {refused:?}"
    );
    let cancel = bare
        .cancel_order(pb::CancelOrderRequest {
            order_id: order.order_id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(cancel.code(), Code::Unauthenticated);

    // "" sends `Bearer ` and nothing after it.
    for key in ["", "not-a-key", dev::GATEWAY_API_KEY] {
        for (call, code) in every_call(&app, key, &order.order_id).await {
            assert_eq!(code, Code::Unauthenticated, "{call} with {key:?}");
        }
    }
    assert_eq!(
        head_sequence_of(app.payments_as(GATEWAY_ONLY)).await,
        head,
        "a refused call writes nothing"
    );
}

#[tokio::test]
async fn each_role_may_make_only_its_calls() {
    let app = spawn_app_with_keys().await;
    let order = create_as(&app, SHOP_A).await;
    let head = head_sequence_of(app.payments_as(GATEWAY_ONLY)).await;
    let allowed = |code: Code| {
        if code == Code::PermissionDenied {
            "denied"
        } else {
            "allowed"
        }
    };

    let gateway = every_call(&app, GATEWAY_ONLY, &order.order_id).await;
    let gateway: Vec<_> = gateway
        .into_iter()
        .map(|(call, code)| (call, allowed(code)))
        .collect();
    assert_eq!(
        gateway,
        [
            ("CreateOrder", "denied"),
            ("GetOrder", "allowed"),
            ("ListOrderEvents", "allowed"),
            ("ListEvents", "allowed"),
            ("WatchPayments", "allowed"),
            ("CancelOrder", "denied"),
        ]
    );
    let reader = every_call(&app, READER, &order.order_id).await;
    let reader: Vec<_> = reader
        .into_iter()
        .map(|(call, code)| (call, allowed(code)))
        .collect();
    assert_eq!(
        reader,
        [
            ("CreateOrder", "denied"),
            ("GetOrder", "allowed"),
            ("ListOrderEvents", "denied"),
            ("ListEvents", "denied"),
            ("WatchPayments", "denied"),
            ("CancelOrder", "denied"),
        ]
    );
    assert_eq!(
        head_sequence_of(app.payments_as(GATEWAY_ONLY)).await,
        head,
        "refused creates and cancels wrote nothing"
    );
    let status = app
        .payments_as(READER)
        .create_order(create_request("", 100))
        .await
        .unwrap_err();
    assert!(
        status.message().contains("page"),
        "names the key: {status:?}"
    );

    // The merchant may do all six; its cancel goes last and succeeds.
    for (call, code) in every_call(&app, SHOP_A, &order.order_id).await {
        assert_eq!(code, Code::Ok, "merchant: {call}");
    }
}

#[tokio::test]
async fn no_event_carries_a_client_secret_for_any_role_only_its_digest() {
    let app = spawn_app_with_keys().await;
    let created = create_as(&app, SHOP_A).await;
    assert!(
        !created.client_secret.is_empty(),
        "CreateOrder answers the creator with the secret"
    );
    let digest = payments_proto::contract::client_secret_sha256(&created.client_secret).to_vec();
    assert_eq!(created.client_secret_sha256, digest);

    let orders_seen = |key: &'static str| {
        let app = &app;
        let order_id = created.order_id.clone();
        async move {
            let mut client = app.payments_as(key);
            let history = client
                .list_order_events(pb::ListOrderEventsRequest {
                    order_id: order_id.clone(),
                    after_sequence: 0,
                })
                .await
                .unwrap()
                .into_inner()
                .events;
            let page = client
                .list_events(pb::ListEventsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .events;
            let mut watch = client
                .watch_payments(pb::WatchPaymentsRequest {
                    selector: Some(Selector::OrderId(order_id)),
                    after_sequence: 0,
                })
                .await
                .unwrap()
                .into_inner();
            let watched = watch.next().await.expect("the created event").unwrap();
            [history[0].clone(), page[0].clone(), watched].map(|event| event.order.expect("order"))
        }
    };
    for key in [SHOP_A, GATEWAY_ONLY] {
        for order in orders_seen(key).await {
            assert_eq!(order.client_secret, "", "no event carries the secret");
            assert_eq!(order.client_secret_sha256, digest, "every event its digest");
        }
    }

    assert_eq!(
        secret_read_by(&app, READER, &created.order_id).await,
        "",
        "the provider's page does not get the secret"
    );
    assert_eq!(
        secret_read_by(&app, GATEWAY_ONLY, &created.order_id).await,
        "",
        "a gateway checks secrets against the digest"
    );
    assert_eq!(
        secret_read_by(&app, SHOP_A, &created.order_id).await,
        created.client_secret,
        "the merchant whose order it is reads its secret"
    );
}

#[tokio::test]
async fn idempotency_keys_belong_to_the_calling_keys_merchant() {
    let app = spawn_app_with_keys().await;
    let create = |key: &'static str, amount| {
        let mut client = app.payments_as(key);
        async move {
            client
                .create_order(create_request("cart-1", amount))
                .await
                .map(|r| r.into_inner().order.unwrap())
        }
    };
    let a = create(SHOP_A, 100).await.expect("shop-a creates");
    // Another merchant's same key with other parameters is its own order,
    // not ALREADY_EXISTS, and not shop-a's order.
    let b = create(SHOP_B, 250).await.expect("shop-b's key is its own");
    assert_ne!(a.order_id, b.order_id);
    assert_eq!(
        create(SHOP_B, 250).await.unwrap().order_id,
        b.order_id,
        "shop-b's retry"
    );
    // The same merchant's rotated key shares the namespace.
    assert_eq!(
        create(SHOP_A_ROTATED, 100).await.unwrap().order_id,
        a.order_id
    );
    assert_eq!(
        create(SHOP_A_ROTATED, 999).await.unwrap_err().code(),
        Code::AlreadyExists
    );
}

#[tokio::test]
async fn health_and_reflection_need_no_key_and_keys_can_come_from_a_file() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let file = dir.path().join("keys");
    std::fs::write(
        &file,
        format!(
            "# shop keys\nshop-a:shop-a:merchant:{}\n\n",
            hash_hex(SHOP_A)
        ),
    )
    .unwrap();
    let app = spawn_app_in(dir, |config| config.api_keys_file = Some(file)).await;
    let health = HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest {
            service: "payments.v1.PaymentService".into(),
        })
        .await
        .expect("health answers without a key");
    assert_eq!(health.into_inner().status, 1, "SERVING");
    create_as(&app, SHOP_A).await;
    let refused = app
        .payments_as(dev::MERCHANT_API_KEY)
        .create_order(create_request("", 100))
        .await;
    assert_eq!(
        refused.unwrap_err().code(),
        Code::Unauthenticated,
        "configured keys replace the development ones"
    );
}

#[tokio::test]
async fn the_development_keys_work_when_none_are_configured() {
    let app = spawn_app().await;
    let created = create_as(&app, dev::MERCHANT_API_KEY).await;
    let provider = app
        .payments_as(dev::PROVIDER_API_KEY)
        .get_order(pb::GetOrderRequest {
            order_id: created.order_id,
        })
        .await;
    assert!(provider.is_ok(), "{provider:?}");
}

#[tokio::test]
async fn a_signed_report_needs_no_key_and_its_answer_carries_no_client_secret() {
    let app = spawn_app().await;
    let order = app.create_order(100).await;
    let answer = app
        .report(&order.order_id, pb::PaymentOutcome::Processing, "")
        .await
        .expect("a signed report is accepted without an API key");
    let reported = answer.order.expect("order in the answer");
    assert_eq!(reported.status(), pb::OrderStatus::Processing);
    assert_eq!(reported.client_secret, "", "the provider has no use for it");
}

#[tokio::test]
async fn a_merchant_key_sees_and_cancels_only_its_own_merchants_orders() {
    let app = spawn_app_with_keys().await;
    let theirs = create_as(&app, SHOP_A).await;
    let mine = create_as(&app, SHOP_B).await;
    let head = head_sequence_of(app.payments_as(GATEWAY_ONLY)).await;
    let mut shop_b = app.payments_as(SHOP_B);

    let id = || theirs.order_id.clone();
    let refusals = [
        shop_b
            .get_order(pb::GetOrderRequest { order_id: id() })
            .await
            .map(drop),
        shop_b
            .cancel_order(pb::CancelOrderRequest {
                order_id: id(),
                reason: String::new(),
            })
            .await
            .map(drop),
        shop_b
            .list_order_events(pb::ListOrderEventsRequest {
                order_id: id(),
                after_sequence: 0,
            })
            .await
            .map(drop),
        shop_b
            .watch_payments(pb::WatchPaymentsRequest {
                selector: Some(Selector::OrderId(id())),
                after_sequence: 0,
            })
            .await
            .map(drop),
    ];
    for refused in refusals {
        assert_eq!(
            refused.unwrap_err().code(),
            Code::NotFound,
            "another merchant's order"
        );
    }
    assert_eq!(
        head_sequence_of(app.payments_as(GATEWAY_ONLY)).await,
        head,
        "nothing canceled"
    );

    // All-orders views hold its own orders only, and page past the others.
    let page = shop_b
        .list_events(pb::ListEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = page.events.iter().map(|e| e.order_id.clone()).collect();
    assert_eq!(ids, std::slice::from_ref(&mine.order_id));
    assert_eq!(
        page.next_after_sequence, head,
        "the page read every order's events"
    );
    let mut watch = shop_b
        .watch_payments(pb::WatchPaymentsRequest {
            selector: Some(Selector::AllOrders(true)),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(watch.next().await.unwrap().unwrap().order_id, mine.order_id);
    let later = create_as(&app, SHOP_A).await;
    let own_later = create_as(&app, SHOP_B).await;
    let next = watch.next().await.unwrap().unwrap();
    assert_eq!(next.order_id, own_later.order_id, "{later:?} was skipped");

    // A merchant key that is also a reader sees every order, but only its
    // own merchant's client secrets.
    assert_eq!(
        secret_read_by(&app, SHOP_B_PAGE, &theirs.order_id).await,
        ""
    );
    assert_eq!(
        secret_read_by(&app, SHOP_B_PAGE, &mine.order_id).await,
        mine.client_secret
    );
    // Its history and watch calls still hold its own merchant's orders only:
    // `reader` reads single orders, it adds no one's events.
    let mut shop_b_page = app.payments_as(SHOP_B_PAGE);
    let listed = shop_b_page
        .list_events(pb::ListEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.events.iter().all(|e| e.order_id != theirs.order_id),
        "another merchant's events listed: {listed:?}"
    );
    assert!(
        listed.events.iter().any(|e| e.order_id == mine.order_id),
        "its own merchant's events listed: {listed:?}"
    );
    let their_watch = shop_b_page
        .watch_payments(pb::WatchPaymentsRequest {
            selector: Some(Selector::OrderId(id())),
            after_sequence: 0,
        })
        .await;
    assert_eq!(their_watch.unwrap_err().code(), Code::NotFound);
    let their_history = shop_b_page
        .list_order_events(pb::ListOrderEventsRequest {
            order_id: id(),
            after_sequence: 0,
        })
        .await;
    assert_eq!(their_history.unwrap_err().code(), Code::NotFound);

    // A page asked for past the end still names the store's head.
    let past_end = shop_b
        .list_events(pb::ListEventsRequest {
            after_sequence: 1_000,
            page_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        past_end.head_sequence,
        head_sequence_of(app.payments_as(GATEWAY_ONLY)).await
    );

    // The gateway serves every merchant's payers: it sees both.
    let all = app
        .payments_as(GATEWAY_ONLY)
        .list_events(pb::ListEventsRequest::default())
        .await
        .unwrap();
    assert_eq!(all.into_inner().events.len(), 4);
    create_as(&app, SHOP_A_ROTATED).await;
    app.payments_as(SHOP_A_ROTATED)
        .cancel_order(pb::CancelOrderRequest {
            order_id: theirs.order_id,
            reason: String::new(),
        })
        .await
        .expect("the merchant's other key may cancel it");
}

#[tokio::test]
async fn a_sqlite_file_from_before_merchants_gains_the_column_and_its_orders_are_no_merchants() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let old_id = uuid::Uuid::new_v4().to_string();
    {
        // The orders table as it was before the merchant column.
        let conn = rusqlite::Connection::open(dir.path().join("payments.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE orders (order_id TEXT PRIMARY KEY, status TEXT NOT NULL, \
             amount_minor INTEGER NOT NULL, currency TEXT NOT NULL, description TEXT NOT NULL, \
             client_secret TEXT NOT NULL, idempotency_key TEXT UNIQUE, created_at INTEGER NOT NULL, \
             updated_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, \
             reason TEXT NOT NULL DEFAULT '', provider_reference TEXT NOT NULL DEFAULT '') STRICT;",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO orders VALUES (?1, 'created', 500, 'EUR', 'old', 'cs_old', NULL, 1, 1, 9999999999999, '', '')",
            [&old_id],
        )
        .unwrap();
    }
    let keys = [
        format!("shop-b:shop-b:merchant:{}", hash_hex(SHOP_B)),
        format!("edge:shop-b:gateway:{}", hash_hex(GATEWAY_ONLY)),
    ]
    .join(",");
    let app = spawn_app_in(dir, |config| config.api_keys = Some(keys)).await;
    let get = |key| {
        let mut client = app.payments_as(key);
        let order_id = old_id.clone();
        async move { client.get_order(pb::GetOrderRequest { order_id }).await }
    };
    // Missing data fails closed: no merchant owns an order without one.
    assert_eq!(get(SHOP_B).await.unwrap_err().code(), Code::NotFound);
    let cancel = app
        .payments_as(SHOP_B)
        .cancel_order(pb::CancelOrderRequest {
            order_id: old_id.clone(),
            reason: String::new(),
        })
        .await;
    assert_eq!(cancel.unwrap_err().code(), Code::NotFound);
    let old = get(GATEWAY_ONLY)
        .await
        .expect("the gateway still serves it");
    assert_eq!(old.into_inner().order.unwrap().description, "old");
    create_as(&app, SHOP_B).await;
}

#[tokio::test]
async fn logs_name_the_calling_key_never_show_a_key_and_warn_of_public_keys_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("core.log");
    let keys = [
        testkit::api_key_entry("shop-a-1", "shop-a", "merchant", SHOP_A),
        testkit::api_key_entry("edge", "shop-a", "gateway", GATEWAY_ONLY),
        // A public development key left in a real list: accepted in
        // development mode only, and named by its banner.
        testkit::api_key_entry("left-over", "shop-a", "merchant", dev::MERCHANT_API_KEY),
    ]
    .join(",");
    let mut core = testkit::Process::start_logging_to(
        "payment-core",
        &[
            (
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("core.db").display()),
            ),
            ("PROVIDER_SECRET", testkit::PROVIDER_SECRET.to_owned()),
            ("PAYMENT_CORE_API_KEYS", keys),
            ("PAYMENTS_PUSH_DEV", "1".to_owned()),
            ("LOG_FORMAT", "json".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ],
        &log,
    );
    let url = format!("http://{}", core.addr);
    let order = testkit::payments_client_at(&url, SHOP_A)
        .create_order(create_request("", 100))
        .await
        .expect("created")
        .into_inner()
        .order
        .expect("order in the answer");
    let denied = testkit::payments_client_at(&url, GATEWAY_ONLY)
        .cancel_order(pb::CancelOrderRequest {
            order_id: order.order_id.clone(),
            reason: String::new(),
        })
        .await;
    assert_eq!(denied.unwrap_err().code(), Code::PermissionDenied);
    let unknown = testkit::payments_client_at(&url, "not-a-key-anyone-was-given")
        .get_order(pb::GetOrderRequest {
            order_id: order.order_id.clone(),
        })
        .await;
    assert_eq!(unknown.unwrap_err().code(), Code::Unauthenticated);
    core.kill();

    let text = std::fs::read_to_string(&log).expect("log written");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON log line"))
        .collect();
    let caller_of = |message: &str| {
        lines
            .iter()
            .find(|line| line["fields"]["message"] == message)
            .and_then(|line| line["span"]["caller"].as_str())
            .unwrap_or_else(|| panic!("no `{message}` line naming its caller in:\n{text}"))
            .to_owned()
    };
    assert_eq!(caller_of("order created"), "shop-a-1");
    assert_eq!(caller_of("call refused: role does not allow it"), "edge");
    assert!(text.contains("call refused: unknown API key"), "{text}");
    assert!(
        text.contains("DEVELOPMENT MODE") && text.contains("PAYMENT_CORE_API_KEYS (left-over)"),
        "no warning that a public key is accepted:\n{text}"
    );
    for key in [
        SHOP_A,
        GATEWAY_ONLY,
        dev::MERCHANT_API_KEY,
        "not-a-key-anyone-was-given",
    ] {
        assert!(!text.contains(key), "a key in the logs:\n{text}");
    }
}
