//! Typed calls to the meta group: its map, proposals of meta commands, a node's join.
//!
//! They ride on the same routing and leader following as shard calls ([`ClusterClient`]); the
//! meta group is group 0 and its replicas come from the cached map, or the seeds before one is
//! known.

use proto::command::{Command, Proposal, Query, QueryResult, Reply};
use proto::meta::{MetaCommand, MetaQuery, MetaQueryResult, Topology};
use proto::pb::{join_reply, JoinRequest};
use proto::META_GROUP;

use crate::cluster::{Attempt, ClusterClient, Failure};
use crate::ClusterError;

impl ClusterClient {
    /// The meta group's current map, read on its leader (linearizable); it also becomes this
    /// client's cached map.
    ///
    /// # Errors
    /// No meta leader answered within the retry policy.
    pub async fn meta_topology(&self) -> Result<Topology, ClusterError> {
        let answer = self.query(META_GROUP, &Query::Meta(MetaQuery::Topology), true).await?;
        let QueryResult::Meta(MetaQueryResult::Topology { topology }) = answer else {
            return Err(ClusterError::Invalid(format!("unexpected topology answer {answer:?}")));
        };
        self.remember_topology(topology.clone());
        Ok(topology)
    }

    /// Proposes a meta command (without a request id) on the meta leader and returns its
    /// reply.
    ///
    /// # Errors
    /// [`ClusterError::Refused`] with the meta group's rejection, or the group is unreachable.
    pub async fn propose_meta(&self, command: MetaCommand) -> Result<Reply, ClusterError> {
        let proposal = Proposal { request_id: None, command: Command::Meta(command) };
        self.propose(META_GROUP, &proposal).await?.map_err(ClusterError::Refused)
    }

    /// Asks the meta leader to register node `node_id` at `addr`, in `zone` if given (what
    /// `--join` and `--zone` do); safe to repeat.
    ///
    /// # Errors
    /// No meta leader accepted it within the retry policy.
    pub async fn join(
        &self,
        node_id: u64,
        addr: &str,
        zone: Option<&str>,
    ) -> Result<(), ClusterError> {
        self.with_retries(META_GROUP, true, |target| {
            let request = JoinRequest {
                group_id: META_GROUP.0,
                node_id,
                grpc_addr: addr.to_owned(),
                zone: zone.unwrap_or_default().to_owned(),
            };
            async move {
                let reply = self
                    .channels()
                    .cluster(&target)?
                    .join(request)
                    .await
                    .map_err(Failure::from_status)?
                    .into_inner();
                match reply.result {
                    Some(join_reply::Result::Ok(_)) => Ok(Attempt::Done(())),
                    Some(join_reply::Result::NotLeader(hint)) => Ok(Attempt::Redirect(hint)),
                    None => Err(Failure::Retry("empty reply".into())),
                }
            }
        })
        .await
    }
}
