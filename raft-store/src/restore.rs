//! The storage half of restoring a node from an online backup (docs/operations.md, "Backup and
//! restore"): read the replicas held in the nodes' checkpoints, pick for every group the most
//! advanced one, and write a fresh database holding that replica's log, snapshot and Raft
//! metadata for each group this node hosts.
//!
//! Why not the checkpoints themselves: each node was checkpointed at its own instant, so the
//! replicas of one group sit at different log positions, and a checkpointed leader resumes its
//! term on start without an election (openraft restores a committed vote naming itself as
//! leadership). A leader restored behind its followers then writes *new* entries under log ids
//! its followers already hold with other contents: the replicas diverge for good.
//!
//! What is written instead, for every node hosting a group, is the same copy of the group:
//! - the replica whose last log id is the greatest, as one snapshot: its snapshot with every
//!   entry of its log after it applied. That is the election rule of Raft: the backup holds a
//!   majority of each group's replicas, every entry committed before the backup is on one of
//!   them, and a log at least as up to date as one holding a committed entry holds that entry
//!   too (the leader completeness argument). So the chosen log holds every committed entry.
//!   (Its uncommitted tail is applied too; without a restore, the next leader would have
//!   committed it with its own first entry just the same.)
//! - the snapshot's last log id is [`INDEX_JUMP`] entries past the copy's last entry, and the
//!   log is purged up to it: the ids of holds and bookings carry the index of the entry that
//!   created them, and the old cluster may have gone on issuing ids after the backup; the
//!   restored one starts far beyond them, so no id (and no charge key, which is the booking id)
//!   is issued twice. Every replica gets the same snapshot, so the jump is consistent: no
//!   replica holds an entry at the skipped indexes.
//! - a vote that commits nobody: uncommitted, for the node itself, one term above the
//!   greatest term any replica of the group had voted in (so above the leader id of every
//!   entry, as a node's vote always is). No replica starts as leader; the first election runs
//!   at a higher term than every entry in the log, so no log id is ever reused.
//!
//! The replicas of a group therefore start identical and elect a leader among themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use openraft::EntryPayload;
use proto::GroupId;
use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, DB};

use crate::db::Db;
use crate::keys::{self, MetaTag, SmTag, CF_LOG, CF_META, CF_SM, COLUMN_FAMILIES};
use crate::store::GroupState;
use crate::types::{Entry, LogId, NodeId, Vote};
use crate::{Error, Result};

type Meta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
type Membership = openraft::StoredMembership<NodeId, openraft::BasicNode>;

/// Bytes gathered in one write batch while copying.
const COPY_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// What one checkpoint holds of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaInfo {
    /// The group.
    pub group: GroupId,
    /// Greatest log id it holds: its last entry, else its last purged entry or snapshot.
    pub last_log_id: Option<LogId>,
    /// Its persisted vote.
    pub vote: Option<Vote>,
    /// Nodes of its effective membership (voters and learners): the last membership entry in
    /// its log, else its snapshot's.
    pub members: BTreeSet<NodeId>,
}

/// A node's checkpoint, opened read-only.
pub struct Checkpoint {
    db: DB,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint").field("path", &self.db.path()).finish()
    }
}

fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a rocksdb::ColumnFamily> {
    db.cf_handle(name).ok_or_else(|| Error::Io(format!("no column family {name}")))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt(e.to_string()))
}

impl Checkpoint {
    /// Opens the checkpoint at `path` read-only. RocksDB's info log goes to `log_dir`, so the
    /// backup's files are never touched.
    ///
    /// # Errors
    /// RocksDB could not open it.
    pub fn open(path: &Path, log_dir: &Path) -> Result<Checkpoint> {
        let mut options = Options::default();
        options.set_db_log_dir(log_dir);
        let cfs = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors_read_only(&options, path, cfs, false)?;
        Ok(Checkpoint { db })
    }

