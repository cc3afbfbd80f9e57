//! The inventory's structural invariants as executable checks: every seat's state agrees with
//! the hold or booking that claims it, availability counts are right, the deadline and owner
//! indexes match the records. The property tests run them after every step, and debug builds of
//! the storage adapter after every applied batch (docs/architecture.md, invariants 1 and 3).

use std::collections::BTreeSet;

use proto::inventory::{BookingStatus, HoldStatus};

use super::{Inventory, SeatState};

impl Inventory {
    /// Checks the structural invariants (every seat state agrees with its hold or booking;
    /// availability counts are right). Full scan: for tests and debug builds.
    ///
    /// # Panics
    /// On any violation, naming it.
    pub fn check_invariants(&self) {
        for (show_id, show) in &self.shows {
            let mut free = 0;
            for (row_index, row) in show.rows.iter().enumerate() {
                for (offset, state) in row.seats.iter().enumerate() {
                    let seat = (row_index as u32, offset as u32 + 1);
                    match state {
                        SeatState::Free => free += 1,
                        SeatState::Held(hold_id) => {
                            let hold = self.holds.get(hold_id).expect("held seat's hold exists");
                            assert_eq!(
                                hold_id.show_id(),
                                *show_id,
                                "hold belongs to the seat's show"
                            );
                            assert!(
                                matches!(hold.status, HoldStatus::Active | HoldStatus::CheckingOut),
                                "held seat's hold is active or checking out"
                            );
                            assert!(hold.seats.contains(&seat), "held seat is in its hold");
                        }
                        SeatState::Sold(booking_id) => {
                            let booking =
                                self.bookings.get(booking_id).expect("sold seat's booking exists");
                            assert!(
                                booking.holds_seats(),
                                "sold seat's booking is confirmed or cancelling"
                            );
                            assert!(booking.seats.contains(&seat), "sold seat is in its booking");
                        }
                    }
                }
            }
            assert_eq!(free, show.available, "available count matches free seats");
        }
        for (hold_id, hold) in &self.holds {
            let show = self.shows.get(&hold_id.show_id()).expect("hold's show exists");
            let live = matches!(hold.status, HoldStatus::Active | HoldStatus::CheckingOut);
            for (row, number) in &hold.seats {
                let state = show.rows[*row as usize].seats[*number as usize - 1];
                if live {
                    assert_eq!(
                        state,
                        SeatState::Held(*hold_id),
                        "live hold's seats are held by it"
                    );
                } else {
                    assert_ne!(state, SeatState::Held(*hold_id), "ended hold holds no seat");
                }
            }
            assert_eq!(
                hold.status == HoldStatus::Active,
                self.hold_deadlines.contains(&(hold.expires_at_ms, *hold_id)),
                "exactly the active holds have a deadline"
            );
        }
        let mut held = std::collections::BTreeMap::new();
        for (hold_id, hold) in &self.holds {
            if matches!(hold.status, HoldStatus::Active | HoldStatus::CheckingOut) {
                *held.entry((hold_id.show_id(), hold.owner.clone())).or_insert(0) +=
                    hold.seats.len() as u32;
            }
        }
        assert_eq!(held, self.held_seats, "seats held per owner and show match the live holds");
        let indexed: usize = self.by_owner.values().map(BTreeSet::len).sum();
        assert_eq!(indexed, self.bookings.len(), "every booking is indexed by owner once");
        for (owner, ids) in &self.by_owner {
            for id in ids {
                assert_eq!(&self.bookings[id].owner, owner, "owner index agrees with the booking");
            }
        }
        for (_, booking_id, _) in &self.failed_checkouts {
            let booking = self.bookings.get(booking_id).expect("listed failed checkout exists");
            assert_eq!(booking.status, BookingStatus::Failed, "listed failed checkouts failed");
        }
        for (booking_id, booking) in &self.bookings {
            let show = self.shows.get(&booking_id.show_id()).expect("booking's show exists");
            if booking.holds_seats() {
                for (row, number) in &booking.seats {
                    let state = show.rows[*row as usize].seats[*number as usize - 1];
                    assert_eq!(
                        state,
                        SeatState::Sold(*booking_id),
                        "confirmed or cancelling booking's seats are sold to it"
                    );
                }
            }
            assert_eq!(
                booking.status == BookingStatus::Cancelling,
                self.cancelling.contains(&(booking.cancel_requested_at_ms, *booking_id)),
                "exactly the cancelling bookings are listed for the sweeper"
            );
        }
    }
}
