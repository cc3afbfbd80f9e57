//! The inventory vocabulary shared by the state machine (in `raft-store`) and its clients (the
//! gateway): identifiers, seat layouts, commands, their outcomes and read queries.
//!
//! Commands travel inside Raft entries as serde-JSON of [`LogCommand`], whose `v` field versions
//! the encoding. Enums are externally tagged (`{"hold": {...}}`): serde decodes those without
//! buffering, which internally tagged enums need (it dominated the gateway's CPU profile): a replica that meets a version it does not know stops loudly rather than guess.
//! Outcomes are *deterministic*: every replica applying the same entry computes the same
//! [`Outcome`], so a rejection (seats taken, hold expired…) is a committed, replayable answer,
//! never a transient error.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Version of the [`LogCommand`] encoding written by this build.
pub const COMMAND_VERSION: u32 = 1;

/// A show (one screening or performance). Chosen by the proposer, unique cluster-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct ShowId(pub u64);

/// A seat within a show's layout, e.g. `C7` (row label + number).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct SeatId(pub String);

/// Who holds or booked seats: `u{user_id}` of the authenticated account (the gateway derives
/// it from the access token; clients never choose it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct OwnerId(pub String);

/// Identifies an object created by a log entry: the show it belongs to (for routing) and the
/// index of the entry that created it (unique within the show's group). Rendered `"{show}-{seq}"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryRef {
    /// The show the object belongs to.
    pub show_id: ShowId,
    /// Log index of the entry that created the object.
    pub seq: u64,
}

macro_rules! entry_ref_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub EntryRef);

        impl $name {
            /// Builds the id from the show and the creating entry's log index.
            pub fn new(show_id: ShowId, seq: u64) -> Self {
                Self(EntryRef { show_id, seq })
            }
            /// The show this object belongs to.
            pub fn show_id(&self) -> ShowId {
                self.0.show_id
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}-{}", self.0.show_id.0, self.0.seq)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let (show, seq) = s.split_once('-').ok_or(ParseIdError)?;
                let show = show.parse::<u64>().map_err(|_| ParseIdError)?;
                let seq = seq.parse::<u64>().map_err(|_| ParseIdError)?;
                Ok(Self::new(ShowId(show), seq))
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some("^[0-9]+-[0-9]+$"))
                    .description(Some("`{show_id}-{seq}`: the show and the log index that created it"))
                    .examples([serde_json::json!("7-42")])
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

entry_ref_id!(
    /// A hold on seats, created by a `Hold` entry.
    HoldId
);
entry_ref_id!(
    /// A booking, created by a `BeginCheckout` entry.
    BookingId
);

/// A string that is not a valid `{show}-{seq}` id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed id: expected \"<show>-<seq>\" with two unsigned integers")]
pub struct ParseIdError;

/// Money in minor units (paise, cents) of one currency.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Money {
    /// Amount in the currency's minor unit.
    pub amount_minor: i64,
    /// ISO 4217 code, e.g. `INR`.
    pub currency: String,
}

/// A seat category and its price for one show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CategorySpec {
    /// Category name, e.g. `premium`.
    pub name: String,
    /// Price of one seat, in the show currency's minor unit.
    pub price_minor: i64,
}

/// One row of seats. Seats are numbered 1..=`seats` and identified `"{label}{number}"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RowSpec {
    /// Row label, e.g. `A`. ASCII letters only, so seat ids parse unambiguously.
    pub label: String,
    /// Category of every seat in this row.
    pub category: String,
    /// Number of seats in the row.
    pub seats: u32,
    /// Seat numbers after which an aisle or gap breaks adjacency.
    #[serde(default)]
    pub aisles_after: Vec<u32>,
}

/// A show's seat layout and prices, fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Layout {
    /// Rows in order from the screen/stage backwards.
    pub rows: Vec<RowSpec>,
    /// Categories with prices; every row's category must be listed.
    pub categories: Vec<CategorySpec>,
    /// ISO 4217 currency of all prices.
    pub currency: String,
}

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
    },
    /// Payment failed or was refunded: the pending booking fails and its seats are freed.
    FailCheckout {
        /// The pending booking.
        booking_id: BookingId,
        /// Why, for the record.
        reason: String,
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
    Meta(crate::meta::MetaCommand),
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
            Command::ExpireDue | Command::Meta(_) => None,
        }
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
    /// Cancellation requested ([`Command::RequestCancel`]): the refund is being issued; seats
    /// are still sold.
    Cancelling,
    /// Cancelled after confirmation and refunded; seats freed.
    Cancelled,
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
    /// Code printed on the ticket once confirmed (derived from the log, not random).
    pub ticket_code: Option<String>,
    /// Why a booking failed.
    pub failure_reason: Option<String>,
    /// Log time the checkout began, Unix ms (0 for bookings recorded before it was kept).
    #[serde(default)]
    pub created_at_ms: u64,
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
    Meta(crate::meta::MetaReply),
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
    /// No such hold.
    #[error("hold not found")]
    HoldNotFound,
    /// The hold passed its expiry.
    #[error("hold expired")]
    HoldExpired,
    /// The hold is not active (released, booked, failed or in checkout).
    #[error("hold is {}", snake(status))]
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
    #[error("booking is {}", snake(status))]
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
}

fn seat_list(seats: &[SeatId]) -> String {
    seats.iter().map(|s| s.0.as_str()).collect::<Vec<_>>().join(", ")
}

/// The snake_case wire name of a status enum, for messages.
fn snake<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
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
    Meta(crate::meta::MetaQuery),
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

/// A checkout that failed, as listed by [`Query::StaleCheckouts`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedCheckout {
    /// Its position, to resume the scan after it.
    pub cursor: FailedCursor,
    /// Log time it failed at, Unix ms.
    pub failed_at_ms: u64,
    /// The booking (status `failed`, which is final).
    pub booking: BookingView,
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
    Meta(crate::meta::MetaQueryResult),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_strings_and_json() {
        let id = HoldId::new(ShowId(42), 7);
        assert_eq!(id.to_string(), "42-7");
        assert_eq!("42-7".parse::<HoldId>(), Ok(id));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"42-7\"");
        assert_eq!(serde_json::from_str::<HoldId>(&json).unwrap(), id);
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in ["", "42", "-7", "42-", "a-1", "1-b", "1-2-3", "18446744073709551616-1"] {
            assert!(bad.parse::<BookingId>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn log_command_json_is_versioned() {
        let cmd = LogCommand {
            v: COMMAND_VERSION,
            now_ms: 5,
            request_id: Some("r1".into()),
            command: Command::ExpireDue,
        };
        let json = serde_json::to_value(&cmd).unwrap();
        assert_eq!(json["v"], 1);
        assert_eq!(json["command"], "expire_due");
        let back: LogCommand = serde_json::from_value(json).unwrap();
        assert_eq!(back, cmd);
    }
}
