//! Deterministic simulation of a whole cluster (docs/reliability.md, "Deterministic
//! simulation"): several nodes running the real state machine, the real openraft, the real log
//! store and state-machine adapter, the real proposer and log-time rule, in one process on one
//! thread, on tokio's paused clock, with every choice (message delays and losses, fsync
//! latencies, what a crash keeps, faults, the clients' requests, openraft's election timeouts)
//! drawn from one seed. So a failing seed replays exactly (`marquee-sim --seed S`).
//!
//! A run: start the nodes, create the shows, run the clients ([`workload`]) under a nemesis
//! (crashes that lose unsynced writes, partitions, message loss, clock skew, full disks,
//! restarts of every node), then heal, settle the payments, let every hold expire, read the
//! final state and check the history with the chaos harness's checker (`crate::chaos::checker`,
//! its complete per-seat linearizability search included) and the state machine's own
//! invariants on every replica.

pub mod net;
pub mod replica;
pub mod workload;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::command::{Command, Query, QueryResult};
use proto::inventory::SeatStatus;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::chaos::checker::{self, FinalState, LedgerFinal, ReplicaFinal, ShowFinal, Verdict};
use crate::chaos::history::Event;
use net::NetState;
use replica::{SimNode, GROUP};
use workload::{Answer, Ledger};

/// True time at the start of every run, Unix ms (fixed: runs must not depend on the host).
const EPOCH_MS: u64 = 1_900_000_000_000;

/// What a run does.
#[derive(Debug, Clone, Serialize)]
pub struct SimConfig {
    /// Nodes (voters of the one group).
    pub nodes: u64,
    /// Concurrent clients.
    pub clients: usize,
    /// Simulated seconds of client traffic.
    pub duration_s: u64,
    /// Faults on (crashes, partitions, loss, skew, full disks); off: a clean network only.
    pub faults: bool,
    /// Probability that the payment provider's answer is lost after it charged.
    pub payment_loss: f64,
    /// Plants a bug in the state machine (holds expire up to 3 s early:
    /// `state_machine::planted`) to prove the simulator catches it.
    pub plant_bug: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 3,
            clients: 6,
            duration_s: 30,
            faults: true,
            payment_loss: 0.05,
            plant_bug: false,
        }
    }
}

/// Everything shared by the tasks of one run.
pub struct World {
    /// The run's seed.
    pub seed: u64,
    /// Its settings.
    pub cfg: SimConfig,
    rng: Mutex<StdRng>,
    start: tokio::time::Instant,
    std_base: std::time::Instant,
    /// The nodes, by id - 1.
    pub nodes: Vec<Arc<SimNode>>,
    pub(crate) net: Mutex<NetState>,
    history: Mutex<Vec<Event>>,
    faults: Mutex<Vec<String>>,
    pub(crate) ledger: Mutex<Ledger>,
    /// Snapshots a leader sent whole to a lagging follower (its last chunk acknowledged).
    pub(crate) snapshots_installed: std::sync::atomic::AtomicU64,
}

impl World {
    /// Node `id`.
    pub fn node(&self, id: u64) -> &Arc<SimNode> {
        &self.nodes[usize::try_from(id - 1).expect("node ids are small")]
    }

    /// A number in `low..=high` from the run's generator.
    pub fn random_range(&self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        self.rng.lock().expect("rng lock").random_range(low..=high)
    }

    /// True with probability `p`.
    pub fn random_bool(&self, p: f64) -> bool {
        p > 0.0 && self.rng.lock().expect("rng lock").random_bool(p.min(1.0))
    }

    fn elapsed(&self) -> Duration {
        tokio::time::Instant::now() - self.start
    }

