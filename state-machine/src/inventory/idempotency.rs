//! The idempotency table: the first outcome of every command that carried a request id, for
//! [`IDEMPOTENCY_TTL_MS`](crate::limits::IDEMPOTENCY_TTL_MS) of log time (invariant 6).
//!
//! Every command with a request id looks itself up here on every replica, and the table holds
//! up to 250 000 entries, so lookups are on the apply path's critical loop. Keyed by the request
//! id string, a B-tree search compared ~17 heap strings that share long prefixes: profiles of
//! followers put string comparison (`memcmp`, B-tree key search) first among their own costs
//! (docs/benchmarks.md, "Profile of a follower"). Here an entry is keyed by a 128-bit digest of
//! its id first and the id second: the search compares integers stored in the tree's nodes and
//! reads one string, at the match. Distinct ids with equal digests are still distinct keys, so
//! a collision costs a comparison, never a wrong answer.
//!
//! A `HashMap` was measured and rejected: its rehash of the whole table on growth tripled
//! p99.9 (docs/benchmarks.md, "Idempotency table and batching depth"); a B-tree never moves
//! more than a node.
//!
//! Expiry is a queue, not a sorted set: entries expire `IDEMPOTENCY_TTL_MS` after the log time
//! they were written at, log time never decreases, so insertion order is expiry order.
//!
//! Snapshots and digests keep their encoding exactly: the table as a JSON object in id order,
//! the expiry index as `[time, id]` pairs in (time, id) order — what the `BTreeMap<String, _>`
//! and `BTreeSet<(u64, String)>` this replaced wrote. Replicas of mixed versions thus still
//! agree on digests, and snapshots written by either open in the other (the tests compare the
//! bytes with those types' encoding).

use std::collections::{BTreeMap, VecDeque};

use proto::command::Outcome;
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// What a request id answers replays with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct IdempotencyEntry {
    pub(super) expires_at_ms: u64,
    pub(super) fingerprint: u64,
    pub(super) outcome: Outcome,
}

/// The first 128 bits of SHA-256 of a request id. A cryptographic digest, so no client can
/// choose ids that pile onto one key; never persisted, so it can change between versions.
/// Computed once per command: the lookup, the insert and the expiry queue all carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct RequestKey(u128);

impl RequestKey {
    pub(super) fn of(request_id: &str) -> Self {
        let digest = Sha256::digest(request_id.as_bytes());
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        Self(u128::from_be_bytes(first))
    }
}

/// Outcomes by request id (keyed by digest, then id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct IdempotencyTable {
    entries: BTreeMap<(RequestKey, String), IdempotencyEntry>,
}

impl IdempotencyTable {
    /// Number of remembered request ids.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entry of `request_id` (whose key is `key`), if remembered.
    pub(super) fn get(&self, key: RequestKey, request_id: &str) -> Option<&IdempotencyEntry> {
        // `(key, "")` is the least key with this digest (an empty `String` allocates nothing);
        // ids sharing the digest follow it in id order.
        self.entries
            .range((key, String::new())..)
            .take_while(|((k, _), _)| *k == key)
            .find(|((_, id), _)| id == request_id)
            .map(|(_, entry)| entry)
    }

    /// Remembers `entry` for `request_id` (replacing an entry of the same id).
    pub(super) fn insert(&mut self, key: RequestKey, request_id: String, entry: IdempotencyEntry) {
        self.entries.insert((key, request_id), entry);
    }

    /// Forgets `request_id` (taken by value: the tree's key is built from it, no copy).
    pub(super) fn remove(&mut self, key: RequestKey, request_id: String) {
        self.entries.remove(&(key, request_id));
    }
}

impl Serialize for IdempotencyTable {
    /// A JSON object in id order, as `BTreeMap<String, IdempotencyEntry>` wrote it.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut sorted: Vec<(&String, &IdempotencyEntry)> =
            self.entries.iter().map(|((_, id), entry)| (id, entry)).collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut map = serializer.serialize_map(Some(sorted.len()))?;
        for (id, entry) in sorted {
            map.serialize_entry(id, entry)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for IdempotencyTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TableVisitor;
        impl<'de> Visitor<'de> for TableVisitor {
            type Value = IdempotencyTable;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of request ids to outcomes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut table = IdempotencyTable::default();
                while let Some((id, entry)) = access.next_entry::<String, IdempotencyEntry>()? {
                    table.insert(RequestKey::of(&id), id, entry);
                }
                Ok(table)
            }
        }
        deserializer.deserialize_map(TableVisitor)
    }
}

/// Request ids in the order they expire: (log time they expire at, key, id), oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ExpiryQueue {
    queue: VecDeque<(u64, RequestKey, String)>,
}

impl ExpiryQueue {
    /// Appends an id that expires at `at`, no earlier than every id queued before it (the
    /// caller's log time never decreases, so `now + TTL` never does either).
    pub(super) fn push(&mut self, at: u64, key: RequestKey, request_id: String) {
        debug_assert!(self.queue.back().is_none_or(|(last, ..)| *last <= at), "expiry in order");
        self.queue.push_back((at, key, request_id));
    }

    /// The time the oldest id expires at.
    pub(super) fn first_at(&self) -> Option<u64> {
        self.queue.front().map(|(at, ..)| *at)
    }

    /// Removes and returns the oldest id with its key.
    pub(super) fn pop_first(&mut self) -> Option<(RequestKey, String)> {
        self.queue.pop_front().map(|(_, key, id)| (key, id))
    }
}

