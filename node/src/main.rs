//! `marquee-node` binary: parse config, init logging, run until SIGINT/SIGTERM.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    telemetry::init_logging("info,openraft=warn");
    let config = node::Config::parse();
    telemetry::run_until_signal("marquee-node", |shutdown| async move {
        node::run(config, shutdown).await.map_err(Into::into)
    })
    .await
}
