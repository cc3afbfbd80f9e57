//! The chaos checker: reads a history and the final state of the cluster and reports every
//! violation of the invariants listed in docs/reliability.md, with the operations involved.
//!
//! Checks, each named by the anomaly kind it reports:
//! - `double-sale`: a seat in two confirmed bookings; `sold-mismatch`: the seat map's sold
//!   seats differ from the confirmed bookings' seats.
//! - `lost-booking`: a booking acknowledged to a client (`ok`) is not confirmed at the end,
//!   unless that client later asked to cancel it.
//! - `double-hold`: per seat, two holds (or a hold and a booking) that *definitely* occupied it
//!   at the same time. An operation takes effect somewhere between its invoke and its
//!   completion, so a hold definitely occupies its seats from its `ok` until the earliest moment
//!   anything could have ended it (the invoke of a release, booking failure or cancel, or its
//!   expiry). A second hold whose whole invoke..ok interval falls inside that window cannot be
//!   linearized: the register "seat s" would hold two owners at once. The check never flags a
//!   history that has a valid linearization, so an anomaly is always real; it is not a complete
//!   linearizability search (histories with unknown outcomes are checked only where they are
//!   decisive).
//! - `not-linearizable`: the complete check ([`super::linearizable`]): per seat, no order of
//!   the operations within their invoke..completion windows (unknown outcomes taking effect or
//!   not) is accepted by a `free | held | sold` register ending in the final seat map. It finds
//!   what `double-hold` cannot (a hold granted while a refused release left the seat held, a
//!   refused cancel, a final map no history explains); a search that gives up is counted as
//!   `linearizability:inconclusive`, not reported.
//! - `money`: every charge ends as exactly one confirmed booking, or exactly one refund.
//! - `hold-not-expired`: seats still held after every hold's expiry passed.
//! - `replica-divergence`: two replicas of a group at the same applied index with different
//!   state digests.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::history::{Event, EventType, OpKind};

/// Slack added to hold expiries, covering clock differences between client and cluster.
pub const EXPIRY_SLACK_MS: u64 = 2_000;

/// Final state of one show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShowFinal {
    /// Confirmed bookings: id -> seats.
    pub bookings: BTreeMap<String, Vec<String>>,
    /// Seats the seat map shows sold.
    pub sold: BTreeSet<String>,
    /// Seats the seat map shows held.
    pub held: BTreeSet<String>,
}

/// A replica's final position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaFinal {
    /// Node id.
    pub node: u64,
    /// Group id.
    pub group: u64,
    /// Applied index.
    pub applied: u64,
    /// State digest at `applied`.
    pub digest: u64,
}

/// The payment ledger at the end: charges by key (booking id) with their reference, refunds
/// by key with the reference of the charge they refund.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerFinal {
    /// Charge key -> charge reference.
    pub charges: BTreeMap<String, String>,
    /// Refund key -> refunded charge reference.
    pub refunds: BTreeMap<String, String>,
}

/// Everything read from the cluster after healing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FinalState {
    /// By show id.
    pub shows: BTreeMap<u64, ShowFinal>,
    /// Every replica's status.
    pub replicas: Vec<ReplicaFinal>,
    /// The merged payment ledger, when it could be read.
    pub ledger: Option<LedgerFinal>,
    /// Wall-clock ms at which the seat maps were read (for the expiry check).
    pub read_at_ms: u64,
}

/// One violated invariant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Stable kind (see the module docs).
    pub kind: String,
    /// What is wrong.
    pub detail: String,
    /// The history events involved.
    pub ops: Vec<Event>,
}

/// The checker's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Operations by kind and result (`hold:ok`, `book:info`, …).
    pub counts: BTreeMap<String, u64>,
    /// Nemesis events (faults injected and healed).
    pub faults: Vec<String>,
    /// Violations found.
    pub anomalies: Vec<Anomaly>,
}

impl Verdict {
    /// Whether no invariant was violated.
    pub fn valid(&self) -> bool {
        self.anomalies.is_empty()
    }
}

fn anomaly(kind: &str, detail: String, ops: Vec<Event>) -> Anomaly {
    Anomaly { kind: kind.into(), detail, ops }
}

