//! The recovery sweeper: settles checkouts a gateway left behind (`docs/architecture.md`,
//! "Booking saga"; invariant 4: every successful charge ends as exactly one confirmed booking
//! or one refund).
//!
//! A gateway that dies (or loses touch with the provider) between `BeginCheckout` and `Confirm`
//! leaves a pending checkout, and perhaps a charge, behind. Every gateway runs this loop; each
//! pass reads [`Query::StaleCheckouts`] from every inventory shard (a linearizable read on its
//! leader) and asks the payment provider about each booking by its charge key (the booking id):
//!
//! | checkout                                  | charge found                   | no charge |
//! |-------------------------------------------|--------------------------------|-----------|
//! | pending, begun over `min_age` ago         | `Confirm` (`sweep:{b}:confirm`); if the checkout already failed, refund | `FailCheckout` (`sweep:{b}:fail`) |
//! | failed (expiry or `FailCheckout`), once   | refund (`refund:{b}`)          | nothing   |
//!
//! **Why it cannot double-act.** The saga and the sweeper share the provider keys of
//! [`saga`](crate::saga): one charge key per booking, one refund key per booking. The inventory
//! decides between confirm and fail exactly once (a pending booking becomes confirmed *or*
//! failed), and whoever loses that race acts on the winner's outcome: a `Confirm` rejected as
//! already confirmed does nothing, a `Confirm` rejected as failed refunds under the one refund
//! key, which the provider honours once. Sweeper request ids are deterministic, so several
//! gateways sweeping the same shard replay one another's proposals instead of acting twice.
//!
//! **What it leaves out.** Failed checkouts are scanned once per gateway, resuming after a
//! per-shard cursor kept in memory (a restarted gateway rescans the shard's retained failures,
//! one hour of log time), and only once they are `min_age` old, so a charge that lands at the
//! provider later than that after its checkout failed is not refunded by the sweeper. With the
//! in-process sandbox provider each gateway sees only its own charges (a dead gateway's sandbox
//! ledger died with it); point every gateway at one `marquee-payments` service to sweep across
//! gateways.

use std::collections::HashMap;
use std::time::Duration;

use client::ClusterError;
use proto::command::{Command, Proposal, Query, QueryResult, Rejection, Reply};
use proto::ids::BookingId;
use proto::inventory::{BookingStatus, BookingView, FailedCursor};
use proto::GroupId;
use tokio_util::sync::CancellationToken;

use crate::clock::wall_clock_ms;
use crate::limits::SWEEP_BATCH_MAX;
use crate::metrics::Metrics;
use crate::payment::{PaymentError, Receipt};
use crate::saga::Saga;
use crate::shards::Shards;

/// How the sweeper runs.
#[derive(Debug, Clone, Copy)]
pub struct SweepConfig {
    /// Pause between passes.
    pub interval: Duration,
    /// A pending checkout is settled only once it began this long ago (a live saga normally
    /// finishes well within it), and a failed one only once it failed this long ago.
    pub min_age: Duration,
}

