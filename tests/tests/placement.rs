//! The placement loop with real processes (docs/operations.md, "Self-repair and leader
//! balance"): no operator runs `marqueectl` here. A killed node's replicas are re-created on
//! the other nodes while bookings go on; when it comes back it deletes the replicas it lost
//! without disturbing the groups' leaders; leaders spread again after a restart; a repair
//! places the new replica outside the zones (`--zone`) of the replicas that stay.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use tests::load::{book_until, Ledger};
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
    let show = cluster.create_show(30, 20).await.unwrap();
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
    let ledger = Mutex::new(Ledger::default());
    let users = match cluster.users("load", 8).await {
        Ok(users) => users,
        Err(e) => {
            cluster.print_log_tails();
            panic!("{e}");
        }
    };
    let load = book_until(&users, show, &stop, LOAD_LIMIT, Duration::from_millis(100), &ledger);
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
    let ledger = ledger.into_inner().unwrap();
    let made = ledger.kept.len() + ledger.cancelled;
    assert!(made >= 5, "too few bookings to say anything: {made}");
    assert!(ledger.failures.is_empty(), "bookings failed during the repair: {:?}", ledger.failures);
    let kept: Vec<(String, Vec<String>)> =
        ledger.kept.iter().map(|(_, id, seats)| (id.clone(), seats.clone())).collect();

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
    let mut kept = kept;
    kept.push((id, seat_list(&booking)));
    audit(&cluster, show, &kept).await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_spread_over_zones_and_a_repair_keeps_them_spread() {
    // Zones a, b, c, a, c: once every group spans three zones, whichever two nodes stay in a
    // group of the dead node 3 (zone c), node 5 is the one candidate in a zone neither uses.
    let zones = ["a", "b", "c", "a", "c"];
    let options = Options {
        nodes: 5,
        shards: 3,
        placement_interval_s: 1,
        repair_after_s: 5,
        zones: zones.to_vec(),
        ..Options::default()
    };
    let cluster = Cluster::start(options).await.unwrap();
    let zone_of = |id: u64| zones[usize::try_from(id - 1).unwrap()];
    // Every node registers its zone and status shows it.
    let status =
        eventually("every node's zone in the registry", Duration::from_secs(30), || async {
            let status = cluster.ctl_status().await?;
            let registered = status["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["zone"].as_str() == Some(zone_of(n["node"].as_u64().unwrap())));
            Ok(registered.then_some(status))
        })
        .await
        .unwrap();
    // Initial placement knows nothing of zones: shard 3 starts on nodes 3, 4, 5 (zones c, a,
    // c). The loop moves one of the two zone-c replicas to node 2, the only zone-b node, and
    // then every group spans three zones.
    let zones_of =
        |g: &Value| -> Vec<&str> { ids(&g["voters"]).into_iter().map(zone_of).collect() };
    let doubled = |status: &Value| -> Vec<u64> {
        status["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| {
                let zones = zones_of(g);
                zones.iter().collect::<BTreeSet<_>>().len() < zones.len()
            })
            .map(|g| g["group"].as_u64().unwrap())
            .collect()
    };
    assert!(
        !doubled(&status).is_empty(),
        "no group starts with two replicas in one zone: {status}"
    );
    let status =
        eventually("every group spread over three zones", Duration::from_secs(90), || async {
            let status = cluster.ctl_status().await?;
            let settled = doubled(&status).is_empty()
                && status["groups"].as_array().unwrap().iter().all(|g| {
                    ids(&g["voters"]).len() == 3 && ids(&g["voters"]) == ids(&g["replicas"])
                });
            Ok(settled.then_some(status))
        })
        .await
        .unwrap();
    let victim = 3;
    let before: BTreeMap<u64, BTreeSet<u64>> = status["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["group"].as_u64().unwrap(), ids(&g["voters"])))
        .filter(|(_, voters)| voters.contains(&victim))
        .collect();
    assert!(!before.is_empty(), "node {victim} holds replicas: {status}");
    cluster.nodes[2].kill();
    let after = eventually("replicas re-created off node 3", Duration::from_secs(120), || async {
        let status = cluster.ctl_status().await?;
        let done = status["groups"].as_array().unwrap().iter().all(|g| {
            let voters = ids(&g["voters"]);
            voters.len() == 3 && !voters.contains(&victim) && voters == ids(&g["replicas"])
        });
        Ok(done.then_some(status))
    })
    .await
    .unwrap();
    for g in after["groups"].as_array().unwrap() {
        let group = g["group"].as_u64().unwrap();
        let Some(old) = before.get(&group) else { continue };
        let voters = ids(&g["voters"]);
        let staying: BTreeSet<u64> = old.iter().copied().filter(|v| *v != victim).collect();
        let new: Vec<u64> = voters.difference(&staying).copied().collect();
        assert_eq!(new.len(), 1, "group {group}: {old:?} -> {voters:?}");
        let used: BTreeSet<&str> = staying.iter().map(|v| zone_of(*v)).collect();
        assert!(
            !used.contains(zone_of(new[0])),
            "group {group}: new replica on node {} (zone {}) while {used:?} were taken",
            new[0],
            zone_of(new[0])
        );
    }
}
