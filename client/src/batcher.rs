//! Proposals to one node, sent many per call (docs/architecture.md, "Batching").
//!
//! A gateway under load has many proposals in flight to the same leader. Sent one per
//! `Propose` call, each pays its own HTTP/2 frames, syscalls and wake-ups on both sides; here
//! every node address has one queue and one task that drains what is queued into a
//! `ProposeBatch` call (a lone proposal goes out at once as a plain `Propose`, so nothing
//! waits for company). The node answers each item as `Propose` would, so the retry and
//! redirect logic of [`crate::ClusterClient`] is unchanged: it sees one reply per proposal.
//!
//! A node that does not know `ProposeBatch` (an older build during a rolling upgrade) answers
//! `Unimplemented`; the batch is then sent one `Propose` at a time.

use std::sync::Arc;
use std::time::Duration;

use proto::pb::inventory_client::InventoryClient;
use proto::pb::{propose_item, ProposeBatchRequest, ProposeReply, ProposeRequest};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Most proposals in one call.
const BATCH_MAX: usize = 256;
/// Proposals queued per node before callers wait for room.
const QUEUE_CAPACITY: usize = 8_192;
/// Bound on one call: a node that never answers releases its slot. Callers give up sooner
/// under their own deadline (the retry policy's call timeout).
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

struct Item {
    request: ProposeRequest,
    reply: oneshot::Sender<Result<ProposeReply, Status>>,
}

/// The queue of proposals to one node. Cheap to clone.
#[derive(Clone)]
pub struct ProposeSender {
    queue: mpsc::Sender<Item>,
}

impl ProposeSender {
    /// Starts the sending task for the node behind `client`, with at most `inflight` calls
    /// in flight at once. Must run inside a tokio runtime.
    pub(crate) fn start(client: InventoryClient<Channel>, inflight: usize) -> ProposeSender {
        let (queue, items) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(client, items, inflight.max(1)));
        ProposeSender { queue }
    }

    /// Sends one proposal (possibly in a call with others) and waits for its reply.
    ///
    /// # Errors
    /// The status the node answered for this proposal (or for the whole call).
    pub(crate) async fn propose(&self, request: ProposeRequest) -> Result<ProposeReply, Status> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Item { request, reply })
            .await
            .map_err(|_| Status::unavailable("connect: proposal queue closed"))?;
        answer.await.map_err(|_| Status::unknown("the proposal call was dropped"))?
    }
}

async fn run(client: InventoryClient<Channel>, mut items: mpsc::Receiver<Item>, inflight: usize) {
    let slots = Arc::new(Semaphore::new(inflight));
    while let Some(first) = items.recv().await {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match items.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let client = client.clone();
        tokio::spawn(async move {
            send(client, batch).await;
            drop(slot);
        });
    }
}

async fn send(mut client: InventoryClient<Channel>, mut batch: Vec<Item>) {
    if batch.len() == 1 {
        let item = batch.pop().expect("one item: length checked");
        let _ = item.reply.send(call_one(&mut client, item.request).await);
        return;
    }
    let (requests, replies): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|item| (item.request, item.reply)).unzip();
    let call = client.propose_batch(ProposeBatchRequest { requests: requests.clone() });
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(answer)) => {
            let answers = answer.into_inner().replies;
            if answers.len() != replies.len() {
                let status = Status::internal(format!(
                    "{} replies to {} proposals",
                    answers.len(),
                    replies.len()
                ));
                for reply in replies {
                    let _ = reply.send(Err(status.clone()));
                }
                return;
            }
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(match answer.result {
                    Some(propose_item::Result::Reply(ok)) => Ok(ok),
                    Some(propose_item::Result::Error(e)) => {
                        Err(Status::new(Code::from_i32(e.code), e.message))
                    }
                    None => Err(Status::unknown("empty batch item")),
                });
            }
        }
        Ok(Err(status)) if status.code() == Code::Unimplemented => {
            // An older node: one call per proposal.
            for (request, reply) in requests.into_iter().zip(replies) {
                let _ = reply.send(call_one(&mut client, request).await);
            }
        }
        Ok(Err(status)) => {
            for reply in replies {
                let _ = reply.send(Err(status.clone()));
            }
        }
        Err(_) => {
            for reply in replies {
                let _ = reply.send(Err(Status::deadline_exceeded("proposal call timed out")));
            }
        }
    }
}

async fn call_one(
    client: &mut InventoryClient<Channel>,
    request: ProposeRequest,
) -> Result<ProposeReply, Status> {
    match tokio::time::timeout(CALL_TIMEOUT, client.propose(request)).await {
        Ok(result) => result.map(tonic::Response::into_inner),
        Err(_) => Err(Status::deadline_exceeded("proposal call timed out")),
    }
}
