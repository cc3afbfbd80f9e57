//! The booking saga: hold -> `BeginCheckout` -> charge -> `Confirm`, with `FailCheckout` or a
//! refund on every failure path, and cancellation (`RequestCancel` under the policy, refund,
//! then `CancelBooking` frees the seats).
//!
//! Every step is idempotent, keyed by the client's `Idempotency-Key` (scoped to the user): the
//! inventory commands carry request ids derived from it, and the payment provider gets the
//! booking id as its idempotency key. A client retrying `POST /v1/bookings` with the same key
//! therefore replays each step's first outcome and never pays twice (invariant 6). The key's
//! outcome is fixed: a replayed `BeginCheckout` answers the booking as it is now, so a retry of
//! a declined (or otherwise failed) attempt answers the same failure without charging, and a
//! retry of a confirmed one answers the booking without charging or counting it again. Requests
//! with one key run one at a time in a gateway, so concurrent retries replay too.
//!
//! If the gateway dies between a successful charge and `Confirm` (or cannot learn a charge's
//! outcome), the checkout stays pending or expires in the inventory; the recovery sweeper (the
//! `sweeper` module, a layer above) then confirms it or refunds the charge, reusing this
//! module's request-id and refund-key scheme ([`refund_key`]) so the two can never both act on
//! one booking.
//!
//! A workflow layer: it calls the cluster through [`Shards`] and the provider through
//! [`PaymentProvider`], and knows nothing about HTTP beyond the crate's error type.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::command::{Command, Query, QueryResult, Rejection, Reply};
use proto::ids::{BookingId, HoldId, OwnerId, ShowId};
use proto::inventory::{BookingStatus, BookingView, HoldStatus};

use crate::clock::wall_clock_ms;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::payment::{PaymentError, PaymentProvider, Receipt};
use crate::shards::Shards;

/// The saga's settings (gateway flags).
#[derive(Debug, Clone, Copy)]
pub struct SagaConfig {
    /// How long a checkout may wait for its payment.
    pub checkout_window_ms: u64,
    /// Timeout of one payment provider call.
    pub payment_timeout: Duration,
    /// The cancellation policy.
    pub cancel_policy: CancelPolicy,
}

/// The booking saga's handle: what it calls and how. Cheap to clone.
#[derive(Clone)]
pub struct Saga {
    shards: Shards,
    payments: Arc<dyn PaymentProvider>,
    metrics: Metrics,
    config: SagaConfig,
    tickets: auth::TicketKey,
    /// One lock per `(owner, Idempotency-Key)` being served, so same-key requests take turns.
    in_flight: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// What a failed checkout's reason starts with when its card was declined: a retry under the
/// same `Idempotency-Key` answers `402` again ([`Saga::book`]).
pub const DECLINED_REASON_PREFIX: &str = "payment declined: ";

fn booking(reply: Reply) -> Result<BookingView, ApiError> {
    match reply {
        Reply::Booking { booking } => Ok(booking),
        other => Err(ApiError::Internal(format!("unexpected reply {other:?}"))),
    }
}

impl Saga {
    /// A saga calling the cluster through `shards` and charging through `payments`.
    pub fn new(
        shards: Shards,
        payments: Arc<dyn PaymentProvider>,
        metrics: Metrics,
        config: SagaConfig,
        tickets: auth::TicketKey,
    ) -> Saga {
        Saga { shards, payments, metrics, config, tickets, in_flight: Arc::default() }
    }

    /// The `Confirm` of a booking paid by `payment_ref`, with its keyed ticket code (the same
    /// entry whichever gateway, saga or sweeper, proposes it).
    pub fn confirm_command(&self, booking_id: BookingId, payment_ref: String) -> Command {
        let ticket_code = Some(self.tickets.code(&booking_id.to_string()));
        Command::Confirm { booking_id, payment_ref, ticket_code }
    }

    /// The ticket code a booking was (or will be) confirmed with.
    pub fn ticket_code(&self, booking_id: BookingId) -> String {
        self.tickets.code(&booking_id.to_string())
    }

    /// The typed cluster calls it uses.
    pub fn shards(&self) -> &Shards {
        &self.shards
    }

