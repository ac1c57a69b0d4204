//! The workspace's services as processes on loopback, each on a port the
//! kernel chose for it.
//!
//! A service is started with its listen address set to `127.0.0.1:0` and
//! `ADDRESS_FILE` set to a fresh path; it writes the addresses it bound
//! there once every listener is bound, and [`Process`] hands them to the
//! test. No port is chosen beforehand, so none can be taken by another test
//! or process in between (the race of the `free_port` this replaced).
//!
//! Services start in development mode (`PAYMENTS_PUSH_DEV=1`), so that a
//! test sets only the credentials it is about; a test of the refusals sets
//! `PAYMENTS_PUSH_DEV=0` and meets them through [`Process::exit_of`].
//!
//! A test may still set the listen variable itself: to restart a killed
//! service on the address its peers know, or to start it on an address
//! reserved for it ([`crate::reserve_address`]).

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use crate::binaries::binary_path;

/// How long a service may take from its start to binding its listeners: a
/// PostgreSQL store migrates first, and CI machines are shared.
const STARTUP_BOUND: Duration = Duration::from_secs(30);

/// The variable that sets a service's main listen address, and the name
/// its address file gives that address.
fn main_listener(service: &str) -> (&'static str, &'static str) {
    match service {
        "payment-core" => ("PAYMENT_CORE_LISTEN", "grpc"),
        "sse-gateway" => ("GATEWAY_LISTEN", "http"),
        "mock-provider" => ("PROVIDER_LISTEN", "http"),
        other => panic!("{other} is not a service of this workspace"),
    }
}

/// Where a service started by a test writes the addresses it bound
/// (`ADDRESS_FILE`): a path in a directory of its own, removed when dropped.
pub struct AddressFile {
    dir: tempfile::TempDir,
}

