//! Bounds of the sandbox payment service: every input, list and wait is capped here.

/// Largest request body accepted.
pub const BODY_BYTES_MAX: usize = 16 * 1024;
/// Longest idempotency key (charge or refund) and charge reference.
pub const KEY_BYTES_MAX: usize = 128;
/// Longest payment token.
pub const TOKEN_BYTES_MAX: usize = 200;
/// Largest amount of one charge or refund, in minor units.
pub const AMOUNT_MINOR_MAX: i64 = 1_000_000_000_000;
/// Charges the ledger holds; further new charges are refused (`ledger-full`), nothing charged.
pub const CHARGES_MAX: usize = 250_000;
/// Refunds the ledger holds; further new refunds are refused (`ledger-full`).
pub const REFUNDS_MAX: usize = 250_000;
/// Longest delay a `tok_delay_<ms>` token or the latency fault may ask for: 10 minutes.
pub const DELAY_MS_MAX: u64 = 10 * 60 * 1000;
/// Largest `fail_next_calls` / `lose_next_responses` counter.
pub const FAULT_COUNT_MAX: u32 = 1_000_000;
/// Requests served at once; more are answered `503 overloaded` at once (refuse, not queue).
pub const IN_FLIGHT_MAX: usize = 1024;

const _: () = assert!(KEY_BYTES_MAX + TOKEN_BYTES_MAX + 200 < BODY_BYTES_MAX);
