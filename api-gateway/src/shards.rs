//! Typed calls to the cluster's groups: what every layer above (workflows and handlers) uses
//! instead of building proposals and decoding answers itself.
//!
//! Show-level calls ([`Shards::propose`], [`Shards::query`]) find the show's shard and answer
//! for an unplaced show as a shard would; catalog calls go to the meta group and public reads
//! go through the gateway's [`CatalogCache`]; group-level calls ([`Shards::query_group`],
//! [`Shards::propose_to`]) are for the few callers that walk shards themselves (the sweeper,
//! "my bookings", show creation). Routing, leader following and retries are the
//! [`client`] crate's.

use std::sync::Arc;

use client::{ClusterClient, ClusterError};
use prometheus::IntCounterVec;
use proto::catalog::{CatalogCommand, CatalogQuery, CatalogQueryResult, CatalogReply, ShowDetail};
use proto::command::{Command, Outcome, Proposal, Query, QueryResult, Rejection, Reply};
use proto::ids::{BookingId, OwnerId, ShowId};
use proto::inventory::BookingView;
use proto::meta::{MetaCommand, MetaQuery, MetaQueryResult, MetaReply};
use proto::{GroupId, META_GROUP};

use crate::cache::{self, CatalogCache};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Typed access to the meta group and the inventory shards. Cheap to clone.
#[derive(Clone)]
pub struct Shards {
    cluster: ClusterClient,
    cache: Arc<CatalogCache>,
    /// `marquee_gateway_catalog_cache_total`.
    cache_results: IntCounterVec,
}

impl Shards {
    /// Calls through `cluster`, caching public catalog reads in `cache`.
    pub fn new(cluster: ClusterClient, cache: Arc<CatalogCache>, metrics: &Metrics) -> Shards {
        Shards { cluster, cache, cache_results: metrics.catalog_cache.clone() }
    }

    /// The cluster client, for streams (live seat maps, the catalog feed).
    pub fn cluster(&self) -> &ClusterClient {
        &self.cluster
    }

    /// The catalog cache.
    pub fn cache(&self) -> &Arc<CatalogCache> {
        &self.cache
    }

    /// Proposes a catalog or account command to the meta group and returns its reply.
    ///
    /// # Errors
    /// The meta group's rejection, or the cluster is unavailable.
    pub async fn catalog_command(&self, command: CatalogCommand) -> Result<CatalogReply, ApiError> {
        let proposal =
            Proposal { request_id: None, command: Command::Meta(MetaCommand::Catalog(command)) };
        match self.cluster.propose(META_GROUP, &proposal).await?? {
            Reply::Meta(MetaReply::Catalog(reply)) => Ok(reply),
            other => Err(ApiError::Internal(format!("unexpected catalog reply {other:?}"))),
        }
    }

    /// Reads the catalog from the meta group; `None` when the record does not exist.
    /// `linearizable` reads go through the leader; others may trail it by the replication delay
    /// and are served from the gateway's [`CatalogCache`] when it holds them.
    ///
    /// # Errors
    /// The cluster is unavailable or answered something else.
    pub async fn catalog_query(
        &self,
        query: CatalogQuery,
        linearizable: bool,
    ) -> Result<Option<CatalogQueryResult>, ApiError> {
        let cached = !linearizable && cache::cacheable(&query);
        if cached {
            if let Some(hit) = self.cache.get(&query) {
                self.cache_results.with_label_values(&["hit"]).inc();
                return Ok(Some(hit));
            }
            self.cache_results.with_label_values(&["miss"]).inc();
        }
        let ticket = self.cache.ticket();
        let read = Query::Meta(MetaQuery::Catalog(query.clone()));
        // A miss that will be cached is read linearizably: a lagging replica's answer could
        // predate a change the cache's feed watcher has already seen, and would then be served
        // until the next change. Hits never touch the cluster.
        match self.cluster.query(META_GROUP, &read, linearizable || cached).await? {
            QueryResult::Meta(MetaQueryResult::Catalog(result)) => {
                if cached {
                    self.cache.put(&query, &result, ticket);
                }
                Ok(Some(*result))
            }
            QueryResult::NotFound => Ok(None),
            other => Err(ApiError::Internal(format!("unexpected catalog answer {other:?}"))),
        }
    }

