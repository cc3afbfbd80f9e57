//! The inventory state machine: seats, holds, checkouts and bookings of the shows one Raft
//! group owns, as a pure function of the log.
//!
//! [`Inventory::apply`] depends on nothing but the current state and the entry: time is the
//! entry's `now_ms` (clamped so it never runs backwards, even when a new leader's clock is
//! behind the old one's), ids derive from the log index, and every collection is ordered (a
//! `BTreeMap` or `BTreeSet`, or a queue in log order) so iteration order, snapshots and digests
//! are identical on every replica (docs/architecture.md, invariant 5).
//!
//! Guarantees, checked by the property tests in this module:
//! - A seat is in at most one active hold or confirmed booking (invariant 1): every seat has
//!   exactly one [`SeatState`], changed only through the transitions below.
//! - A hold or checkout past its deadline frees its seats before any later command is applied
//!   (invariant 3): every apply first runs expiry at the entry's time, so expiry is exact in log
//!   time whether or not an `ExpireDue` entry has been proposed yet.
//! - A replayed request id returns the first outcome and changes nothing (invariant 6).
//! - Every checkout that fails is listed, in log order, for the gateway's recovery sweeper for
//!   [`FAILED_CHECKOUT_RETENTION_MS`] of log time ([`Query::StaleCheckouts`]), so a charge that
//!   landed for it can be refunded (invariant 4).
//!
//! Out of scope here: policies that need clocks or config (cancellation cutoffs, pricing
//! rules) are decided by the proposer and carried in the command.

mod apply;
mod codes;
mod encode;
mod idempotency;
mod invariants;
mod reads;
mod seats;

use std::collections::{BTreeMap, BTreeSet};

use proto::command::{Command, Outcome, Rejection, Reply, COMMAND_VERSION_ONE_LAYOUT_RULE};
use proto::ids::{BookingId, HoldId, OwnerId, SeatId, ShowId};
use proto::inventory::{BookingStatus, HoldStatus, SeatSelection};
use proto::layout::Layout;
use serde::{Deserialize, Serialize};

use self::apply::Pos;
use self::codes::{check_ticket_code, legacy_ticket_code};
use self::idempotency::{ExpiryQueue, IdempotencyEntry, IdempotencyTable, RequestKey};
use self::seats::{pick_best, pick_explicit};
use crate::limits::{
    CHECKOUT_WINDOW_MS_MAX, ENDED_HOLD_RETENTION_MS, FAILED_CHECKOUTS_MAX,
    FAILED_CHECKOUT_RETENTION_MS, HOLDS_PER_OWNER_MAX, HOLD_TTL_MS_DEFAULT, HOLD_TTL_MS_MAX,
    HOLD_TTL_MS_MIN, IDEMPOTENCY_ENTRIES_MAX, IDEMPOTENCY_TTL_MS, KEPT_DECLINES_MAX,
    NAME_BYTES_MAX, REQUEST_ID_BYTES_MAX,
};
use crate::Fnv1a;

