//! Log time: the only clock a state machine reads. A leader stamps every entry it proposes with
//! a log time, and hold lifetimes, checkout windows and cancellation cutoffs are measured in it,
//! so a leader whose log time ran ahead of real time would end customers' holds early and give
//! their seats away (docs/reliability.md, "Log time and wrong clocks").
//!
//! The rule: when a node starts leading a group it reads the wall clocks of the group's voters
//! (its own included) and starts the term's log time at the (f+1)-th largest reading of a
//! majority, so f wrong clocks among 2f+1 voters cannot push it ahead of a correct one. During
//! the term log time advances by the node's monotonic clock only; the wall clock is not read
//! again, so a jump of the wall clock during a term changes nothing. Log time never goes below
//! the applied log time. Holds therefore end no earlier than promised by more than the error of
//! the correct clocks plus half a clock reading's round trip (at most [`CLOCK_READ_TIMEOUT`] / 2);
//! a wrong clock can only make log time lag, which makes holds last longer.

use std::time::{Duration, Instant};

/// Clock readings slower than this are not counted (their round trip bounds their error).
pub const CLOCK_READ_TIMEOUT: Duration = Duration::from_millis(500);

/// Where a leader's log time starts in its term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermClock {
    /// The term.
    pub term: u64,
    /// Log time at `at`.
    pub start_ms: u64,
    /// Monotonic instant of `start_ms`.
    pub at: Instant,
}

impl TermClock {
    /// Log time now: the term's start plus the monotonic time elapsed since, never below
    /// `floor` (the applied log time).
    pub fn now_ms(&self, floor: u64) -> u64 {
        self.at_instant(Instant::now(), floor)
    }

    /// Log time at `now` (see [`TermClock::now_ms`]).
    pub fn at_instant(&self, now: Instant, floor: u64) -> u64 {
        let elapsed = now.saturating_duration_since(self.at);
        let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        self.start_ms.saturating_add(elapsed_ms).max(floor)
    }
}

/// One voter's wall clock as read by the leader.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// The voter's wall clock, Unix ms, when it answered.
    pub wall_ms: u64,
    /// When the request left (leader's monotonic clock).
    pub sent: Instant,
    /// When the answer arrived.
    pub received: Instant,
}

impl Reading {
    /// The voter's clock at `at` (not before `received`): the reading, plus half the round trip
    /// (the answer was taken somewhere inside it), plus the time since the answer arrived.
    pub fn estimate_at(&self, at: Instant) -> u64 {
        let half_trip = self.received.saturating_duration_since(self.sent) / 2;
        let since = at.saturating_duration_since(self.received);
        let add = u64::try_from((half_trip + since).as_millis()).unwrap_or(u64::MAX);
        self.wall_ms.saturating_add(add)
    }
}

/// The log time a term starts at, from the voters' clock `estimates` (all for the same instant,
/// the leader's own included) out of `voters` voters: the (f+1)-th largest estimate, where
/// f = (voters - 1) / 2 is how many voters may be wrong, once at least f + 1 voters answered.
/// At least one correct clock is then at or above it. `None` when fewer answered.
pub fn term_start(mut estimates: Vec<u64>, voters: usize) -> Option<u64> {
    let tolerated = voters.saturating_sub(1) / 2;
    if estimates.len() < tolerated + 1 {
        return None;
    }
    estimates.sort_unstable();
    let index = estimates.len() - (tolerated + 1);
    estimates.get(index).copied()
}

#[cfg(test)]
mod tests {
    use super::{term_start, Reading, TermClock};
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

    #[test]
    fn one_fast_clock_of_three_is_outvoted_and_two_answers_take_the_lower() {
        assert_eq!(term_start(vec![1_060_000, 1_000_000, 1_000_010], 3), Some(1_000_010));
        assert_eq!(term_start(vec![1_060_000, 1_000_000], 3), Some(1_000_000));
        assert_eq!(term_start(vec![1_060_000], 3), None);
        assert_eq!(term_start(vec![1_060_000], 1), Some(1_060_000));
        // Five voters tolerate two wrong clocks: three answers take the smallest.
        assert_eq!(term_start(vec![9_000_000, 8_000_000, 1_000_000], 5), Some(1_000_000));
        assert_eq!(term_start(vec![9_000_000, 8_000_000], 5), None);
    }

    #[test]
    fn a_term_runs_on_monotonic_time_and_never_below_the_floor() {
        let at = Instant::now();
        let clock = TermClock { term: 4, start_ms: 1_000_000, at };
        assert_eq!(clock.at_instant(at + Duration::from_millis(2_500), 0), 1_002_500);
        assert_eq!(clock.at_instant(at + Duration::from_millis(2_500), 1_009_000), 1_009_000);
    }

    #[test]
    fn a_reading_adds_half_its_round_trip_and_the_time_since() {
        let sent = Instant::now();
        let reading = Reading { wall_ms: 5_000, sent, received: sent + Duration::from_millis(40) };
        assert_eq!(reading.estimate_at(sent + Duration::from_millis(100)), 5_000 + 20 + 60);
    }

    proptest! {
        /// With at most f of 2f+1 clocks wrong (by anything) and a majority answering, the
        /// term starts at or below some correct clock.
        #[test]
        fn wrong_clocks_never_start_a_term_ahead_of_every_correct_one(
            voters in prop::sample::select(vec![1usize, 3, 5, 7]),
            truth in 1_000_000u64..2_000_000,
            correct_error in prop::collection::vec(0u64..50, 7),
            wrong in prop::collection::vec(0u64..4_000_000, 7),
            answered_extra in 0usize..7,
        ) {
            let f = (voters - 1) / 2;
            let answered = (f + 1 + answered_extra).min(voters);
            // Voters 0..f are wrong; the rest read truth plus a small error.
            let mut estimates = Vec::new();
            for v in 0..answered {
                estimates.push(if v < f { wrong[v] } else { truth + correct_error[v] });
            }
            let start = term_start(estimates.clone(), voters).expect("a majority answered");
            let highest_correct =
                estimates.iter().skip(f.min(answered)).copied().max();
            if let Some(highest_correct) = highest_correct {
                prop_assert!(start <= highest_correct, "{start} > {highest_correct}");
            }
        }
    }
}
