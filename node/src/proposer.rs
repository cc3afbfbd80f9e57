//! Coalesces concurrent proposals to one group into few Raft entries (docs/architecture.md,
//! "Batching").
//!
//! Without it every client command paid for its own entry: its own append, its own
//! `AppendEntries` to each follower, its own fsync on three nodes and its own wake-ups —
//! the cost that kept a 3-replica cluster at a few hundred holds per second. Here each group
//! has one queue and one task: the task takes the first waiting proposal, waits for one of a
//! few in-flight slots, then drains whatever else is already queued (never waiting for more:
//! a lone proposal goes out at once) into one [`proto::command::Command::Batch`] entry, and hands each waiter
//! its own outcome when the entry is applied. Under load, proposals pile up while the slots
//! are busy, so batches grow exactly when batching pays.
//!
//! What may share an entry: small inventory commands ([`proto::command::Command::batchable`]). A show's
//! creation and meta commands go alone; a batch is bounded by
//! [`ProposerConfig::batch_max`] commands, so an entry stays far below the gRPC message limit
//! even when `AppendEntries` carries many entries.
//!
//! Order: the queue is FIFO and a batch applies its proposals in queue order, so two
//! proposals from one caller, the second sent after the first was answered, apply in that
//! order. Entries in flight at once are ordered by the log like any other entries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::future::Future;

use proto::command::{Outcome, Proposal};
use proto::pb::NotLeader;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How long a proposal may wait to be committed and applied before the client is told the
/// outcome is unknown (it then retries with the same request id).
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Proposals queued per group before callers wait for room.
const QUEUE_CAPACITY: usize = 4_096;

/// How a group's proposals are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProposerConfig {
    /// Most proposals in one entry (1 turns batching off: one entry per proposal).
    pub batch_max: usize,
    /// Entries of this group proposed and not yet applied at once.
    pub inflight_max: usize,
}

/// Why a proposal has no outcome.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    /// This replica is not the leader; the hint names the leader if known.
    #[error("not the leader")]
    NotLeader(NotLeader),
    /// Not applied within [`PROPOSE_TIMEOUT`]: it may still apply.
    #[error("not applied in time; the outcome is unknown: retry with the same request id")]
    Timeout,
    /// Raft refused or failed (shutting down, storage error).
    #[error("{0}")]
    Unavailable(String),
}

struct Pending {
    proposal: Proposal,
    queued: Instant,
    reply: oneshot::Sender<Result<Outcome, ProposeError>>,
}

/// The sending side of a group's proposal queue. Cheap to clone.
#[derive(Clone)]
pub struct Proposer {
    queue: mpsc::Sender<Pending>,
}

/// The receiving side, consumed by [`run`].
pub struct Queue(mpsc::Receiver<Pending>);

/// A new queue for one group.
pub fn channel() -> (Proposer, Queue) {
    let (queue, pending) = mpsc::channel(QUEUE_CAPACITY);
    (Proposer { queue }, Queue(pending))
}

impl Proposer {
    /// Proposes `proposal` to the group and waits for its outcome.
    ///
    /// # Errors
    /// See [`ProposeError`]; `Unavailable` also when the group is shutting down.
    pub async fn propose(&self, proposal: Proposal) -> Result<Outcome, ProposeError> {
        let (reply, outcome) = oneshot::channel();
        let pending = Pending { proposal, queued: Instant::now(), reply };
        self.queue
            .send(pending)
            .await
            .map_err(|_| ProposeError::Unavailable("the replica is shutting down".into()))?;
        outcome
            .await
            .map_err(|_| ProposeError::Unavailable("the replica is shutting down".into()))?
    }
}

/// Drains a group's queue into entries, each written by `write` (the group's
/// `Group::write`: stamp, propose, wait for the outcomes), until `cancel` fires.
///
/// # Cancel safety
/// Runs until `cancel` fires; entries in flight then may or may not commit, and their waiters
/// are told `Unavailable` (the client retries under the same request id).
pub async fn run<W, Fut>(
    Queue(mut queue): Queue,
    config: ProposerConfig,
    cancel: CancellationToken,
    metrics: Metrics,
    write: W,
) where
    W: Fn(Vec<Proposal>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Vec<Outcome>, ProposeError>> + Send + 'static,
{
    let batch_max = config.batch_max.max(1);
    let slots = Arc::new(Semaphore::new(config.inflight_max.max(1)));
    let mut held_back: Option<Pending> = None;
    loop {
        let first = match held_back.take() {
            Some(pending) => pending,
            None => tokio::select! {
                () = cancel.cancelled() => return,
                next = queue.recv() => match next {
                    Some(pending) => pending,
                    None => return,
                },
            },
        };
        let slot = tokio::select! {
            () = cancel.cancelled() => return,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
        };
        let mut batch = vec![first];
        if batch[0].proposal.command.batchable() {
            while batch.len() < batch_max {
                match queue.try_recv() {
                    Ok(next) if next.proposal.command.batchable() => batch.push(next),
                    Ok(next) => {
                        // Goes in the next entry, alone: keeps FIFO order.
                        held_back = Some(next);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        let write = write.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            propose_entry(write, batch, &metrics).await;
            drop(slot);
        });
    }
}

/// Proposes one entry carrying `batch` and answers each waiter.
async fn propose_entry<W, Fut>(write: W, batch: Vec<Pending>, metrics: &Metrics)
where
    W: Fn(Vec<Proposal>) -> Fut,
    Fut: Future<Output = Result<Vec<Outcome>, ProposeError>>,
{
    metrics.batch_size.observe(batch.len() as f64);
    let (proposals, waiters): (Vec<Proposal>, Vec<_>) =
        batch.into_iter().map(|p| (p.proposal, (p.queued, p.reply))).unzip();
    let kinds: Vec<&'static str> = proposals.iter().map(|p| p.command.kind()).collect();
    match write(proposals).await {
        Ok(outcomes) => {
            for ((kind, (queued, reply)), outcome) in kinds.iter().zip(waiters).zip(outcomes) {
                let label = match &outcome {
                    Ok(_) => "ok",
                    Err(rejection) => rejection.kind(),
                };
                metrics.commands.with_label_values(&[kind, label]).inc();
                metrics
                    .propose_latency
                    .with_label_values(&[kind])
                    .observe(queued.elapsed().as_secs_f64());
                // The caller may have given up waiting; the outcome stands anyway.
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(error) => {
            let label = match &error {
                ProposeError::NotLeader(_) => "not_leader",
                ProposeError::Timeout => "timeout",
                ProposeError::Unavailable(_) => "unavailable",
            };
            for (kind, (_, reply)) in kinds.iter().zip(waiters) {
                metrics.commands.with_label_values(&[kind, label]).inc();
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}
