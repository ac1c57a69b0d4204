//! Debian's nginx on loopback with the project's own configuration
//! (`docker/nginx.conf`), its upstreams and paths pointed at the test's
//! processes, for tests of what a browser behind the real proxy sees.

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// A running nginx, stopped when dropped.
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// nginx with `docker/nginx.conf`, listening on a free loopback port,
    /// proxying to `gateways` (in place of `gateway-1`, `gateway-2`), with
    /// each `(from, to)` of `edits` applied to the file first. Every pattern
    /// must be found: a configuration that drifted from what the test
    /// expects fails the test instead of testing something else.
    pub fn start(gateways: [SocketAddr; 2], edits: &[(&str, &str)]) -> Self {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut config = std::fs::read_to_string(workspace.join("docker/nginx.conf"))
            .expect("docker/nginx.conf");
        let addr = SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
        let dir = tempfile::tempdir().expect("temporary directory");
        let gateway_1 = format!("server {}", gateways[0]);
        let gateway_2 = format!("server {}", gateways[1]);
        let listen = format!("listen {addr} default_server;");
        let mut all_edits = vec![
            ("server gateway-1:8080", gateway_1.as_str()),
            ("server gateway-2:8080", gateway_2.as_str()),
            ("listen 8080 default_server;", listen.as_str()),
            ("pid /tmp/nginx/nginx.pid;", "pid nginx.pid;"),
            ("/tmp/nginx/", "tmp/"),
            (
                "access_log /dev/stdout main;",
                "access_log access.log main;",
            ),
        ];
        all_edits.extend_from_slice(edits);
        for (from, to) in all_edits {
            assert!(
                config.contains(from),
                "docker/nginx.conf no longer contains {from:?}"
            );
            config = config.replace(from, to);
        }
        std::fs::create_dir_all(dir.path().join("tmp")).expect("nginx temp dir");
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).expect("write nginx.conf");
        let log = dir.path().join("stderr.log");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("nginx log file"))
            .spawn()
            .expect("nginx is installed (Debian package nginx; .ci/run installs it)");
        let mut nginx = Self {
            child,
            addr,
            _dir: dir,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(addr).is_ok() {
                return nginx;
            }
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!(
                    "nginx exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "nginx does not listen on {addr}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
}

impl Drop for Nginx {
    /// SIGTERM first: the master stops its workers (a SIGKILLed master
    /// leaves them running); SIGKILL if it has not exited in five seconds.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
