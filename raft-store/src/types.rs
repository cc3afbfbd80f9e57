//! The openraft type configuration shared by every Marquee Raft group.

use std::io::Cursor;

use proto::command::{LogCommand, Outcome};

/// Node ids are positive integers chosen by the operator.
pub type NodeId = u64;

/// What applying an entry returns: the command's outcome, or `None` for blank and
/// membership entries.
pub type ApplyResponse = Option<Outcome>;

openraft::declare_raft_types!(
    /// Marquee's Raft types: entries carry leader-stamped inventory commands.
    pub TypeConfig:
        D = LogCommand,
        R = ApplyResponse,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = crate::runtime::MarqueeRuntime,
);

/// A log entry of a Marquee group.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id of a Marquee group.
pub type LogId = openraft::LogId<NodeId>;
/// A vote of a Marquee group.
pub type Vote = openraft::Vote<NodeId>;
/// A storage error of a Marquee group.
pub type StorageError = openraft::StorageError<NodeId>;
