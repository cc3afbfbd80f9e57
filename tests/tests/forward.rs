//! Any node answers meta requests (docs/architecture.md, "Any node answers meta"), with real
//! processes: in a 4-node cluster, the node that hosts no meta replica is the only address
//! given to `marqueectl`, to a new gateway (which books through it) and to a joining node.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use proto::pb::inventory_client::InventoryClient;
use proto::pb::{query_reply, WatchCatalogRequest};
use serde_json::{json, Value};
use tests::{eventually, Cluster, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_meta_replica_answers_meta_requests() {
    let cluster =
        Cluster::start(Options { nodes: 4, shards: 2, ..Options::default() }).await.unwrap();
    let status = cluster.ctl_status().await.unwrap();
    let meta = &status["groups"].as_array().unwrap().iter().find(|g| g["group"] == 0).unwrap();
    let meta_voters: BTreeSet<u64> =
        meta["voters"].as_array().unwrap().iter().filter_map(Value::as_u64).collect();
    let outsider = cluster.nodes.iter().find(|n| !meta_voters.contains(&n.id)).unwrap();
    let only = vec![outsider.grpc.clone()];
    assert!(
        outsider.statuses().await.unwrap().iter().all(|g| g.group_id != 0),
        "node {} hosts a meta replica after all",
        outsider.id
    );

    // marqueectl: reads the map (a linearizable meta read) and proposes a meta command.
    let printed = cluster.ctl_via(&only, &["status", "--json"]).await.unwrap();
    let through: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(through["map_version"], status["map_version"]);
    let paused = cluster.ctl_via(&only, &["repair", "pause"]).await.unwrap();
    assert!(paused.contains("PAUSED"), "{paused}");
    let resumed = cluster.ctl_via(&only, &["repair", "resume"]).await.unwrap();
    assert!(resumed.contains("self-repair active"), "{resumed}");

    // A gateway seeded with that node only: ready (meta reads, the catalog watch) and booking.
    let show = cluster.create_show(2, 10).await.unwrap();
    let options = cluster.options().clone();
    let gateway = cluster.spawn_gateway_on("outsider-gateway", &options, &only).await.unwrap();
    let user = cluster.user("via-outsider").await.unwrap();
    let hold = cluster
        .http
        .post(format!("{}/v1/shows/{show}/holds", gateway.url))
        .bearer_auth(&user.token)
        .json(&json!({"quantity": 2, "category": "standard"}))
        .send()
        .await
        .unwrap();
    assert_eq!(hold.status().as_u16(), 201, "{:?}", hold.text().await);
    // The catalog through its forwarded change feed: the show's movie is listed.
    let movies = eventually("the outsider gateway's catalog", Duration::from_secs(30), || async {
        let body: Value =
            cluster.http.get(format!("{}/v1/movies", gateway.url)).send().await?.json().await?;
        Ok(body["items"].as_array().is_some_and(|m| !m.is_empty()).then_some(body))
    })
    .await
    .unwrap();
    assert!(movies["items"].as_array().unwrap().iter().any(|m| m["movie_id"].is_u64()));

    // A node joining through it registers.
    let joining = cluster.joining_node_via(5, &outsider.grpc).unwrap();
    eventually("node 5 registered", Duration::from_secs(60), || async {
        let status = cluster.ctl_status().await?;
        Ok(status["nodes"].as_array().unwrap().iter().any(|n| n["node"] == 5).then_some(()))
    })
    .await
    .unwrap();
    drop(joining);

    // A catalog watch opened on the outsider is relayed from a meta replica, and the outsider
    // still stops on SIGTERM while it is open: the gRPC server's graceful stop waits for open
    // streams, and a relay that ended only with its upstream kept the node up forever (seen
    // after a drain, in the multiraft test).
    let mut rpc = InventoryClient::connect(format!("http://{}", outsider.grpc)).await.unwrap();
    let request = WatchCatalogRequest { after: 0, limit: 10 };
    let mut watch = rpc.watch_catalog(request).await.unwrap().into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert!(matches!(first.result, Some(query_reply::Result::Answer(_))), "{first:?}");
    let exit = outsider.terminate(Duration::from_secs(25));
    assert!(exit.is_ok(), "{exit:?}");
    drop(watch);
}

/// The meta group's leadership moves (as the placement loop's leader balancing moves it) while
/// accounts register through a gateway seeded with the node that hosts no meta replica: no
/// registration fails. A leader handing its leadership over holds new proposals back; before
/// it waited them out (`Group::term_clock`), it refused them at once, and the forwarding node
/// spent its retries bouncing between the muted leader and the followers still naming it,
/// then answered 503 "outcome unknown" (seen in the placement test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_leader_moves_fail_no_registration_forwarded_by_a_node_without_meta() {
    let cluster =
        Cluster::start(Options { nodes: 4, shards: 1, ..Options::default() }).await.unwrap();
    let status = cluster.ctl_status().await.unwrap();
    let meta = &status["groups"].as_array().unwrap().iter().find(|g| g["group"] == 0).unwrap();
    let voters: Vec<u64> =
        meta["voters"].as_array().unwrap().iter().filter_map(Value::as_u64).collect();
    let outsider = cluster.nodes.iter().find(|n| !voters.contains(&n.id)).unwrap();
    let options = cluster.options().clone();
    let gateway = cluster
        .spawn_gateway_on("outsider-gateway", &options, std::slice::from_ref(&outsider.grpc))
        .await
        .unwrap();

    let stop = AtomicBool::new(false);
    let outcomes: Mutex<Vec<(u16, String)>> = Mutex::new(Vec::new());
    let register = |worker: usize| {
        let (stop, outcomes, gateway, http) = (&stop, &outcomes, &gateway, &cluster.http);
        async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 2_000 {
                i += 1;
                let email = format!("move-{worker}-{i}-{:08x}@marquee.test", rand::random::<u32>());
                let sent = http
                    .post(format!("{}/v1/auth/register", gateway.url))
                    .json(
                        &json!({"email": email, "password": "correct horse battery", "name": "m"}),
                    )
                    .send()
                    .await;
                let outcome = match sent {
                    Ok(response) => {
                        (response.status().as_u16(), response.text().await.unwrap_or_default())
                    }
                    Err(e) => (0, e.to_string()),
                };
                outcomes.lock().unwrap().push(outcome);
            }
        }
    };
    let moves = async {
        let mut moved_ok = 0;
        tokio::time::sleep(Duration::from_millis(500)).await;
        for step in 0..4 {
            let leader = cluster.nodes[cluster.leader_of(0).await.unwrap()].id;
            let to = voters.iter().copied().find(|v| *v != leader).unwrap();
            let to_arg = to.to_string();
            let moved = cluster.ctl(&["transfer-leader", "--group", "0", "--to", &to_arg]).await;
            eprintln!("move {step}: meta leader {leader} -> {to}: {moved:?}");
            moved_ok += usize::from(moved.is_ok());
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        stop.store(true, Ordering::Relaxed);
        moved_ok
    };
    let (moved_ok, (), (), ()) = tokio::join!(moves, register(0), register(1), register(2));
    assert!(moved_ok >= 3, "only {moved_ok} of 4 leader moves succeeded");
    let outcomes = outcomes.into_inner().unwrap();
    let failed: Vec<&(u16, String)> = outcomes.iter().filter(|(s, _)| *s != 201).collect();
    assert!(outcomes.len() >= 20, "too few registrations to say anything: {}", outcomes.len());
    assert!(
        failed.is_empty(),
        "{} of {} registrations failed: {failed:?}",
        failed.len(),
        outcomes.len()
    );
}
