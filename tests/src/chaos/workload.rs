//! Chaos clients and the final read.
//!
//! Each client is a Jepsen-style process: one operation at a time, each recorded as an invoke
//! and a completion. A completion is `ok` for a success, `fail` for a deterministic 4xx
//! rejection (nothing happened), `info` when the outcome is unknown (timeout, 5xx, connection
//! lost); after an `info` the process is considered crashed and continues under a new process
//! id, as its unknown operation may still take effect at any later time. Clients contend on a
//! few small shows with explicit seats, so conflicts are frequent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::checker::{FinalState, LedgerFinal, ShowFinal};
use super::history::{Event, EventType, OpKind, Recorder};

/// Rows and seats of every chaos show (small, to make clients collide).
pub const ROWS: usize = 3;
/// Seats per row.
pub const SEATS_PER_ROW: u32 = 10;
/// Pause after a rejected hold, so sold-out shows do not turn clients into busy loops.
const BACKOFF_AFTER_FAIL: Duration = Duration::from_millis(30);
/// Pause after an unknown outcome (the gateway may be down): do not spin.
const BACKOFF_AFTER_INFO: Duration = Duration::from_millis(200);

/// What clients need to reach the cluster.
#[derive(Clone)]
pub struct Target {
    /// Gateway base URLs.
    pub gateways: Vec<String>,
    /// Access token of an admin account.
    pub admin_token: String,
    /// Access tokens of customer accounts: client `i` uses `users[i * USERS_PER_CLIENT..]` in
    /// turn ([`register_users`]).
    pub users: Vec<String>,
    /// HTTP client (bounded timeouts).
    pub http: reqwest::Client,
    /// `ttl_ms` of every hold.
    pub hold_ttl_ms: u64,
}

/// Accounts each client rotates through (an account may hold at most 2 holds per show, and
/// abandoned holds keep counting until they expire).
pub const USERS_PER_CLIENT: usize = 8;

/// Registers `count` customer accounts through the first gateway; returns their access tokens.
///
/// # Errors
/// A registration kept failing for a minute.
pub async fn register_users(target: &Target, count: usize) -> Result<Vec<String>> {
    let mut tokens = Vec::with_capacity(count);
    for i in 0..count {
        let email = format!("chaos{i}-{:x}@marquee.test", crate::rand_u64());
        let token = crate::eventually("a chaos account", Duration::from_secs(60), || async {
            let response = target
                .http
                .post(format!("{}/v1/auth/register", target.gateways[0]))
                .json(&json!({"email": email, "password": "chaos-password", "name": format!("chaos {i}")}))
                .send()
                .await?;
            anyhow::ensure!(response.status() == 201, "register: {}", response.status());
            let body: Value = response.json().await?;
            Ok(body["access_token"].as_str().map(str::to_owned))
        })
        .await?;
        tokens.push(token);
    }
    Ok(tokens)
}

/// An event of `process` with nothing filled in beyond its kind, operation and show.
pub(crate) fn event(process: i64, kind: EventType, op: OpKind, show: u64) -> Event {
    Event {
        process,
        kind,
        op,
        time_ns: 0,
        show,
        seats: Vec::new(),
        hold_id: None,
        booking_id: None,
        expires_at_ms: None,
        wall_ms: 0,
        detail: String::new(),
    }
}

/// Creates `count` small shows through the first gateway that answers.
///
/// # Errors
/// No gateway created them within a minute.
pub async fn create_shows(target: &Target, count: usize) -> Result<Vec<u64>> {
    let rows: Vec<Value> = (0..ROWS)
        .map(|r| json!({"label": crate::row_label(r), "category": "standard", "seats": SEATS_PER_ROW, "aisles_after": []}))
        .collect();
    let screen = json!({"screen_id": 1, "name": "Chaos", "format": "2D", "rows": rows});
    let admin = |method: reqwest::Method, path: &'static str, body: Value, expect: u16| async move {
        let response = target
            .http
            .request(method, format!("{}{path}", target.gateways[0]))
            .bearer_auth(&target.admin_token)
            .json(&body)
            .send()
            .await?;
        let status = response.status().as_u16();
        // A screen that exists already (a retried create) answers 201 again: PutScreen upserts.
        anyhow::ensure!(status == expect, "{path}: {status}");
        Ok::<Value, anyhow::Error>(response.json().await?)
    };
    crate::eventually("the chaos catalog to be created", Duration::from_secs(60), || async {
        admin(reqwest::Method::PUT, "/v1/admin/movies/1", crate::test_movie(), 200).await?;
        admin(reqwest::Method::PUT, "/v1/admin/theaters/1", crate::test_theater(), 200).await?;
        admin(reqwest::Method::POST, "/v1/admin/theaters/1/screens", screen.clone(), 201).await?;
        Ok(Some(()))
    })
    .await?;
    let mut shows = Vec::new();
    for n in 0..count {
        // Fixed ids: a create retried after a lost answer finds the same show.
        let body = json!({
            "show_id": 1000 + n as u64,
            "movie_id": 1,
            "screen_id": 1,
            "starts_at_ms": 4_102_444_800_000u64,
            "prices": {"standard": 10_000},
            "currency": "INR",
        });
        let id = crate::eventually("a show to be created", Duration::from_secs(60), || async {
            let created =
                admin(reqwest::Method::POST, "/v1/admin/shows", body.clone(), 201).await?;
            Ok(created["show_id"].as_u64())
        })
        .await?;
        shows.push(id);
    }
    Ok(shows)
}

