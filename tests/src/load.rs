//! Booking load for tests that change the cluster underneath it (repairs, rolling restarts):
//! clients that hold, book and sometimes cancel, as an application following the API would,
//! retrying a 503 as its `retry_after_s` asks, and a ledger of what was acknowledged and what
//! failed, for the audit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{json, Value};

use crate::client::{seat_list, User};

/// What the clients saw: bookings acknowledged and kept (id, seats), bookings made and
/// cancelled again, and failures (what failed and the answer).
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    /// Acknowledged bookings that were not cancelled: they must all exist at the end.
    pub kept: Vec<(u64, String, Vec<String>)>,
    /// Bookings made and cancelled.
    pub cancelled: usize,
    /// Failed steps.
    pub failures: Vec<String>,
}

/// Sends a request as a client of the API would: a 503 (`retry_after_s`) is retried, at most
/// five times (every call made here is idempotent or harmless to repeat).
///
/// # Errors
/// Transport failure.
pub async fn patiently<F, Fut>(mut call: F) -> Result<(u16, Value)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(u16, Value)>>,
{
    for _ in 0..5 {
        match call().await? {
            (503, body) => {
                eprintln!("503, retrying as asked: {}", body["detail"]);
                let after = body["retry_after_s"].as_u64().unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(after)).await;
            }
            answer => return Ok(answer),
        }
    }
    call().await
}

/// One hold -> book round on `show` by `user` (idempotency key `key`), cancelling the booking
/// again when `cancel`; the booking id and seats, or what failed.
async fn round(
    user: &User<'_>,
    show: u64,
    key: &str,
    cancel: bool,
) -> Result<(String, Vec<String>), String> {
    let party = json!({"quantity": 1, "category": "standard"});
    let hold = match patiently(|| user.hold(show, party.clone())).await {
        Ok((201, hold)) => hold,
        other => return Err(format!("hold: {other:?}")),
    };
    let hold_id = hold["hold_id"].as_str().unwrap_or_default().to_owned();
    let booking = match patiently(|| user.book(&hold_id, "tok_success", key)).await {
        Ok((201, booking)) => booking,
        other => return Err(format!("book {hold_id}: {other:?}")),
    };
    let id = booking["booking_id"].as_str().unwrap_or_default().to_owned();
    if cancel {
        let path = format!("/v1/bookings/{id}/cancel");
        match patiently(|| user.send(reqwest::Method::POST, &path)).await {
            Ok((200, _)) => {}
            other => return Err(format!("cancel {id}: {other:?}")),
        }
    }
    Ok((id, seat_list(&booking)))
}

/// Runs one client on `show` with `users` until `stop` (or `limit`), a round every `pause`,
/// cancelling every other booking; records into `ledger`.
pub async fn book_until(
    users: &[User<'_>],
    show: u64,
    stop: &AtomicBool,
    limit: Duration,
    pause: Duration,
    ledger: &Mutex<Ledger>,
) {
    let started = Instant::now();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) && started.elapsed() < limit {
        n += 1;
        let cancel = n.is_multiple_of(2);
        let key = format!("load-{show}-{n}");
        let outcome = round(&users[n % users.len()], show, &key, cancel).await;
        {
            let mut ledger = ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match outcome {
                Ok(_) if cancel => ledger.cancelled += 1,
                Ok((id, seats)) => ledger.kept.push((show, id, seats)),
                Err(e) => ledger.failures.push(e),
            }
        }
        tokio::time::sleep(pause).await;
    }
}
