//! The wire contract's bounds: what a proposer, a gateway or a tool may send to a group, and the
//! most a read returns. The state machines enforce every one of them on apply (a command over a
//! bound is rejected deterministically); the gateway imports the same constants to refuse the
//! request at the edge with a clear error before it costs a Raft entry. Bounds that only shape a
//! state machine's own memory (retention windows, table sizes) live with the state machine.

/// Largest gRPC message a node or gateway accepts or sends.
pub const GRPC_MESSAGE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Seats in one party (one hold).
pub const PARTY_SIZE_MAX: u32 = 10;
/// Active holds (including checkouts) one owner may have on one show.
pub const HOLDS_PER_OWNER_MAX: u32 = 2;
/// Default hold lifetime: 10 minutes.
pub const HOLD_TTL_MS_DEFAULT: u64 = 10 * 60 * 1000;
/// Longest hold lifetime a proposer may ask for: 2 hours.
pub const HOLD_TTL_MS_MAX: u64 = 2 * 60 * 60 * 1000;
/// Shortest hold lifetime: 1 second (tests use short holds).
pub const HOLD_TTL_MS_MIN: u64 = 1000;
/// Declined payments one hold survives (`FailCheckout { keep_hold }`): after this many its
/// next failed checkout frees the seats, so one card that is always declined cannot keep
/// seats off sale by retrying, nor pile up failed bookings, beyond a few attempts.
pub const KEPT_DECLINES_MAX: u32 = 3;
/// Longest payment window of a checkout: 15 minutes.
pub const CHECKOUT_WINDOW_MS_MAX: u64 = 15 * 60 * 1000;
/// Longest ticket code a `Confirm` may carry (ASCII letters and digits).
pub const TICKET_CODE_BYTES_MAX: usize = 32;
/// Longest request id accepted.
pub const REQUEST_ID_BYTES_MAX: usize = 128;
/// Most entries of each list one `StaleCheckouts` read returns.
pub const STALE_CHECKOUTS_LIMIT_MAX: u32 = 1_000;
/// Most bookings one `OwnerBookings` read returns.
pub const OWNER_BOOKINGS_MAX: u32 = 100;

/// Rows in a layout.
pub const ROWS_MAX: usize = 300;
/// Seats in one row.
pub const ROW_SEATS_MAX: u32 = 200;
/// Seats in a layout: a stadium of 40 000 seats (the flash-sale benchmark) fits.
pub const SHOW_SEATS_MAX: u32 = 50_000;
/// Categories in a layout.
pub const CATEGORIES_MAX: usize = 16;
/// Length of a title, owner id, category name or row label.
pub const NAME_BYTES_MAX: usize = 200;
/// Longest row label (ASCII letters).
pub const ROW_LABEL_BYTES_MAX: usize = 3;
/// Highest seat price in minor units (keeps sums far from overflow).
pub const PRICE_MINOR_MAX: i64 = 100_000_000;

/// Bytes of a node's advertised address.
pub const NODE_ADDR_BYTES_MAX: usize = 256;
/// Longest node zone label (`marquee-node --zone`).
pub const NODE_ZONE_BYTES_MAX: usize = 64;

/// Longest movie description or review text.
pub const CATALOG_TEXT_BYTES_MAX: usize = 4_000;
/// Most theaters one manager runs.
pub const CATALOG_LIST_MAX: usize = 1_000;
/// Most items one catalog list read returns.
pub const CATALOG_PAGE_MAX: u32 = 100;
/// Longest email address (RFC 5321 path limit).
pub const EMAIL_BYTES_MAX: usize = 254;
/// Longest poster URL.
pub const URL_BYTES_MAX: usize = 2_048;
/// Longest display name of a user.
pub const USER_NAME_BYTES_MAX: usize = 100;
/// Most changes (or movie ids) one change-feed read returns.
pub const CHANGE_FEED_READ_MAX: u32 = 1_000;

/// Largest show (and catalog record) id: JavaScript's `Number.MAX_SAFE_INTEGER`, so browsers
/// read ids exactly.
pub const SHOW_ID_MAX: u64 = (1 << 53) - 1;

const _: () = assert!(PARTY_SIZE_MAX <= ROW_SEATS_MAX);
const _: () =
    assert!(HOLD_TTL_MS_MIN <= HOLD_TTL_MS_DEFAULT && HOLD_TTL_MS_DEFAULT <= HOLD_TTL_MS_MAX);
const _: () = assert!((SHOW_SEATS_MAX as i64) * PRICE_MINOR_MAX < i64::MAX / 2);
