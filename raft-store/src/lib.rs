//! Raft storage for Marquee: openraft's type config, the RocksDB-backed log store, and the
//! adapter ([`store`]) that runs the state machines of the `state-machine` crate under openraft
//! with snapshots. No networking and no business rules live here.
//!
//! One node owns one RocksDB ([`Db`]) shared by every Raft group it hosts; every key starts with
//! the group id ([`keys`]). All writes go through the node's group-commit writer thread, which
//! merges the writes of all groups into one synced batch ([`db`]).
//!
//! Durability model (docs/architecture.md, invariant 2): log entries and votes are fsync'ed before
//! openraft is told they are flushed, so an entry acknowledged to a client is on a majority of
//! disks. The state machine lives in memory and is rebuilt on restart from its last snapshot
//! (persisted in RocksDB) plus the log after it, which openraft re-applies; the log is purged
//! only behind a persisted snapshot.
//!
//! [`restore`] builds a node's database from an online backup's checkpoints. [`simdisk`] is the
//! deterministic simulator's disk behind the same [`Db`] handle, and [`runtime`] openraft's
//! runtime with a random source the simulator can seed.

pub mod db;
pub mod keys;
pub mod limits;
pub mod log_store;
pub mod restore;
pub mod runtime;
pub mod simdisk;
pub mod store;
pub mod types;
pub mod write;

pub use db::Db;
pub use log_store::LogStore;
pub use simdisk::SimDisk;
pub use store::{ApplyObserver, GroupState, StateMachineStore};
pub use types::{NodeId, TypeConfig};

/// Storage errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// RocksDB failed.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// Other I/O failure (writer stopped, thread spawn).
    #[error("storage i/o: {0}")]
    Io(String),
    /// Stored bytes could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn into_storage_error(self) -> openraft::StorageError<NodeId> {
        openraft::StorageError::from_io_error(
            openraft::ErrorSubject::Store,
            openraft::ErrorVerb::Write,
            std::io::Error::other(self.to_string()),
        )
    }
}
