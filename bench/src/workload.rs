//! The closed-loop workload: `--concurrency` workers, each running one user journey at a time.
//!
//! A journey is one user (one of the worker's accounts, in turn): pick a show by popularity, pick a party size (1..=party-max),
//! decide up front whether the user will pay, release or abandon, get a hold (adjacent mode:
//! read the seat map and choose adjacent seats in one row, not across an aisle; best mode: ask
//! the gateway for the best seats), then pay for it, release it or walk away. Every booking
//! acknowledged with a 201 is remembered for the audit, warm-up included.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::api::{Failure, HoldAck, HoldRequest, SeatMap, SeatStatus};
use crate::backend::Backend;
use crate::config::{Args, Mode};
use crate::shows::{Show, Shows};
use crate::stats::{Op, Outcome, Stats};

/// A booking the gateway acknowledged with a 201.
#[derive(Debug, Clone)]
pub struct Acked {
    /// Its show.
    pub show_id: u64,
    /// Its id.
    pub booking_id: String,
    /// Its status in the 201 body (expected `confirmed`).
    pub status: String,
    /// Its seats in the 201 body.
    pub seats: Vec<String>,
    /// The seats of the hold it was made from.
    pub held: Vec<String>,
}

/// State shared by the workers of one run.
pub struct Run<B> {
    /// The system under test (the gateway or a peer).
    pub api: B,
    /// Flags.
    pub args: Args,
    /// The shows and their popularity.
    pub shows: Shows,
    /// Access tokens of the run's customer accounts; worker `i` uses its
    /// `--accounts-per-worker` slice in turn.
    pub tokens: Vec<String>,
    /// Unique per run (not derived from the seed): names the run's accounts and shows.
    pub run_tag: String,
    /// Journeys started from here on are measured.
    pub measure_start: Instant,
    /// No journey starts after this.
    pub deadline: Instant,
    /// Measured journeys left to start, if `--journeys` was given.
    tickets: Option<AtomicU64>,
    /// Set by Ctrl-C or when every show is retired: no new journeys.
    pub stop: AtomicBool,
    /// Measured journeys finished (progress line).
    pub finished: AtomicU64,
    /// Measured journeys that failed (progress line).
    pub failed: AtomicU64,
}

impl<B: Backend> Run<B> {
    /// A run whose measured window starts at `measure_start`.
    pub fn new(
        api: B,
        args: Args,
        shows: Shows,
        tokens: Vec<String>,
        run_tag: String,
        start: Instant,
    ) -> Run<B> {
        let measure_start = start + Duration::from_secs_f64(args.warmup_s);
        let deadline = measure_start + Duration::from_secs_f64(args.duration_s);
        Run {
            api,
            tickets: args.journeys.map(AtomicU64::new),
            args,
            shows,
            tokens,
            run_tag,
            measure_start,
            deadline,
            stop: AtomicBool::new(false),
            finished: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// Takes one measured-journey ticket; false when `--journeys` are used up.
    fn take_ticket(&self) -> bool {
        match &self.tickets {
            None => true,
            Some(left) => {
                left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok()
            }
        }
    }
}

/// What one worker brings back.
pub struct WorkerOutput {
    /// Its measurements.
    pub stats: Stats,
    /// Bookings acknowledged to it.
    pub acked: Vec<Acked>,
}

/// What a journey intends to do with its hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Confirm,
    Release,
    Abandon,
}

/// A journey that ended before or at the hold.
struct Ended {
    outcome: Outcome,
    pause: Option<Duration>,
}

impl Ended {
    fn new(outcome: Outcome) -> Ended {
        Ended { outcome, pause: None }
    }

