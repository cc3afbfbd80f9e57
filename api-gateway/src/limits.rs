//! Bounds enforced at the edge, before anything reaches the cluster.

/// Largest request body accepted.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// Longest owner id the gateway derives (`u` and a user id; keeps derived request ids under
/// the node's 128-byte cap).
pub const OWNER_BYTES_MAX: usize = 48;
/// Longest `Idempotency-Key`.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 64;
/// Seats in one hold (mirrors the state machine's limit; the state machine enforces it too).
pub const PARTY_SIZE_MAX: usize = 10;
/// Largest show id: JavaScript's `Number.MAX_SAFE_INTEGER`, so browsers read ids exactly.
pub const SHOW_ID_MAX: u64 = client::RECORD_ID_MAX;
/// Shortest hold a client may ask for.
pub const TTL_MS_MIN: u64 = 1_000;
/// Longest hold a client may ask for.
pub const TTL_MS_MAX: u64 = 2 * 60 * 60 * 1000;

/// Checkouts of each kind (pending, failed) the recovery sweeper settles per shard per pass.
pub const SWEEP_BATCH_MAX: u32 = 100;
/// Shortest age before the sweeper settles a pending checkout (keeps it off live sagas).
pub const SWEEP_MIN_AGE_MS_MIN: u64 = 1_000;

const _: () = assert!(3 + OWNER_BYTES_MAX + 1 + IDEMPOTENCY_KEY_BYTES_MAX + 8 <= 128);
