//! A fresh PostgreSQL database per test, on the server named by
//! `TEST_POSTGRES_URL` (default `postgres://postgres:postgres@127.0.0.1:5432/postgres`,
//! the server `.ci/run` starts). A server that cannot be reached fails the
//! test: nothing is skipped. Tests that stop the server itself run a
//! [`PrivateServer`].

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

/// A PostgreSQL server of the test's own: `initdb` in a temporary
/// directory, listening on a free loopback port (retried if taken). For tests that stop and
/// restart the server itself, which the shared server's other tests must
/// not feel. It runs Debian's server binaries (`apt-get install
/// postgresql`; `.ci/run` installs them), as the `postgres` user when the
/// test runs as root, because the server refuses to run as root.
pub struct PrivateServer {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
    /// The `postgres` database on this server, as the `postgres` user.
    pub url: String,
}

impl PrivateServer {
    /// Creates the cluster and starts the server; blocks until it accepts
    /// connections.
    pub fn start() -> Self {
        let bin = server_binaries();
        let dir = tempfile::Builder::new()
            .prefix("test-pg-")
            .tempdir()
            .expect("temporary directory");
        if running_as_root() {
            run(std::process::Command::new("chown")
                .arg("postgres")
                .arg(dir.path()));
        }
        let data = dir.path().join("data");
        run(as_server_user(&bin.join("initdb"))
            .args(["-U", "postgres", "-A", "trust", "--no-sync", "-D"])
            .arg(&data));
        let mut server = Self {
            url: String::new(),
            dir,
            bin,
            port: 0,
        };
        // The server cannot bind port 0 and tell us the port: it is chosen
        // free, and another one is tried if the port was taken before the
        // server bound it.
        crate::on_a_free_port("PostgreSQL", |port| {
            server.port = port;
            server.url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
            server.try_start()
        });
        server
    }

    /// Stops the server the way a crash or `kill -9` of the postmaster
    /// does: no shutdown checkpoint, connections cut; the next start
    /// replays the WAL.
    pub fn stop_immediately(&self) {
        run(self.pg_ctl().args(["-m", "immediate", "stop"]));
    }

    /// Starts the (stopped) server again, on the port its clients know;
    /// blocks until it accepts connections.
    pub fn start_again(&self) {
        if let Err(crate::PortTaken(log)) = self.try_start() {
            panic!(
                "port {} was taken while PostgreSQL was stopped:\n{log}",
                self.port
            );
        }
    }

    /// Starts the server on `self.port`; blocks until it accepts
    /// connections. [`crate::PortTaken`] when what it logged this time says
    /// the port was in use; any other failure fails the test.
    fn try_start(&self) -> Result<(), crate::PortTaken> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        // The log is appended to across restarts: this start's lines follow.
        let logged_before = std::fs::metadata(&log).map_or(0, |meta| meta.len());
        let output = self
            .pg_ctl()
            .arg("-l")
            .arg(&log)
            .args(["-o", &options, "start"])
            .output()
            .expect("pg_ctl runs");
        if output.status.success() {
            return Ok(());
        }
        let logged = std::fs::read(&log).unwrap_or_default();
        let this_start = logged.get(logged_before as usize..).unwrap_or_default();
        let this_start = String::from_utf8_lossy(this_start);
        match crate::PortTaken::in_output(&this_start) {
            Some(taken) => Err(taken),
            None => panic!(
                "pg_ctl start failed: {}{}\n{this_start}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }

    fn pg_ctl(&self) -> std::process::Command {
        let mut command = as_server_user(&self.bin.join("pg_ctl"));
        command
            .arg("-w")
            .arg("-D")
            .arg(self.dir.path().join("data"));
        command
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        // Already stopped is fine: the directory goes either way.
        let _ = self
            .pg_ctl()
            .args(["-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The newest Debian PostgreSQL server's binaries.
fn server_binaries() -> std::path::PathBuf {
    let mut found: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "this test runs a PostgreSQL server of its own and needs Debian's server \
             binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql; .ci/run installs it)"
        )
    })
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

fn as_server_user(program: &std::path::Path) -> std::process::Command {
    if running_as_root() {
        let mut command = std::process::Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        std::process::Command::new(program)
    }
}

fn run(command: &mut std::process::Command) {
    let output = command.output().expect("runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
