//! Command-line flags of `marquee-bench` and their validation.
//!
//! Every knob of the workload is a flag (a few also read the environment) so that a run is
//! reproducible from its printed configuration and seed.

use std::path::PathBuf;

use anyhow::ensure;
use clap::{Parser, ValueEnum};
use serde::Serialize;

// The cluster's bounds, from the one place both the gateway and the state machines read them.
use proto::limits::{
    HOLD_TTL_MS_MAX as TTL_MS_MAX, HOLD_TTL_MS_MIN as TTL_MS_MIN, PARTY_SIZE_MAX, ROW_SEATS_MAX,
    SHOW_SEATS_MAX,
};
/// Rows a layout may have.
const ROWS_MAX: u32 = proto::limits::ROWS_MAX as u32;

/// How a journey chooses its seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Read the seat map (fast read), pick adjacent available seats in one row, hold them.
    Adjacent,
    /// Ask the gateway for the best `quantity` seats of a category.
    Best,
}

impl Mode {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Adjacent => "adjacent",
            Mode::Best => "best",
        }
    }
}

/// The seat layout of the shows the bench creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayoutKind {
    /// A cinema: `standard` and `premium` rows, two aisles a row.
    Cinema,
    /// A stadium: `floor`, `lower` and `upper` sections, an aisle every 25 seats.
    Stadium,
}

/// Presets that set several flags at once (flags given explicitly still win).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// The flags as given.
    Steady,
    /// Release day for one show: a 40 000-seat stadium (200 rows x 200 seats), 1 000
    /// concurrent clients racing for best-available seats from the moment sales open, no
    /// warm-up, until the show sells out; every hold is paid for. The report's window is the
    /// time to sell out.
    FlashSale,
}

/// What happens when a show (nearly) sells out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnSoldOut {
    /// Create a fresh show in the sold-out show's popularity rank; the run goes on.
    Replace,
    /// Retire the show; when every show is retired the run stops early.
    Stop,
}

impl OnSoldOut {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            OnSoldOut::Replace => "replace",
            OnSoldOut::Stop => "stop",
        }
    }
}

/// `marquee-bench`: drives a Marquee gateway like users do and reports latency percentiles.
#[derive(Debug, Clone, Parser, Serialize)]
#[command(name = "marquee-bench", version, about)]
pub struct Args {
    /// Base URL of the gateway (plain http).
    #[arg(long, env = "MARQUEE_BENCH_GATEWAY", default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// Email of an admin account (setup and audit), e.g. the one `scripts/marquee-dev` makes.
    #[arg(long, env = "MARQUEE_ADMIN_EMAIL", default_value = "admin@marquee.local")]
    #[serde(skip)]
    pub admin_email: String,
    /// Its password.
    #[arg(
        long,
        env = "MARQUEE_ADMIN_PASSWORD",
        default_value = "marquee-admin",
        hide_env_values = true
    )]
    #[serde(skip)]
    pub admin_password: String,
    /// Customer accounts registered per worker before the run (not measured); a worker's
    /// journeys use them in turn, since an account may hold at most 2 holds per show.
    #[arg(long, default_value_t = 8)]
    pub accounts_per_worker: usize,
    /// Shows created at setup; journeys pick among them with Zipf popularity.
    #[arg(long, default_value_t = 50)]
    pub shows: usize,
    /// Rows per show (labels A, B, ..., Z, AA, ...).
    #[arg(long, default_value_t = 20)]
    pub rows: u32,
    /// Seats per row (aisles after a quarter and three quarters of the row).
    #[arg(long, default_value_t = 30)]
    pub seats_per_row: u32,
    /// Closed-loop concurrency: this many tasks, each running one user journey at a time.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Measured duration in seconds (after the warm-up). The run stops at this or at
    /// `--journeys`, whichever comes first.
    #[arg(long, default_value_t = 30.0)]
    pub duration_s: f64,
    /// Measured journeys to run (after the warm-up); unlimited if absent.
    #[arg(long)]
    pub journeys: Option<u64>,
    /// Warm-up in seconds: journeys started in it run normally but are not measured.
    #[arg(long, default_value_t = 2.0)]
    pub warmup_s: f64,
    /// Zipf exponent of show popularity (0 = uniform; higher = hotter head).
    #[arg(long, default_value_t = 1.1)]
    pub zipf_s: f64,
    /// Percent of holds that are paid for (`POST /v1/bookings`).
    #[arg(long, default_value_t = 80)]
    pub confirm_pct: u32,
    /// Percent of holds that are released (`DELETE /v1/holds/{id}`); the rest are abandoned.
    #[arg(long, default_value_t = 10)]
    pub release_pct: u32,
    /// `ttl_ms` of the holds the journey will abandon, so they expire soon (1000..=7200000).
    /// Holds that are confirmed or released use the cluster's default TTL.
    #[arg(long, default_value_t = 60_000)]
    pub abandon_ttl_ms: u64,
    /// Largest party; party sizes are uniform in 1..=party-max.
    #[arg(long, default_value_t = 4)]
    pub party_max: u32,
    /// Hold attempts per journey in adjacent mode: after a 409 the user re-reads the seat map
    /// and picks again, up to this many attempts in all.
    #[arg(long, default_value_t = 3)]
    pub hold_attempts: u32,
    /// How seats are chosen.
    #[arg(long, value_enum, default_value_t = Mode::Adjacent)]
    pub mode: Mode,
    /// What to do when a show sells out.
    #[arg(long, value_enum, default_value_t = OnSoldOut::Replace)]
    pub on_sold_out: OnSoldOut,
    /// Seed of every random choice (shows, party sizes, seats, outcomes); random if absent.
    #[arg(long, env = "MARQUEE_SEED")]
    pub seed: Option<u64>,
    /// Also write the report as JSON to this path.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Sandbox payment token used for bookings.
    #[arg(long, default_value = "tok_success")]
    pub payment_token: String,
    /// Per-request timeout in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Layout of the shows created.
    #[arg(long, value_enum, default_value_t = LayoutKind::Cinema)]
    pub layout: LayoutKind,
    /// Processes whose CPU time to report per hold, as `name=pid,...` (e.g. the gateway and
    /// the nodes, on the same machine); the bench always reports its own.
    #[arg(long, value_delimiter = ',')]
    pub cpu_pids: Vec<String>,
    /// Tokio worker threads of the load generator (0 = one per CPU, the default). Measured
    /// beside a co-located cluster, one worker was slower at 64 clients (docs/benchmarks.md,
    /// "Where the targets stand"); fewer or more workers suit a bench on its own machine.
    #[arg(long, env = "MARQUEE_BENCH_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,
    /// A preset of flags (see `--help`); explicit flags override it.
    #[arg(long, value_enum, default_value_t = Scenario::Steady)]
    pub scenario: Scenario,
}

