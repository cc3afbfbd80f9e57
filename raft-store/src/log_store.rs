//! openraft log storage for one group, backed by the node's shared RocksDB.
//!
//! The entries not yet purged are also kept in memory: openraft requires entries to be readable
//! as soon as `append` returns, before they are durable, and reads from memory are what the
//! replication hot path wants anyway. Memory stays bounded because the log is purged behind
//! snapshots (see the node's snapshot policy).
//!
//! Durability: appends are handed to the group-commit writer and openraft's `LogFlushed`
//! callback fires only after the synced batch containing them is written. Votes, truncations and
//! purges wait for their synced write before returning. Because the writer is a single FIFO,
//! a truncate followed by an append reaches disk in that order.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use proto::GroupId;

use crate::db::{Db, Op};
use crate::keys::{self, MetaTag, CF_LOG, CF_META};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use crate::{Error, Result};

#[derive(Debug, Default)]
struct LogInner {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

/// The log of one group. Clones share the same log (openraft's log reader is a clone).
#[derive(Debug, Clone)]
pub struct LogStore {
    group: GroupId,
    db: Db,
    inner: Arc<Mutex<LogInner>>,
}

impl LogStore {
    /// Loads the group's log, vote and committed id from the database.
    ///
    /// # Errors
    /// RocksDB failure or undecodable stored data.
    pub fn open(db: Db, group: GroupId) -> Result<LogStore> {
        let mut inner = LogInner {
            vote: read_meta(&db, group, MetaTag::Vote)?,
            committed: read_meta(&db, group, MetaTag::Committed)?,
            last_purged: read_meta(&db, group, MetaTag::Purged)?,
            entries: BTreeMap::new(),
        };
        let start = keys::log_key(group, 0);
        let end = keys::log_key(group, u64::MAX);
        db.for_each(CF_LOG, &start, &end, |key, value| {
            let index = keys::log_key_index(key);
            let entry: Entry = serde_json::from_slice(value).map_err(|e| {
                Error::Corrupt(format!("group {group}: log entry {index} is undecodable: {e}"))
            })?;
            if entry.log_id.index != index {
                return Err(Error::Corrupt(format!(
                    "group {group}: log entry stored at index {index} says it is entry {}",
                    entry.log_id.index
                )));
            }
            inner.entries.insert(index, entry);
            Ok(true)
        })?;
        Ok(LogStore { group, db, inner: Arc::new(Mutex::new(inner)) })
    }

    fn lock(&self) -> MutexGuard<'_, LogInner> {
        // A panic while holding this lock happens only in an assertion; the node is going down.
        self.inner.lock().expect("log store mutex poisoned by a failed assertion")
    }

    /// Number of entries held in memory (not yet purged).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no entries are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn put_meta<T: serde::Serialize>(&self, tag: MetaTag, value: &T) -> Result<Op> {
        Ok(Op::Put {
            cf: CF_META,
            key: keys::meta_key(self.group, tag).to_vec(),
            value: serde_json::to_vec(value).map_err(|e| Error::Corrupt(e.to_string()))?,
        })
    }

    fn delete_log_range(&self, from: u64, to: u64) -> Op {
        Op::DeleteRange {
            cf: CF_LOG,
            from: keys::log_key(self.group, from).to_vec(),
            to: keys::log_key(self.group, to).to_vec(),
        }
    }
}

/// Reads one of `group`'s Raft metadata records; an undecodable one is named in the error.
fn read_meta<T: serde::de::DeserializeOwned>(
    db: &Db,
    group: GroupId,
    tag: MetaTag,
) -> Result<Option<T>> {
    match db.get(CF_META, &keys::meta_key(group, tag))? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::Corrupt(format!("group {group}: {tag:?} record is undecodable: {e}"))
        }),
    }
}

fn storage_error(e: Error) -> StorageError {
    e.into_storage_error()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> std::result::Result<Vec<Entry>, StorageError> {
        Ok(self.lock().entries.range(range).map(|(_, entry)| entry.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> std::result::Result<LogState<TypeConfig>, StorageError> {
        let inner = self.lock();
        let last = inner.entries.last_key_value().map(|(_, e)| e.log_id).or(inner.last_purged);
        Ok(LogState { last_purged_log_id: inner.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> std::result::Result<(), StorageError> {
        let op = self.put_meta(MetaTag::Vote, vote).map_err(storage_error)?;
        // Durable before returning: a node must never vote twice in a term after a crash.
        self.db.write(vec![op]).await.map_err(storage_error)?;
        self.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> std::result::Result<Option<Vote>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId>,
    ) -> std::result::Result<(), StorageError> {
        self.lock().committed = committed;
        let op = self.put_meta(MetaTag::Committed, &committed).map_err(storage_error)?;
        // Lazy: the committed id only speeds up re-applying after a restart, so it costs no fsync
        // of its own; the FIFO writer keeps it ordered after the entries it refers to.
        self.db.submit_lazy(vec![op]).await.map_err(storage_error)
    }

    async fn read_committed(&mut self) -> std::result::Result<Option<LogId>, StorageError> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> std::result::Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut ops = Vec::new();
        {
            let mut inner = self.lock();
            for entry in entries {
                let value = serde_json::to_vec(&entry)
                    .map_err(|e| storage_error(Error::Corrupt(e.to_string())))?;
                let index = entry.log_id.index;
                if let Some((last, _)) = inner.entries.last_key_value() {
                    assert_eq!(*last + 1, index, "appended entries are consecutive");
                }
                ops.push(Op::Put {
                    cf: CF_LOG,
                    key: keys::log_key(self.group, index).to_vec(),
                    value,
                });
                inner.entries.insert(index, entry);
            }
        }
        self.db
            .submit(ops, move |result| {
                callback.log_io_completed(result.map_err(std::io::Error::other));
            })
            .await
            .map_err(storage_error)
    }

    async fn truncate(&mut self, log_id: LogId) -> std::result::Result<(), StorageError> {
        let op = self.delete_log_range(log_id.index, u64::MAX);
        {
            let mut inner = self.lock();
            let removed = inner.entries.split_off(&log_id.index);
            drop(removed);
        }
        self.db.write(vec![op]).await.map_err(storage_error)
    }

    async fn purge(&mut self, log_id: LogId) -> std::result::Result<(), StorageError> {
        let ops = vec![
            self.put_meta(MetaTag::Purged, &log_id).map_err(storage_error)?,
            self.delete_log_range(0, log_id.index + 1),
        ];
        self.db.write(ops).await.map_err(storage_error)?;
        let mut inner = self.lock();
        let kept = inner.entries.split_off(&(log_id.index + 1));
        inner.entries = kept;
        inner.last_purged = Some(log_id);
        Ok(())
    }
}