    fn get(&self, cf_name: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(cf(&self.db, cf_name)?, key)?)
    }

    /// Every group the node recorded as hosted, with what it holds of it.
    ///
    /// # Errors
    /// RocksDB failure or undecodable records.
    pub fn replicas(&self) -> Result<Vec<ReplicaInfo>> {
        let meta = cf(&self.db, CF_META)?;
        let (from, to) = keys::hosted_range();
        let mut groups = Vec::new();
        for item in self.db.iterator_cf(meta, IteratorMode::From(&from, Direction::Forward)) {
            let (key, _) = item?;
            if key.as_ref() >= to.as_slice() {
                break;
            }
            groups.push(
                keys::hosted_key_group(&key)
                    .ok_or_else(|| Error::Corrupt("malformed hosted-group key".into()))?,
            );
        }
        groups.into_iter().map(|group| self.replica(group)).collect()
    }

    fn replica(&self, group: GroupId) -> Result<ReplicaInfo> {
        let vote: Option<Vote> = self
            .get(CF_META, &keys::meta_key(group, MetaTag::Vote))?
            .as_deref()
            .map(decode)
            .transpose()?;
        let purged: Option<LogId> = self
            .get(CF_META, &keys::meta_key(group, MetaTag::Purged))?
            .as_deref()
            .map(decode)
            .transpose()?;
        let snapshot: Option<Meta> = self
            .get(CF_SM, &keys::sm_key(group, SmTag::SnapshotMeta))?
            .as_deref()
            .map(decode)
            .transpose()?;
        // The log, newest first, down to the last membership entry.
        let log = cf(&self.db, CF_LOG)?;
        let (start, end) = (keys::log_key(group, 0), keys::log_key(group, u64::MAX));
        let mut last_entry: Option<LogId> = None;
        let mut members: Option<BTreeSet<NodeId>> = None;
        for item in self.db.iterator_cf(log, IteratorMode::From(&end, Direction::Reverse)) {
            let (key, value) = item?;
            if key.as_ref() < start.as_slice() {
                break;
            }
            let entry: Entry = decode(&value)?;
            last_entry = last_entry.or(Some(entry.log_id));
            if let EntryPayload::Membership(membership) = &entry.payload {
                members = Some(membership.nodes().map(|(id, _)| *id).collect());
                break;
            }
        }
        let members = members.unwrap_or_else(|| {
            snapshot.as_ref().map_or_else(BTreeSet::new, |s| {
                s.last_membership.nodes().map(|(id, _)| *id).collect()
            })
        });
        let last_log_id =
            [last_entry, purged, snapshot.and_then(|s| s.last_log_id)].into_iter().flatten().max();
        Ok(ReplicaInfo { group, last_log_id, vote, members })
    }

    /// This checkpoint's copy of `group` as one snapshot: its snapshot (if any) with every
    /// entry of its log after it applied, and the id of the last of them.
    fn rebuilt_group(&self, group: GroupId) -> Result<(GroupState, Membership, Option<LogId>)> {
        let snapshot: Option<Meta> = self
            .get(CF_SM, &keys::sm_key(group, SmTag::SnapshotMeta))?
            .as_deref()
            .map(decode)
            .transpose()?;
        let data = self.get(CF_SM, &keys::sm_key(group, SmTag::SnapshotData))?;
        let (mut state, mut membership, mut last) = match (snapshot, data) {
            (Some(meta), Some(data)) => {
                (GroupState::from_snapshot(group, &data)?, meta.last_membership, meta.last_log_id)
            }
            _ => (GroupState::empty(group), Membership::default(), None),
        };
        let log = cf(&self.db, CF_LOG)?;
        let first = last.map_or(0, |id| id.index + 1);
        let (start, end) = (keys::log_key(group, first), keys::log_key(group, u64::MAX));
        for item in self.db.iterator_cf(log, IteratorMode::From(&start, Direction::Forward)) {
            let (key, value) = item?;
            if key.as_ref() > end.as_slice() {
                break;
            }
            let entry: Entry = decode(&value)?;
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Membership(m) => {
                    membership = Membership::new(Some(entry.log_id), m);
                }
                EntryPayload::Normal(command) => {
                    // A rejection is an outcome like any other: the state is what matters.
                    let _outcome = state.apply(entry.log_id.index, &command);
                }
            }
            last = Some(entry.log_id);
        }
        Ok((state, membership, last))
    }

    /// Adds this checkpoint's copy of `group` to `into` as a snapshot whose last log id is
    /// [`INDEX_JUMP`] entries past the copy's last entry, with the log purged up to it (see the
    /// module comment), writing full batches as it goes; the vote is not copied.
    fn copy_group(&self, group: GroupId, into: &Db, batch: &mut Batch) -> Result<LogId> {
        let (state, membership, last) = self.rebuilt_group(group)?;
        let last =
            last.ok_or_else(|| Error::Corrupt(format!("group {group}: no log to restore")))?;
        let jumped = LogId::new(last.leader_id, last.index.saturating_add(INDEX_JUMP));
        let meta = Meta {
            last_log_id: Some(jumped),
            last_membership: membership,
            snapshot_id: format!("restored-{}-{}", group.0, jumped.index),
        };
        batch.put(into, CF_SM, &keys::sm_key(group, SmTag::SnapshotMeta), &json(&meta)?)?;
        batch.put(into, CF_SM, &keys::sm_key(group, SmTag::SnapshotData), &state.to_snapshot())?;
        batch.put(into, CF_META, &keys::meta_key(group, MetaTag::Purged), &json(&jumped)?)?;
        let committed = json(&Some(jumped))?;
        batch.put(into, CF_META, &keys::meta_key(group, MetaTag::Committed), &committed)?;
        Ok(jumped)
    }
}

/// How far a restore moves each group's log index past the backup's last entry. Ids of holds
/// and bookings carry the index of the entry that created them, and the payment provider knows
/// charges by booking id: a restored group that went on from the backup's index would issue
/// again the ids the old cluster issued after the backup. 2^40 entries is over three years at
/// ten thousand entries a second.
pub const INDEX_JUMP: u64 = 1 << 40;

fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Corrupt(e.to_string()))
}

/// A write batch that is written (synced) whenever it grows past [`COPY_BATCH_BYTES`].
#[derive(Default)]
struct Batch {
    batch: WriteBatch,
    bytes: usize,
}

