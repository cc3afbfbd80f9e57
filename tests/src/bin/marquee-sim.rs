//! `marquee-sim`: the deterministic whole-cluster simulator (docs/reliability.md,
//! "Deterministic simulation"). Runs seeds, checks each run's history, prints one line per
//! failing seed with the command that replays it, and a summary; exits 1 if any seed failed.

use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use tests::sim::{run_seed, SimConfig};

#[derive(Parser, Debug)]
#[command(about = "Deterministic simulation of a Marquee cluster under seeded faults")]
struct Args {
    /// Run this one seed (replay).
    #[arg(long)]
    seed: Option<u64>,
    /// Run this many seeds, starting at --first-seed.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// First seed of the range.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Stop after this many wall-clock seconds (0: no limit), whatever --seeds says.
    #[arg(long, default_value_t = 0)]
    time_limit_s: u64,
    /// Nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Simulated seconds of traffic per seed.
    #[arg(long, default_value_t = 30)]
    duration_s: u64,
    /// No faults (a clean network and disks).
    #[arg(long)]
    no_faults: bool,
    /// Plant a bug in the state machine: holds expire up to 3 s early (the simulator's self-test).
    #[arg(long)]
    plant_bug: bool,
    /// Run every seed twice and fail if the two runs differ (determinism check).
    #[arg(long)]
    twice: bool,
    /// Print the verdict of every seed, not only failures.
    #[arg(long)]
    verbose: bool,
    /// With --seed: write the run's history.jsonl, final.json and report.json here (re-check
    /// with `marquee-chaos check`).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cfg = SimConfig {
        nodes: args.nodes,
        clients: args.clients,
        duration_s: args.duration_s,
        faults: !args.no_faults,
        plant_bug: args.plant_bug,
        ..SimConfig::default()
    };
    anyhow::ensure!((1..=7).contains(&cfg.nodes), "--nodes must be 1..=7");
    anyhow::ensure!(cfg.duration_s <= 3_600, "--duration-s is at most 3600");
    let seeds: Vec<u64> = match args.seed {
        Some(seed) => vec![seed],
        None => (args.first_seed..args.first_seed.saturating_add(args.seeds)).collect(),
    };
    let started = Instant::now();
    let (mut ran, mut failed) = (0u64, Vec::new());
    let mut totals = std::collections::BTreeMap::<String, u64>::new();
    let mut faults = 0usize;
    let mut snapshots = 0u64;
    for seed in seeds {
        if args.time_limit_s > 0 && started.elapsed().as_secs() >= args.time_limit_s {
            break;
        }
        let report = run_seed(seed, &cfg)?;
        ran += 1;
        if let (Some(out), Some(_)) = (&args.out, args.seed) {
            std::fs::create_dir_all(out)?;
            tests::chaos::history::write(&out.join("history.jsonl"), &report.history)?;
            std::fs::write(
                out.join("final.json"),
                serde_json::to_vec_pretty(&report.final_state)?,
            )?;
            std::fs::write(out.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
        }
        faults += report.verdict.faults.len();
        snapshots += report.snapshots_installed;
        for (name, count) in &report.verdict.counts {
            *totals.entry(name.clone()).or_default() += count;
        }
        let mut problem = report.error.clone();
        if problem.is_none() && !report.verdict.valid() {
            let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
            for anomaly in &report.verdict.anomalies {
                *kinds.entry(anomaly.kind.as_str()).or_default() += 1;
            }
            let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            problem = Some(format!("anomalies: {}", kinds.join(", ")));
        }
        if args.twice && problem.is_none() {
            let again = run_seed(seed, &cfg)?;
            if again.trace != report.trace {
                problem = Some(format!(
                    "not deterministic: trace {:016x} then {:016x}",
                    report.trace, again.trace
                ));
            }
        }
        if args.verbose || problem.is_some() {
            println!(
                "seed {seed}: {} ({} faults, {:.0} simulated s, trace {:016x})",
                problem.as_deref().unwrap_or("valid"),
                report.verdict.faults.len(),
                report.simulated_s,
                report.trace
            );
        }
        if let Some(problem) = problem {
            for anomaly in report.verdict.anomalies.iter().take(3) {
                println!("  {}: {}", anomaly.kind, anomaly.detail);
            }
            println!("  replay: {}", replay(seed, &args));
            failed.push((seed, problem));
        }
    }
    let counts: Vec<String> = totals.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "marquee-sim: {ran} seeds in {:.1} s, {} failed; {faults} faults injected, \
         {snapshots} snapshots installed; {}",
        started.elapsed().as_secs_f64(),
        failed.len(),
        counts.join(", ")
    );
    if failed.is_empty() {
        Ok(())
    } else {
        std::process::exit(1)
    }
}

fn replay(seed: u64, args: &Args) -> String {
    let mut command = format!(
        "scripts/simulate --seed {seed} --nodes {} --clients {} --duration-s {}",
        args.nodes, args.clients, args.duration_s
    );
    if args.no_faults {
        command.push_str(" --no-faults");
    }
    if args.plant_bug {
        command.push_str(" --plant-bug");
    }
    command
}
