//! The envelope of every group: the commands a client proposes, the Raft entry payload that
//! carries them, their outcomes and the reads a group answers — for inventory shards and the
//! meta group alike (meta commands and reads travel as their `Meta` variants).
//!
//! Commands travel inside Raft entries as serde-JSON of [`LogCommand`], whose `v` field versions
//! the encoding: a replica that meets a version it does not know stops loudly rather than guess.
//! Enums are externally tagged (`{"hold": {...}}`): serde decodes those without buffering, which
//! internally tagged enums need (it dominated the gateway's CPU profile).
//! Outcomes are *deterministic*: every replica applying the same entry computes the same
//! [`Outcome`], so a rejection (seats taken, hold expired…) is a committed, replayable answer,
//! never a transient error.

use serde::{Deserialize, Serialize};

use crate::ids::{BookingId, HoldId, OwnerId, SeatId, ShowId};
use crate::inventory::{
    BookingStatus, BookingView, FailedCheckout, FailedCursor, HoldStatus, HoldView, SeatMap,
    SeatSelection,
};
use crate::layout::Layout;
use crate::meta::{MetaCommand, MetaQuery, MetaQueryResult, MetaReply};

/// Version of the [`LogCommand`] encoding, and of the rules its commands are applied with,
/// written by this build. A replica applies every entry with the rules of the entry's own
/// version, so replaying an old log gives exactly the state the old build computed (the same
/// state a snapshot of it holds); a replica that meets a newer version stops rather than guess.
///
/// - 1: the first encoding.
/// - 2: a show's row labels follow the catalog's screen rule (ASCII letters of either case,
///   unique ignoring case); version 1 `CreateShow` entries keep the uppercase-only rule.
/// - 3: `Confirm` may carry the ticket code (keyed by the gateways' secret, never derivable
///   from the log) and `Hold` a per-owner seat cap; an older build would ignore both fields and
///   compute another state, so it must stop at such an entry instead.
/// - 4: [`Command::Batch`] entries: a leader coalesces concurrent proposals into one entry, and
///   the holds and bookings its later commands create get ids `{show}-{seq}-{sub}`. Entries of
///   earlier versions never carry a batch, so they apply exactly as before.
/// - 5: `FailCheckout` may keep the hold (`keep_hold`: a declined card leaves the seats held
///   for another attempt). A version 4 build would free the seats, so it must stop instead.
///
/// An entry carries the lowest version whose rules give it its meaning
/// ([`Command::version_needed`]), not always this one: an entry without version 5's field is a
/// version 4 entry, which a node of the previous release applies, so a mixed-version cluster
/// keeps working until a command needs the new rule (docs/architecture.md, "Upgrades").
pub const COMMAND_VERSION: u32 = 5;
/// The first version whose entries may carry a [`Command::Batch`].
pub const COMMAND_VERSION_BATCH: u32 = 4;
/// The first version whose `FailCheckout` may keep the hold.
pub const COMMAND_VERSION_KEEP_HOLD: u32 = 5;
/// The version of entries that need no newer rule: what the previous release writes and
/// applies (every build since batching writes at least this).
pub const COMMAND_VERSION_BASE: u32 = 4;
/// The version whose `CreateShow` takes lowercase row labels.
pub const COMMAND_VERSION_ONE_LAYOUT_RULE: u32 = 2;
/// The version whose `Confirm` carries its ticket code and whose `Hold` may cap the seats one
/// owner holds on a show.
pub const COMMAND_VERSION_KEYED_TICKETS: u32 = 3;

