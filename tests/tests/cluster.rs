//! Cluster tests with real processes: the promise that no seat is sold twice and no
//! acknowledged booking is lost, through races, leader crashes and restarts.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use serde_json::json;
use tests::{audit, eventually, join_all, seat_list, Cluster, Options};

/// (booking or hold id, seats) pairs collected by concurrent clients.
type Granted = Arc<Mutex<Vec<(String, Vec<String>)>>>;

fn seed() -> u64 {
    let seed = std::env::var("MARQUEE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("MARQUEE_SEED={seed}");
    seed
}

/// Many clients race for the same few seats: no two successful holds ever overlap (holds do
/// not expire during the test), and bookings never sell a seat twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_clients_never_share_a_seat() {
    let cluster = Cluster::start(Options::default()).await.unwrap();
    let show = cluster.create_show(2, 10).await.unwrap();
    let seed = seed();
    let held: Granted = Arc::default();
    let acknowledged: Granted = Arc::default();
    let mut tasks = Vec::new();
    for worker in 0..48u64 {
        let (cluster, held, acknowledged) =
            (&cluster, Arc::clone(&held), Arc::clone(&acknowledged));
        tasks.push(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ worker);
            let user = cluster.user(&format!("racer{worker}")).await.unwrap();
            for attempt in 0..4 {
                let n = rng.random_range(1..=3);
                let start = rng.random_range(1..=10 - n + 1);
                let row = if rng.random_bool(0.5) { "A" } else { "B" };
                let seats: Vec<String> = (start..start + n).map(|s| format!("{row}{s}")).collect();
                let (status, body) = user.hold(show, json!({ "seats": seats })).await.unwrap();
                match status {
                    201 => {
                        let hold_id = body["hold_id"].as_str().unwrap().to_owned();
                        held.lock().unwrap().push((hold_id.clone(), seat_list(&body)));
                        if rng.random_bool(0.7) {
                            let (status, booking) = user
                                .book(&hold_id, "tok_success", &format!("k{worker}-{attempt}"))
                                .await
                                .unwrap();
                            assert_eq!(status, 201, "{booking}");
                            acknowledged.lock().unwrap().push((
                                booking["booking_id"].as_str().unwrap().to_owned(),
                                seat_list(&booking),
                            ));
                        }
                    }
                    409 => assert!(
                        body["type"].as_str().unwrap().ends_with("seats-unavailable")
                            || body["type"].as_str().unwrap().ends_with("too-many-holds"),
                        "{body}"
                    ),
                    other => panic!("unexpected status {other}: {body}"),
                }
            }
        });
    }
    join_all(tasks).await;
    let held = held.lock().unwrap().clone();
    let mut seat_holder: BTreeMap<String, String> = BTreeMap::new();
    for (hold_id, seats) in &held {
        for seat in seats {
            if let Some(other) = seat_holder.insert(seat.clone(), hold_id.clone()) {
                panic!("seat {seat} granted to holds {other} and {hold_id}");
            }
        }
    }
    assert!(!held.is_empty(), "some holds succeeded");
    let acknowledged = acknowledged.lock().unwrap().clone();
    let count = audit(&cluster, show, &acknowledged).await.unwrap();
    assert_eq!(count, acknowledged.len());
    cluster.converged(Duration::from_secs(20)).await.unwrap();
}

/// Runs a booking load through the gateway; SIGKILLs the leader mid-way; bookings continue
/// after the election, and every acknowledged booking survives, also after the old leader
/// restarts and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_crash_under_load_loses_no_acknowledged_booking() {
    let cluster = Cluster::start(Options::default()).await.unwrap();
    let show = cluster.create_show(20, 20).await.unwrap();
    let seed = seed();
    // Four accounts per worker, used in turn (an account may hold at most 2 holds per show).
    let pool = cluster.users("w", 16 * 4).await.unwrap();
    let pool = &pool;
    let acknowledged: Granted = Arc::default();
    let after_kill = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));

    let load = {
        let (acknowledged, after_kill, killed, stop) = (
            Arc::clone(&acknowledged),
            Arc::clone(&after_kill),
            Arc::clone(&killed),
            Arc::clone(&stop),
        );
        let workers = (0..16u64).map(move |worker| {
            let (acknowledged, after_kill, killed, stop) = (
                Arc::clone(&acknowledged),
                Arc::clone(&after_kill),
                Arc::clone(&killed),
                Arc::clone(&stop),
            );
            async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ worker);
                // Bounded: at most 200 journeys per worker.
                for journey in 0..200 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let user = &pool[worker as usize * 4 + journey % 4];
                    let quantity = rng.random_range(1..=4);
                    let Ok((201, hold)) = user
                        .hold(show, json!({"quantity": quantity, "category": "standard"}))
                        .await
                    else {
                        continue;
                    };
                    let hold_id = hold["hold_id"].as_str().unwrap_or_default().to_owned();
                    if let Ok((201, booking)) =
                        user.book(&hold_id, "tok_success", &format!("key-{worker}-{journey}")).await
                    {
                        acknowledged.lock().unwrap().push((
                            booking["booking_id"].as_str().unwrap().to_owned(),
                            seat_list(&booking),
                        ));
                        if killed.load(Ordering::Relaxed) {
                            after_kill.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        });
        join_all(workers)
    };
    let chaos = async {
        eventually("some bookings before the crash", Duration::from_secs(60), || async {
            Ok((acknowledged.lock().unwrap().len() >= 20).then_some(()))
        })
        .await
        .unwrap();
        let leader = cluster.leader().await.unwrap();
        eprintln!("killing leader node {}", leader + 1);
        cluster.nodes[leader].kill();
        killed.store(true, Ordering::Relaxed);
        eventually("bookings after the crash", Duration::from_secs(60), || async {
            Ok((after_kill.load(Ordering::Relaxed) >= 20).then_some(()))
        })
        .await
        .unwrap();
        stop.store(true, Ordering::Relaxed);
        leader
    };
    let (_, leader) = tokio::join!(load, chaos);
    let acknowledged = acknowledged.lock().unwrap().clone();
    audit(&cluster, show, &acknowledged).await.unwrap();
    cluster.restart(leader).unwrap();
    let statuses = cluster.converged(Duration::from_secs(60)).await.unwrap();
    assert_eq!(statuses.len(), 3, "the restarted node caught up");
    audit(&cluster, show, &acknowledged).await.unwrap();
}

