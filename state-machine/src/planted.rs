//! A deliberately planted bug, off unless the deterministic simulator's self-test turns it on
//! (`marquee-sim --plant-bug`, docs/reliability.md "Deterministic simulation"): with it,
//! `ExpireDue` ends holds up to [`EARLY_EXPIRY_MS`] before their deadline, so a seat can go to
//! another customer while its holder was promised it for a few more seconds. It exists to prove
//! that the simulator and its checker catch a broken transition within the seeds CI runs;
//! nothing in the product sets it.

use std::sync::atomic::{AtomicBool, Ordering};

/// How early the planted bug expires holds.
pub const EARLY_EXPIRY_MS: u64 = 3_000;

static EARLY_EXPIRY_BUG: AtomicBool = AtomicBool::new(false);

/// Turns the planted bug on or off for the whole process.
pub fn plant_early_expiry_bug(on: bool) {
    EARLY_EXPIRY_BUG.store(on, Ordering::Relaxed);
}

/// How far ahead of log time holds expire: 0 unless the planted bug is on.
pub(crate) fn expiry_lead_ms() -> u64 {
    if EARLY_EXPIRY_BUG.load(Ordering::Relaxed) {
        EARLY_EXPIRY_MS
    } else {
        0
    }
}
