//! Bounds of the storage and the inventory state machine. Config may lower a bound, never
//! raise it past these hard maxima.

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
/// Longest payment window of a checkout: 15 minutes.
pub const CHECKOUT_WINDOW_MS_MAX: u64 = 15 * 60 * 1000;
/// How long ended holds stay readable before they are pruned: 1 hour of log time.
pub const ENDED_HOLD_RETENTION_MS: u64 = 60 * 60 * 1000;
/// How long an idempotency entry answers replays: 24 hours of log time.
pub const IDEMPOTENCY_TTL_MS: u64 = 24 * 60 * 60 * 1000;
/// Idempotency entries per group; the oldest are evicted first beyond this. Each entry keeps a
/// full outcome (a few hundred bytes) in memory and in every snapshot, so this bounds both.
/// Clients must tolerate a replay after eviction (the gateway's saga does).
pub const IDEMPOTENCY_ENTRIES_MAX: usize = 250_000;
/// How long failed checkouts stay listed for the recovery sweeper: 1 hour of log time.
pub const FAILED_CHECKOUT_RETENTION_MS: u64 = 60 * 60 * 1000;
/// Failed checkouts listed for the sweeper per group; the oldest are dropped first beyond this.
pub const FAILED_CHECKOUTS_MAX: usize = 100_000;
/// Most entries of each list one `StaleCheckouts` read returns.
pub const STALE_CHECKOUTS_LIMIT_MAX: u32 = 1_000;
/// Most bookings one `OwnerBookings` read returns.
pub const OWNER_BOOKINGS_MAX: u32 = 100;
/// Longest request id accepted.
pub const REQUEST_ID_BYTES_MAX: usize = 128;
/// Rows in a layout.
pub const ROWS_MAX: usize = 100;
/// Seats in one row.
pub const ROW_SEATS_MAX: u32 = 200;
/// Seats in a layout.
pub const SHOW_SEATS_MAX: u32 = 10_000;
/// Categories in a layout.
pub const CATEGORIES_MAX: usize = 16;
/// Length of a title, owner id, category name or row label.
pub const NAME_BYTES_MAX: usize = 200;
/// Longest row label (ASCII letters).
pub const ROW_LABEL_BYTES_MAX: usize = 3;
/// Highest seat price in minor units (keeps sums far from overflow).
pub const PRICE_MINOR_MAX: i64 = 100_000_000;

/// Writes queued for the writer thread before proposers wait (backpressure).
pub const WRITER_QUEUE_CAPACITY: usize = 4096;
/// Bytes merged into one synced batch.
pub const WRITER_BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;

const _: () = assert!(PARTY_SIZE_MAX <= ROW_SEATS_MAX);
const _: () =
    assert!(HOLD_TTL_MS_MIN <= HOLD_TTL_MS_DEFAULT && HOLD_TTL_MS_DEFAULT <= HOLD_TTL_MS_MAX);
const _: () = assert!((SHOW_SEATS_MAX as i64) * PRICE_MINOR_MAX < i64::MAX / 2);

/// Nodes the meta registry holds (removed ones included).
pub const META_NODES_MAX: usize = 1_000;
/// Groups the shard map holds.
pub const META_GROUPS_MAX: usize = 4_096;
/// Bytes of a node's advertised address.
pub const NODE_ADDR_BYTES_MAX: usize = 256;

/// Longest movie description or review text.
pub const CATALOG_TEXT_BYTES_MAX: usize = 4_000;
/// Most items one catalog list read returns.
pub const CATALOG_PAGE_MAX: u32 = 100;
/// Most theaters one manager runs.
pub const CATALOG_LIST_MAX: usize = 1_000;
/// Longest email address (RFC 5321 path limit).
pub const EMAIL_BYTES_MAX: usize = 254;
/// Longest poster URL.
pub const URL_BYTES_MAX: usize = 2_048;
/// Longest display name of a user.
pub const USER_NAME_BYTES_MAX: usize = 100;
/// Refresh-token families (signed-in sessions) one user keeps; a new login beyond this drops the
/// oldest session, bounding the tokens a user can make the meta group remember.
pub const REFRESH_FAMILIES_PER_USER_MAX: usize = 20;
/// Changes the catalog change feed keeps (older ones are dropped; a reader behind them
/// rebuilds from the current state).
pub const CHANGE_FEED_MAX: usize = 100_000;
/// Most changes (or movie ids) one read returns.
pub const CHANGE_FEED_READ_MAX: u32 = 1_000;