/// A command proposed by a client. The leader wraps it in a [`LogCommand`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Create a show with a seat layout; every seat starts free.
    CreateShow {
        /// Chosen by the proposer; rejected if it exists.
        show_id: ShowId,
        /// Display title.
        title: String,
        /// Show start, Unix milliseconds.
        starts_at_ms: u64,
        /// Seats and prices.
        layout: Layout,
    },
    /// Hold seats for an owner until `ttl_ms` after the entry's time.
    Hold {
        /// The show.
        show_id: ShowId,
        /// The holder.
        owner: OwnerId,
        /// Which seats.
        selection: SeatSelection,
        /// Hold lifetime; `None` uses the cluster default. Capped at the hard maximum.
        ttl_ms: Option<u64>,
        /// Most seats the owner may hold on this show at once, this hold included (the
        /// gateway's anti-hoarding policy, docs/api.md "Limits"); `None`: only the hard limits.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner_seats_max: Option<u32>,
    },
    /// Release an active hold early.
    Release {
        /// The hold.
        hold_id: HoldId,
        /// Must be the holder.
        owner: OwnerId,
    },
    /// Pin an active hold for a payment: creates a pending booking with the amount to charge.
    BeginCheckout {
        /// The hold to pay for.
        hold_id: HoldId,
        /// Must be the holder.
        owner: OwnerId,
        /// How long the payment may take before the checkout expires.
        window_ms: u64,
    },
    /// Payment succeeded: the pending booking becomes confirmed, its seats sold.
    Confirm {
        /// The pending booking.
        booking_id: BookingId,
        /// The payment provider's reference for the charge.
        payment_ref: String,
        /// The ticket code, computed by the gateway with a secret kept outside the log
        /// (docs/architecture.md, "Ticket codes"), so it is the same whichever gateway confirms
        /// and cannot be computed from public ids. `None` (entries before version 3, tools):
        /// the legacy code derived from the booking id and the entry's index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ticket_code: Option<String>,
    },
    /// Payment failed or was refunded: the pending booking fails and its seats are freed, or,
    /// with `keep_hold`, stay held by the hold it was paying for until that hold's own expiry.
    FailCheckout {
        /// The pending booking.
        booking_id: BookingId,
        /// Why, for the record.
        reason: String,
        /// The hold goes back to active (same seats, same expiry) instead of ending, if it has
        /// not expired meanwhile and was kept fewer than [`crate::limits::KEPT_DECLINES_MAX`] times before:
        /// the customer may pay again with another card (version 5; a leader whose group has a
        /// replica of an older build clears it, [`Command::downgrade`]).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        keep_hold: bool,
    },
    /// First step of a cancellation: a confirmed booking becomes `cancelling` with the refund
    /// it is owed, if the entry's log time is at or before `deadline_ms` (the policy's cutoff,
    /// computed by the gateway from the show's start). Its seats stay sold until the refund is
    /// issued and [`Command::CancelBooking`] completes it; the recovery sweeper finishes
    /// cancellations a crashed gateway left half done.
    RequestCancel {
        /// The booking.
        booking_id: BookingId,
        /// Must be the booker; `None` for cancellations by the theater (admin, show cancel).
        owner: Option<OwnerId>,
        /// Refund owed, 0..=amount, in the booking's currency's minor unit.
        refund_minor: i64,
        /// Last log time at which the booking may still be cancelled, Unix ms.
        deadline_ms: u64,
    },
    /// Completes a cancellation after its refund was issued: the `cancelling` booking becomes
    /// `cancelled` and its seats are freed.
    CancelBooking {
        /// The booking.
        booking_id: BookingId,
        /// Must be the booker (the sweeper passes the booking's owner).
        owner: OwnerId,
        /// Reference of the refund that was issued (empty when nothing was owed).
        refund_ref: String,
    },
    /// Cancels a show: no new holds; active holds are released, pending checkouts fail (a late
    /// charge is refunded by the saga or the sweeper) and confirmed bookings become
    /// `cancelling` with a full refund. Idempotent.
    CancelShow {
        /// The show.
        show_id: ShowId,
    },
    /// Expire holds and checkouts whose deadline is at or before the entry's time.
    ExpireDue,
    /// A change to the meta group (group 0 only; inventory groups reject it).
    Meta(MetaCommand),
    /// Several proposals carried by one log entry (version 4 on): applied in order at the
    /// entry's log time, each with its own request id and its own outcome
    /// ([`Reply::Batch`]). Only a leader forms one, from concurrent proposals to its group
    /// (docs/architecture.md, "Batching"); nodes refuse a client's batch, and a batch nested in
    /// a batch is rejected.
    Batch(Vec<Proposal>),
}

