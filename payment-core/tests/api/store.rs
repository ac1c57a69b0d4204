//! The store and watcher under stress, once per backend (a real SQLite
//! file, a real PostgreSQL database): gap-free resume under concurrent
//! writers (property test), lagging and slow watchers, reopening, expiry,
//! idempotency and refused changes. Then what only SQLite has (the lock
//! file, checkpoints, a trigger-injected failure rolling a change back) and
//! restart durability through the whole service. PostgreSQL-only behaviour
//! (several replicas on one database) is in `postgres`.

use std::{sync::Arc, time::Duration};

use payment_core::{
    clock::Clock,
    domain::{
        Amount, ClientSecret, Currency, Description, IdempotencyKey, MerchantId, NewOrder, OrderId,
        OrderStatus, PaymentEvent, Reason, Scope, StatusChange, TraceParent,
    },
    expiry,
    store::{Applied, Created, PostgresStore, SqliteStore, Store, StoreError},
    watch::{WatchEnd, watch},
};
use proptest::{prelude::*, test_runner::FileFailurePersistence};
use testkit::postgres::TestDatabase;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::helpers::{spawn_app, spawn_app_in};

/// The two `Store` implementations the backend-agnostic tests run against.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A fresh, empty place for this backend's data.
    pub async fn place(self) -> Place {
        let database = match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestDatabase::create().await),
        };
        Place {
            backend: self,
            dir: tempfile::tempdir().unwrap(),
            database,
            shutdown: CancellationToken::new(),
        }
    }
}

/// Where one test's data lives (a temporary directory, or a database of
/// its own); every store opened on it sees the same data.
pub struct Place {
    backend: Backend,
    dir: tempfile::TempDir,
    database: Option<TestDatabase>,
    shutdown: CancellationToken,
}

impl Place {
    pub async fn open(&self) -> Arc<dyn Store> {
        self.open_with_live_capacity(8192).await
    }

    pub async fn open_with_live_capacity(&self, live_capacity: usize) -> Arc<dyn Store> {
        match (&self.backend, &self.database) {
            (Backend::Sqlite, _) => Arc::new(
                SqliteStore::open_with_live_capacity(&self.dir.path().join("p.db"), live_capacity)
                    .unwrap(),
            ),
            (Backend::Postgres, Some(database)) => Arc::new(
                PostgresStore::connect_with_live_capacity(
                    &database.url,
                    live_capacity,
                    self.shutdown.clone(),
                )
                .await
                .unwrap(),
            ),
            (Backend::Postgres, None) => unreachable!("a PostgreSQL place has a database"),
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        // Ends the PostgreSQL stores' followers before their database goes.
        self.shutdown.cancel();
    }
}

/// Runs `async fn $name(backend: Backend)` as the tests `$name::sqlite` and
/// `$name::postgres`.
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            use super::Backend;

            #[tokio::test]
            async fn sqlite() {
                super::$name(Backend::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                super::$name(Backend::Postgres).await
            }
        }
    };
}

pub fn new_order(clock: &Clock, ttl_ms: i64) -> NewOrder {
    let now = clock.now();
    NewOrder {
        id: OrderId::new_random(),
        amount: Amount::parse("amount_minor", 1000).unwrap(),
        currency: Currency::parse("currency", "EUR").unwrap(),
        description: Description::parse("description", "store test").unwrap(),
        idempotency_key: None,
        // Recorded, so every store test also carries it through the row,
        // the event join and (PostgreSQL) the NOTIFY payload.
        merchant: Some(MerchantId::parse("merchant", "store-test-shop").unwrap()),
        trace_parent: Some(
            TraceParent::parse(
                "trace_parent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .unwrap(),
        ),
        client_secret: ClientSecret::generate(),
        created_at: now,
        expires_at: now.plus_millis(ttl_ms),
    }
}

pub fn change(target: OrderStatus, clock: &Clock) -> StatusChange {
    StatusChange {
        target,
        reason: Reason::default(),
        provider_reference: None,
        at: clock.now(),
    }
}

/// A clock `ahead_ms` ahead of the system clock: "later" without waiting.
pub fn clock_ahead_by(ahead_ms: i64) -> Clock {
    Clock::FollowsTokio {
        start_unix_millis: Clock::system().now().0 + ahead_ms,
        start: tokio::time::Instant::now(),
    }
}

pub async fn create(store: &dyn Store, clock: &Clock) -> PaymentEvent {
    match store.create_order(new_order(clock, 60_000)).await.unwrap() {
        Created::New(event) => event,
        Created::Existing(_) => unreachable!("no idempotency key"),
    }
}

/// Writes `orders` orders (created, processing, succeeded: three events each).
pub async fn write_payments(store: Arc<dyn Store>, orders: usize) {
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
pub fn spawn_watcher(
    store: &Arc<dyn Store>,
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
            CancellationToken::new(),
            shutdown,
        )
        .await
    })
}

