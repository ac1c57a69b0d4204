//! Test support shared by the services' integration tests.
//!
//! - [`Process`]: one of the workspace's built binaries running on loopback,
//!   killed when dropped. Tests use the real binaries, so `cargo test
//!   --workspace` (which builds every binary first) is the way to run them.
//! - [`free_port`], [`wait_for_port`].
//! - [`sse`]: a minimal SSE client over a raw TCP socket that keeps every
//!   byte the server sent, for checking the framing itself.

pub mod sse;

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The directory holding the workspace's built binaries: the test
/// executable lives in `<target>/<profile>/deps/`.
pub fn binary_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run the tests with `cargo test --workspace`",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind loopback")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Waits until something accepts connections on `addr`, at most `bound`.
pub fn wait_for_port(addr: SocketAddr, bound: Duration) {
    let deadline = Instant::now() + bound;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {addr} after {bound:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running binary; killed (SIGKILL) when dropped.
pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Process {
    /// Starts `name` with `env`, and waits until `addr` accepts connections.
    pub fn start(name: &str, addr: SocketAddr, env: &[(&str, String)]) -> Self {
        let mut command = Command::new(binary_path(name));
        command.stdout(Stdio::null()).env("RUST_LOG", "warn");
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let process = Self { child, addr };
        wait_for_port(addr, Duration::from_secs(20));
        process
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

/// payment-core on `port` over the SQLite file `database`.
pub fn start_payment_core(database: &std::path::Path, secret: &str, port: u16) -> Process {
    start_payment_core_with(database, secret, port, &[])
}

/// payment-core with extra environment (e.g. `PROVIDER_PAGE_URL`).
pub fn start_payment_core_with(
    database: &std::path::Path,
    secret: &str,
    port: u16,
    extra: &[(&str, String)],
) -> Process {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut env = vec![
        ("PAYMENT_CORE_LISTEN", addr.to_string()),
        ("DATABASE_URL", format!("sqlite://{}", database.display())),
        ("PROVIDER_SECRET", secret.to_owned()),
        ("PROVIDER_PAGE_URL", "http://127.0.0.1:1/pay".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    Process::start("payment-core", addr, &env)
}
