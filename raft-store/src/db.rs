//! The node's RocksDB and its group-commit writer.
//!
//! Every write of every Raft group on a node (log appends, votes, truncations, purges,
//! snapshots) is sent to one dedicated writer thread. The thread drains whatever is queued,
//! merges it into a single `WriteBatch` and writes it with `sync = true`, then runs each
//! write's completion. Many groups and many requests thus share one fsync: this is what lets a
//! node sustain far more durable appends per second than its disk does fsyncs.
//!
//! Completions run on the writer thread after the batch is durable; they must be cheap and
//! must not block (openraft's `LogFlushed` callback and oneshot senders are both fine).
//! Order is preserved: writes are applied in the order they were queued.
//!
//! A failed write is final (docs/reliability.md, "Disk faults"): the first batch that fails
//! (disk full, an I/O error, a failed fsync) puts the writer in the failed state, its jobs and
//! every later one are completed with an error and nothing more is written. Retrying is not
//! safe: after a failed fsync the kernel may have dropped the dirty pages, so a retry that
//! succeeds proves nothing, and RocksDB itself stops accepting writes after such an error. The
//! node sees [`Db::failure`], stops acknowledging anything, and restarts itself on a database
//! reopened from what is durable once the disk is usable again.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use tokio::sync::{mpsc, oneshot};

use proto::GroupId;

use crate::keys::{self, CF_META, COLUMN_FAMILIES};
use crate::limits::{WRITER_BATCH_BYTES_MAX, WRITER_QUEUE_CAPACITY};
use crate::simdisk::{SimDisk, SimHandle};
pub use crate::write::{Op, WriterStats};
use crate::{Error, Result};

type Completion = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

/// Called on the writer thread with the duration of each batch's write (the fsync included),
/// e.g. to feed a latency histogram. It runs before the batch's completions, so it must be
/// as cheap as they are.
pub type BatchObserver = Box<dyn Fn(std::time::Duration) + Send>;

struct WriteJob {
    ops: Vec<Op>,
    done: Completion,
    /// Whether the write must be durable when `done` runs; a lazy one (false) is written in
    /// order but synced only by a later durable write's batch.
    durable: bool,
}

/// Handle to the node's database. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    backend: Backend,
    stats: Arc<WriterStats>,
}

/// Where the bytes go: RocksDB with its writer thread, or the simulator's disk.
#[derive(Clone)]
enum Backend {
    Rocks { db: Arc<DB>, writer: Arc<Writer> },
    Sim(SimHandle),
}

/// The writer thread and its queue. Dropping the last handle closes the queue and joins the
/// thread, so the database is closed deterministically by whoever drops it last, never by a
/// detached thread racing process exit (RocksDB segfaults if closed during exit).
struct Writer {
    queue: Option<mpsc::Sender<WriteJob>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("group-commit writer thread panicked");
            }
        }
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            Backend::Rocks { db, .. } => f.debug_struct("Db").field("path", &db.path()).finish(),
            Backend::Sim(_) => f.debug_struct("Db").field("path", &"(simulated)").finish(),
        }
    }
}

impl Db {
    /// Opens (creating if needed) the database at `path` and starts its writer thread.
    ///
    /// `sync` makes every batch an fsync'ed write; turn it off only for benchmarks that
    /// measure everything but the disk. The thread stops, and is joined, when the last `Db`
    /// handle is dropped.
    ///
    /// # Errors
    /// RocksDB could not open the path.
    pub fn open(path: &Path, sync: bool) -> Result<Db> {
        Db::open_observed(path, sync, Box::new(|_| {}))
    }

