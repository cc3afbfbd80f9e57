//! `marquee-chaos`: a Jepsen-style fault-injection run against a Docker compose cluster of
//! Marquee's own image, or a re-check of a saved history. See `docs/reliability.md`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use tests::chaos::checker::{self, FinalState, ReplicaFinal, Verdict};
use tests::chaos::docker::Compose;
use tests::chaos::history::{self, Event, EventType, OpKind, Recorder};
use tests::chaos::workload::{self, Target};

/// Fault-injection runs against a Docker cluster of Marquee.
#[derive(Debug, Parser)]
#[command(name = "marquee-chaos", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Nemesis {
    /// SIGKILL a random node, restart it after the fault.
    Kill,
    /// Freeze a random node (docker pause), thaw it after the fault.
    Pause,
    /// Cut one node off from the others, or split the nodes 2 | 3.
    Partition,
    /// SIGKILL every node at once, then start them all.
    RestartAll,
    /// SIGKILL the node leading a random shard, restart it after the fault.
    KillLeader,
    /// Cut the node leading a random shard off from every other node.
    IsolateLeader,
    /// Split the nodes 2 | 2 with the fifth node connected to both sides (a bridge).
    Bridge,
    /// Move one node's wall clock 20-60 s ahead or behind (libfaketime), then back.
    ClockSkew,
    /// SIGKILL a gateway mid-flight (sagas in progress are settled by the recovery
    /// sweeper), restart it after the fault.
    KillGateway,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start the compose cluster, run clients and nemeses, check, report, clean up.
    /// A flag given twice takes its last value (scripts pass defaults first).
    #[command(args_override_self = true)]
    Run {
        /// The compose file.
        #[arg(long, default_value = "deploy/compose.yaml")]
        compose: PathBuf,
        /// Compose project name (every container, network and volume is prefixed with it).
        #[arg(long, default_value = "marquee-chaos")]
        project: String,
        /// How long clients run (bounded: at most one hour).
        #[arg(long, default_value_t = 300)]
        duration_s: u64,
        /// Concurrent clients.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Shows clients contend on.
        #[arg(long, default_value_t = 4)]
        shows: usize,
        /// Faults to inject, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "kill,pause,partition")]
        nemesis: Vec<Nemesis>,
        /// Seconds between the start of two faults.
        #[arg(long, default_value_t = 15)]
        interval_s: u64,
        /// Seconds each fault lasts.
        #[arg(long, default_value_t = 7)]
        fault_s: u64,
        /// Hold lifetime clients ask for.
        #[arg(long, default_value_t = 15_000)]
        hold_ttl_ms: u64,
        /// Where the history, final state and report go.
        #[arg(long, default_value = "chaos-report")]
        out: PathBuf,
        /// Random seed (printed; repeats the client and nemesis choices).
        #[arg(long)]
        seed: Option<u64>,
        /// Leave the cluster running after the run (for debugging).
        #[arg(long)]
        keep: bool,
    },
    /// Re-check a saved history against a saved final state.
    Check {
        /// `history.jsonl` of a run.
        #[arg(long)]
        history: PathBuf,
        /// `final.json` of a run.
        #[arg(long)]
        final_state: PathBuf,
    },
}

