//! Per-worker measurements: one latency histogram (microseconds) and one error table per
//! operation, and journey outcome counters.
//!
//! Each worker owns its [`Stats`] (no locking on the hot path) and the run merges them at the
//! end. Nothing is recorded while `measuring` is off, which is how the warm-up is excluded.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

/// Highest latency the histograms track exactly: one hour, in microseconds. Longer values
/// saturate (the per-request timeout is far below it).
const LATENCY_MAX_US: u64 = 3_600_000_000;

/// An operation whose latency is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `GET /v1/shows/{id}/seats?consistency=fast` (adjacent mode).
    SeatMap,
    /// `POST /v1/shows/{id}/holds` answered 201.
    Hold,
    /// `POST /v1/shows/{id}/holds` answered 409 (seats taken, not enough seats).
    HoldConflict,
    /// `POST /v1/bookings` answered 201.
    Booking,
    /// `DELETE /v1/holds/{id}` answered 200.
    Release,
    /// `POST /v1/admin/shows` replacing a sold-out show during the run.
    CreateShow,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 6] =
        [Op::SeatMap, Op::Hold, Op::HoldConflict, Op::Booking, Op::Release, Op::CreateShow];

    /// Stable machine name (JSON report).
    pub fn name(self) -> &'static str {
        match self {
            Op::SeatMap => "seat_map",
            Op::Hold => "hold",
            Op::HoldConflict => "hold_conflict",
            Op::Booking => "booking",
            Op::Release => "release",
            Op::CreateShow => "create_show",
        }
    }

    /// Human label (table).
    pub fn label(self) -> &'static str {
        match self {
            Op::SeatMap => "seat map read",
            Op::Hold => "hold (201)",
            Op::HoldConflict => "hold conflict (409)",
            Op::Booking => "booking (201)",
            Op::Release => "release (200)",
            Op::CreateShow => "create show (refill)",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How a user journey ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Held and paid: a confirmed booking.
    Booked,
    /// Held, then released.
    Released,
    /// Held, then left to expire.
    Abandoned,
    /// The show had no room for the party (or every show is retired).
    SoldOut,
    /// Every hold attempt lost a race for the seats (409).
    Conflict,
    /// A request failed (error status, timeout, connection error).
    Failed,
}

impl Outcome {
    /// Every outcome, in report order.
    pub const ALL: [Outcome; 6] = [
        Outcome::Booked,
        Outcome::Released,
        Outcome::Abandoned,
        Outcome::SoldOut,
        Outcome::Conflict,
        Outcome::Failed,
    ];

    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Booked => "booked",
            Outcome::Released => "released",
            Outcome::Abandoned => "abandoned",
            Outcome::SoldOut => "sold_out",
            Outcome::Conflict => "conflict",
            Outcome::Failed => "failed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Measurements of one operation.
#[derive(Debug, Clone)]
pub struct OpStats {
    /// Latencies of the successful (or, for [`Op::HoldConflict`], the conflicting) calls, µs.
    pub latency: Histogram<u64>,
    /// Failed calls by `"<status> <problem type>"` or `"transport <kind>"`.
    pub errors: BTreeMap<String, u64>,
}

impl OpStats {
    fn new() -> OpStats {
        OpStats {
            latency: Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
                .expect("static histogram bounds are valid"),
            errors: BTreeMap::new(),
        }
    }

    /// Failed calls in all.
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Everything one worker (or, merged, the whole run) measured.
#[derive(Debug, Clone)]
pub struct Stats {
    ops: Vec<OpStats>,
    outcomes: [u64; Outcome::ALL.len()],
    seats_booked: u64,
    measuring: bool,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    /// Empty, not measuring.
    pub fn new() -> Stats {
        Stats {
            ops: Op::ALL.iter().map(|_| OpStats::new()).collect(),
            outcomes: [0; Outcome::ALL.len()],
            seats_booked: 0,
            measuring: false,
        }
    }

    /// Turns recording on (measured journey) or off (warm-up journey).
    pub fn set_measuring(&mut self, on: bool) {
        self.measuring = on;
    }

    /// Records a successful call's latency.
    pub fn ok(&mut self, op: Op, micros: u64) {
        if self.measuring {
            self.ops[op.index()].latency.saturating_record(micros.max(1));
        }
    }

    /// Counts a failed call.
    pub fn error(&mut self, op: Op, key: String) {
        if self.measuring {
            *self.ops[op.index()].errors.entry(key).or_insert(0) += 1;
        }
    }

    /// Counts a finished journey.
    pub fn outcome(&mut self, outcome: Outcome) {
        if self.measuring {
            self.outcomes[outcome.index()] += 1;
        }
    }

    /// Counts seats of a confirmed booking.
    pub fn seats_booked(&mut self, seats: usize) {
        if self.measuring {
            self.seats_booked += seats as u64;
        }
    }

    /// Adds `other`'s measurements to these.
    pub fn merge(&mut self, other: &Stats) {
        for (mine, theirs) in self.ops.iter_mut().zip(&other.ops) {
            // Same bounds on both sides: addition cannot fail, but never panic over it.
            if mine.latency.add(&theirs.latency).is_err() {
                *mine.errors.entry("histogram merge failed".into()).or_insert(0) += 1;
            }
            for (key, count) in &theirs.errors {
                *mine.errors.entry(key.clone()).or_insert(0) += count;
            }
        }
        for (mine, theirs) in self.outcomes.iter_mut().zip(other.outcomes) {
            *mine += theirs;
        }
        self.seats_booked += other.seats_booked;
    }

    /// Measurements of `op`.
    pub fn op(&self, op: Op) -> &OpStats {
        &self.ops[op.index()]
    }

    /// Journeys that ended with `outcome`.
    pub fn outcomes(&self, outcome: Outcome) -> u64 {
        self.outcomes[outcome.index()]
    }

    /// Journeys in all.
    pub fn journeys(&self) -> u64 {
        self.outcomes.iter().sum()
    }

    /// Seats in bookings confirmed during the measured window.
    pub fn seats_booked_total(&self) -> u64 {
        self.seats_booked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_is_not_recorded_and_merge_adds() {
        let mut a = Stats::new();
        a.ok(Op::Hold, 100);
        a.outcome(Outcome::Booked);
        assert_eq!(a.op(Op::Hold).latency.len(), 0);
        a.set_measuring(true);
        a.ok(Op::Hold, 100);
        a.error(Op::Hold, "503 unavailable".into());
        a.outcome(Outcome::Failed);
        let mut b = Stats::new();
        b.set_measuring(true);
        b.ok(Op::Hold, 300);
        b.error(Op::Hold, "503 unavailable".into());
        b.outcome(Outcome::Booked);
        a.merge(&b);
        assert_eq!(a.op(Op::Hold).latency.len(), 2);
        assert_eq!(a.op(Op::Hold).errors_total(), 2);
        assert_eq!(a.journeys(), 2);
        assert_eq!(a.outcomes(Outcome::Booked), 1);
    }
}
