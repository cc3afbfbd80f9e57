//! `marquee-payments` binary: parse config, init logging, run until SIGINT/SIGTERM.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    telemetry::init_logging("info");
    let config = payments::Config::parse();
    telemetry::run_until_signal("marquee-payments", |shutdown| async move {
        payments::run(config, shutdown).await.map_err(Into::into)
    })
    .await
}