/// Why settling one checkout did not finish; the next pass tries again.
#[derive(Debug, thiserror::Error)]
enum SweepError {
    #[error("cluster: {0}")]
    Cluster(#[from] ClusterError),
    #[error("payment provider: {0}")]
    Payment(#[from] PaymentError),
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

/// What the sweeper did with one checkout (the `outcome` label of
/// `marquee_gateway_sweeper_settled_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    /// Charged: the booking was confirmed.
    Confirmed,
    /// Not charged: the checkout was failed and its seats freed.
    Failed,
    /// Charged but the checkout had failed: the charge was refunded (or its refund replayed).
    Refunded,
    /// Someone else (the saga, another sweeper) settled it first.
    Elsewhere,
    /// A failed checkout without a charge: nothing to do.
    NothingCharged,
    /// A half-done cancellation: refunded and its seats freed.
    Cancelled,
}

impl Settled {
    const ALL: [Settled; 6] = [
        Settled::Confirmed,
        Settled::Failed,
        Settled::Refunded,
        Settled::Elsewhere,
        Settled::NothingCharged,
        Settled::Cancelled,
    ];

    fn label(self) -> &'static str {
        match self {
            Settled::Confirmed => "confirmed",
            Settled::Failed => "failed",
            Settled::Refunded => "refunded",
            Settled::Elsewhere => "already_settled",
            Settled::NothingCharged => "nothing_charged",
            Settled::Cancelled => "cancelled",
        }
    }
}

/// What the sweeper remembers between passes, per shard.
#[derive(Debug, Default)]
struct Progress {
    /// Where the scan of failed checkouts resumes.
    cursors: HashMap<GroupId, FailedCursor>,
    /// Stale checkouts the shard's last scan listed and the pass could not settle (kept while
    /// the shard cannot be read; their sum is `marquee_gateway_sweeper_backlog`).
    unsettled: HashMap<GroupId, u64>,
}

/// The sweeper's handle: it settles through the saga's keys and calls.
pub struct Sweeper {
    saga: Saga,
    shards: Shards,
    metrics: Metrics,
    config: SweepConfig,
}

impl Sweeper {
    /// A sweeper acting through `saga` (its shards, provider and metrics).
    pub fn new(saga: Saga, config: SweepConfig) -> Sweeper {
        let (shards, metrics) = (saga.shards().clone(), saga.metrics().clone());
        // Every outcome is exported from the start (at 0), so rates and alerts on them work
        // before the first settlement.
        for settled in Settled::ALL {
            metrics.sweeper_settled.with_label_values(&[settled.label()]);
        }
        Sweeper { saga, shards, metrics, config }
    }

    /// Runs passes every `config.interval` until `shutdown` fires.
    ///
    /// # Cancel safety
    /// Safe to stop at any point: every step is idempotent and the next pass (in this or another
    /// gateway) redoes whatever a cut-short pass left undone.
    pub async fn run(self, shutdown: CancellationToken) {
        let config = self.config;
        let mut progress = Progress::default();
        let mut ticker = tokio::time::interval(config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(interval = ?config.interval, min_age = ?config.min_age, "recovery sweeper running");
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                result = self.sweep(&mut progress) => {
                    if let Err(e) = result {
                        self.metrics.sweeper_errors.inc();
                        tracing::debug!(error = %e, "sweep skipped: no topology");
                    }
                }
            }
        }
    }

    /// One pass over every shard.
    async fn sweep(&self, progress: &mut Progress) -> Result<(), ClusterError> {
        let shards = self.shards.shard_groups().await?;
        // Forget shards that no longer exist, so the maps stay bounded by the shard map.
        progress.cursors.retain(|group, _| shards.contains(group));
        progress.unsettled.retain(|group, _| shards.contains(group));
        let min_age_ms = u64::try_from(self.config.min_age.as_millis()).unwrap_or(u64::MAX);
        let before_ms = wall_clock_ms().saturating_sub(min_age_ms);
        for group in shards {
            if let Err(e) = self.sweep_shard(group, before_ms, progress).await {
                self.metrics.sweeper_errors.inc();
                tracing::warn!(%group, error = %e, "sweeping shard did not finish; retrying next pass");
            }
        }
        let backlog: u64 = progress.unsettled.values().sum();
        self.metrics.sweeper_backlog.set(i64::try_from(backlog).unwrap_or(i64::MAX));
        Ok(())
    }