impl Command {
    /// Stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::CreateShow { .. } => "create_show",
            Command::Hold { .. } => "hold",
            Command::Release { .. } => "release",
            Command::BeginCheckout { .. } => "begin_checkout",
            Command::Confirm { .. } => "confirm",
            Command::FailCheckout { .. } => "fail_checkout",
            Command::RequestCancel { .. } => "request_cancel",
            Command::CancelBooking { .. } => "cancel_booking",
            Command::CancelShow { .. } => "cancel_show",
            Command::ExpireDue => "expire_due",
            Command::Meta(meta) => meta.kind(),
            Command::Batch(_) => "batch",
        }
    }

    /// The show a command acts on (for routing), if it names one.
    pub fn show_id(&self) -> Option<ShowId> {
        match self {
            Command::CreateShow { show_id, .. }
            | Command::Hold { show_id, .. }
            | Command::CancelShow { show_id } => Some(*show_id),
            Command::Release { hold_id, .. } | Command::BeginCheckout { hold_id, .. } => {
                Some(hold_id.show_id())
            }
            Command::Confirm { booking_id, .. }
            | Command::FailCheckout { booking_id, .. }
            | Command::RequestCancel { booking_id, .. }
            | Command::CancelBooking { booking_id, .. } => Some(booking_id.show_id()),
            Command::ExpireDue | Command::Meta(_) | Command::Batch(_) => None,
        }
    }

    /// The lowest command version whose rules give this command its meaning: what its entry
    /// must carry ([`COMMAND_VERSION`] explains the versions).
    pub fn version_needed(&self) -> u32 {
        match self {
            Command::FailCheckout { keep_hold: true, .. } => COMMAND_VERSION_KEEP_HOLD,
            Command::Batch(proposals) => proposals
                .iter()
                .map(|p| p.command.version_needed())
                .max()
                .unwrap_or(COMMAND_VERSION_BATCH)
                .max(COMMAND_VERSION_BATCH),
            _ => COMMAND_VERSION_BASE,
        }
    }

    /// Drops what a replica applying at most `version` would not understand: a `keep_hold`
    /// before [`COMMAND_VERSION_KEEP_HOLD`] (the seats are freed, as that build does). A leader
    /// does this while its group has a replica of an older build, so an upgrade never stops a
    /// node that has not been upgraded yet.
    pub fn downgrade(&mut self, version: u32) {
        match self {
            Command::FailCheckout { keep_hold, .. } if version < COMMAND_VERSION_KEEP_HOLD => {
                *keep_hold = false;
            }
            Command::Batch(proposals) => {
                for proposal in proposals {
                    proposal.command.downgrade(version);
                }
            }
            _ => {}
        }
    }

    /// Whether a leader may carry this command in a [`Command::Batch`] with others: every
    /// small inventory command. A show's creation (its layout can be large), meta commands
    /// and batches travel in entries of their own.
    pub fn batchable(&self) -> bool {
        !matches!(self, Command::CreateShow { .. } | Command::Meta(_) | Command::Batch(_))
    }
}

/// What a client sends to a leader: a command and an optional request id for idempotency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Replays with the same id return the first outcome instead of acting again.
    pub request_id: Option<String>,
    /// The command.
    pub command: Command,
}

/// The payload of a Raft entry: a proposal stamped by the leader with the log time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCommand {
    /// Encoding version, [`COMMAND_VERSION`].
    pub v: u32,
    /// Leader's wall clock when proposing, Unix ms. Apply uses `max(now_ms, previous)`.
    pub now_ms: u64,
    /// See [`Proposal::request_id`].
    pub request_id: Option<String>,
    /// The command.
    pub command: Command,
}

