//! The booking saga: hold -> `BeginCheckout` -> charge -> `Confirm`, with `FailCheckout` or a
//! refund on every failure path, and cancellation (refund, then release).
//!
//! Every step is idempotent, keyed by the client's `Idempotency-Key` (scoped to the user): the
//! inventory commands carry request ids derived from it, and the payment provider gets the
//! booking id as its idempotency key. A client retrying `POST /v1/bookings` with the same key
//! therefore replays each step's first outcome and never pays twice (invariant 6).
//!
//! If the gateway dies between a successful charge and `Confirm` (or cannot learn a charge's
//! outcome), the checkout stays pending or expires in the inventory; the recovery sweeper
//! ([`crate::sweeper`]) then confirms it or refunds the charge, reusing this module's request-id
//! and refund-key scheme ([`refund_key`]) so the two can never both act on one booking.

use proto::inventory::{
    BookingId, BookingStatus, BookingView, Command, HoldId, OwnerId, Rejection, Reply,
};

use crate::http::error::ApiError;
use crate::http::{load_booking, propose};
use crate::payment::{PaymentError, Receipt};
use crate::AppState;

fn booking(reply: Reply) -> Result<BookingView, ApiError> {
    match reply {
        Reply::Booking { booking } => Ok(booking),
        other => Err(ApiError::Internal(format!("unexpected reply {other:?}"))),
    }
}

/// Runs the saga for `hold_id` and returns the confirmed booking.
///
/// # Errors
/// Rejections of the hold (expired, not active, not found), a declined or unavailable payment
/// (nothing charged), an expired checkout (charge refunded), or an unreachable cluster.
pub async fn book(
    state: &AppState,
    owner: &OwnerId,
    key: &str,
    hold_id: HoldId,
    token: &str,
) -> Result<BookingView, ApiError> {
    let base = format!("bk:{}:{key}", owner.0);
    let begin = Command::BeginCheckout {
        hold_id,
        owner: owner.clone(),
        window_ms: state.checkout_window_ms,
    };
    let pending = booking(propose(state, format!("{base}:begin"), begin).await?)?;
    let booking_id = pending.booking_id;
    let charge_key = charge_key(booking_id);
    let amount = &pending.amount;

    let charge = tokio::time::timeout(
        state.payment_timeout,
        state.payments.charge(&charge_key, token, amount.amount_minor, &amount.currency),
    )
    .await
    .unwrap_or_else(|_| Err(PaymentError::Unknown("payment call timed out".into())));
    let receipt = match charge {
        Ok(receipt) => receipt,
        Err(PaymentError::Declined(reason)) => {
            state.metrics.payments.with_label_values(&["declined"]).inc();
            fail(state, &base, booking_id, &reason).await?;
            return Err(ApiError::PaymentDeclined(reason));
        }
        Err(PaymentError::Unavailable(reason)) => {
            // The provider was never reached: nothing was charged.
            state.metrics.payments.with_label_values(&["unavailable"]).inc();
            fail(state, &base, booking_id, &reason).await?;
            return Err(ApiError::PaymentUnavailable);
        }
        Err(PaymentError::Unknown(reason)) => {
            // Settle the unknown outcome by asking the provider what happened under our key.
            let lookup =
                tokio::time::timeout(state.payment_timeout, state.payments.lookup(&charge_key))
                    .await
                    .unwrap_or_else(|_| Err(PaymentError::Unknown("lookup timed out".into())));
            match lookup {
                Ok(Some(receipt)) => receipt,
                Ok(None) => {
                    state.metrics.payments.with_label_values(&["unavailable"]).inc();
                    fail(state, &base, booking_id, &reason).await?;
                    return Err(ApiError::PaymentUnavailable);
                }
                Err(e) => {
                    // Unknown and unverifiable: leave the checkout pending; the recovery sweeper
                    // (`crate::sweeper`) settles it with the provider once it is old enough.
                    state.metrics.payments.with_label_values(&["unknown"]).inc();
                    tracing::error!(%booking_id, error = %e, "payment outcome unknown and lookup failed");
                    return Err(ApiError::PaymentUnavailable);
                }
            }
        }
    };
    state.metrics.payments.with_label_values(&["charged"]).inc();

    let confirm = Command::Confirm { booking_id, payment_ref: receipt.reference.clone() };
    match propose(state, format!("{base}:confirm"), confirm).await {
        Ok(reply) => {
            let confirmed = booking(reply)?;
            state.metrics.bookings.with_label_values(&["confirmed"]).inc();
            Ok(confirmed)
        }
        Err(ApiError::Rejected(Rejection::BookingWrongState {
            status: BookingStatus::Confirmed,
        })) => {
            // A retry whose idempotency entry was already evicted: the booking was confirmed by
            // this very charge (the charge key is the booking id). Never refund it.
            let confirmed = load_booking(state, booking_id, owner).await?;
            if confirmed.payment_ref.as_deref() != Some(receipt.reference.as_str()) {
                return Err(ApiError::Internal(format!(
                    "booking {booking_id} confirmed by another charge"
                )));
            }
            Ok(confirmed)
        }
        Err(ApiError::Rejected(Rejection::BookingWrongState { status })) => {
            // The checkout expired (or failed) before the payment landed: give the money back.
            refund(state, booking_id, &receipt).await?;
            state.metrics.bookings.with_label_values(&["refunded_late"]).inc();
            tracing::warn!(%booking_id, ?status, "late payment refunded");
            Err(ApiError::CheckoutExpiredRefunded)
        }
        Err(other) => Err(other),
    }
}