    fn failed(failure: &Failure) -> Ended {
        Ended { outcome: Outcome::Failed, pause: failure.pause() }
    }
}

/// One closed-loop worker: journeys back to back until the deadline, the journey budget or a
/// stop request.
pub async fn worker<B: Backend>(run: Arc<Run<B>>, index: usize, seed: u64) -> WorkerOutput {
    let mut rng = StdRng::seed_from_u64(
        seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17),
    );
    let mut stats = Stats::new();
    let mut acked = Vec::new();
    let mut journey_number = 0u64;
    loop {
        if run.stop.load(Ordering::Relaxed) {
            break;
        }
        let now = Instant::now();
        if now >= run.deadline {
            break;
        }
        let measured = now >= run.measure_start;
        if measured && !run.take_ticket() {
            break;
        }
        stats.set_measuring(measured);
        journey_number += 1;
        let per_worker = run.args.accounts_per_worker.max(1);
        let account =
            (index * per_worker + journey_number as usize % per_worker) % run.tokens.len().max(1);
        let user = run.tokens.get(account).cloned().unwrap_or_default();
        let ended = journey(&run, &mut rng, &user, &mut stats, &mut acked).await;
        stats.outcome(ended.outcome);
        if measured {
            run.finished.fetch_add(1, Ordering::Relaxed);
            if ended.outcome == Outcome::Failed {
                run.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        if run.shows.all_retired() {
            run.stop.store(true, Ordering::Relaxed);
        }
        if let Some(pause) = ended.pause {
            tokio::time::sleep(pause).await;
        }
    }
    WorkerOutput { stats, acked }
}

async fn journey<B: Backend>(
    run: &Run<B>,
    rng: &mut StdRng,
    user: &str,
    stats: &mut Stats,
    acked: &mut Vec<Acked>,
) -> Ended {
    let Some((slot, show)) = run.shows.pick(rng) else {
        return Ended::new(Outcome::SoldOut);
    };
    let args = &run.args;
    let party = rng.random_range(1..=args.party_max);
    let roll = rng.random_range(0..100);
    let plan = if roll < args.confirm_pct {
        Plan::Confirm
    } else if roll < args.confirm_pct + args.release_pct {
        Plan::Release
    } else {
        Plan::Abandon
    };
    let ttl_ms = (plan == Plan::Abandon).then_some(args.abandon_ttl_ms);
    let ask = Ask { user, slot, show: &show, party, ttl_ms };
    let held = match args.mode {
        Mode::Adjacent => hold_adjacent(run, rng, &ask, stats).await,
        Mode::Best => hold_best(run, rng, &ask, stats).await,
    };
    let hold = match held {
        Ok(hold) => hold,
        Err(ended) => return ended,
    };
    match plan {
        Plan::Abandon => Ended::new(Outcome::Abandoned),
        Plan::Release => {
            let timed = run.api.release(user, &hold.hold_id).await;
            match timed.result {
                Ok(_) => {
                    stats.ok(Op::Release, timed.micros);
                    Ended::new(Outcome::Released)
                }
                Err(failure) => {
                    stats.error(Op::Release, failure.key());
                    Ended::failed(&failure)
                }
            }
        }
        Plan::Confirm => {
            // Unique per hold (hold ids are never reused), so keys never replay old runs.
            let key = format!("bench-{}", hold.hold_id);
            let timed = run.api.book(user, &key, &hold.hold_id, &args.payment_token).await;
            match timed.result {
                Ok(booking) => {
                    stats.ok(Op::Booking, timed.micros);
                    if booking.status != "confirmed" {
                        stats.error(Op::Booking, format!("201 status {}", booking.status));
                    }
                    stats.seats_booked(booking.seats.len());
                    acked.push(Acked {
                        show_id: show.id,
                        booking_id: booking.booking_id,
                        status: booking.status,
                        seats: booking.seats,
                        held: hold.seats,
                    });
                    Ended::new(Outcome::Booked)
                }
                Err(failure) => {
                    stats.error(Op::Booking, failure.key());
                    Ended::failed(&failure)
                }
            }
        }
    }
}

/// What a journey asks a hold for.
struct Ask<'a> {
    user: &'a str,
    slot: usize,
    show: &'a Show,
    party: u32,
    ttl_ms: Option<u64>,
}

fn is_conflict(failure: &Failure) -> bool {
    failure.status() == Some(409)
        && matches!(failure.kind(), Some("seats-unavailable" | "not-enough-seats"))
}

/// Adjacent mode: read the seat map (fast read), pick `party` adjacent available seats in one
/// row, hold them; on a 409 re-read and pick again, avoiding the seats reported taken.
async fn hold_adjacent<B: Backend>(
    run: &Run<B>,
    rng: &mut StdRng,
    ask: &Ask<'_>,
    stats: &mut Stats,
) -> Result<HoldAck, Ended> {
    let Ask { user, slot, show, party, ttl_ms } = *ask;
    let mut taken = HashSet::new();
    for _ in 0..run.args.hold_attempts {
        let timed = run.api.seat_map(show.id, true).await;
        let map = match timed.result {
            Ok(map) => {
                stats.ok(Op::SeatMap, timed.micros);
                map
            }
            Err(failure) => {
                stats.error(Op::SeatMap, failure.key());
                return Err(Ended::failed(&failure));
            }
        };
        let Some(seats) = pick_adjacent(&map, party as usize, &taken, rng) else {
            // Retire the show once at most 5% of it is left; fragments of that size are
            // what a real sale ends with too.
            if u64::from(map.available) * 20 <= u64::from(show.capacity) {
                run.shows.sold_out(&run.api, slot, show.id, stats).await;
            }
            return Err(Ended::new(Outcome::SoldOut));
        };
        let timed = run.api.hold(user, show.id, &HoldRequest::Seats(seats), ttl_ms).await;
        match timed.result {
            Ok(hold) => {
                stats.ok(Op::Hold, timed.micros);
                return Ok(hold);
            }
            Err(failure) if is_conflict(&failure) => {
                stats.ok(Op::HoldConflict, timed.micros);
                if let Failure::Status { body, .. } = &failure {
                    let reported = body.get("unavailable_seats").and_then(Value::as_array);
                    taken.extend(
                        reported.into_iter().flatten().filter_map(Value::as_str).map(str::to_owned),
                    );
                }
            }
            Err(failure) => {
                stats.error(Op::Hold, failure.key());
                return Err(Ended::failed(&failure));
            }
        }
    }
    Err(Ended::new(Outcome::Conflict))
}

/// Best mode: ask for the best `party` seats of a category (weighted by its size among the
/// categories not yet seen sold out).
async fn hold_best<B: Backend>(
    run: &Run<B>,
    rng: &mut StdRng,
    ask: &Ask<'_>,
    stats: &mut Stats,
) -> Result<HoldAck, Ended> {
    let Ask { user, slot, show, party, ttl_ms } = *ask;
    let Some(category) = show.pick_category(rng) else {
        run.shows.sold_out(&run.api, slot, show.id, stats).await;
        return Err(Ended::new(Outcome::SoldOut));
    };
    let what = HoldRequest::Best { quantity: party, category: category.name.to_owned() };
    let timed = run.api.hold(user, show.id, &what, ttl_ms).await;
    match timed.result {
        Ok(hold) => {
            stats.ok(Op::Hold, timed.micros);
            Ok(hold)
        }
        Err(failure) if is_conflict(&failure) => {
            stats.ok(Op::HoldConflict, timed.micros);
            if failure.kind() == Some("seats-unavailable") {
                return Err(Ended::new(Outcome::Conflict));
            }
            let available = match &failure {
                Failure::Status { body, .. } => body.get("available").and_then(Value::as_u64),
                Failure::Transport(_) => None,
            };
            if available.is_none_or(|a| a * 20 <= u64::from(category.capacity))
                && show.exhaust(category.name)
            {
                run.shows.sold_out(&run.api, slot, show.id, stats).await;
            }
            Err(Ended::new(Outcome::SoldOut))
        }
        Err(failure) => {
            stats.error(Op::Hold, failure.key());
            Err(Ended::failed(&failure))
        }
    }
}

/// A uniformly random block of `party` adjacent seats in one row that are available, not in
/// `taken`, and do not span an aisle; `None` if the map has none.
pub fn pick_adjacent(
    map: &SeatMap,
    party: usize,
    taken: &HashSet<String>,
    rng: &mut StdRng,
) -> Option<Vec<String>> {
    if party == 0 {
        return None;
    }
    let mut starts: Vec<(usize, usize)> = Vec::new();
    for (r, row) in map.rows.iter().enumerate() {
        let seats = &row.seats;
        let free = |i: usize| {
            seats[i].status == SeatStatus::Available && !taken.contains(&seats[i].seat_id)
        };
        let mut start = 0;
        while start < seats.len() {
            if !free(start) {
                start += 1;
                continue;
            }
            // A run [start, end) of free seats with no aisle inside.
            let mut end = start + 1;
            while end < seats.len() && free(end) && !seats[end - 1].aisle_after {
                end += 1;
            }
            if end - start >= party {
                starts.extend((start..=end - party).map(|first| (r, first)));
            }
            start = end;
        }
    }
    if starts.is_empty() {
        return None;
    }
    let (r, first) = starts[rng.random_range(0..starts.len())];
    Some(map.rows[r].seats[first..first + party].iter().map(|s| s.seat_id.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Row, Seat, SeatStatus};

    fn row(label: &str, statuses: &str, aisles: &[usize]) -> Row {
        Row {
            seats: statuses
                .chars()
                .enumerate()
                .map(|(i, c)| Seat {
                    seat_id: format!("{label}{}", i + 1),
                    status: if c == '.' { SeatStatus::Available } else { SeatStatus::Sold },
                    aisle_after: aisles.contains(&(i + 1)),
                })
                .collect(),
        }
    }

    #[test]
    fn adjacent_blocks_respect_aisles_and_taken_seats() {
        let map = SeatMap { available: 6, rows: vec![row("A", "..x...", &[2])] };
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..50 {
            let seats = pick_adjacent(&map, 3, &HashSet::new(), &mut rng).expect("A4-A6 fits");
            assert_eq!(seats, vec!["A4", "A5", "A6"]);
        }
        // Two seats: A1-A2 (before the aisle), A4-A5 or A5-A6; never A2-A3 or across sold A3.
        for _ in 0..50 {
            let seats = pick_adjacent(&map, 2, &HashSet::new(), &mut rng).expect("fits");
            assert!(["A1", "A4", "A5"].contains(&seats[0].as_str()), "{seats:?}");
        }
        let taken: HashSet<String> = ["A5".to_owned()].into();
        assert_eq!(pick_adjacent(&map, 3, &taken, &mut rng), None);
        let aisle = SeatMap { available: 4, rows: vec![row("B", "....", &[2])] };
        assert_eq!(pick_adjacent(&aisle, 3, &HashSet::new(), &mut rng), None);
    }
}
