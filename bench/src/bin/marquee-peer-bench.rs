//! `marquee-peer-bench`: runs `marquee-bench`'s journeys against one PostgreSQL or one Redis
//! instead of the gateway, for the side-by-side in docs/benchmarks.md.
//!
//! The workload, its flags and defaults, the measurements, the report and the exact audit are
//! marquee-bench's own (the `bench` library): only the system under test differs. What each
//! peer implements, and how it differs from Marquee, is in the `bench::peers` module docs.
//! `scripts/bench-peers` starts throwaway servers and runs this against each.
//!
//! ```text
//! marquee-peer-bench --peer postgres --url postgresql://postgres@127.0.0.1:55432/postgres \
//!     --mode best --concurrency 64 --duration-s 20 --warmup-s 3 --seed 7
//! marquee-peer-bench --peer redis --url redis://127.0.0.1:56379 --mode best --seed 7
//! ```
//!
//! Exit status: 0 audit passed, 1 audit failed, 2 the run could not be done (bad flags, peer
//! unreachable or not durable, setup failed).

use std::process::ExitCode;

use bench::backend::Backend;
use bench::config::Args;
use bench::peers::postgres::Postgres;
use bench::peers::redis::Redis;
use bench::runner;
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};

const TOOL: &str = "marquee-peer-bench";

/// The system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Peer {
    /// PostgreSQL: a transaction per operation, synchronous commit.
    Postgres,
    /// Redis: a Lua script per operation, AOF fsynced on every write.
    Redis,
}

/// `marquee-peer-bench`: marquee-bench's journeys on PostgreSQL or Redis.
#[derive(Debug, Parser)]
#[command(
    name = "marquee-peer-bench",
    version,
    about = "marquee-peer-bench: marquee-bench's journeys, latency percentiles and audit on \
             PostgreSQL or Redis, for the side-by-side in docs/benchmarks.md"
)]
struct PeerArgs {
    /// The peer to drive.
    #[arg(long, value_enum)]
    peer: Peer,
    /// Where it listens: `postgresql://user@host:port/db` or `redis://host:port`.
    #[arg(long)]
    url: String,
    /// Connections to the peer (PostgreSQL: a pool; Redis: multiplexed, used in turn);
    /// default: `--concurrency`, at most 64.
    #[arg(long)]
    connections: Option<usize>,
    /// marquee-bench's workload flags.
    #[command(flatten)]
    bench: Args,
}

fn main() -> ExitCode {
    let args = parse();
    let runtime = match telemetry::runtime(args.bench.worker_threads) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{TOOL}: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("{TOOL}: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The command line, with `--scenario` applied under the explicitly given flags.
fn parse() -> PeerArgs {
    // marquee-bench's gateway flags mean nothing here.
    let command = ["gateway", "admin_email", "admin_password"]
        .into_iter()
        .fold(PeerArgs::command(), |command, id| command.mut_arg(id, |a| a.hide(true)));
    let matches = command.get_matches();
    let mut args = PeerArgs::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    args.bench.apply_scenario(|id| {
        matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
    });
    args
}

async fn run(args: PeerArgs) -> anyhow::Result<bool> {
    args.bench.validate()?;
    anyhow::ensure!(args.connections != Some(0), "--connections must be positive");
    let connections = args.connections.unwrap_or(args.bench.concurrency.min(64));
    let (seed, run_tag) = runner::seed_and_tag(&args.bench, TOOL);
    // A server on this machine: its CPU time per hold is reported beside the bench's.
    let local = ["127.0.0.1", "localhost", "[::1]"].iter().any(|h| args.url.contains(h));
    let mut bench = args.bench;
    let name = match args.peer {
        Peer::Postgres => "postgres",
        Peer::Redis => "redis",
    };
    let cpu = |bench: &mut Args, pids: Vec<u32>| {
        if local {
            bench.cpu_pids.extend(pids.into_iter().map(|pid| format!("{name}={pid}")));
        }
    };
    match args.peer {
        Peer::Postgres => {
            let peer = Postgres::connect(&args.url, connections).await?;
            println!("peer: {} at {}", peer.describe(), args.url);
            cpu(&mut bench, peer.server_pids().await?);
            runner::drive(peer, bench, TOOL, seed, run_tag).await
        }
        Peer::Redis => {
            let peer = Redis::connect(&args.url, connections).await?;
            println!("peer: {} at {}", peer.describe(), args.url);
            cpu(&mut bench, peer.server_pids());
            runner::drive(peer, bench, TOOL, seed, run_tag).await
        }
    }
}
