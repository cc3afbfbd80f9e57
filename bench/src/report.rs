//! Turns the merged measurements and the audit into the report: a table on stdout, a one-line
//! `SUMMARY` for logs and scripts, and optionally the same data as JSON (`--json`).
//!
//! The tool does not describe the machine it or the cluster runs on; whoever publishes numbers
//! records that next to them (the benchmark docs say how).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::audit::AuditReport;
use crate::config::Args;
use crate::stats::{Op, Outcome, Stats};

/// Said in every report, so numbers are never quoted without their hardware.
pub const MACHINE_NOTE: &str = "marquee-bench does not measure or record the machine, the \
     cluster's configuration or the network: note them next to these numbers (see the \
     benchmark docs)";

/// One operation's row.
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    /// Machine name (`hold`, `booking`, ...).
    pub name: &'static str,
    /// Recorded calls (successes; conflicts for `hold_conflict`).
    pub count: u64,
    /// `count` per second of the measured window.
    pub ops_per_s: f64,
    /// Mean latency, ms.
    pub mean_ms: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Largest latency, ms.
    pub max_ms: f64,
    /// Failed calls by status and problem type (or transport failure).
    pub errors: BTreeMap<String, u64>,
    /// Failed calls in all.
    pub errors_total: u64,
    #[serde(skip)]
    label: &'static str,
}

/// Journey counts.
#[derive(Debug, Clone, Serialize)]
pub struct JourneyReport {
    /// Measured journeys.
    pub total: u64,
    /// Journeys per second of the measured window.
    pub per_s: f64,
    /// Seats in bookings confirmed in the window, per second.
    pub seats_booked_per_s: f64,
    /// Journeys by outcome.
    pub outcomes: BTreeMap<&'static str, u64>,
}

/// Shows of the run.
#[derive(Debug, Clone, Serialize)]
pub struct ShowsReport {
    /// Created in all (setup and refills).
    pub created: usize,
    /// Created during the run to replace sold-out shows.
    pub replaced: u64,
    /// Retired without replacement (`--on-sold-out stop`).
    pub retired: usize,
    /// Seats per show.
    pub capacity: u32,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Tool name and version.
    pub tool: String,
    /// What was driven: `gateway <url>`, `postgres <url>`, ...
    pub target: String,
    /// Seed of the random choices.
    pub seed: u64,
    /// Prefix of this run's user ids and show titles.
    pub run_tag: String,
    /// Flags (admin token omitted).
    pub config: Args,
    /// Why the run stopped.
    pub stopped_by: String,
    /// Measured window, seconds (warm-up excluded).
    pub window_s: f64,
    /// Per-operation latency and errors.
    pub operations: Vec<OpReport>,
    /// Journeys.
    pub journeys: JourneyReport,
    /// Shows.
    pub shows: ShowsReport,
    /// Audit.
    pub audit: AuditReport,
    /// CPU time per process in the window (`--cpu-pids`).
    pub cpu: Vec<crate::cpu::CpuReport>,
    /// Longest time in the window with no journey finishing (a failover's stall), ms.
    pub longest_stall_ms: u64,
    /// What the tool does not measure.
    pub note: &'static str,
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn per_s(count: u64, window_s: f64) -> f64 {
    if window_s > 0.0 {
        count as f64 / window_s
    } else {
        0.0
    }
}

/// Everything the report is made of.
pub struct Inputs {
    /// The tool's name (`marquee-bench`, `marquee-peer-bench`).
    pub tool: &'static str,
    /// What was driven ([`crate::backend::Backend::describe`]).
    pub target: String,
    /// Flags.
    pub args: Args,
    /// Seed used.
    pub seed: u64,
    /// Run tag.
    pub run_tag: String,
    /// Why the run stopped.
    pub stopped_by: String,
    /// Measured window, seconds.
    pub window_s: f64,
    /// Merged measurements.
    pub stats: Stats,
    /// Shows.
    pub shows: ShowsReport,
    /// Audit.
    pub audit: AuditReport,
    /// CPU per process.
    pub cpu: Vec<crate::cpu::CpuReport>,
    /// Longest time in the window with no journey finishing, ms.
    pub longest_stall_ms: u64,
}

impl Report {
    /// Builds the report.
    pub fn new(inputs: Inputs) -> Report {
        let Inputs {
            tool,
            target,
            args,
            seed,
            run_tag,
            stopped_by,
            window_s,
            stats,
            shows,
            audit,
            cpu,
            longest_stall_ms,
        } = inputs;
        let operations = Op::ALL
            .iter()
            .map(|&op| {
                let s = stats.op(op);
                let h = &s.latency;
                let empty = h.is_empty();
                let q = |quantile: f64| if empty { 0.0 } else { ms(h.value_at_quantile(quantile)) };
                OpReport {
                    name: op.name(),
                    label: op.label(),
                    count: h.len(),
                    ops_per_s: per_s(h.len(), window_s),
                    mean_ms: if empty { 0.0 } else { h.mean() / 1000.0 },
                    p50_ms: q(0.50),
                    p99_ms: q(0.99),
                    p999_ms: q(0.999),
                    max_ms: if empty { 0.0 } else { ms(h.max()) },
                    errors: s.errors.clone(),
                    errors_total: s.errors_total(),
                }
            })
            .collect();
        let journeys = JourneyReport {
            total: stats.journeys(),
            per_s: per_s(stats.journeys(), window_s),
            seats_booked_per_s: per_s(stats.seats_booked_total(), window_s),
            outcomes: Outcome::ALL.iter().map(|&o| (o.name(), stats.outcomes(o))).collect(),
        };
        Report {
            tool: format!("{tool} {}", env!("CARGO_PKG_VERSION")),
            target,
            seed,
            run_tag,
            config: args,
            stopped_by,
            window_s,
            operations,
            journeys,
            shows,
            audit,
            cpu,
            longest_stall_ms,
            note: MACHINE_NOTE,
        }
    }

