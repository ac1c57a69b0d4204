//! A fresh PostgreSQL database per test, on the server named by
//! `TEST_POSTGRES_URL` (default `postgres://postgres:postgres@127.0.0.1:5432/postgres`,
//! the server `.ci/run` starts). A server that cannot be reached fails the
//! test: nothing is skipped.

use tokio_postgres::NoTls;

/// Where the tests' PostgreSQL server is, as an admin connection URL.
pub fn server_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".into())
}

/// A database created for one test and dropped with it.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

async fn admin() -> tokio_postgres::Client {
    let url = server_url();
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "PostgreSQL at {url} is needed by this test ({error}); \
                 .ci/run installs and starts it, or set TEST_POSTGRES_URL"
            )
        });
    tokio::spawn(connection);
    client
}

/// Test databases older than this are left over from runs that ended
/// before their drop did, and are removed by the next [`TestDatabase::create`].
const LEFTOVER_AFTER_SECS: u64 = 3600;

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl TestDatabase {
    pub async fn create() -> Self {
        let name = format!("test_{}_{}", unix_secs(), uuid::Uuid::new_v4().simple());
        let admin = admin().await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("CREATE DATABASE");
        remove_leftovers(&admin).await;
        let server = server_url();
        let base = server
            .rsplit_once('/')
            .map_or(server.as_str(), |(base, _)| base);
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }

    /// A connection to the server's admin database, for tests that change
    /// this database from outside (cut it off, say).
    pub async fn connect_admin(&self) -> tokio_postgres::Client {
        admin().await
    }

    /// An open connection to this database, for tests that reach past the store.
    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .expect("connects to the test database");
        tokio::spawn(connection);
        client
    }
}

/// Drops test databases whose creation time (in their name) is long past.
async fn remove_leftovers(admin: &tokio_postgres::Client) {
    let Ok(rows) = admin
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'test\\_%'",
            &[],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get("datname");
        let created = name
            .split('_')
            .nth(1)
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|created| created + LEFTOVER_AFTER_SECS < unix_secs()) {
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

impl Drop for TestDatabase {
    /// Drops the database from a thread of its own, without waiting for it:
    /// the test's runtime may be stopping, and a connection of the test
    /// still in its handshake would hold `DROP DATABASE` until the server's
    /// authentication timeout. A database the process outlives is removed
    /// as a leftover by a later run.
    fn drop(&mut self) {
        let name = self.name.clone();
        std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&server_url(), NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        });
    }
}