/// A watcher that subscribes while `writers` write, from a resume point a
/// fraction of the way into the log, receives exactly the log after that
/// point: every sequence once, in order.
fn check_gap_free_resume(
    backend: Backend,
    writers: usize,
    orders_per_writer: usize,
    before: usize,
    resume_fraction: f64,
    buffer: usize,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let place = backend.place().await;
        let store = place.open().await;
        write_payments(store.clone(), before).await;
        let head_before = store.head_sequence().await.unwrap();
        let after = (head_before as f64 * resume_fraction) as u64;

        let writing: Vec<_> = (0..writers)
            .map(|_| tokio::spawn(write_payments(store.clone(), orders_per_writer)))
            .collect();
        let (tx, mut rx) = mpsc::channel(buffer);
        let shutdown = CancellationToken::new();
        let watcher = spawn_watcher(&store, after, tx, Duration::from_secs(30), &shutdown);
        for writer in writing {
            writer.await.unwrap();
        }
        let head = store.head_sequence().await.unwrap();
        let mut received = Vec::new();
        while received.last().copied().unwrap_or(after) < head {
            let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("no stall")
                .expect("open");
            received.push(event.sequence);
        }
        shutdown.cancel();
        assert!(matches!(
            watcher.await.unwrap(),
            WatchEnd::ShuttingDown { .. }
        ));

        let expected: Vec<u64> = store
            .events_after(Scope::AllOrders, after, u32::MAX)
            .await
            .unwrap()
            .iter()
            .map(|e| e.sequence)
            .collect();
        assert_eq!(received, expected);
        assert_eq!(
            expected.len() as u64,
            head - after,
            "sequences are contiguous"
        );
    });
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

    #[test]
    fn watch_is_gap_free_and_duplicate_free_under_concurrent_writers_on_sqlite(
        writers in 1usize..5,
        orders_per_writer in 1usize..12,
        before in 0usize..6,
        resume_fraction in 0.0f64..1.0,
        buffer in 1usize..64,
    ) {
        check_gap_free_resume(Backend::Sqlite, writers, orders_per_writer, before, resume_fraction, buffer);
    }
}

proptest! {
    // Fewer cases than on SQLite: each needs a database of its own and
    // every commit waits for a WAL flush, serialised by the log head (the
    // interleavings that matter are forced in `postgres` instead).
    #![proptest_config(ProptestConfig {
        cases: 4,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn watch_is_gap_free_and_duplicate_free_under_concurrent_writers_on_postgres(
        writers in 1usize..5,
        orders_per_writer in 1usize..12,
        before in 0usize..6,
        resume_fraction in 0.0f64..1.0,
        buffer in 1usize..64,
    ) {
        check_gap_free_resume(Backend::Postgres, writers, orders_per_writer, before, resume_fraction, buffer);
    }
}

