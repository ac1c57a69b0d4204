//! Loopback ports for the tests' servers, without a race for them.
//!
//! Choosing a free port and handing its number to a server races: between
//! the choice and the server's bind, another test or process may take the
//! port, and the test then talks to a stranger or fails to start. So:
//!
//! - The workspace's services bind port 0 and report the address they got
//!   ([`crate::Process`], through `ADDRESS_FILE`).
//! - An address where nothing may answer (an unreachable replica) is held
//!   by a socket that is bound and never listens ([`refused_address`]).
//! - An address a service will be started on later, which its peers must be
//!   told first (two services that each need the other's address), is held
//!   the same way until the service binds it ([`reserve_address`]).
//! - Programs that cannot report the port they bound (nginx, PostgreSQL,
//!   chromedriver, Prometheus) still get a port chosen free, and are
//!   started again on another one when theirs was taken in the meantime
//!   ([`on_a_free_port`], [`on_free_ports`] for several). That is the only
//!   use of a port chosen free.
//!
//! What the reservations rely on (Linux's bind rules): connecting to a port
//! bound by a socket that does not listen is refused (RST); the kernel
//! never hands out a bound port for another bind to port 0 or for an
//! outgoing connection; and an explicit bind of the same address fails,
//! unless both sockets set `SO_REUSEADDR` and neither listens. std, tokio
//! and mio set `SO_REUSEADDR` on every listener they bind, so a service can
//! bind the address a [`reserve_address`] guard holds, and none can bind
//! the one a [`refused_address`] guard holds.

use std::{
    io,
    net::{SocketAddr, TcpListener},
    path::Path,
    process::Child,
    time::{Duration, Instant},
};

use tokio::net::TcpSocket;

/// How many free ports an external program is tried on before the test
/// gives up: a port taken between the choice and the bind is rare, twice
/// in a row rarer still.
const PORT_ATTEMPTS: usize = 3;

/// A loopback address held by a bound socket that never listens; released
/// when dropped.
#[derive(Debug)]
pub struct ReservedAddress {
    pub addr: SocketAddr,
    _socket: TcpSocket,
}

/// An address where connections are refused at once, as with a replica
/// that is down, and which nothing else can bind while the guard lives.
pub fn refused_address() -> ReservedAddress {
    reserve(SocketAddr::from(([127, 0, 0, 1], 0)), false).expect("a loopback socket binds port 0")
}

/// An address for a service the test starts later, on this address
/// explicitly: refused until then, and never given to anyone binding port 0
/// meanwhile. The service can bind it while the guard lives.
pub fn reserve_address() -> ReservedAddress {
    reserve(SocketAddr::from(([127, 0, 0, 1], 0)), true).expect("a loopback socket binds port 0")
}

/// [`reserve_address`] of a given address: one a killed service held, kept
/// for its restart. Fails while something still listens there.
pub fn reserve_address_at(addr: SocketAddr) -> io::Result<ReservedAddress> {
    reserve(addr, true)
}

fn reserve(addr: SocketAddr, shareable: bool) -> io::Result<ReservedAddress> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(shareable)?;
    socket.bind(addr)?;
    Ok(ReservedAddress {
        addr: socket.local_addr()?,
        _socket: socket,
    })
}

/// What an external program wrote before it exited because its port was
/// taken: [`on_a_free_port`] tries it on another.
#[derive(Debug)]
pub struct PortTaken(pub String);

impl PortTaken {
    /// `Some` when `output` says the port was in use: the words of nginx,
    /// PostgreSQL, chromedriver and Prometheus (Go) all contain these.
    pub fn in_output(output: &str) -> Option<Self> {
        output
            .to_ascii_lowercase()
            .contains("address already in use")
            .then(|| Self(output.to_owned()))
    }
}

