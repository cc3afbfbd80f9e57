//! Unit and property tests of the inventory state machine against a small model.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proto::command::*;
use proto::ids::*;
use proto::inventory::*;
use proto::layout::*;

use super::*;
use crate::limits::{ROW_SEATS_MAX, TICKET_CODE_BYTES_MAX};

const SHOW: ShowId = ShowId(7);

fn layout() -> Layout {
    Layout {
        rows: vec![
            RowSpec {
                label: "A".into(),
                category: "standard".into(),
                seats: 6,
                aisles_after: vec![3],
            },
            RowSpec {
                label: "B".into(),
                category: "standard".into(),
                seats: 6,
                aisles_after: vec![],
            },
            RowSpec {
                label: "C".into(),
                category: "premium".into(),
                seats: 4,
                aisles_after: vec![],
            },
        ],
        categories: vec![
            CategorySpec { name: "standard".into(), price_minor: 200 },
            CategorySpec { name: "premium".into(), price_minor: 500 },
        ],
        currency: "INR".into(),
    }
}

fn entry(now_ms: u64, request_id: Option<&str>, command: Command) -> LogCommand {
    LogCommand { v: COMMAND_VERSION, now_ms, request_id: request_id.map(str::to_owned), command }
}

fn created() -> Inventory {
    let mut inv = Inventory::default();
    let create = Command::CreateShow {
        show_id: SHOW,
        title: "Film".into(),
        starts_at_ms: 10_000_000,
        layout: layout(),
    };
    assert_eq!(
        inv.apply(1, &entry(0, None, create)),
        Ok(Reply::ShowCreated { show_id: SHOW, capacity: 16 })
    );
    inv
}

fn seats(ids: &[&str]) -> SeatSelection {
    SeatSelection::Seats(ids.iter().map(|s| SeatId((*s).into())).collect())
}

fn hold_cmd(owner: &str, selection: SeatSelection) -> Command {
    Command::Hold {
        show_id: SHOW,
        owner: OwnerId(owner.into()),
        selection,
        ttl_ms: Some(5_000),
        owner_seats_max: None,
    }
}

fn held(outcome: Outcome) -> HoldView {
    match outcome {
        Ok(Reply::Held { hold }) => hold,
        other => panic!("expected a hold, got {other:?}"),
    }
}

fn booking(outcome: Outcome) -> BookingView {
    match outcome {
        Ok(Reply::Booking { booking }) => booking,
        other => panic!("expected a booking, got {other:?}"),
    }
}

#[test]
fn hold_is_all_or_nothing() {
    let mut inv = created();
    held(inv.apply(2, &entry(1, None, hold_cmd("u1", seats(&["A1", "A2"])))));
    let outcome = inv.apply(3, &entry(2, None, hold_cmd("u2", seats(&["A2", "A3"]))));
    assert_eq!(outcome, Err(Rejection::SeatsUnavailable { seats: vec![SeatId("A2".into())] }));
    let QueryResult::SeatMap { seat_map } = inv.query(&Query::SeatMap { show_id: SHOW }) else {
        panic!()
    };
    assert_eq!(seat_map.available, 14, "the failed hold took nothing");
    inv.check_invariants();
}

#[test]
fn hold_rejects_party_over_limit_and_unknown_seats() {
    let mut inv = created();
    let many: Vec<String> =
        (1..=6).map(|n| format!("A{n}")).chain((1..=6).map(|n| format!("B{n}"))).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert!(matches!(
        inv.apply(2, &entry(1, None, hold_cmd("u", seats(&many)))),
        Err(Rejection::InvalidParty { .. })
    ));
    assert!(matches!(
        inv.apply(3, &entry(1, None, hold_cmd("u", seats(&[])))),
        Err(Rejection::InvalidParty { .. })
    ));
    assert!(matches!(
        inv.apply(4, &entry(1, None, hold_cmd("u", seats(&["A1", "A1"])))),
        Err(Rejection::InvalidParty { .. })
    ));
    for bad in ["Z1", "A0", "A7", "A01", "1A", ""] {
        assert_eq!(
            inv.apply(5, &entry(1, None, hold_cmd("u", seats(&[bad])))),
            Err(Rejection::UnknownSeats { seats: vec![SeatId(bad.into())] }),
            "{bad}"
        );
    }
}

#[test]
fn owner_hold_limit_is_enforced_per_show() {
    let mut inv = created();
    held(inv.apply(2, &entry(1, None, hold_cmd("u", seats(&["A1"])))));
    held(inv.apply(3, &entry(1, None, hold_cmd("u", seats(&["A2"])))));
    assert_eq!(
        inv.apply(4, &entry(1, None, hold_cmd("u", seats(&["A3"])))),
        Err(Rejection::TooManyHolds { holds_per_owner_max: HOLDS_PER_OWNER_MAX })
    );
    held(inv.apply(5, &entry(1, None, hold_cmd("other", seats(&["A3"])))));
}

#[test]
fn expire_due_frees_seats_at_expiry() {
    let mut inv = created();
    let hold = held(inv.apply(2, &entry(1_000, None, hold_cmd("u", seats(&["C1"])))));
    assert_eq!(hold.expires_at_ms, 6_000);
    assert_eq!(
        inv.apply(3, &entry(5_999, None, Command::ExpireDue)),
        Ok(Reply::Expired { holds: 0, checkouts: 0 })
    );
    assert_eq!(
        inv.apply(4, &entry(6_000, None, Command::ExpireDue)),
        Ok(Reply::Expired { holds: 1, checkouts: 0 })
    );
    held(inv.apply(5, &entry(6_001, None, hold_cmd("v", seats(&["C1"])))));
    let QueryResult::Hold { hold } = inv.query(&Query::Hold { hold_id: hold.hold_id }) else {
        panic!()
    };
    assert_eq!(hold.status, HoldStatus::Expired);
    inv.check_invariants();
}

#[test]
fn expired_hold_is_freed_even_without_an_expire_entry() {
    let mut inv = created();
    let hold = held(inv.apply(2, &entry(1_000, None, hold_cmd("u", seats(&["C1"])))));
    // A later command at log time past the expiry sees the seat free.
    held(inv.apply(3, &entry(7_000, None, hold_cmd("v", seats(&["C1"])))));
    let checkout = Command::BeginCheckout {
        hold_id: hold.hold_id,
        owner: OwnerId("u".into()),
        window_ms: 1000,
    };
    assert_eq!(inv.apply(4, &entry(7_001, None, checkout)), Err(Rejection::HoldExpired));
}

#[test]
fn time_never_runs_backwards() {
    let mut inv = created();
    let hold = held(inv.apply(2, &entry(10_000, None, hold_cmd("u", seats(&["A1"])))));
    // A new leader with a slow clock stamps an older time: log time stays at 10 000.
    held(inv.apply(3, &entry(50, None, hold_cmd("v", seats(&["A2"])))));
    assert_eq!(inv.now_ms(), 10_000);
    assert_eq!(hold.expires_at_ms, 15_000);
}

