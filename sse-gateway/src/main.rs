//! The `sse-gateway` binary: serves the checkout, the dashboard and the
//! event streams until SIGINT or SIGTERM, or runs `healthcheck` (for
//! container health checks). Everything else lives in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use service_kit::{credentials, healthcheck, shutdown, telemetry};
use sse_gateway::{Application, Config};

#[derive(Parser)]
#[command(
    name = "sse-gateway",
    version,
    about = "Checkout page, dashboard and SSE streams of payment results"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Exit 0 if the local gateway is ready (for container health checks).
    Healthcheck,
}

/// A credential refusal is one line on stderr and exit code 78; any other
/// failure anyhow's report and 1 (`credentials::exit_code`).
fn main() -> ExitCode {
    credentials::exit_code(run())
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Healthcheck) = cli.command {
        return healthcheck::http_ok(cli.config.listen, "/readyz").await;
    }
    let telemetry = telemetry::init("sse-gateway", &cli.config.log_format)?;
    let app = Application::build(cli.config).await?;
    shutdown::cancel_on_signal(app.shutdown_token());
    let result = app.run_until_stopped().await;
    telemetry.shutdown();
    result
}
