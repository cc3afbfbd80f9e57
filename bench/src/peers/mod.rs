//! The peers of the side-by-side (`marquee-peer-bench`): the same hold / pay / release journeys
//! as `marquee-bench`, served by one PostgreSQL or one Redis instead of the gateway and its
//! 3-replica cluster, so docs/benchmarks.md can say what Marquee costs against the obvious
//! alternatives on the same machine.
//!
//! Semantics every peer implements, and how they differ from Marquee's:
//! - **Best available**: the first row of the category, in layout order, with `n` adjacent
//!   available seats not spanning an aisle, leftmost block first. Marquee's picker is richer
//!   (rows ranked by distance from the best row, centred blocks, no orphan single seats), so
//!   the peers do less work per hold.
//! - **Holds expire**: a hold carries `expires_at`; a confirm of an expired hold fails, and its
//!   seats are available to later holds (PostgreSQL: a held seat past its expiry counts as
//!   available; Redis: a hold first frees the show's expired holds, kept in a sorted set).
//! - **No per-account hold limit** (Marquee allows 2 holds per account per show).
//! - **Confirm** pays in-process first (`tok_success` pays, any other token is declined; no
//!   I/O) and then turns the hold into a booking in one atomic step. Marquee's booking is two
//!   replicated commands (`BeginCheckout`, `Confirm`) around a call to the payment sandbox.
//! - A seat is never sold twice: every change to a seat is conditional on its current state
//!   inside one transaction (PostgreSQL) or one Lua script (Redis).

pub mod postgres;
pub mod redis;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::api::{Booking, Bookings, CreatedShow, Failure, HoldAck, HoldRequest, SeatMap, Timed};
use crate::backend::Backend;

/// A peer's own operations; every peer is a [`Backend`] through them, which adds what all
/// peers share: timing, the default TTL, hold-id parsing, the in-process payment, accounts.
pub trait Peer: Clone + Send + Sync + 'static {
    /// Version and the settings that matter (durability, connections).
    fn describe(&self) -> String;

    /// Creates a show from the bench's show body.
    fn create_show(
        &self,
        body: &Value,
    ) -> impl Future<Output = Result<CreatedShow, Failure>> + Send;

    /// Holds seats for `ttl_ms`.
    fn hold(
        &self,
        user: &str,
        show_id: u64,
        what: &HoldRequest,
        ttl_ms: u64,
    ) -> impl Future<Output = Result<HoldAck, Failure>> + Send;

    /// Releases a hold of `user`'s.
    fn release(
        &self,
        user: &str,
        hold_id: i64,
    ) -> impl Future<Output = Result<Value, Failure>> + Send;

    /// Turns a paid hold of `user`'s into a booking.
    fn confirm(
        &self,
        user: &str,
        hold_id: i64,
    ) -> impl Future<Output = Result<Booking, Failure>> + Send;

    /// The seat map (expired holds shown available).
    fn seat_map(&self, show_id: u64) -> impl Future<Output = Result<SeatMap, Failure>> + Send;

    /// Every booking of a show.
    fn bookings(&self, show_id: u64) -> impl Future<Output = Result<Bookings, Failure>> + Send;
}

impl<P: Peer> Backend for P {
    fn describe(&self) -> String {
        Peer::describe(self)
    }

    async fn accounts(&self, count: usize, run_tag: &str) -> anyhow::Result<Vec<String>> {
        Ok((0..count).map(|i| format!("{run_tag}-user-{i}")).collect())
    }

    async fn create_show(&self, body: &Value) -> Timed<CreatedShow> {
        let started = Instant::now();
        timed(started, Peer::create_show(self, body).await)
    }

    async fn hold(
        &self,
        user: &str,
        show_id: u64,
        what: &HoldRequest,
        ttl_ms: Option<u64>,
    ) -> Timed<HoldAck> {
        let started = Instant::now();
        let ttl_ms = ttl_ms.unwrap_or(DEFAULT_TTL_MS);
        timed(started, Peer::hold(self, user, show_id, what, ttl_ms).await)
    }

    async fn release(&self, user: &str, hold_id: &str) -> Timed<Value> {
        let started = Instant::now();
        let released = async { Peer::release(self, user, parse_hold_id(hold_id)?).await };
        timed(started, released.await)
    }

    async fn book(
        &self,
        user: &str,
        _idempotency_key: &str,
        hold_id: &str,
        payment_token: &str,
    ) -> Timed<Booking> {
        let started = Instant::now();
        let booked = async {
            let hold_id = parse_hold_id(hold_id)?;
            charge(payment_token)?;
            Peer::confirm(self, user, hold_id).await
        };
        timed(started, booked.await)
    }

    async fn seat_map(&self, show_id: u64, _fast: bool) -> Timed<SeatMap> {
        let started = Instant::now();
        timed(started, Peer::seat_map(self, show_id).await)
    }

    async fn show_bookings(&self, show_id: u64) -> Timed<Bookings> {
        let started = Instant::now();
        timed(started, Peer::bookings(self, show_id).await)
    }
}

