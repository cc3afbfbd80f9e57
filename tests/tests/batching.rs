//! Batching with real processes (docs/architecture.md, "Batching"): concurrent holds through
//! the gateway reach the show's leader many per call and share Raft entries, and the result is
//! what one-command entries would give: every seat granted once, every hold id distinct, ids
//! of later commands of an entry carrying their position, and replicas identical.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tests::{join_all, seat_list, Cluster, Options};

/// (hold id, seats) pairs granted to the clients.
type Granted = Arc<Mutex<Vec<(String, Vec<String>)>>>;

/// The sum and count of `marquee_node_proposal_batch_size` on a node.
async fn batch_sizes(http: &str) -> (f64, f64) {
    let text = reqwest::get(format!("http://{http}/metrics")).await.unwrap().text().await.unwrap();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok()))
            .unwrap_or(0.0)
    };
    (value("marquee_node_proposal_batch_size_sum"), value("marquee_node_proposal_batch_size_count"))
}

/// 60 customers each hold one seat of a 60-seat show at the same moment: all succeed with
/// distinct seats and hold ids, the leader carried several of them per entry, and every
/// replica ends with the same state.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_holds_share_entries_and_every_seat_is_granted_once() {
    let cluster = Cluster::start(Options { shards: 1, ..Options::default() }).await.unwrap();
    let show = cluster.create_show(3, 20).await.unwrap();
    let users = cluster.users("batch", 60).await.unwrap();
    let mut before = Vec::new();
    for node in &cluster.nodes {
        before.push(batch_sizes(&node.http).await);
    }
    let granted: Granted = Arc::default();
    // Several rounds, so at least one finds many holds queued at once even on a slow machine.
    for round in 0..3 {
        join_all(users.iter().enumerate().map(|(i, user)| {
            let granted = Arc::clone(&granted);
            async move {
                let (status, body) = user
                    .hold(show, json!({ "quantity": 1, "category": "standard" }))
                    .await
                    .unwrap();
                match status {
                    201 => granted
                        .lock()
                        .unwrap()
                        .push((body["hold_id"].as_str().unwrap().to_owned(), seat_list(&body))),
                    // Later rounds: the show is full, or the account has its two holds.
                    409 if round > 0 => {}
                    other => panic!("user {i} round {round}: {other} {body}"),
                }
            }
        }))
        .await;
    }
    let granted = granted.lock().unwrap().clone();
    assert_eq!(granted.len(), 60, "every seat held exactly once in all: {granted:?}");
    let mut owner_of: BTreeMap<String, String> = BTreeMap::new();
    for (hold_id, seats) in &granted {
        assert_eq!(seats.len(), 1);
        if let Some(other) = owner_of.insert(seats[0].clone(), hold_id.clone()) {
            panic!("seat {} granted to {other} and {hold_id}", seats[0]);
        }
    }
    let ids: BTreeSet<&String> = granted.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), granted.len(), "hold ids are distinct");
    let mut after = Vec::new();
    for node in &cluster.nodes {
        after.push(batch_sizes(&node.http).await);
    }
    let (proposals, entries) = before
        .iter()
        .zip(&after)
        .fold((0.0, 0.0), |acc, (b, a)| (acc.0 + a.0 - b.0, acc.1 + a.1 - b.1));
    assert!(proposals >= 60.0, "the holds went through the proposers: {proposals}");
    assert!(
        proposals > entries,
        "some entry carried several proposals ({proposals} proposals in {entries} entries)"
    );
    assert!(
        granted.iter().any(|(id, _)| id.matches('-').count() == 2),
        "a batched hold's id names its position in the entry: {ids:?}"
    );
    let statuses = cluster.converged(Duration::from_secs(20)).await.unwrap();
    assert!(!statuses.is_empty());
}
