//! Several payment-core binaries on one PostgreSQL database, as a shop
//! scaled past one machine runs them: any replica serves every call, and
//! a replica killed mid-traffic loses nothing it acknowledged.

use service_kit::core_client::KeyedChannel;
use std::{net::SocketAddr, sync::Arc, time::Duration};

use payments_proto::payments::v1::{
    self as pb, OrderStatus, PaymentOutcome, payment_service_client::PaymentServiceClient,
    watch_payments_request::Selector,
};
use testkit::{PROVIDER_SECRET, Process, postgres::TestDatabase};
use tokio::sync::Mutex;
use tonic::transport::Channel;

fn start_replica(database: &TestDatabase) -> Process {
    start_replica_on(&database.url)
}

pub(crate) fn start_replica_on(database_url: &str) -> Process {
    testkit::start_payment_core_on(database_url, PROVIDER_SECRET, &[])
}

async fn client(replica: &Process) -> PaymentServiceClient<KeyedChannel> {
    testkit::connect_payments(format!("http://{}", replica.addr))
        .await
        .expect("replica reachable")
}

pub(crate) async fn create(replica: &Process) -> Result<pb::Order, tonic::Status> {
    let request = pb::CreateOrderRequest {
        amount_minor: 700,
        currency: "EUR".into(),
        ..Default::default()
    };
    let order = client(replica).await.create_order(request).await?;
    Ok(order.into_inner().order.expect("an order"))
}

async fn watch_all(replica: &Process) -> tonic::Streaming<pb::PaymentEvent> {
    watch_all_after(replica.addr, 0)
        .await
        .expect("watch starts")
}

pub(crate) async fn watch_all_after(
    addr: SocketAddr,
    after_sequence: u64,
) -> Result<tonic::Streaming<pb::PaymentEvent>, tonic::Status> {
    let request = pb::WatchPaymentsRequest {
        selector: Some(Selector::AllOrders(true)),
        after_sequence,
    };
    let mut client = testkit::connect_payments(format!("http://{addr}"))
        .await
        .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    Ok(client.watch_payments(request).await?.into_inner())
}

/// The last sequence in the log, as `replica` reads it.
async fn head_sequence(replica: &Process) -> u64 {
    crate::helpers::head_sequence_of(client(replica).await).await
}