    /// Proposes a command with a request id to the shard that owns its show and returns its
    /// successful reply.
    ///
    /// # Errors
    /// The shard's rejection (or the one a shard would give for an unplaced show), or the
    /// cluster is unavailable.
    pub async fn propose(&self, request_id: String, command: Command) -> Result<Reply, ApiError> {
        let show = command
            .show_id()
            .ok_or_else(|| ApiError::Internal(format!("{} names no show", command.kind())))?;
        let group = match self.cluster.locate(show).await {
            Ok(group) => group,
            // No shard has the show, so nothing the command names exists: answer as a shard
            // would.
            Err(ClusterError::UnknownShow(_)) => {
                return Err(ApiError::Rejected(match command {
                    Command::Release { .. } | Command::BeginCheckout { .. } => {
                        Rejection::HoldNotFound
                    }
                    Command::Confirm { .. }
                    | Command::FailCheckout { .. }
                    | Command::RequestCancel { .. }
                    | Command::CancelBooking { .. } => Rejection::BookingNotFound,
                    _ => Rejection::ShowNotFound { show_id: show },
                }))
            }
            Err(e) => return Err(e.into()),
        };
        let proposal = Proposal { request_id: Some(request_id), command };
        Ok(self.cluster.propose(group, &proposal).await??)
    }

    /// Reads from the shard that owns the query's show; `linearizable` uses a read index.
    ///
    /// # Errors
    /// The cluster is unavailable.
    pub async fn query(&self, query: Query, linearizable: bool) -> Result<QueryResult, ApiError> {
        let show =
            query.show_id().ok_or_else(|| ApiError::Internal("query names no show".into()))?;
        let group = match self.cluster.locate(show).await {
            Ok(group) => group,
            // An unplaced show has no holds, bookings or seats: the same answer a shard gives.
            Err(ClusterError::UnknownShow(_)) => return Ok(QueryResult::NotFound),
            Err(e) => return Err(e.into()),
        };
        Ok(self.cluster.query(group, &query, linearizable).await?)
    }

