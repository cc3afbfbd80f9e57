//! A complete per-seat linearizability check (Wing & Gong's search with Lowe's pruning, as in
//! Knossos): for every seat, is there an order of the operations on it, each placed between its
//! invoke and its completion, that a single register `free | held(h) | sold(b)` accepts and that
//! ends in the state read after the run? If none exists the history is not linearizable, and the
//! seat is reported (`not-linearizable`). Unlike `double-hold` (a sufficient condition), this
//! misses no violation of the per-seat register, and never flags a history that has such an
//! order: every operation whose outcome is unknown may take effect at any point after its
//! invoke, or not at all.
//!
//! How the history maps to per-seat operations (each on every seat it names):
//!
//! | history | register operation | must it take effect? |
//! |---|---|---|
//! | hold `ok` (id `h`) | `free → held(h)` within invoke..ok | yes |
//! | hold `info` | (see below) | maybe |
//! | hold expiry | `held(h) → free` after `expires_at` (less [`EXPIRY_SLACK_MS`]) | maybe |
//! | release `ok` | `held(h) → free` | yes |
//! | release `info` | `held(h) → free` | maybe |
//! | book `ok` (id `b`) | `held(h) → sold(b)` | yes |
//! | book `fail` | `held(h) → free` (a failed checkout frees its seats) | maybe |
//! | book `info` | `held(h) → sold(unknown)` or `held(h) → free` | maybe (one of them) |
//! | cancel `ok` | `sold(b) → free` | yes |
//! | cancel `info` | `sold(b) → free` | maybe |
//! | final seat map | sold to `b`, held, or free | yes, after everything |
//!
//! Failed holds, releases and cancels changed nothing. A hold whose answer was lost may have
//! held its seats, under an id nobody learned, until it expired; such a hold can only *block*
//! other holds (and failed holds constrain nothing), so the one thing it can explain is a seat
//! the final map shows held: the final read accepts `held` for a free register on a seat such
//! a hold named. (Modelling it as an operation, placeable at any free moment, made the search
//! explode without changing any verdict.)
//!
//! The search keeps, per step, the set of operations already placed (or passed over: an
//! optional operation whose completion precedes a placed one's invoke can no longer be placed,
//! and one on a hold or booking that already ended never will be) and the register, and never
//! revisits a pair. It gives up after [`STATES_MAX`] pairs per seat and says so
//! (`inconclusive`), which is not an anomaly.

use std::collections::{BTreeMap, HashSet};

use super::checker::{FinalState, EXPIRY_SLACK_MS};
use super::history::{Event, EventType, OpKind};

/// Most (placed set, register) pairs explored per seat before the search gives up.
pub const STATES_MAX: usize = 500_000;

/// Who holds a seat in the model: a hold whose id a client learned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Holder(String);

/// The register of one seat.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Seat {
    Free,
    Held(Holder),
    /// Sold to a booking; `None` when the booking's id was never learned.
    Sold(Option<String>),
}

/// What an operation does to the register (it is refused in any other state).
#[derive(Debug, Clone)]
enum Effect {
    /// `free → held`.
    Acquire(Holder),
    /// `held(h) → free`.
    Free(Holder),
    /// `held(h) → sold(b)`.
    Sell(Holder, Option<String>),
    /// `held(h) → sold(unknown)` or `held(h) → free`: an unknown payment's two outcomes.
    SellOrFree(Holder),
    /// `sold(b) → free`.
    Unsell(String),
    /// The state read at the end: sold to this booking, or (`None`) held or free as given;
    /// `unknown_hold`: a hold with a lost answer named the seat (so `held` may be its doing).
    Read { sold: Option<String>, held: bool, unknown_hold: bool },
}

impl Effect {
    /// The hold or booking whose end makes this operation impossible for good.
    fn target(&self) -> Option<Target<'_>> {
        match self {
            Effect::Free(h) | Effect::Sell(h, _) | Effect::SellOrFree(h) => Some(Target::Hold(h)),
            Effect::Unsell(b) => Some(Target::Booking(b)),
            Effect::Acquire(_) | Effect::Read { .. } => None,
        }
    }
}