const NODES: [&str; 5] = ["node1", "node2", "node3", "node4", "node5"];
const GATEWAYS: [&str; 2] = ["gateway1", "gateway2"];
/// How long after healing a checkout abandoned by a killed gateway may stay unsettled: the
/// gateways' sweeper settles checkouts 30 s old, every 5 s (compose defaults).
const SWEEPER_SETTLE: Duration = Duration::from_secs(45);
const GATEWAY_PORTS: [u16; 2] = [18081, 18082];
/// Secret of the payment service's fault-injection endpoints.
const PAYMENTS_ADMIN_TOKEN: &str = "chaos-admin-token";
/// Secret the gateways sign access tokens with.
const JWT_SECRET: &str = "chaos-jwt-secret-0123456789abcdef0123";
/// The admin account `marqueectl create-user` makes inside the cluster.
const ADMIN_EMAIL: &str = "chaos-admin@marquee.test";
const ADMIN_PASSWORD: &str = "chaos-admin-password";
const DURATION_MAX: Duration = Duration::from_secs(3600);

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match Cli::parse().command {
        Cmd::Check { history, final_state } => match recheck(&history, &final_state) {
            Ok(verdict) => exit(&verdict),
            Err(e) => {
                eprintln!("marquee-chaos: {e:#}");
                std::process::ExitCode::from(2)
            }
        },
        Cmd::Run {
            compose,
            project,
            duration_s,
            clients,
            shows,
            nemesis,
            interval_s,
            fault_s,
            hold_ttl_ms,
            out,
            seed,
            keep,
        } => {
            let seed = seed.unwrap_or_else(rand::random);
            eprintln!("MARQUEE_SEED={seed}");
            let compose = match Compose::new(compose, &project) {
                Ok(compose) => compose,
                Err(e) => {
                    eprintln!("marquee-chaos: {e:#}");
                    return std::process::ExitCode::from(2);
                }
            };
            let settings = Settings {
                duration: Duration::from_secs(duration_s).min(DURATION_MAX),
                clients: clients.clamp(1, 64),
                shows: shows.clamp(1, 32),
                nemesis,
                interval: Duration::from_secs(interval_s.max(2)),
                fault: Duration::from_secs(fault_s.max(1)),
                hold_ttl_ms: hold_ttl_ms.clamp(1_000, 120_000),
                out,
                seed,
            };
            // Cleans up on every exit path, Ctrl-C included.
            let guard = Cleanup { compose: compose.clone(), keep };
            let result = tokio::select! {
                result = run(&compose, &settings) => result,
                () = interrupted() => Err(anyhow::anyhow!("interrupted")),
            };
            drop(guard);
            match result {
                Ok(verdict) => exit(&verdict),
                Err(e) => {
                    eprintln!("marquee-chaos: {e:#}");
                    std::process::ExitCode::from(2)
                }
            }
        }
    }
}

/// Resolves on SIGINT or SIGTERM (so `timeout` and Ctrl-C both clean up).
async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// The node leading a randomly chosen inventory shard, per the nodes' own status.
async fn leader_of_random_shard(
    compose: &Compose,
    rng: &mut rand::rngs::StdRng,
) -> Option<&'static str> {
    let shard = rng.random_range(1..=16u64);
    for node in NODES {
        let Ok(ip) = compose.ip(node) else { continue };
        let Ok(mut client) =
            proto::pb::cluster_client::ClusterClient::connect(format!("http://{ip}:7001")).await
        else {
            continue;
        };
        let request = proto::pb::StatusRequest { with_digest: false };
        let Ok(Ok(reply)) =
            tokio::time::timeout(Duration::from_secs(3), client.status(request)).await
        else {
            continue;
        };
        if reply.into_inner().groups.iter().any(|g| g.group_id == shard && g.is_leader) {
            return Some(node);
        }
    }
    None
}

struct Cleanup {
    compose: Compose,
    keep: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("leaving project {} running (--keep)", self.compose.project);
        } else {
            eprintln!("==> removing project {}", self.compose.project);
            for node in NODES {
                let _ = self.compose.pause(node, false);
            }
            self.compose.down();
        }
    }
}

struct Settings {
    duration: Duration,
    clients: usize,
    shows: usize,
    nemesis: Vec<Nemesis>,
    interval: Duration,
    fault: Duration,
    hold_ttl_ms: u64,
    out: PathBuf,
    seed: u64,
}

fn exit(verdict: &Verdict) -> std::process::ExitCode {
    println!("operations: {:?}", verdict.counts);
    println!("faults injected: {}", verdict.faults.len());
    for anomaly in &verdict.anomalies {
        println!("ANOMALY {}: {}", anomaly.kind, anomaly.detail);
    }
    if verdict.valid() {
        println!("VERDICT: valid (no invariant violated)");
        std::process::ExitCode::SUCCESS
    } else {
        println!("VERDICT: INVALID ({} anomalies)", verdict.anomalies.len());
        std::process::ExitCode::FAILURE
    }
}

fn recheck(history_path: &std::path::Path, final_path: &std::path::Path) -> Result<Verdict> {
    let history = history::read(history_path)?;
    let state: FinalState = serde_json::from_slice(&std::fs::read(final_path)?)?;
    Ok(checker::check(&history, &state))
}

