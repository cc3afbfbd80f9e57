//! A thin client for the gateway's REST API, one method per endpoint the bench calls.
//!
//! Every call returns a [`Timed`]: the decoded body or a classified [`Failure`], plus the
//! latency of the whole exchange (request sent to body read), so the workload can record
//! latencies and count errors by status and problem type without parsing anything itself.

use std::time::{Duration, Instant};

use reqwest::{Client, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// Why a call did not produce the expected success.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The gateway answered with an unexpected status. `kind` is the last segment of the
    /// problem+json `type` URL (e.g. `seats-unavailable`), or `-` if the body had none.
    Status {
        /// HTTP status code.
        status: u16,
        /// Problem type slug.
        kind: String,
        /// The decoded body (`Null` if it was not JSON).
        body: Value,
        /// `Retry-After` in seconds, when the gateway sent one.
        retry_after_s: Option<u64>,
    },
    /// No usable answer: `timeout`, `connect`, `request` (e.g. connection closed mid-request),
    /// `body` (unreadable or undecodable body) or `transport`.
    Transport(&'static str),
}

impl Failure {
    /// Stable key for error tables: `"409 seats-unavailable"`, `"timeout"`.
    pub fn key(&self) -> String {
        match self {
            Failure::Status { status, kind, .. } => format!("{status} {kind}"),
            Failure::Transport(kind) => format!("transport {kind}"),
        }
    }

    /// The status code, if the gateway answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::Status { status, .. } => Some(*status),
            Failure::Transport(_) => None,
        }
    }

    /// The problem type slug, if the gateway answered.
    pub fn kind(&self) -> Option<&str> {
        match self {
            Failure::Status { kind, .. } => Some(kind),
            Failure::Transport(_) => None,
        }
    }

    /// How long a closed-loop worker should pause after this failure before its next journey,
    /// so that an unreachable gateway or a leader election is not hammered in a busy loop:
    /// 503s honour `Retry-After` capped at 250 ms, transport failures pause 100 ms, and
    /// ordinary client errors not at all.
    pub fn pause(&self) -> Option<Duration> {
        match self {
            Failure::Status { status: 503, retry_after_s, .. } => {
                let asked = Duration::from_secs(retry_after_s.unwrap_or(1));
                Some(asked.min(Duration::from_millis(250)))
            }
            Failure::Status { .. } => None,
            Failure::Transport(_) => Some(Duration::from_millis(100)),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status { body, .. } => {
                let detail = body.get("detail").and_then(Value::as_str).unwrap_or("");
                write!(f, "{} {detail}", self.key())
            }
            Failure::Transport(_) => f.write_str(&self.key()),
        }
    }
}

/// The outcome of one call and how long it took.
#[derive(Debug)]
pub struct Timed<T> {
    /// Decoded success body, or why not.
    pub result: Result<T, Failure>,
    /// Wall-clock latency in microseconds.
    pub micros: u64,
}

/// `201` of `POST /v1/admin/shows`.
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedShow {
    /// Id chosen by the gateway.
    pub show_id: u64,
    /// Seats in the layout.
    pub capacity: u32,
}

/// `GET /v1/shows/{id}/seats`.
#[derive(Debug, Clone, Deserialize)]
pub struct SeatMap {
    /// Seats whose status is `available`.
    pub available: u32,
    /// Rows in layout order.
    pub rows: Vec<Row>,
}

/// One row of a seat map.
#[derive(Debug, Clone, Deserialize)]
pub struct Row {
    /// Seats in number order.
    pub seats: Vec<Seat>,
}

/// One seat of a seat map.
#[derive(Debug, Clone, Deserialize)]
pub struct Seat {
    /// `"A7"`.
    pub seat_id: String,
    /// `available`, `held` or `sold`: an enum, not a `String` per seat (the bench parses a
    /// 600-seat map per journey in adjacent mode, on the cores it shares with the cluster).
    pub status: SeatStatus,
    /// An aisle follows this seat: a party may not span it.
    #[serde(default)]
    pub aisle_after: bool,
}

/// A seat's status in a seat map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeatStatus {
    /// Can be held.
    Available,
    /// In a hold or a checkout.
    Held,
    /// In a confirmed booking.
    Sold,
}

/// `201` of `POST /v1/shows/{id}/holds`.
#[derive(Debug, Clone, Deserialize)]
pub struct HoldAck {
    /// `"<show>-<seq>"`.
    pub hold_id: String,
    /// Held seats.
    pub seats: Vec<String>,
}

/// A booking: the `201` of `POST /v1/bookings` and the items of the admin listing.
#[derive(Debug, Clone, Deserialize)]
pub struct Booking {
    /// `"<show>-<seq>"`.
    pub booking_id: String,
    /// `confirmed` (or another lifecycle state).
    pub status: String,
    /// Booked seats.
    pub seats: Vec<String>,
}