    /// A show's seat map as the shard encoded it (the REST body as it is: the gateway neither
    /// decodes nor re-encodes the largest answer it serves); `None` when there is no such show.
    ///
    /// # Errors
    /// The cluster is unavailable or answered something else.
    pub async fn seat_map_encoded(
        &self,
        show_id: ShowId,
        linearizable: bool,
    ) -> Result<Option<axum::body::Bytes>, ApiError> {
        let group = match self.cluster.locate(show_id).await {
            Ok(group) => group,
            Err(ClusterError::UnknownShow(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let query = Query::SeatMap { show_id };
        let answer =
            axum::body::Bytes::from(self.cluster.query_encoded(group, &query, linearizable).await?);
        if let Some(map) = proto::codec::seat_map_of(&answer) {
            // The map's part of the answer, not a copy of it.
            return Ok(Some(answer.slice_ref(map)));
        }
        match proto::codec::decode::<QueryResult>(&answer) {
            Ok(QueryResult::NotFound) => Ok(None),
            Ok(other) => Err(ApiError::Internal(format!("unexpected answer {other:?}"))),
            Err(e) => Err(ApiError::Internal(format!("undecodable seat map answer: {e}"))),
        }
    }

    /// A booking of `owner` (linearizable); someone else's is not found.
    ///
    /// # Errors
    /// Not found, or the cluster is unavailable.
    pub async fn load_booking(
        &self,
        booking_id: BookingId,
        owner: &OwnerId,
    ) -> Result<BookingView, ApiError> {
        match self.query(Query::Booking { booking_id }, true).await? {
            QueryResult::Booking { booking } if &booking.owner == owner => Ok(booking),
            QueryResult::Booking { .. } | QueryResult::NotFound => {
                Err(ApiError::NotFound("booking"))
            }
            other => Err(ApiError::Internal(format!("unexpected answer {other:?}"))),
        }
    }

    /// Reads a show's catalog record, movie, theater and screen (linearizable).
    ///
    /// # Errors
    /// Not found, or the cluster is unavailable.
    pub async fn load_show(&self, show_id: u64) -> Result<ShowDetail, ApiError> {
        match self.catalog_query(CatalogQuery::Show { show_id: ShowId(show_id) }, true).await? {
            Some(CatalogQueryResult::Show { detail }) => Ok(*detail),
            Some(other) => Err(ApiError::Internal(format!("unexpected catalog answer {other:?}"))),
            None => Err(ApiError::NotFound("show")),
        }
    }

    /// The shard that owns `show`.
    ///
    /// # Errors
    /// [`ClusterError::UnknownShow`] if it was never placed, or the meta group is unavailable.
    pub async fn locate(&self, show: ShowId) -> Result<GroupId, ClusterError> {
        self.cluster.locate(show).await
    }

    /// Records a placement the caller just made (after `CreateShow` in the catalog).
    pub fn remember_show(&self, show: ShowId, group: GroupId) {
        self.cluster.remember_show(show, group);
    }

    /// The inventory shards of the current map (re-read at most every 200 ms).
    ///
    /// # Errors
    /// No meta replica answered.
    pub async fn shard_groups(&self) -> Result<Vec<GroupId>, ClusterError> {
        Ok(self.cluster.refresh_topology().await?.shards())
    }

    /// Reads from one group.
    ///
    /// # Errors
    /// The group is unavailable.
    pub async fn query_group(
        &self,
        group: GroupId,
        query: &Query,
        linearizable: bool,
    ) -> Result<QueryResult, ClusterError> {
        self.cluster.query(group, query, linearizable).await
    }

    /// Proposes to one group and returns its outcome, rejections included.
    ///
    /// # Errors
    /// The group is unavailable.
    pub async fn propose_to(
        &self,
        group: GroupId,
        proposal: &Proposal,
    ) -> Result<Outcome, ClusterError> {
        self.cluster.propose(group, proposal).await
    }

    /// The meta group's current map (a linearizable read on its leader).
    ///
    /// # Errors
    /// No meta replica answered.
    pub async fn topology(&self) -> Result<proto::meta::Topology, ApiError> {
        Ok(self.cluster.meta_topology().await?)
    }

    /// One node's status (its replicas' Raft state), or why it could not be read within
    /// `timeout`.
    pub async fn node_status(
        &self,
        addr: &str,
        timeout: std::time::Duration,
    ) -> Result<proto::pb::StatusReply, String> {
        let mut client = self.cluster.channels().cluster(addr).map_err(|e| e.to_string())?;
        let mut request = tonic::Request::new(proto::pb::StatusRequest { with_digest: false });
        request.set_timeout(timeout);
        match tokio::time::timeout(timeout, client.status(request)).await {
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(status)) => Err(status.message().to_owned()),
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        }
    }

    /// Ready when the meta group answers a linearizable read with a shard map that has shards
    /// (a bootstrapping cluster is not ready until its map is recorded).
    ///
    /// # Errors
    /// The meta group is unreachable, or the map has no shards yet.
    pub async fn ready(&self) -> Result<(), ApiError> {
        self.cluster.query(META_GROUP, &Query::Digest, true).await?;
        let topology = self.cluster.refresh_topology().await?;
        if topology.shards().is_empty() {
            return Err(ApiError::Unavailable("the cluster has no shard map yet".into()));
        }
        Ok(())
    }
}
