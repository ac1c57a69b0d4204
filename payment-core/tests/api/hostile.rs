//! Hostile input, generated: arbitrary CreateOrder, CancelOrder and
//! ReportPaymentResult messages (any numbers, any Unicode, ids that are
//! real, unknown or garbage, signatures that are valid, forged or absent,
//! API keys of every role, unknown or absent) against a real server.
//! Whatever arrives, the server never panics and never answers INTERNAL:
//! every refusal is one a client can act on (invalid argument, not found,
//! failed precondition, already exists, unauthenticated, permission
//! denied), and a refused call changes nothing: the log's head and every
//! order are as they were.

use payments_proto::{
    contract::dev,
    payments::v1::{self as pb, payment_service_client::PaymentServiceClient},
    signature,
};
use proptest::{
    prelude::*,
    test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner},
};
use tonic::Code;

use crate::helpers::{TestApp, spawn_app};

/// Which order a generated call names.
#[derive(Debug, Clone)]
enum Target {
    /// One of the orders made before the run (open, paid, canceled...).
    Existing(usize),
    /// A well-formed id that names no order.
    Unknown,
    /// Any string.
    Raw(String),
}

#[derive(Debug, Clone)]
enum Signing {
    Valid,
    /// Signed with another secret.
    Forged,
    Absent,
    /// Signed correctly, at a time far from now.
    Stale(i64),
}

/// The API key a CreateOrder or CancelOrder carries (the development keys
/// the test core accepts, or none it knows).
#[derive(Debug, Clone)]
enum Key {
    /// `merchant+gateway`: may create and cancel.
    Gateway,
    /// `merchant`, of the same merchant: may create and cancel.
    Merchant,
    /// `reader`: may do neither.
    Reader,
    Unknown(String),
    Absent,
}

#[derive(Debug, Clone)]
enum Call {
    Create(pb::CreateOrderRequest, Key),
    Cancel {
        target: Target,
        reason: String,
        key: Key,
    },
    Report {
        target: Target,
        outcome: i32,
        provider_reference: String,
        reason: String,
        signing: Signing,
    },
}

/// Strings that hit the edges: empty, long, control characters, Unicode.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        any::<String>(),
        "[A-Za-z0-9 _-]{0,20}",
        "\\PC{490,520}",
        "[\\x00-\\x1f\\u{7f}\\u{2028}\\u{fffd}]{1,8}",
    ]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        (0usize..4).prop_map(Target::Existing),
        Just(Target::Unknown),
        text().prop_map(Target::Raw),
    ]
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        3 => Just(Key::Gateway),
        2 => Just(Key::Merchant),
        1 => Just(Key::Reader),
        1 => "[!-~]{0,12}".prop_map(Key::Unknown),
        1 => Just(Key::Absent),
    ]
}

fn call() -> impl Strategy<Value = Call> {
    let create = (
        prop_oneof![any::<i64>(), -5i64..5, 99_999_999_990i64..100_000_000_010],
        prop_oneof![
            Just("EUR".to_owned()),
            Just("eur".to_owned()),
            "[A-Z]{0,4}",
            text()
        ],
        text(),
        prop_oneof![Just(String::new()), "[!-~]{1,8}", text()],
        key(),
    )
        .prop_map(
            |(amount_minor, currency, description, idempotency_key, key)| {
                Call::Create(
                    pb::CreateOrderRequest {
                        amount_minor,
                        currency,
                        description,
                        idempotency_key,
                    },
                    key,
                )
            },
        );
    let cancel = (target(), text(), key()).prop_map(|(target, reason, key)| Call::Cancel {
        target,
        reason,
        key,
    });
    let signing = prop_oneof![
        Just(Signing::Valid),
        Just(Signing::Forged),
        Just(Signing::Absent),
        prop_oneof![-10_000i64..-301, 301i64..10_000].prop_map(Signing::Stale),
    ];
    let report = (target(), -2i32..7, text(), text(), signing).prop_map(
        |(target, outcome, provider_reference, reason, signing)| Call::Report {
            target,
            outcome,
            provider_reference,
            reason,
            signing,
        },
    );
    prop_oneof![create, cancel, report]
}

/// What a refusal must leave alone: the log's head and the orders.
#[derive(Debug, PartialEq)]
struct Snapshot {
    head: u64,
    orders: Vec<pb::Order>,
}

