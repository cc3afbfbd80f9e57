//! The simulated network between the nodes of a run: openraft's RPCs and the clock readings a
//! new leader takes, delivered by function call to the target's replica after a seeded delay,
//! or lost, duplicated (a stale copy arrives later: reordering), or cut by a partition.
//! A message to or from a crashed process is lost; so is the answer to a request whose sender
//! crashed and restarted in the meantime.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use raft_store::{NodeId, TypeConfig};

use super::World;

/// How long a sender waits for an answer that never comes before it calls the peer
/// unreachable.
pub const LOST_AFTER: Duration = Duration::from_millis(150);

/// The network's faults of the moment.
#[derive(Debug, Default)]
pub struct NetState {
    /// Directed links that drop everything: (from, to).
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a delivered request is delivered a second time, later.
    pub duplicate: f64,
    /// One-way delay bounds, milliseconds.
    pub delay_ms: (u64, u64),
}

impl World {
    /// One leg of a message from `from` to `to`: waits its delay and says whether it arrived.
    pub(crate) async fn leg(&self, from: NodeId, to: NodeId) -> bool {
        let (lost, delay) = {
            let net = self.net.lock().expect("net lock");
            let (low, high) = net.delay_ms;
            let delay = self.random_range(low, high);
            let lost = net.cut.contains(&(from, to)) || self.random_bool(net.loss);
            (lost, delay)
        };
        if lost {
            tokio::time::sleep(LOST_AFTER).await;
            return false;
        }
        tokio::time::sleep(Duration::from_millis(delay)).await;
        // A crashed target receives nothing.
        self.node(to).is_running()
    }

    fn duplicate(&self) -> Option<u64> {
        let p = self.net.lock().expect("net lock").duplicate;
        self.random_bool(p).then(|| self.random_range(5, 400))
    }
}

/// Hands out connections for one process of one node.
pub struct SimNetwork {
    pub(crate) world: Arc<World>,
    pub(crate) from: NodeId,
    pub(crate) epoch: u64,
}

impl RaftNetworkFactory<TypeConfig> for SimNetwork {
    type Network = SimConnection;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> SimConnection {
        SimConnection { world: Arc::clone(&self.world), from: self.from, epoch: self.epoch, target }
    }
}

/// One process's connection to one peer.
pub struct SimConnection {
    world: Arc<World>,
    from: NodeId,
    epoch: u64,
    target: NodeId,
}

fn unreachable<E: std::error::Error>(why: &str) -> RPCError<NodeId, BasicNode, E> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(why.to_owned())))
}

impl SimConnection {
    /// Delivers a request and its answer; `None` when either leg was lost or the sender's
    /// process is gone when the answer arrives.
    async fn round_trip<T, E, F, Fut>(
        &self,
        deliver: F,
    ) -> Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        E: std::error::Error,
        F: FnOnce(openraft::Raft<TypeConfig>) -> Fut,
        Fut: std::future::Future<Output = Result<T, RaftError<NodeId, E>>>,
    {
        if !self.world.node(self.from).is_process(self.epoch) {
            return Err(unreachable("the sending process has crashed"));
        }
        if !self.world.leg(self.from, self.target).await {
            return Err(unreachable("request lost"));
        }
        let Some(raft) = self.world.node(self.target).raft() else {
            return Err(unreachable("target down"));
        };
        let answer = deliver(raft).await;
        if !self.world.leg(self.target, self.from).await
            || !self.world.node(self.from).is_process(self.epoch)
        {
            return Err(unreachable("answer lost"));
        }
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    /// Delivers a stale copy of a request later, its answer thrown away (a duplicate).
    fn maybe_duplicate<R, F, Fut>(&self, request: &R, deliver: F)
    where
        R: Clone + Send + 'static,
        F: FnOnce(openraft::Raft<TypeConfig>, R) -> Fut + Send + 'static,
        Fut: std::future::Future + Send + 'static,
    {
        let Some(later_ms) = self.world.duplicate() else { return };
        let world = Arc::clone(&self.world);
        let (request, target) = (request.clone(), self.target);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(later_ms)).await;
            if let Some(raft) = world.node(target).raft() {
                let _ = deliver(raft, request).await;
            }
        });
    }
}

impl RaftNetwork<TypeConfig> for SimConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.maybe_duplicate(&rpc, |raft, rpc| async move { raft.append_entries(rpc).await });
        self.round_trip(|raft| async move { raft.append_entries(rpc).await }).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let done = rpc.done;
        let answer = self.round_trip(|raft| async move { raft.install_snapshot(rpc).await }).await;
        if done && answer.is_ok() {
            self.world.snapshots_installed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        answer
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.maybe_duplicate(&rpc, |raft, rpc| async move { raft.vote(rpc).await });
        self.round_trip(|raft| async move { raft.vote(rpc).await }).await
    }
}