/// `GET /v1/admin/shows/{id}/bookings`.
#[derive(Debug, Clone, Deserialize)]
pub struct Bookings {
    /// Confirmed bookings of the show.
    pub bookings: Vec<Booking>,
}

/// What a hold asks for.
#[derive(Debug, Clone)]
pub enum HoldRequest {
    /// These exact seats.
    Seats(Vec<String>),
    /// The gateway's best `quantity` seats of `category`.
    Best {
        /// Party size.
        quantity: u32,
        /// Seat category.
        category: String,
    },
}

/// The gateway, reached over a pooled HTTP client.
#[derive(Debug, Clone)]
pub struct Api {
    http: Client,
    base: String,
    admin_token: String,
    /// Catalog screen per distinct seat layout (rows JSON), so shows of one layout share one.
    screens: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
}

impl Api {
    /// A client with a connection pool sized for `concurrency` and a per-request `timeout`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(base: &str, concurrency: usize, timeout: Duration) -> anyhow::Result<Api> {
        let http = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .pool_max_idle_per_host(concurrency.max(1) + 8)
            .tcp_nodelay(true)
            .build()?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
            admin_token: String::new(),
            screens: std::sync::Arc::default(),
        })
    }

    /// Signs in as an admin (`POST /v1/auth/login`); later admin calls use its access token.
    ///
    /// # Errors
    /// The login failed.
    pub async fn sign_in_admin(&mut self, email: &str, password: &str) -> anyhow::Result<()> {
        let request = self
            .http
            .post(self.url("/v1/auth/login"))
            .json(&json!({ "email": email, "password": password }));
        let body = send(request, StatusCode::OK)
            .await
            .map_err(|f| anyhow::anyhow!("admin login as {email} failed: {}", f.key()))?;
        let body: Value = serde_json::from_slice(&body)?;
        self.admin_token = body["access_token"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("login answered no access_token"))?
            .to_owned();
        Ok(())
    }

    /// Registers a customer account (`POST /v1/auth/register`); returns its access token.
    ///
    /// # Errors
    /// The registration failed.
    pub async fn register(&self, email: &str, name: &str) -> anyhow::Result<String> {
        let request = self.http.post(self.url("/v1/auth/register")).json(&json!({
            "email": email, "password": "bench-password", "name": name,
        }));
        let body = send(request, StatusCode::CREATED)
            .await
            .map_err(|f| anyhow::anyhow!("registering {email} failed: {}", f.key()))?;
        let body: Value = serde_json::from_slice(&body)?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("register answered no access_token"))
    }

    /// The gateway's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /readyz`: the gateway answers and reaches the cluster.
    pub async fn ready(&self) -> Timed<Value> {
        let request = self.http.get(self.url("/readyz"));
        exchange_text(request, StatusCode::OK).await
    }

    /// Creates a show from `{title, starts_at_ms, layout}` through the catalog: the bench's
    /// movie and theater (fixed ids, idempotent), one screen per distinct layout, then
    /// `POST /v1/admin/shows`. Timed as one operation.
    pub async fn create_show(&self, body: &Value) -> Timed<CreatedShow> {
        let started = Instant::now();
        let result = self.create_catalog_show(body).await;
        Timed { result, micros: micros_since(started) }
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        expect: StatusCode,
    ) -> Result<Value, Failure> {
        let request =
            self.http.request(method, self.url(path)).bearer_auth(&self.admin_token).json(body);
        let bytes = send(request, expect).await?;
        serde_json::from_slice(&bytes).map_err(|_| Failure::Transport("body"))
    }

    async fn create_catalog_show(&self, body: &Value) -> Result<CreatedShow, Failure> {
        let layout = &body["layout"];
        let key = layout["rows"].to_string();
        let cached = self
            .screens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .copied();
        let screen_id = match cached {
            Some(id) => id,
            None => {
                let movie = json!({
                    "title": "marquee-bench", "description": "", "genres": ["drama"],
                    "language": "english", "duration_min": 120, "release_date": "2026-01-01",
                    "cast": [], "director": "", "certificate": "U", "poster_url": null,
                });
                self.admin(reqwest::Method::PUT, "/v1/admin/movies/1", &movie, StatusCode::OK)
                    .await?;
                let theater = json!({
                    "name": "marquee-bench", "city": "Benchpur", "address": "", "lat_e6": 0,
                    "lon_e6": 0, "amenities": [], "utc_offset_minutes": 0,
                });
                self.admin(reqwest::Method::PUT, "/v1/admin/theaters/1", &theater, StatusCode::OK)
                    .await?;
                let screen = json!({"name": "bench", "format": "2D", "rows": layout["rows"]});
                let created = self
                    .admin(
                        reqwest::Method::POST,
                        "/v1/admin/theaters/1/screens",
                        &screen,
                        StatusCode::CREATED,
                    )
                    .await?;
                let id = created["screen_id"].as_u64().ok_or(Failure::Transport("body"))?;
                self.screens
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(key, id);
                id
            }
        };
        let prices: serde_json::Map<String, Value> = layout["categories"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| Some((c["name"].as_str()?.to_owned(), c["price_minor"].clone())))
            .collect();
        let show = json!({
            "movie_id": 1,
            "screen_id": screen_id,
            "starts_at_ms": body["starts_at_ms"],
            "prices": prices,
            "currency": layout["currency"],
        });
        let created = self
            .admin(reqwest::Method::POST, "/v1/admin/shows", &show, StatusCode::CREATED)
            .await?;
        serde_json::from_value(created).map_err(|_| Failure::Transport("body"))
    }

    /// `GET /v1/shows/{id}/seats`; `fast` reads any replica, otherwise a linearizable read.
    pub async fn seat_map(&self, show_id: u64, fast: bool) -> Timed<SeatMap> {
        let consistency = if fast { "fast" } else { "strong" };
        let url = self.url(&format!("/v1/shows/{show_id}/seats?consistency={consistency}"));
        exchange(self.http.get(url), StatusCode::OK).await
    }

    /// `POST /v1/shows/{id}/holds` as the account whose access token is `user`.
    pub async fn hold(
        &self,
        user: &str,
        show_id: u64,
        what: &HoldRequest,
        ttl_ms: Option<u64>,
    ) -> Timed<HoldAck> {
        let mut body = match what {
            HoldRequest::Seats(seats) => json!({ "seats": seats }),
            HoldRequest::Best { quantity, category } => {
                json!({ "quantity": quantity, "category": category })
            }
        };
        if let (Some(ttl), Some(map)) = (ttl_ms, body.as_object_mut()) {
            map.insert("ttl_ms".into(), json!(ttl));
        }
        let request = self
            .http
            .post(self.url(&format!("/v1/shows/{show_id}/holds")))
            .bearer_auth(user)
            .json(&body);
        exchange(request, StatusCode::CREATED).await
    }

    /// `DELETE /v1/holds/{id}`.
    pub async fn release(&self, user: &str, hold_id: &str) -> Timed<Value> {
        let request = self.http.delete(self.url(&format!("/v1/holds/{hold_id}"))).bearer_auth(user);
        exchange(request, StatusCode::OK).await
    }

    /// `POST /v1/bookings`.
    pub async fn book(
        &self,
        user: &str,
        idempotency_key: &str,
        hold_id: &str,
        payment_token: &str,
    ) -> Timed<Booking> {
        let request = self
            .http
            .post(self.url("/v1/bookings"))
            .bearer_auth(user)
            .header("Idempotency-Key", idempotency_key)
            .json(&json!({ "hold_id": hold_id, "payment_token": payment_token }));
        exchange(request, StatusCode::CREATED).await
    }

    /// `GET /v1/admin/shows/{id}/bookings`.
    pub async fn show_bookings(&self, show_id: u64) -> Timed<Bookings> {
        let request = self
            .http
            .get(self.url(&format!("/v1/admin/shows/{show_id}/bookings")))
            .bearer_auth(&self.admin_token);
        exchange(request, StatusCode::OK).await
    }
}