impl Args {
    /// Parses the command line, applying `--scenario` under the explicitly given flags.
    pub fn from_command_line() -> Args {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Args::command().get_matches();
        let mut args = match Args::from_arg_matches(&matches) {
            Ok(args) => args,
            Err(e) => e.exit(),
        };
        let explicit =
            |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        args.apply_scenario(explicit);
        args
    }

    /// Sets the flags of `--scenario` that `explicit` says were not given.
    pub fn apply_scenario(&mut self, explicit: impl Fn(&str) -> bool) {
        if self.scenario != Scenario::FlashSale {
            return;
        }
        macro_rules! preset {
            ($field:ident, $value:expr) => {
                if !explicit(stringify!($field)) {
                    self.$field = $value;
                }
            };
        }
        preset!(shows, 1);
        preset!(rows, 200);
        preset!(seats_per_row, 200);
        preset!(layout, LayoutKind::Stadium);
        preset!(concurrency, 1_000);
        preset!(accounts_per_worker, 1);
        preset!(mode, Mode::Best);
        preset!(on_sold_out, OnSoldOut::Stop);
        preset!(zipf_s, 0.0);
        preset!(warmup_s, 0.0);
        preset!(duration_s, 600.0);
        preset!(confirm_pct, 100);
        preset!(release_pct, 0);
    }

    /// Checks the workload flags against each other and against the gateway's limits (the
    /// gateway URL is `runner::run`'s to check: other targets have no gateway).
    ///
    /// # Errors
    /// A flag out of range, with a message naming it.
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.shows >= 1, "--shows must be at least 1");
        ensure!((1..=ROWS_MAX).contains(&self.rows), "--rows must be 1..={ROWS_MAX}");
        ensure!(
            (1..=ROW_SEATS_MAX).contains(&self.seats_per_row),
            "--seats-per-row must be 1..={ROW_SEATS_MAX}"
        );
        ensure!(
            self.rows * self.seats_per_row <= SHOW_SEATS_MAX,
            "--rows x --seats-per-row must be at most {SHOW_SEATS_MAX} seats"
        );
        ensure!((1..=100_000).contains(&self.concurrency), "--concurrency must be 1..=100000");
        ensure!(
            (1..=64).contains(&self.accounts_per_worker)
                && self.concurrency * self.accounts_per_worker <= 100_000,
            "--accounts-per-worker must be 1..=64 and at most 100000 accounts in all"
        );
        ensure!(
            self.duration_s.is_finite() && self.duration_s > 0.0 && self.duration_s <= 604_800.0,
            "--duration-s must be positive and at most a week (604800)"
        );
        ensure!(self.journeys != Some(0), "--journeys must be positive");
        ensure!(
            self.warmup_s.is_finite() && (0.0..=3_600.0).contains(&self.warmup_s),
            "--warmup-s must be 0..=3600"
        );
        ensure!(
            self.zipf_s.is_finite() && (0.0..=10.0).contains(&self.zipf_s),
            "--zipf-s must be 0..=10"
        );
        ensure!(
            self.confirm_pct + self.release_pct <= 100,
            "--confirm-pct + --release-pct must be at most 100"
        );
        ensure!(
            (TTL_MS_MIN..=TTL_MS_MAX).contains(&self.abandon_ttl_ms),
            "--abandon-ttl-ms must be {TTL_MS_MIN}..={TTL_MS_MAX}"
        );
        ensure!(
            (1..=PARTY_SIZE_MAX).contains(&self.party_max),
            "--party-max must be 1..={PARTY_SIZE_MAX}"
        );
        ensure!(
            self.party_max <= self.seats_per_row,
            "--party-max must not exceed --seats-per-row"
        );
        ensure!(self.hold_attempts >= 1, "--hold-attempts must be at least 1");
        ensure!(self.timeout_ms >= 1, "--timeout-ms must be positive");
        Ok(())
    }

    /// Percent of holds abandoned (left to expire).
    pub fn abandon_pct(&self) -> u32 {
        100 - self.confirm_pct - self.release_pct
    }
}
