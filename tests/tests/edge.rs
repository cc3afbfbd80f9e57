//! Edge behaviour of the gateway that is not about any one endpoint: per-IP rate limits
//! (`429` + `Retry-After`, problem+json; never on probes, metrics or `/openapi.json`), request
//! ids (echoed, generated, in error bodies and in the gateway's log lines).

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use tests::{Cluster, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after_and_request_ids_travel() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() }).await.unwrap();
    // A second gateway with a per-IP limit of 1 request/s and the default burst of 100.
    let limited = Options { rate_limit_ip_per_s: 1.0, ..cluster.options().clone() };
    let gateway = cluster.spawn_gateway("limited", &limited).await.unwrap();

    // Request ids: a sane client id is echoed; none (or a bad one) gets a generated id.
    let response = cluster
        .http
        .get(format!("{}/v1/no-such-route", gateway.url))
        .header("x-request-id", "edge-test-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-request-id"], "edge-test-42");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["request_id"], "edge-test-42", "error bodies carry the request id: {body}");
    for header in [None, Some("bad id with spaces")] {
        let mut request = cluster.http.get(format!("{}/healthz", gateway.url));
        if let Some(value) = header {
            request = request.header("x-request-id", value);
        }
        let response = request.send().await.unwrap();
        let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 16, "generated ids are 16 hex digits: {id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    // The 404 above was logged with its request id.
    let log = std::fs::read_to_string(gateway.log()).unwrap();
    assert!(
        log.lines().any(|l| l.contains("edge-test-42") && l.contains("status=404")),
        "no log line for the request:\n{log}"
    );

    // The burst passes, then the limit answers 429 with Retry-After, as problem+json.
    let mut statuses = Vec::new();
    let mut limited_response = None;
    for _ in 0..130 {
        let response =
            cluster.http.get(format!("{}/v1/no-such-route", gateway.url)).send().await.unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 && limited_response.is_none() {
            limited_response = Some(response);
        }
    }
    let ok = statuses.iter().filter(|s| **s == 404).count();
    // The 404 above spent a token too (/healthz is exempt); a few refill while this runs.
    assert!((97..=110).contains(&ok), "burst of 100 at 1/s, got {ok} ok: {statuses:?}");
    let response = limited_response.expect("the limit refused some requests");
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert!(body["type"].as_str().unwrap().ends_with("/problems/rate-limited"), "{body}");
    assert_eq!(body["status"], 429);

    // Probes are never limited, and the unlimited gateway of the same cluster is unaffected.
    let healthz = cluster.http.get(format!("{}/healthz", gateway.url)).send().await.unwrap();
    assert_eq!(healthz.status(), 200);
    // Nor is the contract (docs/api.md), even from a client over its limit.
    for _ in 0..3 {
        let url = format!("{}/openapi.json", gateway.url);
        assert_eq!(cluster.http.get(url).send().await.unwrap().status(), 200);
    }
    for _ in 0..150 {
        let response =
            cluster.http.get(format!("{}/v1/no-such-route", cluster.url)).send().await.unwrap();
        assert_eq!(response.status(), 404);
    }
    // Refusals are counted.
    let metrics =
        cluster.http.get(format!("{}/metrics", gateway.url)).send().await.unwrap().text().await;
    let metrics = metrics.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("marquee_gateway_rate_limited_total{limit=\"ip\"}")),
        "{metrics}"
    );
}
