//! One benchmark run from start to end: check the gateway, set up the shows (not timed), run
//! the warm-up and the measured window with the closed-loop workers, audit, report.
//!
//! Kept apart from `main` so the phases and their order read in one place.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rand::Rng;

use crate::api::Api;
use crate::audit::audit;
use crate::backend::Backend;
use crate::config::Args;
use crate::report::{Inputs, Report, ShowsReport};
use crate::shows::Shows;
use crate::stats::Stats;
use crate::workload::{worker, Run};

/// How long to wait for the gateway's `/readyz` before giving up.
const READY_WAIT: Duration = Duration::from_secs(15);
/// How often the stall watcher looks at the finished-journey count.
const STALL_SAMPLE: Duration = Duration::from_millis(20);
/// Period of the progress line on stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// A tag unique to this run (clock and OS randomness, never the seed): two runs with the same
/// seed against the same cluster must not share user ids or idempotency keys.
fn run_tag() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mixed = rand::rng().random::<u32>() ^ nanos;
    format!("b{mixed:08x}")
}

async fn wait_ready(api: &Api, gateway: &str) -> anyhow::Result<()> {
    let until = Instant::now() + READY_WAIT;
    loop {
        let failure = match api.ready().await.result {
            Ok(_) => return Ok(()),
            Err(failure) => failure,
        };
        if Instant::now() >= until {
            anyhow::bail!("gateway {gateway} is not ready after {READY_WAIT:?}: {failure}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The run's seed (`--seed` or random) and tag, printed so the run can be repeated.
pub fn seed_and_tag(args: &Args, tool: &str) -> (u64, String) {
    let seed = args.seed.unwrap_or_else(|| rand::rng().random());
    let run_tag = run_tag();
    println!("{tool}: seed {seed} (repeat with --seed {seed}), run tag {run_tag}");
    (seed, run_tag)
}

/// Runs the benchmark against the gateway; `Ok(true)` when the audit passed.
///
/// # Errors
/// Invalid flags, an unreachable gateway, setup failures, an unwritable `--json` path.
pub async fn run(args: Args) -> anyhow::Result<bool> {
    args.validate()?;
    anyhow::ensure!(
        args.gateway.starts_with("http://"),
        "--gateway must be an http:// URL (the bench speaks plain HTTP only)"
    );
    let (seed, run_tag) = seed_and_tag(&args, "marquee-bench");
    let timeout = Duration::from_millis(args.timeout_ms);
    let mut api = Api::new(&args.gateway, args.concurrency, timeout)?;
    wait_ready(&api, &args.gateway).await?;
    api.sign_in_admin(&args.admin_email, &args.admin_password).await?;
    drive(api, args, "marquee-bench", seed, run_tag).await
}

/// Runs the benchmark against a ready `backend` (flags already validated): shows, accounts,
/// warm-up and measured window, audit, report. `Ok(true)` when the audit passed.
///
/// # Errors
/// Setup failures, an unwritable `--json` path.
pub async fn drive<B: Backend>(
    api: B,
    args: Args,
    tool: &'static str,
    seed: u64,
    run_tag: String,
) -> anyhow::Result<bool> {
    let setup_started = Instant::now();
    let shows = Shows::create(&api, &args, &run_tag).await.context("setup")?;
    println!(
        "setup: {} shows of {} seats created in {:.1} s (not measured)",
        args.shows,
        shows.capacity(),
        setup_started.elapsed().as_secs_f64()
    );
    println!(
        "running: warm-up {} s, then up to {} s{} with {} closed-loop workers",
        args.warmup_s,
        args.duration_s,
        args.journeys.map(|n| format!(" or {n} journeys")).unwrap_or_default(),
        args.concurrency
    );

    let accounts_started = Instant::now();
    let tokens = api
        .accounts(args.concurrency * args.accounts_per_worker, &run_tag)
        .await
        .context("making the bench's accounts")?;
    println!(
        "setup: {} customer accounts ready in {:.1} s (not measured)",
        tokens.len(),
        accounts_started.elapsed().as_secs_f64()
    );
    let concurrency = args.concurrency;
    let cpu_targets = crate::cpu::targets(&args.cpu_pids)?;
    let run = Arc::new(Run::new(api.clone(), args, shows, tokens, run_tag, Instant::now()));
    // CPU times when the measured window opens (after the warm-up).
    let cpu_start = {
        let targets = cpu_targets.clone();
        let opens = run.measure_start;
        tokio::spawn(async move {
            tokio::time::sleep_until(opens.into()).await;
            crate::cpu::sample(&targets)
        })
    };
    let workers: Vec<_> =
        (0..concurrency).map(|index| tokio::spawn(worker(Arc::clone(&run), index, seed))).collect();
    let interrupt = tokio::spawn(stop_on_ctrl_c(Arc::clone(&run)));
    let progress = tokio::spawn(progress(Arc::clone(&run)));
    let longest_stall = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stall_watch = tokio::spawn(watch_stalls(Arc::clone(&run), Arc::clone(&longest_stall)));

    let mut stats = Stats::new();
    let mut acked = Vec::new();
    let mut lost_workers = 0;
    for handle in workers {
        match handle.await {
            Ok(output) => {
                stats.merge(&output.stats);
                acked.extend(output.acked);
            }
            Err(e) => {
                lost_workers += 1;
                eprintln!("{tool}: a worker failed: {e}");
            }
        }
    }
    let ended = Instant::now();
    let cpu_end = crate::cpu::sample(&cpu_targets);
    progress.abort();
    stall_watch.abort();
    let longest_stall_ms = longest_stall.load(Ordering::Relaxed);
    let window_s = ended.saturating_duration_since(run.measure_start).as_secs_f64();
    let stopped_by = if run.stop.load(Ordering::Relaxed) {
        if run.shows.all_retired() {
            "every show sold out".to_owned()
        } else {
            "interrupt".to_owned()
        }
    } else if ended >= run.deadline {
        "duration".to_owned()
    } else {
        "journey count".to_owned()
    };
    if lost_workers > 0 {
        anyhow::bail!("{lost_workers} workers failed; no report");
    }

    if window_s == 0.0 {
        eprintln!("{tool}: the run ended during the warm-up; nothing was measured");
    }
    let show_ids = run.shows.all_ids();
    println!("auditing {} shows and {} acknowledged bookings...", show_ids.len(), acked.len());
    let audit = audit(&api, &show_ids, &acked).await;
    interrupt.abort();

    let shows = ShowsReport {
        created: show_ids.len(),
        replaced: run.shows.replaced(),
        retired: run.shows.retired(),
        capacity: run.shows.capacity(),
    };
    let holds = stats.op(crate::stats::Op::Hold).latency.len();
    let cpu = match cpu_start.await {
        Ok(start) => crate::cpu::report(&start, &cpu_end, &cpu_targets, window_s, holds),
        Err(_) => Vec::new(),
    };
    let report = Report::new(Inputs {
        tool,
        target: api.describe(),
        args: run.args.clone(),
        seed,
        run_tag: run.run_tag.clone(),
        stopped_by,
        window_s,
        stats,
        shows,
        audit,
        cpu,
        longest_stall_ms,
    });
    print!("{}", report.table());
    println!("{}", report.summary());
    if let Some(path) = &run.args.json {
        report.write_json(path)?;
        println!("report written to {}", path.display());
    }
    Ok(report.audit.ok)
}

/// First Ctrl-C: stop starting journeys, then audit and report. Second: exit at once.
async fn stop_on_ctrl_c<B: Backend>(run: Arc<Run<B>>) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    eprintln!("marquee-bench: interrupted; finishing journeys in flight, then audit (Ctrl-C again to quit)");
    run.stop.store(true, Ordering::Relaxed);
    if tokio::signal::ctrl_c().await.is_ok() {
        std::process::exit(130);
    }
}

/// Records the longest time in the measured window during which no journey finished (a
/// leader failover shows up here).
async fn watch_stalls<B: Backend>(run: Arc<Run<B>>, longest_ms: Arc<std::sync::atomic::AtomicU64>) {
    tokio::time::sleep_until(run.measure_start.into()).await;
    let mut last = run.finished.load(Ordering::Relaxed);
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(STALL_SAMPLE).await;
        let now = run.finished.load(Ordering::Relaxed);
        if now != last {
            last = now;
            since = Instant::now();
        } else {
            let stalled = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
            longest_ms.fetch_max(stalled, Ordering::Relaxed);
        }
    }
}

/// A progress line on stderr every few seconds.
async fn progress<B: Backend>(run: Arc<Run<B>>) {
    let started = Instant::now();
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        let now = Instant::now();
        let elapsed = now.duration_since(started).as_secs_f64();
        if now < run.measure_start {
            eprintln!("[{elapsed:6.1}s] warming up");
            continue;
        }
        let measured = now.duration_since(run.measure_start).as_secs_f64();
        let finished = run.finished.load(Ordering::Relaxed);
        let rate = if measured > 0.0 { finished as f64 / measured } else { 0.0 };
        eprintln!(
            "[{elapsed:6.1}s] {finished} journeys ({rate:.0}/s), {} failed",
            run.failed.load(Ordering::Relaxed)
        );
    }
}
