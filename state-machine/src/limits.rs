//! The domain limits the state machines enforce. The bounds of the wire contract (party size,
//! hold lifetimes, layout and text sizes, read sizes) come from [`proto::limits`], shared with
//! the gateway, which refuses the same inputs at the edge; the bounds below shape only the state
//! machines' own memory (retention windows, table sizes) and never reach a client.
//!
//! Config may lower a bound, never raise it past these hard maxima.

pub use proto::limits::*;

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

/// Nodes the meta registry holds (removed ones included).
pub const META_NODES_MAX: usize = 1_000;
/// Groups the shard map holds.
pub const META_GROUPS_MAX: usize = 4_096;

/// Refresh-token families (signed-in sessions) one user keeps; a new login beyond this drops the
/// oldest session, bounding the tokens a user can make the meta group remember.
pub const REFRESH_FAMILIES_PER_USER_MAX: usize = 20;
/// Changes the catalog change feed keeps (older ones are dropped; a reader behind them
/// rebuilds from the current state).
pub const CHANGE_FEED_MAX: usize = 100_000;
