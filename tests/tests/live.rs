//! The live seat map over WebSocket: two clients watch a show; one user holds seats; the other
//! client sees them held, then sold, then another hold released, in version order, across a
//! forced leader change of the show's shard (its leader is SIGKILLed mid-way).

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tests::{Cluster, Options};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A client's view: the seat states it has built from the messages, and the last version.
struct Watcher {
    socket: Socket,
    seats: BTreeMap<String, String>,
    version: u64,
}

impl Watcher {
    async fn connect(cluster: &Cluster, show: u64) -> Watcher {
        let url = format!("{}/v1/shows/{show}/live", cluster.url.replace("http://", "ws://"));
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let first = next_json(&mut socket).await;
        assert_eq!(first["type"], "snapshot", "{first}");
        let map = &first["seat_map"];
        let seats = tests::seat_states(map);
        Watcher { socket, seats, version: map["version"].as_u64().unwrap() }
    }

    /// Applies deltas until `seats` have `status`; checks each delta continues the last version.
    async fn until(&mut self, seats: &[&str], status: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !seats.iter().all(|s| self.seats[*s] == status) {
            let delta = tokio::time::timeout_at(deadline, next_json(&mut self.socket))
                .await
                .unwrap_or_else(|_| panic!("{seats:?} never became {status}: {:?}", self.seats));
            assert_eq!(delta["type"], "delta", "{delta}");
            assert_eq!(
                delta["from_version"].as_u64(),
                Some(self.version),
                "no gap, no repeat: {delta}"
            );
            let to = delta["to_version"].as_u64().unwrap();
            assert!(to > self.version, "versions grow: {delta}");
            self.version = to;
            for change in delta["changes"].as_array().unwrap() {
                self.seats.insert(
                    change["seat_id"].as_str().unwrap().to_owned(),
                    change["status"].as_str().unwrap().to_owned(),
                );
            }
        }
    }
}

async fn next_json(socket: &mut Socket) -> Value {
    loop {
        match socket.next().await.expect("socket open").expect("socket ok") {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_watchers_see_holds_sales_and_releases_in_order_across_a_leader_change() {
    let cluster = Cluster::start(Options::default()).await.unwrap();
    let show = cluster.create_show(2, 6).await.unwrap();
    let mut first = Watcher::connect(&cluster, show).await;
    let mut second = Watcher::connect(&cluster, show).await;
    assert_eq!(first.seats["A1"], "available");

    let buyer = cluster.user("buyer").await.unwrap();
    let (status, hold) = buyer.hold(show, json!({"seats": ["A1", "A2"]})).await.unwrap();
    assert_eq!(status, 201, "{hold}");
    first.until(&["A1", "A2"], "held").await;
    second.until(&["A1", "A2"], "held").await;

    // Kill the shard's leader: the watchers' streams move to surviving replicas.
    let leader = cluster.leader_of(1).await.unwrap();
    cluster.nodes[leader].kill();
    let (status, booking) =
        tests::eventually("the booking after the kill", Duration::from_secs(30), || async {
            let (status, body) =
                buyer.book(hold["hold_id"].as_str().unwrap(), "tok_success", "live-1").await?;
            Ok((status == 201).then_some((status, body)))
        })
        .await
        .unwrap();
    assert_eq!(status, 201, "{booking}");
    first.until(&["A1", "A2"], "sold").await;
    second.until(&["A1", "A2"], "sold").await;

    let other = cluster.user("other").await.unwrap();
    let (status, hold) = other.hold(show, json!({"seats": ["B3"]})).await.unwrap();
    assert_eq!(status, 201, "{hold}");
    second.until(&["B3"], "held").await;
    let (status, _) = other
        .send(reqwest::Method::DELETE, &format!("/v1/holds/{}", hold["hold_id"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(status, 200);
    second.until(&["B3"], "available").await;
    first.until(&["B3"], "available").await;
    assert_eq!(first.seats, second.seats, "both watchers converge on the same map");
    assert_eq!(first.seats, tests::seat_states(&cluster.seat_map(show).await.unwrap()));

    // Unknown shows are 404 before any upgrade.
    let url = format!("{}/v1/shows/999999/live", cluster.url.replace("http://", "ws://"));
    let refused = tokio_tungstenite::connect_async(url).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404);
        }
        other => panic!("expected 404, got {other:?}"),
    }
}

/// A gateway accepts at most `--live-max-connections` live connections: the next is `503`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_connections_are_bounded_per_gateway() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() }).await.unwrap();
    let show = cluster.create_show(1, 4).await.unwrap();
    let limited = Options {
        gateway_env: vec![("MARQUEE_GATEWAY_LIVE_MAX_CONNECTIONS".into(), "1".into())],
        ..cluster.options().clone()
    };
    let gateway = cluster.spawn_gateway("limited", &limited).await.unwrap();
    let url = format!("{}/v1/shows/{show}/live", gateway.url.replace("http://", "ws://"));
    let (first, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
        }
        other => panic!("expected 503, got {other:?}"),
    }
    drop(first);
    // The slot is freed when the first connection ends.
    tests::eventually("a free slot", Duration::from_secs(10), || async {
        Ok(tokio_tungstenite::connect_async(&url).await.ok().map(|_| ()))
    })
    .await
    .unwrap();
}
