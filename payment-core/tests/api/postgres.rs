//! The PostgreSQL store as several replicas sharing one database: commit
//! order under a transaction held open, idempotent creates and expiry
//! racing across replicas, the follower surviving a killed connection,
//! rollback, migrations and the append-only log.
//!
//! Races are made to happen, not hoped for: a session of the test holds a
//! lock, the test waits until the racing writers are queued behind it
//! (`pg_stat_activity`), then lets go.

use std::{sync::Arc, time::Duration};

use payment_core::{
    clock::Clock,
    domain::{IdempotencyKey, NewOrder, OrderId, OrderStatus, PaymentEvent, Reason, StatusChange},
    expiry,
    store::{Applied, Created, FOLLOWER_APPLICATION_NAME, PostgresStore, Store, StoreError},
};
use testkit::postgres::TestDatabase;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::store::{
    apply_failing_change_and_check_it_left_nothing, change, clock_ahead_by, create, new_order,
    spawn_watcher, write_payments,
};

/// The advisory lock key the injected trigger below waits on.
const HOLD_LOCK: i64 = 4242;

async fn replica(database: &TestDatabase, shutdown: &CancellationToken) -> Arc<dyn Store> {
    Arc::new(
        PostgresStore::connect(&database.url, shutdown.clone())
            .await
            .unwrap(),
    )
}

/// Sessions of this database waiting for a lock of `kind` (`pg_locks`
/// terms: "advisory", "transactionid", "tuple"...), or of any kind but
/// advisory when `None`.
async fn lock_waiters(admin: &tokio_postgres::Client, kind: Option<&str>) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' \
             AND (wait_event = $1 OR ($1 IS NULL AND wait_event <> 'advisory'))",
            &[&kind],
        )
        .await
        .unwrap()
        .get(0)
}

async fn wait_for_lock_waiters(admin: &tokio_postgres::Client, kind: Option<&str>, count: i64) {
    testkit::eventually(
        &format!("{count} sessions wait for a {kind:?} lock"),
        || async move { (lock_waiters(admin, kind).await >= count).then_some(()) },
    )
    .await;
}

