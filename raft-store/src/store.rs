//! The adapter that runs a group's state machine under openraft, with snapshots persisted in
//! RocksDB. The rules themselves live in the `state-machine` crate; this module only feeds them
//! committed entries, answers reads, and stores and installs snapshots.
//!
//! A group's state is a [`GroupState`], chosen once when the replica opens: group 0 (the meta
//! group) holds a [`MetaState`], every other group an [`Inventory`]. Nothing else branches on the
//! group id. A command of the other kind is answered with a deterministic `WrongGroup` rejection
//! by the state machine itself, so one type config serves both.
//!
//! The state lives in memory behind a `RwLock` shared with the node's read path.
//! Applying does no I/O: the synced log is the durable record, and on restart openraft re-applies
//! it on top of the last persisted snapshot. Snapshots serialize the whole inventory (JSON),
//! are written to the `sm` column family through the group-commit writer before openraft is
//! told about them, and travel to lagging followers in chunks (openraft's chunked transport,
//! bounded by `snapshot_max_chunk_size`).
//!
//! Invariants asserted here: entries are applied once, in increasing index order
//! (`index > last_applied`), and a snapshot is only installed if it is newer than what
//! is applied.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StoredMembership};
use proto::command::{Query, QueryResult};
use proto::{GroupId, META_GROUP};
use state_machine::{Inventory, MetaState};

use crate::db::{Db, Op};
use crate::keys::{self, SmTag, CF_SM};
use crate::types::{ApplyResponse, Entry, LogId, NodeId, StorageError, TypeConfig};
use crate::{Error, Result};

/// Called after each applied batch with its size and duration (for metrics).
pub type ApplyObserver = Arc<dyn Fn(usize, Duration) + Send + Sync>;

type Membership = StoredMembership<NodeId, openraft::BasicNode>;
type Meta = SnapshotMeta<NodeId, openraft::BasicNode>;

/// The replicated state of one group: the meta group's or an inventory shard's.
#[derive(Debug, Clone)]
pub enum GroupState {
    /// Group 0: node registry, shard map, catalog and accounts.
    Meta(Box<MetaState>),
    /// An inventory shard: seats, holds and bookings of its shows.
    Inventory(Box<Inventory>),
}

impl GroupState {
    /// The empty state of `group`'s kind.
    pub fn empty(group: GroupId) -> GroupState {
        if group == META_GROUP {
            GroupState::Meta(Box::default())
        } else {
            GroupState::Inventory(Box::default())
        }
    }

    /// Decodes a snapshot of `group`'s kind.
    ///
    /// # Errors
    /// Undecodable bytes.
    pub fn from_snapshot(group: GroupId, data: &[u8]) -> Result<GroupState> {
        let corrupt = |e: state_machine::DecodeError| Error::Corrupt(format!("group {group}: {e}"));
        Ok(if group == META_GROUP {
            GroupState::Meta(Box::new(MetaState::from_snapshot(data).map_err(corrupt)?))
        } else {
            GroupState::Inventory(Box::new(Inventory::from_snapshot(data).map_err(corrupt)?))
        })
    }

    /// The state as snapshot bytes.
    pub fn to_snapshot(&self) -> Vec<u8> {
        match self {
            GroupState::Meta(meta) => meta.to_snapshot(),
            GroupState::Inventory(inventory) => inventory.to_snapshot(),
        }
    }

    /// Applies one committed entry at log index `index`.
    pub fn apply(
        &mut self,
        index: u64,
        command: &proto::command::LogCommand,
    ) -> proto::command::Outcome {
        match self {
            GroupState::Meta(meta) => meta.apply(command),
            GroupState::Inventory(inventory) => inventory.apply(index, command),
        }
    }

    /// Answers a read (the digest's applied index is filled in by the caller).
    pub fn query(&self, query: &Query) -> QueryResult {
        match self {
            GroupState::Meta(meta) => meta.query(query),
            GroupState::Inventory(inventory) => inventory.query(query),
        }
    }

    /// The encoded answer to a read (seat maps written without building their view).
    ///
    /// # Errors
    /// Encoding failed (JSON of these types cannot).
    pub fn encode_answer(
        &self,
        query: &Query,
    ) -> std::result::Result<Vec<u8>, proto::codec::CodecError> {
        match self {
            GroupState::Meta(meta) => proto::codec::encode(&meta.query(query)),
            GroupState::Inventory(inventory) => inventory.encode_answer(query),
        }
    }

    /// Log time of the last applied entry.
    pub fn now_ms(&self) -> u64 {
        match self {
            GroupState::Meta(meta) => meta.now_ms(),
            GroupState::Inventory(inventory) => inventory.now_ms(),
        }
    }

