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
    ///
    /// nginx cannot bind port 0 and tell us the port, so the port is chosen
    /// free beforehand; if another process took it before nginx bound it,
    /// nginx exits saying so and is started again on another port.
    pub fn start(gateways: [SocketAddr; 2], edits: &[(&str, &str)]) -> Self {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut config = std::fs::read_to_string(workspace.join("docker/nginx.conf"))
            .expect("docker/nginx.conf");
        let gateway_1 = format!("server {}", gateways[0]);
        let gateway_2 = format!("server {}", gateways[1]);
        let mut all_edits = vec![
            ("server gateway-1:8080", gateway_1.as_str()),
            ("server gateway-2:8080", gateway_2.as_str()),
            // Filled in for each port tried, below.
            (
                "listen 8080 default_server;",
                "listen {listen} default_server;",
            ),
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
        crate::on_a_free_port("nginx", |port| {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            Self::start_on(addr, &config.replace("{listen}", &addr.to_string()))
        })
    }

    /// nginx with `config` (which listens on `addr`), once it has bound
    /// its port: it writes its pid file after binding. (A connection to the
    /// port would not tell: whoever took the port would answer it.)
    fn start_on(addr: SocketAddr, config: &str) -> Result<Self, crate::PortTaken> {
        let dir = tempfile::tempdir().expect("temporary directory");
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
        let pid_file = dir.path().join("nginx.pid");
        let mut nginx = Self {
            child,
            addr,
            _dir: dir,
        };
        crate::wait_until_ready(
            "nginx",
            &mut nginx.child,
            &log,
            Duration::from_secs(10),
            || pid_file.exists(),
        )?;
        Ok(nginx)
    }
}

impl Nginx {
    /// What nginx has written to its access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("access.log")).unwrap_or_default()
    }

    /// What nginx has written to its error log (stderr) so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    /// SIGTERM first: the master stops its workers (a SIGKILLed master
    /// leaves them running); SIGKILL if it has not exited in five seconds.
    fn drop(&mut self) {
        // One that exited (its port was taken) is reaped already: its pid
        // may be another process's by now.
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
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
