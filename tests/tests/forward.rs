//! Any node answers meta requests (docs/architecture.md, "Any node answers meta"), with real
//! processes: in a 4-node cluster, the node that hosts no meta replica is the only address
//! given to `marqueectl`, to a new gateway (which books through it) and to a joining node.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

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
}