async fn run(compose: &Compose, settings: &Settings) -> Result<Verdict> {
    std::fs::create_dir_all(&settings.out)?;
    eprintln!("==> starting project {} from {}", compose.project, compose.file.display());
    compose.down();
    let mut env = BTreeMap::new();
    env.insert("MARQUEE_ADMIN_TOKEN".to_owned(), PAYMENTS_ADMIN_TOKEN.to_owned());
    env.insert("MARQUEE_JWT_SECRET".to_owned(), JWT_SECRET.to_owned());
    env.insert("MARQUEE_GATEWAY1_PORT".to_owned(), GATEWAY_PORTS[0].to_string());
    env.insert("MARQUEE_GATEWAY2_PORT".to_owned(), GATEWAY_PORTS[1].to_string());
    compose.up(&env)?;
    let mut target = Target {
        gateways: GATEWAY_PORTS.iter().map(|p| format!("http://127.0.0.1:{p}")).collect(),
        admin_token: String::new(),
        users: Vec::new(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(2))
            .build()?,
        hold_ttl_ms: settings.hold_ttl_ms,
    };
    gateways_ready(&target, Duration::from_secs(120)).await?;
    target.admin_token = admin_login(compose, &target).await?;
    target.users =
        workload::register_users(&target, settings.clients * workload::USERS_PER_CLIENT).await?;
    let shows = workload::create_shows(&target, settings.shows).await?;
    eprintln!("==> {} clients on shows {shows:?} for {:?}", settings.clients, settings.duration);

    let recorder = Recorder::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for index in 0..settings.clients {
        clients.push(tokio::spawn(workload::client(
            index,
            settings.clients,
            target.clone(),
            shows.clone(),
            recorder.clone(),
            stop.clone(),
            settings.seed,
        )));
    }
    let faults = nemesis(compose, settings, &recorder).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.await;
    }
    heal(compose, &recorder);
    faults?;

    eprintln!("==> healed; waiting for holds to expire and replicas to converge");
    let mut settle = Duration::from_millis(settings.hold_ttl_ms + checker::EXPIRY_SLACK_MS + 1_000);
    if settings.nemesis.contains(&Nemesis::KillGateway) {
        settle = settle.max(SWEEPER_SETTLE);
    }
    tokio::time::sleep(settle).await;
    gateways_ready(&target, Duration::from_secs(60)).await?;
    let mut state = workload::final_read(&target, &shows).await?;
    state.replicas = replicas(compose).await;
    let events = recorder.events();
    history::write(&settings.out.join("history.jsonl"), &events)?;
    std::fs::write(settings.out.join("final.json"), serde_json::to_vec_pretty(&state)?)?;
    let verdict = checker::check(&events, &state);
    // The overlap check is only as good as the expiries it is given: show what they were.
    let lifetimes: Vec<i64> = events
        .iter()
        .filter(|e| e.op == OpKind::Hold && e.kind == EventType::Ok)
        .filter_map(|e| e.expires_at_ms.map(|at| at as i64 - e.wall_ms as i64))
        .collect();
    let (shortest, longest) = (lifetimes.iter().min(), lifetimes.iter().max());
    eprintln!(
        "hold expiries seen: {:.1} s to {:.1} s after the grant (client clock)",
        shortest.copied().unwrap_or(0) as f64 / 1e3,
        longest.copied().unwrap_or(0) as f64 / 1e3
    );
    let report = serde_json::json!({
        "seed": settings.seed,
        "duration_s": settings.duration.as_secs(),
        "clients": settings.clients,
        "shows": shows,
        "nemesis": settings.nemesis.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>(),
        "valid": verdict.valid(),
        "counts": verdict.counts,
        "faults": verdict.faults,
        "anomalies": verdict.anomalies,
    });
    std::fs::write(settings.out.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    eprintln!("==> history, final state and report in {}", settings.out.display());
    Ok(verdict)
}

