//! The store and watcher under stress, on a real SQLite file: gap-free
//! resume under concurrent writers (property test), slow watchers cut off,
//! restart durability, a failed event write rolling back its status change,
//! background checkpoints and expiry with paused time.

use std::{sync::Arc, time::Duration};

use payment_core::{
    clock::Clock,
    domain::{
        Amount, ClientSecret, Currency, Description, NewOrder, OrderId, OrderStatus, PaymentEvent,
        Reason, Scope, StatusChange,
    },
    expiry,
    store::{Applied, Created, SqliteStore, Store, StoreError},
    watch::{WatchEnd, watch},
};
use proptest::{prelude::*, test_runner::FileFailurePersistence};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::helpers::{spawn_app, spawn_app_in};

fn new_order(clock: &Clock, ttl_ms: i64) -> NewOrder {
    let now = clock.now();
    NewOrder {
        id: OrderId::new_random(),
        amount: Amount::parse("amount_minor", 1000).unwrap(),
        currency: Currency::parse("currency", "EUR").unwrap(),
        description: Description::parse("description", "store test").unwrap(),
        idempotency_key: None,
        client_secret: ClientSecret::generate(),
        created_at: now,
        expires_at: now.plus_millis(ttl_ms),
    }
}

fn change(target: OrderStatus, clock: &Clock) -> StatusChange {
    StatusChange {
        target,
        reason: Reason::default(),
        provider_reference: None,
        at: clock.now(),
    }
}

async fn create(store: &dyn Store, clock: &Clock) -> PaymentEvent {
    match store.create_order(new_order(clock, 60_000)).await.unwrap() {
        Created::New(event) => event,
        Created::Existing(_) => unreachable!("no idempotency key"),
    }
}

/// Writes `orders` orders (created, processing, succeeded: three events each).
async fn write_payments(store: Arc<SqliteStore>, orders: usize) {
    let clock = Clock::system();
    for _ in 0..orders {
        let id = create(store.as_ref(), &clock).await.order.id;
        store
            .apply(id, change(OrderStatus::Processing, &clock))
            .await
            .unwrap();
        store
            .apply(id, change(OrderStatus::Succeeded, &clock))
            .await
            .unwrap();
    }
}

/// Runs an all-orders watcher after `after` into `out` on its own task.
fn spawn_watcher(
    store: &Arc<SqliteStore>,
    after: u64,
    out: mpsc::Sender<Arc<PaymentEvent>>,
    slow_timeout: Duration,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<WatchEnd> {
    let (store, shutdown) = (store.clone(), shutdown.clone());
    tokio::spawn(async move {
        watch(
            store.as_ref(),
            Scope::AllOrders,
            after,
            out,
            slow_timeout,
            shutdown,
        )
        .await
    })
}

proptest! {
    // Failures are kept in `store.proptest-regressions` beside this file.
    // (The default would look in `tests/proptest-regressions/store.txt`,
    // because `main.rs` makes this directory a crate root.)
    #![proptest_config(ProptestConfig {
        cases: 12,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    /// A watcher that subscribes while several writers write, from any
    /// resume point, receives exactly the log after that point: every
    /// sequence once, in order.
    #[test]
    fn watch_is_gap_free_and_duplicate_free_under_concurrent_writers(
        writers in 1usize..5,
        orders_per_writer in 1usize..12,
        before in 0usize..6,
        resume_fraction in 0.0f64..1.0,
        buffer in 1usize..64,
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async move {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(SqliteStore::open(&dir.path().join("p.db")).unwrap());
            write_payments(store.clone(), before).await;
            let head_before = store.head_sequence().await.unwrap();
            let after = (head_before as f64 * resume_fraction) as u64;

            let writing: Vec<_> = (0..writers).map(|_| tokio::spawn(write_payments(store.clone(), orders_per_writer))).collect();
            let (tx, mut rx) = mpsc::channel(buffer);
            let shutdown = CancellationToken::new();
            let watcher = spawn_watcher(&store, after, tx, Duration::from_secs(30), &shutdown);
            for writer in writing {
                writer.await.unwrap();
            }
            let head = store.head_sequence().await.unwrap();
            let mut received = Vec::new();
            while received.last().copied().unwrap_or(after) < head {
                let event = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("no stall").expect("open");
                received.push(event.sequence);
            }
            shutdown.cancel();
            assert!(matches!(watcher.await.unwrap(), WatchEnd::ShuttingDown { .. }));

            let expected: Vec<u64> = store.events_after(Scope::AllOrders, after, u32::MAX).await.unwrap().iter().map(|e| e.sequence).collect();
            assert_eq!(received, expected);
            assert_eq!(expected.len() as u64, head - after, "sequences are contiguous in one process");
        });
    }
}

