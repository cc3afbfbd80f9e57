//! The OpenAPI document is an exact contract (issue #15, item 5): a third-party fuzzer,
//! schemathesis (pinned, installed by `scripts/test` into the cached venv), generates requests
//! from `/openapi.json` against a real cluster, as a customer and as an admin, and every check
//! must pass: no 5xx, every status and content type documented, every response valid against
//! its schema, every request the schema allows accepted and every request it forbids refused.
//!
//! Fixtures (a show, its movie, theater and screen, a hold and a booking of the caller, another
//! account) are created first and given to the fuzzer as fixed parameter values, so it reaches
//! real holds, bookings and shows instead of only 404s. The customer run goes first: the admin
//! run may cancel the show and change the other account's role.
//!
//! `MARQUEE_SCHEMATHESIS` names the `st` executable; without it the test says so and passes
//! (`scripts/test` always sets it). `MARQUEE_FUZZ_EXAMPLES` sets the examples per operation
//! (default 10, which keeps the two runs to a couple of minutes on 2 cores) and
//! `MARQUEE_FUZZ_SEED` the seed (default fixed, so CI runs are repeatable).

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use serde_json::{json, Value};
use tests::{Cluster, Options};

/// Writes the fuzzer's configuration for one caller and runs it; returns whether every check
/// passed, printing the fuzzer's report either way.
fn fuzz(st: &str, cluster: &Cluster, who: &str, token: &str, params: &Value) -> bool {
    let dir = cluster.dir.path().join(format!("fuzz-{who}"));
    std::fs::create_dir_all(&dir).unwrap();
    let examples: u32 =
        std::env::var("MARQUEE_FUZZ_EXAMPLES").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let seed = std::env::var("MARQUEE_FUZZ_SEED").unwrap_or_else(|_| "1515".into());
    let mut config = include_str!("../fuzz/schemathesis.toml").to_owned();
    config.push_str(&format!(
        "\n[generation]\nmax-examples = {examples}\ncodec = \"ascii\"\nallow-x00 = false\n"
    ));
    config.push_str("\n[parameters]\n");
    for (name, value) in params.as_object().unwrap() {
        config.push_str(&format!("{name} = {value}\n"));
    }
    let path = dir.join("schemathesis.toml");
    std::fs::write(&path, &config).unwrap();
    let output = Command::new(st)
        .arg("--config-file")
        .arg(&path)
        .arg("run")
        .arg(format!("{}/openapi.json", cluster.url))
        .args(["--checks", "all", "--workers", "2", "--seed", &seed])
        .arg("--header")
        .arg(format!("Authorization: Bearer {token}"))
        .arg("--report-dir")
        .arg(dir.join("report"))
        .env("NO_COLOR", "1")
        .current_dir(&dir)
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("==== schemathesis as {who} ====\n{stdout}\n{stderr}");
    output.status.success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_contract_holds_under_schemathesis() {
    let Ok(st) = std::env::var("MARQUEE_SCHEMATHESIS") else {
        eprintln!("MARQUEE_SCHEMATHESIS is not set: the contract fuzzing is skipped");
        return;
    };
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() }).await.unwrap();
    let show = cluster.create_show(4, 10).await.unwrap();
    let page = cluster.http.get(format!("{}/v1/shows/{show}", cluster.url)).send().await;
    let page: Value = page.unwrap().json().await.unwrap();
    let customer = cluster.user("fuzz-customer").await.unwrap();
    let other = cluster.user("fuzz-other").await.unwrap();

    // Each caller gets a hold and a confirmed booking of its own.
    let mut fixtures = Vec::new();
    for (who, token, seats) in [
        ("customer", customer.token.clone(), ["A1", "A2", "A3"]),
        ("admin", cluster.admin_token().to_owned(), ["B1", "B2", "B3"]),
    ] {
        let hold = |seats: &[&str]| {
            let url = format!("{}/v1/shows/{show}/holds", cluster.url);
            cluster.http.post(url).bearer_auth(&token).json(&json!({ "seats": seats })).send()
        };
        let held: Value = hold(&seats[..1]).await.unwrap().json().await.unwrap();
        let to_book: Value = hold(&seats[1..]).await.unwrap().json().await.unwrap();
        let booking = cluster
            .http
            .post(format!("{}/v1/bookings", cluster.url))
            .bearer_auth(&token)
            .header("idempotency-key", format!("fuzz-{who}"))
            .json(&json!({"hold_id": to_book["hold_id"], "payment_token": "tok_success"}))
            .send()
            .await
            .unwrap();
        let booking: Value = booking.json().await.unwrap();
        assert_eq!(booking["status"], "confirmed", "{booking}");
        let params = json!({
            "show_id": show,
            "movie_id": page["show"]["movie_id"],
            "theater_id": page["show"]["theater_id"],
            "screen_id": page["show"]["screen_id"],
            "user_id": other.user_id,
            "hold_id": held["hold_id"],
            "booking_id": booking["booking_id"],
        });
        fixtures.push((who, token, params));
    }
    let mut failed = Vec::new();
    for (who, token, params) in &fixtures {
        if !fuzz(&st, &cluster, who, token, params) {
            failed.push(*who);
        }
    }
    assert!(failed.is_empty(), "schemathesis found contract failures as {failed:?} (report above)");
}