/// The successful result of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// `CreateShow` succeeded.
    ShowCreated {
        /// The new show.
        show_id: ShowId,
        /// Number of seats.
        capacity: u32,
    },
    /// `Hold` succeeded.
    Held {
        /// The hold.
        hold: HoldView,
    },
    /// `Release` succeeded.
    Released {
        /// The hold, now released.
        hold: HoldView,
    },
    /// `BeginCheckout`, `Confirm`, `FailCheckout` or `CancelBooking` succeeded.
    Booking {
        /// The booking in its new state.
        booking: BookingView,
    },
    /// `CancelShow` ran (or had already run).
    ShowCancelled {
        /// The show.
        show_id: ShowId,
        /// Bookings now `cancelling` (owed a full refund) that this entry moved there.
        cancelling: Vec<BookingId>,
        /// Active holds released and pending checkouts failed by this entry.
        released: u32,
    },
    /// `ExpireDue` ran.
    Expired {
        /// Holds expired by this entry.
        holds: u32,
        /// Checkouts expired by this entry.
        checkouts: u32,
    },
    /// A meta command succeeded.
    Meta(MetaReply),
    /// The outcomes of a [`Command::Batch`], one per proposal, in order.
    Batch(Vec<Outcome>),
}

/// Why a command was refused. Deterministic: committed and replayed like any result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// No such show in this group.
    #[error("show {} not found", show_id.0)]
    ShowNotFound {
        /// The show.
        show_id: ShowId,
    },
    /// `CreateShow` for an id that exists.
    #[error("show {} already exists", show_id.0)]
    ShowExists {
        /// The show.
        show_id: ShowId,
    },
    /// The layout is malformed or over the limits.
    #[error("invalid layout: {reason}")]
    InvalidLayout {
        /// What is wrong.
        reason: String,
    },
    /// Seats not in the show's layout.
    #[error("unknown seats: {}", seat_list(seats))]
    UnknownSeats {
        /// The seats.
        seats: Vec<SeatId>,
    },
    /// Seats held or sold by someone else.
    #[error("seats unavailable: {}", seat_list(seats))]
    SeatsUnavailable {
        /// The seats.
        seats: Vec<SeatId>,
    },
    /// `BestAvailable` found fewer free seats than asked.
    #[error("only {available} seats available in category {category}")]
    NotEnoughSeats {
        /// The category.
        category: String,
        /// Free seats in it.
        available: u32,
    },
    /// Category not in the show's layout.
    #[error("unknown category {category}")]
    UnknownCategory {
        /// The category.
        category: String,
    },
    /// Party empty, repeated seats, or over the maximum size.
    #[error("invalid party: {reason}")]
    InvalidParty {
        /// What is wrong.
        reason: String,
        /// Maximum party size.
        party_size_max: u32,
    },
    /// Owner already has the maximum number of active holds on this show.
    #[error("too many active holds (max {holds_per_owner_max})")]
    TooManyHolds {
        /// The limit.
        holds_per_owner_max: u32,
    },
    /// The hold would take the owner past the seats one owner may hold on the show.
    #[error("too many seats held (max {seats_per_owner_max} per show, {held} held now)")]
    TooManySeatsHeld {
        /// The limit the hold carried.
        seats_per_owner_max: u32,
        /// Seats the owner holds on the show now (active and checking-out holds).
        held: u32,
    },
    /// No such hold.
    #[error("hold not found")]
    HoldNotFound,
    /// The hold passed its expiry.
    #[error("hold expired")]
    HoldExpired,
    /// The hold is not active (released, booked, failed or in checkout).
    #[error("hold is {}", status.as_str())]
    HoldNotActive {
        /// Its state.
        status: HoldStatus,
    },
    /// The hold or booking belongs to another owner.
    #[error("not the owner")]
    NotOwner,
    /// No such booking.
    #[error("booking not found")]
    BookingNotFound,
    /// The booking is not in the state the command needs.
    #[error("booking is {}", status.as_str())]
    BookingWrongState {
        /// Its state.
        status: BookingStatus,
    },
    /// The show was cancelled: nothing can be held or bought.
    #[error("show {} was cancelled", show_id.0)]
    ShowCancelled {
        /// The show.
        show_id: ShowId,
    },
    /// The cancellation cutoff before the show has passed.
    #[error("bookings can no longer be cancelled (cutoff was {deadline_ms} ms)")]
    CancellationClosed {
        /// The cutoff, Unix ms.
        deadline_ms: u64,
    },
    /// A refund outside 0..=amount.
    #[error("invalid refund: {reason}")]
    InvalidRefund {
        /// What is wrong.
        reason: String,
    },
    /// A catalog record does not exist (`kind` is `user`, `movie`, `theater`, `screen`, `show`,
    /// `review`).
    #[error("{kind} {id} not found")]
    CatalogNotFound {
        /// Record kind.
        kind: String,
        /// Its id.
        id: u64,
    },
    /// A catalog command with invalid fields.
    #[error("invalid {field}: {reason}")]
    CatalogInvalid {
        /// The offending field (dotted path, e.g. `rows[2].label`).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A catalog command that conflicts with the current state (an id reused with different
    /// content, a layout change under scheduled shows, a cancelled show rescheduled...).
    #[error("conflict: {reason}")]
    CatalogConflict {
        /// What conflicts.
        reason: String,
    },
    /// Another account has this email.
    #[error("email already registered")]
    EmailTaken,
    /// The refresh token is unknown, expired or revoked.
    #[error("refresh token invalid")]
    RefreshTokenInvalid,
    /// The refresh token was already used: its family is now revoked.
    #[error("refresh token reused; its session was revoked")]
    RefreshTokenReused,
    /// A request id was reused with a different command.
    #[error("request id reused with a different command")]
    RequestIdReused,
    /// A meta command sent to an inventory group, or an inventory command to the meta group.
    #[error("command sent to the wrong kind of group")]
    WrongGroup,
    /// A meta command named a node the registry does not know (or one that was removed).
    #[error("node {node_id} is not registered")]
    NodeNotFound {
        /// The node.
        node_id: u64,
    },
    /// A meta command named a group the map does not know.
    #[error("group {group} not found")]
    GroupNotFound {
        /// The group.
        group: crate::GroupId,
    },
    /// A meta command that would leave the map inconsistent.
    #[error("invalid placement: {reason}")]
    InvalidPlacement {
        /// What is wrong.
        reason: String,
    },
    /// A [`Command::Batch`] inside a batch.
    #[error("a batch cannot carry a batch")]
    NestedBatch,
}

