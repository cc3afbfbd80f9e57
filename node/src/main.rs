//! `marquee-node` binary: parse config, init logging, run until SIGINT/SIGTERM.

use clap::Parser;

fn main() -> std::process::ExitCode {
    telemetry::init_logging("info,openraft=warn");
    let config = node::Config::parse();
    let runtime = match telemetry::runtime(config.worker_threads) {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "marquee-node could not start its runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(telemetry::run_until_signal("marquee-node", |shutdown| async move {
        node::run(config, shutdown).await.map_err(Into::into)
    }))
}