/// An operation: its invoke and its completion (if any).
#[derive(Debug, Clone)]
struct Op {
    invoke: Event,
    done: Option<Event>,
}

impl Op {
    fn result(&self) -> EventType {
        self.done.as_ref().map_or(EventType::Info, |d| d.kind)
    }
}

/// Pairs invokes with completions per process (each process runs one operation at a time).
fn operations(history: &[Event]) -> Vec<Op> {
    let mut open: BTreeMap<i64, usize> = BTreeMap::new();
    let mut ops: Vec<Op> = Vec::new();
    for event in history.iter().filter(|e| e.op != OpKind::Nemesis) {
        match event.kind {
            EventType::Invoke => {
                open.insert(event.process, ops.len());
                ops.push(Op { invoke: event.clone(), done: None });
            }
            _ => {
                if let Some(i) = open.remove(&event.process) {
                    ops[i].done = Some(event.clone());
                }
            }
        }
    }
    ops
}

/// Checks a history against the final state.
pub fn check(history: &[Event], state: &FinalState) -> Verdict {
    let mut verdict = Verdict::default();
    let ops = operations(history);
    for op in &ops {
        let result = match op.result() {
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            _ => "info",
        };
        let name = serde_json::to_value(op.invoke.op).ok();
        let name = name.as_ref().and_then(|v| v.as_str()).unwrap_or("op");
        *verdict.counts.entry(format!("{name}:{result}")).or_default() += 1;
    }
    verdict.faults = history
        .iter()
        .filter(|e| e.op == OpKind::Nemesis)
        .map(|e| format!("{:.1}s {}", e.time_ns as f64 / 1e9, e.detail))
        .collect();
    check_final_bookings(state, &mut verdict);
    check_acknowledged(&ops, state, &mut verdict);
    check_occupancy(&ops, &mut verdict);
    check_linearizable(history, state, &mut verdict);
    check_money(state, &mut verdict);
    check_expiry(&ops, state, &mut verdict);
    check_replicas(state, &mut verdict);
    verdict
}

fn check_final_bookings(state: &FinalState, verdict: &mut Verdict) {
    for (show, fin) in &state.shows {
        let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
        for (booking, seats) in &fin.bookings {
            for seat in seats {
                if let Some(other) = owner.insert(seat, booking) {
                    verdict.anomalies.push(anomaly(
                        "double-sale",
                        format!("show {show}: seat {seat} in bookings {other} and {booking}"),
                        Vec::new(),
                    ));
                }
            }
        }
        let booked: BTreeSet<String> = owner.keys().map(|s| (*s).to_owned()).collect();
        if booked != fin.sold {
            verdict.anomalies.push(anomaly(
                "sold-mismatch",
                format!("show {show}: sold seats {:?} != booked seats {booked:?}", fin.sold),
                Vec::new(),
            ));
        }
    }
}

fn check_acknowledged(ops: &[Op], state: &FinalState, verdict: &mut Verdict) {
    let cancel_asked: BTreeSet<&str> = ops
        .iter()
        .filter(|op| op.invoke.op == OpKind::Cancel)
        .filter_map(|op| op.invoke.booking_id.as_deref())
        .collect();
    for op in ops.iter().filter(|op| op.invoke.op == OpKind::Book) {
        let Some(done) = op.done.as_ref().filter(|d| d.kind == EventType::Ok) else {
            continue;
        };
        let Some(booking) = done.booking_id.as_deref() else { continue };
        if cancel_asked.contains(booking) {
            continue;
        }
        let confirmed = state
            .shows
            .get(&done.show)
            .and_then(|fin| fin.bookings.get(booking))
            .is_some_and(|seats| *seats == done.seats);
        if !confirmed {
            verdict.anomalies.push(anomaly(
                "lost-booking",
                format!("booking {booking} was acknowledged but is not confirmed with its seats"),
                vec![op.invoke.clone(), done.clone()],
            ));
        }
    }
}

/// A window during which an operation definitely occupied a seat.
struct Window<'a> {
    from_ns: u64,
    until_ns: u64,
    op: &'a Op,
}

