//! Raft RPCs between nodes over gRPC, multiplexed by group id.
//!
//! Each openraft message is serde-JSON encoded into a `RaftRequest { group_id, payload }`.
//! One lazily connected tonic channel per peer address is shared by all groups, so many groups
//! cost one HTTP/2 connection per node pair. Snapshots use openraft's chunked transport on top
//! of `InstallSnapshot`, each chunk bounded by `snapshot_max_chunk_size`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use proto::command::{COMMAND_VERSION, COMMAND_VERSION_BASE};
use proto::pb::raft_transport_client::RaftTransportClient;
use proto::pb::{raft_reply, RaftReply, RaftRequest};
use proto::{codec, GroupId, GRPC_MESSAGE_BYTES_MAX};
use raft_store::{NodeId, TypeConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

/// Shared pool of channels to peers, keyed by address, and what each peer last said about the
/// command versions its build applies.
#[derive(Clone, Default)]
pub struct Channels {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    versions: Arc<Mutex<HashMap<NodeId, u32>>>,
}

impl Channels {
    /// Records the command version `node` said its build applies (a Raft reply's
    /// `command_version`; 0, from builds before the field, means version 4).
    pub fn record_version(&self, node: NodeId, version: u32) {
        let version = version.max(COMMAND_VERSION_BASE);
        let mut versions =
            self.versions.lock().expect("versions mutex is never held across a panic");
        if versions.get(&node) != Some(&version) {
            versions.insert(node, version);
        }
    }

    /// The highest command version every node of `nodes` applies, as far as their last Raft
    /// replies said: [`COMMAND_VERSION_BASE`] for a node not heard from yet (the safe guess).
    pub fn version_of_all(&self, nodes: impl IntoIterator<Item = NodeId>) -> u32 {
        let versions = self.versions.lock().expect("versions mutex is never held across a panic");
        nodes
            .into_iter()
            .map(|node| versions.get(&node).copied().unwrap_or(COMMAND_VERSION_BASE))
            .min()
            .unwrap_or(COMMAND_VERSION)
            .min(COMMAND_VERSION)
    }

    /// A channel to `addr` (`host:port`), created lazily and reused.
    ///
    /// # Errors
    /// The address does not form a valid URI.
    pub fn get(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut channels =
            self.channels.lock().expect("channel pool mutex is never held across a panic");
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .connect_lazy();
        channels.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }
}

/// Creates Raft clients for one group.
#[derive(Clone)]
pub struct NetworkFactory {
    group: GroupId,
    channels: Channels,
}

impl NetworkFactory {
    /// A factory for `group` using the shared channel pool.
    pub fn new(group: GroupId, channels: Channels) -> Self {
        NetworkFactory { group, channels }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Network {
        Network {
            group: self.group,
            target,
            channel: self.channels.get(&node.addr).map_err(|e| e.to_string()),
            channels: self.channels.clone(),
        }
    }
}

/// A Raft client from one group to one peer.
pub struct Network {
    group: GroupId,
    target: NodeId,
    channel: Result<Channel, String>,
    /// Where the peer's command version is recorded.
    channels: Channels,
}

#[derive(Clone, Copy)]
enum Method {
    Append,
    Vote,
    Snapshot,
}

impl Network {
    async fn call<Req, Resp, E>(
        &mut self,
        method: Method,
        request: &Req,
        ttl: Duration,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let channel = self
            .channel
            .clone()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&std::io::Error::other(e))))?;
        let payload =
            codec::encode(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut client = RaftTransportClient::new(channel)
            .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
        let mut grpc_request = tonic::Request::new(RaftRequest { group_id: self.group.0, payload });
        grpc_request.set_timeout(ttl);
        let call = async {
            match method {
                Method::Append => client.append_entries(grpc_request).await,
                Method::Vote => client.vote(grpc_request).await,
                Method::Snapshot => client.install_snapshot(grpc_request).await,
            }
        };
        let reply: RaftReply = match tokio::time::timeout(ttl, call).await {
            Err(_) => {
                let action = match method {
                    Method::Append => RPCTypes::AppendEntries,
                    Method::Vote => RPCTypes::Vote,
                    Method::Snapshot => RPCTypes::InstallSnapshot,
                };
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: 0,
                    target: self.target,
                    timeout: ttl,
                }));
            }
            Ok(Err(status)) => {
                return Err(match status.code() {
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
                        RPCError::Unreachable(Unreachable::new(&status))
                    }
                    _ => RPCError::Network(NetworkError::new(&status)),
                })
            }
            Ok(Ok(reply)) => reply.into_inner(),
        };
        self.channels.record_version(self.target, reply.command_version);
        match reply.result {
            Some(raft_reply::Result::Ok(bytes)) => {
                codec::decode(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))
            }
            Some(raft_reply::Result::Error(bytes)) => {
                let error: RaftError<NodeId, E> =
                    codec::decode(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
                Err(RPCError::RemoteError(RemoteError::new(self.target, error)))
            }
            None => Err(RPCError::Network(NetworkError::new(&std::io::Error::other(
                "empty raft reply",
            )))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Network {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Method::Append, &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Method::Snapshot, &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Method::Vote, &rpc, option.hard_ttl()).await
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // Retry an unreachable peer every 200 ms: short enough to notice a restarted node fast.
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}

/// Encodes a Raft handler's result into a reply.
///
/// # Errors
/// The result could not be encoded (never for openraft's types).
pub fn reply<T: Serialize, E: Serialize>(result: Result<T, E>) -> Result<RaftReply, tonic::Status> {
    let encoded = match &result {
        Ok(value) => codec::encode(value).map(raft_reply::Result::Ok),
        Err(error) => codec::encode(error).map(raft_reply::Result::Error),
    };
    let result = encoded.map_err(|e| tonic::Status::internal(e.to_string()))?;
    Ok(RaftReply { result: Some(result), command_version: COMMAND_VERSION })
}