impl AddressFile {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// The value for `ADDRESS_FILE`.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("addresses.json")
    }

    /// The addresses the service `what` bound, by name, once it has written
    /// them. Fails the test if `exited` reports that the service ended
    /// first (with its exit status: its own error is on stderr), or after
    /// [`STARTUP_BOUND`].
    pub fn wait(
        &self,
        what: &str,
        mut exited: impl FnMut() -> Option<ExitStatus>,
    ) -> BTreeMap<String, SocketAddr> {
        let path = self.path();
        let deadline = Instant::now() + STARTUP_BOUND;
        // The service renames a whole file into place: present is complete.
        while !path.exists() {
            if let Some(status) = exited() {
                panic!("{what} exited ({status}) before it reported its addresses");
            }
            assert!(
                Instant::now() < deadline,
                "{what} reported no addresses after {STARTUP_BOUND:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        service_kit::address_file::read(&path)
            .unwrap_or_else(|error| panic!("{what}'s addresses: {error:#}"))
    }
}

impl Default for AddressFile {
    fn default() -> Self {
        Self::new()
    }
}

/// A running service; killed (SIGKILL) when dropped.
pub struct Process {
    pub child: Child,
    /// The main listener's address: payment-core's gRPC, the others' HTTP.
    pub addr: SocketAddr,
    addresses: BTreeMap<String, SocketAddr>,
    address_file: AddressFile,
}

impl Process {
    /// Starts the service `name` with `env`, on loopback port 0 unless
    /// `env` sets its listen address, in development mode unless `env` sets
    /// `PAYMENTS_PUSH_DEV`, and waits until it has bound every listener.
    pub fn start(name: &str, env: &[(&str, String)]) -> Self {
        Self::start_with_stdout(name, env, Stdio::null())
    }

    /// [`Process::start`], its log lines (stdout) written to `log`.
    pub fn start_logging_to(name: &str, env: &[(&str, String)], log: &Path) -> Self {
        let file = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        Self::start_with_stdout(name, env, Stdio::from(file))
    }

    fn start_with_stdout(name: &str, env: &[(&str, String)], stdout: Stdio) -> Self {
        let (_, main) = main_listener(name);
        let address_file = AddressFile::new();
        let mut command = service_command(name, env, &address_file);
        let child = command
            .stdout(stdout)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        // Owned before the wait, so that a failed start still kills it.
        let mut process = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            addresses: BTreeMap::new(),
            address_file,
        };
        process.addresses = process
            .address_file
            .wait(name, || process.child.try_wait().ok().flatten());
        process.addr = process.address(main);
        process
    }

    /// Starts the service `name` as [`Process::start`] does, for a start
    /// that must fail: waits until it exits and returns its status and
    /// output (stdout: its log; stderr: its last words). Fails the test if
    /// it binds its listeners instead, or is still running after
    /// [`STARTUP_BOUND`].
    pub fn exit_of(name: &str, env: &[(&str, String)]) -> Output {
        let address_file = AddressFile::new();
        let stdout = address_file.dir.path().join("stdout");
        let stderr = address_file.dir.path().join("stderr");
        let create = |path: &Path| {
            std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        let mut child = service_command(name, env, &address_file)
            .stdout(create(&stdout))
            .stderr(create(&stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let deadline = Instant::now() + STARTUP_BOUND;
        let status = loop {
            if let Some(status) = child.try_wait().expect("the child can be waited for") {
                break status;
            }
            if address_file.path().exists() || Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{name} started (or hung) instead of exiting; its stderr:\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let read =
            |path: &Path| std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Output {
            status,
            stdout: read(&stdout),
            stderr: read(&stderr),
        }
    }

    /// The address the service bound for `listener` (`grpc`, `http`,
    /// `metrics`); fails the test, naming those it has, if it has none.
    pub fn address(&self, listener: &str) -> SocketAddr {
        *self.addresses.get(listener).unwrap_or_else(|| {
            panic!(
                "no `{listener}` address among {:?}",
                self.addresses.keys().collect::<Vec<_>>()
            )
        })
    }

    /// payment-core's `GET /metrics` address, when the test set
    /// `PAYMENT_CORE_METRICS_LISTEN` (`127.0.0.1:0` lets it choose).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.addresses.get("metrics").copied()
    }

    /// Freezes the process (SIGSTOP): alive, its sockets open and still
    /// accepting connections in the kernel, but it answers nothing, as a
    /// hung or paused process does.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Lets a frozen process run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} {}", self.child.id());
    }

    /// Kills the process hard, as a crash would, and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The one line the service `name`, started with `env`, prints on stderr
/// when it refuses its credentials; fails the test unless it exits with
/// `credentials::EXIT_REFUSED` (78) and exactly that one line.
pub fn refusal(name: &str, env: &[(&str, String)]) -> String {
    let output = Process::exit_of(name, env);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(service_kit::credentials::EXIT_REFUSED.into()),
        "{name} exited ({}), not with a refusal; its stderr:\n{stderr}",
        output.status
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, not:\n{stderr}");
    lines[0].to_owned()
}

/// The command that starts the service `name` as a test does: on loopback
/// port 0 (unless `env` sets its listen address), logging warnings, in
/// development mode (unless `env` sets `PAYMENTS_PUSH_DEV`: most tests
/// leave some credential to its public development value), writing its
/// addresses to `address_file`.
fn service_command(name: &str, env: &[(&str, String)], address_file: &AddressFile) -> Command {
    let (listen_variable, _) = main_listener(name);
    let mut command = Command::new(binary_path(name));
    command
        .env("RUST_LOG", "warn")
        .env(service_kit::credentials::DEV_VARIABLE, "1")
        .env(listen_variable, "127.0.0.1:0");
    // The test's own values win, the listen address among them.
    command.envs(env.iter().map(|(key, value)| (key, value)));
    command.env("ADDRESS_FILE", address_file.path());
    command
}

/// payment-core over the SQLite file `database`, on a port of its choosing.
pub fn start_payment_core(database: &Path, secret: &str) -> Process {
    start_payment_core_with(database, secret, &[])
}

/// [`start_payment_core`] with extra environment (`PROVIDER_PAGE_URL`, or
/// `PAYMENT_CORE_LISTEN` to restart it on the address it had).
pub fn start_payment_core_with(database: &Path, secret: &str, extra: &[(&str, String)]) -> Process {
    start_payment_core_on(&format!("sqlite://{}", database.display()), secret, extra)
}

/// payment-core over the store `database_url` names (a PostgreSQL database
/// shared by several replicas, say).
pub fn start_payment_core_on(
    database_url: &str,
    secret: &str,
    extra: &[(&str, String)],
) -> Process {
    let mut env = vec![
        ("DATABASE_URL", database_url.to_owned()),
        ("PROVIDER_SECRET", secret.to_owned()),
        // Port 1: nothing listens there; tests that follow payment URLs
        // set their own.
        ("PROVIDER_PAGE_URL", "http://127.0.0.1:1/pay".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    Process::start("payment-core", &env)
}
