//! Process plumbing every Marquee binary shares, so the node, the gateway and the payment
//! service log the same way and stop the same way.
//!
//! - [`init_logging`]: `MARQUEE_LOG` is the filter (tracing's `EnvFilter` syntax);
//!   `MARQUEE_LOG_FORMAT=json` switches to one JSON object per line (with the current span's
//!   fields, e.g. the gateway's `request_id`) for log shippers; the default is human text.
//! - [`run_until_signal`]: runs a server future with a [`CancellationToken`] that SIGINT or
//!   SIGTERM cancels, and turns its result into an exit code.
//! - [`runtime`]: the process's tokio runtime with a chosen number of worker threads: several
//!   processes on a small machine each sized to every CPU spend their time switching threads.

use std::future::Future;

use tokio_util::sync::CancellationToken;

/// A multi-threaded tokio runtime with `worker_threads` workers (0: one per CPU).
///
/// # Errors
/// The operating system refused the threads.
pub fn runtime(worker_threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if worker_threads > 0 {
        builder.worker_threads(worker_threads);
    }
    builder.build()
}

/// Installs the global tracing subscriber. `default_filter` applies when `MARQUEE_LOG` is unset.
pub fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MARQUEE_LOG")
        .unwrap_or_else(|_| default_filter.into());
    let json = std::env::var("MARQUEE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    // Colour only on a terminal: escape codes in log files break grep and log shippers.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    if json {
        builder.json().with_current_span(true).with_span_list(false).init();
    } else {
        builder.init();
    }
}

/// Runs `serve(shutdown)` until it returns; SIGINT or SIGTERM cancel `shutdown`. Logs a failure
/// (with its cause chain) under `name` and maps it to a failing exit code.
pub async fn run_until_signal<F, Fut>(name: &str, serve: F) -> std::process::ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>,
{
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signal.cancel();
    });
    match serve(shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let mut cause = e.to_string();
            let mut source = e.source();
            while let Some(inner) = source {
                cause.push_str(": ");
                cause.push_str(&inner.to_string());
                source = inner.source();
            }
            tracing::error!(error = %cause, "{name} failed");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or (on Unix) SIGTERM.
pub async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_runtime_has_the_workers_asked_for() {
        assert_eq!(super::runtime(1).unwrap().metrics().num_workers(), 1);
        assert_eq!(super::runtime(3).unwrap().metrics().num_workers(), 3);
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        assert_eq!(super::runtime(0).unwrap().metrics().num_workers(), cpus, "0: one per CPU");
    }
}