#[test]
fn checkout_confirm_and_cancel_round_trip() {
    let mut inv = created();
    let hold = held(inv.apply(2, &entry(1, None, hold_cmd("u", seats(&["C1", "C2"])))));
    assert_eq!(hold.amount, Money { amount_minor: 1000, currency: "INR".into() });
    let owner = OwnerId("u".into());
    let pending = booking(inv.apply(
        3,
        &entry(
            2,
            None,
            Command::BeginCheckout {
                hold_id: hold.hold_id,
                owner: owner.clone(),
                window_ms: 60_000,
            },
        ),
    ));
    assert_eq!(pending.status, BookingStatus::PendingPayment);
    // Pinned: the hold's own expiry no longer frees the seats during payment.
    assert_eq!(
        inv.apply(4, &entry(10_000, None, Command::ExpireDue)),
        Ok(Reply::Expired { holds: 0, checkouts: 0 })
    );
    let confirmed = booking(inv.apply(
        5,
        &entry(
            10_001,
            None,
            Command::Confirm {
                booking_id: pending.booking_id,
                payment_ref: "pay_1".into(),
                ticket_code: None,
            },
        ),
    ));
    assert_eq!(confirmed.status, BookingStatus::Confirmed);
    assert!(confirmed.ticket_code.as_deref().is_some_and(|c| c.starts_with("MQ") && c.len() == 10));
    let cancel = |owner: &str| Command::CancelBooking {
        booking_id: pending.booking_id,
        owner: OwnerId(owner.into()),
        refund_ref: "ref_1".into(),
    };
    let request =
        |owner: Option<&str>, refund_minor: i64, deadline_ms: u64| Command::RequestCancel {
            booking_id: pending.booking_id,
            owner: owner.map(|o| OwnerId(o.into())),
            refund_minor,
            deadline_ms,
        };
    // Completing a cancellation that was never requested, or someone else's, is refused.
    assert_eq!(inv.apply(6, &entry(10_002, None, cancel("x"))), Err(Rejection::NotOwner));
    assert_eq!(
        inv.apply(7, &entry(10_002, None, cancel("u"))),
        Err(Rejection::BookingWrongState { status: BookingStatus::Confirmed })
    );
    assert_eq!(
        inv.apply(8, &entry(10_002, None, request(Some("x"), 1000, 20_000))),
        Err(Rejection::NotOwner)
    );
    // The policy cutoff is checked against log time, not the proposer's clock.
    assert_eq!(
        inv.apply(9, &entry(10_002, None, request(Some("u"), 1000, 10_001))),
        Err(Rejection::CancellationClosed { deadline_ms: 10_001 })
    );
    for bad in [-1, 1001] {
        assert!(matches!(
            inv.apply(10, &entry(10_002, None, request(Some("u"), bad, 20_000))),
            Err(Rejection::InvalidRefund { .. })
        ));
    }
    let cancelling = booking(inv.apply(11, &entry(10_003, None, request(Some("u"), 500, 20_000))));
    assert_eq!(cancelling.status, BookingStatus::Cancelling);
    assert_eq!(cancelling.refund_minor, Some(500));
    // Until the refund is issued the seats stay sold, and the sweeper sees the booking.
    assert!(matches!(
        inv.apply(12, &entry(10_004, None, hold_cmd("v", seats(&["C1"])))),
        Err(Rejection::SeatsUnavailable { .. })
    ));
    let QueryResult::StaleCheckouts { cancelling: listed, .. } =
        inv.query(&Query::StaleCheckouts { before_ms: 10_003, failed_after: None, limit: 10 })
    else {
        panic!()
    };
    assert_eq!(listed.iter().map(|b| b.booking_id).collect::<Vec<_>>(), [pending.booking_id]);
    assert_eq!(
        inv.apply(13, &entry(10_004, None, request(Some("u"), 500, 20_000))),
        Err(Rejection::BookingWrongState { status: BookingStatus::Cancelling })
    );
    inv.check_invariants();
    let cancelled = booking(inv.apply(14, &entry(10_005, None, cancel("u"))));
    assert_eq!(cancelled.status, BookingStatus::Cancelled);
    assert_eq!(cancelled.refund_ref.as_deref(), Some("ref_1"));
    assert_eq!(cancelled.refund_minor, Some(500));
    held(inv.apply(15, &entry(10_006, None, hold_cmd("v", seats(&["C1", "C2"])))));
    inv.check_invariants();
}

#[test]
fn cancelling_a_show_stops_sales_and_owes_every_booking_a_full_refund() {
    let mut inv = created();
    // A confirmed booking, a pending checkout and an active hold.
    let hold = held(inv.apply(2, &entry(1, None, hold_cmd("u", seats(&["C1"])))));
    let checkout =
        |hold_id| Command::BeginCheckout { hold_id, owner: OwnerId("u".into()), window_ms: 60_000 };
    let confirmed = booking(inv.apply(3, &entry(2, None, checkout(hold.hold_id))));
    booking(inv.apply(
        4,
        &entry(
            3,
            None,
            Command::Confirm {
                booking_id: confirmed.booking_id,
                payment_ref: "p".into(),
                ticket_code: None,
            },
        ),
    ));
    let hold2 = held(inv.apply(5, &entry(4, None, hold_cmd("u", seats(&["C2"])))));
    let pending = booking(inv.apply(6, &entry(5, None, checkout(hold2.hold_id))));
    held(inv.apply(7, &entry(6, None, hold_cmd("v", seats(&["A1"])))));

    let reply = inv.apply(8, &entry(7, None, Command::CancelShow { show_id: SHOW }));
    assert_eq!(
        reply,
        Ok(Reply::ShowCancelled {
            show_id: SHOW,
            cancelling: vec![confirmed.booking_id],
            released: 2
        })
    );
    inv.check_invariants();
    let QueryResult::Booking { booking: b } =
        inv.query(&Query::Booking { booking_id: confirmed.booking_id })
    else {
        panic!()
    };
    assert_eq!((b.status, b.refund_minor), (BookingStatus::Cancelling, Some(500)));
    let QueryResult::Booking { booking: p } =
        inv.query(&Query::Booking { booking_id: pending.booking_id })
    else {
        panic!()
    };
    assert_eq!(p.status, BookingStatus::Failed);
    // No new holds; a repeat changes nothing.
    assert_eq!(
        inv.apply(9, &entry(8, None, hold_cmd("w", seats(&["B1"])))),
        Err(Rejection::ShowCancelled { show_id: SHOW })
    );
    assert_eq!(
        inv.apply(10, &entry(9, None, Command::CancelShow { show_id: SHOW })),
        Ok(Reply::ShowCancelled { show_id: SHOW, cancelling: vec![], released: 0 })
    );
    let QueryResult::SeatMap { seat_map } = inv.query(&Query::SeatMap { show_id: SHOW }) else {
        panic!()
    };
    assert!(seat_map.cancelled);
    assert_eq!(seat_map.available, 15, "only the cancelling booking's seat is still sold");
    inv.check_invariants();
}

#[test]
fn owner_bookings_lists_only_the_owners_newest_first_and_survives_a_snapshot() {
    let mut inv = created();
    let mut mine = Vec::new();
    for (i, (owner, seat)) in
        [("u", "A1"), ("v", "A2"), ("u", "A3"), ("u", "A4")].iter().enumerate()
    {
        let index = 2 + 3 * i as u64;
        let hold =
            held(inv.apply(index, &entry(index * 10, None, hold_cmd(owner, seats(&[seat])))));
        let checkout = Command::BeginCheckout {
            hold_id: hold.hold_id,
            owner: OwnerId((*owner).into()),
            window_ms: 60_000,
        };
        let b = booking(inv.apply(index + 1, &entry(index * 10 + 1, None, checkout)));
        assert_eq!(b.created_at_ms, index * 10 + 1);
        // Confirmed, so the owner's checking-out holds do not reach the per-owner limit.
        let confirm = Command::Confirm {
            booking_id: b.booking_id,
            payment_ref: "p".into(),
            ticket_code: None,
        };
        booking(inv.apply(index + 2, &entry(index * 10 + 2, None, confirm)));
        if *owner == "u" {
            mine.push(b.booking_id);
        }
    }
    mine.reverse();
    let list = |inv: &Inventory, limit| {
        let query = Query::OwnerBookings { owner: OwnerId("u".into()), limit };
        let QueryResult::Bookings { bookings } = inv.query(&query) else { panic!() };
        bookings.into_iter().map(|b| b.booking_id).collect::<Vec<_>>()
    };
    assert_eq!(list(&inv, 10), mine, "u's bookings, newest first");
    assert_eq!(list(&inv, 2), mine[..2]);
    let restored = Inventory::from_snapshot(&serde_json::to_vec(&inv).unwrap()).unwrap();
    assert_eq!(list(&restored, 10), mine, "the index is rebuilt from a snapshot");
    restored.check_invariants();
}

#[test]
fn late_payment_after_checkout_expiry_is_rejected() {
    let mut inv = created();
    let hold = held(inv.apply(2, &entry(1, None, hold_cmd("u", seats(&["C1"])))));
    let pending = booking(inv.apply(
        3,
        &entry(
            2,
            None,
            Command::BeginCheckout {
                hold_id: hold.hold_id,
                owner: OwnerId("u".into()),
                window_ms: 1_000,
            },
        ),
    ));
    let late = inv.apply(
        4,
        &entry(
            1_002,
            None,
            Command::Confirm {
                booking_id: pending.booking_id,
                payment_ref: "p".into(),
                ticket_code: None,
            },
        ),
    );
    assert_eq!(late, Err(Rejection::BookingWrongState { status: BookingStatus::Failed }));
    inv.check_invariants();
}

fn begin(inv: &mut Inventory, index: u64, now: u64, seat: &str, window_ms: u64) -> BookingView {
    let hold = held(inv.apply(index, &entry(now, None, hold_cmd("u", seats(&[seat])))));
    let begin =
        Command::BeginCheckout { hold_id: hold.hold_id, owner: OwnerId("u".into()), window_ms };
    booking(inv.apply(index + 1, &entry(now, None, begin)))
}

fn stale(
    inv: &Inventory,
    before_ms: u64,
    after: Option<FailedCursor>,
    limit: u32,
) -> (Vec<BookingId>, Vec<FailedCheckout>) {
    let query = Query::StaleCheckouts { before_ms, failed_after: after, limit };
    let QueryResult::StaleCheckouts { pending, failed, .. } = inv.query(&query) else { panic!() };
    (pending.into_iter().map(|b| b.booking_id).collect(), failed)
}