fn seat_list(seats: &[SeatId]) -> String {
    seats.iter().map(|s| s.0.as_str()).collect::<Vec<_>>().join(", ")
}

/// The committed result of a command.
pub type Outcome = Result<Reply, Rejection>;

/// A read against a group's state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Query {
    /// The seat map of a show.
    SeatMap {
        /// The show.
        show_id: ShowId,
    },
    /// One hold.
    Hold {
        /// The hold.
        hold_id: HoldId,
    },
    /// One booking.
    Booking {
        /// The booking.
        booking_id: BookingId,
    },
    /// Every booking of a show that holds seats: `confirmed` and `cancelling` (audits, sales,
    /// tests).
    ShowBookings {
        /// The show.
        show_id: ShowId,
    },
    /// Applied index and state digest of the replica.
    Digest,
    /// Checkouts a recovery sweeper should settle (the gateway's `sweeper`): pending checkouts
    /// that began at or before `before_ms`, and checkouts that failed (by expiry or
    /// `FailCheckout`) at or before `before_ms`, after the cursor `failed_after`, oldest first.
    /// Failed checkouts are listed for a retention window of log time (see raft-store limits).
    StaleCheckouts {
        /// Cut-off, Unix ms, compared with the log time the checkout began or failed at.
        before_ms: u64,
        /// Resume the failed list after this cursor (exclusive); `None` starts at the oldest.
        failed_after: Option<FailedCursor>,
        /// At most this many of each list; the state machine caps it at its own maximum.
        limit: u32,
    },
    /// The most recent bookings of one owner in this group (any status), newest first. Every
    /// shard answers for its own shows; the gateway merges them ("my bookings").
    OwnerBookings {
        /// The owner.
        owner: OwnerId,
        /// At most this many; the state machine caps it at its own maximum.
        limit: u32,
    },
    /// A read of the meta group (group 0 only).
    Meta(MetaQuery),
}