/// What an operation acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target<'a> {
    Hold(&'a Holder),
    Booking(&'a str),
}

/// One operation on one seat.
#[derive(Debug, Clone)]
struct SeatOp {
    invoke: u64,
    /// `u64::MAX`: never completed (it may take effect at any time after its invoke).
    complete: u64,
    required: bool,
    effect: Effect,
    /// Index of the history event that invoked it (for reports).
    event: Option<usize>,
}

/// The verdict on one seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatVerdict {
    /// An order exists.
    Linearizable,
    /// No order exists.
    NotLinearizable,
    /// The search gave up after [`STATES_MAX`] states.
    Inconclusive,
}

/// A seat whose history has no valid order, with the events of its operations.
#[derive(Debug, Clone)]
pub struct SeatReport {
    /// Show id.
    pub show: u64,
    /// Seat id.
    pub seat: String,
    /// The verdict.
    pub verdict: SeatVerdict,
    /// The history events of the operations on the seat (invokes and completions).
    pub events: Vec<Event>,
}

/// An operation of the history: its invoke and its completion, if any.
struct Op<'a> {
    invoke: (usize, &'a Event),
    done: Option<&'a Event>,
}

fn pair(history: &[Event]) -> Vec<Op<'_>> {
    let mut open: BTreeMap<i64, usize> = BTreeMap::new();
    let mut ops: Vec<Op<'_>> = Vec::new();
    for (i, event) in history.iter().enumerate().filter(|(_, e)| e.op != OpKind::Nemesis) {
        if event.kind == EventType::Invoke {
            open.insert(event.process, ops.len());
            ops.push(Op { invoke: (i, event), done: None });
        } else if let Some(at) = open.remove(&event.process) {
            ops[at].done = Some(event);
        }
    }
    ops
}

