//! The gateway's one wall-clock read, and how its times are written.
//!
//! The gateway reads the clock for cut-offs and defaults only: the cancellation refund tier,
//! the sweeper's age threshold, token issue times, "today" in date filters. Replicated state
//! never depends on it (the state machines use log time). Reading it in one place keeps that
//! list short and easy to audit.

use std::time::{SystemTime, UNIX_EPOCH};

/// This gateway's wall clock, Unix ms.
pub fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Unix milliseconds as an RFC 3339 UTC timestamp (the one calendar implementation, shared
/// with the state machines).
pub use proto::calendar::rfc3339;
