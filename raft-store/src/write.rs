//! What a write is ([`Op`]) and the writer's counters ([`WriterStats`]): shared by the RocksDB
//! group-commit writer ([`crate::db`]) and the simulator's disk ([`crate::simdisk`]).

use std::sync::atomic::AtomicU64;

/// One mutation in a write.
#[derive(Debug)]
pub enum Op {
    /// Set `key` to `value` in column family `cf`.
    Put {
        /// Column family name.
        cf: &'static str,
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Delete keys in `[from, to)` of column family `cf`.
    DeleteRange {
        /// Column family name.
        cf: &'static str,
        /// First key deleted.
        from: Vec<u8>,
        /// First key kept.
        to: Vec<u8>,
    },
}

impl Op {
    pub(crate) fn size_bytes(&self) -> usize {
        match self {
            Op::Put { key, value, .. } => key.len() + value.len(),
            Op::DeleteRange { from, to, .. } => from.len() + to.len(),
        }
    }
}

/// Counters of the writer, for metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Synced batches written.
    pub batches: AtomicU64,
    /// Batches written without an fsync: every write in them was lazy ([`crate::Db::submit_lazy`]),
    /// so they became durable with the next synced batch.
    pub unsynced_batches: AtomicU64,
    /// Writes (jobs) merged into those batches.
    pub writes: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
    /// Total time spent in `DB::write`, nanoseconds.
    pub write_nanos: AtomicU64,
    /// Batches whose write failed, and writes refused after the failure.
    pub failed_writes: AtomicU64,
    /// Why the writer stopped writing: the first failed batch's error. Set once.
    failure: std::sync::OnceLock<String>,
}

impl WriterStats {
    /// The error that stopped the writer, if one did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// Records the error that stops the writer; false if one was already recorded.
    pub(crate) fn set_failure(&self, reason: String) -> bool {
        self.failure.set(reason).is_ok()
    }
}