/// Hold TTL when a journey does not ask for one: the cluster's default.
const DEFAULT_TTL_MS: u64 = proto::limits::HOLD_TTL_MS_DEFAULT;
/// Database errors printed in full to stderr (all are counted in the report).
const ERRORS_PRINTED: u32 = 5;

static PRINTED: AtomicU32 = AtomicU32::new(0);

/// One row of a show's layout, from the body the bench creates shows with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRow {
    /// `A`, `B`, ...
    pub label: String,
    /// Seat category.
    pub category: String,
    /// Seats in the row, numbered from 1.
    pub seats: u32,
    /// Seat numbers an aisle follows.
    pub aisles_after: Vec<u32>,
}

impl LayoutRow {
    /// The seat id of seat `number` (1-based): `A7`, as the gateway names seats.
    pub fn seat_id(&self, number: u32) -> String {
        format!("{}{number}", self.label)
    }

    /// Index of the aisle-free block seat `number` is in (0 before the first aisle).
    pub fn block_of(&self, number: u32) -> u32 {
        self.aisles_after.iter().filter(|a| **a < number).count() as u32
    }
}

/// The rows of `body["layout"]`; a failure naming what is malformed.
///
/// # Errors
/// A missing or ill-typed field.
pub fn layout_rows(body: &Value) -> Result<Vec<LayoutRow>, Failure> {
    let rows = body["layout"]["rows"].as_array().ok_or_else(|| bad_layout("no rows"))?;
    rows.iter()
        .map(|row| {
            let text = |field: &str| row[field].as_str().map(str::to_owned);
            Ok(LayoutRow {
                label: text("label").ok_or_else(|| bad_layout("a row has no label"))?,
                category: text("category").ok_or_else(|| bad_layout("a row has no category"))?,
                seats: row["seats"]
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| bad_layout("a row has no seats"))?,
                aisles_after: row["aisles_after"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).map(|n| n as u32).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Seats per category, in first-seen order.
pub fn category_capacities(rows: &[LayoutRow]) -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> = Vec::new();
    for row in rows {
        match out.iter_mut().find(|(name, _)| *name == row.category) {
            Some((_, seats)) => *seats += row.seats,
            None => out.push((row.category.clone(), row.seats)),
        }
    }
    out
}

fn bad_layout(what: &str) -> Failure {
    status(400, "bad-layout", json!({ "detail": what }))
}

/// A failure shaped like the gateway's answer with this status and problem type.
pub fn status(status: u16, kind: &str, body: Value) -> Failure {
    Failure::Status { status, kind: kind.to_owned(), body, retry_after_s: None }
}

/// `409 not-enough-seats` with the category's available seats, as the gateway answers a
/// best-available hold it cannot place.
pub fn not_enough_seats(available: u64) -> Failure {
    status(409, "not-enough-seats", json!({ "available": available }))
}

/// `409 seats-unavailable` naming the seats that were taken, as the gateway answers a hold of
/// explicit seats.
pub fn seats_unavailable(seats: &[String]) -> Failure {
    status(409, "seats-unavailable", json!({ "unavailable_seats": seats }))
}

/// A database error: `500 <peer>-<code>`, printed to stderr the first few times.
pub fn database(kind: String, detail: &str) -> Failure {
    if PRINTED.fetch_add(1, Ordering::Relaxed) < ERRORS_PRINTED {
        eprintln!("marquee-peer-bench: {kind}: {detail}");
    }
    status(500, &kind, json!({ "detail": detail }))
}

/// The in-process payment step of a confirm: `tok_success` pays, anything else is declined
/// (`402 payment-declined`), like the gateway's sandbox tokens.
fn charge(payment_token: &str) -> Result<(), Failure> {
    if payment_token == "tok_success" {
        Ok(())
    } else {
        Err(status(402, "payment-declined", json!({ "detail": "declined by the fake payment" })))
    }
}

/// Milliseconds since the Unix epoch (hold expiry).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `result` timed from `started`.
fn timed<T>(started: Instant, result: Result<T, Failure>) -> Timed<T> {
    Timed { result, micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX) }
}

/// A hold id as the peers write it (a decimal number), parsed back; `404 hold-not-found` if
/// it is not one.
fn parse_hold_id(hold_id: &str) -> Result<i64, Failure> {
    hold_id.parse().map_err(|_| status(404, "hold-not-found", Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shows::Layout;

    #[test]
    fn layout_rows_read_the_bench_layout() {
        let body = json!({ "layout": Layout::new(20, 30).json() });
        let rows = layout_rows(&body).unwrap();
        assert_eq!(rows.len(), 20);
        assert_eq!(rows[0].label, "A");
        assert_eq!(rows[0].seat_id(7), "A7");
        assert_eq!(rows[0].aisles_after, vec![7, 23]);
        assert_eq!((rows[0].block_of(7), rows[0].block_of(8), rows[0].block_of(30)), (0, 1, 2));
        assert_eq!(
            category_capacities(&rows),
            vec![("standard".to_owned(), 390), ("premium".to_owned(), 210)]
        );
        assert!(layout_rows(&json!({ "layout": {} })).is_err());
    }
}
