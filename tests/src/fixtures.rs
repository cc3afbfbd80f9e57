//! What tests start from: the admin and customer accounts, the test movie and theater, and
//! shows with a given seat layout created through the catalog API, so each test states only
//! the data its behaviour depends on.

use std::sync::Mutex;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::client::User;
use crate::cluster::Cluster;
use crate::wait::join_all;

/// Password of the customer accounts [`Cluster::user`] registers.
pub const USER_PASSWORD: &str = "customer-password";

/// The movie test shows play.
pub fn test_movie() -> Value {
    json!({
        "title": "Test Movie", "description": "", "genres": ["drama"], "language": "english",
        "duration_min": 120, "release_date": "2026-01-01", "cast": [], "director": "",
        "certificate": "U", "poster_url": null,
    })
}

/// The theater test shows play in.
pub fn test_theater() -> Value {
    json!({
        "name": "Test Theater", "city": "Testville", "address": "", "lat_e6": 0, "lon_e6": 0,
        "amenities": [], "utc_offset_minutes": 0,
    })
}

/// Row label for row index `r`: A..Z, then AA, AB, ...
pub fn row_label(r: usize) -> String {
    if r < 26 {
        ((b'A' + r as u8) as char).to_string()
    } else {
        format!("{}{}", row_label(r / 26 - 1), row_label(r % 26))
    }
}

/// 64 random bits (unique test emails).
pub fn rand_u64() -> u64 {
    rand::random()
}

impl Cluster {
    /// Creates an account with `marqueectl create-user` (how operators make the first admin
    /// and theater managers); returns its user id.
    ///
    /// # Errors
    /// marqueectl failed.
    pub async fn create_account(
        &self,
        email: &str,
        password: &str,
        role: &str,
        theaters: &[u64],
    ) -> Result<u64> {
        let nodes: Vec<String> =
            self.nodes.iter().filter(|n| n.is_running()).map(|n| n.grpc.clone()).collect();
        let mut command = tokio::process::Command::new(self.bins.join("marqueectl"));
        command
            .env("MARQUEE_PASSWORD", password)
            .arg(format!("--nodes={}", nodes.join(",")))
            .args(["create-user", "--email", email, "--name", email, "--role", role]);
        if !theaters.is_empty() {
            let list: Vec<String> = theaters.iter().map(u64::to_string).collect();
            command.arg(format!("--theaters={}", list.join(",")));
        }
        let output = command.output().await.context("running marqueectl create-user")?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        anyhow::ensure!(output.status.success(), "marqueectl create-user failed: {stderr}");
        String::from_utf8_lossy(&output.stdout).trim().parse().context("user id on stdout")
    }

    /// Registers a new customer account named `name` (a unique email is derived from it)
    /// through `POST /v1/auth/register` and returns its session.
    ///
    /// # Errors
    /// Registration failed.
    pub async fn user(&self, name: &str) -> Result<User<'_>> {
        let email = format!("{name}-{:016x}@marquee.test", rand_u64());
        let response = self
            .http
            .post(format!("{}/v1/auth/register", self.url))
            .json(&json!({"email": email, "password": USER_PASSWORD, "name": name}))
            .send()
            .await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status == 201, "register {name}: {status} {body}");
        Ok(User {
            cluster: self,
            name: name.to_owned(),
            email,
            user_id: body["user"]["user_id"].as_u64().context("user_id")?,
            token: body["access_token"].as_str().context("access_token")?.to_owned(),
        })
    }

    /// Registers `n` customer accounts named `{prefix}{i}`, a few at a time.
    ///
    /// # Errors
    /// A registration failed.
    pub async fn users(&self, prefix: &str, n: usize) -> Result<Vec<User<'_>>> {
        let slots: Vec<Mutex<Option<Result<User<'_>>>>> =
            (0..n).map(|_| Mutex::new(None)).collect();
        for chunk in slots.chunks(4).enumerate() {
            let (c, chunk) = chunk;
            join_all(chunk.iter().enumerate().map(|(j, slot)| async move {
                let user = self.user(&format!("{prefix}{}", c * 4 + j)).await;
                *slot.lock().expect("unpoisoned") = Some(user);
            }))
            .await;
        }
        slots
            .into_iter()
            .map(|slot| slot.into_inner().expect("unpoisoned").context("registered")?)
            .collect()
    }

    /// Creates a show with `rows` rows of `seats` standard seats, far in the future; returns
    /// its id.
    ///
    /// # Errors
    /// The request failed.
    pub async fn create_show(&self, rows: usize, seats: u32) -> Result<u64> {
        self.create_show_at(rows, seats, 4_102_444_800_000).await
    }

    /// Creates a show starting at `starts_at_ms` through the catalog (see [`create_show_via`]).
    /// Returns the show id.
    ///
    /// # Errors
    /// A request failed.
    pub async fn create_show_at(&self, rows: usize, seats: u32, starts_at_ms: u64) -> Result<u64> {
        let created =
            create_show_via(&self.http, &self.url, &self.admin_token, rows, seats, starts_at_ms)
                .await?;
        created["show_id"].as_u64().context("show_id in reply")
    }
}

/// Creates a show through the catalog API of the gateway at `url`, signed in with an admin's
/// `token`: the test movie and theater (idempotent, fixed ids), a new screen with `rows` rows
/// of `seats` standard seats, then the show, starting at `starts_at_ms`. Returns the created
/// show (`show_id`, `group`: the shard holding its seats, ...). For clusters the harness did
/// not start (e.g. `scripts/marquee-dev`'s).
///
/// # Errors
/// A request failed or answered an unexpected status.
pub async fn create_show_via(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    rows: usize,
    seats: u32,
    starts_at_ms: u64,
) -> Result<Value> {
    let admin = |method: reqwest::Method, path: &'static str, body: Value, expect: u16| async move {
        let response = http
            .request(method, format!("{url}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        anyhow::ensure!(status == expect, "{path}: {status} {text}");
        Ok::<Value, anyhow::Error>(serde_json::from_str(&text).unwrap_or(Value::Null))
    };
    let (put, post) = (reqwest::Method::PUT, reqwest::Method::POST);
    admin(put.clone(), "/v1/admin/movies/1", test_movie(), 200).await?;
    admin(put, "/v1/admin/theaters/1", test_theater(), 200).await?;
    let rows: Vec<Value> = (0..rows)
        .map(|r| json!({"label": row_label(r), "category": "standard", "seats": seats, "aisles_after": []}))
        .collect();
    let screen = json!({"name": "Screen", "format": "2D", "rows": rows});
    let screen = admin(post.clone(), "/v1/admin/theaters/1/screens", screen, 201).await?;
    let show = json!({
        "movie_id": 1,
        "screen_id": screen["screen_id"],
        "starts_at_ms": starts_at_ms,
        "prices": {"standard": 25_000},
        "currency": "INR",
    });
    admin(post, "/v1/admin/shows", show, 201).await
}
