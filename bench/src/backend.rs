//! What a benchmark run drives: the operations a user journey and the audit need, answered by
//! Marquee's gateway ([`Api`]) or by a peer database (`crate::peers`).
//!
//! Keeping the journey, the audit and the report generic over this trait is what makes the
//! side-by-side honest: every system runs the very same journeys, draws and checks. Outcomes
//! are classified the gateway's way ([`Failure`] with an HTTP status and problem type), so a
//! peer that finds no seats answers like the gateway does (`409 not-enough-seats`).

use std::future::Future;

use serde_json::Value;

use crate::api::{Api, Booking, Bookings, CreatedShow, HoldAck, HoldRequest, SeatMap, Timed};

/// A system under test.
pub trait Backend: Clone + Send + Sync + 'static {
    /// What the report names as the target, e.g. `gateway http://127.0.0.1:8080`.
    fn describe(&self) -> String;

    /// Makes `count` customer accounts (setup, not measured); returns the credential each
    /// journey passes as `user`.
    fn accounts(
        &self,
        count: usize,
        run_tag: &str,
    ) -> impl Future<Output = anyhow::Result<Vec<String>>> + Send;

    /// Creates a show from `{title, starts_at_ms, layout}` (the layout as the gateway's
    /// `POST /v1/admin/shows` takes it: rows with label, category, seats, aisles_after).
    fn create_show(&self, body: &Value) -> impl Future<Output = Timed<CreatedShow>> + Send;

    /// Holds seats for `user`: exact seats, or the best `quantity` of a category.
    fn hold(
        &self,
        user: &str,
        show_id: u64,
        what: &HoldRequest,
        ttl_ms: Option<u64>,
    ) -> impl Future<Output = Timed<HoldAck>> + Send;

    /// Releases a hold.
    fn release(&self, user: &str, hold_id: &str) -> impl Future<Output = Timed<Value>> + Send;

    /// Pays for a hold and confirms it as a booking.
    fn book(
        &self,
        user: &str,
        idempotency_key: &str,
        hold_id: &str,
        payment_token: &str,
    ) -> impl Future<Output = Timed<Booking>> + Send;

    /// The seat map; `fast` may read a stale replica, otherwise it is up to date.
    fn seat_map(&self, show_id: u64, fast: bool) -> impl Future<Output = Timed<SeatMap>> + Send;

    /// Every confirmed booking of a show (audit).
    fn show_bookings(&self, show_id: u64) -> impl Future<Output = Timed<Bookings>> + Send;
}

/// Registers `count` customer accounts, 8 at a time; returns their access tokens in order.
async fn register_accounts(api: &Api, count: usize, run_tag: &str) -> anyhow::Result<Vec<String>> {
    let mut tokens = Vec::with_capacity(count);
    let mut next = 0;
    while next < count {
        let batch: Vec<_> = (next..count.min(next + 8))
            .map(|i| {
                let api = api.clone();
                let email = format!("bench-{run_tag}-{i}@marquee.bench");
                tokio::spawn(async move { api.register(&email, &format!("bench {i}")).await })
            })
            .collect();
        for handle in batch {
            tokens.push(handle.await??);
        }
        next += 8;
    }
    Ok(tokens)
}

impl Backend for Api {
    fn describe(&self) -> String {
        format!("gateway {}", self.base())
    }

    fn accounts(
        &self,
        count: usize,
        run_tag: &str,
    ) -> impl Future<Output = anyhow::Result<Vec<String>>> + Send {
        register_accounts(self, count, run_tag)
    }

    fn create_show(&self, body: &Value) -> impl Future<Output = Timed<CreatedShow>> + Send {
        Api::create_show(self, body)
    }

    fn hold(
        &self,
        user: &str,
        show_id: u64,
        what: &HoldRequest,
        ttl_ms: Option<u64>,
    ) -> impl Future<Output = Timed<HoldAck>> + Send {
        Api::hold(self, user, show_id, what, ttl_ms)
    }

    fn release(&self, user: &str, hold_id: &str) -> impl Future<Output = Timed<Value>> + Send {
        Api::release(self, user, hold_id)
    }

    fn book(
        &self,
        user: &str,
        idempotency_key: &str,
        hold_id: &str,
        payment_token: &str,
    ) -> impl Future<Output = Timed<Booking>> + Send {
        Api::book(self, user, idempotency_key, hold_id, payment_token)
    }

    fn seat_map(&self, show_id: u64, fast: bool) -> impl Future<Output = Timed<SeatMap>> + Send {
        Api::seat_map(self, show_id, fast)
    }

    fn show_bookings(&self, show_id: u64) -> impl Future<Output = Timed<Bookings>> + Send {
        Api::show_bookings(self, show_id)
    }
}
