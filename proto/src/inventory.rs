//! The inventory vocabulary of a show's seats: how a hold picks seats, the states of seats, holds
//! and bookings, and the views (seat map, hold, booking) a client reads. The commands that change
//! them are in [`crate::command`].

use serde::{Deserialize, Serialize};

use crate::ids::{BookingId, HoldId, OwnerId, SeatId, ShowId};
use crate::layout::Money;

/// Which seats a hold asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SeatSelection {
    /// Exactly these seats, all or nothing.
    Seats(Vec<SeatId>),
    /// The best `quantity` free seats of a category, adjacent in one row where possible.
    BestAvailable {
        /// Party size.
        quantity: u32,
        /// Category to pick from.
        category: String,
    },
}

/// State of one seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SeatStatus {
    /// Can be held.
    Available,
    /// In an active hold or a checkout.
    Held,
    /// In a confirmed booking.
    Sold,
}

/// Lifecycle of a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    /// Holding seats until `expires_at_ms`.
    Active,
    /// Pinned by a pending booking while payment runs.
    CheckingOut,
    /// Released by its owner.
    Released,
    /// Passed its expiry unconfirmed.
    Expired,
    /// Turned into a confirmed booking.
    Booked,
    /// Its checkout failed; seats freed.
    Failed,
}

impl HoldStatus {
    /// The snake_case wire name, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Active => "active",
            HoldStatus::CheckingOut => "checking_out",
            HoldStatus::Released => "released",
            HoldStatus::Expired => "expired",
            HoldStatus::Booked => "booked",
            HoldStatus::Failed => "failed",
        }
    }
}

/// A hold as seen by clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HoldView {
    /// Id.
    pub hold_id: HoldId,
    /// The show.
    pub show_id: ShowId,
    /// The holder.
    pub owner: OwnerId,
    /// Held seats, in layout order.
    pub seats: Vec<SeatId>,
    /// Sum of seat prices.
    pub amount: Money,
    /// Deadline (log time, Unix ms).
    pub expires_at_ms: u64,
    /// Lifecycle state.
    pub status: HoldStatus,
    /// The pending or confirmed booking made from this hold.
    pub booking_id: Option<BookingId>,
}

/// Lifecycle of a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    /// Checkout begun, payment in progress.
    PendingPayment,
    /// Paid; seats sold; ticket issued.
    Confirmed,
    /// Payment failed or the checkout expired; seats freed.
    Failed,
    /// Cancellation requested ([`Command::RequestCancel`](crate::command::Command::RequestCancel)): the refund is being issued; seats
    /// are still sold.
    Cancelling,
    /// Cancelled after confirmation and refunded; seats freed.
    Cancelled,
}

impl BookingStatus {
    /// The snake_case wire name, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::PendingPayment => "pending_payment",
            BookingStatus::Confirmed => "confirmed",
            BookingStatus::Failed => "failed",
            BookingStatus::Cancelling => "cancelling",
            BookingStatus::Cancelled => "cancelled",
        }
    }
}

/// A booking as seen by clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BookingView {
    /// Id.
    pub booking_id: BookingId,
    /// The show.
    pub show_id: ShowId,
    /// The hold it was made from.
    pub hold_id: HoldId,
    /// The booker.
    pub owner: OwnerId,
    /// Seats, in layout order.
    pub seats: Vec<SeatId>,
    /// Amount charged (or to be charged).
    pub amount: Money,
    /// Lifecycle state.
    pub status: BookingStatus,
    /// Payment deadline while pending (log time, Unix ms).
    pub payment_deadline_ms: u64,
    /// Payment provider reference once confirmed.
    pub payment_ref: Option<String>,
    /// Refund reference once cancelled.
    pub refund_ref: Option<String>,
    /// Refund owed or paid, in minor units, once a cancellation was requested.
    #[serde(default)]
    pub refund_minor: Option<i64>,
    /// Code printed on the ticket once confirmed: keyed with the gateways' secret, so it cannot
    /// be computed from the booking id (docs/architecture.md, "Ticket codes").
    pub ticket_code: Option<String>,
    /// Why a booking failed.
    pub failure_reason: Option<String>,
    /// Log time the checkout began, Unix ms (0 for bookings recorded before it was kept).
    #[serde(default)]
    pub created_at_ms: u64,
}

/// A position in a group's list of failed checkouts: the log index of the entry that failed it,
/// then the booking. Later failures always sort after earlier ones, so a scan that resumes after
/// a cursor sees every failure exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FailedCursor {
    /// Log index of the entry that failed the checkout.
    pub index: u64,
    /// The booking.
    pub booking_id: BookingId,
}

/// A checkout that failed, as listed by [`Query::StaleCheckouts`](crate::command::Query::StaleCheckouts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedCheckout {
    /// Its position, to resume the scan after it.
    pub cursor: FailedCursor,
    /// Log time it failed at, Unix ms.
    pub failed_at_ms: u64,
    /// The booking (status `failed`, which is final).
    pub booking: BookingView,
}

/// One seat in a seat map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SeatView {
    /// Id, e.g. `C7`.
    pub seat_id: SeatId,
    /// Number within the row.
    pub number: u32,
    /// Category.
    pub category: String,
    /// Price in minor units.
    pub price_minor: i64,
    /// State at `version`.
    pub status: SeatStatus,
    /// An aisle follows this seat.
    pub aisle_after: bool,
}

/// One row in a seat map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RowView {
    /// Label.
    pub label: String,
    /// Seats in order.
    pub seats: Vec<SeatView>,
}

/// A show's seats at a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SeatMap {
    /// The show.
    pub show_id: ShowId,
    /// Title.
    pub title: String,
    /// Start time, Unix ms.
    pub starts_at_ms: u64,
    /// Bumped by every applied change to the show.
    pub version: u64,
    /// Currency of prices.
    pub currency: String,
    /// Count of available seats.
    pub available: u32,
    /// The show was cancelled: nothing is bookable.
    #[serde(default)]
    pub cancelled: bool,
    /// Rows.
    pub rows: Vec<RowView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_are_their_wire_names() {
        use HoldStatus as H;
        for status in [H::Active, H::CheckingOut, H::Released, H::Expired, H::Booked, H::Failed] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        use BookingStatus as B;
        for status in [B::PendingPayment, B::Confirmed, B::Failed, B::Cancelling, B::Cancelled] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }
}
