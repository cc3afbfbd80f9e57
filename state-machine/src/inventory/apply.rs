//! Applying an entry: the version check, the entry's expiry pass, then each command (one, or
//! every proposal of a leader's batch, docs/architecture.md "Batching") with its request id
//! replayed or remembered.

use proto::command::{
    Command, LogCommand, Outcome, Rejection, Reply, COMMAND_VERSION, COMMAND_VERSION_KEEP_HOLD,
};

use super::*;

/// Where a command sits in the log: its entry's index and its position in the entry's batch
/// (0 for an entry's only command). Holds and bookings take their ids from it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pos {
    pub(super) index: u64,
    pub(super) sub: u32,
}

impl Inventory {
    /// Applies one entry at log index `index` and returns its outcome (for a
    /// [`Command::Batch`], a [`Reply::Batch`] with one outcome per proposal).
    ///
    /// # Panics
    /// If the entry's encoding version is newer than this build understands: a replica must
    /// stop rather than guess (docs/architecture.md, "Upgrades").
    pub fn apply(&mut self, index: u64, entry: &LogCommand) -> Outcome {
        assert!(
            entry.v <= COMMAND_VERSION,
            "log entry {index} has command version {} but this build knows up to {COMMAND_VERSION}; \
             upgrade this node",
            entry.v
        );
        self.now_ms = self.now_ms.max(entry.now_ms);
        let now = self.now_ms;
        let expired = self.expire_due(index, now);
        self.prune(now);
        match &entry.command {
            Command::Batch(proposals) => {
                let outcomes = proposals
                    .iter()
                    .zip(0u32..)
                    .map(|(proposal, sub)| {
                        let at = Pos { index, sub };
                        let request_id = proposal.request_id.as_ref();
                        // The entry's expiry ran before its first command: an `ExpireDue`
                        // later in the batch expired nothing itself, as in an entry of its own.
                        let expired = if sub == 0 { expired } else { (0, 0) };
                        self.apply_one(entry.v, at, now, request_id, &proposal.command, expired)
                    })
                    .collect();
                Ok(Reply::Batch(outcomes))
            }
            command => {
                let at = Pos { index, sub: 0 };
                self.apply_one(entry.v, at, now, entry.request_id.as_ref(), command, expired)
            }
        }
    }

    /// Applies one command (an entry's, or one of a batch's) at position `at`, answering a
    /// replayed request id with its first outcome.
    fn apply_one(
        &mut self,
        version: u32,
        at: Pos,
        now: u64,
        request_id: Option<&String>,
        command: &Command,
        expired: (u32, u32),
    ) -> Outcome {
        let index = at.index;
        // A command with a request id is fingerprinted and its id hashed once, here.
        let keyed = request_id.map(|id| (RequestKey::of(id), id, fingerprint(command)));
        if let Some((key, request_id, fingerprint)) = keyed {
            if let Some(previous) = self.idempotency.get(key, request_id) {
                if previous.fingerprint != fingerprint {
                    return Err(Rejection::RequestIdReused);
                }
                return self.replayed(command, &previous.outcome);
            }
        }

        let outcome = match command {
            Command::CreateShow { show_id, title, starts_at_ms, layout } => {
                self.create_show(version, *show_id, title, *starts_at_ms, layout)
            }
            Command::Hold { show_id, owner, selection, ttl_ms, owner_seats_max } => {
                let limits = HoldLimits { ttl_ms: *ttl_ms, owner_seats_max: *owner_seats_max };
                self.hold(at, now, *show_id, owner, selection, limits)
            }
            Command::Release { hold_id, owner } => self.release(now, *hold_id, owner),
            Command::BeginCheckout { hold_id, owner, window_ms } => {
                self.begin_checkout(at, now, *hold_id, owner, *window_ms)
            }
            Command::Confirm { booking_id, payment_ref, ticket_code } => {
                self.confirm(index, *booking_id, payment_ref, ticket_code.as_deref())
            }
            Command::FailCheckout { booking_id, reason, keep_hold } => {
                // Only a version 5 entry keeps the hold (an older one never carries the field).
                let keep = *keep_hold && version >= COMMAND_VERSION_KEEP_HOLD;
                self.fail_checkout(index, now, *booking_id, reason.clone(), keep)
            }
            Command::CancelBooking { booking_id, owner, refund_ref } => {
                self.cancel_booking(*booking_id, owner, refund_ref)
            }
            Command::RequestCancel { booking_id, owner, refund_minor, deadline_ms } => {
                self.request_cancel(now, *booking_id, owner.as_ref(), *refund_minor, *deadline_ms)
            }
            Command::CancelShow { show_id } => self.cancel_show(index, now, *show_id),
            Command::ExpireDue => Ok(Reply::Expired { holds: expired.0, checkouts: expired.1 }),
            Command::Meta(_) => Err(Rejection::WrongGroup),
            Command::Batch(_) => Err(Rejection::NestedBatch),
        };

        if let Some((key, request_id, fingerprint)) = keyed {
            if request_id.len() <= REQUEST_ID_BYTES_MAX {
                self.remember((key, request_id.clone()), now, fingerprint, outcome.clone());
            }
        }
        outcome
    }

    /// The answer to a replayed request id: the first outcome, except that a replayed
    /// `BeginCheckout` whose first outcome was a booking answers the booking as it is now. The
    /// saga replays `BeginCheckout` when a client retries `POST /v1/bookings` under the same
    /// `Idempotency-Key`, and must learn that the attempt already failed (a declined card) or
    /// was confirmed before it charges again (docs/architecture.md, "Booking saga"). Nothing
    /// changes either way, so this is still deterministic and acts at most once (invariant 6).
    fn replayed(&self, command: &Command, first: &Outcome) -> Outcome {
        if let (Command::BeginCheckout { .. }, Ok(Reply::Booking { booking })) = (command, first) {
            if let Some(now) = self.bookings.get(&booking.booking_id) {
                return Ok(Reply::Booking { booking: self.booking_view(booking.booking_id, now) });
            }
        }
        first.clone()
    }
}