    /// The shard map, for the meta group.
    pub fn topology(&self) -> Option<&proto::meta::Topology> {
        match self {
            GroupState::Meta(meta) => Some(meta.topology()),
            GroupState::Inventory(_) => None,
        }
    }

    /// Earliest hold or payment deadline still pending, for an inventory shard.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        match self {
            GroupState::Meta(_) => None,
            GroupState::Inventory(inventory) => inventory.next_deadline_ms(),
        }
    }

    /// Runs the inventory's structural invariant checks (tests and debug builds).
    pub fn check_invariants(&self) {
        if let GroupState::Inventory(inventory) = self {
            inventory.check_invariants();
        }
    }
}

/// The applied state of a group.
#[derive(Debug, Clone)]
pub struct Applied {
    /// Last applied log id.
    pub last_applied: Option<LogId>,
    /// Last applied membership config.
    pub membership: Membership,
    /// The state machine's state.
    pub state: GroupState,
}

impl Applied {
    fn empty(group: GroupId) -> Applied {
        Applied {
            last_applied: None,
            membership: Membership::default(),
            state: GroupState::empty(group),
        }
    }

    /// Log time of the last applied entry.
    pub fn now_ms(&self) -> u64 {
        self.state.now_ms()
    }
}

#[derive(Debug, Clone)]
struct StoredSnapshot {
    meta: Meta,
    data: Vec<u8>,
}

struct Shared {
    group: GroupId,
    db: Db,
    applied: RwLock<Applied>,
    snapshot: std::sync::Mutex<Option<StoredSnapshot>>,
    snapshot_seq: AtomicU64,
    observer: Option<ApplyObserver>,
}

/// The state machine of one inventory group. Clones share state.
#[derive(Clone)]
pub struct StateMachineStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for StateMachineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachineStore").field("group", &self.shared.group).finish()
    }
}

impl StateMachineStore {
    /// Loads the group's last persisted snapshot, if any, as the starting state.
    ///
    /// # Errors
    /// RocksDB failure or an undecodable snapshot.
    pub fn open(
        db: Db,
        group: GroupId,
        observer: Option<ApplyObserver>,
    ) -> Result<StateMachineStore> {
        let meta = db.get(CF_SM, &keys::sm_key(group, SmTag::SnapshotMeta))?;
        let data = db.get(CF_SM, &keys::sm_key(group, SmTag::SnapshotData))?;
        let (applied, snapshot) = match (meta, data) {
            (Some(meta), Some(data)) => {
                let meta: Meta = serde_json::from_slice(&meta).map_err(|e| {
                    Error::Corrupt(format!("group {group}: snapshot metadata is undecodable: {e}"))
                })?;
                let applied = decode_snapshot(group, &meta, &data)?;
                (applied, Some(StoredSnapshot { meta, data }))
            }
            _ => (Applied::empty(group), None),
        };
        Ok(StateMachineStore {
            shared: Arc::new(Shared {
                group,
                db,
                applied: RwLock::new(applied),
                snapshot: std::sync::Mutex::new(snapshot),
                snapshot_seq: AtomicU64::new(0),
                observer,
            }),
        })
    }

    /// Read access to the applied state.
    pub fn read(&self) -> RwLockReadGuard<'_, Applied> {
        self.shared.applied.read().expect("state machine lock poisoned by a failed assertion")
    }

    fn write(&self) -> RwLockWriteGuard<'_, Applied> {
        self.shared.applied.write().expect("state machine lock poisoned by a failed assertion")
    }

    /// Answers a query from the applied state.
    pub fn query(&self, query: &Query) -> QueryResult {
        let applied = self.read();
        match applied.state.query(query) {
            QueryResult::Digest { digest, .. } => QueryResult::Digest {
                applied_index: applied.last_applied.map_or(0, |id| id.index),
                digest,
            },
            other => other,
        }
    }

    /// [`StateMachineStore::query`], encoded; seat maps are written straight from the records
    /// (`state_machine::inventory`'s `encode` module), the one read worth the shortcut.
    ///
    /// # Errors
    /// Encoding failed (JSON of these types cannot).
    pub fn encode_answer(
        &self,
        query: &Query,
    ) -> std::result::Result<Vec<u8>, proto::codec::CodecError> {
        match query {
            Query::SeatMap { .. } => self.read().state.encode_answer(query),
            other => proto::codec::encode(&self.query(other)),
        }
    }

    /// Index of the last persisted snapshot.
    pub fn snapshot_index(&self) -> Option<u64> {
        self.lock_snapshot().as_ref().and_then(|s| s.meta.last_log_id).map(|id| id.index)
    }

    fn lock_snapshot(&self) -> std::sync::MutexGuard<'_, Option<StoredSnapshot>> {
        self.shared.snapshot.lock().expect("snapshot lock poisoned by a failed assertion")
    }

    async fn persist_snapshot(&self, snapshot: &StoredSnapshot) -> Result<()> {
        let group = self.shared.group;
        let meta = serde_json::to_vec(&snapshot.meta).map_err(|e| Error::Corrupt(e.to_string()))?;
        self.shared
            .db
            .write(vec![
                Op::Put {
                    cf: CF_SM,
                    key: keys::sm_key(group, SmTag::SnapshotMeta).to_vec(),
                    value: meta,
                },
                Op::Put {
                    cf: CF_SM,
                    key: keys::sm_key(group, SmTag::SnapshotData).to_vec(),
                    value: snapshot.data.clone(),
                },
            ])
            .await
    }
}

