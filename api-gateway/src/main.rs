//! `marquee-gateway` binary: parse config, init logging, run until SIGINT/SIGTERM.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    telemetry::init_logging("info,openraft=warn");
    let config = api_gateway::Config::parse();
    telemetry::run_until_signal("marquee-gateway", |shutdown| async move {
        api_gateway::run(config, shutdown).await.map_err(Into::into)
    })
    .await
}
