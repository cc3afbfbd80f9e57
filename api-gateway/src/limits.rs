//! Bounds enforced at the edge, before anything reaches the cluster. Bounds the state machines
//! enforce too are imported from `proto::limits`, never copied.

use proto::limits::{HOLD_TTL_MS_MAX, HOLD_TTL_MS_MIN, REQUEST_ID_BYTES_MAX};

/// Largest request body accepted.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// Longest owner id the gateway derives (`u` and a user id; keeps derived request ids under
/// the node's request-id cap).
pub const OWNER_BYTES_MAX: usize = 48;
/// Longest `Idempotency-Key`.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 64;
/// Seats in one hold (the state machine's limit, checked here first for a clearer error).
pub const PARTY_SIZE_MAX: usize = proto::limits::PARTY_SIZE_MAX as usize;
/// Largest show id: JavaScript's `Number.MAX_SAFE_INTEGER`, so browsers read ids exactly.
pub use proto::limits::SHOW_ID_MAX;
/// Shortest hold a client may ask for.
pub const TTL_MS_MIN: u64 = HOLD_TTL_MS_MIN;
/// Longest hold a client may ask for (staff; customers get `--hold-ttl-max-ms`).
pub const TTL_MS_MAX: u64 = HOLD_TTL_MS_MAX;
/// Highest `--hold-seats-per-account-max`: what the hard limits allow anyway (two holds of a
/// full party).
pub const HOLD_SEATS_PER_ACCOUNT_HARD_MAX: u32 =
    proto::limits::PARTY_SIZE_MAX * proto::limits::HOLDS_PER_OWNER_MAX;

/// Checkouts of each kind (pending, failed) the recovery sweeper settles per shard per pass.
pub const SWEEP_BATCH_MAX: u32 = 100;
/// Shortest age before the sweeper settles a pending checkout (keeps it off live sagas).
pub const SWEEP_MIN_AGE_MS_MIN: u64 = 1_000;

// The longest request id the gateway derives (`bk:` owner `:` key and a step suffix) fits.
const _: () =
    assert!(3 + OWNER_BYTES_MAX + 1 + IDEMPOTENCY_KEY_BYTES_MAX + 8 <= REQUEST_ID_BYTES_MAX);