on_both_backends!(a_watcher_whose_client_stops_reading_is_cut_off_and_the_others_are_not_slowed);
async fn a_watcher_whose_client_stops_reading_is_cut_off_and_the_others_are_not_slowed(
    backend: Backend,
) {
    let place = backend.place().await;
    let store = place.open().await;
    let shutdown = CancellationToken::new();
    let (stuck_tx, _stuck_rx) = mpsc::channel(2);
    let (healthy_tx, mut healthy_rx) = mpsc::channel(2);
    // Long enough that a loaded machine does not cut off the healthy one
    // between two of its reads; the stuck one never reads again.
    let slow_watcher_timeout = Duration::from_secs(1);
    let stuck = spawn_watcher(&store, 0, stuck_tx, slow_watcher_timeout, &shutdown);
    let healthy = spawn_watcher(&store, 0, healthy_tx, slow_watcher_timeout, &shutdown);
    // The healthy client reads as events come, as a real one does.
    let reader = tokio::spawn(async move {
        let mut sequences = Vec::new();
        for _ in 1..=10 {
            let event = tokio::time::timeout(Duration::from_secs(5), healthy_rx.recv())
                .await
                .expect("the healthy watcher goes on")
                .expect("the healthy watcher is not cut off");
            sequences.push(event.sequence);
        }
        // Still connected: handed back so that it outlives the shutdown.
        (sequences, healthy_rx)
    });

    let clock = Clock::system();
    for _ in 0..10 {
        create(store.as_ref(), &clock).await;
    }
    let (sequences, _healthy_rx) = reader.await.unwrap();
    assert_eq!(sequences, (1..=10).collect::<Vec<u64>>());
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

on_both_backends!(orders_events_and_sequences_survive_closing_and_reopening_the_store);
async fn orders_events_and_sequences_survive_closing_and_reopening_the_store(backend: Backend) {
    let place = backend.place().await;
    let store = place.open().await;
    let clock = Clock::system();
    let paid = create(store.as_ref(), &clock).await.order;
    store
        .apply(paid.id, change(OrderStatus::Succeeded, &clock))
        .await
        .unwrap();
    let head_before = store.head_sequence().await.unwrap();
    drop(store);

    let reopened = place.open().await;
    let events = reopened
        .events_after(Scope::Order(paid.id), 0, 10)
        .await
        .unwrap();
    let statuses: Vec<_> = events.iter().map(PaymentEvent::status).collect();
    assert_eq!(statuses, [OrderStatus::Created, OrderStatus::Succeeded]);
    let stored = reopened.get_order(paid.id).await.unwrap().unwrap();
    for merchant in events
        .iter()
        .map(|e| &e.order.merchant)
        .chain([&stored.merchant])
    {
        assert_eq!(merchant, &paid.merchant, "the order's merchant is kept");
    }
    assert!(paid.merchant.is_some());
    assert_eq!(reopened.head_sequence().await.unwrap(), head_before);
    let next = create(reopened.as_ref(), &clock).await;
    assert_eq!(
        next.sequence,
        head_before + 1,
        "sequences continue after a reopen, none reused or skipped"
    );
}

on_both_backends!(unpaid_orders_expire_with_an_event_once_their_time_passes_and_paid_ones_do_not);
async fn unpaid_orders_expire_with_an_event_once_their_time_passes_and_paid_ones_do_not(
    backend: Backend,
) {
    let place = backend.place().await;
    let store = place.open().await;
    let clock = Clock::system();
    let ttl_ms = 3_600_000;
    let unpaid = create_with_ttl(store.as_ref(), &clock, ttl_ms).await;
    let opened = create_with_ttl(store.as_ref(), &clock, ttl_ms).await;
    let paid = create_with_ttl(store.as_ref(), &clock, ttl_ms).await;
    store
        .apply(opened.id, change(OrderStatus::Processing, &clock))
        .await
        .unwrap();
    store
        .apply(paid.id, change(OrderStatus::Succeeded, &clock))
        .await
        .unwrap();

    // A minute later nothing is due. (Clocks set ahead stand in for waiting.)
    assert_eq!(
        expiry::sweep(store.as_ref(), &clock_ahead_by(60_000))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store.get_order(unpaid.id).await.unwrap().unwrap().status,
        OrderStatus::Created,
        "not yet due"
    );

    let later = clock_ahead_by(ttl_ms + 60_000);
    // A PostgreSQL store's channel may still carry the writes above (its
    // follower publishes them after they commit): only what follows counts.
    let written = store.head_sequence().await.unwrap();
    let mut live = store.subscribe();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(expiry::run(
        store.clone(),
        later,
        Duration::from_millis(50),
        payment_core::metrics::CoreMetrics::default(),
        shutdown.clone(),
    ));
    let mut expired = Vec::new();
    while expired.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(5), live.recv())
            .await
            .expect("expiry event")
            .unwrap();
        if event.sequence <= written {
            continue;
        }
        assert_eq!(event.status(), OrderStatus::Expired);
        assert!(event.occurred_at() >= event.order.expires_at);
        expired.push(event.order.id);
    }
    expired.sort_by_key(|id| id.to_string());
    let mut expected = vec![unpaid.id, opened.id];
    expected.sort_by_key(|id| id.to_string());
    assert_eq!(expired, expected);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("expiry task stops on shutdown")
        .unwrap();

    assert_eq!(
        expiry::sweep(store.as_ref(), &later).await.unwrap(),
        0,
        "a later sweep finds nothing more to expire"
    );
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
}

async fn create_with_ttl(
    store: &dyn Store,
    clock: &Clock,
    ttl_ms: i64,
) -> payment_core::domain::Order {
    match store.create_order(new_order(clock, ttl_ms)).await.unwrap() {
        Created::New(event) => event.order,
        Created::Existing(order) => order,
    }
}