    /// The gateway's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Runs the saga for `hold_id` and returns the confirmed booking.
    ///
    /// # Errors
    /// Rejections of the hold (expired, not active, not found), a declined or unavailable payment
    /// (nothing charged), an expired checkout (charge refunded), or an unreachable cluster.
    pub async fn book(
        &self,
        owner: &OwnerId,
        key: &str,
        hold_id: HoldId,
        token: &str,
    ) -> Result<BookingView, ApiError> {
        let base = format!("bk:{}:{key}", owner.0);
        let lock = {
            let mut in_flight =
                self.in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(in_flight.entry(base.clone()).or_default())
        };
        let result = {
            let _turn = lock.lock().await;
            self.book_in_turn(&base, owner, hold_id, token).await
        };
        let mut in_flight =
            self.in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Ours and the map's are the only references left: nobody else waits on this key.
        if Arc::strong_count(&lock) == 2 {
            in_flight.remove(&base);
        }
        result
    }

    async fn book_in_turn(
        &self,
        base: &str,
        owner: &OwnerId,
        hold_id: HoldId,
        token: &str,
    ) -> Result<BookingView, ApiError> {
        let begin = Command::BeginCheckout {
            hold_id,
            owner: owner.clone(),
            window_ms: self.config.checkout_window_ms,
        };
        let pending = booking(self.shards.propose(format!("{base}:begin"), begin).await?)?;
        match pending.status {
            BookingStatus::PendingPayment => {}
            // A retry of a key whose attempt already ended: answer its outcome, charge nothing.
            BookingStatus::Failed => {
                let reason = pending.failure_reason.unwrap_or_default();
                return Err(match reason.strip_prefix(DECLINED_REASON_PREFIX) {
                    Some(reason) => ApiError::PaymentDeclined {
                        reason: reason.to_owned(),
                        hold_kept: self.hold_active(hold_id).await,
                    },
                    None => ApiError::Rejected(Rejection::BookingWrongState {
                        status: BookingStatus::Failed,
                    }),
                });
            }
            BookingStatus::Confirmed | BookingStatus::Cancelling | BookingStatus::Cancelled => {
                return Ok(pending)
            }
        }
        let booking_id = pending.booking_id;
        let charge_key = charge_key(booking_id);
        let amount = &pending.amount;

        let charge = tokio::time::timeout(
            self.config.payment_timeout,
            self.payments.charge(&charge_key, token, amount.amount_minor, &amount.currency),
        )
        .await
        .unwrap_or_else(|_| Err(PaymentError::Unknown("payment call timed out".into())));
        let receipt = match charge {
            Ok(receipt) => receipt,
            Err(PaymentError::Declined(reason)) => {
                // The seats stay held for another card (until the hold's own expiry, a few
                // declines at most: KEPT_DECLINES_MAX); nothing was charged.
                self.metrics.payments.with_label_values(&["declined"]).inc();
                let failure = format!("{DECLINED_REASON_PREFIX}{reason}");
                self.fail(base, booking_id, &failure, true).await?;
                let hold_kept = self.hold_active(hold_id).await;
                return Err(ApiError::PaymentDeclined { reason, hold_kept });
            }
            Err(PaymentError::Unavailable(reason)) => {
                // The provider was never reached: nothing was charged.
                self.metrics.payments.with_label_values(&["unavailable"]).inc();
                self.fail(base, booking_id, &reason, false).await?;
                return Err(ApiError::PaymentUnavailable);
            }
            Err(PaymentError::Unknown(reason)) => {
                // Settle the unknown outcome by asking the provider what happened under our key.
                match self.lookup_charge(booking_id).await {
                    Ok(Some(receipt)) => receipt,
                    Ok(None) => {
                        self.metrics.payments.with_label_values(&["unavailable"]).inc();
                        self.fail(base, booking_id, &reason, false).await?;
                        return Err(ApiError::PaymentUnavailable);
                    }
                    Err(e) => {
                        // Unknown and unverifiable: leave the checkout pending; the recovery sweeper
                        // (the `sweeper` module) settles it with the provider once it is old enough.
                        self.metrics.payments.with_label_values(&["unknown"]).inc();
                        tracing::error!(%booking_id, error = %e, "payment outcome unknown and lookup failed");
                        return Err(ApiError::PaymentUnavailable);
                    }
                }
            }
        };
        self.metrics.payments.with_label_values(&["charged"]).inc();

        let confirm = self.confirm_command(booking_id, receipt.reference.clone());
        match self.shards.propose(format!("{base}:confirm"), confirm).await {
            Ok(reply) => {
                let confirmed = booking(reply)?;
                self.metrics.bookings.with_label_values(&["confirmed"]).inc();
                self.metrics
                    .revenue_minor
                    .with_label_values(&[&confirmed.amount.currency])
                    .inc_by(u64::try_from(confirmed.amount.amount_minor).unwrap_or(0));
                Ok(confirmed)
            }
            Err(ApiError::Rejected(Rejection::BookingWrongState {
                status: BookingStatus::Confirmed,
            })) => {
                // A retry whose idempotency entry was already evicted: the booking was confirmed by
                // this very charge (the charge key is the booking id). Never refund it.
                let confirmed = self.shards.load_booking(booking_id, owner).await?;
                if confirmed.payment_ref.as_deref() != Some(receipt.reference.as_str()) {
                    return Err(ApiError::Internal(format!(
                        "booking {booking_id} confirmed by another charge"
                    )));
                }
                Ok(confirmed)
            }
            Err(ApiError::Rejected(Rejection::BookingWrongState { status })) => {
                // The checkout expired (or failed) before the payment landed: give the money back.
                self.refund(booking_id, &receipt).await?;
                self.metrics.bookings.with_label_values(&["refunded_late"]).inc();
                tracing::warn!(%booking_id, ?status, "late payment refunded");
                Err(ApiError::CheckoutExpiredRefunded)
            }
            Err(other) => Err(other),
        }
    }