fn check_occupancy(ops: &[Op], verdict: &mut Verdict) {
    // Earliest moment anything could have ended a hold's or booking's occupancy.
    let mut end_hold: BTreeMap<&str, u64> = BTreeMap::new();
    let mut end_booking: BTreeMap<&str, u64> = BTreeMap::new();
    let mut booking_of_hold: BTreeMap<&str, (&str, u64)> = BTreeMap::new();
    for op in ops {
        let at = op.invoke.time_ns;
        match op.invoke.op {
            OpKind::Release => {
                if let Some(h) = op.invoke.hold_id.as_deref() {
                    end_hold.entry(h).and_modify(|t| *t = (*t).min(at)).or_insert(at);
                }
            }
            OpKind::Book => {
                let Some(h) = op.invoke.hold_id.as_deref() else { continue };
                match op.done.as_ref() {
                    // A confirmed booking keeps the seats: the hold becomes the booking.
                    Some(done) if done.kind == EventType::Ok => {
                        if let Some(b) = done.booking_id.as_deref() {
                            booking_of_hold.insert(h, (b, done.time_ns));
                        }
                    }
                    // A failed or unknown payment may have released the hold.
                    _ => {
                        end_hold.entry(h).and_modify(|t| *t = (*t).min(at)).or_insert(at);
                    }
                }
            }
            OpKind::Cancel => {
                if let Some(b) = op.invoke.booking_id.as_deref() {
                    end_booking.entry(b).and_modify(|t| *t = (*t).min(at)).or_insert(at);
                }
            }
            OpKind::Hold | OpKind::Nemesis => {}
        }
    }
    let mut windows: BTreeMap<(u64, &str), Vec<Window<'_>>> = BTreeMap::new();
    for op in ops.iter().filter(|op| op.invoke.op == OpKind::Hold) {
        let Some(done) = op.done.as_ref().filter(|d| d.kind == EventType::Ok) else { continue };
        let Some(hold) = done.hold_id.as_deref() else { continue };
        // Expiry, converted from wall clock to the history's clock, minus slack.
        let expiry_ns = done.expires_at_ms.map_or(u64::MAX, |at| {
            let left_ms = at.saturating_sub(done.wall_ms).saturating_sub(EXPIRY_SLACK_MS);
            done.time_ns.saturating_add(left_ms.saturating_mul(1_000_000))
        });
        let mut until = end_hold.get(hold).copied().unwrap_or(u64::MAX).min(expiry_ns);
        if let Some((booking, _)) = booking_of_hold.get(hold) {
            // Booked: occupancy continues until a cancel could have freed it.
            until = end_booking.get(booking).copied().unwrap_or(u64::MAX);
        }
        for seat in &done.seats {
            windows.entry((done.show, seat.as_str())).or_default().push(Window {
                from_ns: done.time_ns,
                until_ns: until,
                op,
            });
        }
    }
    for ((show, seat), list) in &windows {
        for a in list {
            for b in list {
                let inside = b.op.invoke.time_ns >= a.from_ns
                    && b.from_ns <= a.until_ns
                    && !std::ptr::eq(a.op, b.op);
                if inside {
                    let mut involved = vec![a.op.invoke.clone(), b.op.invoke.clone()];
                    involved.extend(a.op.done.clone());
                    involved.extend(b.op.done.clone());
                    verdict.anomalies.push(anomaly(
                        "double-hold",
                        format!("show {show}: seat {seat} held by two holds at once"),
                        involved,
                    ));
                }
            }
        }
    }
}

fn check_linearizable(history: &[Event], state: &FinalState, verdict: &mut Verdict) {
    for report in super::linearizable::check(history, state) {
        match report.verdict {
            super::linearizable::SeatVerdict::NotLinearizable => verdict.anomalies.push(anomaly(
                "not-linearizable",
                format!(
                    "show {}: seat {}: no order of its operations is valid for a seat register",
                    report.show, report.seat
                ),
                report.events,
            )),
            _ => *verdict.counts.entry("linearizability:inconclusive".into()).or_default() += 1,
        }
    }
}

