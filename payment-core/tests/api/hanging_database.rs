//! A database that stops answering without a word, as in a network
//! partition that drops packets: connections stay open and reads hang.
//! The replica's probe finds it unreachable and the replica goes
//! NOT_SERVING; a watch asked for during the outage, whose first read of
//! the log would hang, must be refused at once with where to resume.
//! Otherwise its client (a gateway) waits on a stream that looks open, or
//! opens one that ends at once again and again, until the database comes
//! back, instead of moving to another replica.

use std::{net::SocketAddr, time::Duration};

use testkit::postgres::TestDatabase;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

use crate::replicas::{create, health_of, start_replica_on, watch_all_after};

/// A TCP relay to PostgreSQL that can be frozen: while it is, it passes no
/// byte either way and closes nothing.
struct FreezingRelay {
    /// The database's URL through the relay.
    url: String,
    frozen: watch::Sender<bool>,
    _accept: tokio::task::JoinHandle<()>,
}

impl FreezingRelay {
    async fn start(database_url: &str) -> Self {
        // postgres://user:password@host:port/name
        let (scheme_and_user, rest) = database_url.rsplit_once('@').expect("a URL with a host");
        let (server, path) = rest.split_once('/').expect("a URL with a database");
        let server: SocketAddr = server.parse().expect("host:port");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "{scheme_and_user}@{}/{path}",
            listener.local_addr().unwrap()
        );
        let (frozen, watch_frozen) = watch::channel(false);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let frozen = watch_frozen.clone();
                tokio::spawn(async move {
                    let Ok(upstream) = TcpStream::connect(server).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (upstream_read, upstream_write) = upstream.into_split();
                    tokio::join!(
                        pass(client_read, upstream_write, frozen.clone()),
                        pass(upstream_read, client_write, frozen),
                    );
                });
            }
        });
        Self {
            url,
            frozen,
            _accept: accept,
        }
    }

    fn freeze(&self, frozen: bool) {
        self.frozen.send_replace(frozen);
    }
}

/// Copies `from` to `to`, holding each chunk while the relay is frozen.
async fn pass(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        if frozen.wait_for(|frozen| !frozen).await.is_err() {
            return;
        }
        let Ok(read) = from.read(&mut buffer).await else {
            return;
        };
        if read == 0 || frozen.wait_for(|frozen| !frozen).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_asked_for_while_the_database_hangs_is_refused_at_once_so_its_client_goes_elsewhere()
 {
    let database = TestDatabase::create().await;
    let relay = FreezingRelay::start(&database.url).await;
    let replica = start_replica_on(&relay.url);
    create(&replica)
        .await
        .expect("created while the database answers");
    testkit::eventually("the replica serves", || async {
        (health_of(&replica).await == Some(true)).then_some(())
    })
    .await;

    relay.freeze(true);
    testkit::eventually("the replica reports NOT_SERVING", || async {
        (health_of(&replica).await == Some(false)).then_some(())
    })
    .await;
    // A watch asked for now is refused at once (its first step would be a
    // read of the log, on a connection that hangs), so that a client's
    // replica list moves it to another replica.
    let refused = tokio::time::timeout(Duration::from_secs(5), watch_all_after(replica.addr, 7))
        .await
        .expect("answered at once, not when the database is back")
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused}");
    assert!(refused.message().contains("after_sequence=7"), "{refused}");

    relay.freeze(false);
    testkit::eventually("the replica serves again", || async {
        (health_of(&replica).await == Some(true)).then_some(())
    })
    .await;
}