async fn next_event(stream: &mut tonic::Streaming<pb::PaymentEvent>) -> pb::PaymentEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event within 10 s")
        .expect("stream healthy")
        .expect("stream open")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_created_on_one_replica_and_paid_on_another_is_seen_live_on_a_third() {
    let database = TestDatabase::create().await;
    let (a, b, c) = (
        start_replica(&database),
        start_replica(&database),
        start_replica(&database),
    );
    let mut on_c = watch_all(&c).await;
    let order = create(&a).await.expect("created on A");
    testkit::report(b.addr, &order.order_id, PaymentOutcome::Succeeded, "")
        .await
        .expect("reported on B");
    let created = next_event(&mut on_c).await;
    let paid = next_event(&mut on_c).await;
    assert_eq!(
        (created.order_id.as_str(), created.status()),
        (order.order_id.as_str(), OrderStatus::Created)
    );
    assert_eq!(
        (paid.order_id.as_str(), paid.status(), paid.sequence),
        (
            order.order_id.as_str(),
            OrderStatus::Succeeded,
            created.sequence + 1
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_killed_under_load_loses_nothing_it_acknowledged_and_watchers_elsewhere_miss_nothing()
 {
    let database = TestDatabase::create().await;
    let mut a = start_replica(&database);
    let (b, c) = (start_replica(&database), start_replica(&database));
    let mut on_c = watch_all(&c).await;
    let addrs: [SocketAddr; 2] = [a.addr, b.addr];
    let acknowledged = Arc::new(Mutex::new(Vec::new()));

    // Four writers alternate between A and B; A dies in the middle.
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let acknowledged = Arc::clone(&acknowledged);
            tokio::spawn(async move {
                for round in 0..40 {
                    let addr = addrs[(writer + round) % 2];
                    let Ok(mut client) = testkit::connect_payments(format!("http://{addr}")).await
                    else {
                        continue;
                    };
                    let request = pb::CreateOrderRequest {
                        amount_minor: 100,
                        currency: "EUR".into(),
                        ..Default::default()
                    };
                    match client.create_order(request).await {
                        Ok(answer) => {
                            let order = answer.into_inner().order.expect("an order");
                            acknowledged.lock().await.push(order.order_id);
                        }
                        Err(status) => assert_ne!(addr, addrs[1], "B refused: {status}"),
                    }
                }
            })
        })
        .collect();
    testkit::eventually("a few creates acknowledged before the kill", || async {
        (acknowledged.lock().await.len() >= 30).then_some(())
    })
    .await;
    a.kill();
    for writer in writers {
        writer.await.expect("B took every order sent to it");
    }

    let acknowledged = acknowledged.lock().await.clone();
    let mut seen = Vec::new();
    let head = head_sequence(&c).await;
    while seen.len() < head as usize {
        seen.push(next_event(&mut on_c).await);
    }
    let sequences: Vec<u64> = seen.iter().map(|event| event.sequence).collect();
    assert_eq!(
        sequences,
        (1..=head).collect::<Vec<_>>(),
        "C's watcher saw every committed event once, in order"
    );
    for order_id in &acknowledged {
        assert!(
            seen.iter().any(|event| &event.order_id == order_id),
            "acknowledged order {order_id} is in the log"
        );
    }
}

/// `payment-core healthcheck` against `replica`, as a container's health
/// check runs it: whether it exits 0.
fn container_healthcheck(replica: &Process) -> bool {
    std::process::Command::new(testkit::binary_path("payment-core"))
        .arg("healthcheck")
        .env("PAYMENT_CORE_LISTEN", replica.addr.to_string())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// What `replica`'s health service says of the payment service: serving
/// or not; `None` when it cannot be asked.
pub(crate) async fn health_of(replica: &Process) -> Option<bool> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let channel = Channel::from_shared(format!("http://{}", replica.addr))
        .expect("valid URL")
        .connect()
        .await
        .ok()?;
    let request = HealthCheckRequest {
        service: "payments.v1.PaymentService".into(),
    };
    let answer = HealthClient::new(channel).check(request).await.ok()?;
    Some(answer.into_inner().status == 1)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_cut_off_from_its_database_stops_serving_refuses_writes_and_recovers_by_itself() {
    let database = TestDatabase::create().await;
    let replica = start_replica(&database);
    let before = create(&replica).await.expect("created while connected");
    testkit::eventually("the replica serves", || async {
        (health_of(&replica).await == Some(true)).then_some(())
    })
    .await;
    let mut open_watch = watch_all(&replica).await;
    let seen = next_event(&mut open_watch).await;

    // The database goes away for this replica: no new sessions, and the
    // ones it has are cut, as in a network partition or a server restart.
    let admin = database.connect_admin().await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
            name = database.name
        ))
        .await
        .expect("database cut off");
    testkit::eventually("the replica reports NOT_SERVING", || async {
        (health_of(&replica).await == Some(false)).then_some(())
    })
    .await;
    let refused = create(&replica).await.expect_err("nothing is acknowledged");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused}");
    assert!(
        !container_healthcheck(&replica),
        "the container health check fails too"
    );
    let ended = tokio::time::timeout(Duration::from_secs(10), open_watch.message())
        .await
        .expect("the open watch ends")
        .expect_err("with a status");
    assert_eq!(ended.code(), tonic::Code::Unavailable, "{ended}");
    assert!(
        ended
            .message()
            .contains(&format!("after_sequence={}", seen.sequence)),
        "the end says where to resume: {ended}"
    );

    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            database.name
        ))
        .await
        .expect("database back");
    testkit::eventually("the replica serves again", || async {
        (health_of(&replica).await == Some(true)).then_some(())
    })
    .await;
    assert!(container_healthcheck(&replica), "and passes again");
    let after = testkit::eventually("writes are acknowledged again", || async {
        create(&replica).await.ok()
    })
    .await;
    let mut watch = watch_all(&replica).await;
    let first = next_event(&mut watch).await;
    let second = next_event(&mut watch).await;
    assert_eq!(
        [first.order_id, second.order_id],
        [before.order_id, after.order_id],
        "what was acknowledged before is kept, and nothing was written while cut off"
    );
}

