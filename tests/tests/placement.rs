//! The placement loop with real processes (docs/operations.md, "Self-repair and leader
//! balance"): no operator runs `marqueectl` here. A killed node's replicas are re-created on
//! the other nodes while bookings go on; when it comes back it deletes the replicas it lost
//! without disturbing the groups' leaders; leaders spread again after a restart.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tests::{audit, eventually, seat_list, Cluster, Options};

/// Upper bound on a load loop, whatever happens.
const LOAD_LIMIT: Duration = Duration::from_secs(180);

fn ids(value: &Value) -> BTreeSet<u64> {
    value.as_array().into_iter().flatten().filter_map(Value::as_u64).collect()
}

/// Leaders per node id (every node listed), from `marqueectl status --json`.
fn leads(status: &Value) -> BTreeMap<u64, usize> {
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["node"].as_u64().unwrap(), n["leads"].as_array().map_or(0, Vec::len)))
        .collect()
}

/// Bookings made (then cancelled, so the show never sells out) by one client until `stop`:
/// (booking ids, failed attempts with what failed).
type Booked = Arc<Mutex<(Vec<String>, Vec<String>)>>;

/// Sends a request as a client of the API would: a 503 (`retry_after_s`) is retried, at most
/// five times (every call here is idempotent or harmless to repeat).
async fn patiently<F, Fut>(mut call: F) -> anyhow::Result<(u16, Value)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(u16, Value)>>,
{
    for _ in 0..5 {
        match call().await? {
            (503, body) => {
                eprintln!("503, retrying as asked: {}", body["detail"]);
                let after = body["retry_after_s"].as_u64().unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(after)).await;
            }
            answer => return Ok(answer),
        }
    }
    call().await
}

/// One hold -> book -> cancel round; the booking id, or what failed.
async fn round(user: &tests::User<'_>, show: u64, n: usize) -> Result<String, String> {
    let party = json!({"quantity": 1, "category": "standard"});
    let hold = match patiently(|| user.hold(show, party.clone())).await {
        Ok((201, hold)) => hold,
        other => return Err(format!("hold: {other:?}")),
    };
    let hold_id = hold["hold_id"].as_str().unwrap_or_default().to_owned();
    let key = format!("p-{n}");
    let booking = match patiently(|| user.book(&hold_id, "tok_success", &key)).await {
        Ok((201, booking)) => booking,
        other => return Err(format!("book {hold_id}: {other:?}")),
    };
    let id = booking["booking_id"].as_str().unwrap_or_default().to_owned();
    let path = format!("/v1/bookings/{id}/cancel");
    match patiently(|| user.send(reqwest::Method::POST, &path)).await {
        Ok((200, _)) => Ok(id),
        other => Err(format!("cancel {id}: {other:?}")),
    }
}

