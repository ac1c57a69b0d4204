//! Debian's nginx on loopback with the project's own configuration
//! (`docker/nginx.conf`), its upstreams and paths pointed at the test's
//! processes, for tests of what a browser behind the real proxy sees:
//! over plain HTTP, and with [`Nginx::start_with_tls`] also over its TLS
//! and HTTP/2 listener.

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::tls::TestPki;

/// The TLS listener and its certificate files in `docker/nginx.conf`. The
/// listener's parameters (`ssl http2 ...`) are kept as written there: they
/// are what the TLS tests test.
const TLS_LISTEN: &str = "listen 8443 ";
const TLS_CERT: &str = "ssl_certificate     /etc/nginx/tls/tls.crt;";
const TLS_KEY: &str = "ssl_certificate_key /etc/nginx/tls/tls.key;";

/// A running nginx, stopped when dropped.
pub struct Nginx {
    child: Child,
    /// The plain HTTP/1.1 listener (8080 in the image).
    pub addr: SocketAddr,
    /// The TLS listener, HTTP/2 or HTTP/1.1 by ALPN (8443 in the image),
    /// when started with [`Nginx::start_with_tls`].
    pub tls_addr: Option<SocketAddr>,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// nginx with `docker/nginx.conf`, listening on a free loopback port,
    /// proxying to `gateways` (in place of `gateway-1`, `gateway-2`), with
    /// each `(from, to)` of `edits` applied to the file first. Every pattern
    /// must be found: a configuration that drifted from what the test
    /// expects fails the test instead of testing something else.
    ///
    /// Plain HTTP only: the TLS listener is taken out, with its certificate
    /// files, which exist only in the image.
    ///
    /// nginx cannot bind port 0 and tell us the port, so the port is chosen
    /// free beforehand; if another process took it before nginx bound it,
    /// nginx exits saying so and is started again on another port.
    pub fn start(gateways: [SocketAddr; 2], edits: &[(&str, &str)]) -> Self {
        let config = Self::config(
            gateways,
            &[
                (TLS_LISTEN, "# listen 8443 "),
                (TLS_CERT, ""),
                (TLS_KEY, ""),
            ],
            edits,
        );
        crate::on_a_free_port("nginx", |port| {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            Self::start_on(addr, None, &config.replace("{listen}", &addr.to_string()))
        })
    }

    /// [`Nginx::start`] with the TLS listener too, on a second free
    /// loopback port ([`Nginx::tls_addr`]), serving `pki`'s server
    /// certificate (for `localhost` and `127.0.0.1`, signed by `pki.ca()`).
    pub fn start_with_tls(
        gateways: [SocketAddr; 2],
        edits: &[(&str, &str)],
        pki: &TestPki,
    ) -> Self {
        let server = pki.server();
        let cert = format!("ssl_certificate {};", server.cert.display());
        let key = format!("ssl_certificate_key {};", server.key.display());
        let config = Self::config(
            gateways,
            &[
                // Filled in for each pair of ports tried, below.
                (TLS_LISTEN, "listen {tls_listen} "),
                (TLS_CERT, cert.as_str()),
                (TLS_KEY, key.as_str()),
            ],
            edits,
        );
        crate::on_free_ports("nginx", |[port, tls_port]| {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let tls_addr = SocketAddr::from(([127, 0, 0, 1], tls_port));
            let config = config
                .replace("{listen}", &addr.to_string())
                .replace("{tls_listen}", &tls_addr.to_string());
            Self::start_on(addr, Some(tls_addr), &config)
        })
    }

    /// `docker/nginx.conf` with the edits every test needs, then `tls`
    /// (what becomes of the TLS listener), then the test's own `edits`;
    /// `{listen}` and `{tls_listen}` are left for the ports.
    fn config(gateways: [SocketAddr; 2], tls: &[(&str, &str)], edits: &[(&str, &str)]) -> String {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut config = std::fs::read_to_string(workspace.join("docker/nginx.conf"))
            .expect("docker/nginx.conf");
        let gateway_1 = format!("server {}", gateways[0]);
        let gateway_2 = format!("server {}", gateways[1]);
        let mut all_edits = vec![
            ("server gateway-1:8080", gateway_1.as_str()),
            ("server gateway-2:8080", gateway_2.as_str()),
            // Filled in for each port tried.
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
        all_edits.extend_from_slice(tls);
        all_edits.extend_from_slice(edits);
        for (from, to) in all_edits {
            assert!(
                config.contains(from),
                "docker/nginx.conf no longer contains {from:?}"
            );
            config = config.replace(from, to);
        }
        config
    }

    /// nginx with `config` (which listens on `addr`, and `tls_addr` if
    /// any), once it has bound its ports: it writes its pid file after
    /// binding them all. (A connection to a port would not tell: whoever
    /// took the port would answer it.)
    fn start_on(
        addr: SocketAddr,
        tls_addr: Option<SocketAddr>,
        config: &str,
    ) -> Result<Self, crate::PortTaken> {
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
            tls_addr,
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
