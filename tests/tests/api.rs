//! REST contract tests against a real cluster: validation, problem+json errors, the booking
//! saga's payment fault paths, idempotent replays and cancellation with refunds.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use tests::{behaviour, seat_list, Cluster, Options, User};

async fn raw(
    cluster: &Cluster,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String, Value) {
    tests::raw_request(cluster, method, path, token, body).await.unwrap()
}

fn problem(status: u16, content_type: &str, body: &Value, slug: &str) {
    assert_eq!(content_type, "application/problem+json", "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["type"].as_str().unwrap().ends_with(&format!("/problems/{slug}")),
        "expected {slug}: {body}"
    );
    assert!(body["title"].is_string() && body["detail"].is_string(), "{body}");
}

async fn ledger(cluster: &Cluster) -> Value {
    cluster
        .http
        .get(format!("{}/v1/sandbox/payments", cluster.url))
        .bearer_auth(cluster.admin_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_changes_nothing() {
    let cluster = Cluster::start(Options::default()).await.unwrap();
    let show = cluster.create_show(2, 8).await.unwrap();
    let holds = format!("/v1/shows/{show}/holds");
    let before = cluster.seat_map(show).await.unwrap();
    let post = reqwest::Method::POST;
    let user = cluster.user("u").await.unwrap();
    let u = user.token.as_str();

    let (s, ct, b) = raw(&cluster, post.clone(), &holds, None, Some(r#"{"seats":["A1"]}"#)).await;
    problem(401, &ct, &b, "unauthorized");
    assert_eq!(s, 401);
    // A forged or garbled token is refused like a missing one.
    let forged = format!("{}x", &u[..u.len() - 1]);
    for token in [forged.as_str(), "not-a-jwt"] {
        let (s, ct, b) =
            raw(&cluster, post.clone(), &holds, Some(token), Some(r#"{"seats":["A1"]}"#)).await;
        assert_eq!(s, 401, "{b}");
        problem(s, &ct, &b, "unauthorized");
    }
    // A customer is not an admin.
    let (s, ct, b) = raw(&cluster, post.clone(), "/v1/admin/shows", Some(u), Some("{}")).await;
    assert_eq!(s, 403, "{b}");
    problem(s, &ct, &b, "forbidden");
    let (s, ct, b) = raw(&cluster, post.clone(), &holds, Some(u), Some("{not json")).await;
    problem(s, &ct, &b, "malformed-body");
    let (s, ct, b) = raw(&cluster, post.clone(), &holds, Some(u), Some(r#"{"seats":"A1"}"#)).await;
    assert_eq!(s, 422);
    problem(s, &ct, &b, "malformed-body");
    let (s, ct, b) = raw(
        &cluster,
        post.clone(),
        &holds,
        Some(u),
        Some(r#"{"quantity":-2,"category":"standard"}"#),
    )
    .await;
    problem(s, &ct, &b, "malformed-body");
    let (s, ct, b) = raw(
        &cluster,
        post.clone(),
        &holds,
        Some(u),
        Some(r#"{"quantity":0,"category":"standard"}"#),
    )
    .await;
    problem(s, &ct, &b, "validation-error");
    assert_eq!(s, 422);
    let (s, ct, b) =
        raw(&cluster, post.clone(), &holds, Some(u), Some(r#"{"seats":["A1","Z9"]}"#)).await;
    problem(s, &ct, &b, "unknown-seats");
    assert_eq!(b["unknown_seats"], json!(["Z9"]));
    let eleven: Vec<String> =
        (1..=8).map(|n| format!("A{n}")).chain((1..=3).map(|n| format!("B{n}"))).collect();
    let (s, ct, b) =
        raw(&cluster, post.clone(), &holds, Some(u), Some(&json!({"seats": eleven}).to_string()))
            .await;
    problem(s, &ct, &b, "validation-error");
    let huge = format!(r#"{{"seats":["{}"]}}"#, "A".repeat(100_000));
    let (s, ct, b) = raw(&cluster, post.clone(), &holds, Some(u), Some(&huge)).await;
    assert_eq!(s, 413, "{b}");
    problem(s, &ct, &b, "payload-too-large");
    let (s, ct, b) =
        raw(&cluster, post.clone(), "/v1/shows/999/holds", Some(u), Some(r#"{"seats":["A1"]}"#))
            .await;
    problem(s, &ct, &b, "show-not-found");
    let (s, ct, b) =
        raw(&cluster, reqwest::Method::GET, "/v1/holds/not-an-id", Some(u), None).await;
    problem(s, &ct, &b, "not-found");
    let (s, ct, b) = raw(
        &cluster,
        post.clone(),
        "/v1/bookings",
        Some(u),
        Some(r#"{"hold_id":"1-1","payment_token":"tok_success"}"#),
    )
    .await;
    problem(s, &ct, &b, "validation-error");
    let (s, ct, b) = raw(&cluster, post.clone(), "/v1/admin/shows", None, Some("{}")).await;
    problem(s, &ct, &b, "unauthorized");

    assert_eq!(cluster.seat_map(show).await.unwrap()["rows"], before["rows"], "no seat changed");
}

/// The booking saga scenario: one show of 2 rows of 8 seats, two customers.
struct Saga<'a> {
    cluster: &'a Cluster,
    show: u64,
    alice: User<'a>,
    bob: User<'a>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booking_saga_handles_every_payment_outcome() {
    let cluster =
        Cluster::start(Options { payment_timeout_ms: 300, ..Options::default() }).await.unwrap();
    let show = cluster.create_show(2, 8).await.unwrap();
    let alice = cluster.user("alice").await.unwrap();
    let bob = cluster.user("bob").await.unwrap();
    let s = &Saga { cluster: &cluster, show, alice, bob };

    let hold = behaviour!(a_hold_states_its_amount_and_a_utc_expiry(s)).await;
    let hold_id = hold["hold_id"].as_str().unwrap();
    behaviour!(a_conflicting_hold_lists_the_unavailable_seats(s)).await;
    behaviour!(another_customers_hold_is_invisible(s, hold_id)).await;
    let booking =
        behaviour!(a_booking_confirms_and_an_idempotent_replay_charges_once(s, hold_id)).await;
    behaviour!(an_idempotency_key_reused_for_another_request_is_refused(s)).await;
    behaviour!(a_declined_payment_answers_402_and_keeps_the_hold_for_another_card(s)).await;
    behaviour!(a_payment_timeout_without_a_charge_answers_502_and_frees_the_seats(s)).await;
    behaviour!(a_charge_whose_response_was_lost_is_found_and_the_booking_confirms(s)).await;
    behaviour!(only_the_owner_reads_or_cancels_a_booking(s, &booking)).await;
    let ledger = behaviour!(cancelling_refunds_once_and_frees_the_seats(s, &booking)).await;
    behaviour!(every_charge_ends_as_one_confirmed_booking_or_one_refund(s, &ledger)).await;
}

async fn a_hold_states_its_amount_and_a_utc_expiry(s: &Saga<'_>) -> Value {
    let (status, hold) = s.alice.hold(s.show, json!({"seats": ["A1", "A2"]})).await.unwrap();
    assert_eq!(status, 201, "{hold}");
    assert_eq!(hold["amount"], json!({"amount_minor": 50_000, "currency": "INR"}));
    assert!(hold["expires_at"].as_str().unwrap().ends_with('Z'));
    hold
}

async fn a_conflicting_hold_lists_the_unavailable_seats(s: &Saga<'_>) {
    let (status, conflict) = s.bob.hold(s.show, json!({"seats": ["A2", "A3"]})).await.unwrap();
    assert_eq!(status, 409);
    assert_eq!(conflict["unavailable_seats"], json!(["A2"]));
}

async fn another_customers_hold_is_invisible(s: &Saga<'_>, hold_id: &str) {
    let (status, _) =
        s.bob.send(reqwest::Method::GET, &format!("/v1/holds/{hold_id}")).await.unwrap();
    assert_eq!(status, 404);
    let (status, _) = s.bob.book(hold_id, "tok_success", "steal").await.unwrap();
    assert_eq!(status, 404);
}

/// Success, and an idempotent replay returns the same booking without charging again.
/// Returns the booking.
async fn a_booking_confirms_and_an_idempotent_replay_charges_once(
    s: &Saga<'_>,
    hold_id: &str,
) -> Value {
    let (status, booking) = s.alice.book(hold_id, "tok_success", "alice-1").await.unwrap();
    assert_eq!(status, 201, "{booking}");
    assert_eq!(booking["status"], "confirmed");
    assert!(booking["ticket_code"].as_str().unwrap().starts_with("MQ"));
    let (status, replay) = s.alice.book(hold_id, "tok_success", "alice-1").await.unwrap();
    assert_eq!(status, 201, "{replay}");
    assert_eq!(replay["booking_id"], booking["booking_id"]);
    assert_eq!(ledger(s.cluster).await["charges"].as_object().unwrap().len(), 1);
    booking
}

/// The same key with a different request is refused.
async fn an_idempotency_key_reused_for_another_request_is_refused(s: &Saga<'_>) {
    let (status, other_hold) = s.alice.hold(s.show, json!({"seats": ["A5"]})).await.unwrap();
    assert_eq!(status, 201, "{other_hold}");
    let (status, body) = s
        .alice
        .book(other_hold["hold_id"].as_str().unwrap(), "tok_success", "alice-1")
        .await
        .unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(body["type"].as_str().unwrap().ends_with("idempotency-key-reused"), "{body}");
}

/// Decline: 402, nothing charged, and the hold kept (`hold_kept`): the seats stay held by the
/// same hold, which another card then books under a new key.
async fn a_declined_payment_answers_402_and_keeps_the_hold_for_another_card(s: &Saga<'_>) {
    let (_, hold) = s.bob.hold(s.show, json!({"seats": ["B1"]})).await.unwrap();
    let hold_id = hold["hold_id"].as_str().unwrap();
    let (status, body) = s.bob.book(hold_id, "tok_decline", "bob-1").await.unwrap();
    assert_eq!(status, 402, "{body}");
    assert_eq!(body["hold_kept"], true, "{body}");
    assert!(Cluster::seats_with_status(&s.cluster.seat_map(s.show).await.unwrap(), "held")
        .contains(&"B1".to_owned()));
    let (status, again) =
        s.bob.send(reqwest::Method::GET, &format!("/v1/holds/{hold_id}")).await.unwrap();
    assert_eq!((status, &again["status"]), (200, &json!("active")), "{again}");
    assert_eq!(again["expires_at_ms"], hold["expires_at_ms"], "the same expiry: {again}");
    let (status, booked) = s.bob.book(hold_id, "tok_success", "bob-1b").await.unwrap();
    assert_eq!(status, 201, "{booked}");
    assert_eq!(booked["seats"], json!(["B1"]), "{booked}");
}

/// Timeout with no charge: 502, nothing charged, seats freed.
async fn a_payment_timeout_without_a_charge_answers_502_and_frees_the_seats(s: &Saga<'_>) {
    let (_, hold) = s.bob.hold(s.show, json!({"seats": ["B2"]})).await.unwrap();
    let (status, body) =
        s.bob.book(hold["hold_id"].as_str().unwrap(), "tok_timeout", "bob-2").await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(Cluster::seats_with_status(&s.cluster.seat_map(s.show).await.unwrap(), "available")
        .contains(&"B2".to_owned()));
}

/// Charged but the response was lost: the lookup finds the charge and the booking confirms.
async fn a_charge_whose_response_was_lost_is_found_and_the_booking_confirms(s: &Saga<'_>) {
    let carol = s.cluster.user("carol").await.unwrap();
    let (_, hold) = carol.hold(s.show, json!({"seats": ["B3"]})).await.unwrap();
    let (status, body) = carol
        .book(hold["hold_id"].as_str().unwrap(), "tok_fail_after_charge", "carol-1")
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
}

async fn only_the_owner_reads_or_cancels_a_booking(s: &Saga<'_>, booking: &Value) {
    let booking_id = booking["booking_id"].as_str().unwrap();
    let (status, body) =
        s.bob.send(reqwest::Method::GET, &format!("/v1/bookings/{booking_id}")).await.unwrap();
    assert_eq!(status, 404, "another customer's booking is invisible: {body}");
    let (status, mine) =
        s.alice.send(reqwest::Method::GET, &format!("/v1/bookings/{booking_id}")).await.unwrap();
    assert_eq!((status, &mine["status"]), (200, &json!("confirmed")), "{mine}");
    let (status, _) = s
        .bob
        .send(reqwest::Method::POST, &format!("/v1/bookings/{booking_id}/cancel"))
        .await
        .unwrap();
    assert_eq!(status, 404);
}

/// Cancellation: refund, then seats freed; a repeat is a no-op. Returns the payment ledger.
async fn cancelling_refunds_once_and_frees_the_seats(s: &Saga<'_>, booking: &Value) -> Value {
    let booking_id = booking["booking_id"].as_str().unwrap();
    let (status, cancelled) = s
        .alice
        .send(reqwest::Method::POST, &format!("/v1/bookings/{booking_id}/cancel"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let (status, again) = s
        .alice
        .send(reqwest::Method::POST, &format!("/v1/bookings/{booking_id}/cancel"))
        .await
        .unwrap();
    assert_eq!((status, &again["status"]), (200, &json!("cancelled")));
    let ledger = ledger(s.cluster).await;
    assert_eq!(ledger["refunds"].as_object().unwrap().len(), 1, "{ledger}");
    let map = s.cluster.seat_map(s.show).await.unwrap();
    let available = Cluster::seats_with_status(&map, "available");
    assert!(
        seat_list(booking).iter().all(|s| available.contains(s)),
        "cancelled seats are free again"
    );
    ledger
}

async fn every_charge_ends_as_one_confirmed_booking_or_one_refund(s: &Saga<'_>, ledger: &Value) {
    let charges = ledger["charges"].as_object().unwrap().len();
    let confirmed = s.cluster.bookings(s.show).await.unwrap().len();
    assert_eq!(charges, confirmed + ledger["refunds"].as_object().unwrap().len());
}
