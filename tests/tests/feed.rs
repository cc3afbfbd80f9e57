//! The catalog change feed over gRPC (`WatchCatalog`): read from the meta leader, kill it,
//! resume on another node after the last sequence number: every change arrives exactly once,
//! in order, with no gap.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use proto::catalog::{CatalogQueryResult, ChangeEntity};
use proto::command::QueryResult;
use proto::meta::MetaQueryResult;
use proto::pb::inventory_client::InventoryClient;
use proto::pb::{query_reply, WatchCatalogRequest};
use tests::{eventually, test_movie, Cluster, Options};

/// Reads the feed from `addr` after `after` until `until` is seen; returns the (seq, entity)
/// pairs received.
async fn read_feed(addr: &str, after: u64, until: u64) -> Vec<(u64, ChangeEntity)> {
    let mut client = InventoryClient::connect(format!("http://{addr}")).await.unwrap();
    let mut stream =
        client.watch_catalog(WatchCatalogRequest { after, limit: 2 }).await.unwrap().into_inner();
    let mut seen = Vec::new();
    while seen.last().is_none_or(|(seq, _)| *seq < until) {
        let reply = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("a feed message within 20 s")
            .unwrap()
            .expect("the stream stays open");
        let Some(query_reply::Result::Answer(bytes)) = reply.result else {
            panic!("unexpected reply {reply:?}")
        };
        let QueryResult::Meta(MetaQueryResult::Catalog(result)) =
            proto::codec::decode::<QueryResult>(&bytes).unwrap()
        else {
            panic!("not a catalog answer")
        };
        let CatalogQueryResult::Changes { changes, truncated, .. } = *result else {
            panic!("not a feed page")
        };
        assert!(!truncated);
        seen.extend(changes.into_iter().map(|c| (c.seq, c.entity)));
    }
    seen
}

async fn put_movies(cluster: &Cluster, ids: std::ops::RangeInclusive<u64>) {
    for id in ids {
        eventually("a movie write", Duration::from_secs(30), || async {
            let response = cluster
                .http
                .put(format!("{}/v1/admin/movies/{id}", cluster.url))
                .bearer_auth(cluster.admin_token())
                .json(&test_movie())
                .send()
                .await?;
            Ok(response.status().is_success().then_some(()))
        })
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_resumes_on_another_node_without_gap_or_repeat() {
    let cluster = Cluster::start(Options::default()).await.unwrap();
    put_movies(&cluster, 1..=5).await;
    let leader = cluster.leader_of(0).await.unwrap();
    let first = read_feed(&cluster.nodes[leader].grpc, 0, 5).await;
    assert_eq!(first.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(first[0].1, ChangeEntity::Movie(1));

    // The leader dies; more changes commit under a new leader; a reader resumes elsewhere.
    cluster.nodes[leader].kill();
    put_movies(&cluster, 6..=10).await;
    let other = (leader + 1) % cluster.nodes.len();
    let rest = read_feed(&cluster.nodes[other].grpc, 5, 10).await;
    assert_eq!(rest.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [6, 7, 8, 9, 10]);
    assert_eq!(
        rest.iter().map(|(_, e)| *e).collect::<Vec<_>>(),
        (6..=10).map(ChangeEntity::Movie).collect::<Vec<_>>(),
        "the changes in commit order"
    );
}