#[test]
fn stale_checkouts_lists_pending_checkouts_begun_before_the_cutoff() {
    let mut inv = created();
    let old = begin(&mut inv, 2, 1_000, "A1", 60_000);
    let young = begin(&mut inv, 4, 5_000, "A2", 10_000);
    assert_eq!(stale(&inv, 999, None, 10).0, Vec::<BookingId>::new());
    assert_eq!(stale(&inv, 1_000, None, 10).0, vec![old.booking_id]);
    // Ordered by payment deadline: the young checkout's window ends first.
    assert_eq!(stale(&inv, 5_000, None, 10).0, vec![young.booking_id, old.booking_id]);
    assert_eq!(stale(&inv, 5_000, None, 1).0, vec![young.booking_id], "limit applies");
    let confirm =
        Command::Confirm { booking_id: old.booking_id, payment_ref: "p".into(), ticket_code: None };
    booking(inv.apply(6, &entry(6_000, None, confirm)));
    assert_eq!(stale(&inv, u64::MAX, None, 10).0, vec![young.booking_id], "settled ones drop out");
    assert!(stale(&inv, u64::MAX, None, 10).1.is_empty(), "nothing failed yet");
}

#[test]
fn stale_checkouts_lists_each_failure_once_in_log_order_until_retention() {
    let mut inv = created();
    let expiring = begin(&mut inv, 2, 1_000, "A1", 1_000);
    let failing = begin(&mut inv, 4, 1_500, "A2", 60_000);
    let fail = Command::FailCheckout {
        booking_id: failing.booking_id,
        reason: "declined".into(),
        keep_hold: false,
    };
    // Entry 6 first expires `expiring` (deadline 2 000), then fails `failing`.
    booking(inv.apply(6, &entry(2_500, None, fail)));
    let (pending, failed) = stale(&inv, u64::MAX, None, 10);
    assert!(pending.is_empty());
    let ids: Vec<BookingId> = failed.iter().map(|f| f.booking.booking_id).collect();
    assert_eq!(ids, vec![expiring.booking_id, failing.booking_id]);
    assert!(failed.iter().all(|f| f.failed_at_ms == 2_500 && f.cursor.index == 6));
    assert_eq!(failed[0].booking.failure_reason.as_deref(), Some("payment window expired"));
    // Resuming after the first cursor yields only the second; after the last, nothing.
    let (_, rest) = stale(&inv, u64::MAX, Some(failed[0].cursor), 10);
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].booking.booking_id, failing.booking_id);
    assert!(stale(&inv, u64::MAX, Some(failed[1].cursor), 10).1.is_empty());
    assert!(stale(&inv, 2_499, None, 10).1.is_empty(), "failed after the cut-off");
    assert_eq!(stale(&inv, u64::MAX, None, 1).1.len(), 1, "limit applies");
    // A later failure sorts after the earlier cursor even at an equal (clamped) log time.
    let later = begin(&mut inv, 7, 0, "A3", 60_000);
    let fail = Command::FailCheckout {
        booking_id: later.booking_id,
        reason: "x".into(),
        keep_hold: false,
    };
    booking(inv.apply(9, &entry(0, None, fail)));
    let (_, rest) = stale(&inv, u64::MAX, Some(failed[1].cursor), 10);
    assert_eq!(
        rest.iter().map(|f| f.booking.booking_id).collect::<Vec<_>>(),
        vec![later.booking_id]
    );
    inv.check_invariants();
    // Retention is log time: an entry an hour later prunes them.
    inv.apply(10, &entry(2_500 + FAILED_CHECKOUT_RETENTION_MS, None, Command::ExpireDue)).unwrap();
    assert!(stale(&inv, u64::MAX, None, 10).1.is_empty());
    inv.check_invariants();
}

#[test]
fn replayed_request_returns_first_outcome_and_acts_once() {
    let mut inv = created();
    let first = inv.apply(2, &entry(1, Some("req-1"), hold_cmd("u", seats(&["A1"]))));
    let replay = inv.apply(3, &entry(2, Some("req-1"), hold_cmd("u", seats(&["A1"]))));
    assert_eq!(first, replay);
    let QueryResult::SeatMap { seat_map } = inv.query(&Query::SeatMap { show_id: SHOW }) else {
        panic!()
    };
    assert_eq!(seat_map.available, 15);
    assert_eq!(
        inv.apply(4, &entry(3, Some("req-1"), hold_cmd("u", seats(&["A2"])))),
        Err(Rejection::RequestIdReused)
    );
}

/// Snapshots and digests list the idempotency table in key order, so two replicas that
/// applied the same commands write the same bytes (whatever in-memory structure holds it:
/// this guards a change of that structure, e.g. to a hash map).
#[test]
fn idempotency_table_snapshots_in_key_order() {
    let ids = ["req-9", "req-10", "b", "a", "req-1", "zz", "req-100", "m"];
    let build = || {
        let mut inv = created();
        for (i, id) in (2u64..).zip(ids) {
            let owner = OwnerId(format!("u{i}"));
            let release = Command::Release { hold_id: HoldId::new(SHOW, 1), owner };
            // No such hold: refused, and the refusal is remembered under its request id.
            assert!(inv.apply(i, &entry(i, Some(id), release)).is_err());
        }
        inv
    };
    let (one, two) = (build(), build());
    assert_eq!(one.to_snapshot(), two.to_snapshot());
    assert_eq!(one.digest(), two.digest());
    let json: serde_json::Value = serde_json::from_slice(&one.to_snapshot()).unwrap();
    let keys: Vec<&str> =
        json["idempotency"].as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted: Vec<&str> = ids.to_vec();
    sorted.sort_unstable();
    // serde_json's map keeps insertion order only with `preserve_order`; check the bytes too.
    let text = String::from_utf8(one.to_snapshot()).unwrap();
    let at: Vec<usize> =
        sorted.iter().map(|id| text.find(&format!("\"{id}\":{{")).unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "keys not in order in {text}");
    assert_eq!(keys.len(), ids.len());
    let back = Inventory::from_snapshot(&one.to_snapshot()).unwrap();
    assert_eq!(back, one);
}

#[test]
fn best_available_prefers_adjacent_centre_seats_without_orphans() {
    let mut inv = created();
    let hold = held(inv.apply(
        2,
        &entry(
            1,
            None,
            hold_cmd(
                "u",
                SeatSelection::BestAvailable { quantity: 2, category: "standard".into() },
            ),
        ),
    ));
    // Rows A and B are standard; B is the sweet-spot row; B3+B4 is the centre block.
    assert_eq!(hold.seats, vec![SeatId("B3".into()), SeatId("B4".into())]);
    // A's aisle after seat 3 splits it into blocks of three: no block of four there, B has
    // only two-seat runs left, so four seats fall back to the first free ones.
    let hold = held(inv.apply(
        3,
        &entry(
            1,
            None,
            hold_cmd(
                "v",
                SeatSelection::BestAvailable { quantity: 4, category: "standard".into() },
            ),
        ),
    ));
    assert_eq!(hold.seats.len(), 4);
    assert_eq!(
        inv.apply(
            4,
            &entry(
                1,
                None,
                hold_cmd(
                    "w",
                    SeatSelection::BestAvailable { quantity: 1, category: "balcony".into() }
                )
            )
        ),
        Err(Rejection::UnknownCategory { category: "balcony".into() })
    );
    inv.check_invariants();
}

#[test]
fn invalid_layouts_are_rejected() {
    let mut inv = Inventory::default();
    let mut bad = layout();
    bad.rows[0].category = "nope".into();
    let create =
        |layout| Command::CreateShow { show_id: SHOW, title: "x".into(), starts_at_ms: 0, layout };
    assert!(matches!(
        inv.apply(1, &entry(0, None, create(bad))),
        Err(Rejection::InvalidLayout { .. })
    ));
    let mut bad = layout();
    bad.rows[1].label = "a1".into();
    assert!(matches!(
        inv.apply(2, &entry(0, None, create(bad))),
        Err(Rejection::InvalidLayout { .. })
    ));
    let mut bad = layout();
    bad.rows[0].seats = ROW_SEATS_MAX + 1;
    assert!(matches!(
        inv.apply(3, &entry(0, None, create(bad))),
        Err(Rejection::InvalidLayout { .. })
    ));
    assert!(matches!(
        inv.apply(4, &entry(0, None, create(layout()))),
        Ok(Reply::ShowCreated { .. })
    ));
    assert_eq!(
        inv.apply(5, &entry(0, None, create(layout()))),
        Err(Rejection::ShowExists { show_id: SHOW })
    );
}

// ---- Property test against a model -------------------------------------------------------

