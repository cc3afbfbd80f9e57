//! What a hostile customer tried (issue #15, item 7), against real processes: computing ticket
//! codes from public ids, retrying a declined payment under the same `Idempotency-Key` to be
//! charged and refunded, inflating revenue metrics with replays, and hoarding a show's seats
//! with long holds from fresh accounts. Each behaviour here failed before its fix.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use tests::{behaviour, Cluster, Options, User, JWT_SECRET};

/// The ticket code the first builds printed: FNV-1a of `{booking}/{confirming index}`, unkeyed,
/// so anyone who knows the (public) show id and a log index could compute it.
fn legacy_code(booking_id: &str, index: u64) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{booking_id}/{index}").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut code = String::from("MQ");
    for _ in 0..8 {
        code.push(ALPHABET[(h % 32) as usize] as char);
        h /= 32;
    }
    code
}

async fn post(
    cluster: &Cluster,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> (u16, String, Value) {
    let mut request = cluster.http.post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    tests::client::read_response(request.send().await.unwrap()).await
}

fn is_problem(content_type: &str, body: &Value, status: u16, slug: &str) {
    assert_eq!(content_type, "application/problem+json", "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(body["type"].as_str().unwrap().ends_with(&format!("/problems/{slug}")), "{body}");
}

async fn sandbox_ledger(cluster: &Cluster) -> Value {
    let response = cluster
        .http
        .get(format!("{}/v1/sandbox/payments", cluster.url))
        .bearer_auth(cluster.admin_token())
        .send()
        .await
        .unwrap();
    response.json().await.unwrap()
}

struct Shop<'a> {
    cluster: &'a Cluster,
    show: u64,
    mallory: User<'a>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_payments_and_metrics_resist_a_hostile_customer() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() }).await.unwrap();
    let show = cluster.create_show(2, 8).await.unwrap();
    let mallory = cluster.user("mallory").await.unwrap();
    let s = &Shop { cluster: &cluster, show, mallory };

    behaviour!(ticket_codes_are_keyed_and_verified_at_the_door(s)).await;
    behaviour!(a_declined_payment_retried_under_its_key_is_declined_again_and_never_charged(s))
        .await;
    behaviour!(replays_of_a_booking_count_its_revenue_once(s)).await;
}

async fn book(s: &Shop<'_>, seats: &[&str], key: &str) -> Value {
    let (status, hold) = s.mallory.hold(s.show, json!({ "seats": seats })).await.unwrap();
    assert_eq!(status, 201, "{hold}");
    let (status, booking) =
        s.mallory.book(hold["hold_id"].as_str().unwrap(), "tok_success", key).await.unwrap();
    assert_eq!(status, 201, "{booking}");
    booking
}

async fn ticket_codes_are_keyed_and_verified_at_the_door(s: &Shop<'_>) {
    let booking = book(s, &["A1"], "codes-1").await;
    let booking_id = booking["booking_id"].as_str().unwrap();
    let code = booking["ticket_code"].as_str().unwrap();
    // Not the unkeyed derivation: no confirming index near the booking's gives this code.
    let seq: u64 = booking_id.rsplit('-').next().unwrap().parse().unwrap();
    for index in seq.saturating_sub(5)..seq + 50 {
        assert_ne!(code, legacy_code(booking_id, index), "computable from the booking id");
    }
    // It is HMAC-SHA-256 under the gateways' key (here derived from their JWT secret).
    let key = auth::TicketKey::derived_from_jwt_secret(JWT_SECRET.as_bytes()).unwrap();
    assert_eq!(code, key.code(booking_id));
    assert_eq!(code.len(), auth::TICKET_CODE_CHARS);

    // A gateway with its own ticket secret issues codes under that key, and any gateway
    // verifies stored codes at the door (admin or the theater's manager).
    let secret = "a-separate-ticket-secret-0123456789abcdef";
    let options = Options {
        gateway_env: vec![("MARQUEE_TICKET_SECRET".into(), secret.into())],
        ..s.cluster.options().clone()
    };
    let gateway = s.cluster.spawn_gateway("ticket-secret", &options).await.unwrap();
    let (status, hold) = s.mallory.hold(s.show, json!({"seats": ["A2"]})).await.unwrap();
    assert_eq!(status, 201, "{hold}");
    let request = json!({"hold_id": hold["hold_id"], "payment_token": "tok_success"});
    let response = s
        .cluster
        .http
        .post(format!("{}/v1/bookings", gateway.url))
        .bearer_auth(&s.mallory.token)
        .header("idempotency-key", "codes-2")
        .json(&request)
        .send()
        .await
        .unwrap();
    let (status, _, other) = tests::client::read_response(response).await;
    assert_eq!(status, 201, "{other}");
    let other_id = other["booking_id"].as_str().unwrap();
    let own_key = auth::TicketKey::new(secret.as_bytes()).unwrap();
    assert_eq!(other["ticket_code"].as_str().unwrap(), own_key.code(other_id));

    let verify = |code: &str| json!({ "ticket_code": code });
    let url = format!("{}/v1/admin/shows/{}/tickets/verify", s.cluster.url, s.show);
    let admin = Some(s.cluster.admin_token());
    let (status, _, found) = post(s.cluster, &url, admin, &verify(code)).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["booking_id"], booking_id);
    let other_code = other["ticket_code"].as_str().unwrap();
    let (status, _, found) = post(s.cluster, &url, admin, &verify(other_code)).await;
    assert_eq!((status, found["booking_id"].as_str()), (200, Some(other_id)), "{found}");
    // A guessed code, or the legacy code of a real booking, is no ticket.
    for guess in [legacy_code(booking_id, seq + 1), "MQAAAAAAAAAAAAAAAA".to_owned()] {
        let (status, ct, body) = post(s.cluster, &url, admin, &verify(&guess)).await;
        is_problem(&ct, &body, 404, "not-found");
        assert_eq!(status, 404);
    }
    let (_, ct, body) = post(s.cluster, &url, admin, &verify("MQ-not-a-code")).await;
    is_problem(&ct, &body, 422, "validation-error");
    // Customers cannot check tickets, not even with a malformed body.
    let (_, ct, body) =
        post(s.cluster, &url, Some(&s.mallory.token), &json!({"ticket_code": 7})).await;
    is_problem(&ct, &body, 403, "forbidden");
}