/// Who occupies a seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeatState {
    /// Nobody.
    Free,
    /// An active or checking-out hold.
    Held(HoldId),
    /// A confirmed booking.
    Sold(BookingId),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Row {
    label: String,
    category: String,
    aisles_after: BTreeSet<u32>,
    /// `seats[n - 1]` is seat number `n`.
    seats: Vec<SeatState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Show {
    title: String,
    starts_at_ms: u64,
    currency: String,
    prices: BTreeMap<String, i64>,
    rows: Vec<Row>,
    /// Bumped by every applied change to the show.
    version: u64,
    available: u32,
    /// Active (and checking-out) holds per owner, for the per-owner limit.
    active_holds_by_owner: BTreeMap<OwnerId, u32>,
    /// Cancelled by `CancelShow`: nothing can be held or bought.
    #[serde(default)]
    cancelled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Hold {
    owner: OwnerId,
    /// (row index, seat number) in layout order.
    seats: Vec<(u32, u32)>,
    amount_minor: i64,
    expires_at_ms: u64,
    status: HoldStatus,
    booking_id: Option<BookingId>,
    /// Declined checkouts this hold survived (`FailCheckout { keep_hold }`), at most
    /// [`KEPT_DECLINES_MAX`]; left out of the encoding while 0, as older builds wrote it.
    #[serde(default, skip_serializing_if = "is_zero")]
    kept_declines: u32,
}

/// Serde helper: whether a counter is still 0 (then it is left out of the encoding).
#[allow(clippy::trivially_copy_pass_by_ref)] // serde passes fields by reference
fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Booking {
    hold_id: HoldId,
    owner: OwnerId,
    seats: Vec<(u32, u32)>,
    amount_minor: i64,
    status: BookingStatus,
    payment_deadline_ms: u64,
    payment_ref: Option<String>,
    refund_ref: Option<String>,
    ticket_code: Option<String>,
    failure_reason: Option<String>,
    /// Log time of the `BeginCheckout` (0 in snapshots written before it was recorded).
    #[serde(default)]
    began_at_ms: u64,
    /// Refund owed (once cancelling) or paid (once cancelled).
    #[serde(default)]
    refund_minor: Option<i64>,
    /// Log time the cancellation was requested.
    #[serde(default)]
    cancel_requested_at_ms: u64,
}

impl Booking {
    /// Whether the booking's seats are sold to it: confirmed, or cancelling until the refund
    /// is issued.
    fn holds_seats(&self) -> bool {
        matches!(self.status, BookingStatus::Confirmed | BookingStatus::Cancelling)
    }
}

/// The replicated state of one inventory group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Log time of the last applied entry (never decreases).
    now_ms: u64,
    shows: BTreeMap<ShowId, Show>,
    holds: BTreeMap<HoldId, Hold>,
    bookings: BTreeMap<BookingId, Booking>,
    /// Active holds by expiry.
    hold_deadlines: BTreeSet<(u64, HoldId)>,
    /// Pending checkouts by payment deadline.
    checkout_deadlines: BTreeSet<(u64, BookingId)>,
    /// Ended holds by the time they are pruned.
    ended_holds: BTreeSet<(u64, HoldId)>,
    /// Outcomes by request id, keyed by digest then id; encoded as an object in id order, so
    /// snapshots and digests are the same bytes on every replica (`idempotency` module).
    idempotency: IdempotencyTable,
    /// Request ids by expiry; encoded as `[time, id]` pairs in (time, id) order.
    idempotency_expiry: ExpiryQueue,
    /// Failed checkouts for the recovery sweeper: (index of the failing entry, booking, log
    /// time it failed at), in log order; pruned after [`FAILED_CHECKOUT_RETENTION_MS`].
    #[serde(default)]
    failed_checkouts: BTreeSet<(u64, BookingId, u64)>,
    /// Bookings whose cancellation was requested but not completed: (requested at, booking).
    #[serde(default)]
    cancelling: BTreeSet<(u64, BookingId)>,
    /// Derived index of `bookings` by owner ("my bookings"); not serialized (so not in the
    /// digest or snapshots), rebuilt by [`Inventory::rebuild_indexes`] when state is loaded.
    #[serde(skip)]
    by_owner: BTreeMap<OwnerId, BTreeSet<BookingId>>,
    /// Derived: seats each owner holds on each show (active and checking-out holds), for the
    /// per-owner seat cap a `Hold` may carry. Not serialized; rebuilt with `by_owner`.
    #[serde(skip)]
    held_seats: BTreeMap<(ShowId, OwnerId), u32>,
}

impl Inventory {
    /// Earliest deadline (hold expiry or payment deadline) still pending, in log time.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let hold = self.hold_deadlines.first().map(|(at, _)| *at);
        let checkout = self.checkout_deadlines.first().map(|(at, _)| *at);
        match (hold, checkout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Log time of the last applied entry.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// FNV-1a digest of the whole state. Equal on replicas that applied the same log prefix.
    ///
    /// # Panics
    /// Never: the state has only string map keys, which JSON always encodes.
    pub fn digest(&self) -> u64 {
        Fnv1a::of_json(self).expect("inventory state serializes: all map keys are strings or ids")
    }

    /// The state as snapshot bytes (JSON; the derived indexes are left out).
    ///
    /// # Panics
    /// Never: the state has only string map keys, which JSON always encodes.
    pub fn to_snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(self)
            .expect("inventory state serializes: all map keys are strings or ids")
    }

    /// Restores a state from [`Inventory::to_snapshot`] bytes, derived indexes included.
    ///
    /// # Errors
    /// Undecodable bytes.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Inventory, crate::DecodeError> {
        let mut inventory: Inventory = serde_json::from_slice(bytes)?;
        inventory.rebuild_indexes();
        Ok(inventory)
    }

    /// Rebuilds the derived indexes after the state was decoded (snapshot install, restart).
    fn rebuild_indexes(&mut self) {
        self.by_owner.clear();
        for (id, booking) in &self.bookings {
            self.by_owner.entry(booking.owner.clone()).or_default().insert(*id);
        }
        self.held_seats.clear();
        for (id, hold) in &self.holds {
            if matches!(hold.status, HoldStatus::Active | HoldStatus::CheckingOut) {
                *self.held_seats.entry((id.show_id(), hold.owner.clone())).or_insert(0) +=
                    hold.seats.len() as u32;
            }
        }
    }

    /// Counts `seats` more (or fewer) seats held by `owner` on `show_id`.
    fn count_held(&mut self, show_id: ShowId, owner: &OwnerId, seats: usize, add: bool) {
        let key = (show_id, owner.clone());
        let count = self.held_seats.entry(key.clone()).or_insert(0);
        if add {
            *count += seats as u32;
        } else {
            *count = count.saturating_sub(seats as u32);
            if *count == 0 {
                self.held_seats.remove(&key);
            }
        }
    }

    fn create_show(
        &mut self,
        version: u32,
        show_id: ShowId,
        title: &str,
        starts_at_ms: u64,
        layout: &Layout,
    ) -> Outcome {
        if self.shows.contains_key(&show_id) {
            return Err(Rejection::ShowExists { show_id });
        }
        let show = build_show(version, title, starts_at_ms, layout)
            .map_err(|reason| Rejection::InvalidLayout { reason })?;
        let capacity = show.available;
        self.shows.insert(show_id, show);
        Ok(Reply::ShowCreated { show_id, capacity })
    }

    fn hold(
        &mut self,
        at: Pos,
        now: u64,
        show_id: ShowId,
        owner: &OwnerId,
        selection: &SeatSelection,
        limits: HoldLimits,
    ) -> Outcome {
        let held_now = self.held_seats.get(&(show_id, owner.clone())).copied().unwrap_or(0);
        let show = self.shows.get_mut(&show_id).ok_or(Rejection::ShowNotFound { show_id })?;
        if show.cancelled {
            return Err(Rejection::ShowCancelled { show_id });
        }
        let active = show.active_holds_by_owner.get(owner).copied().unwrap_or(0);
        if active >= HOLDS_PER_OWNER_MAX {
            return Err(Rejection::TooManyHolds { holds_per_owner_max: HOLDS_PER_OWNER_MAX });
        }
        let seats = match selection {
            SeatSelection::Seats(seat_ids) => pick_explicit(show, seat_ids)?,
            SeatSelection::BestAvailable { quantity, category } => {
                pick_best(show, *quantity, category)?
            }
        };
        if let Some(max) = limits.owner_seats_max {
            if held_now.saturating_add(seats.len() as u32) > max {
                return Err(Rejection::TooManySeatsHeld {
                    seats_per_owner_max: max,
                    held: held_now,
                });
            }
        }
        let hold_id = HoldId::at(show_id, at.index, at.sub);
        let ttl =
            limits.ttl_ms.unwrap_or(HOLD_TTL_MS_DEFAULT).clamp(HOLD_TTL_MS_MIN, HOLD_TTL_MS_MAX);
        let expires_at_ms = now.saturating_add(ttl);
        let mut amount_minor = 0;
        for (row, number) in &seats {
            let row = &mut show.rows[*row as usize];
            amount_minor += show.prices[&row.category];
            row.seats[*number as usize - 1] = SeatState::Held(hold_id);
        }
        show.available -= seats.len() as u32;
        show.version += 1;
        *show.active_holds_by_owner.entry(owner.clone()).or_insert(0) += 1;
        let hold = Hold {
            owner: owner.clone(),
            seats,
            amount_minor,
            expires_at_ms,
            status: HoldStatus::Active,
            booking_id: None,
            kept_declines: 0,
        };
        self.hold_deadlines.insert((expires_at_ms, hold_id));
        self.count_held(show_id, owner, hold.seats.len(), true);
        let view = self.hold_view(hold_id, &hold);
        self.holds.insert(hold_id, hold);
        Ok(Reply::Held { hold: view })
    }

    fn release(&mut self, now: u64, hold_id: HoldId, owner: &OwnerId) -> Outcome {
        let hold = self.active_hold(hold_id, owner)?;
        let expires_at_ms = hold.expires_at_ms;
        self.hold_deadlines.remove(&(expires_at_ms, hold_id));
        self.end_hold(now, hold_id, HoldStatus::Released);
        let hold = self.holds.get(&hold_id).expect("hold exists: just ended it");
        Ok(Reply::Released { hold: self.hold_view(hold_id, hold) })
    }

    fn begin_checkout(
        &mut self,
        at: Pos,
        now: u64,
        hold_id: HoldId,
        owner: &OwnerId,
        window_ms: u64,
    ) -> Outcome {
        let hold = self.active_hold(hold_id, owner)?;
        let expires_at_ms = hold.expires_at_ms;
        let booking_id = BookingId::at(hold_id.show_id(), at.index, at.sub);
        let payment_deadline_ms = now.saturating_add(window_ms.min(CHECKOUT_WINDOW_MS_MAX));
        let booking = Booking {
            hold_id,
            owner: hold.owner.clone(),
            seats: hold.seats.clone(),
            amount_minor: hold.amount_minor,
            status: BookingStatus::PendingPayment,
            payment_deadline_ms,
            payment_ref: None,
            refund_ref: None,
            ticket_code: None,
            failure_reason: None,
            began_at_ms: now,
            refund_minor: None,
            cancel_requested_at_ms: 0,
        };
        self.hold_deadlines.remove(&(expires_at_ms, hold_id));
        let hold = self.holds.get_mut(&hold_id).expect("hold exists: checked active above");
        hold.status = HoldStatus::CheckingOut;
        hold.booking_id = Some(booking_id);
        self.checkout_deadlines.insert((payment_deadline_ms, booking_id));
        self.bump(hold_id.show_id());
        let view = self.booking_view(booking_id, &booking);
        self.by_owner.entry(booking.owner.clone()).or_default().insert(booking_id);
        self.bookings.insert(booking_id, booking);
        Ok(Reply::Booking { booking: view })
    }

    fn confirm(
        &mut self,
        index: u64,
        booking_id: BookingId,
        payment_ref: &str,
        code: Option<&str>,
    ) -> Outcome {
        let booking = self.bookings.get(&booking_id).ok_or(Rejection::BookingNotFound)?;
        if booking.status != BookingStatus::PendingPayment {
            return Err(Rejection::BookingWrongState { status: booking.status });
        }
        if let Some(code) = code {
            check_ticket_code(code)?;
        }
        let (deadline, hold_id, seats) =
            (booking.payment_deadline_ms, booking.hold_id, booking.seats.clone());
        self.checkout_deadlines.remove(&(deadline, booking_id));
        let show_id = booking_id.show_id();
        let show = self.shows.get_mut(&show_id).expect("booking's show exists");
        for (row, number) in &seats {
            show.rows[*row as usize].seats[*number as usize - 1] = SeatState::Sold(booking_id);
        }
        show.version += 1;
        let hold = self.holds.get_mut(&hold_id).expect("booking's hold exists while pending");
        let owner = hold.owner.clone();
        hold.status = HoldStatus::Booked;
        decrement_owner(show, &owner);
        self.count_held(show_id, &owner, seats.len(), false);
        self.ended_holds.insert((self.now_ms.saturating_add(ENDED_HOLD_RETENTION_MS), hold_id));
        let booking = self.bookings.get_mut(&booking_id).expect("booking exists: read above");
        booking.status = BookingStatus::Confirmed;
        booking.payment_ref = Some(payment_ref.to_owned());
        booking.ticket_code =
            Some(code.map_or_else(|| legacy_ticket_code(booking_id, index), str::to_owned));
        let booking = self.bookings.get(&booking_id).expect("booking exists: updated above");
        Ok(Reply::Booking { booking: self.booking_view(booking_id, booking) })
    }

    /// Fails a pending checkout. With `keep_hold` (a declined card, command version 5) its hold
    /// becomes active again with its seats and its original expiry, unless that expiry has
    /// passed or the hold already survived [`KEPT_DECLINES_MAX`] declines: then the seats are
    /// freed as without it.
    fn fail_checkout(
        &mut self,
        index: u64,
        now: u64,
        booking_id: BookingId,
        reason: String,
        keep_hold: bool,
    ) -> Outcome {
        let booking = self.bookings.get(&booking_id).ok_or(Rejection::BookingNotFound)?;
        if booking.status != BookingStatus::PendingPayment {
            return Err(Rejection::BookingWrongState { status: booking.status });
        }
        let hold = self.holds.get(&booking.hold_id).expect("a pending booking's hold exists");
        if keep_hold && hold.expires_at_ms > now && hold.kept_declines < KEPT_DECLINES_MAX {
            self.reopen_hold(index, booking_id, reason);
        } else {
            self.fail_pending(index, booking_id, reason);
        }
        let booking = self.bookings.get(&booking_id).expect("booking exists: just failed it");
        Ok(Reply::Booking { booking: self.booking_view(booking_id, booking) })
    }

    fn request_cancel(
        &mut self,
        now: u64,
        booking_id: BookingId,
        owner: Option<&OwnerId>,
        refund_minor: i64,
        deadline_ms: u64,
    ) -> Outcome {
        let booking = self.bookings.get(&booking_id).ok_or(Rejection::BookingNotFound)?;
        if owner.is_some_and(|owner| &booking.owner != owner) {
            return Err(Rejection::NotOwner);
        }
        if booking.status != BookingStatus::Confirmed {
            return Err(Rejection::BookingWrongState { status: booking.status });
        }
        if now > deadline_ms {
            return Err(Rejection::CancellationClosed { deadline_ms });
        }
        if !(0..=booking.amount_minor).contains(&refund_minor) {
            return Err(Rejection::InvalidRefund {
                reason: format!("refund must be 0..={} minor units", booking.amount_minor),
            });
        }
        self.start_cancelling(now, booking_id, refund_minor);
        let booking = self.bookings.get(&booking_id).expect("booking exists: read above");
        Ok(Reply::Booking { booking: self.booking_view(booking_id, booking) })
    }

    fn start_cancelling(&mut self, now: u64, booking_id: BookingId, refund_minor: i64) {
        let booking = self.bookings.get_mut(&booking_id).expect("confirmed booking exists");
        booking.status = BookingStatus::Cancelling;
        booking.refund_minor = Some(refund_minor);
        booking.cancel_requested_at_ms = now;
        self.cancelling.insert((now, booking_id));
        self.bump(booking_id.show_id());
    }

    /// Cancels a show: stops sales, releases active holds, fails pending checkouts and moves
    /// confirmed bookings to `cancelling` with a full refund. A repeat does nothing.
    fn cancel_show(&mut self, index: u64, now: u64, show_id: ShowId) -> Outcome {
        let show = self.shows.get_mut(&show_id).ok_or(Rejection::ShowNotFound { show_id })?;
        if show.cancelled {
            return Ok(Reply::ShowCancelled { show_id, cancelling: Vec::new(), released: 0 });
        }
        show.cancelled = true;
        show.version += 1;
        let (first_hold, last_hold) = (HoldId::first_of(show_id), HoldId::last_of(show_id));
        let active: Vec<(HoldId, u64)> = self
            .holds
            .range(first_hold..=last_hold)
            .filter(|(_, h)| h.status == HoldStatus::Active)
            .map(|(id, h)| (*id, h.expires_at_ms))
            .collect();
        let mut released = 0u32;
        for (hold_id, expires_at_ms) in active {
            self.hold_deadlines.remove(&(expires_at_ms, hold_id));
            self.end_hold(now, hold_id, HoldStatus::Released);
            released += 1;
        }
        let (first, last) = (BookingId::first_of(show_id), BookingId::last_of(show_id));
        let bookings: Vec<(BookingId, BookingStatus, i64)> = self
            .bookings
            .range(first..=last)
            .map(|(id, b)| (*id, b.status, b.amount_minor))
            .collect();
        let mut cancelling = Vec::new();
        for (booking_id, status, amount_minor) in bookings {
            match status {
                BookingStatus::PendingPayment => {
                    self.fail_pending(index, booking_id, "show cancelled".to_owned());
                    released += 1;
                }
                BookingStatus::Confirmed => {
                    self.start_cancelling(now, booking_id, amount_minor);
                    cancelling.push(booking_id);
                }
                _ => {}
            }
        }
        Ok(Reply::ShowCancelled { show_id, cancelling, released })
    }

    fn cancel_booking(
        &mut self,
        booking_id: BookingId,
        owner: &OwnerId,
        refund_ref: &str,
    ) -> Outcome {
        let booking = self.bookings.get(&booking_id).ok_or(Rejection::BookingNotFound)?;
        if &booking.owner != owner {
            return Err(Rejection::NotOwner);
        }
        if booking.status != BookingStatus::Cancelling {
            return Err(Rejection::BookingWrongState { status: booking.status });
        }
        self.cancelling.remove(&(booking.cancel_requested_at_ms, booking_id));
        let seats = booking.seats.clone();
        let show = self.shows.get_mut(&booking_id.show_id()).expect("booking's show exists");
        free_seats(show, &seats);
        show.version += 1;
        let booking = self.bookings.get_mut(&booking_id).expect("booking exists: read above");
        booking.status = BookingStatus::Cancelled;
        booking.refund_ref = Some(refund_ref.to_owned());
        let booking = self.bookings.get(&booking_id).expect("booking exists: updated above");
        Ok(Reply::Booking { booking: self.booking_view(booking_id, booking) })
    }

    /// Expires every hold and checkout due at `now` (applying entry `index`). Returns (holds,
    /// checkouts) expired.
    fn expire_due(&mut self, index: u64, now: u64) -> (u32, u32) {
        let mut holds = 0;
        let due = now.saturating_add(crate::planted::expiry_lead_ms());
        while let Some(&(at, hold_id)) = self.hold_deadlines.first() {
            if at > due {
                break;
            }
            self.hold_deadlines.pop_first();
            self.end_hold(now, hold_id, HoldStatus::Expired);
            holds += 1;
        }
        let mut checkouts = 0;
        while let Some(&(at, booking_id)) = self.checkout_deadlines.first() {
            if at > now {
                break;
            }
            self.fail_pending(index, booking_id, "payment window expired".to_owned());
            checkouts += 1;
        }
        (holds, checkouts)
    }

    fn prune(&mut self, now: u64) {
        while let Some(&(at, hold_id)) = self.ended_holds.first() {
            if at > now {
                break;
            }
            self.ended_holds.pop_first();
            self.holds.remove(&hold_id);
        }
        while let Some(at) = self.idempotency_expiry.first_at() {
            if at > now && self.idempotency.len() <= IDEMPOTENCY_ENTRIES_MAX {
                break;
            }
            let (key, request_id) =
                self.idempotency_expiry.pop_first().expect("first_at() was Some");
            self.idempotency.remove(key, request_id);
        }
        // Log order is failure-time order (log time never decreases), so the oldest is first.
        while let Some(&(_, _, failed_at_ms)) = self.failed_checkouts.first() {
            let expired = failed_at_ms.saturating_add(FAILED_CHECKOUT_RETENTION_MS) <= now;
            if !expired && self.failed_checkouts.len() <= FAILED_CHECKOUTS_MAX {
                break;
            }
            self.failed_checkouts.pop_first();
        }
    }

    fn remember(
        &mut self,
        (key, request_id): (RequestKey, String),
        now: u64,
        fingerprint: u64,
        outcome: Outcome,
    ) {
        let expires_at_ms = now.saturating_add(IDEMPOTENCY_TTL_MS);
        self.idempotency_expiry.push(expires_at_ms, key, request_id.clone());
        let entry = IdempotencyEntry { expires_at_ms, fingerprint, outcome };
        self.idempotency.insert(key, request_id, entry);
    }

    /// Fails a pending checkout (applying entry `index`): booking failed, hold failed, seats
    /// freed, and the failure listed for the recovery sweeper.
    fn fail_pending(&mut self, index: u64, booking_id: BookingId, reason: String) {
        let booking = self.bookings.get_mut(&booking_id).expect("pending booking exists");
        assert_eq!(booking.status, BookingStatus::PendingPayment, "only pending checkouts fail");
        booking.status = BookingStatus::Failed;
        booking.failure_reason = Some(reason);
        let (deadline, hold_id) = (booking.payment_deadline_ms, booking.hold_id);
        self.checkout_deadlines.remove(&(deadline, booking_id));
        self.end_hold(self.now_ms, hold_id, HoldStatus::Failed);
        self.failed_checkouts.insert((index, booking_id, self.now_ms));
    }

    /// Fails a pending checkout but keeps its hold: the hold is active again (seats still held,
    /// counted as before) until its own expiry, and may be checked out again.
    fn reopen_hold(&mut self, index: u64, booking_id: BookingId, reason: String) {
        let booking = self.bookings.get_mut(&booking_id).expect("pending booking exists");
        booking.status = BookingStatus::Failed;
        booking.failure_reason = Some(reason);
        let (deadline, hold_id) = (booking.payment_deadline_ms, booking.hold_id);
        self.checkout_deadlines.remove(&(deadline, booking_id));
        self.failed_checkouts.insert((index, booking_id, self.now_ms));
        let hold = self.holds.get_mut(&hold_id).expect("a pending booking's hold exists");
        hold.status = HoldStatus::Active;
        hold.booking_id = None;
        hold.kept_declines += 1;
        self.hold_deadlines.insert((hold.expires_at_ms, hold_id));
        self.bump(hold_id.show_id());
    }

    /// Ends a live hold: frees its seats and schedules its pruning. The caller has removed
    /// its deadline entry.
    fn end_hold(&mut self, now: u64, hold_id: HoldId, status: HoldStatus) {
        let hold = self.holds.get_mut(&hold_id).expect("ended hold exists");
        assert!(
            matches!(hold.status, HoldStatus::Active | HoldStatus::CheckingOut),
            "only live holds end"
        );
        hold.status = status;
        let show = self.shows.get_mut(&hold_id.show_id()).expect("hold's show exists");
        free_seats(show, &hold.seats);
        decrement_owner(show, &hold.owner);
        show.version += 1;
        let (owner, seats) = (hold.owner.clone(), hold.seats.len());
        self.count_held(hold_id.show_id(), &owner, seats, false);
        self.ended_holds.insert((now.saturating_add(ENDED_HOLD_RETENTION_MS), hold_id));
    }

    fn active_hold(&self, hold_id: HoldId, owner: &OwnerId) -> Result<&Hold, Rejection> {
        let hold = self.holds.get(&hold_id).ok_or(Rejection::HoldNotFound)?;
        if &hold.owner != owner {
            return Err(Rejection::NotOwner);
        }
        match hold.status {
            HoldStatus::Active => Ok(hold),
            HoldStatus::Expired => Err(Rejection::HoldExpired),
            status => Err(Rejection::HoldNotActive { status }),
        }
    }

    fn bump(&mut self, show_id: ShowId) {
        if let Some(show) = self.shows.get_mut(&show_id) {
            show.version += 1;
        }
    }
}

