//! How tests talk to a running cluster: the REST API through the gateway (signed in as the
//! admin, as a customer [`User`], or raw with any token and body), the payment service's
//! ledger and fault switches, Prometheus metrics, and each node's gRPC status. The REST
//! contract these helpers exercise is documented in docs/api.md.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use proto::pb::cluster_client::ClusterClient;
use proto::pb::{GroupStatus, StatusRequest};
use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::processes::Node;

impl Cluster {
    /// `POST /v1/auth/login`; returns the tokens body.
    ///
    /// # Errors
    /// The login failed.
    pub async fn login(&self, email: &str, password: &str) -> Result<Value> {
        let response = self
            .http
            .post(format!("{}/v1/auth/login", self.url))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status == 200, "login {email}: {status} {body}");
        Ok(body)
    }

    /// The admin account's access token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The value of one Prometheus series (e.g. `name{label="x"}`) on the gateway at
    /// `gateway_url`; 0 when the series has not appeared yet.
    ///
    /// # Errors
    /// The scrape failed.
    pub async fn metric(&self, gateway_url: &str, series: &str) -> Result<f64> {
        let text = self.http.get(format!("{gateway_url}/metrics")).send().await?.text().await?;
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0))
    }

    /// Sends an admin request and returns the JSON reply, failing on an unexpected status.
    ///
    /// # Errors
    /// The request failed or answered another status.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        expect: u16,
    ) -> Result<Value> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token)
            .json(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        anyhow::ensure!(status == expect, "{path}: {status} {text}");
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Confirmed bookings of a show, via the admin API.
    ///
    /// # Errors
    /// The request failed.
    pub async fn bookings(&self, show_id: u64) -> Result<Vec<Value>> {
        let response = self
            .http
            .get(format!("{}/v1/admin/shows/{show_id}/bookings", self.url))
            .bearer_auth(&self.admin_token)
            .send()
            .await?;
        anyhow::ensure!(response.status() == 200, "bookings: {}", response.status());
        let body: Value = response.json().await?;
        body["bookings"].as_array().cloned().context("bookings array")
    }

    /// The seat map of a show.
    ///
    /// # Errors
    /// The request failed.
    pub async fn seat_map(&self, show_id: u64) -> Result<Value> {
        let response =
            self.http.get(format!("{}/v1/shows/{show_id}/seats", self.url)).send().await?;
        anyhow::ensure!(response.status() == 200, "seat map: {}", response.status());
        Ok(response.json().await?)
    }

    /// Seat ids with the given status in a seat map.
    pub fn seats_with_status(seat_map: &Value, status: &str) -> Vec<String> {
        seat_map["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| row["seats"].as_array().cloned().unwrap_or_default())
            .filter(|seat| seat["status"] == status)
            .filter_map(|seat| seat["seat_id"].as_str().map(str::to_owned))
            .collect()
    }

    /// The payment service's ledger (`GET /v1/ledger`): `{charges, refunds}`.
    ///
    /// # Errors
    /// No payment service was started, or it did not answer.
    pub async fn payments_ledger(&self) -> Result<Value> {
        let url = self.payments_url.as_ref().context("no payment service in this cluster")?;
        let response = self.http.get(format!("{url}/v1/ledger")).send().await?;
        anyhow::ensure!(response.status() == 200, "ledger: {}", response.status());
        Ok(response.json().await?)
    }

    /// Sets the payment service's fault flags (`PUT /v1/admin/faults`).
    ///
    /// # Errors
    /// No payment service was started, or it refused the flags.
    pub async fn set_payment_faults(&self, faults: Value) -> Result<()> {
        let url = self.payments_url.as_ref().context("no payment service in this cluster")?;
        let response = self.http.put(format!("{url}/v1/admin/faults")).json(&faults).send().await?;
        anyhow::ensure!(response.status() == 200, "set faults: {}", response.status());
        Ok(())
    }
}

/// A signed-in customer account ([`Cluster::user`]).
pub struct User<'a> {
    /// The cluster.
    pub cluster: &'a Cluster,
    /// Display name (what the test called it).
    pub name: String,
    /// Login email.
    pub email: String,
    /// Account id.
    pub user_id: u64,
    /// Access token.
    pub token: String,
}