impl Serialize for ExpiryQueue {
    /// `[time, id]` pairs in (time, id) order, as `BTreeSet<(u64, String)>` wrote them: ids
    /// written at one log time are in insertion order in the queue, in id order on disk.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut sorted: Vec<(u64, &String)> =
            self.queue.iter().map(|(at, _, id)| (*at, id)).collect();
        // Already sorted by time: sorting runs of equal times is all this does.
        sorted.sort();
        let mut seq = serializer.serialize_seq(Some(sorted.len()))?;
        for pair in sorted {
            seq.serialize_element(&pair)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for ExpiryQueue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct QueueVisitor;
        impl<'de> Visitor<'de> for QueueVisitor {
            type Value = ExpiryQueue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of [expiry time, request id] pairs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut pairs: Vec<(u64, String)> =
                    Vec::with_capacity(access.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(pair) = access.next_element::<(u64, String)>()? {
                    pairs.push(pair);
                }
                // Written in (time, id) order; sorted again so any list loads as a queue.
                pairs.sort_by_key(|pair| pair.0);
                let queue = pairs.into_iter().map(|(at, id)| (at, RequestKey::of(&id), id));
                Ok(ExpiryQueue { queue: queue.collect() })
            }
        }
        deserializer.deserialize_seq(QueueVisitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proto::command::Rejection;

    use super::*;

    fn entry(at: u64) -> IdempotencyEntry {
        IdempotencyEntry {
            expires_at_ms: at,
            fingerprint: at * 7,
            outcome: Err(Rejection::WrongGroup),
        }
    }

    /// The encodings are byte for byte those of the types this replaced, whatever the insertion
    /// order: replicas of older versions compute the same digests and read the same snapshots.
    #[test]
    fn encodes_as_the_ordered_types_it_replaced() {
        let ids = ["req-9", "req-10", "b", "a", "req-1", "zz", "req-100", "m", "é", ""];
        let times = [5u64, 5, 5, 7, 7, 9, 9, 9, 9, 12];
        let mut table = IdempotencyTable::default();
        let mut queue = ExpiryQueue::default();
        let mut old_table = BTreeMap::new();
        let mut old_set = BTreeSet::new();
        for (id, at) in ids.iter().zip(times) {
            let key = RequestKey::of(id);
            table.insert(key, (*id).to_owned(), entry(at));
            queue.push(at, key, (*id).to_owned());
            old_table.insert((*id).to_owned(), entry(at));
            old_set.insert((at, (*id).to_owned()));
        }
        let table_json = serde_json::to_vec(&table).unwrap();
        let queue_json = serde_json::to_vec(&queue).unwrap();
        assert_eq!(table_json, serde_json::to_vec(&old_table).unwrap());
        assert_eq!(queue_json, serde_json::to_vec(&old_set).unwrap());
        // And they read back as the same table and queue (the queue in expiry order).
        let table_back: IdempotencyTable = serde_json::from_slice(&table_json).unwrap();
        assert_eq!(table_back, table);
        let queue_back: ExpiryQueue = serde_json::from_slice(&queue_json).unwrap();
        let times_back: Vec<u64> = queue_back.queue.iter().map(|(at, ..)| *at).collect();
        assert_eq!(times_back, times);
        let keys_back = queue_back.queue.iter().all(|(_, key, id)| *key == RequestKey::of(id));
        assert!(keys_back, "a loaded queue carries each id's key");
        // Old bytes load too.
        let from_old: IdempotencyTable =
            serde_json::from_slice(&serde_json::to_vec(&old_table).unwrap()).unwrap();
        assert_eq!(from_old, table);
    }

    /// Ids with the same digest are distinct entries: a lookup finds its own, a removal
    /// removes only its own (digests collide here by construction, as SHA-256 never will).
    #[test]
    fn ids_sharing_a_digest_stay_apart() {
        let mut table = IdempotencyTable::default();
        let key = RequestKey::of("a");
        let get = |table: &IdempotencyTable, id: &str| table.get(RequestKey::of(id), id).cloned();
        table.insert(key, "a".to_owned(), entry(1));
        // Plant more ids under the same digest, around "a" in id order.
        for (id, at) in [("", 2), ("b", 3), ("c", 4)] {
            table.insert(key, id.to_owned(), entry(at));
        }
        table.insert(RequestKey::of("d"), "d".to_owned(), entry(5));
        assert_eq!(table.len(), 5);
        assert_eq!(get(&table, "a"), Some(entry(1)));
        assert_eq!(table.get(key, ""), Some(&entry(2)));
        assert_eq!(table.get(key, "b"), Some(&entry(3)));
        assert_eq!(table.get(key, "c"), Some(&entry(4)));
        assert_eq!(table.get(key, "d"), None, "same digest, id not there");
        assert_eq!(get(&table, "d"), Some(entry(5)));
        assert_eq!(get(&table, "e"), None);
        table.remove(key, "a".to_owned());
        assert_eq!(get(&table, "a"), None);
        assert_eq!(table.get(key, "b"), Some(&entry(3)));
        table.remove(key, "c".to_owned());
        assert_eq!(table.get(key, "c"), None);
        assert_eq!(table.get(key, ""), Some(&entry(2)));
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn digests_are_stable() {
        // SHA-256("req-1")'s first 16 bytes: a change of hash would show here first.
        assert_eq!(RequestKey::of("req-1"), RequestKey::of("req-1"));
        assert_ne!(RequestKey::of("req-1"), RequestKey::of("req-2"));
        assert_eq!(format!("{:032x}", RequestKey::of("").0), "e3b0c44298fc1c149afbf4c8996fb924");
    }
}