/// Checks every seat of every show; returns the seats that are not linearizable (or on which
/// the search gave up).
pub fn check(history: &[Event], state: &FinalState) -> Vec<SeatReport> {
    let ops = pair(history);
    let mut seats_of_hold: BTreeMap<&str, &[String]> = BTreeMap::new();
    let mut seats_of_booking: BTreeMap<&str, &[String]> = BTreeMap::new();
    for op in &ops {
        let Some(done) = op.done.filter(|d| d.kind == EventType::Ok) else { continue };
        match op.invoke.1.op {
            OpKind::Hold => {
                if let Some(h) = done.hold_id.as_deref() {
                    seats_of_hold.insert(h, &done.seats);
                }
            }
            OpKind::Book => {
                if let Some(b) = done.booking_id.as_deref() {
                    seats_of_booking.insert(b, &done.seats);
                }
            }
            _ => {}
        }
    }
    let mut per_seat: BTreeMap<(u64, String), Vec<SeatOp>> = BTreeMap::new();
    let mut unknown_holds: std::collections::BTreeSet<(u64, String)> = Default::default();
    let mut add = |show: u64, seats: &[String], op: SeatOp| {
        for seat in seats {
            per_seat.entry((show, seat.clone())).or_default().push(op.clone());
        }
    };
    for op in &ops {
        let (at, invoke) = op.invoke;
        let result = op.done.map_or(EventType::Info, |d| d.kind);
        let complete = match result {
            EventType::Info => u64::MAX,
            _ => op.done.map_or(u64::MAX, |d| d.time_ns),
        };
        let make = |required: bool, effect: Effect| SeatOp {
            invoke: invoke.time_ns,
            complete,
            required,
            effect,
            event: Some(at),
        };
        let hold = invoke.hold_id.clone().map(Holder);
        match (invoke.op, result) {
            (OpKind::Hold, EventType::Ok) => {
                let Some(done) = op.done else { continue };
                let Some(h) = done.hold_id.clone() else { continue };
                add(invoke.show, &done.seats, make(true, Effect::Acquire(Holder(h.clone()))));
                // It may expire from its deadline on (converted to the history's clock).
                // The deadline may be before the ok itself: a retried request whose first try
                // was applied long ago is answered with the first outcome, whose hold may have
                // expired before the answer arrived (found by the simulator, seed 2009 with
                // 16 clients). Not before the invoke: the hold took effect after it.
                if let Some(expires_at) = done.expires_at_ms {
                    let left_ms = i128::from(expires_at)
                        - i128::from(done.wall_ms)
                        - i128::from(EXPIRY_SLACK_MS);
                    let from = (i128::from(done.time_ns) + left_ms * 1_000_000)
                        .clamp(i128::from(invoke.time_ns), i128::from(u64::MAX));
                    let from = u64::try_from(from).unwrap_or(u64::MAX);
                    let expire = SeatOp {
                        invoke: from,
                        complete: u64::MAX,
                        required: false,
                        effect: Effect::Free(Holder(h)),
                        event: None,
                    };
                    add(invoke.show, &done.seats, expire);
                }
            }
            (OpKind::Hold, EventType::Info) => {
                for seat in &invoke.seats {
                    unknown_holds.insert((invoke.show, seat.clone()));
                }
            }
            (OpKind::Release, EventType::Ok | EventType::Info) => {
                let (Some(h), Some(seats)) =
                    (hold, invoke.hold_id.as_deref().and_then(|h| seats_of_hold.get(h)))
                else {
                    continue;
                };
                add(invoke.show, seats, make(result == EventType::Ok, Effect::Free(h)));
            }
            (OpKind::Book, _) => {
                let (Some(h), Some(seats)) =
                    (hold, invoke.hold_id.as_deref().and_then(|h| seats_of_hold.get(h)))
                else {
                    continue;
                };
                let effect = match result {
                    EventType::Ok => Effect::Sell(h, op.done.and_then(|d| d.booking_id.clone())),
                    EventType::Fail => Effect::Free(h),
                    _ => Effect::SellOrFree(h),
                };
                add(invoke.show, seats, make(result == EventType::Ok, effect));
            }
            (OpKind::Cancel, EventType::Ok | EventType::Info) => {
                let Some(b) = invoke.booking_id.clone() else { continue };
                let Some(seats) = seats_of_booking.get(b.as_str()) else { continue };
                add(invoke.show, seats, make(result == EventType::Ok, Effect::Unsell(b)));
            }
            _ => {}
        }
    }
    // The final read, after everything, of every seat the run touched or the state lists.
    for (show, fin) in &state.shows {
        let mut seats: Vec<String> =
            per_seat.keys().filter(|(s, _)| s == show).map(|(_, seat)| seat.clone()).collect();
        for seat in fin.bookings.values().flatten().chain(&fin.held) {
            if !seats.contains(seat) {
                seats.push(seat.clone());
            }
        }
        for seat in seats {
            let sold = fin
                .bookings
                .iter()
                .find(|(_, booked)| booked.contains(&seat))
                .map(|(booking, _)| booking.clone());
            let read = SeatOp {
                invoke: u64::MAX - 1,
                complete: u64::MAX,
                required: true,
                effect: Effect::Read {
                    sold,
                    held: fin.held.contains(&seat),
                    unknown_hold: unknown_holds.contains(&(*show, seat.clone())),
                },
                event: None,
            };
            per_seat.entry((*show, seat)).or_default().push(read);
        }
    }
    let mut reports = Vec::new();
    for ((show, seat), seat_ops) in per_seat {
        let verdict = search(&seat_ops);
        if verdict != SeatVerdict::Linearizable {
            let mut events: Vec<Event> = Vec::new();
            for op in seat_ops.iter().filter_map(|o| o.event) {
                let invoke = &history[op];
                events.push(invoke.clone());
                if let Some(done) = history[op + 1..].iter().find(|e| {
                    e.process == invoke.process && e.op == invoke.op && e.kind != EventType::Invoke
                }) {
                    events.push(done.clone());
                }
            }
            reports.push(SeatReport { show, seat, verdict, events });
        }
    }
    reports
}