async fn count(admin: &tokio_postgres::Client, table: &str) -> i64 {
    admin
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// Receives from a watcher's channel until it has `head`, with a bound.
async fn receive_until(
    rx: &mut mpsc::Receiver<Arc<PaymentEvent>>,
    received: &mut Vec<u64>,
    head: u64,
) {
    while received.last().copied().unwrap_or(0) < head {
        let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no stall")
            .expect("open");
        received.push(event.sequence);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_on_another_replica_skips_no_event_while_a_transaction_holding_an_earlier_sequence_is_open()
 {
    let database = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let writers = [
        replica(&database, &shutdown).await,
        replica(&database, &shutdown).await,
        replica(&database, &shutdown).await,
    ];
    let watching = replica(&database, &shutdown).await;
    let admin = database.connect().await;
    // Holds a store's own write transaction open right after it took its
    // position in the log: the event insert (which comes after taking the
    // sequence) waits for an advisory lock this session holds.
    admin
        .batch_execute(&format!(
            "CREATE FUNCTION hold_marked_events() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.reason = 'held' THEN PERFORM pg_advisory_xact_lock_shared({HOLD_LOCK}); END IF; \
             RETURN NEW; END $$; \
             CREATE TRIGGER hold_marked_events BEFORE INSERT ON events \
             FOR EACH ROW EXECUTE FUNCTION hold_marked_events(); \
             SELECT pg_advisory_lock({HOLD_LOCK});"
        ))
        .await
        .unwrap();

    let clock = Clock::system();
    let held_order = create(writers[0].as_ref(), &clock).await.order;
    let (tx, mut rx) = mpsc::channel(10_000);
    let watcher = spawn_watcher(&watching, 0, tx, Duration::from_secs(30), &shutdown);
    let mut received = Vec::new();
    receive_until(&mut rx, &mut received, 1).await;

    let held_writer = writers[0].clone();
    let held = tokio::spawn(async move {
        let marked = StatusChange {
            reason: Reason::parse("reason", "held").unwrap(),
            ..change(OrderStatus::Processing, &Clock::system())
        };
        held_writer.apply(held_order.id, marked).await
    });
    wait_for_lock_waiters(&admin, Some("advisory"), 1).await;
    let writing: Vec<_> = writers
        .iter()
        .map(|store| tokio::spawn(write_payments(store.clone(), 10)))
        .collect();
    // Until the held transaction commits, the other replicas' writers either
    // queue behind it (sequence order is commit order) or, were sequences
    // taken without waiting, commit later sequences first. (The held
    // replica's own writes wait in its queue, behind the held batch.)
    testkit::eventually("the other replicas' writers are queued or done", || {
        let done = writing[1..]
            .iter()
            .all(tokio::task::JoinHandle::is_finished);
        let admin = &admin;
        async move { (done || lock_waiters(admin, None).await >= 2).then_some(()) }
    })
    .await;
    while let Ok(event) = rx.try_recv() {
        received.push(event.sequence);
    }
    assert_eq!(
        received,
        [1],
        "nothing after the open transaction's position is visible before it commits"
    );

    admin
        .execute("SELECT pg_advisory_unlock($1)", &[&HOLD_LOCK])
        .await
        .unwrap();
    let Applied::Moved(held_event) = held.await.unwrap().unwrap() else {
        panic!("the held change moves the order");
    };
    for writer in writing {
        writer.await.unwrap();
    }
    let head = watching.head_sequence().await.unwrap();
    assert_eq!(head, 1 + 1 + 3 * 10 * 3);
    receive_until(&mut rx, &mut received, head).await;
    assert!(
        received.contains(&held_event.sequence),
        "the held event ({}) reached the watcher",
        held_event.sequence
    );
    assert_eq!(
        received,
        (1..=head).collect::<Vec<u64>>(),
        "every event once, in order"
    );
    shutdown.cancel();
    watcher.await.unwrap();
}

#[tokio::test]
async fn concurrent_creates_with_one_idempotency_key_on_two_replicas_make_one_order() {
    let database = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let replicas = [
        replica(&database, &shutdown).await,
        replica(&database, &shutdown).await,
    ];
    let mut admin = database.connect().await;
    // Holding the log head keeps the first create from committing while the
    // others run into its uncommitted order (the unique-key path).
    let blocker = admin.transaction().await.unwrap();
    blocker
        .execute("SELECT sequence FROM log_head FOR UPDATE", &[])
        .await
        .unwrap();

    let clock = Clock::system();
    let keyed = NewOrder {
        idempotency_key: IdempotencyKey::from_stored("cart-7"),
        merchant: None,
        trace_parent: None,
        ..new_order(&clock, 60_000)
    };
    let creates: Vec<_> = (0..6)
        .map(|i| {
            let store = replicas[i % 2].clone();
            // Each attempt chooses its own id and secret, as a new request does.
            let attempt = NewOrder {
                id: OrderId::new_random(),
                ..keyed.clone()
            };
            tokio::spawn(async move { store.create_order(attempt).await })
        })
        .collect();
    let observer = database.connect().await;
    // One batch per replica reaches the database; the rest wait in their
    // replica's queue.
    wait_for_lock_waiters(&observer, None, 2).await;
    blocker.rollback().await.unwrap();

    let mut new = Vec::new();
    let mut existing = Vec::new();
    for create in creates {
        match create.await.unwrap().unwrap() {
            Created::New(event) => new.push(event.order),
            Created::Existing(order) => existing.push(order),
        }
    }
    assert_eq!(new.len(), 1, "one create made the order");
    assert_eq!(existing.len(), 5);
    assert!(existing.iter().all(|order| *order == new[0]));
    assert_eq!(count(&observer, "orders").await, 1);
    assert_eq!(count(&observer, "events").await, 1);
}

#[tokio::test]
async fn expiry_racing_a_report_on_two_replicas_writes_exactly_one_final_event() {
    let database = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let reporting = replica(&database, &shutdown).await;
    let expiring = replica(&database, &shutdown).await;
    let clock = Clock::system();
    let ttl_ms = 60_000;
    let Created::New(created) = reporting
        .create_order(new_order(&clock, ttl_ms))
        .await
        .unwrap()
    else {
        panic!("new order");
    };
    let id = created.order.id;

    // Both changes reach the order row while this session holds it.
    let mut admin = database.connect().await;
    let blocker = admin.transaction().await.unwrap();
    blocker
        .execute(
            "SELECT 1 FROM orders WHERE order_id = $1 FOR UPDATE",
            &[&id.to_string()],
        )
        .await
        .unwrap();
    let report = tokio::spawn({
        let store = reporting.clone();
        async move {
            store
                .apply(id, change(OrderStatus::Succeeded, &Clock::system()))
                .await
        }
    });
    let sweep = tokio::spawn({
        let store = expiring.clone();
        async move { expiry::sweep(store.as_ref(), &clock_ahead_by(ttl_ms + 1_000)).await }
    });
    let observer = database.connect().await;
    wait_for_lock_waiters(&observer, None, 2).await;
    blocker.rollback().await.unwrap();

    let report = report.await.unwrap();
    let expired = sweep.await.unwrap().unwrap();
    let final_status = match report {
        Ok(Applied::Moved(_)) => {
            assert_eq!(expired, 0, "the paid order was not expired too");
            OrderStatus::Succeeded
        }
        Err(StoreError::Conflict(_)) => {
            assert_eq!(expired, 1);
            OrderStatus::Expired
        }
        other => panic!("unexpected report result {other:?}"),
    };
    let events = reporting
        .events_after(payment_core::domain::Scope::Order(id), 0, 10)
        .await
        .unwrap();
    let statuses: Vec<_> = events.iter().map(PaymentEvent::status).collect();
    assert_eq!(statuses, [OrderStatus::Created, final_status]);
}

#[tokio::test]
async fn the_follower_reconnects_after_its_connection_is_killed_and_a_watcher_gets_every_event_once()
 {
    let database = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let watching = replica(&database, &shutdown).await;
    let writing = replica(&database, &shutdown).await;
    let (tx, mut rx) = mpsc::channel(1000);
    let watcher = spawn_watcher(&watching, 0, tx, Duration::from_secs(30), &shutdown);
    let mut received = Vec::new();
    write_payments(writing.clone(), 2).await;
    receive_until(&mut rx, &mut received, 6).await;

    let admin = database.connect().await;
    // Two statements: in one, the planner may call pg_terminate_backend
    // before the other conditions and end every session on the server.
    let killed: Vec<i32> = admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = $1",
            &[&FOLLOWER_APPLICATION_NAME],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(killed.len(), 2, "both replicas' followers are listening");
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM unnest($1::int4[]) AS pid",
            &[&killed],
        )
        .await
        .unwrap();
    // Committed while the followers are down (they wait before reconnecting):
    // no notification of these reaches anyone.
    write_payments(writing.clone(), 3).await;
    receive_until(&mut rx, &mut received, 15).await;

    testkit::eventually("both followers are listening again", || {
        let (admin, killed) = (&admin, &killed);
        async move {
            let listening: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                     AND application_name = $1 AND NOT pid = ANY($2)",
                    &[&FOLLOWER_APPLICATION_NAME, killed],
                )
                .await
                .unwrap()
                .get(0);
            (listening == 2).then_some(())
        }
    })
    .await;
    write_payments(writing.clone(), 1).await;
    receive_until(&mut rx, &mut received, 18).await;
    assert_eq!(
        received,
        (1..=18).collect::<Vec<u64>>(),
        "every event once, in order"
    );
    shutdown.cancel();
    watcher.await.unwrap();
}

#[tokio::test]
async fn a_status_change_whose_event_cannot_be_written_is_rolled_back_and_takes_no_sequence_on_postgres()
 {
    let database = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let store = replica(&database, &shutdown).await;
    let clock = Clock::system();
    let order = create(store.as_ref(), &clock).await.order;
    // The event insert fails for one reason; the order's UPDATE and the log
    // head's increment ran before it in the same transaction.
    database
        .connect()
        .await
        .batch_execute(
            "CREATE FUNCTION injected_failure() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.reason = 'boom' THEN RAISE EXCEPTION 'injected failure'; END IF; \
             RETURN NEW; END $$; \
             CREATE TRIGGER injected_failure BEFORE INSERT ON events \
             FOR EACH ROW EXECUTE FUNCTION injected_failure();",
        )
        .await
        .unwrap();
    let error =
        apply_failing_change_and_check_it_left_nothing(store.as_ref(), order.id, &clock).await;
    assert!(
        matches!(&error, StoreError::Database(message) if message.contains("injected failure")),
        "{error:?}"
    );
}

#[tokio::test]
async fn replicas_starting_at_once_migrate_the_schema_once() {
    let database = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let starting: Vec<_> = (0..4)
        .map(|_| {
            let (url, shutdown) = (database.url.clone(), shutdown.clone());
            tokio::spawn(async move { PostgresStore::connect(&url, shutdown).await })
        })
        .collect();
    for start in starting {
        start.await.unwrap().unwrap();
    }
    let admin = database.connect().await;
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count();
    assert_eq!(
        count(&admin, "refinery_schema_history").await,
        i64::try_from(migrations).unwrap(),
        "each migration applied once"
    );
    assert_eq!(count(&admin, "log_head").await, 1);
}

#[tokio::test]
async fn the_event_log_refuses_updates_deletes_and_truncation() {
    let database = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let store = replica(&database, &shutdown).await;
    create(store.as_ref(), &Clock::system()).await;
    let admin = database.connect().await;
    for statement in [
        "UPDATE events SET status = 'succeeded'",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let error = admin.batch_execute(statement).await.unwrap_err();
        let message = error.as_db_error().map(|e| e.message().to_owned());
        assert_eq!(
            message.as_deref(),
            Some("events are append-only"),
            "{statement}"
        );
    }
    assert_eq!(count(&admin, "events").await, 1);
}

#[tokio::test]
async fn connecting_to_an_unreachable_server_is_unavailable_so_callers_may_retry() {
    let error = PostgresStore::connect(
        "postgres://postgres:postgres@127.0.0.1:1/nothing",
        CancellationToken::new(),
    )
    .await
    .err()
    .expect("no server there");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
}

/// Distinct transactions that wrote the events after `after` (rows written
/// by one transaction share its `xmin`).
async fn writing_transactions(admin: &tokio_postgres::Client, after: i64) -> i64 {
    admin
        .query_one(
            "SELECT count(DISTINCT xmin::text) FROM events WHERE sequence > $1",
            &[&after],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn commands_queued_together_on_one_replica_commit_as_one_transaction_and_each_sees_the_ones_before_it()
 {
    let database = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let store = replica(&database, &shutdown).await;
    let clock = Clock::system();
    let paid = create(store.as_ref(), &clock).await.order;
    let blocking = create(store.as_ref(), &clock).await.order;
    let head_before = i64::try_from(store.head_sequence().await.unwrap()).unwrap();

    // The writer's current batch waits for this session's lock on one
    // order; everything sent meanwhile queues up behind it as the next batch.
    let mut admin = database.connect().await;
    let blocker = admin.transaction().await.unwrap();
    blocker
        .execute(
            "SELECT 1 FROM orders WHERE order_id = $1 FOR UPDATE",
            &[&blocking.id.to_string()],
        )
        .await
        .unwrap();
    let held = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .apply(blocking.id, change(OrderStatus::Canceled, &Clock::system()))
                .await
        }
    });
    let observer = database.connect().await;
    wait_for_lock_waiters(&observer, None, 1).await;

    let key = || IdempotencyKey::from_stored("cart-9");
    let keyed = NewOrder {
        idempotency_key: key(),
        merchant: None,
        trace_parent: None,
        ..new_order(&clock, 60_000)
    };
    let retried = NewOrder {
        id: OrderId::new_random(),
        ..keyed.clone()
    };
    let reused = NewOrder {
        id: OrderId::new_random(),
        amount: payment_core::domain::Amount::parse("amount_minor", 999_999).unwrap(),
        ..keyed.clone()
    };
    let step = |target| change(target, &Clock::system());
    let (created, retried, reused, processing, succeeded, late_failure, repeated, unknown, ()) = tokio::join!(
        store.create_order(keyed.clone()),
        store.create_order(retried),
        store.create_order(reused),
        store.apply(paid.id, step(OrderStatus::Processing)),
        store.apply(paid.id, step(OrderStatus::Succeeded)),
        store.apply(paid.id, step(OrderStatus::Failed)),
        store.apply(paid.id, step(OrderStatus::Succeeded)),
        store.apply(OrderId::new_random(), step(OrderStatus::Succeeded)),
        async {
            // Released once every command above is queued: they are sent in
            // order before this future first runs.
            blocker.rollback().await.unwrap();
        },
    );

    let Created::New(created) = created.unwrap() else {
        panic!("the first create with the key makes the order");
    };
    let Created::Existing(existing) = retried.unwrap() else {
        panic!("the same request again gets the order the batch just made");
    };
    assert_eq!(existing, created.order);
    assert!(matches!(reused, Err(StoreError::IdempotencyKeyReused)));
    let Applied::Moved(processing) = processing.unwrap() else {
        panic!("moves");
    };
    let Applied::Moved(succeeded) = succeeded.unwrap() else {
        panic!("moves from the status the command before it wrote");
    };
    assert_eq!(processing.status(), OrderStatus::Processing);
    assert_eq!(succeeded.status(), OrderStatus::Succeeded);
    assert!(matches!(late_failure, Err(StoreError::Conflict(_))));
    assert!(
        matches!(repeated, Ok(Applied::Unchanged(ref order)) if order.status == OrderStatus::Succeeded)
    );
    assert!(matches!(unknown, Err(StoreError::NotFound)));
    assert!(held.await.unwrap().is_ok());

    let log = store
        .events_after(payment_core::domain::Scope::AllOrders, 0, 100)
        .await
        .unwrap();
    let sequences: Vec<u64> = log.iter().map(|event| event.sequence).collect();
    assert_eq!(
        sequences,
        (1..=6).collect::<Vec<u64>>(),
        "dense, no event for a refusal"
    );
    assert_eq!(
        [created.sequence, processing.sequence, succeeded.sequence],
        [log[3].sequence, log[4].sequence, log[5].sequence],
        "the batch's events in its commands' order, after the held change's"
    );
    assert_eq!(
        store.get_order(paid.id).await.unwrap().unwrap().status,
        OrderStatus::Succeeded
    );
    assert_eq!(
        writing_transactions(&observer, head_before + 1).await,
        1,
        "the queued commands committed in one transaction"
    );
}