    async fn sweep_shard(
        &self,
        group: GroupId,
        before_ms: u64,
        progress: &mut Progress,
    ) -> Result<(), SweepError> {
        let query = Query::StaleCheckouts {
            before_ms,
            failed_after: progress.cursors.get(&group).copied(),
            limit: SWEEP_BATCH_MAX,
        };
        let QueryResult::StaleCheckouts { pending, failed, cancelling } =
            self.shards.query_group(group, &query, true).await?
        else {
            return Err(SweepError::Unexpected(format!("group {group} did not list checkouts")));
        };
        let mut first_error = None;
        let mut unsettled: u64 = 0;
        for booking in &pending {
            match self.settle_pending(group, booking).await {
                Ok(settled) => self.record(booking.booking_id, settled),
                Err(e) => {
                    self.metrics.sweeper_errors.inc();
                    unsettled += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        // Cancellations a crashed gateway (or an unavailable provider) left half done: refund what
        // is owed under the booking's refund key, then free the seats.
        for booking in &cancelling {
            match self.saga.finish_cancel(booking).await {
                Ok(_) => self.record(booking.booking_id, Settled::Cancelled),
                Err(e) => {
                    self.metrics.sweeper_errors.inc();
                    unsettled += 1;
                    tracing::warn!(booking_id = %booking.booking_id, error = %e, "could not finish a cancellation");
                }
            }
        }
        for (i, failure) in failed.iter().enumerate() {
            match self.settle_failed(&failure.booking).await {
                Ok(settled) => {
                    self.record(failure.booking.booking_id, settled);
                    progress.cursors.insert(group, failure.cursor);
                }
                // Stop at the first failure we could not settle: the cursor stays before it, so
                // the next pass tries it again.
                Err(e) => {
                    unsettled += (failed.len() - i) as u64;
                    progress.unsettled.insert(group, unsettled);
                    return Err(e);
                }
            }
        }
        progress.unsettled.insert(group, unsettled);
        first_error.map_or(Ok(()), Err)
    }

    fn record(&self, booking_id: BookingId, settled: Settled) {
        self.metrics.sweeper_settled.with_label_values(&[settled.label()]).inc();
        if !matches!(settled, Settled::NothingCharged | Settled::Elsewhere) {
            tracing::warn!(%booking_id, outcome = settled.label(), "sweeper settled an abandoned checkout");
        }
    }

    async fn lookup(&self, booking_id: BookingId) -> Result<Option<Receipt>, SweepError> {
        Ok(self.saga.lookup_charge(booking_id).await?)
    }

    async fn propose(
        &self,
        group: GroupId,
        request_id: String,
        command: Command,
    ) -> Result<Result<Reply, Rejection>, SweepError> {
        let proposal = Proposal { request_id: Some(request_id), command };
        Ok(self.shards.propose_to(group, &proposal).await?)
    }

    /// Settles a pending checkout whose saga is presumed dead.
    async fn settle_pending(
        &self,
        group: GroupId,
        booking: &BookingView,
    ) -> Result<Settled, SweepError> {
        let booking_id = booking.booking_id;
        match self.lookup(booking_id).await? {
            Some(receipt) => {
                let confirm = self.saga.confirm_command(booking_id, receipt.reference.clone());
                match self.propose(group, format!("sweep:{booking_id}:confirm"), confirm).await? {
                    Ok(_) => {
                        self.metrics.bookings.with_label_values(&["confirmed"]).inc();
                        Ok(Settled::Confirmed)
                    }
                    Err(Rejection::BookingWrongState { status: BookingStatus::Failed }) => {
                        // It expired (or was failed) before we got here: give the money back.
                        self.refund(booking_id, &receipt).await
                    }
                    Err(Rejection::BookingWrongState { .. }) => Ok(Settled::Elsewhere),
                    Err(other) => {
                        Err(SweepError::Unexpected(format!("confirm {booking_id}: {other}")))
                    }
                }
            }
            None => {
                let fail = Command::FailCheckout {
                    booking_id,
                    reason: "abandoned checkout: the recovery sweeper found no charge".into(),
                    keep_hold: false,
                };
                match self.propose(group, format!("sweep:{booking_id}:fail"), fail).await? {
                    Ok(_) => {
                        self.metrics.bookings.with_label_values(&["failed"]).inc();
                        Ok(Settled::Failed)
                    }
                    Err(Rejection::BookingWrongState { .. }) => Ok(Settled::Elsewhere),
                    Err(other) => {
                        Err(SweepError::Unexpected(format!("fail {booking_id}: {other}")))
                    }
                }
            }
        }
    }

    /// Refunds the charge of a failed checkout, if there is one.
    async fn settle_failed(&self, booking: &BookingView) -> Result<Settled, SweepError> {
        debug_assert_eq!(booking.status, BookingStatus::Failed, "the shard lists failed checkouts");
        match self.lookup(booking.booking_id).await? {
            Some(receipt) => self.refund(booking.booking_id, &receipt).await,
            None => Ok(Settled::NothingCharged),
        }
    }

    async fn refund(
        &self,
        booking_id: BookingId,
        receipt: &Receipt,
    ) -> Result<Settled, SweepError> {
        self.saga
            .refund(booking_id, receipt)
            .await
            .map_err(|e| SweepError::Payment(PaymentError::Unknown(format!("refund: {e}"))))?;
        Ok(Settled::Refunded)
    }
}
