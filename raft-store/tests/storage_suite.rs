//! openraft's storage conformance suite, run against the RocksDB log store and the inventory
//! state machine sharing one database.

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use proto::GroupId;
use raft_store::{Db, LogStore, NodeId, StateMachineStore, TypeConfig};
use tempfile::TempDir;

struct Builder;

fn io_error(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageError::from_io_error(
        openraft::ErrorSubject::Store,
        openraft::ErrorVerb::Write,
        std::io::Error::other(e.to_string()),
    )
}

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<NodeId>> {
        let dir = tempfile::tempdir().map_err(io_error)?;
        // fsync off: the suite checks semantics, not durability; it runs hundreds of stores.
        let db = Db::open(dir.path(), false).map_err(io_error)?;
        // A second group in the same database must not disturb the one under test.
        let _neighbour = LogStore::open(db.clone(), GroupId(2)).map_err(io_error)?;
        let log = LogStore::open(db.clone(), GroupId(1)).map_err(io_error)?;
        let sm = StateMachineStore::open(db, GroupId(1), None).map_err(io_error)?;
        Ok((dir, log, sm))
    }
}

#[test]
fn passes_openraft_storage_suite() {
    Suite::test_all(Builder).expect("storage suite");
}
