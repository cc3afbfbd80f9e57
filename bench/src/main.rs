//! `marquee-bench`: drives a Marquee gateway the way users do and reports throughput, latency
//! percentiles (p50/p99/p99.9) of holds and bookings, and an audit that no seat was oversold
//! or lost.
//!
//! It creates its own shows (setup, not timed), then runs `--concurrency` closed-loop workers,
//! each doing one user journey at a time: pick a show by Zipf popularity, hold 1-4 adjacent
//! seats, then pay (most), release (some) or abandon the hold (the rest). At the end it checks
//! every show: seats sold == seats in confirmed bookings, every acknowledged booking present
//! with its seats, no seat booked twice; `AUDIT OK`, or `AUDIT FAILED: ...` and exit status 1.
//! When a show sells out it is replaced by a fresh one (`--on-sold-out replace`, the default)
//! or retired, the run stopping once all are (`--on-sold-out stop`).
//!
//! The tool does not record the machine it or the cluster runs on; the benchmark docs do.
//!
//! Examples (the gateway must be running; see `--help` for every flag):
//!
//! ```text
//! # 30 s measured after a 2 s warm-up, 64 workers, 50 shows, random seed (printed)
//! cargo run --release -p bench -- --gateway http://127.0.0.1:8080
//!
//! # a quick smoke run
//! marquee-bench --duration-s 5 --concurrency 8 --shows 5
//!
//! # reproducible, bounded by a journey count, best-available seats, JSON report
//! marquee-bench --seed 42 --journeys 20000 --duration-s 120 --mode best --json bench.json
//!
//! # a hot sale: one popular show, everyone pays, stop when it sells out
//! marquee-bench --shows 1 --confirm-pct 100 --release-pct 0 --on-sold-out stop
//!
//! # release day: a 40 000-seat stadium, 1 000 clients from the moment sales open; the
//! # report's window is the time to sell out (docs/benchmarks.md, "Flash sale")
//! marquee-bench --scenario flash-sale --seed 7
//! ```
//!
//! Exit status: 0 audit passed, 1 audit failed, 2 the run could not be done (bad flags,
//! gateway unreachable, setup failed).

use std::process::ExitCode;

use bench::{config, runner};

fn main() -> ExitCode {
    let args = config::Args::from_command_line();
    let runtime = match telemetry::runtime(args.worker_threads) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("marquee-bench: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(runner::run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("marquee-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}