fn decrement_owner(show: &mut Show, owner: &OwnerId) {
    let count = show.active_holds_by_owner.get_mut(owner).expect("live hold's owner is counted");
    *count -= 1;
    if *count == 0 {
        show.active_holds_by_owner.remove(owner);
    }
}

fn free_seats(show: &mut Show, seats: &[(u32, u32)]) {
    for (row, number) in seats {
        show.rows[*row as usize].seats[*number as usize - 1] = SeatState::Free;
    }
    show.available += seats.len() as u32;
}

/// `"{label}{number}"`, e.g. `C7`.
pub fn seat_id(label: &str, number: u32) -> SeatId {
    SeatId(format!("{label}{number}"))
}

/// Validates a layout (the same rules as the catalog's screens, [`crate::layout`]) and builds
/// the show with every seat free. Entries older than [`COMMAND_VERSION_ONE_LAYOUT_RULE`] keep
/// the uppercase-only row labels they were applied with, so a replayed log computes what the
/// old build computed.
fn build_show(
    version: u32,
    title: &str,
    starts_at_ms: u64,
    layout: &Layout,
) -> Result<Show, String> {
    if title.is_empty() || title.len() > NAME_BYTES_MAX {
        return Err(format!("title must be 1..={NAME_BYTES_MAX} bytes"));
    }
    let (prices, total) = crate::layout::check_priced(layout).map_err(|e| e.to_string())?;
    if version < COMMAND_VERSION_ONE_LAYOUT_RULE {
        if let Some(row) =
            layout.rows.iter().find(|r| !r.label.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(format!("row label {:?} must be uppercase ASCII letters", row.label));
        }
    }
    let rows = layout
        .rows
        .iter()
        .map(|row| Row {
            label: row.label.clone(),
            category: row.category.clone(),
            aisles_after: row.aisles_after.iter().copied().collect(),
            seats: vec![SeatState::Free; row.seats as usize],
        })
        .collect();
    Ok(Show {
        title: title.to_owned(),
        starts_at_ms,
        currency: layout.currency.clone(),
        prices,
        rows,
        version: 1,
        available: total,
        active_holds_by_owner: BTreeMap::new(),
        cancelled: false,
    })
}

/// What a `Hold` asks for besides its seats.
#[derive(Debug, Clone, Copy)]
struct HoldLimits {
    ttl_ms: Option<u64>,
    owner_seats_max: Option<u32>,
}

fn fingerprint(command: &Command) -> u64 {
    // A leader may clear `keep_hold` (Command::downgrade) depending on its group's replicas at
    // the moment, so a retry of the same request may arrive with or without it: the same
    // request either way.
    // Hashed as it is encoded: no buffer per command (the same value as `fnv1a` of the JSON).
    let hash = match command {
        Command::FailCheckout { booking_id, reason, keep_hold: true } => {
            let plain = Command::FailCheckout {
                booking_id: *booking_id,
                reason: reason.clone(),
                keep_hold: false,
            };
            Fnv1a::of_json(&plain)
        }
        command => Fnv1a::of_json(command),
    };
    hash.expect("commands serialize: plain data")
}

#[cfg(test)]
mod tests;