fn check_money(state: &FinalState, verdict: &mut Verdict) {
    let Some(ledger) = &state.ledger else { return };
    let confirmed: BTreeSet<&str> =
        state.shows.values().flat_map(|fin| fin.bookings.keys().map(String::as_str)).collect();
    let mut refunds_of: BTreeMap<&str, usize> = BTreeMap::new();
    for charge_ref in ledger.refunds.values() {
        *refunds_of.entry(charge_ref.as_str()).or_default() += 1;
    }
    for (key, reference) in &ledger.charges {
        let refunds = refunds_of.get(reference.as_str()).copied().unwrap_or(0);
        let booked = confirmed.contains(key.as_str());
        let problem = match (booked, refunds) {
            (true, 0) | (false, 1) => None,
            (true, _) => Some("confirmed and refunded"),
            (false, 0) => Some("charged, but neither booked nor refunded"),
            (false, _) => Some("refunded more than once"),
        };
        if let Some(problem) = problem {
            verdict.anomalies.push(anomaly(
                "money",
                format!("charge {key} ({reference}): {problem}"),
                Vec::new(),
            ));
        }
    }
}

fn check_expiry(ops: &[Op], state: &FinalState, verdict: &mut Verdict) {
    // Holds not yet expired when the maps were read may legitimately still hold seats.
    let latest_expiry = ops
        .iter()
        .filter(|op| op.invoke.op == OpKind::Hold)
        .filter_map(|op| op.done.as_ref().and_then(|d| d.expires_at_ms))
        .max()
        .unwrap_or(0);
    if state.read_at_ms < latest_expiry + EXPIRY_SLACK_MS {
        return;
    }
    for (show, fin) in &state.shows {
        if !fin.held.is_empty() {
            verdict.anomalies.push(anomaly(
                "hold-not-expired",
                format!("show {show}: seats {:?} still held after every hold expired", fin.held),
                Vec::new(),
            ));
        }
    }
}

