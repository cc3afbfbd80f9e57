//! Bounds of the storage layer.

/// Writes queued for the writer thread before proposers wait (backpressure).
pub const WRITER_QUEUE_CAPACITY: usize = 4096;
/// Bytes merged into one synced batch.
pub const WRITER_BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;