#[tokio::test]
async fn a_write_stuck_behind_a_lock_a_stalled_peer_holds_gives_up_at_the_statement_timeout_and_writes_nothing()
 {
    let database = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let store = replica(&database, &shutdown).await;
    let clock = Clock::system();
    let order = create(store.as_ref(), &clock).await.order;
    // A peer that took the log head and stalled, as a hung replica would.
    let mut admin = database.connect().await;
    let stalled = admin.transaction().await.unwrap();
    stalled
        .execute("SELECT sequence FROM log_head FOR UPDATE", &[])
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let refused = store
        .apply(order.id, change(OrderStatus::Succeeded, &clock))
        .await
        .expect_err("the write cannot finish while the head is held");
    assert!(
        matches!(refused, StoreError::Unavailable(_)),
        "retryable, so callers try again or elsewhere: {refused:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "bounded by the session's statement timeout, not by the peer"
    );
    stalled.rollback().await.unwrap();
    assert_eq!(
        store.get_order(order.id).await.unwrap().unwrap().status,
        OrderStatus::Created,
        "the refused change wrote nothing"
    );
    assert_eq!(store.head_sequence().await.unwrap(), 1);
}

#[tokio::test]
async fn each_write_transaction_sends_one_notification_not_one_per_event() {
    let database = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let store = replica(&database, &shutdown).await;
    let head_before = i64::try_from(store.head_sequence().await.unwrap()).unwrap();

    // A session of the test listening on the log's channel.
    let (listener, mut connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let notified = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn({
        let notified = Arc::clone(&notified);
        async move {
            use futures::StreamExt;
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = messages.next().await {
                if let tokio_postgres::AsyncMessage::Notification(_) = message {
                    notified.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }
    });
    let channel: String = listener
        .query_one("SELECT notify_channel FROM log_head", &[])
        .await
        .unwrap()
        .get(0);
    listener
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .await
        .unwrap();

    // Many payments from several tasks: batches of various sizes.
    let writers: Vec<_> = (0..4)
        .map(|_| tokio::spawn(write_payments(store.clone(), 10)))
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let admin = database.connect().await;
    let transactions = writing_transactions(&admin, head_before).await;
    let events: i64 = admin
        .query_one(
            "SELECT count(*) FROM events WHERE sequence > $1",
            &[&head_before],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(events, 4 * 10 * 3);
    let transactions = usize::try_from(transactions).unwrap();
    testkit::eventually("a notification per write transaction", || {
        let notified = Arc::clone(&notified);
        async move {
            (notified.load(std::sync::atomic::Ordering::SeqCst) >= transactions).then_some(())
        }
    })
    .await;
    // A round trip on the listening session: whatever else was sent is in.
    listener.batch_execute("SELECT 1").await.unwrap();
    assert_eq!(
        notified.load(std::sync::atomic::Ordering::SeqCst),
        transactions,
        "one NOTIFY per transaction ({events} events)"
    );
}
