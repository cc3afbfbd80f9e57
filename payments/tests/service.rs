//! The payment service over real HTTP on a loopback port: tokens, idempotency, refunds, faults,
//! bounds and problem+json errors.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use payments::Config;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

struct Service {
    url: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(admin_token: Option<&str>) -> Service {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = Config {
        listen: listener.local_addr().unwrap(),
        timeout_stall_ms: 60_000,
        admin_token: admin_token.map(str::to_owned),
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(payments::serve(listener, config, shutdown.clone()));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    Service { url, http, shutdown, task }
}

impl Service {
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self.http.post(format!("{}{path}", self.url)).json(&body).send().await;
        let response = response.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(format!("{}{path}", self.url)).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    async fn charge(&self, key: &str, token: &str) -> (u16, Value) {
        self.post(
            "/v1/charges",
            json!({"key": key, "amount_minor": 500, "currency": "INR", "token": token}),
        )
        .await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn problem(body: &Value, slug: &str) {
    assert!(body["type"].as_str().unwrap().ends_with(&format!("/problems/{slug}")), "{body}");
    assert!(body["detail"].is_string(), "{body}");
}

#[tokio::test]
async fn tokens_charge_decline_and_lose_responses() {
    let service = start(None).await;
    let (status, charge) = service.charge("1-4", "tok_success").await;
    assert_eq!(status, 201, "{charge}");
    assert_eq!(charge["reference"], "ch_1-4");
    let (status, replay) = service.charge("1-4", "tok_decline").await;
    assert_eq!(
        (status, &replay),
        (200, &charge),
        "a replay returns the charge, whatever the token"
    );

    let (status, body) = service.charge("1-5", "tok_decline").await;
    assert_eq!(status, 402);
    problem(&body, "card-declined");
    let (status, body) = service.charge("1-6", "tok_nonsense").await;
    assert_eq!(status, 402);
    problem(&body, "card-declined");

    let (status, body) = service.charge("1-7", "tok_fail_after_charge").await;
    assert_eq!(status, 500);
    problem(&body, "response-lost");
    let (status, found) = service.get("/v1/charges/1-7").await;
    assert_eq!((status, &found["reference"]), (200, &json!("ch_1-7")));
    let (status, body) = service.get("/v1/charges/1-5").await;
    assert_eq!(status, 404);
    problem(&body, "charge-not-found");

    let started = Instant::now();
    let (status, _) = service.charge("1-8", "tok_delay_300").await;
    assert_eq!(status, 201);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let (_, ledger) = service.get("/v1/ledger").await;
    let keys: Vec<&String> = ledger["charges"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["1-4", "1-7", "1-8"]);
    service.stop().await;
}

#[tokio::test]
async fn delayed_charge_is_recorded_before_the_answer() {
    let service = start(None).await;
    let slow = service.charge("2-1", "tok_delay_5000");
    let probe = async {
        let deadline = Instant::now() + Duration::from_secs(4);
        loop {
            let (status, _) = service.get("/v1/charges/2-1").await;
            if status == 200 {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        found = probe => assert!(found, "charge visible while its answer is delayed"),
        _ = slow => panic!("the delayed answer came first"),
    }
    service.stop().await;
}

#[tokio::test]
async fn timeout_token_stalls_and_charges_nothing_and_shutdown_cuts_it_short() {
    let service = start(None).await;
    let http = service.http.clone();
    let url = service.url.clone();
    let stalled = tokio::spawn(async move {
        http.post(format!("{url}/v1/charges"))
            .json(&json!({"key": "3-1", "amount_minor": 1, "currency": "INR", "token": "tok_timeout"}))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = service.get("/v1/charges/3-1").await;
    assert_eq!(status, 404, "a stalled charge takes no money");
    let started = Instant::now();
    service.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown does not wait out the stall");
    assert_eq!(stalled.await.unwrap().unwrap(), 503);
}

#[tokio::test]
async fn refunds_are_idempotent_and_bounded_by_the_charge() {
    let service = start(None).await;
    service.charge("4-1", "tok_success").await;
    let refund = |key: &'static str, amount: i64| {
        service.post(
            "/v1/refunds",
            json!({"key": key, "charge_ref": "ch_4-1", "amount_minor": amount, "currency": "INR"}),
        )
    };
    let (status, first) = refund("refund:4-1", 500).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["reference"], "rf_refund:4-1");
    let (status, again) = refund("refund:4-1", 500).await;
    assert_eq!((status, &again), (200, &first));
    let (status, body) = refund("refund:4-1:other", 1).await;
    assert_eq!(status, 409);
    problem(&body, "refund-exceeds-charge");
    let (status, body) = service
        .post(
            "/v1/refunds",
            json!({"key": "r", "charge_ref": "ch_none", "amount_minor": 1, "currency": "INR"}),
        )
        .await;
    assert_eq!(status, 404);
    problem(&body, "charge-not-found");
    let (_, ledger) = service.get("/v1/ledger").await;
    assert_eq!(ledger["refunds"].as_object().unwrap().len(), 1);
    service.stop().await;
}

#[tokio::test]
async fn service_wide_faults_fail_lose_and_delay_calls() {
    let service = start(Some("fault-admin")).await;
    let faults = json!({"fail_next_calls": 2, "lose_next_responses": 1, "latency_ms": 100});
    let response =
        service.http.put(format!("{}/v1/admin/faults", service.url)).json(&faults).send().await;
    assert_eq!(response.unwrap().status(), 401, "the admin token is required when configured");
    let set = |body: Value| {
        service
            .http
            .put(format!("{}/v1/admin/faults", service.url))
            .header("x-marquee-admin-token", "fault-admin")
            .json(&body)
            .send()
    };
    assert_eq!(set(faults.clone()).await.unwrap().status(), 200);

    let started = Instant::now();
    let (status, body) = service.charge("5-1", "tok_success").await;
    assert_eq!(status, 503);
    problem(&body, "injected-fault");
    assert!(started.elapsed() >= Duration::from_millis(100), "latency applies");
    let (status, _) = service.get("/v1/charges/5-1").await;
    assert_eq!(status, 503, "lookups count as calls");
    let (status, body) = service.charge("5-1", "tok_success").await;
    assert_eq!(status, 500, "{body}");
    problem(&body, "response-lost");
    let (status, _) = service.get("/v1/charges/5-1").await;
    assert_eq!(status, 200, "the lost response's charge was made once");
    let (status, body) = service.charge("5-1", "tok_success").await;
    assert_eq!(status, 200, "faults used up: {body}");

    assert_eq!(set(json!({"latency_ms": 999_999_999})).await.unwrap().status(), 422);
    assert_eq!(set(json!({"bogus": 1})).await.unwrap().status(), 422);
    service.stop().await;
}

#[tokio::test]
async fn bad_input_gets_problem_json_and_changes_nothing() {
    let service = start(None).await;
    let cases = [
        (json!({"key": "", "amount_minor": 1, "currency": "INR", "token": "tok_success"}), 422),
        (json!({"key": "k", "amount_minor": -1, "currency": "INR", "token": "tok_success"}), 422),
        (json!({"key": "k", "amount_minor": 1, "currency": "inr", "token": "tok_success"}), 422),
        (json!({"key": "k", "amount_minor": 1, "currency": "INR", "token": ""}), 422),
        (json!({"key": "k k", "amount_minor": 1, "currency": "INR", "token": "tok_success"}), 422),
        (json!({"key": "k", "amount_minor": "1", "currency": "INR", "token": "tok_success"}), 422),
        (
            json!({"key": "k", "amount_minor": 1, "currency": "INR", "token": "tok_success", "x": 1}),
            422,
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = service.post("/v1/charges", body.clone()).await;
        assert_eq!(status, expected, "{body} -> {answer}");
        assert!(answer["type"].as_str().unwrap().contains("/problems/"), "{answer}");
    }
    let response = service
        .http
        .post(format!("{}/v1/charges", service.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let huge =
        json!({"key": "k".repeat(100_000), "amount_minor": 1, "currency": "INR", "token": "t"});
    let (status, body) = service.post("/v1/charges", huge).await;
    assert_eq!(status, 413);
    problem(&body, "payload-too-large");
    let (status, _) = service.get(&format!("/v1/charges/{}", "k".repeat(200))).await;
    assert_eq!(status, 422);
    let (status, body) = service.get("/v1/nowhere").await;
    assert_eq!(status, 404);
    problem(&body, "not-found");
    let (_, ledger) = service.get("/v1/ledger").await;
    assert!(ledger["charges"].as_object().unwrap().is_empty());
    service.stop().await;
}