/// A node that was down while the log moved on catches up (every one of its 5 groups): by log replay after a short
/// outage, and by snapshot install after the leader purged the entries it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_node_catches_up_by_log_and_by_snapshot() {
    let options = Options { snapshot_logs: 100, logs_kept: 20, shards: 4, ..Options::default() };
    let cluster = Cluster::start(options).await.unwrap();
    let show = cluster.create_show(10, 30).await.unwrap();
    let leader = cluster.leader().await.unwrap();
    let victim = (leader + 1) % 3;

    // Short outage: a few entries, caught up from the log.
    cluster.nodes[victim].kill();
    let mut acknowledged = Vec::new();
    book_some(&cluster, show, "short", 5, &mut acknowledged).await.unwrap();
    cluster.restart(victim).unwrap();
    cluster.converged(Duration::from_secs(30)).await.unwrap();

    // Long outage: far more entries than the leader keeps, so only a snapshot can help.
    cluster.nodes[victim].kill();
    book_some(&cluster, show, "long", 80, &mut acknowledged).await.unwrap();
    let leader_status = cluster.nodes[cluster.leader().await.unwrap()].status().await.unwrap();
    assert!(leader_status.snapshot_index > 0, "leader built a snapshot: {leader_status:?}");
    assert!(leader_status.purged_index > 0, "leader purged its log: {leader_status:?}");
    cluster.restart(victim).unwrap();
    let statuses = cluster.converged(Duration::from_secs(60)).await.unwrap();
    let caught_up = cluster.nodes[victim].status().await.unwrap();
    assert!(caught_up.snapshot_index > 0, "victim installed a snapshot: {caught_up:?}");
    assert!(statuses.iter().all(|s| s.digest == caught_up.digest));
    audit(&cluster, show, &acknowledged).await.unwrap();

    // Full-cluster restart: every booking comes back.
    for i in 0..3 {
        cluster.nodes[i].kill();
    }
    for i in 0..3 {
        cluster.restart(i).unwrap();
    }
    cluster.wait_ready().await.unwrap();
    cluster.converged(Duration::from_secs(60)).await.unwrap();
    audit(&cluster, show, &acknowledged).await.unwrap();
}

async fn book_some(
    cluster: &Cluster,
    show: u64,
    tag: &str,
    count: usize,
    acknowledged: &mut Vec<(String, Vec<String>)>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    // One account books them all: each hold is confirmed before the next, so the per-owner
    // limit on active holds never applies.
    let user = cluster.user(tag).await?;
    for i in 0..count {
        let (status, hold) =
            user.hold(show, json!({"quantity": 2, "category": "standard"})).await?;
        anyhow::ensure!(status == 201, "hold: {status} {hold}");
        let hold_id = hold["hold_id"].as_str().context("hold_id")?;
        let (status, booking) = user.book(hold_id, "tok_success", &format!("{tag}{i}")).await?;
        anyhow::ensure!(status == 201, "booking: {status} {booking}");
        let booking_id = booking["booking_id"].as_str().context("booking_id")?.to_owned();
        acknowledged.push((booking_id, seat_list(&booking)));
    }
    Ok(())
}