    /// Simulated nanoseconds since the run started.
    pub fn elapsed_ns(&self) -> u64 {
        u64::try_from(self.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// True wall-clock time, Unix ms.
    pub fn now_ms(&self) -> u64 {
        EPOCH_MS + u64::try_from(self.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The simulated monotonic clock as a `std` instant (what `node::logtime` takes).
    pub fn std_now(&self) -> std::time::Instant {
        self.std_base + self.elapsed()
    }

    /// Microseconds one fsync of the simulated disks takes.
    pub fn fsync_us(&self) -> u64 {
        self.random_range(200, 3_000)
    }

    fn fault(&self, what: String) {
        self.faults
            .lock()
            .expect("faults lock")
            .push(format!("{:.1}s {what}", self.elapsed().as_secs_f64()));
    }
}

/// The result of one seed.
#[derive(Debug, Serialize)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// The checker's verdict (counts, faults, anomalies).
    pub verdict: Verdict,
    /// Digest of the history and final state: equal for two runs of one seed.
    pub trace: u64,
    /// Simulated seconds the run took, settling included.
    pub simulated_s: f64,
    /// Why the run itself failed (the cluster never settled), if it did.
    pub error: Option<String>,
    /// Snapshots installed on lagging followers during the run.
    pub snapshots_installed: u64,
    /// The recorded history (the chaos harness's format).
    #[serde(skip)]
    pub history: Vec<Event>,
    /// What was read at the end.
    #[serde(skip)]
    pub final_state: Option<FinalState>,
}

impl SeedReport {
    /// Whether the seed passed.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.verdict.valid()
    }
}

/// Runs one seed to its verdict on a fresh single-threaded runtime with a paused clock.
///
/// # Errors
/// The runtime could not be built.
pub fn run_seed(seed: u64, cfg: &SimConfig) -> anyhow::Result<SeedReport> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?;
    raft_store::runtime::seed_thread(Some(seed));
    state_machine::planted::plant_early_expiry_bug(cfg.plant_bug);
    let report = runtime.block_on(run(seed, cfg.clone()));
    state_machine::planted::plant_early_expiry_bug(false);
    raft_store::runtime::seed_thread(None);
    // Tasks still parked (a crashed process's openraft tasks) go with the runtime.
    runtime.shutdown_background();
    Ok(report)
}

async fn run(seed: u64, cfg: SimConfig) -> SeedReport {
    let world = Arc::new(World {
        seed,
        rng: Mutex::new(StdRng::seed_from_u64(seed)),
        start: tokio::time::Instant::now(),
        std_base: std::time::Instant::now(),
        nodes: (1..=cfg.nodes).map(|id| Arc::new(SimNode::new(id))).collect(),
        net: Mutex::new(NetState { delay_ms: (1, 8), ..NetState::default() }),
        history: Mutex::default(),
        faults: Mutex::default(),
        ledger: Mutex::default(),
        snapshots_installed: std::sync::atomic::AtomicU64::new(0),
        cfg,
    });
    let error = drive(&world).await.err().map(|e| format!("{e:#}"));
    let state = match &error {
        None => final_state(&world).await,
        Some(e) => Err(anyhow::anyhow!("{e}")),
    };
    let history = world.history.lock().expect("history lock").clone();
    let mut report = SeedReport {
        seed: world.seed,
        verdict: Verdict::default(),
        trace: 0,
        simulated_s: world.elapsed().as_secs_f64(),
        error: None,
        snapshots_installed: world.snapshots_installed.load(Ordering::Relaxed),
        history,
        final_state: None,
    };
    match state {
        Ok(state) => {
            report.verdict = checker::check(&report.history, &state);
            invariants(&world, &mut report.verdict);
            report.trace = state_machine::fnv1a(
                &serde_json::to_vec(&(&report.history, &state)).unwrap_or_default(),
            );
            report.final_state = Some(state);
        }
        Err(e) => report.error = Some(format!("{e:#}")),
    }
    report.verdict.faults = world.faults.lock().expect("faults lock").clone();
    report
}

/// Starts the cluster, creates the shows, runs clients and nemesis, then heals everything.
async fn drive(world: &Arc<World>) -> anyhow::Result<()> {
    for (i, node) in world.nodes.iter().enumerate() {
        node.start(world, i == 0).await?;
    }
    for show in workload::shows() {
        let layout = proto::layout::Layout {
            rows: (0..workload::ROWS as usize)
                .map(|r| proto::layout::RowSpec {
                    label: crate::row_label(r),
                    category: "standard".into(),
                    seats: workload::SEATS_PER_ROW,
                    aisles_after: Vec::new(),
                })
                .collect(),
            categories: vec![proto::layout::CategorySpec {
                name: "standard".into(),
                price_minor: workload::PRICE_MINOR,
            }],
            currency: "INR".into(),
        };
        let command = Command::CreateShow {
            show_id: show,
            title: format!("sim {}", show.0),
            starts_at_ms: EPOCH_MS + 30 * 86_400_000,
            layout,
        };
        let created = world.submit(format!("create-{}", show.0), command.clone()).await;
        anyhow::ensure!(
            matches!(created, Answer::Applied(Ok(_))),
            "show {} was not created: {created:?}",
            show.0
        );
    }
    let until = tokio::time::Instant::now() + Duration::from_secs(world.cfg.duration_s);
    let mut tasks = Vec::new();
    for index in 0..world.cfg.clients {
        tasks.push(tokio::spawn(workload::client(
            Arc::clone(world),
            index,
            world.cfg.clients,
            until,
        )));
    }
    let nemesis = world.cfg.faults.then(|| tokio::spawn(nemesis(Arc::clone(world), until)));
    let sweeper = {
        let world = Arc::clone(world);
        tokio::spawn(async move {
            while tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_secs(2)).await;
                workload::sweep(&world).await;
            }
        })
    };
    for task in tasks {
        task.await?;
    }
    if let Some(nemesis) = nemesis {
        nemesis.await?;
    }
    sweeper.await?;
    heal(world).await?;
    Ok(())
}

