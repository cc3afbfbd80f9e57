//! Reads of an inventory shard: seat maps, holds, bookings, a show's bookings, an owner's
//! bookings ("my bookings"), and the checkouts the recovery sweeper must settle. Reads never
//! change state; views are built from the records on demand.

use proto::command::{Query, QueryResult};
use proto::ids::{BookingId, HoldId, SeatId, ShowId};
use proto::inventory::{
    BookingView, FailedCheckout, FailedCursor, HoldView, RowView, SeatMap, SeatStatus, SeatView,
};
use proto::layout::Money;

use super::{seat_id, Booking, Hold, Inventory, SeatState};
use crate::limits::{OWNER_BOOKINGS_MAX, STALE_CHECKOUTS_LIMIT_MAX};

impl Inventory {
    /// Answers a read.
    pub fn query(&self, query: &Query) -> QueryResult {
        match query {
            Query::SeatMap { show_id } => match self.seat_map(*show_id) {
                Some(seat_map) => QueryResult::SeatMap { seat_map },
                None => QueryResult::NotFound,
            },
            Query::Hold { hold_id } => match self.holds.get(hold_id) {
                Some(hold) => QueryResult::Hold { hold: self.hold_view(*hold_id, hold) },
                None => QueryResult::NotFound,
            },
            Query::Booking { booking_id } => match self.bookings.get(booking_id) {
                Some(booking) => {
                    QueryResult::Booking { booking: self.booking_view(*booking_id, booking) }
                }
                None => QueryResult::NotFound,
            },
            Query::ShowBookings { show_id } => {
                if !self.shows.contains_key(show_id) {
                    return QueryResult::NotFound;
                }
                let bookings = self
                    .bookings
                    .range(BookingId::first_of(*show_id)..=BookingId::last_of(*show_id))
                    .filter(|(_, b)| b.holds_seats())
                    .map(|(id, b)| self.booking_view(*id, b))
                    .collect();
                QueryResult::Bookings { bookings }
            }
            // The caller knows the applied index; it fills it in (see `StateMachineStore`).
            Query::Digest => QueryResult::Digest { applied_index: 0, digest: self.digest() },
            Query::OwnerBookings { owner, limit } => {
                let limit = (*limit).min(OWNER_BOOKINGS_MAX) as usize;
                let mut mine: Vec<(u64, BookingId)> = self
                    .by_owner
                    .get(owner)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| self.bookings.get(id).map(|b| (b.began_at_ms, *id)))
                    .collect();
                mine.sort_unstable_by(|a, b| b.cmp(a));
                let bookings = mine
                    .into_iter()
                    .take(limit)
                    .filter_map(|(_, id)| self.bookings.get(&id).map(|b| self.booking_view(id, b)))
                    .collect();
                QueryResult::Bookings { bookings }
            }
            Query::StaleCheckouts { before_ms, failed_after, limit } => {
                self.stale_checkouts(*before_ms, *failed_after, *limit)
            }
            Query::Meta(_) => QueryResult::NotFound,
        }
    }

    /// Answers [`Query::StaleCheckouts`]: pending checkouts begun at or before `before_ms`
    /// (by payment deadline), and failed checkouts after `failed_after` that failed at or before
    /// `before_ms` (in log order), at most `limit` (capped) of each.
    fn stale_checkouts(
        &self,
        before_ms: u64,
        failed_after: Option<FailedCursor>,
        limit: u32,
    ) -> QueryResult {
        let limit = limit.min(STALE_CHECKOUTS_LIMIT_MAX) as usize;
        let pending = self
            .checkout_deadlines
            .iter()
            .filter_map(|(_, id)| self.bookings.get(id).map(|b| (*id, b)))
            .filter(|(_, booking)| booking.began_at_ms <= before_ms)
            .take(limit)
            .map(|(id, booking)| self.booking_view(id, booking))
            .collect();
        let start = match failed_after {
            // The third element is the failure time; u64::MAX puts the bound after the cursor.
            Some(cursor) => std::ops::Bound::Excluded((cursor.index, cursor.booking_id, u64::MAX)),
            None => std::ops::Bound::Unbounded,
        };
        let failed = self
            .failed_checkouts
            .range((start, std::ops::Bound::Unbounded))
            // Failure times grow along the set: stop at the first one past the cut-off.
            .take_while(|(_, _, failed_at_ms)| *failed_at_ms <= before_ms)
            .filter_map(|&(index, booking_id, failed_at_ms)| {
                let booking = self.bookings.get(&booking_id)?;
                Some(FailedCheckout {
                    cursor: FailedCursor { index, booking_id },
                    failed_at_ms,
                    booking: self.booking_view(booking_id, booking),
                })
            })
            .take(limit)
            .collect();
        let cancelling = self
            .cancelling
            .iter()
            .take_while(|(at, _)| *at <= before_ms)
            .filter_map(|(_, id)| self.bookings.get(id).map(|b| self.booking_view(*id, b)))
            .take(limit)
            .collect();
        QueryResult::StaleCheckouts { pending, cancelling, failed }
    }

    pub(super) fn seat_ids(&self, show_id: ShowId, seats: &[(u32, u32)]) -> Vec<SeatId> {
        let show = self.shows.get(&show_id).expect("object's show exists");
        seats.iter().map(|(row, n)| seat_id(&show.rows[*row as usize].label, *n)).collect()
    }

    pub(super) fn money(&self, show_id: ShowId, amount_minor: i64) -> Money {
        let show = self.shows.get(&show_id).expect("object's show exists");
        Money { amount_minor, currency: show.currency.clone() }
    }

    pub(super) fn hold_view(&self, hold_id: HoldId, hold: &Hold) -> HoldView {
        let show_id = hold_id.show_id();
        HoldView {
            hold_id,
            show_id,
            owner: hold.owner.clone(),
            seats: self.seat_ids(show_id, &hold.seats),
            amount: self.money(show_id, hold.amount_minor),
            expires_at_ms: hold.expires_at_ms,
            status: hold.status,
            booking_id: hold.booking_id,
        }
    }

    pub(super) fn booking_view(&self, booking_id: BookingId, booking: &Booking) -> BookingView {
        let show_id = booking_id.show_id();
        BookingView {
            booking_id,
            show_id,
            hold_id: booking.hold_id,
            owner: booking.owner.clone(),
            seats: self.seat_ids(show_id, &booking.seats),
            amount: self.money(show_id, booking.amount_minor),
            status: booking.status,
            payment_deadline_ms: booking.payment_deadline_ms,
            payment_ref: booking.payment_ref.clone(),
            refund_ref: booking.refund_ref.clone(),
            refund_minor: booking.refund_minor,
            ticket_code: booking.ticket_code.clone(),
            failure_reason: booking.failure_reason.clone(),
            created_at_ms: booking.began_at_ms,
        }
    }

    pub(super) fn seat_map(&self, show_id: ShowId) -> Option<SeatMap> {
        let show = self.shows.get(&show_id)?;
        let rows = show
            .rows
            .iter()
            .map(|row| RowView {
                label: row.label.clone(),
                seats: row
                    .seats
                    .iter()
                    .enumerate()
                    .map(|(offset, state)| {
                        let number = offset as u32 + 1;
                        SeatView {
                            seat_id: seat_id(&row.label, number),
                            number,
                            category: row.category.clone(),
                            price_minor: show.prices[&row.category],
                            status: match state {
                                SeatState::Free => SeatStatus::Available,
                                SeatState::Held(_) => SeatStatus::Held,
                                SeatState::Sold(_) => SeatStatus::Sold,
                            },
                            aisle_after: row.aisles_after.contains(&number),
                        }
                    })
                    .collect(),
            })
            .collect();
        Some(SeatMap {
            show_id,
            title: show.title.clone(),
            starts_at_ms: show.starts_at_ms,
            version: show.version,
            currency: show.currency.clone(),
            available: show.available,
            cancelled: show.cancelled,
            rows,
        })
    }
}