/// A fourth node started with `--join` registers in the meta group; `marqueectl move` then
/// moves shard 1's replica from node 3 to it (learner, catch-up, promote, remove) while
/// bookings continue, and node 3's copy is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_node_takes_over_a_replica_by_move() {
    let mut cluster = Cluster::start(Options::default()).await.unwrap();
    let show = cluster.create_show(5, 10).await.unwrap();
    let mut acknowledged = Vec::new();
    book_some(&cluster, show, "before", 5, &mut acknowledged).await.unwrap();
    let joined = cluster.add_joining_node().unwrap();
    eventually("node 4 to register", Duration::from_secs(30), || async {
        let status = cluster.ctl_status().await?;
        Ok(status["nodes"].as_array().is_some_and(|n| n.len() == 4).then_some(()))
    })
    .await
    .unwrap();
    let (moved, ()) =
        tokio::join!(cluster.ctl(&["move", "--group=1", "--from=3", "--to=4"]), async {
            book_some(&cluster, show, "during", 5, &mut acknowledged).await.unwrap();
        });
    moved.unwrap();
    let status = cluster.nodes[joined].status().await.unwrap();
    assert_eq!(status.voters, vec![1, 2, 4]);
    let statuses = cluster.converged(Duration::from_secs(30)).await.unwrap();
    assert_eq!(statuses.len(), 3, "nodes 1, 2 and 4 hold shard 1: {statuses:?}");
    assert!(cluster.nodes[2].status().await.is_err(), "node 3's replica of shard 1 was deleted");
    let map = cluster.ctl_status().await.unwrap();
    let shard = map["groups"].as_array().unwrap().iter().find(|g| g["group"] == 1).unwrap().clone();
    assert_eq!(shard["replicas"], json!([1, 2, 4]), "the map records the move: {shard}");
    audit(&cluster, show, &acknowledged).await.unwrap();
}

/// SIGTERM stops a node cleanly (exit code 0); it restarts from its data dir and rejoins with
/// every booking intact. Its `/metrics` and the gateway's expose the documented series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_and_metrics() {
    let cluster = Cluster::start(Options::default()).await.unwrap();
    let show = cluster.create_show(3, 10).await.unwrap();
    let mut acknowledged = Vec::new();
    book_some(&cluster, show, "m", 3, &mut acknowledged).await.unwrap();

    let leader = cluster.leader().await.unwrap();
    let http = &cluster.http;
    let scrape =
        |url: String| async move { http.get(url).send().await.unwrap().text().await.unwrap() };
    let node_metrics = scrape(format!("http://{}/metrics", cluster.nodes[leader].http)).await;
    for series in [
        "marquee_node_raft{field=\"is_leader\",group=\"1\"} 1",
        "marquee_node_commands_total{kind=\"hold\",outcome=\"ok\"} 3",
        "marquee_node_commands_total{kind=\"confirm\",outcome=\"ok\"} 3",
        "marquee_node_apply_latency_seconds_count{group=\"1\"}",
        "marquee_node_propose_latency_seconds_bucket",
        "marquee_node_writer_batches_total",
    ] {
        assert!(node_metrics.contains(series), "node metrics lack {series}:\n{node_metrics}");
    }
    let gateway_metrics = scrape(format!("{}/metrics", cluster.url)).await;
    for series in [
        "marquee_gateway_bookings_total{status=\"confirmed\"} 3",
        "marquee_gateway_payments_total{outcome=\"charged\"} 3",
        "marquee_gateway_request_latency_seconds_count{method=\"POST\",route=\"/v1/bookings\"} 3",
    ] {
        assert!(
            gateway_metrics.contains(series),
            "gateway metrics lack {series}:\n{gateway_metrics}"
        );
    }

    let follower = (leader + 1) % 3;
    assert_eq!(cluster.nodes[follower].terminate(Duration::from_secs(15)).unwrap(), Some(0));
    book_some(&cluster, show, "while-down", 2, &mut acknowledged).await.unwrap();
    cluster.restart(follower).unwrap();
    cluster.converged(Duration::from_secs(30)).await.unwrap();
    audit(&cluster, show, &acknowledged).await.unwrap();
}

/// A hold left alone frees its seats within a tick of its expiry, with no other traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_holds_expire_and_free_their_seats() {
    let cluster = Cluster::start(Options::default()).await.unwrap();
    let show = cluster.create_show(1, 5).await.unwrap();
    let user = cluster.user("walker").await.unwrap();
    let (status, hold) =
        user.hold(show, json!({"seats": ["A1", "A2"], "ttl_ms": 1000})).await.unwrap();
    assert_eq!(status, 201, "{hold}");
    let held = Cluster::seats_with_status(&cluster.seat_map(show).await.unwrap(), "held");
    assert_eq!(held, vec!["A1", "A2"]);
    eventually("seats freed by expiry", Duration::from_secs(10), || async {
        let map = cluster.seat_map(show).await?;
        Ok(Cluster::seats_with_status(&map, "held").is_empty().then_some(()))
    })
    .await
    .unwrap();
    let (status, body) = user
        .send(reqwest::Method::GET, &format!("/v1/holds/{}", hold["hold_id"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["status"], "expired");
    let (status, body) =
        user.book(hold["hold_id"].as_str().unwrap(), "tok_success", "late").await.unwrap();
    assert_eq!(status, 410, "{body}");
    let other = cluster.user("next").await.unwrap();
    let (status, _) = other.hold(show, json!({"seats": ["A1", "A2"]})).await.unwrap();
    assert_eq!(status, 201);
}