impl User<'_> {
    /// `POST /v1/shows/{id}/holds` with a JSON body; returns (status, body).
    ///
    /// # Errors
    /// Transport failure.
    pub async fn hold(&self, show_id: u64, body: Value) -> Result<(u16, Value)> {
        let response = self
            .cluster
            .http
            .post(format!("{}/v1/shows/{show_id}/holds", self.cluster.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        Ok((response.status().as_u16(), response.json().await.unwrap_or(Value::Null)))
    }

    /// `POST /v1/bookings`; returns (status, body).
    ///
    /// # Errors
    /// Transport failure.
    pub async fn book(&self, hold_id: &str, token: &str, key: &str) -> Result<(u16, Value)> {
        let response = self
            .cluster
            .http
            .post(format!("{}/v1/bookings", self.cluster.url))
            .bearer_auth(&self.token)
            .header("idempotency-key", key)
            .json(&json!({"hold_id": hold_id, "payment_token": token}))
            .send()
            .await?;
        Ok((response.status().as_u16(), response.json().await.unwrap_or(Value::Null)))
    }

    /// A request signed in as this user; returns (status, body).
    ///
    /// # Errors
    /// Transport failure.
    pub async fn send(&self, method: reqwest::Method, path: &str) -> Result<(u16, Value)> {
        let response = self
            .cluster
            .http
            .request(method, format!("{}{path}", self.cluster.url))
            .bearer_auth(&self.token)
            .send()
            .await?;
        Ok((response.status().as_u16(), response.json().await.unwrap_or(Value::Null)))
    }
}

/// A raw request: `token` as a bearer token, `body` sent verbatim as JSON. Returns the status,
/// the content type and the JSON body (`Null` when there is none).
///
/// # Errors
/// Transport failure.
pub async fn raw_request(
    cluster: &Cluster,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String, Value)> {
    let mut request = cluster.http.request(method, format!("{}{path}", cluster.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_owned());
    }
    Ok(read_response(request.send().await?).await)
}

/// The status, content type and JSON body (`Null` when there is none) of a response.
pub async fn read_response(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.json().await.unwrap_or(Value::Null))
}

/// The seat states of a seat map body, by seat id.
pub fn seat_states(seat_map: &Value) -> BTreeMap<String, String> {
    seat_map["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["seats"].as_array().cloned().unwrap_or_default())
        .filter_map(|seat| {
            Some((seat["seat_id"].as_str()?.to_owned(), seat["status"].as_str()?.to_owned()))
        })
        .collect()
}

/// Seat ids listed in a hold or booking body.
pub fn seat_list(body: &Value) -> Vec<String> {
    body["seats"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

impl Node {
    /// The node's view of every replica it hosts (with state digests).
    ///
    /// # Errors
    /// The node is unreachable.
    pub async fn statuses(&self) -> Result<Vec<GroupStatus>> {
        let mut client = ClusterClient::connect(format!("http://{}", self.grpc)).await?;
        let request = StatusRequest { with_digest: true };
        let reply = tokio::time::timeout(Duration::from_secs(5), client.status(request))
            .await
            .context("status timed out")??
            .into_inner();
        Ok(reply.groups)
    }

    /// The node's view of `group`.
    ///
    /// # Errors
    /// The node is unreachable or hosts no replica of the group.
    pub async fn group_status(&self, group: u64) -> Result<GroupStatus> {
        self.statuses()
            .await?
            .into_iter()
            .find(|g| g.group_id == group)
            .with_context(|| format!("node {} hosts no replica of group {group}", self.id))
    }

    /// The node's view of inventory shard 1 (the only shard of a default test cluster).
    ///
    /// # Errors
    /// The node is unreachable or hosts no replica of shard 1.
    pub async fn status(&self) -> Result<GroupStatus> {
        self.group_status(1).await
    }
}
