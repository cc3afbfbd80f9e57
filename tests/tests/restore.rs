//! Restore from an online backup with real processes (docs/operations.md, "Backup and
//! restore"): a backup of a 3-node, 2-shard cluster taken while clients book is restored into
//! fresh data dirs of every node (`marquee-node --restore-from`), and the restored cluster
//! elects a leader in every group, holds every booking acknowledged before the backup, passes
//! the audit and takes new bookings. Restoring over a database, or at another address, is
//! refused; restarting with the flag still set is not a second restore.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;
use tests::load::{book_until, Ledger};
use tests::{audit, create_show_via, free_port, seat_list, Cluster, Options};

const LOAD_LIMIT: Duration = Duration::from_secs(120);
const PAUSE: Duration = Duration::from_millis(20);

/// Books on every show with its own users until `for_how_long` passes; returns the ledger of
/// each show.
async fn book_on(
    shows: &[(u64, Vec<tests::User<'_>>)],
    for_how_long: Duration,
) -> BTreeMap<u64, Ledger> {
    let ledgers: Vec<Mutex<Ledger>> = shows.iter().map(|_| Mutex::default()).collect();
    let stop = AtomicBool::new(false);
    let loads =
        futures_util::future::join_all(shows.iter().zip(&ledgers).map(
            |((show, users), ledger)| book_until(users, *show, &stop, LOAD_LIMIT, PAUSE, ledger),
        ));
    let pause = async {
        tokio::time::sleep(for_how_long).await;
        stop.store(true, Ordering::Relaxed);
    };
    tokio::join!(loads, pause);
    shows
        .iter()
        .map(|(show, _)| *show)
        .zip(ledgers.into_iter().map(|l| l.into_inner().unwrap()))
        .collect()
}

/// Runs `marquee-node` with `args` and expects it to exit with a failure whose output contains
/// `expected`.
fn refused(args: &[String], expected: &str) {
    let output = std::process::Command::new(tests::bin_dir().join("marquee-node"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "marquee-node {args:?} should have refused: {text}");
    assert!(text.contains(expected), "expected {expected:?} in: {text}");
}

/// Creates shows until each of the two shards has one; returns shard -> show.
async fn show_per_shard(cluster: &Cluster) -> BTreeMap<u64, u64> {
    let mut by_shard = BTreeMap::new();
    for _ in 0..12 {
        let show = create_show_via(
            &cluster.http,
            &cluster.url,
            cluster.admin_token(),
            20,
            20,
            4_102_444_800_000,
        )
        .await
        .unwrap();
        let (group, id) = (show["group"].as_u64().unwrap(), show["show_id"].as_u64().unwrap());
        by_shard.entry(group).or_insert(id);
        if by_shard.len() == 2 {
            break;
        }
    }
    assert_eq!(by_shard.len(), 2, "shows on both shards: {by_shard:?}");
    by_shard
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_into_a_cluster_that_passes_the_audit() {
    let mut cluster = Cluster::start(Options { shards: 2, ..Options::default() }).await.unwrap();

    let by_shard = show_per_shard(&cluster).await;
    // Each phase books with its own users (a client's idempotency keys are its own).
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for (shard, show) in &by_shard {
        first.push((*show, cluster.users(&format!("before-{shard}"), 3).await.unwrap()));
        second.push((*show, cluster.users(&format!("during-{shard}"), 3).await.unwrap()));
    }

    // Bookings acknowledged before the backup starts.
    let before = book_on(&first, Duration::from_secs(3)).await;
    for ledger in before.values() {
        assert!(ledger.failures.is_empty(), "{:?}", ledger.failures);
        assert!(ledger.kept.len() >= 3, "too few bookings before the backup: {ledger:?}");
    }

    // The backup, while the clients keep booking (and a little after it).
    let backup_dir = cluster.dir.path().join("backup-r1");
    let from = backup_dir.display().to_string();
    let take = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.ctl(&["backup", "--name", "r1", "--to", &from]).await
    };
    let (during, taken) = tokio::join!(book_on(&second, Duration::from_secs(4)), take);
    taken.unwrap();
    for ledger in during.values() {
        assert!(ledger.failures.is_empty(), "bookings failed during the backup: {ledger:?}");
    }

    // The cluster is lost: every node killed. The gateway stays; the restored nodes come back
    // at the same addresses, each on a fresh data dir restored from the backup.
    for node in &cluster.nodes {
        node.kill();
    }
    let node1 = cluster.nodes[0].args().to_vec();
    let original_dir = cluster.dir.path().join("node1").display().to_string();
    for i in 0..cluster.nodes.len() {
        let data_dir = cluster.dir.path().join(format!("restored{}", i + 1));
        let node = &mut cluster.nodes[i];
        node.set_flag("data-dir", &data_dir.display().to_string());
        node.set_flag("restore-from", &from);
        cluster.restart(i).unwrap();
    }
    cluster.wait_ready().await.unwrap();

    // Every group elects a leader and its replicas converge.
    for group in 0..=2 {
        cluster.leader_of(group).await.unwrap();
    }
    let groups = cluster.all_converged(Duration::from_secs(60)).await.unwrap();
    assert_eq!(groups.len(), 3, "{groups:?}");
    for (group, statuses) in &groups {
        assert_eq!(statuses.len(), 3, "group {group} on every node: {statuses:?}");
    }

    // Every booking acknowledged before the backup is there; nothing is sold twice.
    for (show, ledger) in &before {
        let acknowledged: Vec<(String, Vec<String>)> =
            ledger.kept.iter().map(|(_, id, seats)| (id.clone(), seats.clone())).collect();
        let total = audit(&cluster, *show, &acknowledged).await.unwrap();
        assert!(total >= acknowledged.len());
    }

    // New shows and bookings work on both shards, and the restored groups' log indexes start
    // far past the backup's (raft_store::restore::INDEX_JUMP): ids carry the index of the
    // entry that created them, so no id the old cluster issued, before or after the backup,
    // is issued again (the gateway's provider knows charges by booking id).
    let seq = |id: &str| id.split('-').nth(1).and_then(|s| s.parse::<u64>().ok()).unwrap();
    let user = cluster.user("after-restore").await.unwrap();
    for (shard, show) in &show_per_shard(&cluster).await {
        let (status, hold) =
            user.hold(*show, json!({"quantity": 2, "category": "standard"})).await.unwrap();
        assert_eq!(status, 201, "{hold}");
        let hold_id = hold["hold_id"].as_str().unwrap();
        let (status, booking) =
            user.book(hold_id, "tok_success", &format!("after-restore-{show}")).await.unwrap();
        assert_eq!(status, 201, "{booking}");
        assert_eq!(seat_list(&booking).len(), 2);
        let new = seq(booking["booking_id"].as_str().unwrap());
        let old = [&before, &during]
            .iter()
            .filter_map(|phase| phase.get(&by_shard[shard]))
            .flat_map(|ledger| ledger.kept.iter().map(|(_, id, _)| seq(id)))
            .max()
            .unwrap();
        assert!(
            new > old + (1 << 39),
            "shard {shard}: booking {new} must be far past every id issued before ({old})"
        );
    }
    for (show, ledger) in &before {
        let acknowledged: Vec<(String, Vec<String>)> =
            ledger.kept.iter().map(|(_, id, seats)| (id.clone(), seats.clone())).collect();
        audit(&cluster, *show, &acknowledged).await.unwrap();
    }

    // Restarting a node with the flag still set starts it on its restored data.
    cluster.nodes[1].kill();
    cluster.restart(1).unwrap();
    cluster.all_converged(Duration::from_secs(60)).await.unwrap();

    // The restore left the backup as it was.
    let verified = cluster.ctl(&["verify-backup", "--from", &from]).await;
    assert!(verified.unwrap().contains("every copied file matches"));

    // Refused: restoring over a database that was not restored from this backup, and running
    // a restored node at another address than the backup recorded.
    let with = |args: &[String], flag: &str, value: &str| -> Vec<String> {
        let prefix = format!("--{flag}=");
        let mut args: Vec<String> =
            args.iter().filter(|a| !a.starts_with(&prefix)).cloned().collect();
        args.push(format!("{prefix}{value}"));
        args
    };
    let elsewhere = |args: &[String]| {
        let args = with(args, "grpc-addr", &format!("127.0.0.1:{}", free_port()));
        with(&args, "http-addr", &format!("127.0.0.1:{}", free_port()))
    };
    let over_original = with(&elsewhere(&node1), "data-dir", &original_dir);
    refused(&with(&over_original, "restore-from", &from), "already holds a database");
    let fresh = cluster.dir.path().join("elsewhere").display().to_string();
    let moved = with(&elsewhere(&node1), "data-dir", &fresh);
    refused(&with(&moved, "restore-from", &from), "must run at its original address");
    assert!(!Path::new(&fresh).join("db").exists(), "a refused restore writes nothing");
}