/// A watcher of every order on `addr` that does what a gateway does when
/// its stream ends: watches again after the last sequence it has. Collects
/// the events, and the statuses that ended its streams, until `stop`.
async fn resuming_watcher(
    addr: SocketAddr,
    events: Arc<Mutex<Vec<pb::PaymentEvent>>>,
    ends: Arc<Mutex<Vec<tonic::Status>>>,
    stop: tokio_util::sync::CancellationToken,
) {
    // Bounded by `stop`; the count only guards against a spin.
    for _ in 0..100_000 {
        if stop.is_cancelled() {
            return;
        }
        let after = events.lock().await.last().map_or(0, |event| event.sequence);
        match watch_all_after(addr, after).await {
            Ok(mut stream) => loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    message = stream.message() => match message {
                        Ok(Some(event)) => events.lock().await.push(event),
                        Ok(None) => break,
                        Err(status) => {
                            ends.lock().await.push(status);
                            break;
                        }
                    },
                }
            },
            Err(status) => ends.lock().await.push(status),
        }
        // The replica may still be without its database: try again soon.
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_restarted_under_load_loses_nothing_acknowledged_and_the_replicas_recover_by_themselves()
 {
    let server = testkit::postgres::PrivateServer::start();
    let (a, b) = (start_replica_on(&server.url), start_replica_on(&server.url));
    let addrs = [a.addr, b.addr];
    let (stop, stop_watching) = (
        tokio_util::sync::CancellationToken::new(),
        tokio_util::sync::CancellationToken::new(),
    );
    let (seen, ends) = (
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(Vec::new())),
    );
    let watcher = tokio::spawn(resuming_watcher(
        b.addr,
        Arc::clone(&seen),
        Arc::clone(&ends),
        stop_watching.clone(),
    ));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    // Four writers alternate between the replicas until told to stop; a
    // refused create is retried after a pause, as a client would.
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (acknowledged, stop) = (Arc::clone(&acknowledged), stop.clone());
            tokio::spawn(async move {
                for round in 0..100_000 {
                    if stop.is_cancelled() {
                        return;
                    }
                    let addr = addrs[(writer + round) % 2];
                    let created = async {
                        let mut client = testkit::connect_payments(format!("http://{addr}"))
                            .await
                            .ok()?;
                        let request = pb::CreateOrderRequest {
                            amount_minor: 100,
                            currency: "EUR".into(),
                            ..Default::default()
                        };
                        client.create_order(request).await.ok()
                    };
                    match created.await {
                        Some(answer) => {
                            let order = answer.into_inner().order.expect("an order");
                            acknowledged.lock().await.push(order.order_id);
                        }
                        None => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            })
        })
        .collect();
    let acknowledged_count = || async { acknowledged.lock().await.len() };
    testkit::eventually("creates acknowledged before the restart", || async {
        (acknowledged_count().await >= 40).then_some(())
    })
    .await;

    tokio::task::block_in_place(|| server.stop_immediately());
    testkit::eventually("both replicas report NOT_SERVING", || async {
        (health_of(&a).await == Some(false) && health_of(&b).await == Some(false)).then_some(())
    })
    .await;
    let before_restart = acknowledged_count().await;
    tokio::task::block_in_place(|| server.start_again());
    testkit::eventually_within(
        Duration::from_secs(30),
        "both replicas serve again, by themselves",
        || async {
            (health_of(&a).await == Some(true) && health_of(&b).await == Some(true)).then_some(())
        },
    )
    .await;
    testkit::eventually_within(
        Duration::from_secs(30),
        "creates are acknowledged again on both replicas",
        || async { (acknowledged_count().await >= before_restart + 40).then_some(()) },
    )
    .await;
    stop.cancel();
    for writer in writers {
        writer.await.expect("writer ran");
    }

    let head = head_sequence(&a).await;
    testkit::eventually(
        "the watcher on B has every event up to the head",
        || async {
            (seen
                .lock()
                .await
                .last()
                .is_some_and(|event| event.sequence >= head))
            .then_some(())
        },
    )
    .await;
    stop_watching.cancel();
    watcher.await.expect("watcher ran");

    let seen = seen.lock().await;
    let sequences: Vec<u64> = seen.iter().map(|event| event.sequence).collect();
    assert_eq!(
        sequences,
        (1..=head).collect::<Vec<_>>(),
        "B's watcher, resuming after each end, saw every event once, in order"
    );
    for order_id in acknowledged.lock().await.iter() {
        assert!(
            seen.iter().any(|event| &event.order_id == order_id),
            "acknowledged order {order_id} survived the restart"
        );
    }
    let ends = ends.lock().await;
    assert!(
        ends.iter()
            .any(|status| status.code() == tonic::Code::Unavailable
                && status.message().contains("after_sequence=")),
        "the open watch was ended with UNAVAILABLE and its resume position: {ends:?}"
    );
}
