//! The one place that listens for SIGINT and SIGTERM. It cancels a token;
//! every long-lived task and stream holds a child of it and ends when it fires.

use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGINT or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received");
        token.cancel();
    });
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Runs `server` to completion, but once `shutdown` fires gives it at most
/// `grace` to drain: a client that never closes cannot hold the process.
pub async fn serve_with_bounded_drain<E>(
    server: impl std::future::Future<Output = Result<(), E>>,
    shutdown: &CancellationToken,
    grace: std::time::Duration,
) -> Result<(), E> {
    let drain_deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result,
        () = drain_deadline => {
            tracing::warn!(?grace, "drain took longer than the grace period; closing anyway");
            Ok(())
        }
    }
}