/// Ends every fault: network whole, clocks right, disks free, every node running.
async fn heal(world: &Arc<World>) -> anyhow::Result<()> {
    {
        let mut net = world.net.lock().expect("net lock");
        net.cut.clear();
        net.loss = 0.0;
        net.duplicate = 0.0;
    }
    for node in &world.nodes {
        node.clock_offset_ms.store(0, Ordering::Relaxed);
        node.disk.free();
        if !node.is_running() {
            node.start(world, false).await?;
        }
    }
    Ok(())
}

/// Injects one fault at a time until `until`, each healed before the next.
async fn nemesis(world: Arc<World>, until: tokio::time::Instant) {
    // Background noise for the whole run: a little loss and duplication.
    {
        let mut net = world.net.lock().expect("net lock");
        net.loss = 0.01;
        net.duplicate = 0.02;
    }
    while tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(world.random_range(500, 3_000))).await;
        let n = world.cfg.nodes;
        let victim = world.random_range(1, n);
        let lasts = Duration::from_millis(world.random_range(500, 5_000));
        match world.random_range(0, 6) {
            0 => {
                let survivors = world.random_range(0, world.node(victim).disk.pending() as u64);
                world.fault(format!("crash node {victim} (keeps {survivors} unsynced writes)"));
                world.node(victim).crash(survivors as usize).await;
                tokio::time::sleep(lasts).await;
                restart(&world, victim).await;
            }
            1 => {
                world.fault(format!("isolate node {victim} for {lasts:?}"));
                set_cut(&world, |a, b| a == victim || b == victim);
                tokio::time::sleep(lasts).await;
                set_cut(&world, |_, _| false);
            }
            2 => {
                let other = 1 + victim % n;
                world.fault(format!("one-way cut {victim}->{other} for {lasts:?}"));
                set_cut(&world, |a, b| a == victim && b == other);
                tokio::time::sleep(lasts).await;
                set_cut(&world, |_, _| false);
            }
            3 => {
                let skew = world.random_range(20_000, 60_000) as i64;
                let skew = if world.random_bool(0.5) { skew } else { -skew };
                world.fault(format!("node {victim} clock {skew:+} ms for {lasts:?}"));
                world.node(victim).clock_offset_ms.store(skew, Ordering::Relaxed);
                tokio::time::sleep(lasts).await;
                world.node(victim).clock_offset_ms.store(0, Ordering::Relaxed);
            }
            4 => {
                world.fault(format!("node {victim} disk full for {lasts:?}"));
                world.node(victim).disk.fill();
                tokio::time::sleep(lasts).await;
                world.node(victim).disk.free();
                // The node restarts itself once space is back (node::storage).
                world.node(victim).crash(0).await;
                restart(&world, victim).await;
            }
            5 => {
                world.fault("loss 30% for a while".into());
                world.net.lock().expect("net lock").loss = 0.3;
                tokio::time::sleep(lasts).await;
                world.net.lock().expect("net lock").loss = 0.01;
            }
            _ => {
                world.fault("crash every node".into());
                for node in &world.nodes {
                    let survivors = world.random_range(0, node.disk.pending() as u64);
                    node.crash(survivors as usize).await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                for id in 1..=n {
                    restart(&world, id).await;
                }
            }
        }
    }
}