/// Applies `effect` to `seat`, or `None` if the register refuses it. `SellOrFree` has two
/// outcomes; both are returned.
fn apply(seat: &Seat, effect: &Effect) -> Vec<Seat> {
    match (seat, effect) {
        (Seat::Free, Effect::Acquire(h)) => vec![Seat::Held(h.clone())],
        (Seat::Held(held), Effect::Free(h)) if held == h => vec![Seat::Free],
        (Seat::Held(held), Effect::Sell(h, b)) if held == h => vec![Seat::Sold(b.clone())],
        (Seat::Held(held), Effect::SellOrFree(h)) if held == h => {
            vec![Seat::Sold(None), Seat::Free]
        }
        (Seat::Sold(Some(sold)), Effect::Unsell(b)) if sold == b => vec![Seat::Free],
        (state, Effect::Read { sold, held, unknown_hold }) => {
            let ok = match (state, sold) {
                (Seat::Sold(Some(s)), Some(b)) => s == b,
                // A booking whose id no client learned may be the one the map shows.
                (Seat::Sold(None), Some(_)) => true,
                (_, Some(_)) | (Seat::Sold(_), None) => false,
                (Seat::Held(_), None) => *held,
                (Seat::Free, None) => !*held || *unknown_hold,
            };
            if ok {
                vec![state.clone()]
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    }
}

/// Searches for an order of `ops` the register accepts (see the module docs).
fn search(ops: &[SeatOp]) -> SeatVerdict {
    let mut ops: Vec<SeatOp> = ops.to_vec();
    ops.sort_by_key(|o| (o.invoke, o.complete));
    let words = ops.len().div_ceil(64);
    let all_required: Vec<u64> = {
        let mut bits = vec![0u64; words];
        for (i, op) in ops.iter().enumerate() {
            if op.required {
                bits[i / 64] |= 1 << (i % 64);
            }
        }
        bits
    };
    let mut visited: HashSet<(Vec<u64>, Seat)> = HashSet::new();
    let mut stack = vec![(vec![0u64; words], Seat::Free)];
    while let Some((done, seat)) = stack.pop() {
        if all_required.iter().zip(&done).all(|(r, d)| r & !d == 0) {
            return SeatVerdict::Linearizable;
        }
        if !visited.insert((done.clone(), seat.clone())) {
            continue;
        }
        if visited.len() > STATES_MAX {
            return SeatVerdict::Inconclusive;
        }
        let is_done = |i: usize| done[i / 64] & (1 << (i % 64)) != 0;
        // Nothing may be placed after an unplaced required operation has completed.
        let bound = (0..ops.len())
            .filter(|&i| ops[i].required && !is_done(i))
            .map(|i| ops[i].complete)
            .min()
            .unwrap_or(u64::MAX);
        for (i, op) in ops.iter().enumerate() {
            if is_done(i) || op.invoke > bound {
                continue;
            }
            for next in apply(&seat, &op.effect) {
                let mut placed = done.clone();
                placed[i / 64] |= 1 << (i % 64);
                // Optional operations that completed before this one began are passed over, and
                // so are those on a hold or booking this one ended (ids are never reused).
                let ended = match (&seat, &next) {
                    (Seat::Held(h), Seat::Held(g)) if h == g => None,
                    (Seat::Held(h), _) => Some(Target::Hold(h)),
                    (Seat::Sold(Some(b)), Seat::Free) => Some(Target::Booking(b.as_str())),
                    _ => None,
                };
                for (j, other) in ops.iter().enumerate() {
                    let passed = other.complete < op.invoke;
                    let dead = ended.is_some() && other.effect.target() == ended;
                    if !other.required && (passed || dead) {
                        placed[j / 64] |= 1 << (j % 64);
                    }
                }
                stack.push((placed, next));
            }
        }
    }
    SeatVerdict::NotLinearizable
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::chaos::checker::ShowFinal;

    /// Builds histories on show 1; times in ms, wall clock = history clock + 1 000 000 ms.
    #[derive(Default)]
    struct History(Vec<Event>);

    fn ev(process: i64, kind: EventType, op: OpKind, t: u64) -> Event {
        Event {
            process,
            kind,
            op,
            time_ns: t * 1_000_000,
            show: 1,
            seats: Vec::new(),
            hold_id: None,
            booking_id: None,
            expires_at_ms: None,
            wall_ms: 1_000_000 + t,
            detail: String::new(),
        }
    }

    fn seats(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    impl History {
        /// A hold of `seats` by `p` over `t0..t1` with `result`; `ok` holds get id `id` and
        /// expire 600 s after `t1`.
        fn hold(
            mut self,
            p: i64,
            id: &str,
            on: &[&str],
            t0: u64,
            t1: u64,
            result: EventType,
        ) -> Self {
            let mut invoke = ev(p, EventType::Invoke, OpKind::Hold, t0);
            invoke.seats = seats(on);
            let mut done = ev(p, result, OpKind::Hold, t1);
            if result == EventType::Ok {
                done.hold_id = Some(id.into());
                done.seats = seats(on);
                done.expires_at_ms = Some(1_000_000 + t1 + 600_000);
            }
            self.0.extend([invoke, done]);
            self
        }

        fn on_hold(
            mut self,
            op: OpKind,
            p: i64,
            hold: &str,
            (t0, t1): (u64, u64),
            result: EventType,
            booking: Option<&str>,
        ) -> Self {
            let mut invoke = ev(p, EventType::Invoke, op, t0);
            invoke.hold_id = Some(hold.into());
            let mut done = ev(p, result, op, t1);
            done.hold_id = Some(hold.into());
            if let Some(b) = booking {
                done.booking_id = Some(b.into());
                done.seats = self.seats_of(hold);
            }
            self.0.extend([invoke, done]);
            self
        }

        fn release(self, p: i64, hold: &str, t0: u64, t1: u64, result: EventType) -> Self {
            self.on_hold(OpKind::Release, p, hold, (t0, t1), result, None)
        }

        fn book(
            self,
            p: i64,
            hold: &str,
            booking: &str,
            t0: u64,
            t1: u64,
            result: EventType,
        ) -> Self {
            let booking = (result == EventType::Ok).then_some(booking);
            self.on_hold(OpKind::Book, p, hold, (t0, t1), result, booking)
        }

        fn cancel(mut self, p: i64, booking: &str, t0: u64, t1: u64, result: EventType) -> Self {
            let mut invoke = ev(p, EventType::Invoke, OpKind::Cancel, t0);
            invoke.booking_id = Some(booking.into());
            let mut done = ev(p, result, OpKind::Cancel, t1);
            done.booking_id = Some(booking.into());
            self.0.extend([invoke, done]);
            self
        }

        fn seats_of(&self, hold: &str) -> Vec<String> {
            self.0
                .iter()
                .find(|e| e.hold_id.as_deref() == Some(hold) && e.op == OpKind::Hold)
                .map(|e| e.seats.clone())
                .unwrap_or_default()
        }
    }

    fn end(sold: &[(&str, &[&str])], held: &[&str]) -> FinalState {
        let mut show = ShowFinal::default();
        for (booking, on) in sold {
            show.sold.extend(seats(on));
            show.bookings.insert((*booking).into(), seats(on));
        }
        show.held = seats(held).into_iter().collect();
        FinalState { shows: BTreeMap::from([(1, show)]), ..FinalState::default() }
    }

    fn flagged(history: &History, fin: &FinalState) -> Vec<String> {
        check(&history.0, fin).into_iter().map(|r| format!("{}:{:?}", r.seat, r.verdict)).collect()
    }

    use EventType::{Fail, Info, Ok as Done};

    #[test]
    fn a_clean_run_is_linearizable() {
        let h = History::default()
            .hold(1, "1-1", &["A1", "A2"], 0, 5, Done)
            .release(1, "1-1", 10, 12, Done)
            .hold(2, "1-2", &["A1"], 11, 20, Done)
            .book(2, "1-2", "1-3", 30, 35, Done)
            .cancel(2, "1-3", 40, 45, Done)
            .hold(3, "1-4", &["A1"], 50, 55, Done)
            .book(3, "1-4", "1-5", 60, 65, Done);
        assert!(flagged(&h, &end(&[("1-5", &["A1"])], &[])).is_empty());
    }

    #[test]
    fn a_hold_granted_after_a_refused_release_is_caught_where_double_hold_is_not() {
        // The release was refused, so 1-1 still held A1 when 1-2 was granted. The sufficient
        // check counts a release from its invoke whatever its outcome, so it cannot see this.
        let h = History::default()
            .hold(1, "1-1", &["A1"], 0, 5, Done)
            .release(1, "1-1", 10, 12, Fail)
            .hold(2, "1-2", &["A1"], 20, 25, Done);
        let fin = end(&[], &["A1"]);
        let sufficient = crate::chaos::checker::check(
            &h.0,
            &FinalState { shows: fin.shows.clone(), ..FinalState::default() },
        );
        assert!(
            !sufficient.anomalies.iter().any(|a| a.kind == "double-hold"),
            "{:?}",
            sufficient.anomalies
        );
        assert_eq!(flagged(&h, &fin), ["A1:NotLinearizable"]);
    }

    #[test]
    fn overlapping_holds_sales_of_held_seats_and_resales_are_caught() {
        let overlapping = History::default().hold(1, "1-1", &["A1", "A2"], 0, 5, Done).hold(
            2,
            "1-2",
            &["A2"],
            6,
            8,
            Done,
        );
        assert_eq!(flagged(&overlapping, &end(&[], &["A1", "A2"])), ["A2:NotLinearizable"]);
        // A booking whose cancel was refused still owns the seat.
        let resold = History::default()
            .hold(1, "1-1", &["B1"], 0, 5, Done)
            .book(1, "1-1", "1-2", 6, 8, Done)
            .cancel(1, "1-2", 10, 12, Fail)
            .hold(2, "1-3", &["B1"], 20, 25, Done);
        assert_eq!(flagged(&resold, &end(&[("1-2", &["B1"])], &[])), ["B1:NotLinearizable"]);
        // The final map contradicts the history: sold to a booking nobody made.
        let phantom =
            History::default().hold(1, "1-1", &["C1"], 0, 5, Done).release(1, "1-1", 6, 8, Done);
        assert_eq!(flagged(&phantom, &end(&[("1-9", &["C1"])], &[])), ["C1:NotLinearizable"]);
        // Or still held although the only hold was released.
        assert_eq!(flagged(&phantom, &end(&[], &["C1"])), ["C1:NotLinearizable"]);
    }

    #[test]
    fn unknown_outcomes_may_or_may_not_have_taken_effect() {
        // An unknown hold, then another hold of the seat: the first may never have happened.
        let h = History::default().hold(1, "x", &["A1"], 0, 5, Info).hold(
            2,
            "1-2",
            &["A1"],
            10,
            15,
            Done,
        );
        assert!(flagged(&h, &end(&[], &["A1"])).is_empty());
        // ... or it happened and is what the final map shows held.
        let h = History::default().hold(1, "x", &["A1"], 0, 5, Info);
        assert!(flagged(&h, &end(&[], &["A1"])).is_empty());
        assert!(flagged(&h, &end(&[], &[])).is_empty());
        // An unknown payment may have failed (seats freed for the next hold) ...
        let h = History::default()
            .hold(1, "1-1", &["B1"], 0, 5, Done)
            .book(1, "1-1", "?", 6, 8, Info)
            .hold(2, "1-3", &["B1"], 20, 25, Done);
        assert!(flagged(&h, &end(&[], &["B1"])).is_empty());
        // ... or succeeded under a booking id nobody learned.
        let h =
            History::default().hold(1, "1-1", &["B2"], 0, 5, Done).book(1, "1-1", "?", 6, 8, Info);
        assert!(flagged(&h, &end(&[("1-7", &["B2"])], &[])).is_empty());
        // A release whose answer was lost, then a hold of the seat.
        let h = History::default()
            .hold(1, "1-1", &["C1"], 0, 5, Done)
            .release(1, "1-1", 6, 8, Info)
            .hold(2, "1-3", &["C1"], 20, 25, Done);
        assert!(flagged(&h, &end(&[], &["C1"])).is_empty());
    }

    #[test]
    fn holds_expire_and_concurrent_operations_may_be_ordered_either_way() {
        // 1-1 expires 600 s after its ok; a hold well after that is fine, one before is not.
        let late = History::default().hold(1, "1-1", &["D1"], 0, 5, Done).hold(
            2,
            "1-2",
            &["D1"],
            700_000,
            700_005,
            Done,
        );
        assert!(flagged(&late, &end(&[], &["D1"])).is_empty());
        let early = History::default().hold(1, "1-1", &["D1"], 0, 5, Done).hold(
            2,
            "1-2",
            &["D1"],
            500_000,
            500_005,
            Done,
        );
        assert_eq!(flagged(&early, &end(&[], &["D1"])), ["D1:NotLinearizable"]);
        // A hold invoked before a concurrent release completed may be ordered after it.
        let concurrent = History::default()
            .hold(1, "1-1", &["E1"], 0, 5, Done)
            .release(1, "1-1", 10, 20, Done)
            .hold(2, "1-2", &["E1"], 9, 15, Done);
        assert!(flagged(&concurrent, &end(&[], &["E1"])).is_empty());
    }

    #[test]
    fn a_hold_answered_after_its_deadline_may_have_expired_before_the_answer() {
        // 1-1 is applied early but its answer comes 10 s later (a retry replayed it), after its
        // 4 s lifetime; 1-2 takes the seat in between. Valid: 1-1 expired before 1-2.
        let mut history = History::default().hold(1, "1-1", &["F1"], 0, 10_000, Done);
        history.0[1].expires_at_ms = Some(1_000_000 + 4_000);
        let valid = history.hold(2, "1-2", &["F1"], 7_000, 9_000, Done);
        assert!(flagged(&valid, &end(&[], &["F1"])).is_empty());
        // Before the deadline (less the slack) it is still a double hold.
        let mut history = History::default().hold(1, "1-1", &["F2"], 0, 10_000, Done);
        history.0[1].expires_at_ms = Some(1_000_000 + 4_000);
        let invalid = history.hold(2, "1-2", &["F2"], 500, 1_000, Done);
        assert_eq!(flagged(&invalid, &end(&[], &["F2"])), ["F2:NotLinearizable"]);
    }

    /// Histories of a simulated store that is linearizable by construction (every operation
    /// takes effect at one instant inside its window; lost answers took effect or not at random)
    /// are all accepted, quickly.
    #[test]
    fn generated_linearizable_histories_are_accepted() {
        use rand::{Rng, SeedableRng};
        for seed in 0..30u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let all = ["A1", "A2", "A3"];
            let mut seat: BTreeMap<&str, Seat> = all.iter().map(|s| (*s, Seat::Free)).collect();
            let mut holds: BTreeMap<String, Vec<&str>> = BTreeMap::new();
            let mut bookings: BTreeMap<String, Vec<&str>> = BTreeMap::new();
            let mut events: Vec<Event> = Vec::new();
            let mut busy_until: Vec<u64> = Vec::new();
            for k in 0..400u64 {
                let lin = 100 + 10 * k;
                let (invoke_at, done_at) =
                    (lin - rng.random_range(0..9), lin + rng.random_range(0..9));
                let p = busy_until.iter().position(|&t| t < invoke_at).unwrap_or_else(|| {
                    busy_until.push(0);
                    busy_until.len() - 1
                });
                busy_until[p] = done_at;
                let lost = rng.random_bool(0.1);
                let applies = !lost || rng.random_bool(0.5);
                let kind = rng.random_range(0..4);
                let mut invoke = ev(p as i64, EventType::Invoke, OpKind::Hold, invoke_at);
                let mut done = ev(p as i64, EventType::Fail, OpKind::Hold, done_at);
                match kind {
                    0 | 1 => {
                        let first = rng.random_range(0..all.len());
                        let want: Vec<&str> =
                            all[first..(first + rng.random_range(1..3)).min(all.len())].to_vec();
                        invoke.seats = seats(&want);
                        if want.iter().all(|s| seat[s] == Seat::Free) && applies {
                            let id = format!("1-{k}");
                            let holder =
                                Holder(if lost { format!("anon-{k}") } else { id.clone() });
                            for s in &want {
                                seat.insert(s, Seat::Held(holder.clone()));
                            }
                            if !lost {
                                holds.insert(id.clone(), want.clone());
                                done.kind = EventType::Ok;
                                done.hold_id = Some(id);
                                done.seats = seats(&want);
                                done.expires_at_ms = Some(u64::MAX / 4);
                            }
                        }
                    }
                    2 => {
                        let Some((id, on)) = holds
                            .iter()
                            .nth(rng.random_range(0..holds.len().max(1)))
                            .map(|(i, o)| (i.clone(), o.clone()))
                        else {
                            continue;
                        };
                        let book = rng.random_bool(0.6);
                        invoke.op = if book { OpKind::Book } else { OpKind::Release };
                        done.op = invoke.op;
                        invoke.hold_id = Some(id.clone());
                        done.hold_id = Some(id.clone());
                        let live = seat[on[0]] == Seat::Held(Holder(id.clone()));
                        if live && applies {
                            holds.remove(&id);
                            let booking = format!("1-b{k}");
                            for s in &on {
                                seat.insert(
                                    s,
                                    if book {
                                        Seat::Sold(Some(booking.clone()).filter(|_| !lost))
                                    } else {
                                        Seat::Free
                                    },
                                );
                            }
                            if book && !lost {
                                bookings.insert(booking.clone(), on.clone());
                                done.booking_id = Some(booking);
                                done.seats = seats(&on);
                            }
                            if !lost {
                                done.kind = EventType::Ok;
                            }
                        }
                    }
                    _ => {
                        let Some((id, on)) = bookings
                            .iter()
                            .nth(rng.random_range(0..bookings.len().max(1)))
                            .map(|(i, o)| (i.clone(), o.clone()))
                        else {
                            continue;
                        };
                        invoke.op = OpKind::Cancel;
                        done.op = OpKind::Cancel;
                        invoke.booking_id = Some(id.clone());
                        done.booking_id = Some(id.clone());
                        if applies {
                            bookings.remove(&id);
                            for s in &on {
                                seat.insert(s, Seat::Free);
                            }
                            if !lost {
                                done.kind = EventType::Ok;
                            }
                        }
                    }
                }
                if lost {
                    done.kind = EventType::Info;
                }
                events.extend([invoke, done]);
            }
            events.sort_by_key(|e| e.time_ns);
            let mut show = ShowFinal::default();
            for (s, state) in &seat {
                match state {
                    Seat::Sold(_) => {
                        let booking = bookings
                            .iter()
                            .find(|(_, on)| on.contains(s))
                            .map_or_else(|| "1-lost".to_owned(), |(b, _)| b.clone());
                        show.bookings.entry(booking).or_default().push((*s).to_owned());
                    }
                    Seat::Held(_) => {
                        show.held.insert((*s).to_owned());
                    }
                    Seat::Free => {}
                }
            }
            let fin = FinalState { shows: BTreeMap::from([(1, show)]), ..FinalState::default() };
            let started = std::time::Instant::now();
            let reports = check(&events, &fin);
            assert!(
                reports.is_empty(),
                "seed {seed}: {:?}",
                reports.iter().map(|r| (&r.seat, &r.verdict)).collect::<Vec<_>>()
            );
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "seed {seed}: {:?}",
                started.elapsed()
            );
        }
    }
}