#[tokio::test]
async fn a_watcher_whose_client_stops_reading_is_cut_off_and_the_others_are_not_slowed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("p.db")).unwrap());
    let shutdown = CancellationToken::new();
    let (stuck_tx, _stuck_rx) = mpsc::channel(2);
    let (healthy_tx, mut healthy_rx) = mpsc::channel(2);
    let stuck = spawn_watcher(&store, 0, stuck_tx, Duration::from_millis(200), &shutdown);
    let healthy = spawn_watcher(&store, 0, healthy_tx, Duration::from_millis(200), &shutdown);

    let clock = Clock::system();
    for _ in 0..10 {
        create(store.as_ref(), &clock).await;
    }
    for expected in 1..=10 {
        let event = tokio::time::timeout(Duration::from_secs(5), healthy_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.sequence, expected);
    }
    match tokio::time::timeout(Duration::from_secs(5), stuck)
        .await
        .unwrap()
        .unwrap()
    {
        WatchEnd::TooSlow { resume_after } => assert_eq!(
            resume_after, 2,
            "the two events in its buffer were handed over"
        ),
        other => panic!("expected TooSlow, got {other:?}"),
    }
    shutdown.cancel();
    assert!(matches!(
        healthy.await.unwrap(),
        WatchEnd::ShuttingDown { resume_after: 10 }
    ));
}

#[tokio::test]
async fn orders_events_and_sequences_survive_a_restart_on_the_same_file() {
    let app = spawn_app().await;
    let paid = app.create_order(4200).await;
    app.report(
        &paid.order_id,
        payments_proto::payments::v1::PaymentOutcome::Succeeded,
        "",
    )
    .await
    .unwrap();
    let head_before = app.head_sequence().await;
    let database = app.database.clone();
    let dir = app.stop().await;
    assert!(database.exists());

    let restarted = spawn_app_in(dir, |_| {}).await;
    let events = restarted.order_events(&paid.order_id).await;
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[1].order.as_ref().unwrap().status(),
        payments_proto::payments::v1::OrderStatus::Succeeded
    );
    assert_eq!(restarted.head_sequence().await, head_before);
    let next = restarted.create_order(1).await;
    let next_events = restarted.order_events(&next.order_id).await;
    assert!(
        next_events[0].sequence > head_before,
        "sequences keep increasing after a restart"
    );
}

#[tokio::test]
async fn a_second_process_cannot_open_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    let _first = SqliteStore::open(&dir.path().join("p.db")).unwrap();
    let error = SqliteStore::open(&dir.path().join("p.db"))
        .err()
        .expect("second open refused");
    assert!(error.to_string().contains("in use"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn unpaid_orders_expire_with_an_event_once_their_time_passes_and_paid_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("p.db")).unwrap());
    let clock = Clock::following_tokio_time();
    let ttl_ms = 3_600_000;
    let unpaid = store.create_order(new_order(&clock, ttl_ms)).await.unwrap();
    let opened = store.create_order(new_order(&clock, ttl_ms)).await.unwrap();
    let paid = store.create_order(new_order(&clock, ttl_ms)).await.unwrap();
    let [unpaid, opened, paid] = [unpaid, opened, paid].map(|created| match created {
        Created::New(event) => event.order,
        Created::Existing(order) => order,
    });
    store
        .apply(opened.id, change(OrderStatus::Processing, &clock))
        .await
        .unwrap();
    store
        .apply(paid.id, change(OrderStatus::Succeeded, &clock))
        .await
        .unwrap();

    let mut live = store.subscribe();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(expiry::run(
        store.clone(),
        clock,
        Duration::from_secs(1),
        shutdown.clone(),
    ));

    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        store.get_order(unpaid.id).await.unwrap().unwrap().status,
        OrderStatus::Created,
        "not yet due"
    );

    tokio::time::sleep(Duration::from_millis(ttl_ms as u64)).await;
    // The hour has passed on the paused clock. Let real time flow again so
    // the bounds below are real: paused time would jump to them while the
    // sweep waits on the SQLite thread.
    tokio::time::resume();
    let mut expired = Vec::new();
    while expired.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(5), live.recv())
            .await
            .expect("expiry event")
            .unwrap();
        assert_eq!(event.status(), OrderStatus::Expired);
        assert!(event.occurred_at() >= event.order.expires_at);
        expired.push(event.order.id);
    }
    expired.sort_by_key(|id| id.to_string());
    let mut expected = vec![unpaid.id, opened.id];
    expected.sort_by_key(|id| id.to_string());
    assert_eq!(expired, expected);
    assert_eq!(
        store.get_order(paid.id).await.unwrap().unwrap().status,
        OrderStatus::Succeeded,
        "paid orders stay paid"
    );
    assert_eq!(
        store
            .events_after(Scope::Order(unpaid.id), 0, 10)
            .await
            .unwrap()
            .len(),
        2,
        "one expiry event, not one per sweep"
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("expiry task stops on shutdown")
        .unwrap();
}

