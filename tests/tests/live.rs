//! The live seat map over WebSocket: two clients watch a show; one user holds seats; the other
//! client sees them held, then sold, then another hold released, in version order, across a
//! forced leader change of the show's shard (its leader is SIGKILLed mid-way), all over one
//! shared shard stream. Also: the per-gateway connection limit, a client that stops reading
//! dropped with 4008 while a reading one keeps its updates, and 1011 when no replica is left.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tests::{behaviour, Cluster, Options, User};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The seat states a client has built from the messages, and the last version.
struct View {
    seats: BTreeMap<String, String>,
    version: u64,
}

impl View {
    /// The view a `snapshot` message gives.
    fn from_snapshot(message: &Value) -> View {
        assert_eq!(message["type"], "snapshot", "{message}");
        let map = &message["seat_map"];
        View { seats: tests::seat_states(map), version: map["version"].as_u64().unwrap() }
    }

    /// Applies one delta, checking that it continues the last version.
    fn apply(&mut self, delta: &Value) {
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

/// A live connection and the view built from it.
struct Watcher {
    socket: Socket,
    view: View,
}

impl Watcher {
    async fn connect(cluster: &Cluster, show: u64) -> Watcher {
        Watcher::connect_to(&live_url(&cluster.url, show)).await
    }

    async fn connect_to(url: &str) -> Watcher {
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let view = View::from_snapshot(&next_json(&mut socket).await);
        Watcher { socket, view }
    }

    /// Applies deltas until `seats` have `status`.
    async fn until(&mut self, seats: &[&str], status: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !seats.iter().all(|s| self.view.seats[*s] == status) {
            let delta = tokio::time::timeout_at(deadline, next_json(&mut self.socket))
                .await
                .unwrap_or_else(|_| {
                    panic!("{seats:?} never became {status}: {:?}", self.view.seats)
                });
            self.view.apply(&delta);
        }
    }
}

fn live_url(gateway_url: &str, show: u64) -> String {
    format!("{}/v1/shows/{show}/live", gateway_url.replace("http://", "ws://"))
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

/// Two clients watching one show.
struct Watching<'a> {
    cluster: &'a Cluster,
    show: u64,
    first: Watcher,
    second: Watcher,
}

const STREAMS: &str = "marquee_gateway_live_streams";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_watchers_see_holds_sales_and_releases_in_order_across_a_leader_change() {
    let cluster = Cluster::start(Options::default()).await.unwrap();
    let show = cluster.create_show(2, 6).await.unwrap();
    let mut w =
        behaviour!(watchers_start_from_a_snapshot_and_share_one_shard_stream(&cluster, show)).await;
    let buyer = cluster.user("buyer").await.unwrap();
    let hold = behaviour!(a_hold_reaches_every_watcher(&mut w, &buyer)).await;
    behaviour!(a_sale_after_the_leader_is_killed_reaches_every_watcher(&mut w, &buyer, &hold))
        .await;
    let other = cluster.user("other").await.unwrap();
    behaviour!(a_released_hold_reaches_every_watcher_and_they_agree_with_the_map(&mut w, &other))
        .await;
    let third =
        behaviour!(a_late_watcher_starts_from_a_fresh_snapshot_on_the_same_stream(&mut w, &other))
            .await;
    behaviour!(the_stream_stops_when_the_shows_last_watcher_leaves(w, third)).await;
    behaviour!(an_unknown_show_is_refused_with_404_before_any_upgrade(&cluster)).await;
}

async fn watchers_start_from_a_snapshot_and_share_one_shard_stream(
    cluster: &Cluster,
    show: u64,
) -> Watching<'_> {
    let first = Watcher::connect(cluster, show).await;
    let second = Watcher::connect(cluster, show).await;
    assert_eq!(first.view.seats["A1"], "available");
    // Both clients share one shard stream.
    assert_eq!(cluster.metric(&cluster.url, STREAMS).await.unwrap(), 1.0);
    Watching { cluster, show, first, second }
}

/// Returns the buyer's hold.
async fn a_hold_reaches_every_watcher(w: &mut Watching<'_>, buyer: &User<'_>) -> Value {
    let (status, hold) = buyer.hold(w.show, json!({"seats": ["A1", "A2"]})).await.unwrap();
    assert_eq!(status, 201, "{hold}");
    w.first.until(&["A1", "A2"], "held").await;
    w.second.until(&["A1", "A2"], "held").await;
    hold
}

/// Kill the shard's leader: the watchers' streams move to surviving replicas.
async fn a_sale_after_the_leader_is_killed_reaches_every_watcher(
    w: &mut Watching<'_>,
    buyer: &User<'_>,
    hold: &Value,
) {
    let cluster = w.cluster;
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
    w.first.until(&["A1", "A2"], "sold").await;
    w.second.until(&["A1", "A2"], "sold").await;
}

async fn a_released_hold_reaches_every_watcher_and_they_agree_with_the_map(
    w: &mut Watching<'_>,
    other: &User<'_>,
) {
    let (status, hold) = other.hold(w.show, json!({"seats": ["B3"]})).await.unwrap();
    assert_eq!(status, 201, "{hold}");
    w.second.until(&["B3"], "held").await;
    let (status, _) = other
        .send(reqwest::Method::DELETE, &format!("/v1/holds/{}", hold["hold_id"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(status, 200);
    w.second.until(&["B3"], "available").await;
    w.first.until(&["B3"], "available").await;
    assert_eq!(w.first.view.seats, w.second.view.seats, "both watchers converge on the same map");
    assert_eq!(w.first.view.seats, tests::seat_states(&w.cluster.seat_map(w.show).await.unwrap()));
}

/// A client joining now starts from a fresh snapshot on the same shared stream, and sees the
/// next change like the others. Returns the new watcher.
async fn a_late_watcher_starts_from_a_fresh_snapshot_on_the_same_stream(
    w: &mut Watching<'_>,
    other: &User<'_>,
) -> Watcher {
    let cluster = w.cluster;
    let mut third = Watcher::connect(cluster, w.show).await;
    assert_eq!(third.view.seats, w.first.view.seats);
    let (status, hold) = other.hold(w.show, json!({"seats": ["B4"]})).await.unwrap();
    assert_eq!(status, 201, "{hold}");
    for watcher in [&mut w.first, &mut w.second, &mut third] {
        watcher.until(&["B4"], "held").await;
    }
    assert_eq!(cluster.metric(&cluster.url, STREAMS).await.unwrap(), 1.0);
    third
}

async fn the_stream_stops_when_the_shows_last_watcher_leaves(w: Watching<'_>, third: Watcher) {
    let cluster = w.cluster;
    drop((w.first, w.second, third));
    tests::eventually("no live streams", Duration::from_secs(10), || async {
        Ok((cluster.metric(&cluster.url, STREAMS).await? == 0.0).then_some(()))
    })
    .await
    .unwrap();
}

async fn an_unknown_show_is_refused_with_404_before_any_upgrade(cluster: &Cluster) {
    let refused = tokio_tungstenite::connect_async(live_url(&cluster.url, 999_999)).await;
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
    let url = live_url(&gateway.url, show);
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

/// A client that stops reading is closed as a slow consumer once a send stays blocked for
/// `--live-send-timeout-ms`, and counted; a client of the same gateway that keeps reading
/// sees every change in order. Reading afterwards, the slow client finds the messages it had
/// not read, in order, then the end of the connection (the 4008 close frame when it fit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_the_others_keep_their_updates() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() }).await.unwrap();
    let show = cluster.create_show(4, 10).await.unwrap();
    // Small kernel buffers on both ends, so that a few kilobytes of deltas fill them.
    let options = Options {
        gateway_env: vec![
            ("MARQUEE_GATEWAY_LIVE_SEND_TIMEOUT_MS".into(), "500".into()),
            ("MARQUEE_GATEWAY_TCP_SEND_BUFFER".into(), "8192".into()),
        ],
        ..cluster.options().clone()
    };
    let gateway = cluster.spawn_gateway("slow", &options).await.unwrap();
    let url = live_url(&gateway.url, show);
    let addr: std::net::SocketAddr = gateway.url.trim_start_matches("http://").parse().unwrap();
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let (mut slow, _) =
        tokio_tungstenite::client_async(&url, tcp.connect(addr).await.unwrap()).await.unwrap();
    let mut reader = Watcher::connect_to(&url).await;

    let slow_closed = r#"marquee_gateway_live_closed_total{reason="slow_consumer"}"#;
    let buyer = cluster.user("buyer").await.unwrap();
    let rows = ["A", "B", "C", "D"];
    // Bounded: each cycle holds and releases six seats (two deltas of ~300 bytes); about fifty
    // fill 16 KiB of buffers. Cycles go on until the drop shows or the bound is reached.
    for cycle in 0..400 {
        let seats: Vec<String> =
            (1..=6).map(|n| format!("{}{n}", rows[cycle % rows.len()])).collect();
        let seats: Vec<&str> = seats.iter().map(String::as_str).collect();
        let (status, hold) = buyer.hold(show, json!({ "seats": seats })).await.unwrap();
        assert_eq!(status, 201, "{hold}");
        reader.until(&seats, "held").await;
        let path = format!("/v1/holds/{}", hold["hold_id"].as_str().unwrap());
        let (status, _) = buyer.send(reqwest::Method::DELETE, &path).await.unwrap();
        assert_eq!(status, 200);
        reader.until(&seats, "available").await;
        if cluster.metric(&gateway.url, slow_closed).await.unwrap() >= 1.0 {
            break;
        }
    }
    // The send timeout, then up to a second offering the close frame.
    tests::eventually("the slow client dropped", Duration::from_secs(10), || async {
        Ok((cluster.metric(&gateway.url, slow_closed).await? >= 1.0).then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(cluster.metric(&gateway.url, slow_closed).await.unwrap(), 1.0);
    // Only the reading client is still connected (the slot frees as the handler returns).
    tests::eventually("one open live connection", Duration::from_secs(10), || async {
        let open = cluster.metric(&gateway.url, "marquee_gateway_live_connections").await?;
        Ok((open == 1.0).then_some(()))
    })
    .await
    .unwrap();

    // The reader is still served.
    let (status, hold) = buyer.hold(show, json!({ "seats": ["D9", "D10"] })).await.unwrap();
    assert_eq!(status, 201, "{hold}");
    reader.until(&["D9", "D10"], "held").await;

    // The slow client now reads: a snapshot, deltas in version order, then the end.
    let mut messages = 0;
    let mut view: Option<View> = None;
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match slow.next().await {
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(&text).unwrap();
                    messages += 1;
                    match view.as_mut() {
                        None => view = Some(View::from_snapshot(&message)),
                        Some(view) => view.apply(&message),
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    if let Some(frame) = frame {
                        assert_eq!(u16::from(frame.code), 4008, "{frame:?}");
                    }
                    return;
                }
                Some(Ok(_)) => {}
                // The gateway dropped the connection with a frame half-written or unsent.
                Some(Err(_)) | None => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the slow client's connection never ended");
    assert!(messages > 1, "it had been sent a snapshot and deltas before being dropped");
}

/// When the show's shard cannot be followed at all (every replica down), the gateway gives up
/// after its bounded retries and closes the connection with 1011, and its stream ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_that_cannot_be_followed_closes_with_1011() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() }).await.unwrap();
    let show = cluster.create_show(1, 4).await.unwrap();
    let mut watcher = Watcher::connect(&cluster, show).await;
    cluster.nodes[0].kill();
    let closed = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match watcher.socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("connection failed without a close frame: {e}"),
                None => return None,
            }
        }
    })
    .await
    .expect("the connection was never closed");
    assert_eq!(closed, Some(1011));
    // Counted as the handler returns, just after the frame went out.
    let unavailable = r#"marquee_gateway_live_closed_total{reason="unavailable"}"#;
    tests::eventually("the close counted, no stream left", Duration::from_secs(10), || async {
        let closed = cluster.metric(&cluster.url, unavailable).await?;
        let streams = cluster.metric(&cluster.url, "marquee_gateway_live_streams").await?;
        Ok((closed == 1.0 && streams == 0.0).then_some(()))
    })
    .await
    .unwrap();
}