/// The result class of an HTTP answer.
fn classify(status: Option<u16>) -> EventType {
    match status {
        Some(200..=299) => EventType::Ok,
        // 4xx except 408/429 are deterministic rejections: nothing happened.
        Some(s @ 400..=499) if s != 408 && s != 429 => EventType::Fail,
        _ => EventType::Info,
    }
}

async fn send(request: reqwest::RequestBuilder) -> (Option<u16>, Value, String) {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let detail = format!("{status} {}", body["type"].as_str().unwrap_or_default());
            (Some(status), body, detail)
        }
        Err(e) => (None, Value::Null, format!("transport: {e}")),
    }
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
}

/// Runs one client until `stop`: holds 1–2 adjacent seats, then books (and usually
/// cancels), releases or abandons the hold.
pub async fn client(
    index: usize,
    clients: usize,
    target: Target,
    shows: Vec<u64>,
    recorder: Recorder,
    stop: Arc<AtomicBool>,
    seed: u64,
) {
    let mut rng =
        rand::rngs::StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9e37_79b9));
    let gateway = target.gateways[index % target.gateways.len()].clone();
    let mut process = index as i64;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let op_id = format!("p{process}-{n}");
        let user = &target.users[index * USERS_PER_CLIENT + n as usize % USERS_PER_CLIENT];
        let show = shows[rng.random_range(0..shows.len())];
        let row = crate::row_label(rng.random_range(0..ROWS));
        let first = rng.random_range(1..SEATS_PER_ROW);
        let seats: Vec<String> = (first..=(first + rng.random_range(0..2)).min(SEATS_PER_ROW))
            .map(|s| format!("{row}{s}"))
            .collect();

        let mut invoke = event(process, EventType::Invoke, OpKind::Hold, show);
        invoke.seats = seats.clone();
        recorder.record(invoke);
        let request = target
            .http
            .post(format!("{gateway}/v1/shows/{show}/holds"))
            .bearer_auth(user)
            .json(&json!({"seats": seats, "ttl_ms": target.hold_ttl_ms}));
        let (status, body, detail) = send(request).await;
        let mut done = event(process, classify(status), OpKind::Hold, show);
        done.detail = detail;
        if done.kind == EventType::Ok {
            done.hold_id = body["hold_id"].as_str().map(str::to_owned);
            done.seats = strings(&body["seats"]);
            done.expires_at_ms = body["expires_at_ms"].as_u64();
        }
        let outcome = done.kind;
        let hold_id = done.hold_id.clone();
        recorder.record(done);
        if outcome == EventType::Info {
            process += clients as i64;
            tokio::time::sleep(BACKOFF_AFTER_INFO).await;
            continue;
        }
        let Some(hold_id) = hold_id.filter(|_| outcome == EventType::Ok) else {
            tokio::time::sleep(BACKOFF_AFTER_FAIL).await;
            continue;
        };

        let choice = rng.random_range(0..10);
        if choice < 6 {
            let mut invoke = event(process, EventType::Invoke, OpKind::Book, show);
            invoke.hold_id = Some(hold_id.clone());
            recorder.record(invoke);
            let request = target
                .http
                .post(format!("{gateway}/v1/bookings"))
                .bearer_auth(user)
                .header("idempotency-key", format!("{op_id}-book"))
                .json(&json!({"hold_id": hold_id, "payment_token": "tok_success"}));
            let (status, body, detail) = send(request).await;
            let mut done = event(process, classify(status), OpKind::Book, show);
            done.detail = detail;
            done.hold_id = Some(hold_id.clone());
            if done.kind == EventType::Ok {
                done.booking_id = body["booking_id"].as_str().map(str::to_owned);
                done.seats = strings(&body["seats"]);
            }
            let (outcome, booking) = (done.kind, done.booking_id.clone());
            recorder.record(done);
            if outcome == EventType::Info {
                process += clients as i64;
                tokio::time::sleep(BACKOFF_AFTER_INFO).await;
                continue;
            }
            if let (EventType::Ok, Some(booking)) = (outcome, booking) {
                // Cancel most bookings, so seats come back and the shows never sell out.
                if rng.random_bool(0.7) {
                    let mut invoke = event(process, EventType::Invoke, OpKind::Cancel, show);
                    invoke.booking_id = Some(booking.clone());
                    recorder.record(invoke);
                    let request = target
                        .http
                        .post(format!("{gateway}/v1/bookings/{booking}/cancel"))
                        .bearer_auth(user);
                    let (status, _, detail) = send(request).await;
                    let mut done = event(process, classify(status), OpKind::Cancel, show);
                    done.detail = detail;
                    done.booking_id = Some(booking);
                    let outcome = done.kind;
                    recorder.record(done);
                    if outcome == EventType::Info {
                        process += clients as i64;
                    }
                }
            }
        } else if choice < 8 {
            let mut invoke = event(process, EventType::Invoke, OpKind::Release, show);
            invoke.hold_id = Some(hold_id.clone());
            recorder.record(invoke);
            let request =
                target.http.delete(format!("{gateway}/v1/holds/{hold_id}")).bearer_auth(user);
            let (status, _, detail) = send(request).await;
            let mut done = event(process, classify(status), OpKind::Release, show);
            done.detail = detail;
            done.hold_id = Some(hold_id);
            let outcome = done.kind;
            recorder.record(done);
            if outcome == EventType::Info {
                process += clients as i64;
            }
        }
        // else: abandon the hold; it expires.
    }
}