async fn restart(world: &Arc<World>, id: u64) {
    if let Err(e) = world.node(id).start(world, false).await {
        world.fault(format!("node {id} failed to restart: {e:#}"));
    }
}

fn set_cut(world: &World, cut: impl Fn(u64, u64) -> bool) {
    let n = world.cfg.nodes;
    let mut net = world.net.lock().expect("net lock");
    net.cut = (1..=n)
        .flat_map(|a| (1..=n).map(move |b| (a, b)))
        .filter(|(a, b)| a != b && cut(*a, *b))
        .collect();
}

/// Settles payments, lets every hold and checkout expire, waits until every replica has
/// applied the same log, and reads what the checker needs.
async fn final_state(world: &Arc<World>) -> anyhow::Result<FinalState> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    // Every hold and checkout ends by log time within their lifetimes after the last client.
    tokio::time::sleep(Duration::from_millis(
        workload::HOLD_TTL_MS + workload::CHECKOUT_WINDOW_MS + 2_000,
    ))
    .await;
    loop {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "payments never settled");
        if workload::sweep(world).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // One more expiry after the sweeper's last confirms, then wait for every replica.
    tokio::time::sleep(Duration::from_millis(workload::HOLD_TTL_MS + 2_000)).await;
    let _ = world.submit("final-expire".into(), Command::ExpireDue).await;
    let leader = loop {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "replicas never converged");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Some(leader) = world.nodes.iter().find(|n| n.is_leader()) else { continue };
        let Some(raft) = leader.raft() else { continue };
        let last = raft.metrics().borrow().last_log_index;
        let caught_up = world.nodes.iter().all(|n| {
            n.raft().is_some_and(|r| {
                let m = r.metrics().borrow().clone();
                m.last_applied.map(|id| id.index) == last
            })
        });
        if caught_up {
            break Arc::clone(leader);
        }
    };
    let process = leader.process().ok_or_else(|| anyhow::anyhow!("leader went down"))?;
    let mut state = FinalState { read_at_ms: world.now_ms(), ..FinalState::default() };
    for show in workload::shows() {
        let mut fin = ShowFinal::default();
        if let QueryResult::Bookings { bookings } =
            process.sm.query(&Query::ShowBookings { show_id: show })
        {
            for booking in bookings
                .into_iter()
                .filter(|b| b.status == proto::inventory::BookingStatus::Confirmed)
            {
                fin.bookings.insert(
                    booking.booking_id.to_string(),
                    booking.seats.iter().map(|s| s.0.clone()).collect(),
                );
            }
        }
        if let QueryResult::SeatMap { seat_map } =
            process.sm.query(&Query::SeatMap { show_id: show })
        {
            for seat in seat_map.rows.iter().flat_map(|r| &r.seats) {
                match seat.status {
                    SeatStatus::Sold => fin.sold.insert(seat.seat_id.0.clone()),
                    SeatStatus::Held => fin.held.insert(seat.seat_id.0.clone()),
                    SeatStatus::Available => false,
                };
            }
        }
        state.shows.insert(show.0, fin);
    }
    for node in &world.nodes {
        if let Some(process) = node.process() {
            if let QueryResult::Digest { applied_index, digest } = process.sm.query(&Query::Digest)
            {
                state.replicas.push(ReplicaFinal {
                    node: node.id,
                    group: GROUP.0,
                    applied: applied_index,
                    digest,
                });
            }
        }
    }
    let (charges, refunds) = world.ledger.lock().expect("ledger lock").records();
    state.ledger = Some(LedgerFinal { charges, refunds });
    Ok(state)
}

/// The state machine's own structural invariants on every replica.
fn invariants(world: &World, verdict: &mut Verdict) {
    for node in &world.nodes {
        let Some(process) = node.process() else { continue };
        let state = process.sm.read().state.clone();
        let checked =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| state.check_invariants()));
        if let Err(panic) = checked {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            verdict.anomalies.push(checker::Anomaly {
                kind: "invariant".into(),
                detail: format!("node {}: {what}", node.id),
                ops: Vec::new(),
            });
        }
    }
}
