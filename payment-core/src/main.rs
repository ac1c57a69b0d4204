use clap::{Parser, Subcommand};
use payment_core::{Application, Config, healthcheck};
use service_kit::{shutdown, telemetry};

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Healthcheck) = cli.command {
        return healthcheck::check(cli.config.listen).await;
    }
    telemetry::init(&cli.config.log_format);
    let app = Application::build(cli.config).await?;
    shutdown::cancel_on_signal(app.shutdown_token());
    app.run_until_stopped().await
}
