//! A rolling restart under load, with real processes (docs/operations.md, "Rolling restart and
//! upgrade"): every node of a 5-node cluster is stopped with SIGTERM and started again, one at
//! a time, while clients book. A stopping node first hands its leaderships to other voters, so
//! no group is left waiting out an election; no booking fails and none is sold twice or lost.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tests::load::{book_until, Ledger};
use tests::{audit, behaviour, join_all, Cluster, Options};

const LOAD_LIMIT: Duration = Duration::from_secs(300);

/// Groups that no running node leads right now.
async fn leaderless(cluster: &Cluster) -> Vec<u64> {
    let mut led: BTreeMap<u64, bool> = BTreeMap::new();
    for node in cluster.nodes.iter().filter(|n| n.is_running()) {
        for status in node.statuses().await.unwrap_or_default() {
            *led.entry(status.group_id).or_default() |= status.is_leader;
        }
    }
    led.into_iter().filter(|(_, led)| !led).map(|(group, _)| group).collect()
}

/// Stops node `index` with SIGTERM, checks it handed its leaderships off before exiting (every
/// group has a running leader the moment it is gone: an election would take at least the
/// 750 ms election timeout), and starts it again.
async fn restart_gracefully(cluster: &Cluster, index: usize) {
    if index == 0 {
        // The first node the way the Kubernetes preStop hook does it: `marqueectl hand-off`
        // against the node's own address, then SIGTERM (which then finds nothing to hand off).
        let own = vec![cluster.nodes[index].grpc.clone()];
        cluster.ctl_via(&own, &["hand-off"]).await.unwrap();
        let led: Vec<u64> = cluster.nodes[index]
            .statuses()
            .await
            .unwrap()
            .iter()
            .filter(|s| s.is_leader)
            .map(|s| s.group_id)
            .collect();
        assert!(led.is_empty(), "after marqueectl hand-off node 1 still leads {led:?}");
    }
    let exit = cluster.nodes[index].terminate(Duration::from_secs(30)).unwrap();
    assert_eq!(exit, Some(0), "node {} exit code", cluster.nodes[index].id);
    let orphans = leaderless(cluster).await;
    if !orphans.is_empty() {
        let log = std::fs::read_to_string(cluster.nodes[index].log_path()).unwrap_or_default();
        let handoff: Vec<&str> =
            log.lines().filter(|l| l.contains("hand") || l.contains("placement")).collect();
        panic!(
            "node {} stopped while still leading groups {orphans:?}; its hand-off:\n{}",
            cluster.nodes[index].id,
            handoff.join("\n")
        );
    }
    cluster.restart(index).unwrap();
    // The clients keep writing: wait until the restarted node caught up, not for a moment
    // when every replica sits at one index (under load that may not come within a minute).
    cluster.caught_up(Duration::from_secs(60)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_fails_no_booking() {
    let options = Options { nodes: 5, shards: 4, ..Options::default() };
    let cluster = Cluster::start(options).await.unwrap();
    let mut shows = Vec::new();
    for _ in 0..3 {
        shows.push(cluster.create_show(20, 20).await.unwrap());
    }
    let users = cluster.users("rolling", 3 * 6).await.unwrap();
    let stop = AtomicBool::new(false);
    let ledger = Mutex::new(Ledger::default());
    let clients = shows.iter().zip(users.chunks(6)).map(|(show, users)| {
        book_until(users, *show, &stop, LOAD_LIMIT, Duration::from_millis(30), &ledger)
    });
    let restarts = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        for index in 0..cluster.nodes.len() {
            behaviour!(restart_gracefully(&cluster, index)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::Relaxed);
    };
    tokio::join!(join_all(clients), restarts);

    let ledger = ledger.into_inner().unwrap();
    eprintln!(
        "bookings kept {}, cancelled {}, failures {}",
        ledger.kept.len(),
        ledger.cancelled,
        ledger.failures.len()
    );
    assert!(ledger.kept.len() >= 10, "too few bookings to say anything");
    assert!(ledger.failures.is_empty(), "failed during the rolling restart: {:?}", ledger.failures);
    for show in &shows {
        let kept: Vec<(String, Vec<String>)> = ledger
            .kept
            .iter()
            .filter(|(s, _, _)| s == show)
            .map(|(_, id, seats)| (id.clone(), seats.clone()))
            .collect();
        audit(&cluster, *show, &kept).await.unwrap();
    }
    cluster.all_converged(Duration::from_secs(60)).await.unwrap();
}