async fn fail(
    state: &AppState,
    base: &str,
    booking_id: BookingId,
    reason: &str,
) -> Result<(), ApiError> {
    let command = Command::FailCheckout { booking_id, reason: reason.to_owned() };
    match propose(state, format!("{base}:fail"), command).await {
        Ok(_) | Err(ApiError::Rejected(Rejection::BookingWrongState { .. })) => {
            state.metrics.bookings.with_label_values(&["failed"]).inc();
            Ok(())
        }
        Err(e) => Err(e),
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

pub(crate) async fn refund(
    state: &AppState,
    booking_id: BookingId,
    charge: &Receipt,
) -> Result<Receipt, ApiError> {
    let key = refund_key(booking_id);
    let result = tokio::time::timeout(
        state.payment_timeout,
        state.payments.refund(&key, &charge.reference, charge.amount_minor, &charge.currency),
    )
    .await;
    match result {
        Ok(Ok(receipt)) => {
            state.metrics.payments.with_label_values(&["refunded"]).inc();
            Ok(receipt)
        }
        Ok(Err(e)) => {
            tracing::error!(%booking_id, error = %e, "refund failed");
            Err(ApiError::PaymentUnavailable)
        }
        Err(_) => Err(ApiError::PaymentUnavailable),
    }
}

/// Cancels a confirmed booking: refunds the charge, then frees the seats. Cancelling an already
/// cancelled booking returns it unchanged.
///
/// # Errors
/// Not the owner's booking (404), not confirmed (409), refund or cluster unavailable.
pub async fn cancel(
    state: &AppState,
    owner: &OwnerId,
    booking_id: BookingId,
) -> Result<BookingView, ApiError> {
    let current = load_booking(state, booking_id, owner).await?;
    match current.status {
        BookingStatus::Cancelled => return Ok(current),
        BookingStatus::Confirmed => {}
        status => return Err(ApiError::Rejected(Rejection::BookingWrongState { status })),
    }
    let payment_ref = current.payment_ref.clone().ok_or_else(|| {
        ApiError::Internal("confirmed booking without a payment reference".into())
    })?;
    let charge = Receipt {
        reference: payment_ref,
        amount_minor: current.amount.amount_minor,
        currency: current.amount.currency.clone(),
    };
    let receipt = refund(state, booking_id, &charge).await?;
    let command =
        Command::CancelBooking { booking_id, owner: owner.clone(), refund_ref: receipt.reference };
    let cancelled = booking(propose(state, format!("cancel:{booking_id}"), command).await?)?;
    state.metrics.bookings.with_label_values(&["cancelled"]).inc();
    Ok(cancelled)
}