fn micros_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

fn transport(e: &reqwest::Error) -> Failure {
    Failure::Transport(if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_decode() || e.is_body() {
        "body"
    } else if e.is_request() {
        "request"
    } else {
        "transport"
    })
}

/// Sends `request` and reads the whole body; `Ok(bytes)` only when the status is `expect`.
async fn send(request: RequestBuilder, expect: StatusCode) -> Result<Vec<u8>, Failure> {
    let response = request.send().await.map_err(|e| transport(&e))?;
    let status = response.status();
    let retry_after_s = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let bytes = response.bytes().await.map_err(|e| transport(&e))?;
    if status == expect {
        return Ok(bytes.to_vec());
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .and_then(|t| t.rsplit('/').next())
        .filter(|slug| !slug.is_empty())
        .unwrap_or("-")
        .to_owned();
    Err(Failure::Status { status: status.as_u16(), kind, body, retry_after_s })
}

async fn exchange<T: DeserializeOwned>(request: RequestBuilder, expect: StatusCode) -> Timed<T> {
    let started = Instant::now();
    let result = send(request, expect)
        .await
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|_| Failure::Transport("body")));
    Timed { result, micros: micros_since(started) }
}

/// Like [`exchange`] for endpoints that answer plain text.
async fn exchange_text(request: RequestBuilder, expect: StatusCode) -> Timed<Value> {
    let started = Instant::now();
    let result = send(request, expect)
        .await
        .map(|bytes| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Timed { result, micros: micros_since(started) }
}