/// What the model believes about a seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelSeat {
    Free,
    Held(HoldId),
    Sold(BookingId),
}

#[derive(Debug, Clone)]
struct ModelHold {
    owner: String,
    seats: Vec<SeatId>,
    expires_at: u64,
    live: bool,
    checking_out: bool,
    /// Declined checkouts it survived.
    kept: u32,
}

#[derive(Debug, Clone)]
struct ModelBooking {
    owner: String,
    hold: HoldId,
    status: BookingStatus,
    deadline: u64,
    amount: i64,
}

/// A deliberately naive model: linear scans, no indexes.
#[derive(Debug, Default)]
struct Model {
    now: u64,
    seats: BTreeMap<SeatId, (String, ModelSeat)>,
    holds: BTreeMap<HoldId, ModelHold>,
    bookings: BTreeMap<BookingId, ModelBooking>,
    replies: BTreeMap<String, (Command, Outcome)>,
    cancelled: bool,
}

impl Model {
    fn new() -> Model {
        let mut m = Model::default();
        for row in layout().rows {
            for n in 1..=row.seats {
                m.seats.insert(
                    SeatId(format!("{}{n}", row.label)),
                    (row.category.clone(), ModelSeat::Free),
                );
            }
        }
        m
    }

    fn free(&mut self, seats: &[SeatId]) {
        for s in seats {
            self.seats.get_mut(s).unwrap().1 = ModelSeat::Free;
        }
    }

    fn advance(&mut self, now: u64) {
        self.now = self.now.max(now);
        let now = self.now;
        let due: Vec<HoldId> = self
            .holds
            .iter()
            .filter(|(_, h)| h.live && !h.checking_out && h.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let seats = self.holds[&id].seats.clone();
            self.free(&seats);
            self.holds.get_mut(&id).unwrap().live = false;
        }
        let due: Vec<BookingId> = self
            .bookings
            .iter()
            .filter(|(_, b)| b.status == BookingStatus::PendingPayment && b.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.fail(id);
        }
    }

    fn fail(&mut self, id: BookingId) {
        let hold = self.bookings[&id].hold;
        self.bookings.get_mut(&id).unwrap().status = BookingStatus::Failed;
        let seats = self.holds[&hold].seats.clone();
        self.free(&seats);
        let h = self.holds.get_mut(&hold).unwrap();
        h.live = false;
        h.checking_out = false;
    }

    fn live_holds_of(&self, owner: &str) -> usize {
        self.holds.values().filter(|h| h.live && h.owner == owner).count()
    }

    fn held_seats_of(&self, owner: &str) -> usize {
        self.holds.values().filter(|h| h.live && h.owner == owner).map(|h| h.seats.len()).sum()
    }

    /// Checks the SUT's outcome for `cmd` (applied at `index`) and updates the model.
    fn check(&mut self, index: u64, cmd: &Command, outcome: &Outcome) {
        match cmd {
            Command::Hold { .. } if self.cancelled => {
                assert_eq!(outcome, &Err(Rejection::ShowCancelled { show_id: SHOW }));
            }
            Command::Hold { owner, selection, ttl_ms, owner_seats_max, .. } => {
                let too_many = self.live_holds_of(&owner.0) >= HOLDS_PER_OWNER_MAX as usize;
                let held = self.held_seats_of(&owner.0);
                let over = |n: usize| owner_seats_max.is_some_and(|max| held + n > max as usize);
                match selection {
                    SeatSelection::Seats(ids) => {
                        let taken: Vec<SeatId> = ids
                            .iter()
                            .filter(|s| self.seats[*s].1 != ModelSeat::Free)
                            .cloned()
                            .collect();
                        let expect_ok = !too_many && taken.is_empty() && !over(ids.len());
                        assert_eq!(outcome.is_ok(), expect_ok, "hold {ids:?}: {outcome:?}");
                        if too_many {
                            assert!(matches!(outcome, Err(Rejection::TooManyHolds { .. })));
                        } else if !taken.is_empty() {
                            assert!(
                                matches!(outcome, Err(Rejection::SeatsUnavailable { .. })),
                                "{outcome:?}"
                            );
                        } else if over(ids.len()) {
                            let expected = Rejection::TooManySeatsHeld {
                                seats_per_owner_max: owner_seats_max.unwrap(),
                                held: held as u32,
                            };
                            assert_eq!(outcome, &Err(expected));
                        }
                    }
                    SeatSelection::BestAvailable { quantity, category } => {
                        let free = self
                            .seats
                            .values()
                            .filter(|(c, s)| c == category && *s == ModelSeat::Free)
                            .count();
                        let expect_ok =
                            !too_many && free >= *quantity as usize && !over(*quantity as usize);
                        assert_eq!(
                            outcome.is_ok(),
                            expect_ok,
                            "best {quantity} {category}: {outcome:?}"
                        );
                    }
                }
                if let Ok(Reply::Held { hold }) = outcome {
                    let id = HoldId::new(SHOW, index);
                    assert_eq!(hold.hold_id, id);
                    assert_eq!(hold.expires_at_ms, self.now + ttl_ms.unwrap());
                    let mut amount = 0;
                    for s in &hold.seats {
                        let (category, state) = self.seats.get_mut(s).unwrap();
                        assert_eq!(
                            *state,
                            ModelSeat::Free,
                            "SUT held a seat the model has taken: {s:?}"
                        );
                        if let SeatSelection::BestAvailable { category: wanted, .. } = selection {
                            assert_eq!(category, wanted);
                        }
                        amount += if category == "premium" { 500 } else { 200 };
                        *state = ModelSeat::Held(id);
                    }
                    assert_eq!(hold.amount.amount_minor, amount);
                    self.holds.insert(
                        id,
                        ModelHold {
                            owner: owner.0.clone(),
                            seats: hold.seats.clone(),
                            expires_at: hold.expires_at_ms,
                            live: true,
                            checking_out: false,
                            kept: 0,
                        },
                    );
                }
            }
            Command::Release { hold_id, owner } => {
                let expect = self.expect_active(*hold_id, &owner.0);
                assert_eq!(outcome.is_ok(), expect.is_ok(), "release: {outcome:?} vs {expect:?}");
                if outcome.is_ok() {
                    let seats = self.holds[hold_id].seats.clone();
                    self.free(&seats);
                    self.holds.get_mut(hold_id).unwrap().live = false;
                }
            }
            Command::BeginCheckout { hold_id, owner, window_ms } => {
                let expect = self.expect_active(*hold_id, &owner.0);
                assert_eq!(outcome.is_ok(), expect.is_ok(), "checkout: {outcome:?} vs {expect:?}");
                if let Ok(Reply::Booking { booking }) = outcome {
                    assert_eq!(booking.booking_id, BookingId::new(SHOW, index));
                    self.holds.get_mut(hold_id).unwrap().checking_out = true;
                    let amount = self.holds[hold_id]
                        .seats
                        .iter()
                        .map(|s| if self.seats[s].0 == "premium" { 500 } else { 200 })
                        .sum();
                    assert_eq!(booking.amount.amount_minor, amount);
                    self.bookings.insert(
                        booking.booking_id,
                        ModelBooking {
                            owner: owner.0.clone(),
                            hold: *hold_id,
                            status: BookingStatus::PendingPayment,
                            deadline: self.now + window_ms,
                            amount,
                        },
                    );
                }
            }
            Command::Confirm { booking_id, .. } => {
                let pending = self
                    .bookings
                    .get(booking_id)
                    .is_some_and(|b| b.status == BookingStatus::PendingPayment);
                assert_eq!(outcome.is_ok(), pending, "confirm: {outcome:?}");
                if pending {
                    let b = self.bookings.get_mut(booking_id).unwrap();
                    b.status = BookingStatus::Confirmed;
                    let hold = b.hold;
                    let h = self.holds.get_mut(&hold).unwrap();
                    h.live = false;
                    h.checking_out = false;
                    for s in h.seats.clone() {
                        self.seats.get_mut(&s).unwrap().1 = ModelSeat::Sold(*booking_id);
                    }
                }
            }
            Command::FailCheckout { booking_id, keep_hold, .. } => {
                let pending = self
                    .bookings
                    .get(booking_id)
                    .is_some_and(|b| b.status == BookingStatus::PendingPayment);
                assert_eq!(outcome.is_ok(), pending, "fail: {outcome:?}");
                if pending {
                    let hold = self.bookings[booking_id].hold;
                    let h = &self.holds[&hold];
                    if *keep_hold && h.expires_at > self.now && h.kept < KEPT_DECLINES_MAX {
                        // The hold is active again: same seats, same expiry.
                        self.bookings.get_mut(booking_id).unwrap().status = BookingStatus::Failed;
                        let h = self.holds.get_mut(&hold).unwrap();
                        h.checking_out = false;
                        h.kept += 1;
                    } else {
                        self.fail(*booking_id);
                    }
                }
            }
            Command::RequestCancel { booking_id, owner, refund_minor, deadline_ms } => {
                let ok = self.bookings.get(booking_id).is_some_and(|b| {
                    b.status == BookingStatus::Confirmed
                        && owner.as_ref().is_none_or(|o| o.0 == b.owner)
                        && self.now <= *deadline_ms
                        && (0..=b.amount).contains(refund_minor)
                });
                assert_eq!(outcome.is_ok(), ok, "request cancel: {outcome:?}");
                if ok {
                    self.bookings.get_mut(booking_id).unwrap().status = BookingStatus::Cancelling;
                }
            }
            Command::CancelBooking { booking_id, owner, .. } => {
                let ok = self
                    .bookings
                    .get(booking_id)
                    .is_some_and(|b| b.status == BookingStatus::Cancelling && b.owner == owner.0);
                assert_eq!(outcome.is_ok(), ok, "cancel: {outcome:?}");
                if ok {
                    self.bookings.get_mut(booking_id).unwrap().status = BookingStatus::Cancelled;
                    let seats = self.holds[&self.bookings[booking_id].hold].seats.clone();
                    self.free(&seats);
                }
            }
            Command::CancelShow { .. } => {
                let mut released = 0;
                let mut cancelling = Vec::new();
                if !self.cancelled {
                    self.cancelled = true;
                    let active: Vec<HoldId> = self
                        .holds
                        .iter()
                        .filter(|(_, h)| h.live && !h.checking_out)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in active {
                        let seats = self.holds[&id].seats.clone();
                        self.free(&seats);
                        self.holds.get_mut(&id).unwrap().live = false;
                        released += 1;
                    }
                    let ids: Vec<BookingId> = self.bookings.keys().copied().collect();
                    for id in ids {
                        match self.bookings[&id].status {
                            BookingStatus::PendingPayment => {
                                self.fail(id);
                                released += 1;
                            }
                            BookingStatus::Confirmed => {
                                self.bookings.get_mut(&id).unwrap().status =
                                    BookingStatus::Cancelling;
                                cancelling.push(id);
                            }
                            _ => {}
                        }
                    }
                }
                assert_eq!(
                    outcome,
                    &Ok(Reply::ShowCancelled { show_id: SHOW, cancelling, released }),
                    "cancel show"
                );
            }
            Command::ExpireDue | Command::CreateShow { .. } => {}
            Command::Meta(_) => assert_eq!(outcome, &Err(Rejection::WrongGroup)),
            Command::Batch(_) => panic!("the model runs one command per entry"),
        }
    }