impl Query {
    /// The show a read is about (for routing), if it names one.
    pub fn show_id(&self) -> Option<ShowId> {
        match self {
            Query::SeatMap { show_id } | Query::ShowBookings { show_id } => Some(*show_id),
            Query::Hold { hold_id } => Some(hold_id.show_id()),
            Query::Booking { booking_id } => Some(booking_id.show_id()),
            Query::Digest
            | Query::StaleCheckouts { .. }
            | Query::OwnerBookings { .. }
            | Query::Meta(_) => None,
        }
    }
}

/// The answer to a [`Query`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryResult {
    /// For [`Query::SeatMap`].
    SeatMap {
        /// The map.
        seat_map: SeatMap,
    },
    /// For [`Query::Hold`].
    Hold {
        /// The hold.
        hold: HoldView,
    },
    /// For [`Query::Booking`].
    Booking {
        /// The booking.
        booking: BookingView,
    },
    /// For [`Query::ShowBookings`].
    Bookings {
        /// Confirmed bookings, ordered by id.
        bookings: Vec<BookingView>,
    },
    /// For [`Query::Digest`].
    Digest {
        /// Last applied log index.
        applied_index: u64,
        /// FNV-1a digest of the state.
        digest: u64,
    },
    /// For [`Query::StaleCheckouts`].
    StaleCheckouts {
        /// Pending checkouts, by payment deadline.
        pending: Vec<BookingView>,
        /// Bookings in `cancelling` whose cancellation was requested at or before `before_ms`
        /// (their refund and `CancelBooking` still have to run), by booking id.
        #[serde(default)]
        cancelling: Vec<BookingView>,
        /// Failed checkouts after the cursor, oldest first.
        failed: Vec<FailedCheckout>,
    },
    /// The show, hold or booking does not exist on this group.
    NotFound,
    /// The answer to a meta read.
    Meta(MetaQueryResult),
}

