//! The one client of a Marquee cluster, shared by the gateway, `marqueectl`, the search sync
//! worker and the nodes themselves (bootstrap and `--join`).
//!
//! Why a crate of its own: reaching a Raft group means finding its leader, following
//! `NotLeader` hints, re-reading the shard map on `WrongShard` and retrying elections away
//! with bounded backoff. Each caller used to carry its own copy of that loop (and `marqueectl`
//! linked the whole gateway to reuse two functions); now there is one:
//! - [`channels`]: lazily connected gRPC channels, one pool per client;
//! - [`batcher`]: proposals to one node sent many per call;
//! - [`retry`]: the retry policies and the backoff every loop pauses with;
//! - [`cluster`]: the routing client (show -> shard -> leader, cached) for proposals, queries
//!   and streams;
//! - [`meta`]: typed calls to the meta group (its map, meta commands, joining a node).
//!
//! What it does not hold: anything about HTTP, accounts or search; callers above it decide
//! what a rejection means to their users.

pub mod batcher;
pub mod channels;
pub mod cluster;
pub mod meta;
pub mod retry;

pub use channels::{ChannelConfig, Channels, PROPOSE_INFLIGHT_DEFAULT};
pub use cluster::ClusterClient;
pub use retry::{retry, Backoff, RetryError, RetryPolicy};

/// Why a call to the cluster did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No leader could be reached within the retry budget. For a proposal without a request id
    /// (and a client whose policy does not retry unknown outcomes) this means it was not
    /// applied; with a request id, retrying it under the same id is safe either way.
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
    /// A proposal without a request id may or may not have been applied (a timeout, a
    /// connection lost mid-call): retrying it could apply it twice.
    #[error("cluster unavailable, outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The node rejected the request as malformed (a client bug), or the address is unusable.
    #[error("request rejected by node: {0}")]
    Invalid(String),
    /// The meta group has no placement for the show.
    #[error("show {0} is not placed on any shard")]
    UnknownShow(u64),
    /// The meta group refused a meta command ([`ClusterClient::propose_meta`]).
    #[error("refused by the meta group: {0}")]
    Refused(proto::command::Rejection),
}

/// A random id in 1..=[`SHOW_ID_MAX`](proto::limits::SHOW_ID_MAX) (JavaScript's
/// `Number.MAX_SAFE_INTEGER`, so browsers read ids exactly), for records created without one
/// (accounts, catalog).
pub fn random_id() -> u64 {
    use rand::Rng;
    rand::rng().random_range(1..=proto::limits::SHOW_ID_MAX)
}
