//! Key encoding for the node's single RocksDB.
//!
//! Every key starts with the Raft group id (big-endian `u64`), so one group's data is one
//! contiguous key range in each column family and many groups share a database. Integers are
//! big-endian so byte order equals numeric order.

use proto::GroupId;

/// Column family holding log entries: `group | index`.
pub const CF_LOG: &str = "log";
/// Column family holding Raft metadata (vote, committed, purged): `group | tag`.
pub const CF_META: &str = "meta";
/// Column family holding state-machine snapshots: `group | tag`.
pub const CF_SM: &str = "sm";

/// All column families, for opening the database.
pub const COLUMN_FAMILIES: [&str; 3] = [CF_LOG, CF_META, CF_SM];

/// Tags of the metadata keys within a group.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub enum MetaTag {
    /// The persisted vote.
    Vote = 1,
    /// The last known committed log id.
    Committed = 2,
    /// The last purged log id.
    Purged = 3,
}

/// Tags of the state-machine keys within a group.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub enum SmTag {
    /// Snapshot metadata (JSON).
    SnapshotMeta = 1,
    /// Snapshot data.
    SnapshotData = 2,
}

/// Key of a log entry.
pub fn log_key(group: GroupId, index: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&group.0.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

/// Index encoded in a log key.
///
/// # Panics
/// If the key is not 16 bytes: every key in `CF_LOG` is written by [`log_key`].
pub fn log_key_index(key: &[u8]) -> u64 {
    assert_eq!(key.len(), 16, "log keys are group|index, 16 bytes");
    let mut index = [0u8; 8];
    index.copy_from_slice(&key[8..]);
    u64::from_be_bytes(index)
}

/// Key of a metadata record.
pub fn meta_key(group: GroupId, tag: MetaTag) -> [u8; 9] {
    tagged(group, tag as u8)
}

/// Key of a state-machine record.
pub fn sm_key(group: GroupId, tag: SmTag) -> [u8; 9] {
    tagged(group, tag as u8)
}

/// Largest group id: ids above it are reserved for node-local records.
pub const GROUP_ID_MAX: u64 = u32::MAX as u64;

/// Node-local namespace in `CF_META`: records about this node, not about a group.
const LOCAL_PREFIX: u64 = u64::MAX;
/// Tag of "this node hosts a replica of group g" records.
const HOSTED_TAG: u8 = b'h';

/// Key recording that this node hosts a replica of `group`.
pub fn hosted_key(group: GroupId) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[..8].copy_from_slice(&LOCAL_PREFIX.to_be_bytes());
    key[8] = HOSTED_TAG;
    key[9..].copy_from_slice(&group.0.to_be_bytes());
    key
}

/// Range `[from, to)` covering every hosted-group record.
pub fn hosted_range() -> (Vec<u8>, Vec<u8>) {
    let mut from = LOCAL_PREFIX.to_be_bytes().to_vec();
    from.push(HOSTED_TAG);
    let mut to = LOCAL_PREFIX.to_be_bytes().to_vec();
    to.push(HOSTED_TAG + 1);
    (from, to)
}

/// Group encoded in a hosted-group key.
pub fn hosted_key_group(key: &[u8]) -> Option<GroupId> {
    let bytes: [u8; 8] = key.get(9..17)?.try_into().ok()?;
    Some(GroupId(u64::from_be_bytes(bytes)))
}

/// Range `[from, to)` of every key of `group` in a column family.
pub fn group_range(group: GroupId) -> (Vec<u8>, Vec<u8>) {
    (group.0.to_be_bytes().to_vec(), (group.0 + 1).to_be_bytes().to_vec())
}

fn tagged(group: GroupId, tag: u8) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[..8].copy_from_slice(&group.0.to_be_bytes());
    key[8] = tag;
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_group_then_index() {
        assert!(log_key(GroupId(1), u64::MAX) < log_key(GroupId(2), 0));
        assert!(log_key(GroupId(1), 255) < log_key(GroupId(1), 256));
        assert_eq!(log_key_index(&log_key(GroupId(9), 77)), 77);
    }

    #[test]
    fn hosted_records_sit_outside_every_group_range() {
        let (from, to) = group_range(GroupId(GROUP_ID_MAX));
        let key = hosted_key(GroupId(GROUP_ID_MAX));
        assert!(key.as_slice() >= to.as_slice() && from.as_slice() < to.as_slice());
        let (hf, ht) = hosted_range();
        assert!(key.as_slice() >= hf.as_slice() && key.as_slice() < ht.as_slice());
        assert_eq!(hosted_key_group(&key), Some(GroupId(GROUP_ID_MAX)));
    }
}