/// Reads the final state through the first gateway: confirmed bookings and seat maps (strong
/// reads) of every show, and the payment ledger as every gateway reports it, merged by key
/// (in-process sandboxes each hold their own gateway's payments; a shared `marquee-payments`
/// service reports the same ledger everywhere).
///
/// # Errors
/// A read failed within a minute of retries.
pub async fn final_read(target: &Target, shows: &[u64]) -> Result<FinalState> {
    let gateway = &target.gateways[0];
    let mut state = FinalState::default();
    for show in shows {
        let fin = crate::eventually("final read of a show", Duration::from_secs(60), || async {
            let bookings = target
                .http
                .get(format!("{gateway}/v1/admin/shows/{show}/bookings"))
                .bearer_auth(&target.admin_token)
                .send()
                .await?;
            let map = target
                .http
                .get(format!("{gateway}/v1/shows/{show}/seats?consistency=strong"))
                .send()
                .await?;
            if bookings.status() != 200 || map.status() != 200 {
                return Ok(None);
            }
            let bookings: Value = bookings.json().await?;
            let map: Value = map.json().await?;
            let mut fin = ShowFinal::default();
            for booking in bookings["bookings"].as_array().into_iter().flatten() {
                let id = booking["booking_id"].as_str().context("booking_id")?.to_owned();
                fin.bookings.insert(id, strings(&booking["seats"]));
            }
            for seat in map["rows"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| r["seats"].as_array().cloned().unwrap_or_default())
            {
                let id = seat["seat_id"].as_str().unwrap_or_default().to_owned();
                match seat["status"].as_str() {
                    Some("sold") => {
                        fin.sold.insert(id);
                    }
                    Some("held") => {
                        fin.held.insert(id);
                    }
                    _ => {}
                }
            }
            Ok(Some(fin))
        })
        .await?;
        state.shows.insert(*show, fin);
    }
    state.read_at_ms = super::history::wall_ms();
    let mut ledger = LedgerFinal::default();
    for gateway in &target.gateways {
        let response = target
            .http
            .get(format!("{gateway}/v1/sandbox/payments"))
            .bearer_auth(&target.admin_token)
            .send()
            .await?;
        if response.status() != 200 {
            eprintln!(
                "no payment ledger from {gateway} ({}): money not checked",
                response.status()
            );
            return Ok(state);
        }
        let body: Value = response.json().await?;
        for (key, receipt) in body["charges"].as_object().into_iter().flatten() {
            ledger
                .charges
                .insert(key.clone(), receipt["reference"].as_str().unwrap_or_default().to_owned());
        }
        for (key, refund) in body["refunds"].as_object().into_iter().flatten() {
            let charge = refund[0].as_str().unwrap_or_default().to_owned();
            // Same key, same refund: gateways sharing a payment service list the same ledger.
            ledger.refunds.insert(key.clone(), charge);
        }
    }
    state.ledger = Some(ledger);
    Ok(state)
}
