//! `marquee-payments` binary: parse config, init logging, serve until SIGINT/SIGTERM.

use clap::Parser;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MARQUEE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = payments::Config::parse();
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signal.cancel();
    });
    match payments::run(config, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "marquee-payments failed");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            // No SIGTERM handler: Ctrl-C still stops the service.
            Err(_) => drop(ctrl_c.await),
        }
    }
    #[cfg(not(unix))]
    {
        drop(ctrl_c.await);
    }
}