    fn op(&self, name: &str) -> Option<&OpReport> {
        self.operations.iter().find(|o| o.name == name)
    }

    /// The human-readable report.
    pub fn table(&self) -> String {
        let c = &self.config;
        let mut out = String::new();
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{}  {}  mode {}  concurrency {}  seed {}  run {}",
            self.tool,
            self.target,
            c.mode.as_str(),
            c.concurrency,
            self.seed,
            self.run_tag
        );
        let _ = writeln!(
            out,
            "workload: {} shows of {} seats ({} rows x {}), zipf s={}, parties 1-{}, \
             confirm {}% / release {}% / abandon {}%, on sold out: {}",
            c.shows,
            self.shows.capacity,
            c.rows,
            c.seats_per_row,
            c.zipf_s,
            c.party_max,
            c.confirm_pct,
            c.release_pct,
            c.abandon_pct(),
            c.on_sold_out.as_str()
        );
        let _ = writeln!(
            out,
            "measured window {:.2} s (warm-up {} s excluded), stopped by {}",
            self.window_s, c.warmup_s, self.stopped_by
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<22}{:>10}{:>11}{:>10}{:>10}{:>10}{:>10}{:>10}",
            "operation", "count", "ops/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "errors"
        );
        for o in &self.operations {
            if o.count == 0 && o.errors_total == 0 && o.name == "create_show" {
                continue;
            }
            let _ = writeln!(
                out,
                "{:<22}{:>10}{:>11.1}{:>10.2}{:>10.2}{:>10.2}{:>10.2}{:>10}",
                o.label,
                o.count,
                o.ops_per_s,
                o.p50_ms,
                o.p99_ms,
                o.p999_ms,
                o.max_ms,
                o.errors_total
            );
        }
        let j = &self.journeys;
        let _ = writeln!(out);
        let outcomes: Vec<String> = Outcome::ALL
            .iter()
            .map(|o| format!("{} {}", o.name(), j.outcomes.get(o.name()).copied().unwrap_or(0)))
            .collect();
        let _ = writeln!(
            out,
            "journeys: {} ({:.1}/s, {:.1} seats booked/s): {}",
            j.total,
            j.per_s,
            j.seats_booked_per_s,
            outcomes.join(", ")
        );
        let _ = writeln!(
            out,
            "shows: {} created ({} replaced sold-out shows, {} retired)",
            self.shows.created, self.shows.replaced, self.shows.retired
        );
        let _ = writeln!(out, "longest stall (no journey finished): {} ms", self.longest_stall_ms);
        if !self.cpu.is_empty() {
            let _ = writeln!(out, "CPU in the window (user + system):");
            for row in &self.cpu {
                let _ = writeln!(
                    out,
                    "  {:<10} {:>8.2} s  {:>6.1}% of a core  {:>8.1} us per hold",
                    row.process, row.cpu_s, row.core_pct, row.us_per_hold
                );
            }
        }
        let errors: Vec<(&str, &String, &u64)> = self
            .operations
            .iter()
            .flat_map(|o| o.errors.iter().map(move |(k, v)| (o.name, k, v)))
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(out, "errors:");
            for (op, key, count) in errors {
                let _ = writeln!(out, "  {op:<14}{key:<40}{count:>8}");
            }
        }
        let a = &self.audit;
        let _ = writeln!(
            out,
            "audit: {} shows, {} seats sold, {} confirmed bookings ({} seats), {} acknowledged \
             to the bench, {} confirmed without acknowledgement",
            a.shows,
            a.seats_sold,
            a.confirmed_bookings,
            a.seats_in_bookings,
            a.acknowledged_bookings,
            a.confirmed_unacknowledged
        );
        if a.ok {
            let _ = writeln!(out, "AUDIT OK");
        } else {
            let _ = writeln!(
                out,
                "AUDIT FAILED: {} problem(s){}",
                a.problems_total,
                if a.problems_total > a.problems.len() {
                    format!(", first {}:", a.problems.len())
                } else {
                    ":".to_owned()
                }
            );
            for problem in &a.problems {
                let _ = writeln!(out, "  - {problem}");
            }
        }
        let _ = writeln!(out, "note: {}", self.note);
        out
    }

    /// One line for logs and scripts.
    pub fn summary(&self) -> String {
        let lat = |name: &str| {
            self.op(name).map_or_else(
                || "-".to_owned(),
                |o| format!("{:.2}/{:.2}/{:.2}ms", o.p50_ms, o.p99_ms, o.p999_ms),
            )
        };
        let rate = |name: &str| self.op(name).map_or(0.0, |o| o.ops_per_s);
        let errors: u64 = self.operations.iter().map(|o| o.errors_total).sum();
        format!(
            "SUMMARY mode={} concurrency={} window_s={:.1} journeys_per_s={:.1} \
             holds_per_s={:.1} hold_p50/p99/p99.9={} bookings_per_s={:.1} \
             booking_p50/p99/p99.9={} errors={} audit={} seed={}",
            self.config.mode.as_str(),
            self.config.concurrency,
            self.window_s,
            self.journeys.per_s,
            rate("hold"),
            lat("hold"),
            rate("booking"),
            lat("booking"),
            errors,
            if self.audit.ok { "OK" } else { "FAILED" },
            self.seed
        )
    }

    /// Writes the report as pretty JSON to `path`.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }
}