    fn expect_active(&self, hold_id: HoldId, owner: &str) -> Result<(), &'static str> {
        let h = self.holds.get(&hold_id).ok_or("missing")?;
        if h.owner != owner {
            return Err("owner");
        }
        if !h.live || h.checking_out {
            return Err("not active");
        }
        Ok(())
    }

    /// Compares the model's seat map with the SUT's.
    fn compare(&self, inv: &Inventory) {
        let QueryResult::SeatMap { seat_map } = inv.query(&Query::SeatMap { show_id: SHOW }) else {
            panic!()
        };
        for row in &seat_map.rows {
            for seat in &row.seats {
                let expected = match self.seats[&seat.seat_id].1 {
                    ModelSeat::Free => SeatStatus::Available,
                    ModelSeat::Held(_) => SeatStatus::Held,
                    ModelSeat::Sold(_) => SeatStatus::Sold,
                };
                assert_eq!(seat.status, expected, "seat {:?}", seat.seat_id);
            }
        }
        let sold = self.seats.values().filter(|(_, s)| matches!(s, ModelSeat::Sold(_))).count();
        let QueryResult::Bookings { bookings } = inv.query(&Query::ShowBookings { show_id: SHOW })
        else {
            panic!()
        };
        assert_eq!(
            bookings.iter().map(|b| b.seats.len()).sum::<usize>(),
            sold,
            "sold seats equal confirmed booking seats"
        );
    }
}

/// A step of a generated run: a command template resolved against the ids created so far.
#[derive(Debug, Clone)]
enum Op {
    HoldSeats { owner: u8, seats: Vec<u8>, ttl: u64, cap: Option<u32> },
    HoldBest { owner: u8, quantity: u32, premium: bool, ttl: u64, cap: Option<u32> },
    Release { pick: usize, owner: u8 },
    Checkout { pick: usize, owner: u8, window: u64 },
    Confirm { pick: usize },
    Fail { pick: usize, keep: bool },
    RequestCancel { pick: usize, owner: Option<u8>, refund: i64, deadline_in: u64 },
    Cancel { pick: usize, owner: u8 },
    CancelShow,
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        15 => (0u8..3, prop::collection::vec(0u8..16, 1..4), 1_000u64..8_000, prop::option::of(1u32..7)).prop_map(|(owner, seats, ttl, cap)| Op::HoldSeats { owner, seats, ttl, cap }),
        10 => (0u8..3, 1u32..5, any::<bool>(), 1_000u64..8_000, prop::option::of(1u32..7)).prop_map(|(owner, quantity, premium, ttl, cap)| Op::HoldBest { owner, quantity, premium, ttl, cap }),
        5 => (any::<usize>(), 0u8..3).prop_map(|(pick, owner)| Op::Release { pick, owner }),
        10 => (any::<usize>(), 0u8..3, 500u64..6_000).prop_map(|(pick, owner, window)| Op::Checkout { pick, owner, window }),
        10 => any::<usize>().prop_map(|pick| Op::Confirm { pick }),
        5 => (any::<usize>(), any::<bool>()).prop_map(|(pick, keep)| Op::Fail { pick, keep }),
        5 => (any::<usize>(), prop::option::of(0u8..3), -100i64..2_200, 0u64..4_000).prop_map(|(pick, owner, refund, deadline_in)| Op::RequestCancel { pick, owner, refund, deadline_in }),
        5 => (any::<usize>(), 0u8..3).prop_map(|(pick, owner)| Op::Cancel { pick, owner }),
        1 => Just(Op::CancelShow),
        5 => Just(Op::Expire),
    ]
}

fn seat_by_index(i: u8) -> SeatId {
    let all: Vec<SeatId> = Model::new().seats.keys().cloned().collect();
    all[i as usize % all.len()].clone()
}

/// `now` is the log time of the entry before this one (deadlines straddle the next entry's).
fn resolve(op: &Op, now: u64, holds: &[HoldId], bookings: &[BookingId]) -> Command {
    let owner = |o: u8| OwnerId(format!("user{o}"));
    let pick_hold = |p: usize| {
        if holds.is_empty() {
            HoldId::new(SHOW, 999_999)
        } else {
            holds[p % holds.len()]
        }
    };
    let pick_booking = |p: usize| {
        if bookings.is_empty() {
            BookingId::new(SHOW, 999_999)
        } else {
            bookings[p % bookings.len()]
        }
    };
    match op {
        Op::HoldSeats { owner: o, seats, ttl, cap } => {
            let mut ids: Vec<SeatId> = seats.iter().map(|i| seat_by_index(*i)).collect();
            ids.sort();
            ids.dedup();
            Command::Hold {
                show_id: SHOW,
                owner: owner(*o),
                selection: SeatSelection::Seats(ids),
                ttl_ms: Some(*ttl),
                owner_seats_max: *cap,
            }
        }
        Op::HoldBest { owner: o, quantity, premium, ttl, cap } => Command::Hold {
            show_id: SHOW,
            owner: owner(*o),
            selection: SeatSelection::BestAvailable {
                quantity: *quantity,
                category: if *premium { "premium" } else { "standard" }.into(),
            },
            ttl_ms: Some(*ttl),
            owner_seats_max: *cap,
        },
        Op::Release { pick, owner: o } => {
            Command::Release { hold_id: pick_hold(*pick), owner: owner(*o) }
        }
        Op::Checkout { pick, owner: o, window } => Command::BeginCheckout {
            hold_id: pick_hold(*pick),
            owner: owner(*o),
            window_ms: *window,
        },
        Op::Confirm { pick } => Command::Confirm {
            booking_id: pick_booking(*pick),
            payment_ref: format!("pay{pick}"),
            ticket_code: None,
        },
        Op::Fail { pick, keep } => Command::FailCheckout {
            booking_id: pick_booking(*pick),
            reason: "declined".into(),
            keep_hold: *keep,
        },
        Op::RequestCancel { pick, owner: o, refund, deadline_in } => Command::RequestCancel {
            booking_id: pick_booking(*pick),
            owner: o.map(owner),
            refund_minor: *refund,
            deadline_ms: now + deadline_in,
        },
        Op::CancelShow => Command::CancelShow { show_id: SHOW },
        Op::Cancel { pick, owner: o } => Command::CancelBooking {
            booking_id: pick_booking(*pick),
            owner: owner(*o),
            refund_ref: "refund".into(),
        },
        Op::Expire => Command::ExpireDue,
    }
}