impl Batch {
    fn put(&mut self, db: &Db, name: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.batch.put_cf(cf(db.raw()?, name)?, key, value);
        self.bytes += key.len() + value.len();
        if self.bytes >= COPY_BATCH_BYTES {
            self.flush(db)?;
        }
        Ok(())
    }

    fn flush(&mut self, db: &Db) -> Result<()> {
        let mut options = rocksdb::WriteOptions::default();
        options.set_sync(true);
        db.raw()?.write_opt(std::mem::take(&mut self.batch), &options)?;
        self.bytes = 0;
        Ok(())
    }
}

/// Which replica a group is restored from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Node whose checkpoint holds the chosen replica.
    pub source: NodeId,
    /// That replica's last log id.
    pub last_log_id: Option<LogId>,
    /// Term of the restored vote: one above the greatest term any replica of the group in the
    /// backup voted in.
    pub term: u64,
    /// The chosen replica's membership: the nodes that host the group after the restore.
    pub members: BTreeSet<NodeId>,
    /// How many replicas of the group the backup holds.
    pub held: usize,
}

/// For every group, the replica with the greatest last log id (the lowest node id among
/// equals, so every node's restore picks the same one), given every checkpoint's replicas.
pub fn choose(replicas: &BTreeMap<NodeId, Vec<ReplicaInfo>>) -> BTreeMap<GroupId, Choice> {
    let mut chosen: BTreeMap<GroupId, Choice> = BTreeMap::new();
    for (node, held) in replicas {
        for replica in held {
            let term = replica.vote.map_or(0, |v| v.leader_id.term);
            match chosen.get_mut(&replica.group) {
                None => {
                    chosen.insert(
                        replica.group,
                        Choice {
                            source: *node,
                            last_log_id: replica.last_log_id,
                            term,
                            members: replica.members.clone(),
                            held: 1,
                        },
                    );
                }
                Some(choice) => {
                    choice.term = choice.term.max(term);
                    choice.held += 1;
                    if replica.last_log_id > choice.last_log_id {
                        choice.source = *node;
                        choice.last_log_id = replica.last_log_id;
                        choice.members = replica.members.clone();
                    }
                }
            }
        }
    }
    for choice in chosen.values_mut() {
        // A vote never trails the entries its node holds; the max only guards odd inputs.
        choice.term = choice.term.max(choice.last_log_id.map_or(0, |id| id.leader_id.term)) + 1;
    }
    chosen
}

/// Writes a new database at `path` (which must not exist) for node `node`, holding for each
/// `(group, checkpoint, choice)` the chosen replica's copy of the group, an uncommitted vote
/// for `node` at the choice's term, and the record that `node` hosts the group.
///
/// # Errors
/// RocksDB failure.
pub fn write(path: &Path, node: NodeId, groups: &[(GroupId, &Checkpoint, &Choice)]) -> Result<()> {
    let db = Db::open(path, true)?;
    let mut batch = Batch::default();
    for (group, checkpoint, choice) in groups {
        checkpoint.copy_group(*group, &db, &mut batch)?;
        let vote = serde_json::to_vec(&Vote::new(choice.term, node))
            .map_err(|e| Error::Corrupt(e.to_string()))?;
        batch.put(&db, CF_META, &keys::meta_key(*group, MetaTag::Vote), &vote)?;
        batch.put(&db, CF_META, &keys::hosted_key(*group), &[])?;
    }
    batch.flush(&db)?;
    // Into table files, so the first start does not replay a large write-ahead log.
    for name in COLUMN_FAMILIES {
        db.raw()?.flush_cf(cf(db.raw()?, name)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(group: u64, last: Option<(u64, u64, u64)>, vote_term: u64) -> ReplicaInfo {
        ReplicaInfo {
            group: GroupId(group),
            last_log_id: last.map(|(term, node, index)| {
                LogId::new(openraft::CommittedLeaderId::new(term, node), index)
            }),
            vote: Some(Vote::new(vote_term, 1)),
            members: [1, 2, 3].into(),
        }
    }

    #[test]
    fn the_most_up_to_date_log_wins_by_term_before_index() {
        // Node 1 led term 5 and appended up to 110 without committing; nodes 2 and 3 moved on
        // in term 6 and committed up to 105. The term-6 log holds every committed entry.
        let replicas = BTreeMap::from([
            (1, vec![replica(1, Some((5, 1, 110)), 5), replica(2, Some((3, 1, 40)), 3)]),
            (2, vec![replica(1, Some((6, 2, 105)), 7), replica(2, Some((3, 1, 40)), 4)]),
            (3, vec![replica(1, Some((6, 2, 100)), 6)]),
        ]);
        let chosen = choose(&replicas);
        let one = &chosen[&GroupId(1)];
        assert_eq!((one.source, one.last_log_id.map(|id| id.index)), (2, Some(105)));
        assert_eq!((one.term, one.held), (8, 3), "above the greatest vote term of any replica");
        let two = &chosen[&GroupId(2)];
        assert_eq!((two.source, two.term, two.held), (1, 5, 2), "equal logs: the lowest node id");
    }
}
