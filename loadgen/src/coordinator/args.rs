//! The flags of `loadgen run`, and the checks on them: every address must
//! be loopback (this tool must never load another host), and the numbers
//! must fit the host (a process holds at most 20,000 fds).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context, ensure};
use payments_proto::contract::dev;

use crate::target::Target;

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[arg(long, value_enum, default_value = "gateway")]
    pub target: Target,
    /// Base URL of the gateway or of nginx (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// payment-core's gRPC endpoint (gateway target; loopback only).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub core_url: String,
    /// API key for `--create-via grpc` (role `merchant`).
    #[arg(long, env = "PAYMENT_CORE_API_KEY", default_value = dev::MERCHANT_API_KEY, hide_default_value = true, hide_env_values = true)]
    pub core_api_key: String,
    /// Where reports go instead of `--core-url` (repeatable: the report
    /// channels are spread over them in turn), e.g. other replicas than the
    /// gateway's, to measure events crossing replicas.
    #[arg(long = "report-url")]
    pub report_urls: Vec<String>,
    /// Secret the provider signs reports with.
    #[arg(long, env = "PROVIDER_SECRET", default_value = dev::PROVIDER_SECRET, hide_default_value = true)]
    pub provider_secret: String,
    /// SSE connections to open.
    #[arg(long, short = 'n', default_value_t = 300)]
    pub connections: usize,
    /// Connections per order (or nchan channel); >1 is the fan-out workload.
    #[arg(long, default_value_t = 1)]
    pub watchers_per_order: usize,
    /// Results reported per second; 0 = idle run (connect, measure, close).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Report as fast as `--report-concurrency` allows instead of pacing.
    #[arg(long)]
    pub unpaced: bool,
    /// Reports in flight at most.
    #[arg(long, default_value_t = 256)]
    pub report_concurrency: usize,
    /// Attempts per report: a failed one is sent again over the next
    /// report channel (to the next `--report-url`) after 200 ms. Reports
    /// to payment-core are idempotent, so a repeat after an unknown outcome
    /// is safe (not so nchan's publishes: gateway target only). 1 for
    /// benchmarks; more for fault drills.
    #[arg(long, default_value_t = 1)]
    pub report_attempts: u32,
    /// Reconnects allowed per SSE connection before it counts as failed.
    #[arg(long, default_value_t = 5)]
    pub max_attempts: u32,
    /// gRPC (HTTP/2) connections the reports are spread over.
    #[arg(long, default_value_t = 4)]
    pub report_channels: usize,
    /// How orders are created: through the gateway's API (realistic) or gRPC.
    #[arg(long, value_enum, default_value = "api")]
    pub create_via: CreateVia,
    /// Order creations in flight.
    #[arg(long, default_value_t = 32)]
    pub create_concurrency: usize,
    /// Loopback source addresses 127.0.0.2, 127.0.0.3, ... to spread connections
    /// over (each gives ~28k ephemeral ports); 0 = enough for N, at least 4.
    #[arg(long, default_value_t = 0)]
    pub sources: u8,
    /// Most connections per worker process.
    #[arg(long, default_value_t = 15_000)]
    pub per_worker: usize,
    /// Connection set-ups in flight, over all workers.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Seconds to wait after the last connection is up before sampling memory.
    #[arg(long, default_value_t = 3)]
    pub settle_secs: u64,
    /// Extra seconds to hold idle connections (heartbeats keep flowing).
    #[arg(long, default_value_t = 0)]
    pub hold_secs: u64,
    /// Seconds to wait for outstanding terminal events after the last report.
    #[arg(long, default_value_t = 15)]
    pub drain_secs: u64,
    /// pid(s) of the server holding the SSE connections (gateway, or the nginx worker).
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// pid(s) of payment-core (repeatable: every replica of the run).
    #[arg(long = "core-pid")]
    pub core_pids: Vec<u32>,
    /// Write the summary as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Write every sample as `report_offset_ms latency_ms` lines here (for plots).
    #[arg(long)]
    pub samples: Option<std::path::PathBuf>,
    /// A name for this run in the summary.
    #[arg(long, default_value = "")]
    pub label: String,
    /// Bound on the whole run, seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// A reconnect storm once every connection is up: `--storm-stop-pid`
    /// is stopped (SIGTERM), or without it every stream is closed from this
    /// side; all of them reconnect at once, with Last-Event-ID, to
    /// `--failover-url`. The reports (if any) start at the same instant.
    #[arg(long)]
    pub storm: bool,
    /// Where connections go in a storm (default: `--url`).
    #[arg(long)]
    pub failover_url: Option<String>,
    /// The server the storm stops (a gateway holding every connection).
    #[arg(long)]
    pub storm_stop_pid: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CreateVia {
    Api,
    Grpc,
}

/// Loopback source addresses to spread the connections over: `--sources`,
/// or enough for them (each gives ~28k ephemeral ports), at least 4.
pub(super) fn source_count(args: &RunArgs) -> u8 {
    if args.sources > 0 {
        args.sources
    } else {
        (args.connections.div_ceil(20_000) + 1).clamp(4, 200) as u8
    }
}

/// Refuses anything but loopback: this tool must never load another host.
pub(super) fn loopback_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// URLs"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = authority
        .rsplit_once(':')
        .with_context(|| format!("{url}: needs an explicit port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = if host == "localhost" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse()
            .with_context(|| format!("{url}: host must be a loopback IP or localhost"))?
    };
    ensure!(
        ip.is_loopback(),
        "{url}: refusing a non-loopback target ({ip})"
    );
    Ok(SocketAddr::new(ip, port.parse().context("bad port")?))
}

/// Refuses anything but a sane loopback run; answers the SSE server's address.
pub(super) fn check_args(args: &RunArgs) -> anyhow::Result<SocketAddr> {
    let addr = loopback_addr(&args.url)?;
    if args.target == Target::Gateway {
        loopback_addr(&args.core_url)?;
        for url in report_urls(args) {
            loopback_addr(url)?;
        }
    }
    ensure!(args.connections > 0, "--connections must be > 0");
    if let Some(url) = &args.failover_url {
        loopback_addr(url)?;
    }
    ensure!(
        args.report_attempts <= 1 || args.target == Target::Gateway,
        "--report-attempts > 1 needs --target gateway: a repeated nchan publish is a second message"
    );
    ensure!(
        args.watchers_per_order > 0,
        "--watchers-per-order must be > 0"
    );
    ensure!(
        args.per_worker <= 19_000,
        "--per-worker above 19000 would pass the 20,000 fd cap of a process"
    );
    Ok(addr)
}

/// Where reports go: `--report-url`s, or the core the orders were made on.
pub(super) fn report_urls(args: &RunArgs) -> impl Iterator<Item = &str> + Clone {
    let urls: &[String] = if args.report_urls.is_empty() {
        std::slice::from_ref(&args.core_url)
    } else {
        &args.report_urls
    };
    urls.iter().map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(loopback_addr("http://127.0.0.1:8080").is_ok());
        assert!(loopback_addr("http://127.3.4.5:80/x").is_ok());
        assert!(loopback_addr("http://localhost:8080").is_ok());
        assert!(loopback_addr("http://[::1]:8080").is_ok());
        assert!(loopback_addr("http://10.0.0.1:8080").is_err());
        assert!(loopback_addr("http://192.168.1.1:8080").is_err());
        assert!(loopback_addr("http://example.com:8080").is_err());
        assert!(loopback_addr("https://127.0.0.1:8080").is_err());
    }
}
