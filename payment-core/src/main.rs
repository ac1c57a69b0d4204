//! The `payment-core` binary: parses the command line and the environment
//! (`Config`), then serves (`Application::build`, `run_until_stopped`) until
//! SIGINT or SIGTERM, or runs one of its commands: `healthcheck` (for
//! container health checks) and `api-key` (makes a key and prints its
//! configuration entry). Everything else lives in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use payment_core::{Application, Config, auth, healthcheck};
use service_kit::{credentials, shutdown, telemetry};

#[derive(Parser)]
#[command(
    name = "payment-core",
    version,
    about = "Orders, their event log and the WatchPayments stream"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC (the default).
    Serve,
    /// Exit 0 if the local server reports SERVING (for container health checks).
    Healthcheck,
    /// Make a new random API key: prints the key (give it to the client,
    /// once) and its entry for PAYMENT_CORE_API_KEYS (which holds its hash).
    ApiKey {
        /// Shown in logs for every call the key makes.
        #[arg(long)]
        name: String,
        /// Whose idempotency keys the key's orders use.
        #[arg(long)]
        merchant: String,
        /// `merchant`, `gateway`, `reader`, or several joined by `+`.
        #[arg(long)]
        roles: String,
    },
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
        Some(Command::Healthcheck) => return healthcheck::check(&cli.config).await,
        Some(Command::ApiKey {
            name,
            merchant,
            roles,
        }) => {
            let (key, entry) = auth::generate(&name, &merchant, &roles)?;
            // The one place this binary writes to stdout: its answer.
            #[allow(clippy::print_stdout)]
            {
                println!("key:   {key}\nentry: {entry}");
            }
            return Ok(());
        }
        Some(Command::Serve) | None => {}
    }
    let telemetry = telemetry::init("payment-core", &cli.config.log_format)?;
    let app = Application::build(cli.config).await?;
    shutdown::cancel_on_signal(app.shutdown_token());
    let result = app.run_until_stopped().await;
    telemetry.shutdown();
    result
}
