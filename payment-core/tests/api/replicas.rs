//! Several payment-core binaries on one PostgreSQL database, as a shop
//! scaled past one machine runs them: any replica serves every call, and
//! a replica killed mid-traffic loses nothing it acknowledged.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use payments_proto::payments::v1::{
    self as pb, OrderStatus, PaymentOutcome, payment_service_client::PaymentServiceClient,
    watch_payments_request::Selector,
};
use testkit::{PROVIDER_SECRET, Process, free_port, postgres::TestDatabase};
use tokio::sync::Mutex;
use tonic::transport::Channel;

fn start_replica(database: &TestDatabase) -> Process {
    testkit::start_payment_core_on(&database.url, PROVIDER_SECRET, free_port(), &[])
}

async fn client(replica: &Process) -> PaymentServiceClient<Channel> {
    PaymentServiceClient::connect(format!("http://{}", replica.addr))
        .await
        .expect("replica reachable")
}

async fn create(replica: &Process) -> Result<pb::Order, tonic::Status> {
    let request = pb::CreateOrderRequest {
        amount_minor: 700,
        currency: "EUR".into(),
        ..Default::default()
    };
    let order = client(replica).await.create_order(request).await?;
    Ok(order.into_inner().order.expect("an order"))
}

async fn watch_all(replica: &Process) -> tonic::Streaming<pb::PaymentEvent> {
    let request = pb::WatchPaymentsRequest {
        selector: Some(Selector::AllOrders(true)),
        after_sequence: 0,
    };
    client(replica)
        .await
        .watch_payments(request)
        .await
        .expect("watch starts")
        .into_inner()
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
                    let Ok(mut client) =
                        PaymentServiceClient::connect(format!("http://{addr}")).await
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
    let head = client(&c)
        .await
        .list_events(pb::ListEventsRequest {
            after_sequence: 0,
            page_size: 1,
        })
        .await
        .expect("head")
        .into_inner()
        .head_sequence;
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

async fn serving(replica: &Process) -> bool {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let Ok(channel) = Channel::from_shared(format!("http://{}", replica.addr))
        .expect("valid URL")
        .connect()
        .await
    else {
        return false;
    };
    let mut health = HealthClient::new(channel);
    let request = HealthCheckRequest {
        service: "payments.v1.PaymentService".into(),
    };
    health
        .check(request)
        .await
        .is_ok_and(|answer| answer.into_inner().status == 1)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_cut_off_from_its_database_stops_serving_refuses_writes_and_recovers_by_itself() {
    let database = TestDatabase::create().await;
    let replica = start_replica(&database);
    let before = create(&replica).await.expect("created while connected");
    testkit::eventually("the replica serves", || async {
        serving(&replica).await.then_some(())
    })
    .await;

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
        (!serving(&replica).await).then_some(())
    })
    .await;
    let refused = create(&replica).await.expect_err("nothing is acknowledged");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused}");

    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            database.name
        ))
        .await
        .expect("database back");
    testkit::eventually("the replica serves again", || async {
        serving(&replica).await.then_some(())
    })
    .await;
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
