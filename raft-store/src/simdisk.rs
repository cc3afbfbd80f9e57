//! An in-memory disk for the deterministic simulator (docs/reliability.md, "Deterministic
//! simulation"): the same [`Db`] handle, log store and state-machine adapter the node runs, over
//! storage whose syncs, crashes and failures the simulator decides, from its seed.
//!
//! A [`SimDisk`] is the physical disk of one simulated node and outlives the node's processes.
//! [`Db::simulated`](crate::Db::simulated) starts a process's view of it (a `Db`): writes queue as *pending* and
//! are neither durable nor acknowledged until the simulator calls [`SimDisk::sync`], which makes
//! the oldest pending writes durable in one group commit and then runs their completions, as
//! the group-commit writer does after its fsync. [`SimDisk::crash`] ends the process: a prefix
//! of the pending writes (chosen by the simulator) reaches the disk without being acknowledged,
//! the rest is lost, and the old process's handles refuse every later write. A write batch is
//! atomic, as RocksDB's write-ahead log makes it: a torn batch is dropped whole on recovery.
//! [`SimDisk::fill`] makes the next sync fail with "no space left", after which the process's
//! writer is failed for good, as the RocksDB writer's is.
//!
//! Nothing here reads a clock or a random number: every choice is the simulator's.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::write::{Op, WriterStats};

type Completion = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

struct Job {
    ops: Vec<Op>,
    done: Completion,
}

#[derive(Default)]
struct Inner {
    /// What survives a crash: column family -> key -> value.
    durable: BTreeMap<&'static str, BTreeMap<Vec<u8>, Vec<u8>>>,
    /// Writes of the current process not yet synced, oldest first.
    pending: VecDeque<Job>,
    /// Incarnation of the process using the disk; handles of older ones are dead.
    epoch: u64,
    /// The next sync fails with this error (a full disk).
    full: Option<String>,
}

/// The disk of one simulated node. Clones share it.
#[derive(Clone, Default)]
pub struct SimDisk {
    inner: Arc<Mutex<Inner>>,
    pending: Arc<Notify>,
    /// The current process's writer counters (its failure included).
    stats: Arc<Mutex<Arc<WriterStats>>>,
}

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDisk").field("epoch", &self.lock().epoch).finish()
    }
}

/// One process's handle on a [`SimDisk`] (held inside a `Db`).
#[derive(Clone)]
pub(crate) struct SimHandle {
    disk: SimDisk,
    epoch: u64,
}

impl SimDisk {
    /// A blank disk.
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("simulated disk lock poisoned by a failed assertion")
    }

    /// Starts a process on this disk ([`crate::Db::simulated`]): its handle and fresh writer
    /// counters. Writes of an earlier process that were never synced are gone (call
    /// [`SimDisk::crash`] first to choose which reached the disk).
    pub(crate) fn start_process(&self) -> (SimHandle, Arc<WriterStats>) {
        let epoch = {
            let mut inner = self.lock();
            inner.pending.clear();
            inner.full = None;
            inner.epoch += 1;
            inner.epoch
        };
        let stats = Arc::new(WriterStats::default());
        *self.stats.lock().expect("stats lock never poisoned") = Arc::clone(&stats);
        (SimHandle { disk: self.clone(), epoch }, stats)
    }

    /// Writes queued and not yet synced.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// Waits until at least one write is pending.
    pub async fn wait_pending(&self) {
        loop {
            let notified = self.pending.notified();
            if self.pending() > 0 {
                return;
            }
            notified.await;
        }
    }

    /// One group commit of the oldest `count` pending writes: durable, then acknowledged (their
    /// completions run here). On a full disk the batch fails instead, the process's writer
    /// stops for good and every pending write is failed. Returns how many writes were synced.
    pub fn sync(&self, count: usize) -> usize {
        let stats = Arc::clone(&self.stats.lock().expect("stats lock never poisoned"));
        let (jobs, failed) = {
            let mut inner = self.lock();
            let count = count.min(inner.pending.len());
            let jobs: Vec<Job> = inner.pending.drain(..count).collect();
            match inner.full.clone().or_else(|| stats.failure().map(str::to_owned)) {
                Some(reason) => {
                    let rest: Vec<Job> = inner.pending.drain(..).collect();
                    (jobs.into_iter().chain(rest).collect::<Vec<_>>(), Some(reason))
                }
                None => {
                    for job in &jobs {
                        apply(&mut inner.durable, &job.ops);
                    }
                    (jobs, None)
                }
            }
        };
        let synced = if failed.is_some() { 0 } else { jobs.len() };
        if let Some(reason) = &failed {
            let _ = stats.set_failure(reason.clone());
        }
        for job in jobs {
            (job.done)(match &failed {
                Some(reason) => Err(reason.clone()),
                None => Ok(()),
            });
        }
        synced
    }

    /// The process crashes: the oldest `survivors` pending writes reach the disk unacknowledged
    /// (the write was on its way when the power went), the rest are lost, and the process's
    /// handles refuse every later write.
    pub fn crash(&self, survivors: usize) {
        let mut inner = self.lock();
        let survivors = survivors.min(inner.pending.len());
        let jobs: Vec<Job> = inner.pending.drain(..).collect();
        for job in jobs.iter().take(survivors) {
            apply(&mut inner.durable, &job.ops);
        }
        inner.epoch += 1;
        // The completions are dropped unrun: nobody is left to hear them.
        drop(jobs);
    }

    /// The disk fills: the next sync fails with "no space left on device".
    pub fn fill(&self) {
        self.lock().full = Some("simulated disk: no space left on device".into());
    }

    /// Space is back (the process must still restart: its writer failed for good).
    pub fn free(&self) {
        self.lock().full = None;
    }
}

fn apply(durable: &mut BTreeMap<&'static str, BTreeMap<Vec<u8>, Vec<u8>>>, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Put { cf, key, value } => {
                durable.entry(cf).or_default().insert(key.clone(), value.clone());
            }
            Op::DeleteRange { cf, from, to } => {
                if let Some(family) = durable.get_mut(cf) {
                    let doomed: Vec<Vec<u8>> =
                        family.range(from.clone()..to.clone()).map(|(k, _)| k.clone()).collect();
                    for key in doomed {
                        family.remove(&key);
                    }
                }
            }
        }
    }
}

impl SimHandle {
    /// Queues a write of this process; refused once the process has crashed.
    pub(crate) fn submit(
        &self,
        ops: Vec<Op>,
        done: impl FnOnce(std::result::Result<(), String>) + Send + 'static,
    ) -> crate::Result<()> {
        {
            let mut inner = self.disk.lock();
            if inner.epoch != self.epoch {
                return Err(crate::Error::Io("simulated process has crashed".into()));
            }
            inner.pending.push_back(Job { ops, done: Box::new(done) });
        }
        self.disk.pending.notify_one();
        Ok(())
    }

    /// Reads one durable key.
    pub(crate) fn get(&self, cf: &str, key: &[u8]) -> Option<Vec<u8>> {
        self.disk.lock().durable.get(cf).and_then(|family| family.get(key).cloned())
    }

    /// The durable keys in `[from, to]` of `cf`, in order.
    pub(crate) fn scan(&self, cf: &str, from: &[u8], to: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let inner = self.disk.lock();
        inner.durable.get(cf).map_or_else(Vec::new, |family| {
            family.range(from.to_vec()..=to.to_vec()).map(|(k, v)| (k.clone(), v.clone())).collect()
        })
    }
}