    /// Fails the checkout; with `keep_hold` its hold stays active if the group can
    /// (`Command::FailCheckout`).
    async fn fail(
        &self,
        base: &str,
        booking_id: BookingId,
        reason: &str,
        keep_hold: bool,
    ) -> Result<(), ApiError> {
        let command = Command::FailCheckout { booking_id, reason: reason.to_owned(), keep_hold };
        match self.shards.propose(format!("{base}:fail"), command).await {
            Ok(_) | Err(ApiError::Rejected(Rejection::BookingWrongState { .. })) => {
                self.metrics.bookings.with_label_values(&["failed"]).inc();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Whether `hold_id` is active now (a linearizable read): after a declined card, whether
    /// the customer still holds the seats. A failed read answers `false`, which only makes a
    /// page hold the seats again.
    async fn hold_active(&self, hold_id: HoldId) -> bool {
        match self.shards.query(Query::Hold { hold_id }, true).await {
            Ok(QueryResult::Hold { hold }) => hold.status == HoldStatus::Active,
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(%hold_id, error = %e, "reading a hold after a declined card");
                false
            }
        }
    }

    /// What the provider charged under the booking's charge key, if anything (bounded by the
    /// payment timeout).
    ///
    /// # Errors
    /// The provider did not answer.
    pub async fn lookup_charge(
        &self,
        booking_id: BookingId,
    ) -> Result<Option<Receipt>, PaymentError> {
        let key = charge_key(booking_id);
        tokio::time::timeout(self.config.payment_timeout, self.payments.lookup(&key))
            .await
            .unwrap_or_else(|_| Err(PaymentError::Unknown("lookup timed out".into())))
    }

    /// Refunds `charge` under the booking's one refund key.
    ///
    /// # Errors
    /// The provider failed or did not answer in time.
    pub async fn refund(
        &self,
        booking_id: BookingId,
        charge: &Receipt,
    ) -> Result<Receipt, ApiError> {
        let key = refund_key(booking_id);
        let result = tokio::time::timeout(
            self.config.payment_timeout,
            self.payments.refund(&key, &charge.reference, charge.amount_minor, &charge.currency),
        )
        .await;
        match result {
            Ok(Ok(receipt)) => {
                self.metrics.payments.with_label_values(&["refunded"]).inc();
                Ok(receipt)
            }
            Ok(Err(e)) => {
                tracing::error!(%booking_id, error = %e, "refund failed");
                Err(ApiError::PaymentUnavailable)
            }
            Err(_) => Err(ApiError::PaymentUnavailable),
        }
    }

    /// A show's start: its catalog record, or the inventory's copy for shows created before the
    /// catalog existed.
    async fn show_start_ms(&self, show_id: ShowId) -> Result<u64, ApiError> {
        match self.shards.load_show(show_id.0).await {
            Ok(detail) => return Ok(detail.show.spec.starts_at_ms),
            Err(ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        match self.shards.query(Query::SeatMap { show_id }, true).await? {
            QueryResult::SeatMap { seat_map } => Ok(seat_map.starts_at_ms),
            _ => Err(ApiError::NotFound("show")),
        }
    }

    /// What cancelling `owner`'s booking now would refund, without acting: the booking, the
    /// refund the policy gives at this moment, and the last time a cancellation is accepted. The
    /// same terms [`Saga::cancel`] records (the refund tier can change if the person waits
    /// past it).
    ///
    /// # Errors
    /// Not the owner's booking (404), or the cluster is unavailable.
    pub async fn cancel_quote(
        &self,
        owner: &OwnerId,
        booking_id: BookingId,
    ) -> Result<(BookingView, i64, u64), ApiError> {
        let current = self.shards.load_booking(booking_id, owner).await?;
        let starts_at_ms = self.show_start_ms(booking_id.show_id()).await?;
        let (refund_minor, deadline_ms) = self.config.cancel_policy.terms(
            current.amount.amount_minor,
            starts_at_ms,
            wall_clock_ms(),
        );
        Ok((current, refund_minor, deadline_ms))
    }

    /// Cancels a confirmed booking of `owner` under the policy: records the request (refusing it
    /// past the cutoff), refunds what is owed, then frees the seats. Cancelling an already cancelled
    /// booking returns it unchanged; one left `cancelling` by a crash is finished.
    ///
    /// # Errors
    /// Not the owner's booking (404), not confirmed or past the cutoff (409), refund or cluster
    /// unavailable (the booking stays `cancelling`; a retry or the sweeper finishes it).
    pub async fn cancel(
        &self,
        owner: &OwnerId,
        booking_id: BookingId,
    ) -> Result<BookingView, ApiError> {
        let current = self.shards.load_booking(booking_id, owner).await?;
        let cancelling = match current.status {
            BookingStatus::Cancelled => return Ok(current),
            BookingStatus::Cancelling => current,
            BookingStatus::Confirmed => {
                let starts_at_ms = self.show_start_ms(booking_id.show_id()).await?;
                let (refund_minor, deadline_ms) = self.config.cancel_policy.terms(
                    current.amount.amount_minor,
                    starts_at_ms,
                    wall_clock_ms(),
                );
                let command = Command::RequestCancel {
                    booking_id,
                    owner: Some(owner.clone()),
                    refund_minor,
                    deadline_ms,
                };
                match self.shards.propose(format!("cancel:{booking_id}:request"), command).await {
                    Ok(reply) => booking(reply)?,
                    Err(ApiError::Rejected(Rejection::BookingWrongState { .. })) => {
                        self.shards.load_booking(booking_id, owner).await?
                    }
                    Err(e) => return Err(e),
                }
            }
            status => return Err(ApiError::Rejected(Rejection::BookingWrongState { status })),
        };
        self.finish_cancel(&cancelling).await
    }

    /// Finishes a `cancelling` booking: refunds what it is owed (once per booking, whoever asks:
    /// the refund key is the booking's) and frees its seats. Shared by the customer's cancel, show
    /// cancellation and the recovery sweeper.
    ///
    /// # Errors
    /// The refund or the cluster is unavailable; nothing is lost, a repeat finishes it.
    pub async fn finish_cancel(&self, current: &BookingView) -> Result<BookingView, ApiError> {
        let booking_id = current.booking_id;
        if current.status == BookingStatus::Cancelled {
            return Ok(current.clone());
        }
        let refund_minor = current.refund_minor.unwrap_or(current.amount.amount_minor);
        let refund_ref = if refund_minor > 0 {
            let payment_ref = current.payment_ref.clone().ok_or_else(|| {
                ApiError::Internal("confirmed booking without a payment reference".into())
            })?;
            let charge = Receipt {
                reference: payment_ref,
                amount_minor: refund_minor,
                currency: current.amount.currency.clone(),
            };
            let receipt = self.refund(booking_id, &charge).await?;
            self.metrics
                .refunds_minor
                .with_label_values(&[&current.amount.currency])
                .inc_by(u64::try_from(refund_minor).unwrap_or(0));
            receipt.reference
        } else {
            String::new()
        };
        let command =
            Command::CancelBooking { booking_id, owner: current.owner.clone(), refund_ref };
        match self.shards.propose(format!("cancel:{booking_id}:complete"), command).await {
            Ok(reply) => {
                self.metrics.bookings.with_label_values(&["cancelled"]).inc();
                booking(reply)
            }
            Err(ApiError::Rejected(Rejection::BookingWrongState {
                status: BookingStatus::Cancelled,
            })) => self.shards.load_booking(booking_id, &current.owner).await,
            Err(e) => Err(e),
        }
    }

    /// Cancels a show on its shard and refunds every booking in full. Safe to repeat: a repeat
    /// finishes refunds an earlier call could not (and the sweeper would finish them too).
    ///
    /// # Errors
    /// The shard, or a refund, is unavailable.
    pub async fn cancel_show(&self, show_id: ShowId) -> Result<ShowCancelSummary, ApiError> {
        let mut summary = ShowCancelSummary::default();
        match self
            .shards
            .propose(format!("cancel-show:{}", show_id.0), Command::CancelShow { show_id })
            .await?
        {
            Reply::ShowCancelled { released, .. } => summary.released = released,
            other => return Err(ApiError::Internal(format!("unexpected reply {other:?}"))),
        }
        let group = self.shards.locate(show_id).await?;
        loop {
            let query =
                Query::StaleCheckouts { before_ms: u64::MAX, failed_after: None, limit: 1000 };
            let QueryResult::StaleCheckouts { cancelling, .. } =
                self.shards.query_group(group, &query, true).await?
            else {
                return Err(ApiError::Internal("the shard did not list cancellations".into()));
            };
            let ours: Vec<&BookingView> =
                cancelling.iter().filter(|b| b.show_id == show_id).collect();
            if ours.is_empty() {
                return Ok(summary);
            }
            for booking in ours {
                self.finish_cancel(booking).await?;
                summary.refunded += 1;
            }
        }
    }
}

/// The payment idempotency key of a booking's refund: one per booking, shared by the saga's
/// late-payment refund, cancellation and the recovery sweeper, so the provider refunds a
/// booking's charge at most once whoever asks.
pub fn refund_key(booking_id: BookingId) -> String {
    format!("refund:{booking_id}")
}

/// The payment idempotency key of a booking's charge: the booking id.
pub fn charge_key(booking_id: BookingId) -> String {
    booking_id.to_string()
}

/// The cancellation policy (gateway flags, docs/api.md "Cancellation").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancelPolicy {
    /// No customer cancellation this long before the start.
    pub cutoff_ms: u64,
    /// Cancelled at least this long before the start: full refund.
    pub full_refund_before_ms: u64,
    /// Otherwise (between the two): this percentage of the amount, rounded down.
    pub late_refund_percent: u8,
}

impl CancelPolicy {
    /// The refund owed for `amount_minor` when cancelling at `now_ms` a show starting at
    /// `starts_at_ms`, and the last log time the cancellation may be recorded at. The refund
    /// tier uses this gateway's clock; the deadline is enforced by the state machine against log
    /// time, so a late request is refused however the clocks disagree.
    pub fn terms(&self, amount_minor: i64, starts_at_ms: u64, now_ms: u64) -> (i64, u64) {
        let deadline = starts_at_ms.saturating_sub(self.cutoff_ms);
        let refund = if starts_at_ms.saturating_sub(now_ms) >= self.full_refund_before_ms {
            amount_minor
        } else {
            amount_minor * i64::from(self.late_refund_percent) / 100
        };
        (refund, deadline)
    }
}

/// What [`Saga::cancel_show`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShowCancelSummary {
    /// Bookings refunded and cancelled by this call.
    pub refunded: u32,
    /// Holds released and checkouts failed by the shard.
    pub released: u32,
}

#[cfg(test)]
mod tests {
    use super::CancelPolicy;

    #[test]
    fn the_policy_refunds_in_full_early_partially_late_and_sets_the_cutoff() {
        let hour = 3_600_000;
        let policy = CancelPolicy {
            cutoff_ms: hour,
            full_refund_before_ms: 24 * hour,
            late_refund_percent: 50,
        };
        let start = 100 * hour;
        assert_eq!(policy.terms(40_000, start, start - 30 * hour), (40_000, start - hour));
        assert_eq!(policy.terms(40_000, start, start - 24 * hour), (40_000, start - hour));
        assert_eq!(policy.terms(40_001, start, start - 2 * hour), (20_000, start - hour));
        // Past the start the deadline is already behind: the state machine refuses it.
        assert_eq!(policy.terms(100, start, start + hour).1, start - hour);
    }
}