/// Whether two commands are the same request for idempotency: `keep_hold` aside (a leader may
/// clear it, so a retry may differ in it alone).
fn same_request(a: &Command, b: &Command) -> bool {
    let plain = |command: &Command| {
        let mut command = command.clone();
        command.downgrade(COMMAND_VERSION_KEEP_HOLD - 1);
        command
    };
    plain(a) == plain(b)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random runs with advancing log time, replays and expiry match the model at every step,
    /// and keep the structural invariants.
    #[test]
    fn state_machine_matches_model(steps in prop::collection::vec((op(), 0u64..2_500, prop::option::weighted(0.3, 0u8..6)), 1..120)) {
        let mut inv = created();
        let mut model = Model::new();
        let mut holds = Vec::new();
        let mut bookings = Vec::new();
        let mut now = 0;
        for (i, (op, dt, request)) in steps.iter().enumerate() {
            let index = i as u64 + 2;
            let command = resolve(op, now, &holds, &bookings);
            now += dt;
            let request_id = request.map(|r| format!("req{r}"));
            let before = inv.clone();
            let outcome = inv.apply(index, &entry(now, request_id.as_deref(), command.clone()));
            model.advance(now);
            if let Some(request_id) = &request_id {
                if let Some((first_command, first_outcome)) = model.replies.get(request_id) {
                    // A replay: the first outcome, and no effect beyond the clock-driven expiry.
                    if same_request(first_command, &command) {
                        prop_assert_eq!(&outcome, first_outcome);
                    } else {
                        prop_assert_eq!(&outcome, &Err(Rejection::RequestIdReused));
                    }
                    let mut expected = before;
                    prop_assert!(expected.apply(index, &entry(now, None, Command::ExpireDue)).is_ok());
                    prop_assert_eq!(expected.query(&Query::SeatMap { show_id: SHOW }), inv.query(&Query::SeatMap { show_id: SHOW }));
                    inv.check_invariants();
                    continue;
                }
                model.replies.insert(request_id.clone(), (command.clone(), outcome.clone()));
            }
            model.check(index, &command, &outcome);
            match &outcome {
                Ok(Reply::Held { hold }) => holds.push(hold.hold_id),
                Ok(Reply::Booking { booking }) if booking.status == BookingStatus::PendingPayment => bookings.push(booking.booking_id),
                _ => {}
            }
            inv.check_invariants();
            model.compare(&inv);
            // The seat map written from the records is the view's encoding, byte for byte.
            let map = Query::SeatMap { show_id: SHOW };
            prop_assert_eq!(
                String::from_utf8(inv.encode_answer(&map).unwrap()).unwrap(),
                String::from_utf8(proto::codec::encode(&inv.query(&map)).unwrap()).unwrap()
            );
        }
        let absent = Query::SeatMap { show_id: ShowId(SHOW.0 + 1) };
        prop_assert_eq!(
            inv.encode_answer(&absent).unwrap(),
            proto::codec::encode(&QueryResult::NotFound).unwrap()
        );
    }

    /// Two replicas applying the same log end with equal digests, and a snapshot round trip
    /// preserves the state exactly.
    #[test]
    fn same_log_same_digest_and_snapshot_round_trip(steps in prop::collection::vec((op(), 0u64..2_500), 1..80)) {
        let mut a = created();
        let mut b = created();
        let mut holds = Vec::new();
        let mut bookings = Vec::new();
        let mut now = 0;
        for (i, (op, dt)) in steps.iter().enumerate() {
            let e = entry(now + dt, None, resolve(op, now, &holds, &bookings));
            now += dt;
            let outcome = a.apply(i as u64 + 2, &e);
            prop_assert_eq!(&outcome, &b.apply(i as u64 + 2, &e));
            match outcome {
                Ok(Reply::Held { hold }) => holds.push(hold.hold_id),
                Ok(Reply::Booking { booking }) => bookings.push(booking.booking_id),
                _ => {}
            }
        }
        prop_assert_eq!(a.digest(), b.digest());
        let bytes = serde_json::to_vec(&a).unwrap();
        let restored = Inventory::from_snapshot(&bytes).unwrap();
        prop_assert_eq!(restored.digest(), a.digest());
        prop_assert_eq!(restored, a);
    }
}

/// An outcome with the ids it names replaced by their creation order, so runs whose ids differ
/// only in spelling (batched or not) compare equal.
fn shape(outcome: &Outcome, holds: &[HoldId], bookings: &[BookingId]) -> String {
    let mut text = format!("{outcome:?}");
    // Longest ids first, so `7-12` is not rewritten inside `7-12-3`.
    let mut names: Vec<(String, String)> = holds
        .iter()
        .enumerate()
        .map(|(i, id)| (format!("{id:?}"), format!("hold#{i}")))
        .chain(
            bookings.iter().enumerate().map(|(i, id)| (format!("{id:?}"), format!("booking#{i}"))),
        )
        .collect();
    names.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    for (name, alias) in names {
        text = text.replace(&name, &alias);
    }
    // Ticket codes are derived from the booking's position in the log.
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("ticket_code: Some(\"") {
        let (head, tail) = rest.split_at(at + "ticket_code: Some(\"".len());
        out.push_str(head);
        out.push_str("<code>");
        rest = tail.find('"').map_or("", |end| &tail[end..]);
    }
    out.push_str(rest);
    out
}

fn created_ids(outcome: &Outcome, holds: &mut Vec<HoldId>, bookings: &mut Vec<BookingId>) {
    match outcome {
        Ok(Reply::Held { hold }) => holds.push(hold.hold_id),
        Ok(Reply::Booking { booking })
            if booking.status == BookingStatus::PendingPayment
                && !bookings.contains(&booking.booking_id) =>
        {
            bookings.push(booking.booking_id);
        }
        _ => {}
    }
}