#[tokio::test]
async fn a_watcher_that_lags_behind_the_live_channel_catches_up_from_the_log_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    // A live channel of 4: the watcher below falls behind it at once.
    let store =
        Arc::new(SqliteStore::open_with_live_capacity(&dir.path().join("p.db"), 4).unwrap());
    let (tx, mut rx) = mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let watcher = spawn_watcher(&store, 0, tx, Duration::from_secs(30), &shutdown);
    // Nobody reads while 60 events are written: the watcher blocks on its
    // buffer of 1 and the live channel drops events for it (Lagged).
    write_payments(store.clone(), 20).await;
    let mut received = Vec::new();
    while received.len() < 60 {
        let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no stall")
            .expect("open");
        received.push(event.sequence);
    }
    assert_eq!(received, (1..=60).collect::<Vec<u64>>());
    shutdown.cancel();
    assert!(matches!(
        watcher.await.unwrap(),
        WatchEnd::ShuttingDown { resume_after: 60 }
    ));
}

#[tokio::test]
async fn shutdown_stops_a_watcher_blocked_on_a_full_client_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("p.db")).unwrap());
    write_payments(store.clone(), 2).await;
    let (tx, never_read) = mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let watcher = spawn_watcher(&store, 0, tx, Duration::from_secs(3600), &shutdown);
    // Once the first event fills the buffer, the watcher is blocked handing
    // over the second.
    testkit::eventually("the watcher fills the client's buffer", || {
        let full = never_read.len() == 1;
        async move { full.then_some(()) }
    })
    .await;
    shutdown.cancel();
    let end = tokio::time::timeout(Duration::from_secs(2), watcher)
        .await
        .expect("stops at once, not after the slow timeout");
    assert!(matches!(
        end.unwrap(),
        WatchEnd::ShuttingDown { resume_after: 1 }
    ));
}

#[tokio::test]
async fn a_status_change_whose_event_cannot_be_written_is_rolled_back_and_the_order_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let store = SqliteStore::open(&path).unwrap();
    let clock = Clock::system();
    let order = create(&store, &clock).await.order;
    // A second connection makes the event insert fail for one reason: the
    // order's UPDATE runs first, in the same transaction, and must not stay.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "PRAGMA busy_timeout = 5000; \
             CREATE TRIGGER injected_failure BEFORE INSERT ON events WHEN NEW.reason = 'boom' \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
    let failing = StatusChange {
        reason: Reason::parse("reason", "boom").unwrap(),
        ..change(OrderStatus::Failed, &clock)
    };
    let error = store.apply(order.id, failing).await.unwrap_err();
    assert!(matches!(error, StoreError::Database(_)), "{error:?}");

    let stored = store.get_order(order.id).await.unwrap().unwrap();
    assert_eq!(
        stored.status,
        OrderStatus::Created,
        "no status without its event"
    );
    assert_eq!(store.head_sequence().await.unwrap(), 1);
    let paid = store
        .apply(order.id, change(OrderStatus::Succeeded, &clock))
        .await
        .unwrap();
    assert!(matches!(paid, Applied::Moved(event) if event.sequence == 2));
}

#[tokio::test]
async fn opening_a_database_in_a_directory_that_does_not_exist_creates_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("core").join("p.db");
    let store = SqliteStore::open(&path).unwrap();
    create(&store, &Clock::system()).await;
    assert!(path.is_file());
}

#[tokio::test]
async fn committed_pages_reach_the_database_file_by_background_checkpoints_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let store = SqliteStore::open(&path).unwrap();
    // WAL mode writes only the header page to the file; every commit goes
    // to the WAL until a checkpoint copies it back (automatic ones are off).
    create(&store, &Clock::system()).await;
    testkit::eventually("a checkpoint copies the tables into the file", || {
        let size = std::fs::metadata(&path).map_or(0, |meta| meta.len());
        async move { (size > 4096).then_some(()) }
    })
    .await;
}