async fn snapshot(app: &TestApp, ids: &[String]) -> Snapshot {
    let mut orders = Vec::new();
    for id in ids {
        let order = app
            .payments
            .clone()
            .get_order(pb::GetOrderRequest {
                order_id: id.clone(),
            })
            .await
            .expect("a known order reads")
            .into_inner()
            .order
            .expect("order");
        orders.push(order);
    }
    Snapshot {
        head: app.head_sequence().await,
        orders,
    }
}

fn order_id(target: &Target, ids: &[String]) -> String {
    match target {
        Target::Existing(i) => ids[i % ids.len()].clone(),
        Target::Unknown => uuid::Uuid::new_v4().to_string(),
        Target::Raw(raw) => raw.clone(),
    }
}

/// `message` with `key`'s `authorization` header, if it has one that
/// metadata can carry.
fn keyed<T>(message: T, key: &Key) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let presented = match key {
        Key::Gateway => dev::GATEWAY_API_KEY,
        Key::Merchant => dev::MERCHANT_API_KEY,
        Key::Reader => dev::PROVIDER_API_KEY,
        Key::Unknown(key) => key,
        Key::Absent => return request,
    };
    if let Ok(value) = format!("Bearer {presented}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

async fn send(app: &TestApp, call: &Call, ids: &[String]) -> Result<(), tonic::Status> {
    let mut payments = PaymentServiceClient::new(app.channel.clone());
    match call {
        Call::Create(request, key) => payments
            .create_order(keyed(request.clone(), key))
            .await
            .map(drop),
        Call::Cancel {
            target,
            reason,
            key,
        } => payments
            .cancel_order(keyed(
                pb::CancelOrderRequest {
                    order_id: order_id(target, ids),
                    reason: reason.clone(),
                },
                key,
            ))
            .await
            .map(drop),
        Call::Report {
            target,
            outcome,
            provider_reference,
            reason,
            signing,
        } => {
            let message = pb::ReportPaymentResultRequest {
                order_id: order_id(target, ids),
                outcome: *outcome,
                provider_reference: provider_reference.clone(),
                reason: reason.clone(),
            };
            let secret = testkit::PROVIDER_SECRET.as_bytes();
            let request = match signing {
                Signing::Valid => signature::signed_now(secret, message),
                Signing::Forged => signature::signed_now(b"not-the-secret", message),
                Signing::Absent => tonic::Request::new(message),
                Signing::Stale(offset) => {
                    signature::signed_request(secret, signature::unix_now() + offset, message)
                }
            };
            app.provider
                .clone()
                .report_payment_result(request)
                .await
                .map(drop)
        }
    }
}

#[test]
fn arbitrary_creates_cancels_and_reports_never_fail_internally_and_refusals_change_nothing() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (app, ids) = runtime.block_on(async {
        let app = spawn_app().await;
        // Open, processing, paid and canceled: every state a call can meet.
        let mut ids = Vec::new();
        for _ in 0..4 {
            ids.push(app.create_order(1000).await.order_id);
        }
        app.report(&ids[1], pb::PaymentOutcome::Processing, "")
            .await
            .unwrap();
        app.report(&ids[2], pb::PaymentOutcome::Succeeded, "")
            .await
            .unwrap();
        app.payments
            .clone()
            .cancel_order(pb::CancelOrderRequest {
                order_id: ids[3].clone(),
                reason: String::new(),
            })
            .await
            .unwrap();
        (app, ids)
    });
    let mut runner = TestRunner::new(Config {
        cases: 64,
        // Kept beside this file, like `store`'s.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    });
    let outcome = runner.run(&prop::collection::vec(call(), 1..8), |calls| {
        runtime.block_on(async {
            for call in &calls {
                let before = snapshot(&app, &ids).await;
                let Err(status) = send(&app, call, &ids).await else {
                    continue;
                };
                // Only the refusals a client can act on; INTERNAL, UNKNOWN
                // and a reset stream (a panicking handler) are failures.
                prop_assert!(
                    matches!(
                        status.code(),
                        Code::InvalidArgument
                            | Code::NotFound
                            | Code::FailedPrecondition
                            | Code::AlreadyExists
                            | Code::Unauthenticated
                            | Code::PermissionDenied
                    ),
                    "{call:?} failed inside: {status:?}"
                );
                let after = snapshot(&app, &ids).await;
                prop_assert_eq!(
                    before,
                    after,
                    "{:?} was refused ({:?}) but changed state",
                    call,
                    status
                );
            }
            Ok::<(), TestCaseError>(())
        })
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