/// A snapshot is the group's state ([`GroupState::to_snapshot`]) plus openraft's metadata.
fn decode_snapshot(group: GroupId, meta: &Meta, data: &[u8]) -> Result<Applied> {
    Ok(Applied {
        last_applied: meta.last_log_id,
        membership: meta.last_membership.clone(),
        state: GroupState::from_snapshot(group, data)?,
    })
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> std::result::Result<Snapshot<TypeConfig>, StorageError> {
        // Clone under the lock (fast), serialize outside it so applies are not stalled.
        let (state, last_applied, membership) = {
            let applied = self.read();
            (applied.state.clone(), applied.last_applied, applied.membership.clone())
        };
        let data = if self.shared.db.is_simulated() {
            // The simulator runs every task on one thread in a seeded order: no thread pool.
            state.to_snapshot()
        } else {
            tokio::task::spawn_blocking(move || state.to_snapshot())
                .await
                .map_err(|e| Error::Io(e.to_string()).into_storage_error())?
        };
        let seq = self.shared.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id, id.index, seq),
            None => format!("none-{seq}"),
        };
        let meta = Meta { last_log_id: last_applied, last_membership: membership, snapshot_id };
        let stored = StoredSnapshot { meta: meta.clone(), data };
        self.persist_snapshot(&stored).await.map_err(Error::into_storage_error)?;
        let data = stored.data.clone();
        *self.lock_snapshot() = Some(stored);
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(
        &mut self,
    ) -> std::result::Result<(Option<LogId>, Membership), StorageError> {
        let applied = self.read();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(
        &mut self,
        entries: I,
    ) -> std::result::Result<Vec<ApplyResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let started = Instant::now();
        let mut responses = Vec::new();
        {
            let mut applied = self.write();
            for entry in entries {
                let index = entry.log_id.index;
                if let Some(last) = applied.last_applied {
                    // Never apply an entry twice or out of order. (openraft applies contiguous
                    // ranges; its conformance suite also applies synthetic ranges with gaps.)
                    assert!(
                        index > last.index,
                        "entries are applied once, in increasing index order"
                    );
                }
                applied.last_applied = Some(entry.log_id);
                let response = match entry.payload {
                    EntryPayload::Blank => None,
                    EntryPayload::Membership(membership) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                        None
                    }
                    EntryPayload::Normal(command) => Some(applied.state.apply(index, &command)),
                };
                responses.push(response);
            }
            if cfg!(debug_assertions) && cfg!(test) {
                applied.state.check_invariants();
            }
        }
        if let Some(observer) = &self.shared.observer {
            observer(responses.len(), started.elapsed());
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> std::result::Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> std::result::Result<(), StorageError> {
        let data = snapshot.into_inner();
        let decoded =
            decode_snapshot(self.shared.group, meta, &data).map_err(Error::into_storage_error)?;
        let stored = StoredSnapshot { meta: meta.clone(), data };
        // Persist first: if we crash after, the restart loads this snapshot.
        self.persist_snapshot(&stored).await.map_err(Error::into_storage_error)?;
        {
            let mut applied = self.write();
            assert!(
                applied.last_applied <= meta.last_log_id,
                "an installed snapshot is never older than the applied state"
            );
            *applied = decoded;
        }
        *self.lock_snapshot() = Some(stored);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> std::result::Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.lock_snapshot().as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}

/// Group id of this state machine.
impl StateMachineStore {
    /// The group this state machine belongs to.
    pub fn group(&self) -> GroupId {
        self.shared.group
    }
}
