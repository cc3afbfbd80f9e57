//! One pool of lazily connected gRPC channels per client, keyed by node address.
//!
//! Every caller of the cluster (gateway, `marqueectl`, a node bootstrapping or joining) used to
//! build its own `Endpoint`s; the knobs that differ between them (connect timeout, a per-request
//! deadline for long membership calls, keep-alive) are a [`ChannelConfig`] instead.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use proto::pb::cluster_client::ClusterClient as ClusterRpc;
use proto::pb::inventory_client::InventoryClient as InventoryRpc;
use proto::GRPC_MESSAGE_BYTES_MAX;
use tonic::transport::{Channel, Endpoint};

use crate::batcher::ProposeSender;
use crate::ClusterError;

/// How channels to nodes are opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Deadline of every request on the channel (`None`: callers bound their own calls).
    pub request_timeout: Option<Duration>,
    /// HTTP/2 keep-alive pings on idle connections.
    pub keep_alive: Option<Duration>,
    /// `ProposeBatch` calls to one node in flight at once ([`crate::batcher`]): fewer make
    /// each call carry more proposals (fewer messages, wake-ups and entries on the leader),
    /// more let a slow call overlap the next.
    pub propose_inflight: usize,
}

/// The default of [`ChannelConfig::propose_inflight`].
pub const PROPOSE_INFLIGHT_DEFAULT: usize = 8;

impl Default for ChannelConfig {
    /// Quick to give up on a dead node (500 ms to connect); calls bounded by the caller.
    fn default() -> Self {
        ChannelConfig {
            connect_timeout: Duration::from_millis(500),
            request_timeout: None,
            keep_alive: None,
            propose_inflight: PROPOSE_INFLIGHT_DEFAULT,
        }
    }
}

/// Channels to nodes, created lazily and shared. Cheap to clone.
#[derive(Clone, Default)]
pub struct Channels {
    config: ChannelConfig,
    channels: Arc<RwLock<HashMap<String, Channel>>>,
    proposers: Arc<RwLock<HashMap<String, ProposeSender>>>,
}

impl Channels {
    /// An empty pool opening channels with `config`.
    pub fn new(config: ChannelConfig) -> Channels {
        Channels { config, channels: Arc::default(), proposers: Arc::default() }
    }

    /// The channel to `addr` (`host:port`).
    ///
    /// # Errors
    /// [`ClusterError::Invalid`] if the address does not form a URI.
    pub fn get(&self, addr: &str) -> Result<Channel, ClusterError> {
        if let Some(channel) =
            self.channels.read().expect("channel map lock never poisoned").get(addr)
        {
            return Ok(channel.clone());
        }
        let mut endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| ClusterError::Invalid(format!("bad address {addr}: {e}")))?
            .connect_timeout(self.config.connect_timeout)
            .tcp_nodelay(true);
        if let Some(timeout) = self.config.request_timeout {
            endpoint = endpoint.timeout(timeout);
        }
        if let Some(interval) = self.config.keep_alive {
            endpoint = endpoint.http2_keep_alive_interval(interval);
        }
        let channel = endpoint.connect_lazy();
        self.channels
            .write()
            .expect("channel map lock never poisoned")
            .insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }

    /// An `Inventory` service client (propose, query, watch) on `addr`.
    ///
    /// # Errors
    /// As [`Channels::get`].
    pub fn inventory(&self, addr: &str) -> Result<InventoryRpc<Channel>, ClusterError> {
        Ok(InventoryRpc::new(self.get(addr)?)
            .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX))
    }

    /// The batching proposal queue to `addr` ([`crate::batcher`]), started on first use.
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// As [`Channels::get`].
    pub(crate) fn proposer(&self, addr: &str) -> Result<ProposeSender, ClusterError> {
        if let Some(sender) =
            self.proposers.read().expect("proposer map lock never poisoned").get(addr)
        {
            return Ok(sender.clone());
        }
        let client = self.inventory(addr)?;
        let mut proposers = self.proposers.write().expect("proposer map lock never poisoned");
        Ok(proposers
            .entry(addr.to_owned())
            .or_insert_with(|| ProposeSender::start(client, self.config.propose_inflight))
            .clone())
    }

    /// A `Cluster` service client (status, membership, replicas) on `addr`.
    ///
    /// # Errors
    /// As [`Channels::get`].
    pub fn cluster(&self, addr: &str) -> Result<ClusterRpc<Channel>, ClusterError> {
        Ok(ClusterRpc::new(self.get(addr)?)
            .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX))
    }
}
