//! The `mock-provider` binary: serves the payment page until SIGINT or
//! SIGTERM, or runs one of its commands: `healthcheck`, and `report`, which
//! sends one signed payment result for scripts and prints the order's new
//! status. Everything else lives in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mock_provider::{
    Application,
    config::{CoreConfig, ServeConfig},
    reporter::{Outcome, Reporter},
};
use service_kit::{credentials, healthcheck, shutdown, telemetry};

#[derive(Parser)]
#[command(
    name = "mock-provider",
    version,
    about = "A stand-in payment provider: payment page and signed result reports"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    core: CoreConfig,
    #[command(flatten)]
    serve: ServeConfig,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the payment page (the default).
    Serve,
    /// Send one signed payment result to payment-core and print the order's new status.
    Report {
        /// The order id (a UUID).
        #[arg(long)]
        order: String,
        #[arg(long, value_enum)]
        outcome: Outcome,
        /// Why the payment failed or was canceled.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Exit 0 if the local payment page server answers (for container health checks).
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
    match cli.command {
        Some(Command::Healthcheck) => healthcheck::http_ok(cli.serve.listen, "/healthz").await,
        Some(Command::Report {
            order,
            outcome,
            reason,
        }) => {
            let credentials = cli.core.credentials()?;
            let (metrics, _) = mock_provider::metrics::ProviderMetrics::new();
            let reporter = Reporter::new(&cli.core, &credentials, metrics)?;
            // This is a command's answer to its user, not a service log.
            #[allow(clippy::print_stdout, clippy::print_stderr)]
            match reporter.report(&order, outcome, &reason, None).await {
                Ok((order, changed)) => {
                    let status = order.status().as_str_name();
                    println!(
                        "order {} is {status}{}",
                        order.order_id,
                        if changed {
                            ""
                        } else {
                            " (unchanged: repeated report)"
                        }
                    );
                    Ok(())
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    std::process::exit(1);
                }
            }
        }
        Some(Command::Serve) | None => {
            let telemetry = telemetry::init("mock-provider", &cli.serve.log_format)?;
            let app = Application::build(cli.core, cli.serve).await?;
            shutdown::cancel_on_signal(app.shutdown_token());
            let result = app.run_until_stopped().await;
            telemetry.shutdown();
            result
        }
    }
}
