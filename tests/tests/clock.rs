//! Log time and wrong wall clocks, with real processes (docs/reliability.md, "Log time and
//! wrong clocks"): a node whose wall clock is two minutes fast when it starts and when it
//! becomes leader must not end holds early, and must not move log time with its clock.
//! Nodes run under libfaketime (wall clock only; monotonic time is real).

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tests::{eventually, Cluster, Options};

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Status of `seat` on `show`'s seat map.
async fn seat_status(cluster: &Cluster, show: u64, seat: &str) -> String {
    let map = cluster.seat_map(show).await.unwrap();
    tests::seat_states(&map).get(seat).cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_with_a_fast_clock_does_not_end_holds_early() {
    let cluster = Cluster::start(Options { faketime: true, ..Options::default() }).await.unwrap();
    let show = cluster.create_show(2, 10).await.unwrap();
    let leader = cluster.leader_of(1).await.unwrap();
    let fast = (leader + 1) % cluster.nodes.len();

    // The fast node: restarted with its wall clock two minutes ahead (wrong from the start,
    // so nothing in its own history can tell it so).
    cluster.nodes[fast].kill();
    cluster.skew_clock(fast, "+120s").unwrap();
    cluster.restart(fast).unwrap();
    cluster.converged(Duration::from_secs(30)).await.unwrap();

    // A customer holds A1 for 20 s under the correct leader.
    let first = cluster.user("early").await.unwrap();
    let (status, held) =
        first.hold(show, json!({"seats": ["A1"], "ttl_ms": 20_000})).await.unwrap();
    assert_eq!(status, 201, "{held}");
    let promised_ms = held["expires_at_ms"].as_u64().unwrap();

    // Leadership of the show's shard moves to the fast node.
    let to = cluster.nodes[fast].id.to_string();
    cluster.ctl(&["transfer-leader", "--group", "1", "--to", &to]).await.unwrap();
    eventually("the fast node to lead shard 1", Duration::from_secs(30), || async {
        Ok((cluster.leader_of(1).await? == fast).then_some(()))
    })
    .await
    .unwrap();

    // The fast leader stamps entries: another customer's hold. Its expiry follows the
    // voters' clocks, not the leader's (which would put it 120 s further out).
    let second = cluster.user("later").await.unwrap();
    let before_ms = wall_ms();
    let (status, other) =
        second.hold(show, json!({"seats": ["B1"], "ttl_ms": 20_000})).await.unwrap();
    assert_eq!(status, 201, "{other}");
    let expires_ms = other["expires_at_ms"].as_u64().unwrap();
    assert!(
        expires_ms <= wall_ms() + 20_000 + 1_000 && expires_ms + 1_000 >= before_ms + 20_000,
        "a hold stamped by the fast leader expires at {expires_ms}, {} ms from now: log time \
         followed the leader's wrong clock",
        expires_ms as i64 - wall_ms() as i64
    );
    assert_eq!(cluster.leader_of(1).await.unwrap(), fast, "the fast node stamped that hold");

    // A1 is still held, through several expiry ticks of the fast leader.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(wall_ms() + 2_000 < promised_ms, "the test ran too slowly to check early expiry");
    assert_eq!(
        seat_status(&cluster, show, "A1").await,
        "held",
        "the fast leader ended a hold {} ms before its promised expiry",
        promised_ms as i64 - wall_ms() as i64
    );

    // And holds still end: A1 is free again soon after its promised expiry.
    let freed =
        eventually("A1 to be released after its expiry", Duration::from_secs(40), || async {
            Ok((seat_status(&cluster, show, "A1").await == "available").then(wall_ms))
        })
        .await
        .unwrap();
    assert!(freed + 500 >= promised_ms, "A1 freed at {freed}, promised until {promised_ms}");
    assert!(freed <= promised_ms + 10_000, "A1 freed {} ms late", freed - promised_ms);
}