async fn a_declined_payment_retried_under_its_key_is_declined_again_and_never_charged(
    s: &Shop<'_>,
) {
    let (status, hold) = s.mallory.hold(s.show, json!({"seats": ["B1", "B2"]})).await.unwrap();
    assert_eq!(status, 201, "{hold}");
    let hold_id = hold["hold_id"].as_str().unwrap();
    let (status, declined) = s.mallory.book(hold_id, "tok_decline", "declined-1").await.unwrap();
    assert_eq!(status, 402, "{declined}");
    // The same key with a good card: the key's outcome is fixed, so 402 again, and the card is
    // neither charged nor refunded (before: charged, refunded, 409 checkout-expired).
    for token in ["tok_success", "tok_decline", "tok_success"] {
        let (status, again) = s.mallory.book(hold_id, token, "declined-1").await.unwrap();
        assert_eq!(status, 402, "{again}");
        assert!(again["type"].as_str().unwrap().ends_with("/payment-declined"), "{again}");
    }
    let (_, mine) = s.mallory.send(reqwest::Method::GET, "/v1/me/bookings").await.unwrap();
    let failed: Vec<&Value> =
        mine["bookings"].as_array().unwrap().iter().filter(|b| b["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{mine}");
    let failed_id = failed[0]["booking_id"].as_str().unwrap();
    assert!(failed[0]["failure_reason"].as_str().unwrap().starts_with("payment declined"));
    let ledger = sandbox_ledger(s.cluster).await;
    assert!(ledger["charges"].get(failed_id).is_none(), "never charged: {ledger}");
    assert!(ledger["refunds"].as_object().unwrap().is_empty(), "nothing refunded: {ledger}");
    // The hold was kept for another card: a new key on the same hold goes through cleanly.
    assert_eq!(declined["hold_kept"], true, "{declined}");
    let (status, booked) = s.mallory.book(hold_id, "tok_success", "declined-2").await.unwrap();
    assert_eq!(status, 201, "{booked}");
    assert!(sandbox_ledger(s.cluster).await["refunds"].as_object().unwrap().is_empty());
}

async fn replays_of_a_booking_count_its_revenue_once(s: &Shop<'_>) {
    let revenue = "marquee_gateway_revenue_minor_total{currency=\"INR\"}";
    let confirmed = "marquee_gateway_bookings_total{status=\"confirmed\"}";
    let url = &s.cluster.url;
    let (revenue_0, confirmed_0) = (
        s.cluster.metric(url, revenue).await.unwrap(),
        s.cluster.metric(url, confirmed).await.unwrap(),
    );
    let (status, hold) = s.mallory.hold(s.show, json!({"seats": ["A5", "A6"]})).await.unwrap();
    assert_eq!(status, 201, "{hold}");
    let hold_id = hold["hold_id"].as_str().unwrap();
    let (status, first) = s.mallory.book(hold_id, "tok_success", "replayed").await.unwrap();
    assert_eq!(status, 201, "{first}");
    // Twenty replays one after the other, then ten at once.
    for _ in 0..20 {
        let (status, replay) = s.mallory.book(hold_id, "tok_success", "replayed").await.unwrap();
        assert_eq!((status, &replay["booking_id"]), (201, &first["booking_id"]), "{replay}");
    }
    let replays = std::sync::Mutex::new(Vec::new());
    tests::join_all((0..10).map(|_| async {
        let replay = s.mallory.book(hold_id, "tok_success", "replayed").await.unwrap();
        replays.lock().unwrap().push(replay);
    }))
    .await;
    for (status, replay) in replays.into_inner().unwrap() {
        assert_eq!((status, &replay["booking_id"]), (201, &first["booking_id"]), "{replay}");
    }
    assert_eq!(s.cluster.metric(url, revenue).await.unwrap() - revenue_0, 50_000.0);
    assert_eq!(s.cluster.metric(url, confirmed).await.unwrap() - confirmed_0, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_customer_one_ip_cannot_hoard_a_show() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() }).await.unwrap();
    let show = cluster.create_show(6, 10).await.unwrap();
    // A gateway with the default policy (the harness turns the rates off elsewhere).
    let defaults = [
        ("MARQUEE_GATEWAY_HOLD_RATE_USER_PER_MIN", "10"),
        ("MARQUEE_GATEWAY_HOLD_RATE_IP_PER_MIN", "60"),
        ("MARQUEE_GATEWAY_REGISTER_RATE_IP_PER_MIN", "0.5"),
    ];
    let options = Options {
        gateway_env: defaults.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        ..cluster.options().clone()
    };
    let gateway = cluster.spawn_gateway("policy", &options).await.unwrap();
    let g = gateway.url.as_str();
    let holds = format!("{g}/v1/shows/{show}/holds");
    let metric = |limit: &str| format!("marquee_gateway_rate_limited_total{{limit=\"{limit}\"}}");

    behaviour!(fresh_accounts_from_one_ip_are_bounded(&cluster, g, &metric("register_ip"))).await;
    let mallory = cluster.user("mallory").await.unwrap();
    let m = Some(mallory.token.as_str());

    // The 2-hour hold is refused (to anyone: the cap is the document's `ttl_ms` maximum).
    let long = json!({"quantity": 2, "category": "standard", "ttl_ms": 7_200_000});
    for token in [m, Some(cluster.admin_token())] {
        let (_, ct, body) = post(&cluster, &holds, token, &long).await;
        is_problem(&ct, &body, 422, "validation-error");
        assert!(body["detail"].as_str().unwrap().contains("900000"), "{body}");
    }

    // At most 10 seats of a show per account, whatever the split into holds.
    let six = json!({"quantity": 6, "category": "standard", "ttl_ms": 900_000});
    let (status, _, body) = post(&cluster, &holds, m, &six).await;
    assert_eq!(status, 201, "{body}");
    let five = json!({"quantity": 5, "category": "standard"});
    let (_, ct, body) = post(&cluster, &holds, m, &five).await;
    is_problem(&ct, &body, 409, "too-many-seats-held");
    assert_eq!(
        (body["seats_per_account_max"].as_u64(), body["seats_held"].as_u64()),
        (Some(10), Some(6))
    );
    let four = json!({"quantity": 4, "category": "standard"});
    let (status, _, body) = post(&cluster, &holds, m, &four).await;
    assert_eq!(status, 201, "{body}");
    let refused = "marquee_gateway_holds_total{event=\"refused_seat_limit\"}";
    assert_eq!(cluster.metric(g, refused).await.unwrap(), 1.0);

    // Holds per account are rate limited (10 at once, then 10 a minute).
    let one = json!({"quantity": 1, "category": "standard"});
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let (status, ct, body) = post(&cluster, &holds, m, &one).await;
        if status == 429 {
            is_problem(&ct, &body, 429, "rate-limited");
        }
        statuses.push(status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(cluster.metric(g, &metric("hold_user")).await.unwrap() >= 1.0);
}

/// Registrations from one IP: 5 at once, then one every 2 minutes.
async fn fresh_accounts_from_one_ip_are_bounded(cluster: &Cluster, g: &str, metric: &str) {
    let url = format!("{g}/v1/auth/register");
    let mut statuses = Vec::new();
    for i in 0..7 {
        let email = format!("hoarder-{i}-{:016x}@marquee.test", tests::rand_u64());
        let body = json!({"email": email, "password": "hoarder-password", "name": "h"});
        let (status, ct, body) = post(cluster, &url, None, &body).await;
        if status == 429 {
            is_problem(&ct, &body, 429, "rate-limited");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [201, 201, 201, 201, 201, 429, 429]);
    assert_eq!(cluster.metric(g, metric).await.unwrap(), 2.0);
}
