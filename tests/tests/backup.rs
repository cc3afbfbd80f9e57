//! Online backup with real processes (docs/operations.md, "Backup and restore"): `marqueectl
//! backup` while clients book fails no booking, writes a checkpoint of every node with a
//! manifest whose checksums `verify-backup` checks (and a damaged file fails), and never
//! overwrites a backup. Restoring one is tested in `restore.rs`.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use tests::load::{book_until, Ledger};
use tests::{audit, seat_list, Cluster, Options};

const LOAD_LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_is_complete_and_verifiable() {
    let cluster = Cluster::start(Options { shards: 2, ..Options::default() }).await.unwrap();
    let show = cluster.create_show(20, 20).await.unwrap();
    let users = cluster.users("backup", 6).await.unwrap();

    // Bookings acknowledged before the backup starts.
    let before = Mutex::new(Ledger::default());
    let stop = AtomicBool::new(false);
    let load = book_until(&users[..3], show, &stop, LOAD_LIMIT, Duration::from_millis(20), &before);
    let pause = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.store(true, Ordering::Relaxed);
    };
    tokio::join!(load, pause);
    let before = before.into_inner().unwrap();
    assert!(before.failures.is_empty(), "{:?}", before.failures);
    assert!(before.kept.len() >= 5, "too few bookings before the backup: {}", before.kept.len());

    // The backup, while other clients keep booking.
    let backup_dir = cluster.dir.path().join("backup-b1");
    let during = Mutex::new(Ledger::default());
    let stop = AtomicBool::new(false);
    let load = book_until(&users[3..], show, &stop, LOAD_LIMIT, Duration::from_millis(20), &during);
    let take = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let to = backup_dir.display().to_string();
        let out = cluster.ctl(&["backup", "--name", "b1", "--to", &to]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        out
    };
    let ((), taken) = tokio::join!(load, take);
    taken.unwrap();
    let during = during.into_inner().unwrap();
    assert!(during.failures.is_empty(), "bookings failed during the backup: {:?}", during.failures);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(backup_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["nodes"].as_array().unwrap().len(), 3, "{manifest}");
    assert!(manifest["nodes"].as_array().unwrap().iter().all(|n| n["copied"] == true));

    // Every group is in it from a majority of its replicas, and each holds at least what its
    // replica had applied when the bookings before the backup were acknowledged.
    let verified =
        cluster.ctl(&["verify-backup", "--from", &backup_dir.display().to_string()]).await;
    assert!(verified.unwrap().contains("every copied file matches"));
    for node in manifest["nodes"].as_array().unwrap() {
        let applied = node["applied"].as_object().unwrap();
        assert_eq!(applied.len(), 3, "every node hosts the meta group and both shards: {node}");
    }

    // A damaged file is detected.
    let node1 = backup_dir.join("node-1");
    let victim = manifest["nodes"][0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .find(|p| p.ends_with(".sst") || p.starts_with("MANIFEST"))
        .unwrap();
    let mut damaged = std::fs::read(node1.join(&victim)).unwrap();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    std::fs::write(node1.join(&victim), &damaged).unwrap();
    let from = backup_dir.display().to_string();
    let refused = cluster.ctl(&["verify-backup", "--from", &from]).await;
    let message = refused.expect_err("a damaged backup must be refused").to_string();
    assert!(message.contains("does not match the manifest"), "{message}");

    // The same name again is refused by the nodes (a backup is never overwritten), and the
    // cluster kept its bookings: the ones acknowledged before and during the backup are there.
    let again = cluster.dir.path().join("backup-b1-again").display().to_string();
    assert!(cluster.ctl(&["backup", "--name", "b1", "--to", &again]).await.is_err());
    let mut acknowledged: Vec<(String, Vec<String>)> =
        before.kept.iter().map(|(_, id, seats)| (id.clone(), seats.clone())).collect();
    acknowledged.extend(during.kept.iter().map(|(_, id, seats)| (id.clone(), seats.clone())));
    audit(&cluster, show, &acknowledged).await.unwrap();
    cluster.all_converged(Duration::from_secs(30)).await.unwrap();
    let user = cluster.user("after-backup").await.unwrap();
    let (status, hold) =
        user.hold(show, json!({"quantity": 2, "category": "standard"})).await.unwrap();
    assert_eq!(status, 201, "{hold}");
    assert_eq!(seat_list(&hold).len(), 2);
}