#[test]
fn batched_ids_carry_their_position_and_replays_inside_a_batch_answer_the_first_outcome() {
    let mut inv = created();
    let hold = |seat: &str, owner: &str| Proposal {
        request_id: Some(format!("req-{seat}")),
        command: Command::Hold {
            show_id: SHOW,
            owner: OwnerId(owner.into()),
            selection: SeatSelection::Seats(vec![SeatId(seat.into())]),
            ttl_ms: Some(5_000),
            owner_seats_max: None,
        },
    };
    let batch = Command::Batch(vec![hold("A1", "u1"), hold("A2", "u2"), hold("A1", "u1")]);
    let Ok(Reply::Batch(outcomes)) = inv.apply(7, &entry(1_000, None, batch)) else { panic!() };
    let ids: Vec<String> = outcomes
        .iter()
        .map(|o| match o {
            Ok(Reply::Held { hold }) => hold.hold_id.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    // The third proposal replays the first's request id: the first outcome, not a new hold.
    assert_eq!(
        ids,
        vec![format!("{}-7", SHOW.0), format!("{}-7-1", SHOW.0), format!("{}-7", SHOW.0)]
    );
    let nested =
        Command::Batch(vec![Proposal { request_id: None, command: Command::Batch(vec![]) }]);
    assert_eq!(
        inv.apply(8, &entry(1_000, None, nested)),
        Ok(Reply::Batch(vec![Err(Rejection::NestedBatch)]))
    );
    inv.check_invariants();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// A leader's batch is only a packaging: the same commands applied as batches of random
    /// sizes, or one per entry at the same log times, give the same outcomes (ids aside), the
    /// same seat map after every batch, and the invariants hold throughout.
    #[test]
    fn batches_apply_like_the_same_commands_one_entry_each(
        batches in prop::collection::vec(
            (prop::collection::vec((op(), prop::option::weighted(0.3, 0u8..6)), 1..8), 0u64..2_500),
            1..30,
        )
    ) {
        let (mut single, mut batched) = (created(), created());
        let (mut single_holds, mut single_bookings) = (Vec::new(), Vec::new());
        let (mut batch_holds, mut batch_bookings) = (Vec::new(), Vec::new());
        let (mut now, mut index) = (0u64, 2u64);
        for (ops, dt) in &batches {
            let before = now;
            now += dt;
            let mut proposals = Vec::new();
            for (op, request) in ops {
                let request_id = request.map(|r| format!("req{r}"));
                let command = resolve(op, before, &single_holds, &single_bookings);
                let outcome = single.apply(index, &entry(now, request_id.as_deref(), command));
                index += 1;
                created_ids(&outcome, &mut single_holds, &mut single_bookings);
                proposals.push((request_id, op, outcome));
            }
            // The batched replica resolves the same templates against its own ids, applying
            // the ones before each proposal first: so it sends the commands the singles did.
            let mut batch = Vec::new();
            let mut expected = Vec::new();
            let (mut holds_seen, mut bookings_seen) = (batch_holds.clone(), batch_bookings.clone());
            for (request_id, op, outcome) in &proposals {
                let command = resolve(op, before, &holds_seen, &bookings_seen);
                batch.push(Proposal { request_id: request_id.clone(), command });
                expected.push(shape(outcome, &single_holds, &single_bookings));
                // Predict what this proposal will create, to resolve later templates of the batch.
                let mut probe = batched.clone();
                let so_far = Command::Batch(batch.clone());
                if let Ok(Reply::Batch(outcomes)) = probe.apply(index, &entry(now, None, so_far)) {
                    if let Some(last) = outcomes.last() {
                        created_ids(last, &mut holds_seen, &mut bookings_seen);
                    }
                }
            }
            let Ok(Reply::Batch(outcomes)) = batched.apply(index, &entry(now, None, Command::Batch(batch))) else {
                panic!("a batch entry answers a batch reply")
            };
            index += 1;
            for outcome in &outcomes {
                created_ids(outcome, &mut batch_holds, &mut batch_bookings);
            }
            let got: Vec<String> = outcomes.iter().map(|o| shape(o, &batch_holds, &batch_bookings)).collect();
            prop_assert_eq!(got, expected);
            batched.check_invariants();
            single.check_invariants();
            let statuses = |inv: &Inventory| match inv.query(&Query::SeatMap { show_id: SHOW }) {
                QueryResult::SeatMap { seat_map } => seat_map
                    .rows
                    .iter()
                    .flat_map(|r| r.seats.iter().map(|s| (s.seat_id.clone(), s.status)))
                    .collect::<Vec<_>>(),
                other => panic!("{other:?}"),
            };
            prop_assert_eq!(statuses(&single), statuses(&batched));
        }
    }
}

/// The best-available search as it was before it learned to stop early: every block of every
/// row scored. The fast search must give exactly its answers (replicas of different builds
/// must pick the same seats).
fn pick_best_full_scan(show: &Show, quantity: u32, category: &str) -> Option<Vec<(u32, u32)>> {
    let n = quantity as usize;
    let sweet_row = (show.rows.len() as i64 * 2) / 3;
    let mut best: Option<(u8, i64, i64, usize, usize)> = None;
    for (row_index, row) in show.rows.iter().enumerate() {
        if row.category != category {
            continue;
        }
        let len = row.seats.len();
        let mut start = 0;
        while start < len {
            if row.seats[start] != SeatState::Free {
                start += 1;
                continue;
            }
            let mut end = start + 1;
            while end < len
                && row.seats[end] == SeatState::Free
                && !row.aisles_after.contains(&(end as u32))
            {
                end += 1;
            }
            if end - start >= n {
                for first in start..=end - n {
                    let orphan = u8::from(first - start == 1) + u8::from(end - (first + n) == 1);
                    let centre = ((2 * first + n) as i64 - len as i64).abs();
                    let score =
                        (orphan, (row_index as i64 - sweet_row).abs(), centre, row_index, first);
                    if best.is_none_or(|b| score < b) {
                        best = Some(score);
                    }
                }
            }
            start = end;
        }
    }
    best.map(|(_, _, _, row, first)| {
        (first..first + n).map(|offset| (row as u32, offset as u32 + 1)).collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The early-stopping best-available search picks exactly what scoring every block picks,
    /// on random layouts with random seats taken.
    #[test]
    fn best_available_matches_the_full_scan(
        rows in prop::collection::vec((2u32..14, any::<bool>(), prop::option::of(1u32..12)), 1..12),
        taken in prop::collection::vec((0usize..12, 1u32..14), 0..60),
        quantity in 1u32..5,
        premium in any::<bool>(),
    ) {
        let spec = Layout {
            rows: rows
                .iter()
                .enumerate()
                .map(|(i, (seats, premium, aisle))| RowSpec {
                    label: ["A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M"][i].into(),
                    category: if *premium { "premium" } else { "standard" }.into(),
                    seats: *seats,
                    aisles_after: aisle.filter(|a| a < seats).into_iter().collect(),
                })
                .collect(),
            categories: vec![
                CategorySpec { name: "standard".into(), price_minor: 200 },
                CategorySpec { name: "premium".into(), price_minor: 500 },
            ],
            currency: "INR".into(),
        };
        let mut inv = Inventory::default();
        let create = Command::CreateShow { show_id: SHOW, title: "T".into(), starts_at_ms: 1, layout: spec };
        prop_assert!(inv.apply(1, &entry(0, None, create)).is_ok());
        let show = inv.shows.get_mut(&SHOW).unwrap();
        for (row, seat) in taken {
            if let Some(r) = show.rows.get_mut(row % rows.len()) {
                let len = r.seats.len();
                if let Some(s) = r.seats.get_mut((seat as usize - 1) % len) {
                    *s = SeatState::Held(HoldId::new(SHOW, 1));
                }
            }
        }
        let category = if premium { "premium" } else { "standard" };
        let expected = pick_best_full_scan(show, quantity, category);
        let got = super::seats::pick_best(show, quantity, category);
        match expected {
            Some(seats) => prop_assert_eq!(got, Ok(seats)),
            // No adjacent block: both fall back to (or fail like) the first free seats.
            None => prop_assert!(got.as_ref().map_or(true, |s| !s.is_empty())),
        }
    }
}

fn checkout_cmd(hold_id: HoldId, owner: &str) -> Command {
    Command::BeginCheckout { hold_id, owner: OwnerId(owner.into()), window_ms: 60_000 }
}

#[test]
fn a_replayed_checkout_answers_the_booking_as_it_is_now() {
    let mut inv = created();
    let hold = held(inv.apply(2, &entry(1, None, hold_cmd("u", seats(&["A1"])))));
    let begin = entry(2, Some("bk:u:key-1:begin"), checkout_cmd(hold.hold_id, "u"));
    let pending = booking(inv.apply(3, &begin));
    assert_eq!(pending.status, BookingStatus::PendingPayment);
    let fail = Command::FailCheckout {
        booking_id: pending.booking_id,
        reason: "payment declined: card declined".into(),
        keep_hold: false,
    };
    booking(inv.apply(4, &entry(3, Some("bk:u:key-1:fail"), fail)));
    // The client retries under the same key: the replay says the attempt failed, so the saga
    // does not charge again; nothing changes.
    let digest = inv.digest();
    let replay = booking(inv.apply(5, &begin));
    assert_eq!(replay.booking_id, pending.booking_id);
    assert_eq!(replay.status, BookingStatus::Failed);
    assert_eq!(replay.failure_reason.as_deref(), Some("payment declined: card declined"));
    assert_eq!(inv.digest(), digest, "a replay changes nothing");
    // A rejected first outcome replays as it was.
    let again = entry(6, Some("bk:u:key-2:begin"), checkout_cmd(hold.hold_id, "u"));
    let first = inv.apply(6, &again);
    assert!(matches!(first, Err(Rejection::HoldNotActive { .. })), "{first:?}");
    assert_eq!(inv.apply(7, &again), first);
    inv.check_invariants();
}

#[test]
fn confirm_stores_the_ticket_code_it_carries_and_bounds_it() {
    let mut inv = created();
    let hold = held(inv.apply(2, &entry(1, None, hold_cmd("u", seats(&["A1"])))));
    let pending = booking(inv.apply(3, &entry(2, None, checkout_cmd(hold.hold_id, "u"))));
    let confirm = |code: &str| Command::Confirm {
        booking_id: pending.booking_id,
        payment_ref: "p".into(),
        ticket_code: Some(code.into()),
    };
    for bad in ["", "MQ-1", &"A".repeat(TICKET_CODE_BYTES_MAX + 1)] {
        let outcome = inv.apply(4, &entry(3, None, confirm(bad)));
        assert!(matches!(outcome, Err(Rejection::CatalogInvalid { .. })), "{bad:?}: {outcome:?}");
    }
    let confirmed = booking(inv.apply(5, &entry(4, None, confirm("MQ7K2P9XR4TQ8ZL3MV"))));
    assert_eq!(confirmed.ticket_code.as_deref(), Some("MQ7K2P9XR4TQ8ZL3MV"));
    // Without a code (entries before version 3) the legacy code is derived as before.
    let hold = held(inv.apply(6, &entry(5, None, hold_cmd("u", seats(&["A2"])))));
    let pending = booking(inv.apply(7, &entry(6, None, checkout_cmd(hold.hold_id, "u"))));
    let legacy = Command::Confirm {
        booking_id: pending.booking_id,
        payment_ref: "p".into(),
        ticket_code: None,
    };
    let confirmed = booking(inv.apply(8, &entry(7, None, legacy)));
    assert_eq!(confirmed.ticket_code, Some(legacy_ticket_code(pending.booking_id, 8)));
    inv.check_invariants();
}

#[test]
fn a_hold_may_cap_the_seats_its_owner_holds_on_the_show() {
    let mut inv = created();
    let capped = |owner: &str, selection: SeatSelection, max: u32| Command::Hold {
        show_id: SHOW,
        owner: OwnerId(owner.into()),
        selection,
        ttl_ms: Some(5_000),
        owner_seats_max: Some(max),
    };
    let first = held(inv.apply(2, &entry(1, None, capped("u", seats(&["A1", "A2", "A3"]), 4))));
    assert_eq!(
        inv.apply(3, &entry(1, None, capped("u", seats(&["B1", "B2"]), 4))),
        Err(Rejection::TooManySeatsHeld { seats_per_owner_max: 4, held: 3 })
    );
    // Another owner is not affected; one more seat fits.
    held(inv.apply(4, &entry(1, None, capped("v", seats(&["B1", "B2"]), 4))));
    let second = held(inv.apply(5, &entry(1, None, capped("u", seats(&["B3"]), 4))));
    // Seats in checkout still count; released, expired or booked ones do not.
    booking(inv.apply(6, &entry(2, None, checkout_cmd(first.hold_id, "u"))));
    let release = Command::Release { hold_id: second.hold_id, owner: OwnerId("u".into()) };
    inv.apply(7, &entry(2, None, release)).unwrap();
    assert_eq!(
        inv.apply(8, &entry(2, None, capped("u", seats(&["B4", "B5"]), 4))),
        Err(Rejection::TooManySeatsHeld { seats_per_owner_max: 4, held: 3 })
    );
    held(inv.apply(9, &entry(2, None, capped("u", seats(&["B4"]), 4))));
    inv.check_invariants();
    // The count is derived state: a snapshot round trip rebuilds it.
    let restored = Inventory::from_snapshot(&inv.to_snapshot()).unwrap();
    assert_eq!(restored, inv);
}

fn hold_now(inv: &Inventory, hold_id: HoldId) -> HoldView {
    match inv.query(&Query::Hold { hold_id }) {
        QueryResult::Hold { hold } => hold,
        other => panic!("expected a hold, got {other:?}"),
    }
}

fn decline(booking_id: BookingId, keep_hold: bool) -> Command {
    Command::FailCheckout {
        booking_id,
        reason: "payment declined: card declined".into(),
        keep_hold,
    }
}

#[test]
fn a_declined_checkout_that_keeps_its_hold_leaves_the_seats_held_until_the_holds_expiry() {
    let mut inv = created();
    let hold = held(inv.apply(2, &entry(1_000, None, hold_cmd("u", seats(&["A1", "A2"])))));
    let first = booking(inv.apply(3, &entry(2_000, None, checkout_cmd(hold.hold_id, "u"))));
    let failed = booking(inv.apply(4, &entry(2_500, None, decline(first.booking_id, true))));
    assert_eq!(failed.status, BookingStatus::Failed);
    let kept = hold_now(&inv, hold.hold_id);
    assert_eq!(kept.status, HoldStatus::Active, "the hold is active again");
    assert_eq!((kept.seats.clone(), kept.expires_at_ms), (hold.seats.clone(), hold.expires_at_ms));
    assert_eq!(kept.booking_id, None);
    // Nobody else can take the seats meanwhile.
    let other = inv.apply(5, &entry(2_600, None, hold_cmd("v", seats(&["A1"]))));
    assert!(other.is_err(), "{other:?}");
    // Another card goes through on the same hold.
    let second = booking(inv.apply(6, &entry(3_000, None, checkout_cmd(hold.hold_id, "u"))));
    assert_ne!(second.booking_id, first.booking_id);
    let confirm = Command::Confirm {
        booking_id: second.booking_id,
        payment_ref: "pay-2".into(),
        ticket_code: None,
    };
    assert_eq!(
        booking(inv.apply(7, &entry(3_500, None, confirm))).status,
        BookingStatus::Confirmed
    );
    inv.check_invariants();

    // Kept but never paid: the hold ends at its own expiry (5 s after it was made).
    let mut inv = created();
    let hold = held(inv.apply(2, &entry(1_000, None, hold_cmd("u", seats(&["B1"])))));
    let pending = booking(inv.apply(3, &entry(2_000, None, checkout_cmd(hold.hold_id, "u"))));
    booking(inv.apply(4, &entry(2_500, None, decline(pending.booking_id, true))));
    assert!(inv.apply(5, &entry(6_001, None, Command::ExpireDue)).is_ok());
    assert_eq!(hold_now(&inv, hold.hold_id).status, HoldStatus::Expired);
    held(inv.apply(6, &entry(6_100, None, hold_cmd("v", seats(&["B1"])))));
    inv.check_invariants();
}

#[test]
fn a_declined_checkout_frees_the_seats_when_the_hold_expired_or_was_kept_too_often() {
    // The hold's expiry passed while the card was tried: nothing to keep.
    let mut inv = created();
    let hold = held(inv.apply(2, &entry(1_000, None, hold_cmd("u", seats(&["A1"])))));
    let pending = booking(inv.apply(3, &entry(2_000, None, checkout_cmd(hold.hold_id, "u"))));
    booking(inv.apply(4, &entry(6_000, None, decline(pending.booking_id, true))));
    assert_eq!(hold_now(&inv, hold.hold_id).status, HoldStatus::Failed);
    held(inv.apply(5, &entry(6_100, None, hold_cmd("v", seats(&["A1"])))));

    // A card declined again and again: the hold survives KEPT_DECLINES_MAX declines, then goes.
    let mut inv = created();
    let hold = held(inv.apply(2, &entry(1_000, None, hold_cmd("u", seats(&["B1"])))));
    let mut index = 3;
    for attempt in 0..=KEPT_DECLINES_MAX {
        let now = 1_100 + u64::from(attempt) * 10;
        let pending = booking(inv.apply(index, &entry(now, None, checkout_cmd(hold.hold_id, "u"))));
        booking(inv.apply(index + 1, &entry(now + 5, None, decline(pending.booking_id, true))));
        index += 2;
        let status = hold_now(&inv, hold.hold_id).status;
        if attempt < KEPT_DECLINES_MAX {
            assert_eq!(status, HoldStatus::Active, "decline {attempt} keeps the hold");
        } else {
            assert_eq!(status, HoldStatus::Failed, "decline {attempt} ends it");
        }
    }
    held(inv.apply(index, &entry(1_200, None, hold_cmd("v", seats(&["B1"])))));
    inv.check_invariants();
}

#[test]
fn keep_hold_takes_effect_only_in_a_version_5_entry_and_does_not_change_the_request() {
    // A version 4 entry never carries the field; should one, it is ignored as a version 4 build
    // ignores it, so both builds compute the same state.
    let mut inv = created();
    let hold = held(inv.apply(2, &entry(1_000, None, hold_cmd("u", seats(&["A1"])))));
    let pending = booking(inv.apply(3, &entry(2_000, None, checkout_cmd(hold.hold_id, "u"))));
    let mut old = entry(2_500, None, decline(pending.booking_id, true));
    old.v = COMMAND_VERSION_KEEP_HOLD - 1;
    booking(inv.apply(4, &old));
    assert_eq!(hold_now(&inv, hold.hold_id).status, HoldStatus::Failed);

    // The same request id with and without keep_hold is one request (a leader may clear it).
    let mut inv = created();
    let hold = held(inv.apply(2, &entry(1_000, None, hold_cmd("u", seats(&["A1"])))));
    let pending = booking(inv.apply(3, &entry(2_000, None, checkout_cmd(hold.hold_id, "u"))));
    let first = inv.apply(4, &entry(2_500, Some("k:fail"), decline(pending.booking_id, true)));
    let retry = inv.apply(5, &entry(2_600, Some("k:fail"), decline(pending.booking_id, false)));
    assert_eq!(retry, first);
    assert_eq!(hold_now(&inv, hold.hold_id).status, HoldStatus::Active);

    // The version an entry needs, and what a leader drops for older replicas.
    let mut command = decline(pending.booking_id, true);
    assert_eq!(command.version_needed(), COMMAND_VERSION_KEEP_HOLD);
    command.downgrade(COMMAND_VERSION_BASE);
    assert_eq!(command, decline(pending.booking_id, false));
    assert_eq!(command.version_needed(), COMMAND_VERSION_BASE);
}
