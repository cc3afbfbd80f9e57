//! Disk faults with real processes (docs/reliability.md, "Disk faults"): a node whose disk
//! fills acknowledges nothing more, says why (`/readyz`, metrics, log), keeps no client waiting
//! (the other replicas carry on), and restarts itself once space returns, then catches up; a
//! damaged log record stops a node at startup with an error naming the group and the entry,
//! not a panic and not a silent divergence.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;
use tests::load::{book_until, Ledger};
use tests::{audit, seat_list, Cluster, Options};

const LOAD_LIMIT: Duration = Duration::from_secs(180);
/// Node 3's data directory is a tmpfs of this size.
const SMALL_DISK_MB: u64 = 384;

/// Writes zeros into `path` until the filesystem is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 1024 * 1024];
    let mut written = 0;
    loop {
        match file.write(&chunk) {
            Ok(0) | Err(_) => return written,
            Ok(n) => written += n as u64,
        }
    }
}

/// `(status, body)` of a node's HTTP endpoint.
async fn get(http: &str, path: &str) -> (u16, String) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    match client.get(format!("http://{http}{path}")).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// The value of an unlabelled metric in a node's `/metrics`.
async fn metric(http: &str, name: &str) -> Option<f64> {
    let (_, body) = get(http, "/metrics").await;
    body.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_a_node_cleanly_and_it_restarts_when_space_returns() {
    let cluster = Cluster::start(Options {
        shards: 2,
        small_disk: Some((3, SMALL_DISK_MB)),
        ..Options::default()
    })
    .await
    .unwrap();
    let show = cluster.create_show(20, 20).await.unwrap();
    let users = cluster.users("disk", 6).await.unwrap();
    let node3 = &cluster.nodes[2];
    let pid_before = node3.pid().unwrap();

    // Bookings before the disk fills.
    let before = Mutex::new(Ledger::default());
    let stop = AtomicBool::new(false);
    let load = book_until(&users[..3], show, &stop, LOAD_LIMIT, Duration::from_millis(20), &before);
    let pause = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::Relaxed);
    };
    tokio::join!(load, pause);
    let before = before.into_inner().unwrap();
    assert!(before.failures.is_empty(), "{:?}", before.failures);

    // Fill node 3's disk while other clients keep booking: its next write fails.
    let filler = node3.data_dir_outside().unwrap().join("filler");
    let during = Mutex::new(Ledger::default());
    let stop = AtomicBool::new(false);
    let load = book_until(&users[3..], show, &stop, LOAD_LIMIT, Duration::from_millis(20), &during);
    let fault = async {
        let path = filler.clone();
        let written = tokio::task::spawn_blocking(move || fill(&path)).await.unwrap();
        assert!(written > 0, "nothing could be written to the small disk");
        // It says why: not ready, with the error; the gauge; the log.
        wait_for("node 3 to report its storage failed", Duration::from_secs(60), || async {
            let (status, body) = get(&node3.http, "/readyz").await;
            status == 503 && body.contains("storage failed")
        })
        .await;
        let (_, body) = get(&node3.http, "/readyz").await;
        assert!(body.contains("disk almost full"), "{body}");
        assert_eq!(metric(&node3.http, "marquee_node_storage_failed").await, Some(1.0));
        assert!(
            metric(&node3.http, "marquee_node_storage_failed_writes_total").await.unwrap() >= 1.0
        );
        let log = std::fs::read_to_string(node3.log_path()).unwrap();
        assert!(log.contains("storage failed") && log.contains("disk almost full"), "logged");
        // Bookings go on without it for a while.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(node3.exited().is_none(), "the node stays up while its disk is full");
        stop.store(true, Ordering::Relaxed);
    };
    tokio::join!(load, fault);
    let during = during.into_inner().unwrap();
    assert!(
        during.failures.is_empty(),
        "bookings failed while a disk was full: {:?}",
        during.failures
    );
    assert!(!during.kept.is_empty(), "no booking went through while node 3's disk was full");

    // Space returns: the node restarts itself in place and catches up.
    std::fs::remove_file(&filler).unwrap();
    wait_for("node 3 to restart and be ready", Duration::from_secs(90), || async {
        get(&node3.http, "/readyz").await.0 == 200
    })
    .await;
    assert_eq!(node3.pid(), Some(pid_before), "restarted in place (same pid)");
    let log = std::fs::read_to_string(node3.log_path()).unwrap();
    assert!(log.contains("storage usable again: restarting"), "the restart is logged");
    assert_eq!(metric(&node3.http, "marquee_node_storage_failed").await, Some(0.0));
    cluster.all_converged(Duration::from_secs(60)).await.unwrap();

    // Nothing acknowledged was lost, no seat was sold twice, and node 3 serves bookings again.
    let mut acknowledged: Vec<(String, Vec<String>)> =
        before.kept.iter().map(|(_, id, seats)| (id.clone(), seats.clone())).collect();
    acknowledged.extend(during.kept.iter().map(|(_, id, seats)| (id.clone(), seats.clone())));
    audit(&cluster, show, &acknowledged).await.unwrap();
    let user = cluster.user("after-disk").await.unwrap();
    let (status, hold) =
        user.hold(show, json!({"quantity": 2, "category": "standard"})).await.unwrap();
    assert_eq!(status, 201, "{hold}");
    assert_eq!(seat_list(&hold).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_log_record_is_named_at_startup() {
    let cluster = Cluster::start(Options::default()).await.unwrap();
    let show = cluster.create_show(10, 10).await.unwrap();
    let user = cluster.user("damaged").await.unwrap();
    for _ in 0..2 {
        let (status, hold) =
            user.hold(show, json!({"quantity": 1, "category": "standard"})).await.unwrap();
        assert_eq!(status, 201, "{hold}");
    }
    cluster.converged(Duration::from_secs(30)).await.unwrap();
    let node2 = &cluster.nodes[1];
    let applied = node2.status().await.unwrap().applied_index;
    node2.terminate(Duration::from_secs(30)).unwrap();

    // Damage one entry of shard 1's log in node 2's database, as a bad disk or a bug would.
    let victim = applied / 2 + 1;
    {
        let db = raft_store::Db::open(&node2.data_dir().unwrap().join("db"), true).unwrap();
        let key = raft_store::keys::log_key(proto::GroupId(1), victim);
        assert!(db.get(raft_store::keys::CF_LOG, &key).unwrap().is_some(), "entry {victim} exists");
        let cf = db.raw().unwrap().cf_handle(raft_store::keys::CF_LOG).unwrap();
        db.raw().unwrap().put_cf(&cf, key, br#"{"log_id": {"leader_id": "#).unwrap();
    }

    // The node refuses to start, naming the group and the entry; no panic.
    cluster.restart(1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(code) = node2.exited() {
            break code;
        }
        assert!(Instant::now() < deadline, "a node with a damaged log kept running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(code, Some(0), "it must fail");
    let log = std::fs::read_to_string(node2.log_path()).unwrap();
    let expected = format!("group 1: log entry {victim} is undecodable");
    assert!(log.contains(&expected), "log must name the damaged record ({expected}):\n{log}");
    assert!(!log.contains("panicked"), "no panic:\n{log}");

    // The other two keep booking.
    let user = cluster.user("damaged-after").await.unwrap();
    let (status, hold) =
        user.hold(show, json!({"quantity": 1, "category": "standard"})).await.unwrap();
    assert_eq!(status, 201, "{hold}");
}
