//! Multi-Raft with real processes: a 5-node cluster with 16 inventory shards keeps booking
//! while a node is added and replicas rebalanced onto it, another node is drained and
//! removed, and leaders are balanced; afterwards no seat is sold twice, no acknowledged
//! booking is lost, every group has 3 voters and equal replicas have equal digests.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tests::{audit, behaviour, eventually, join_all, seat_list, Cluster, Options};

const SHARDS: u64 = 16;
/// Upper bound on the load loop, whatever happens to the operations.
const LOAD_LIMIT: Duration = Duration::from_secs(240);

/// Acknowledged bookings per show, and bookings per phase.
#[derive(Default)]
struct Ledger {
    acknowledged: BTreeMap<u64, Vec<(String, Vec<String>)>>,
    by_phase: BTreeMap<&'static str, usize>,
    failures: usize,
}

fn group(status: &Value, id: u64) -> &Value {
    status["groups"].as_array().unwrap().iter().find(|g| g["group"] == id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_continue_through_add_drain_and_rebalance() {
    let seed: u64 = std::env::var("MARQUEE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("MARQUEE_SEED={seed}");
    // Small snapshot thresholds: logs are purged behind snapshots, so replicas moved onto a
    // node catch up by snapshot install, not only by log replay.
    let options = Options {
        nodes: 5,
        shards: SHARDS,
        snapshot_logs: 50,
        logs_kept: 10,
        ..Options::default()
    };
    let cluster = Cluster::start(options).await.unwrap();
    let shows = behaviour!(each_new_show_goes_to_the_least_loaded_shard(&cluster)).await;

    let phase: Arc<Mutex<&'static str>> = Arc::new(Mutex::new("steady"));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let ops = Arc::new(AtomicUsize::new(0));

    let cluster_ref = &cluster;
    // Sixteen accounts per client, used in turn (an account may hold at most 2 holds per show).
    let pool = cluster.users("c", 4 * 16).await.unwrap();
    let pool = &pool;
    let clients = (0..4u64).map(|c| {
        let (phase, ledger, stop, ops, shows) =
            (phase.clone(), ledger.clone(), stop.clone(), ops.clone(), shows.clone());
        async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ c);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && started.elapsed() < LOAD_LIMIT {
                n += 1;
                let show = shows[rng.random_range(0..shows.len())];
                let user = &pool[c as usize * 16 + n as usize % 16];
                let at = *phase.lock().unwrap();
                let held = user.hold(show, json!({"quantity": 2, "category": "standard"})).await;
                ops.fetch_add(1, Ordering::Relaxed);
                let Ok((201, hold)) = held else {
                    ledger.lock().unwrap().failures += 1;
                    continue;
                };
                let hold_id = hold["hold_id"].as_str().unwrap().to_owned();
                if rng.random_bool(0.2) {
                    let _ =
                        user.send(reqwest::Method::DELETE, &format!("/v1/holds/{hold_id}")).await;
                    continue;
                }
                match user.book(&hold_id, "tok_success", &format!("k{c}-{n}")).await {
                    Ok((201, booking)) => {
                        let id = booking["booking_id"].as_str().unwrap().to_owned();
                        {
                            let mut ledger = ledger.lock().unwrap();
                            *ledger.by_phase.entry(at).or_default() += 1;
                        }
                        // Cancel some, so seats come back and the shows never sell out. A
                        // cancel whose outcome is unknown leaves the booking unasserted.
                        if rng.random_bool(0.4) {
                            let path = format!("/v1/bookings/{id}/cancel");
                            let _ = user.send(reqwest::Method::POST, &path).await;
                        } else {
                            let mut ledger = ledger.lock().unwrap();
                            ledger
                                .acknowledged
                                .entry(show)
                                .or_default()
                                .push((id, seat_list(&booking)));
                        }
                    }
                    _ => ledger.lock().unwrap().failures += 1,
                }
            }
        }
    });
    let load = async {
        join_all(clients).await;
    };

    let operations = async {
        behaviour!(bookings_are_made_in_steady_state(&ledger)).await;
        let node6 = behaviour!(a_joining_node_registers_and_rebalancing_moves_replicas_onto_it(
            cluster_ref,
            &phase,
            &ledger
        ))
        .await;
        behaviour!(a_drained_node_is_removed_and_can_stop(cluster_ref, &phase, &ledger)).await;
        behaviour!(leaders_are_balanced_while_bookings_continue(cluster_ref, &phase, &ledger))
            .await;
        stop.store(true, Ordering::Relaxed);
        node6
    };
    let ((), node6) = tokio::join!(load, operations);

    let ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap();
    eprintln!(
        "operations {}, bookings by phase {:?}, failed attempts {}",
        ops.load(Ordering::Relaxed),
        ledger.by_phase,
        ledger.failures
    );

    let status = cluster.ctl_status().await.unwrap();
    behaviour!(every_group_has_three_voters_and_none_on_the_drained_node(&status)).await;
    behaviour!(no_node_leads_more_than_its_share_plus_one(&status)).await;
    // Same applied index => same digest on every replica of every group (node 6 included).
    let mut everyone: Vec<&tests::Node> = cluster.nodes.iter().filter(|n| n.is_running()).collect();
    everyone.push(&node6);
    behaviour!(every_replica_of_every_group_converges_to_the_same_digest(&everyone)).await;
    behaviour!(logs_were_purged_behind_snapshots(&everyone)).await;
    behaviour!(no_seat_is_sold_twice_and_no_acknowledged_booking_is_lost(
        &cluster, &shows, &ledger
    ))
    .await;
}

/// One show per shard: the meta group places each new show on the least-loaded shard.
async fn each_new_show_goes_to_the_least_loaded_shard(cluster: &Cluster) -> Vec<u64> {
    let mut shows = Vec::new();
    for _ in 0..SHARDS {
        shows.push(cluster.create_show(20, 30).await.unwrap());
    }
    let status = cluster.ctl_status().await.unwrap();
    for shard in 1..=SHARDS {
        assert_eq!(group(&status, shard)["shows"], 1, "one show per shard: {status}");
    }
    shows
}

/// Waits until at least 3 bookings were made during phase `name`.
async fn bookings_during(ledger: &Mutex<Ledger>, name: &'static str) {
    eventually(&format!("bookings during {name}"), Duration::from_secs(90), || async {
        let done = ledger.lock().unwrap().by_phase.get(name).copied().unwrap_or(0);
        Ok((done >= 3).then_some(()))
    })
    .await
    .unwrap();
}

async fn bookings_are_made_in_steady_state(ledger: &Mutex<Ledger>) {
    bookings_during(ledger, "steady").await;
}

/// Add node 6: it registers itself, then rebalancing moves replicas onto it. Returns node 6.
async fn a_joining_node_registers_and_rebalancing_moves_replicas_onto_it(
    cluster: &Cluster,
    phase: &Mutex<&'static str>,
    ledger: &Mutex<Ledger>,
) -> tests::Node {
    *phase.lock().unwrap() = "add";
    let node6 = cluster.joining_node(6).unwrap();
    eventually("node 6 to register", Duration::from_secs(30), || async {
        let status = cluster.ctl_status().await?;
        Ok(status["nodes"].as_array().is_some_and(|n| n.len() == 6).then_some(()))
    })
    .await
    .unwrap();
    cluster.ctl(&["rebalance"]).await.unwrap();
    bookings_during(ledger, "add").await;
    let status = cluster.ctl_status().await.unwrap();
    let node6_replicas =
        status["nodes"].as_array().unwrap()[5]["replicas"].as_array().unwrap().len();
    assert!(node6_replicas >= 7, "rebalance moved replicas to node 6: {status}");
    node6
}

/// Drain node 2 and remove it; then it can stop.
async fn a_drained_node_is_removed_and_can_stop(
    cluster: &Cluster,
    phase: &Mutex<&'static str>,
    ledger: &Mutex<Ledger>,
) {
    *phase.lock().unwrap() = "drain";
    cluster.ctl(&["drain", "--node=2", "--remove"]).await.unwrap();
    bookings_during(ledger, "drain").await;
    cluster.nodes[1].terminate(Duration::from_secs(20)).unwrap();
}

/// Balance leaders over the remaining five.
async fn leaders_are_balanced_while_bookings_continue(
    cluster: &Cluster,
    phase: &Mutex<&'static str>,
    ledger: &Mutex<Ledger>,
) {
    *phase.lock().unwrap() = "balance";
    cluster.ctl(&["balance-leaders"]).await.unwrap();
    bookings_during(ledger, "balance").await;
}

/// Every group: 3 voters, no learners left, none on node 2; the map agrees.
async fn every_group_has_three_voters_and_none_on_the_drained_node(status: &Value) {
    for g in status["groups"].as_array().unwrap() {
        let voters = g["voters"].as_array().unwrap();
        assert_eq!(voters.len(), 3, "group {} has 3 voters: {g}", g["group"]);
        assert!(!voters.contains(&json!(2)), "node 2 was drained: {g}");
        assert_eq!(g["learners"], json!([]), "no learner left behind: {g}");
        assert_eq!(g["replicas"], g["voters"], "the map records the membership: {g}");
    }
    let node2 = status["nodes"].as_array().unwrap().iter().find(|n| n["node"] == 2).unwrap();
    assert_eq!(node2["state"], "removed");
}

/// Leaders are spread: nobody leads more than its share plus one.
async fn no_node_leads_more_than_its_share_plus_one(status: &Value) {
    let groups = status["groups"].as_array().unwrap().len();
    for node in status["nodes"].as_array().unwrap().iter().filter(|n| n["state"] == "active") {
        let leads = node["leads"].as_array().unwrap().len();
        assert!(
            leads <= groups.div_ceil(5) + 1,
            "node {} leads {leads} of {groups}: {status}",
            node["node"]
        );
    }
}

/// Same applied index => same digest on every replica of every group.
async fn every_replica_of_every_group_converges_to_the_same_digest(everyone: &[&tests::Node]) {
    eventually("all replicas to converge", Duration::from_secs(60), || async {
        let mut groups = BTreeMap::<u64, Vec<(u64, u64)>>::new();
        for node in everyone {
            for g in node.statuses().await? {
                groups.entry(g.group_id).or_default().push((g.applied_index, g.digest));
            }
        }
        let converged = groups.len() == SHARDS as usize + 1
            && groups.values().all(|r| r.len() == 3 && r.iter().all(|x| *x == r[0]));
        Ok(converged.then_some(()))
    })
    .await
    .unwrap();
}

/// Logs were purged behind snapshots on the busy shards (so moves relied on snapshots).
async fn logs_were_purged_behind_snapshots(everyone: &[&tests::Node]) {
    let mut purged = 0;
    for node in everyone {
        purged += node.statuses().await.unwrap().iter().filter(|g| g.purged_index > 0).count();
    }
    assert!(purged > 0, "some replica purged its log behind a snapshot");
}

async fn no_seat_is_sold_twice_and_no_acknowledged_booking_is_lost(
    cluster: &Cluster,
    shows: &[u64],
    ledger: &Ledger,
) {
    let mut total = 0;
    for show in shows {
        let acknowledged = ledger.acknowledged.get(show).cloned().unwrap_or_default();
        total += audit(cluster, *show, &acknowledged).await.unwrap();
    }
    assert!(total >= 12, "bookings were made: {total}");
}