async fn book_until(cluster: &Cluster, show: u64, stop: &AtomicBool, booked: &Booked) {
    let users = cluster.users("load", 8).await.unwrap();
    let started = Instant::now();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) && started.elapsed() < LOAD_LIMIT {
        n += 1;
        let outcome = round(&users[n % users.len()], show, n).await;
        {
            let mut booked = booked.lock().unwrap();
            match outcome {
                Ok(id) => booked.0.push(id),
                Err(e) => booked.1.push(e),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_replicas_return_elsewhere_and_it_drops_them_when_back() {
    let options = Options {
        nodes: 4,
        shards: 3,
        placement_interval_s: 1,
        repair_after_s: 5,
        ..Options::default()
    };
    let cluster = Cluster::start(options).await.unwrap();
    let show = cluster.create_show(4, 10).await.unwrap();
    let status = cluster.ctl_status().await.unwrap();
    // The victim: a node holding replicas, not the meta leader (a meta leader change only
    // restarts the loop's clock; this keeps the test short).
    let meta_leader = status["groups"][0]["leader"].as_u64().unwrap();
    let victim = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["node"].as_u64() != Some(meta_leader))
        .max_by_key(|n| n["replicas"].as_array().map_or(0, Vec::len))
        .map(|n| n["node"].as_u64().unwrap())
        .unwrap();
    let index = cluster.nodes.iter().position(|n| n.id == victim).unwrap();
    eprintln!("killing node {victim}; status before: {}", status["placement"]);

    let stop = AtomicBool::new(false);
    let booked: Booked = Arc::default();
    let load = book_until(&cluster, show, &stop, &booked);
    let repair = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        cluster.nodes[index].kill();
        // Every group back to three voters, none of them the dead node, with no operator.
        let repaired = eventually(
            "replicas re-created off the dead node",
            Duration::from_secs(120),
            || async {
                let status = cluster.ctl_status().await?;
                let done = status["groups"].as_array().unwrap().iter().all(|g| {
                    let voters = ids(&g["voters"]);
                    let replicas = ids(&g["replicas"]);
                    voters.len() == 3 && !voters.contains(&victim) && voters == replicas
                });
                Ok(done.then_some(status))
            },
        )
        .await
        .unwrap();
        eprintln!("repaired: {}", repaired["placement"]);
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::Relaxed);
    };
    tokio::join!(load, repair);
    let (acknowledged, failures) = booked.lock().unwrap().clone();
    assert!(acknowledged.len() >= 5, "too few bookings to say anything: {}", acknowledged.len());
    assert!(failures.is_empty(), "bookings failed during the repair: {failures:?}");

    // The node comes back: its replicas were moved away, so it deletes them; the groups keep
    // their leaders and terms.
    let before = cluster.ctl_status().await.unwrap();
    let terms = |status: &Value| -> Vec<(u64, u64)> {
        status["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| (g["leader"].as_u64().unwrap_or(0), g["term"].as_u64().unwrap_or(0)))
            .collect()
    };
    cluster.restart(index).unwrap();
    eventually(
        "the returning node to drop the replicas it lost",
        Duration::from_secs(60),
        || async {
            let hosted = cluster.nodes[index].statuses().await?;
            Ok(hosted.is_empty().then_some(()))
        },
    )
    .await
    .unwrap();
    let after = cluster.ctl_status().await.unwrap();
    assert_eq!(terms(&before), terms(&after), "a returning node disturbed the groups' leaders");

    // And the data is whole: a fresh booking works and the replicas agree.
    let user = cluster.user("after").await.unwrap();
    let (status, hold) =
        user.hold(show, json!({"quantity": 2, "category": "standard"})).await.unwrap();
    assert_eq!(status, 201, "{hold}");
    let (status, booking) =
        user.book(hold["hold_id"].as_str().unwrap(), "tok_success", "after-1").await.unwrap();
    assert_eq!(status, 201, "{booking}");
    let id = booking["booking_id"].as_str().unwrap().to_owned();
    audit(&cluster, show, &[(id, seat_list(&booking))]).await.unwrap();
    cluster.all_converged(Duration::from_secs(30)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_spread_again_after_a_restart_without_an_operator() {
    let options = Options { nodes: 3, shards: 5, placement_interval_s: 1, ..Options::default() };
    let cluster = Cluster::start(options).await.unwrap();
    let balanced = |leads: &BTreeMap<u64, usize>| {
        let (min, max) = (leads.values().min().copied(), leads.values().max().copied());
        leads.values().sum::<usize>() == 6 && max.zip(min).is_some_and(|(max, min)| max - min <= 1)
    };
    eventually("leaders spread at start", Duration::from_secs(60), || async {
        Ok(balanced(&leads(&cluster.ctl_status().await?)).then_some(()))
    })
    .await
    .unwrap();
    // Restart the node leading the most: its groups elect other leaders, and it comes back
    // leading nothing.
    let status = cluster.ctl_status().await.unwrap();
    let (&busiest, _) = leads(&status).iter().max_by_key(|(_, n)| **n).unwrap();
    let index = cluster.nodes.iter().position(|n| n.id == busiest).unwrap();
    cluster.nodes[index].kill();
    eventually("every group led by the others", Duration::from_secs(60), || async {
        let status = cluster.ctl_status().await?;
        let led = leads(&status);
        let all = status["groups"].as_array().unwrap().iter().all(|g| g["leader"].is_u64());
        Ok((all && led.get(&busiest).copied().unwrap_or(0) == 0).then_some(()))
    })
    .await
    .unwrap();
    cluster.restart(index).unwrap();
    let spread = eventually("leaders spread again", Duration::from_secs(90), || async {
        let led = leads(&cluster.ctl_status().await?);
        Ok(balanced(&led).then_some(led))
    })
    .await
    .unwrap();
    assert!(spread[&busiest] >= 1, "the restarted node leads nothing: {spread:?}");
}