    /// [`Db::open`], with `observer` told how long each batch's write took.
    ///
    /// # Errors
    /// RocksDB could not open the path.
    pub fn open_observed(path: &Path, sync: bool, observer: BatchObserver) -> Result<Db> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_max_background_jobs(2);
        options.set_write_buffer_size(64 * 1024 * 1024);
        let cfs = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = Arc::new(DB::open_cf_descriptors(&options, path, cfs)?);
        let (queue, jobs) = mpsc::channel(WRITER_QUEUE_CAPACITY);
        let stats = Arc::new(WriterStats::default());
        let writer_db = Arc::clone(&db);
        let writer_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("marquee-writer".into())
            .spawn(move || run_writer(&writer_db, jobs, sync, &writer_stats, &observer))
            .map_err(|e| Error::Io(e.to_string()))?;
        let writer = Arc::new(Writer { queue: Some(queue), thread: Some(thread) });
        Ok(Db { backend: Backend::Rocks { db, writer }, stats })
    }

    /// Starts a simulated process on `disk` ([`crate::simdisk`]) and returns its database:
    /// what the previous process never synced is gone.
    pub fn simulated(disk: &SimDisk) -> Db {
        let (handle, stats) = disk.start_process();
        Db { backend: Backend::Sim(handle), stats }
    }

    /// Whether this database is the simulator's in-memory disk.
    pub fn is_simulated(&self) -> bool {
        matches!(self.backend, Backend::Sim(_))
    }

    /// Writes a consistent point-in-time copy of the whole database (every replica's log, vote
    /// and state machine as of one instant) to `dir`, which must not exist: RocksDB's
    /// checkpoint, hard-linking files where the filesystem allows (docs/operations.md,
    /// "Backup and restore").
    ///
    /// # Errors
    /// RocksDB could not create it (the directory exists, the disk is full, ...).
    pub fn checkpoint(&self, dir: &Path) -> Result<()> {
        rocksdb::checkpoint::Checkpoint::new(self.raw()?)?.create_checkpoint(dir)?;
        Ok(())
    }

    /// The underlying RocksDB.
    ///
    /// # Errors
    /// The database is the simulator's, which has no RocksDB.
    pub fn raw(&self) -> Result<&DB> {
        match &self.backend {
            Backend::Rocks { db, .. } => Ok(db),
            Backend::Sim(_) => Err(Error::Io("a simulated disk has no RocksDB".into())),
        }
    }

    /// Writer counters.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Why the database stopped accepting writes (the first failed write's error, or the
    /// reason given to [`Db::fail`]), if it did. Final for this process: nothing is written
    /// after it.
    pub fn failure(&self) -> Option<&str> {
        self.stats.failure()
    }

    /// Stops all writing from now on, for `reason` (e.g. the disk is almost full: stopping
    /// before RocksDB runs out of space leaves nothing half-written). Writes already in a
    /// batch being written complete normally; every later one fails. Returns false if the
    /// database had already stopped.
    pub fn fail(&self, reason: String) -> bool {
        self.stats.set_failure(reason)
    }

    /// Queues `ops` and calls `done` on the writer thread once they are durable.
    ///
    /// # Errors
    /// The writer thread has stopped (the node is shutting down or the disk failed).
    pub async fn submit(
        &self,
        ops: Vec<Op>,
        done: impl FnOnce(std::result::Result<(), String>) + Send + 'static,
    ) -> Result<()> {
        self.enqueue(ops, Box::new(done), true).await
    }

    /// Queues `ops` for a record that need not be durable on its own (Raft's committed index,
    /// which only shortens re-applying after a restart): written in queue order like every
    /// write, but a batch of only such writes is not fsync'ed. It becomes durable with the next
    /// synced batch (the WAL is one file, synced up to its end), and a machine crash before that
    /// loses it and nothing written before it. On a busy node this removes an fsync per commit
    /// from the writer, which is a single queue: every append behind a lone commit record
    /// waited for its fsync. The simulator's disk treats it as any write (lost unless synced).
    ///
    /// # Errors
    /// The writer thread has stopped (the node is shutting down or the disk failed).
    pub async fn submit_lazy(&self, ops: Vec<Op>) -> Result<()> {
        self.enqueue(ops, Box::new(|_| {}), false).await
    }

    /// Hands one write to the writer thread (or the simulator's disk, for which every write
    /// is the same: lost unless a later sync covers it).
    async fn enqueue(&self, ops: Vec<Op>, done: Completion, durable: bool) -> Result<()> {
        let writer = match &self.backend {
            Backend::Rocks { writer, .. } => writer,
            Backend::Sim(handle) => return handle.submit(ops, done),
        };
        let queue = writer.queue.as_ref().ok_or_else(|| Error::Io("writer closed".into()))?;
        queue
            .send(WriteJob { ops, done, durable })
            .await
            .map_err(|_| Error::Io("writer thread stopped".into()))
    }

    /// Queues `ops` and waits until they are durable.
    ///
    /// # Errors
    /// The write failed or the writer stopped.
    pub async fn write(&self, ops: Vec<Op>) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.submit(ops, move |result| {
            // The waiter may have gone away (its task was cancelled); the write stands anyway.
            let _ = tx.send(result);
        })
        .await?;
        rx.await.map_err(|_| Error::Io("writer thread stopped".into()))?.map_err(Error::Io)
    }

    /// Groups this node hosts replicas of, as recorded by [`Db::set_hosted`].
    ///
    /// # Errors
    /// RocksDB read failure.
    pub fn hosted_groups(&self) -> Result<Vec<GroupId>> {
        let (from, to) = keys::hosted_range();
        let mut groups = Vec::new();
        self.for_each(CF_META, &from, &to, |key, _| {
            if key >= to.as_slice() {
                return Ok(false);
            }
            let group = keys::hosted_key_group(key)
                .ok_or_else(|| Error::Corrupt("malformed hosted-group key".into()))?;
            groups.push(group);
            Ok(true)
        })?;
        Ok(groups)
    }

    /// Calls `visit` with every key (and value) of `cf` from `from` through `to`, in order,
    /// until it returns `Ok(false)` or an error.
    ///
    /// # Errors
    /// A read failure, or `visit`'s error.
    pub fn for_each(
        &self,
        cf: &str,
        from: &[u8],
        to: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        match &self.backend {
            Backend::Rocks { db, .. } => {
                let handle =
                    db.cf_handle(cf).ok_or_else(|| Error::Io(format!("no column family {cf}")))?;
                let mode = rocksdb::IteratorMode::From(from, rocksdb::Direction::Forward);
                for item in db.iterator_cf(&handle, mode) {
                    let (key, value) = item?;
                    if key.as_ref() > to || !visit(&key, &value)? {
                        break;
                    }
                }
            }
            Backend::Sim(handle) => {
                for (key, value) in handle.scan(cf, from, to) {
                    if !visit(&key, &value)? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Records (durably) that this node hosts a replica of `group`, so it is reopened on start.
    ///
    /// # Errors
    /// The write failed.
    pub async fn set_hosted(&self, group: GroupId) -> Result<()> {
        self.write(vec![Op::Put {
            cf: CF_META,
            key: keys::hosted_key(group).to_vec(),
            value: Vec::new(),
        }])
        .await
    }

    /// Deletes every record of `group` (log, Raft metadata, snapshot) and its hosted record,
    /// in one synced batch. The replica must be shut down first.
    ///
    /// # Errors
    /// The write failed.
    pub async fn delete_group(&self, group: GroupId) -> Result<()> {
        let (from, to) = keys::group_range(group);
        let mut ops: Vec<Op> = COLUMN_FAMILIES
            .iter()
            .map(|cf| Op::DeleteRange { cf, from: from.clone(), to: to.clone() })
            .collect();
        let hosted = keys::hosted_key(group).to_vec();
        let mut hosted_end = hosted.clone();
        hosted_end.push(0);
        ops.push(Op::DeleteRange { cf: CF_META, from: hosted, to: hosted_end });
        self.write(ops).await
    }

    /// Reads one key.
    ///
    /// # Errors
    /// RocksDB read failure.
    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match &self.backend {
            Backend::Rocks { db, .. } => {
                let handle =
                    db.cf_handle(cf).ok_or_else(|| Error::Io(format!("no column family {cf}")))?;
                Ok(db.get_cf(&handle, key)?)
            }
            Backend::Sim(handle) => Ok(handle.get(cf, key)),
        }
    }
}

fn run_writer(
    db: &DB,
    mut jobs: mpsc::Receiver<WriteJob>,
    sync: bool,
    stats: &WriterStats,
    observer: &BatchObserver,
) {
    let mut synced = WriteOptions::default();
    synced.set_sync(sync);
    let mut unsynced = WriteOptions::default();
    unsynced.set_sync(false);
    while let Some(first) = jobs.blocking_recv() {
        let mut batch_jobs = vec![first];
        let mut bytes: usize = batch_jobs[0].ops.iter().map(Op::size_bytes).sum();
        // Merge everything already queued, up to the batch bound: one fsync for all of it.
        while bytes < WRITER_BATCH_BYTES_MAX {
            match jobs.try_recv() {
                Ok(job) => {
                    bytes += job.ops.iter().map(Op::size_bytes).sum::<usize>();
                    batch_jobs.push(job);
                }
                Err(_) => break,
            }
        }
        if let Some(failure) = stats.failure() {
            // Never write after a failed write: nothing queued behind it is acknowledged.
            let refused = format!("storage failed earlier ({failure}); not written");
            stats.failed_writes.fetch_add(batch_jobs.len() as u64, Ordering::Relaxed);
            for job in batch_jobs {
                (job.done)(Err(refused.clone()));
            }
            continue;
        }
        // Synced if any write in it must be durable; that sync covers the lazy ones too.
        let durable = sync && batch_jobs.iter().any(|job| job.durable);
        let started = Instant::now();
        let result = write_batch(db, &batch_jobs, if durable { &synced } else { &unsynced });
        let took = started.elapsed();
        observer(took);
        stats
            .write_nanos
            .fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        if durable || !sync {
            stats.batches.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.unsynced_batches.fetch_add(1, Ordering::Relaxed);
        }
        stats.writes.fetch_add(batch_jobs.len() as u64, Ordering::Relaxed);
        stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        if let Err(e) = &result {
            stats.failed_writes.fetch_add(batch_jobs.len() as u64, Ordering::Relaxed);
            if stats.set_failure(e.clone()) {
                tracing::error!(error = %e, "group-commit write failed: this node writes nothing more \
                    and acknowledges nothing more until it restarts (docs/reliability.md, \"Disk faults\")");
            }
        }
        for job in batch_jobs {
            (job.done)(result.clone());
        }
    }
}

fn write_batch(
    db: &DB,
    jobs: &[WriteJob],
    options: &WriteOptions,
) -> std::result::Result<(), String> {
    let mut batch = WriteBatch::default();
    for op in jobs.iter().flat_map(|job| job.ops.iter()) {
        match op {
            Op::Put { cf, key, value } => {
                let handle = db.cf_handle(cf).ok_or_else(|| format!("no column family {cf}"))?;
                batch.put_cf(&handle, key, value);
            }
            Op::DeleteRange { cf, from, to } => {
                let handle = db.cf_handle(cf).ok_or_else(|| format!("no column family {cf}"))?;
                batch.delete_range_cf(&handle, from, to);
            }
        }
    }
    db.write_opt(batch, options).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(cf: &'static str, key: &[u8]) -> Op {
        Op::Put { cf, key: key.to_vec(), value: b"v".to_vec() }
    }

    #[tokio::test]
    async fn a_failed_write_is_final_and_nothing_after_it_is_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(dir.path(), true).expect("open");
        db.write(vec![put(CF_META, b"before")]).await.expect("a good write");
        assert!(db.failure().is_none());

        // A batch RocksDB refuses (here: an unknown column family) fails...
        let failed = db.write(vec![put("no-such-cf", b"x")]).await;
        assert!(failed.is_err());
        let reason = db.failure().expect("the writer records the failure").to_owned();
        assert!(reason.contains("no-such-cf"), "{reason}");

        // ...and every later write is refused, not written, even a good one.
        let refused = db.write(vec![put(CF_META, b"after")]).await.expect_err("refused");
        assert!(refused.to_string().contains("storage failed earlier"), "{refused}");
        assert!(db.get(CF_META, b"after").expect("read").is_none(), "nothing written after");
        assert!(db.get(CF_META, b"before").expect("read").is_some());
        assert!(!db.fail("again".into()), "the first reason stays");
        assert_eq!(db.failure(), Some(reason.as_str()));
        assert!(db.stats().failed_writes.load(Ordering::Relaxed) >= 2);
    }

    /// A batch of lazy writes only is written (readable, in order) without counting as a synced
    /// batch; a durable write after it is a synced batch, which makes both durable.
    #[tokio::test]
    async fn lazy_writes_alone_are_not_synced_and_ride_the_next_sync() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(dir.path(), true).expect("open");
        db.submit_lazy(vec![put(CF_META, b"committed")]).await.expect("queued");
        for _ in 0..500 {
            if db.get(CF_META, b"committed").expect("read").is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        assert!(db.get(CF_META, b"committed").expect("read").is_some(), "lazy write applied");
        let stats = db.stats();
        assert_eq!(stats.unsynced_batches.load(Ordering::Relaxed), 1);
        assert_eq!(stats.batches.load(Ordering::Relaxed), 0, "no fsync for it alone");
        db.write(vec![put(CF_META, b"entry")]).await.expect("durable write");
        assert_eq!(stats.batches.load(Ordering::Relaxed), 1);
        assert_eq!(stats.writes.load(Ordering::Relaxed), 2);
        drop(db);
        // Reopened (a clean close here): both are there.
        let db = Db::open(dir.path(), true).expect("reopen");
        assert!(db.get(CF_META, b"committed").expect("read").is_some());
        assert!(db.get(CF_META, b"entry").expect("read").is_some());
    }

    #[tokio::test]
    async fn fail_stops_writing_before_anything_fails() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(dir.path(), true).expect("open");
        assert!(db.fail("disk almost full".into()));
        let refused = db.write(vec![put(CF_META, b"k")]).await.expect_err("refused");
        assert!(refused.to_string().contains("disk almost full"), "{refused}");
        assert!(db.get(CF_META, b"k").expect("read").is_none());
    }
}