/// Waits until every gateway answers `/readyz`.
/// Creates the admin account with `marqueectl create-user` inside node1's container (as an
/// operator would) and signs it in; returns its access token.
async fn admin_login(compose: &Compose, target: &Target) -> Result<String> {
    let args = [
        "/usr/local/bin/marqueectl",
        "--nodes",
        "node1:7001,node2:7001,node3:7001",
        "create-user",
        "--email",
        ADMIN_EMAIL,
        "--name",
        "Chaos admin",
        "--role",
        "admin",
        "--exists-ok",
    ];
    tests::eventually("the admin account", Duration::from_secs(60), || async {
        Ok(compose.exec_env("node1", &[("MARQUEE_PASSWORD", ADMIN_PASSWORD)], &args).ok())
    })
    .await?;
    tests::eventually("the admin login", Duration::from_secs(60), || async {
        let response = target
            .http
            .post(format!("{}/v1/auth/login", target.gateways[0]))
            .json(&serde_json::json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
            .send()
            .await?;
        anyhow::ensure!(response.status() == 200, "login: {}", response.status());
        let body: serde_json::Value = response.json().await?;
        Ok(body["access_token"].as_str().map(str::to_owned))
    })
    .await
}

async fn gateways_ready(target: &Target, timeout: Duration) -> Result<()> {
    for gateway in &target.gateways {
        let url = format!("{gateway}/readyz");
        tests::eventually("gateway ready", timeout, || async {
            let response = target.http.get(&url).send().await.ok();
            Ok(response.filter(|r| r.status().is_success()).map(|_| ()))
        })
        .await?;
    }
    Ok(())
}

fn nemesis_event(recorder: &Recorder, kind: EventType, detail: String) {
    eprintln!("nemesis: {detail}");
    recorder.record(Event {
        process: -1,
        kind,
        op: OpKind::Nemesis,
        time_ns: 0,
        show: 0,
        seats: Vec::new(),
        hold_id: None,
        booking_id: None,
        expires_at_ms: None,
        wall_ms: 0,
        detail,
    });
}

/// Injects one fault per interval until the duration is over; every fault is healed before
/// the next one starts.
async fn nemesis(compose: &Compose, settings: &Settings, recorder: &Recorder) -> Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(settings.seed.rotate_left(17));
    let started = Instant::now();
    let quiet = settings.interval.saturating_sub(settings.fault);
    loop {
        tokio::time::sleep(quiet.min(settings.duration.saturating_sub(started.elapsed()))).await;
        if started.elapsed() + settings.fault >= settings.duration || settings.nemesis.is_empty() {
            tokio::time::sleep(settings.duration.saturating_sub(started.elapsed())).await;
            return Ok(());
        }
        let fault = *settings.nemesis.choose(&mut rng).context("no nemesis")?;
        let node = *NODES.choose(&mut rng).context("no node")?;
        match fault {
            Nemesis::Kill => {
                nemesis_event(recorder, EventType::Invoke, format!("kill -9 {node}"));
                compose.kill(node)?;
                tokio::time::sleep(settings.fault).await;
                compose.start(node)?;
                nemesis_event(recorder, EventType::Ok, format!("restart {node}"));
            }
            Nemesis::Pause => {
                nemesis_event(recorder, EventType::Invoke, format!("pause {node}"));
                compose.pause(node, true)?;
                tokio::time::sleep(settings.fault).await;
                compose.pause(node, false)?;
                nemesis_event(recorder, EventType::Ok, format!("resume {node}"));
            }
            Nemesis::Partition => {
                let mut nodes = NODES.to_vec();
                let (minority, majority): (Vec<&str>, Vec<&str>) = if rng.random_bool(0.5) {
                    nodes.retain(|n| *n != node);
                    (vec![node], nodes)
                } else {
                    let mut shuffled = NODES.to_vec();
                    rand::seq::SliceRandom::shuffle(shuffled.as_mut_slice(), &mut rng);
                    (shuffled[..2].to_vec(), shuffled[2..].to_vec())
                };
                nemesis_event(
                    recorder,
                    EventType::Invoke,
                    format!("partition {minority:?} | {majority:?}"),
                );
                for a in &minority {
                    compose.cut(a, &majority)?;
                }
                for b in &majority {
                    compose.cut(b, &minority)?;
                }
                tokio::time::sleep(settings.fault).await;
                for n in NODES {
                    compose.heal_network(n);
                }
                nemesis_event(recorder, EventType::Ok, "heal partition".into());
            }
            Nemesis::KillLeader => {
                let leader = leader_of_random_shard(compose, &mut rng).await.unwrap_or(node);
                nemesis_event(recorder, EventType::Invoke, format!("kill -9 leader {leader}"));
                compose.kill(leader)?;
                tokio::time::sleep(settings.fault).await;
                compose.start(leader)?;
                nemesis_event(recorder, EventType::Ok, format!("restart {leader}"));
            }
            Nemesis::IsolateLeader => {
                let leader = leader_of_random_shard(compose, &mut rng).await.unwrap_or(node);
                let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != leader).collect();
                nemesis_event(recorder, EventType::Invoke, format!("isolate leader {leader}"));
                compose.cut(leader, &others)?;
                for other in &others {
                    compose.cut(other, &[leader])?;
                }
                tokio::time::sleep(settings.fault).await;
                for n in NODES {
                    compose.heal_network(n);
                }
                nemesis_event(recorder, EventType::Ok, "heal partition".into());
            }
            Nemesis::Bridge => {
                let mut shuffled = NODES.to_vec();
                rand::seq::SliceRandom::shuffle(shuffled.as_mut_slice(), &mut rng);
                let (left, bridge, right) = (&shuffled[..2], shuffled[2], &shuffled[3..]);
                nemesis_event(
                    recorder,
                    EventType::Invoke,
                    format!("bridge {left:?} <- {bridge} -> {right:?}"),
                );
                for a in left {
                    compose.cut(a, right)?;
                }
                for b in right {
                    compose.cut(b, left)?;
                }
                tokio::time::sleep(settings.fault).await;
                for n in NODES {
                    compose.heal_network(n);
                }
                nemesis_event(recorder, EventType::Ok, "heal partition".into());
            }
            Nemesis::ClockSkew => {
                let seconds = rng.random_range(20..=60);
                let offset = if rng.random_bool(0.5) {
                    format!("+{seconds}s")
                } else {
                    format!("-{seconds}s")
                };
                nemesis_event(recorder, EventType::Invoke, format!("clock {offset} on {node}"));
                compose.skew_clock(node, &offset)?;
                tokio::time::sleep(settings.fault).await;
                compose.skew_clock(node, "+0s")?;
                nemesis_event(recorder, EventType::Ok, format!("clock back on {node}"));
            }
            Nemesis::KillGateway => {
                let gateway = *GATEWAYS.choose(&mut rng).context("no gateway")?;
                nemesis_event(recorder, EventType::Invoke, format!("kill -9 {gateway}"));
                compose.kill(gateway)?;
                tokio::time::sleep(settings.fault).await;
                compose.start(gateway)?;
                nemesis_event(recorder, EventType::Ok, format!("restart {gateway}"));
            }
            Nemesis::RestartAll => {
                nemesis_event(recorder, EventType::Invoke, "kill -9 every node".into());
                for n in NODES {
                    compose.kill(n)?;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                for n in NODES {
                    compose.start(n)?;
                }
                nemesis_event(recorder, EventType::Ok, "restart every node".into());
            }
        }
    }
}