fn check_replicas(state: &FinalState, verdict: &mut Verdict) {
    let mut seen: BTreeMap<(u64, u64), (u64, u64)> = BTreeMap::new();
    for r in &state.replicas {
        match seen.get(&(r.group, r.applied)) {
            Some((node, digest)) if *digest != r.digest => verdict.anomalies.push(anomaly(
                "replica-divergence",
                format!(
                    "group {} at index {}: node {node} digest {digest:x}, node {} digest {:x}",
                    r.group, r.applied, r.node, r.digest
                ),
                Vec::new(),
            )),
            Some(_) => {}
            None => {
                seen.insert((r.group, r.applied), (r.node, r.digest));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

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

    fn hold(process: i64, id: &str, seats: &[&str], invoke: u64, ok: u64) -> Vec<Event> {
        let mut done = ev(process, EventType::Ok, OpKind::Hold, ok);
        done.hold_id = Some(id.into());
        done.seats = seats.iter().map(|s| (*s).to_owned()).collect();
        done.expires_at_ms = Some(1_000_000 + ok + 600_000);
        vec![ev(process, EventType::Invoke, OpKind::Hold, invoke), done]
    }

    fn release(process: i64, id: &str, invoke: u64, ok: u64) -> Vec<Event> {
        let mut start = ev(process, EventType::Invoke, OpKind::Release, invoke);
        start.hold_id = Some(id.into());
        vec![start, ev(process, EventType::Ok, OpKind::Release, ok)]
    }

    fn booked(id: &str, hold_id: &str, seats: &[&str], t: u64) -> Vec<Event> {
        let mut start = ev(9, EventType::Invoke, OpKind::Book, t);
        start.hold_id = Some(hold_id.into());
        let mut done = ev(9, EventType::Ok, OpKind::Book, t + 1);
        done.booking_id = Some(id.into());
        done.seats = seats.iter().map(|s| (*s).to_owned()).collect();
        vec![start, done]
    }

    fn state(bookings: &[(&str, &[&str])]) -> FinalState {
        let mut show = ShowFinal::default();
        for (id, seats) in bookings {
            let seats: Vec<String> = seats.iter().map(|s| (*s).to_owned()).collect();
            show.sold.extend(seats.iter().cloned());
            show.bookings.insert((*id).to_owned(), seats);
        }
        FinalState { shows: BTreeMap::from([(1, show)]), read_at_ms: 0, ..FinalState::default() }
    }

    fn kinds(verdict: &Verdict) -> Vec<&str> {
        verdict.anomalies.iter().map(|a| a.kind.as_str()).collect()
    }

    #[test]
    fn a_clean_history_is_valid() {
        let mut history = hold(1, "1-1", &["A1"], 0, 5);
        history.extend(release(1, "1-1", 10, 12));
        history.extend(hold(2, "1-2", &["A1"], 11, 20));
        history.extend(booked("1-3", "1-2", &["A1"], 30));
        let verdict = check(&history, &state(&[("1-3", &["A1"])]));
        assert!(verdict.valid(), "{:?}", verdict.anomalies);
        assert_eq!(verdict.counts["hold:ok"], 2);
    }

    #[test]
    fn overlapping_holds_of_one_seat_are_caught() {
        // Hold 1-2 was granted while 1-1 definitely still held A1: a doctored history of a
        // build that skipped the conflict check.
        let mut history = hold(1, "1-1", &["A1", "A2"], 0, 5);
        history.extend(hold(2, "1-2", &["A2"], 6, 8));
        history.extend(release(1, "1-1", 10, 12));
        let verdict = check(&history, &state(&[]));
        assert!(kinds(&verdict).contains(&"double-hold"), "{:?}", verdict.anomalies);
        assert_eq!(verdict.anomalies[0].ops.len(), 4, "both holds are reported");
    }

    #[test]
    fn a_hold_that_may_have_followed_a_release_is_not_flagged() {
        // 1-2 was invoked before the release completed: it may be ordered after it.
        let mut history = hold(1, "1-1", &["A1"], 0, 5);
        history.extend(release(1, "1-1", 10, 20));
        history.extend(hold(2, "1-2", &["A1"], 9, 15));
        let verdict = check(&history, &state(&[]));
        assert!(verdict.valid(), "{:?}", verdict.anomalies);
    }

    #[test]
    fn lost_and_double_sold_bookings_are_caught() {
        let mut history = hold(1, "1-1", &["A1"], 0, 5);
        history.extend(booked("1-2", "1-1", &["A1"], 6));
        // Final state: the acknowledged booking vanished, and two others share a seat.
        let verdict = check(&history, &state(&[("1-7", &["B1"]), ("1-8", &["B1"])]));
        let found = kinds(&verdict);
        assert!(found.contains(&"lost-booking"), "{found:?}");
        assert!(found.contains(&"double-sale"), "{found:?}");
    }

    #[test]
    fn money_without_ticket_or_refund_is_caught() {
        let mut fin = state(&[("1-2", &["A1"])]);
        fin.ledger = Some(LedgerFinal {
            charges: BTreeMap::from([
                ("1-2".into(), "ch_1".into()),
                ("1-5".into(), "ch_2".into()),
                ("1-6".into(), "ch_3".into()),
            ]),
            refunds: BTreeMap::from([
                ("refund:1-6".into(), "ch_3".into()),
                ("refund:1-6b".into(), "ch_3".into()),
            ]),
        });
        let verdict = check(&[], &fin);
        // (With no history, the confirmed booking is also one nobody made: `not-linearizable`.)
        let details: Vec<&str> = verdict
            .anomalies
            .iter()
            .filter(|a| a.kind == "money")
            .map(|a| a.detail.as_str())
            .collect();
        assert_eq!(details.len(), 2, "{details:?}");
        assert!(details[0].contains("neither booked nor refunded"), "{details:?}");
        assert!(details[1].contains("more than once"), "{details:?}");
    }

    #[test]
    fn diverging_replicas_and_unexpired_holds_are_caught() {
        let mut fin = state(&[]);
        fin.replicas = vec![
            ReplicaFinal { node: 1, group: 3, applied: 10, digest: 7 },
            ReplicaFinal { node: 2, group: 3, applied: 10, digest: 8 },
            ReplicaFinal { node: 3, group: 3, applied: 11, digest: 9 },
        ];
        fin.shows.get_mut(&1).unwrap().held.insert("C3".into());
        fin.read_at_ms = u64::MAX / 2;
        let verdict = check(&hold(1, "1-1", &["C3"], 0, 1), &fin);
        let found = kinds(&verdict);
        assert!(found.contains(&"replica-divergence"), "{found:?}");
        assert!(found.contains(&"hold-not-expired"), "{found:?}");
    }
}