impl Rejection {
    /// Stable snake_case name of the variant (its wire tag), for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::ShowNotFound { .. } => "show_not_found",
            Rejection::ShowExists { .. } => "show_exists",
            Rejection::InvalidLayout { .. } => "invalid_layout",
            Rejection::UnknownSeats { .. } => "unknown_seats",
            Rejection::SeatsUnavailable { .. } => "seats_unavailable",
            Rejection::NotEnoughSeats { .. } => "not_enough_seats",
            Rejection::UnknownCategory { .. } => "unknown_category",
            Rejection::InvalidParty { .. } => "invalid_party",
            Rejection::TooManyHolds { .. } => "too_many_holds",
            Rejection::TooManySeatsHeld { .. } => "too_many_seats_held",
            Rejection::HoldNotFound => "hold_not_found",
            Rejection::HoldExpired => "hold_expired",
            Rejection::HoldNotActive { .. } => "hold_not_active",
            Rejection::NotOwner => "not_owner",
            Rejection::BookingNotFound => "booking_not_found",
            Rejection::BookingWrongState { .. } => "booking_wrong_state",
            Rejection::ShowCancelled { .. } => "show_cancelled",
            Rejection::CancellationClosed { .. } => "cancellation_closed",
            Rejection::InvalidRefund { .. } => "invalid_refund",
            Rejection::CatalogNotFound { .. } => "catalog_not_found",
            Rejection::CatalogInvalid { .. } => "catalog_invalid",
            Rejection::CatalogConflict { .. } => "catalog_conflict",
            Rejection::EmailTaken => "email_taken",
            Rejection::RefreshTokenInvalid => "refresh_token_invalid",
            Rejection::RefreshTokenReused => "refresh_token_reused",
            Rejection::RequestIdReused => "request_id_reused",
            Rejection::WrongGroup => "wrong_group",
            Rejection::NodeNotFound { .. } => "node_not_found",
            Rejection::GroupNotFound { .. } => "group_not_found",
            Rejection::InvalidPlacement { .. } => "invalid_placement",
            Rejection::NestedBatch => "nested_batch",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_command_json_is_versioned() {
        let cmd = LogCommand {
            v: COMMAND_VERSION,
            now_ms: 5,
            request_id: Some("r1".into()),
            command: Command::ExpireDue,
        };
        let json = serde_json::to_value(&cmd).unwrap();
        assert_eq!(json["v"], COMMAND_VERSION);
        assert_eq!(json["command"], "expire_due");
        let back: LogCommand = serde_json::from_value(json).unwrap();
        assert_eq!(back, cmd);
        // Entries written by version 1 builds still decode.
        let old: LogCommand =
            serde_json::from_str(r#"{"v":1,"now_ms":5,"request_id":null,"command":"expire_due"}"#)
                .unwrap();
        assert_eq!((old.v, old.command), (1, Command::ExpireDue));
    }

    #[test]
    fn rejection_kind_is_its_wire_tag() {
        let samples = [
            Rejection::ShowNotFound { show_id: ShowId(1) },
            Rejection::ShowExists { show_id: ShowId(1) },
            Rejection::InvalidLayout { reason: String::new() },
            Rejection::UnknownSeats { seats: vec![] },
            Rejection::SeatsUnavailable { seats: vec![] },
            Rejection::NotEnoughSeats { category: String::new(), available: 0 },
            Rejection::UnknownCategory { category: String::new() },
            Rejection::InvalidParty { reason: String::new(), party_size_max: 1 },
            Rejection::TooManyHolds { holds_per_owner_max: 1 },
            Rejection::TooManySeatsHeld { seats_per_owner_max: 1, held: 1 },
            Rejection::HoldNotFound,
            Rejection::HoldExpired,
            Rejection::HoldNotActive { status: HoldStatus::Active },
            Rejection::NotOwner,
            Rejection::BookingNotFound,
            Rejection::BookingWrongState { status: BookingStatus::Failed },
            Rejection::ShowCancelled { show_id: ShowId(1) },
            Rejection::CancellationClosed { deadline_ms: 0 },
            Rejection::InvalidRefund { reason: String::new() },
            Rejection::CatalogNotFound { kind: String::new(), id: 0 },
            Rejection::CatalogInvalid { field: String::new(), reason: String::new() },
            Rejection::CatalogConflict { reason: String::new() },
            Rejection::EmailTaken,
            Rejection::RefreshTokenInvalid,
            Rejection::RefreshTokenReused,
            Rejection::RequestIdReused,
            Rejection::WrongGroup,
            Rejection::NodeNotFound { node_id: 1 },
            Rejection::GroupNotFound { group: crate::GroupId(1) },
            Rejection::InvalidPlacement { reason: String::new() },
        ];
        for rejection in samples {
            let json = serde_json::to_value(&rejection).unwrap();
            let tag = json
                .as_str()
                .map(str::to_owned)
                .or_else(|| json.as_object().and_then(|o| o.keys().next().cloned()))
                .unwrap();
            assert_eq!(rejection.kind(), tag);
        }
    }
}