/// Undoes every fault: thaw, start, remove partition rules.
fn heal(compose: &Compose, recorder: &Recorder) {
    for gateway in GATEWAYS {
        let _ = compose.start(gateway);
    }
    for node in NODES {
        let _ = compose.skew_clock(node, "+0s");
        if compose.is_paused(node) {
            let _ = compose.pause(node, false);
        }
        let _ = compose.start(node);
        compose.heal_network(node);
    }
    nemesis_event(recorder, EventType::Ok, "heal everything".into());
}

/// Every replica's applied index and digest, read over gRPC from the host, once replicas of
/// each group agree or 60 s passed (lagging replicas are fine: the check compares equal
/// indexes only).
async fn replicas(compose: &Compose) -> Vec<ReplicaFinal> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut all = Vec::new();
        for (i, node) in NODES.iter().enumerate() {
            let Ok(ip) = compose.ip(node) else { continue };
            let Ok(mut client) =
                proto::pb::cluster_client::ClusterClient::connect(format!("http://{ip}:7001"))
                    .await
            else {
                continue;
            };
            let request = proto::pb::StatusRequest { with_digest: true };
            if let Ok(Ok(reply)) =
                tokio::time::timeout(Duration::from_secs(5), client.status(request)).await
            {
                for g in reply.into_inner().groups {
                    all.push(ReplicaFinal {
                        node: i as u64 + 1,
                        group: g.group_id,
                        applied: g.applied_index,
                        digest: g.digest,
                    });
                }
            }
        }
        let mut by_group: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for r in &all {
            by_group.entry(r.group).or_default().push(r.applied);
        }
        let converged = by_group.values().all(|a| a.iter().all(|x| *x == a[0]));
        if converged || Instant::now() > deadline {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