/// Runs `start` on a port that was free a moment ago; if the program found
/// it taken, on another, at most [`PORT_ATTEMPTS`] times. For programs
/// that cannot bind port 0 and report what they bound.
pub fn on_a_free_port<T>(what: &str, mut start: impl FnMut(u16) -> Result<T, PortTaken>) -> T {
    on_free_ports(what, |[port]| start(port))
}

/// [`on_a_free_port`] for a program that listens on `N` ports (nginx with
/// its TLS listener beside the plain one): `N` different ports, all chosen
/// anew on each attempt, since the program does not say which was taken.
pub fn on_free_ports<const N: usize, T>(
    what: &str,
    mut start: impl FnMut([u16; N]) -> Result<T, PortTaken>,
) -> T {
    let mut taken = Vec::new();
    for _ in 0..PORT_ATTEMPTS {
        match start(free_ports()) {
            Ok(started) => return started,
            Err(PortTaken(output)) => taken.push(output),
        }
    }
    panic!("{what}: a port was taken on each of {PORT_ATTEMPTS} attempts:\n{taken:#?}")
}

/// `N` ports nothing was bound to a moment ago. Only [`on_free_ports`]
/// uses them: anything else would race for them. The listeners are held
/// until all are bound, so that the kernel hands out `N` different ports.
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: [TcpListener; N] = std::array::from_fn(|_| {
        TcpListener::bind("127.0.0.1:0").expect("a loopback listener binds port 0")
    });
    listeners.map(|listener| {
        listener
            .local_addr()
            .expect("a bound listener has an address")
            .port()
    })
}

/// Waits, at most `bound`, until `ready` says the external program `child`
/// serves. If it exits first, it failed: [`PortTaken`] when its output
/// (`log`) says its port was in use, a failed test otherwise.
///
/// `ready` must be a sign of the program itself (a line it writes once its
/// port is bound, a file it creates after binding), not a connection to the
/// port: another process holding the port would answer that.
pub fn wait_until_ready(
    what: &str,
    child: &mut Child,
    log: &Path,
    bound: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), PortTaken> {
    let deadline = Instant::now() + bound;
    loop {
        if ready() {
            return Ok(());
        }
        let read_log = || std::fs::read_to_string(log).unwrap_or_default();
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            let output = read_log();
            return match PortTaken::in_output(&output) {
                Some(taken) => Err(taken),
                None => panic!("{what} exited ({status}):\n{output}"),
            };
        }
        assert!(
            Instant::now() < deadline,
            "{what} is not ready after {bound:?}:\n{}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use std::{io::ErrorKind, net::TcpStream};

    use super::*;

    fn refused(addr: SocketAddr) -> bool {
        TcpStream::connect(addr).is_err_and(|error| error.kind() == ErrorKind::ConnectionRefused)
    }

    #[test]
    fn a_refused_address_refuses_connections_and_cannot_be_bound() {
        let guard = refused_address();
        assert!(refused(guard.addr));
        // std sets SO_REUSEADDR, as every listener of ours does.
        let bind = TcpListener::bind(guard.addr);
        assert!(bind.is_err_and(|error| error.kind() == ErrorKind::AddrInUse));
    }

    #[test]
    fn a_reserved_address_is_refused_until_a_service_binds_it_under_the_guard() {
        let reserved = reserve_address();
        assert!(refused(reserved.addr));
        let service = TcpListener::bind(reserved.addr).expect("the service binds it");
        let _client = TcpStream::connect(reserved.addr).expect("the service accepts");
        let (_, peer) = service.accept().expect("accepted by the service");
        assert_eq!(peer.ip(), reserved.addr.ip());
    }

    #[test]
    fn a_port_taken_is_told_from_other_failures() {
        let nginx = "nginx: [emerg] bind() to 127.0.0.1:8080 failed (98: Address already in use)";
        assert!(PortTaken::in_output(nginx).is_some());
        assert!(PortTaken::in_output("listen tcp :9090: bind: address already in use").is_some());
        assert!(PortTaken::in_output("FATAL: data directory has wrong ownership").is_none());
    }
}