on_both_backends!(a_watcher_that_lags_behind_the_live_channel_catches_up_from_the_log_without_gaps);
async fn a_watcher_that_lags_behind_the_live_channel_catches_up_from_the_log_without_gaps(
    backend: Backend,
) {
    let place = backend.place().await;
    // A live channel of 4: the watcher below falls behind it at once.
    let store = place.open_with_live_capacity(4).await;
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

on_both_backends!(shutdown_stops_a_watcher_blocked_on_a_full_client_buffer);
async fn shutdown_stops_a_watcher_blocked_on_a_full_client_buffer(backend: Backend) {
    let place = backend.place().await;
    let store = place.open().await;
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

on_both_backends!(
    an_idempotency_key_returns_the_first_order_for_the_same_request_and_is_refused_for_another
);
async fn an_idempotency_key_returns_the_first_order_for_the_same_request_and_is_refused_for_another(
    backend: Backend,
) {
    let place = backend.place().await;
    let store = place.open().await;
    let clock = Clock::system();
    let keyed = NewOrder {
        idempotency_key: IdempotencyKey::from_stored("cart-42"),
        merchant: None,
        trace_parent: None,
        ..new_order(&clock, 60_000)
    };
    let Created::New(first) = store.create_order(keyed.clone()).await.unwrap() else {
        panic!("the first create makes the order");
    };
    let retry = NewOrder {
        id: OrderId::new_random(),
        client_secret: ClientSecret::generate(),
        ..keyed.clone()
    };
    match store.create_order(retry).await.unwrap() {
        Created::Existing(order) => assert_eq!(order, first.order),
        Created::New(event) => panic!("a retry made a second order: {event:?}"),
    }
    let other = NewOrder {
        id: OrderId::new_random(),
        amount: Amount::parse("amount_minor", 999).unwrap(),
        ..keyed
    };
    let error = store.create_order(other).await.unwrap_err();
    assert!(
        matches!(error, StoreError::IdempotencyKeyReused),
        "{error:?}"
    );
    assert_eq!(store.head_sequence().await.unwrap(), 1, "one event in all");
}

on_both_backends!(a_refused_or_repeated_change_writes_no_event_and_an_unknown_order_is_not_found);
async fn a_refused_or_repeated_change_writes_no_event_and_an_unknown_order_is_not_found(
    backend: Backend,
) {
    let place = backend.place().await;
    let store = place.open().await;
    let clock = Clock::system();
    let order = create(store.as_ref(), &clock).await.order;
    let paid = store
        .apply(order.id, change(OrderStatus::Succeeded, &clock))
        .await
        .unwrap();
    assert!(matches!(paid, Applied::Moved(event) if event.sequence == 2));
    let again = store
        .apply(order.id, change(OrderStatus::Succeeded, &clock))
        .await
        .unwrap();
    assert!(matches!(again, Applied::Unchanged(o) if o.status == OrderStatus::Succeeded));
    let refused = store
        .apply(order.id, change(OrderStatus::Failed, &clock))
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::Conflict(_)), "{refused:?}");
    let unknown = store
        .apply(OrderId::new_random(), change(OrderStatus::Failed, &clock))
        .await
        .unwrap_err();
    assert!(matches!(unknown, StoreError::NotFound), "{unknown:?}");
    assert_eq!(store.get_order(OrderId::new_random()).await.unwrap(), None);
    assert_eq!(store.head_sequence().await.unwrap(), 2);
    let next = create(store.as_ref(), &clock).await;
    assert_eq!(next.sequence, 3, "refusals took no sequence");
}

// What only the SQLite store has, and durability through the whole service
// (configured with a SQLite file).

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

#[tokio::test]
async fn a_status_change_whose_event_cannot_be_written_is_rolled_back_and_the_order_is_unchanged_on_sqlite()
 {
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
    let error = apply_failing_change_and_check_it_left_nothing(&store, order.id, &clock).await;
    assert!(matches!(error, StoreError::Database(_)), "{error:?}");
}

/// Applies a change whose event insert fails (reason `boom`; the caller
/// made the store fail on it), checks it left neither a status nor a
/// sequence behind and that the next change takes sequence 2; answers the
/// store's error.
pub async fn apply_failing_change_and_check_it_left_nothing(
    store: &dyn Store,
    order: OrderId,
    clock: &Clock,
) -> StoreError {
    let failing = StatusChange {
        reason: Reason::parse("reason", "boom").unwrap(),
        ..change(OrderStatus::Failed, clock)
    };
    let error = store.apply(order, failing).await.unwrap_err();

    let stored = store.get_order(order).await.unwrap().unwrap();
    assert_eq!(
        stored.status,
        OrderStatus::Created,
        "no status without its event"
    );
    assert_eq!(store.head_sequence().await.unwrap(), 1);
    let paid = store
        .apply(order, change(OrderStatus::Succeeded, clock))
        .await
        .unwrap();
    assert!(matches!(paid, Applied::Moved(event) if event.sequence == 2));
    let metrics = write_metrics(store);
    let sample = |name| testkit::metrics::sum(&metrics, name, &[]);
    assert_eq!(sample("commit_failures_total"), Some(1.0), "{metrics}");
    assert_eq!(
        sample("commit_seconds_count"),
        Some(2.0),
        "the create and the payment"
    );
    assert_eq!(sample("log_head_sequence"), Some(2.0));
    error
}

/// `store`'s writer metrics, rendered.
fn write_metrics(store: &dyn Store) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    store.write_metrics().register(&mut registry);
    service_kit::metrics::render(&registry).unwrap()
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
