//! Redis as a peer: one Lua script per operation (atomic: Redis runs one script at a time),
//! every write appended to the AOF and fsynced before the reply (the harness refuses a server
//! without `appendonly yes` and `appendfsync always`).
//!
//! A show is a few hashes and lists under `mpb:s<id>` (the layout is in `lua/common.lua`):
//! one string of seat states per row, so the best-available search is a plain substring search
//! (`n` available seats in a row) per row, and a hold rewrites one value. Expired holds are
//! kept in a sorted set by expiry and freed by the next hold on the show before it searches. Scripts check every condition before their first write, because Redis
//! does not roll a failed script back. Connections are multiplexed (`--connections` of them,
//! used in turn): many requests in flight on each, as clients of a single-threaded server use
//! it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context;
use redis::aio::MultiplexedConnection;
use redis::{RedisError, Script, ScriptInvocation};
use serde_json::{json, Value};

use super::{database, layout_rows, not_enough_seats, now_ms, seats_unavailable, status, Peer};
use crate::api::{
    Booking, Bookings, CreatedShow, Failure, HoldAck, HoldRequest, Row, Seat, SeatMap, SeatStatus,
};

const COMMON: &str = include_str!("lua/common.lua");

struct Scripts {
    hold_best: Script,
    hold_seats: Script,
    confirm: Script,
    release: Script,
    seat_map: Script,
    bookings: Script,
}

impl Scripts {
    fn new() -> Scripts {
        let script = |body: &str| Script::new(&format!("{COMMON}\n{body}"));
        Scripts {
            hold_best: script(include_str!("lua/hold_best.lua")),
            hold_seats: script(include_str!("lua/hold_seats.lua")),
            confirm: script(include_str!("lua/confirm.lua")),
            release: script(include_str!("lua/release.lua")),
            seat_map: script(include_str!("lua/seat_map.lua")),
            bookings: script(include_str!("lua/bookings.lua")),
        }
    }
}

/// A Redis server reached over multiplexed connections.
#[derive(Clone)]
pub struct Redis {
    connections: Arc<[MultiplexedConnection]>,
    next: Arc<AtomicUsize>,
    scripts: Arc<Scripts>,
    described: Arc<str>,
    pid: Option<u32>,
}

fn redis_error(e: &RedisError) -> Failure {
    if e.is_io_error() || e.is_connection_dropped() {
        return Failure::Transport("connect");
    }
    let code = e.code().unwrap_or("error").to_ascii_lowercase();
    database(format!("redis-{code}"), &e.to_string())
}

/// The show's key prefix.
fn show_key(show_id: u64) -> String {
    format!("mpb:s{show_id}")
}

fn show_missing() -> Failure {
    status(404, "show-not-found", Value::Null)
}

impl Redis {
    /// Connects `connections` times and checks that every write is fsynced before its reply.
    ///
    /// # Errors
    /// The server is unreachable or not configured for durable writes.
    pub async fn connect(url: &str, connections: usize) -> anyhow::Result<Redis> {
        let client = redis::Client::open(url).with_context(|| format!("redis URL {url}"))?;
        let mut opened = Vec::with_capacity(connections.max(1));
        for _ in 0..connections.max(1) {
            opened.push(
                client
                    .get_multiplexed_async_connection()
                    .await
                    .with_context(|| format!("connecting to {url}"))?,
            );
        }
        let con = &mut opened[0];
        let info: String = redis::cmd("INFO").arg("server").query_async(con).await?;
        let field = |name: &str| {
            info.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned())
        };
        let version = field("redis_version:").unwrap_or_else(|| "?".into());
        let pid = field("process_id:").and_then(|p| p.parse().ok());
        let mut settings = Vec::new();
        for (name, wanted) in
            [("appendonly", Some("yes")), ("appendfsync", Some("always")), ("save", None)]
        {
            let pair: Vec<String> =
                redis::cmd("CONFIG").arg("GET").arg(name).query_async(con).await?;
            let value = pair.get(1).cloned().unwrap_or_default();
            if let Some(wanted) = wanted {
                anyhow::ensure!(
                    value == wanted,
                    "Redis at {url} has {name} {value:?}: the side-by-side needs {wanted}"
                );
            }
            settings.push(format!("{name} {value:?}"));
        }
        let described = format!(
            "redis {version} ({}, {} multiplexed connections)",
            settings.join(", "),
            opened.len()
        );
        Ok(Redis {
            connections: opened.into(),
            next: Arc::new(AtomicUsize::new(0)),
            scripts: Arc::new(Scripts::new()),
            described: described.into(),
            pid,
        })
    }

    /// The server's process id (`INFO server`), for `--cpu-pids` when it runs on this machine.
    pub fn server_pids(&self) -> Vec<u32> {
        self.pid.into_iter().collect()
    }

    fn con(&self) -> MultiplexedConnection {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[i].clone()
    }

    async fn create(&self, body: &Value) -> Result<CreatedShow, Failure> {
        let rows = layout_rows(body)?;
        let mut con = self.con();
        let show_id: u64 = redis::cmd("INCR")
            .arg("mpb:seq:show")
            .query_async(&mut con)
            .await
            .map_err(|e| redis_error(&e))?;
        let p = show_key(show_id);
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.set(format!("{p}:rows"), rows.len()).ignore();
        let mut capacity = 0;
        for (r, row) in rows.iter().enumerate() {
            let aisle: String = (1..=row.seats)
                .map(|n| if row.aisles_after.contains(&n) { '1' } else { '0' })
                .collect();
            let states = ".".repeat(row.seats as usize);
            pipe.hset_multiple(
                format!("{p}:row:{r}"),
                &[("label", row.label.as_str()), ("st", &states), ("aisle", &aisle)],
            )
            .ignore();
            pipe.hset(format!("{p}:label"), &row.label, r).ignore();
            pipe.rpush(format!("{p}:cat:{}", row.category), r).ignore();
            capacity += row.seats;
        }
        pipe.query_async::<()>(&mut con).await.map_err(|e| redis_error(&e))?;
        Ok(CreatedShow { show_id, capacity })
    }

    /// Runs a script invocation on the next connection; its reply as strings.
    async fn invoke(&self, call: &ScriptInvocation<'_>) -> Result<Vec<String>, Failure> {
        call.invoke_async(&mut self.con()).await.map_err(|e| redis_error(&e))
    }
}

/// A seat map from the `seat_map.lua` reply: `label, states, aisles` per row.
fn seat_map_from(reply: &[String]) -> SeatMap {
    let mut available = 0;
    let rows = reply
        .chunks_exact(3)
        .map(|row| {
            let (label, states, aisles) = (&row[0], row[1].as_bytes(), row[2].as_bytes());
            let seats = states
                .iter()
                .enumerate()
                .map(|(i, state)| {
                    let status = match state {
                        b'.' => SeatStatus::Available,
                        b'h' => SeatStatus::Held,
                        _ => SeatStatus::Sold,
                    };
                    available += u32::from(*state == b'.');
                    Seat {
                        seat_id: format!("{label}{}", i + 1),
                        status,
                        aisle_after: aisles.get(i) == Some(&b'1'),
                    }
                })
                .collect();
            Row { seats }
        })
        .collect();
    SeatMap { available, rows }
}

impl Peer for Redis {
    fn describe(&self) -> String {
        self.described.to_string()
    }

    async fn create_show(&self, body: &Value) -> Result<CreatedShow, Failure> {
        self.create(body).await
    }

    async fn hold(
        &self,
        user: &str,
        show_id: u64,
        what: &HoldRequest,
        ttl_ms: u64,
    ) -> Result<HoldAck, Failure> {
        let now = now_ms();
        let mut reply = match what {
            HoldRequest::Best { quantity, category } => {
                let mut call = self.scripts.hold_best.key(show_key(show_id));
                call.arg(category).arg(quantity).arg(now).arg(ttl_ms).arg(user);
                self.invoke(&call).await?
            }
            HoldRequest::Seats(seats) => {
                let mut call = self.scripts.hold_seats.key(show_key(show_id));
                call.arg(now).arg(ttl_ms).arg(user).arg(seats);
                self.invoke(&call).await?
            }
        };
        match reply.first().map(String::as_str) {
            Some("missing") | None => Err(show_missing()),
            Some("none") => {
                Err(not_enough_seats(reply.get(1).and_then(|n| n.parse().ok()).unwrap_or(0)))
            }
            Some("taken") => Err(seats_unavailable(&reply[1..])),
            Some(_) => {
                let seats = reply.split_off(1);
                Ok(HoldAck { hold_id: reply.swap_remove(0), seats })
            }
        }
    }

    async fn release(&self, user: &str, hold_id: i64) -> Result<Value, Failure> {
        let reply = self.invoke(self.scripts.release.arg(hold_id).arg(user)).await?;
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(json!({ "hold_id": hold_id.to_string(), "status": "released" })),
            _ => Err(status(404, "hold-not-found", Value::Null)),
        }
    }

    async fn confirm(&self, user: &str, hold_id: i64) -> Result<Booking, Failure> {
        let reply = self.invoke(self.scripts.confirm.arg(hold_id).arg(user).arg(now_ms())).await?;
        match reply.as_slice() {
            [booking_id, seats] => Ok(Booking {
                booking_id: booking_id.clone(),
                status: "confirmed".into(),
                seats: seats.split(',').map(str::to_owned).collect(),
            }),
            [kind] if kind == "expired" => Err(status(409, "hold-expired", Value::Null)),
            [kind] if kind == "inactive" => Err(status(409, "hold-not-active", Value::Null)),
            _ => Err(status(404, "hold-not-found", Value::Null)),
        }
    }

    async fn seat_map(&self, show_id: u64) -> Result<SeatMap, Failure> {
        let reply = self.invoke(self.scripts.seat_map.key(show_key(show_id)).arg(now_ms())).await?;
        if reply.first().map(String::as_str) == Some("missing") {
            return Err(show_missing());
        }
        Ok(seat_map_from(&reply))
    }

    async fn bookings(&self, show_id: u64) -> Result<Bookings, Failure> {
        let reply = self.invoke(&self.scripts.bookings.key(show_key(show_id))).await?;
        let bookings = reply
            .chunks_exact(3)
            .map(|b| Booking {
                booking_id: b[0].clone(),
                seats: b[1].split(',').map(str::to_owned).collect(),
                status: b[2].clone(),
            })
            .collect();
        Ok(Bookings { bookings })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seat_maps_decode_states_and_aisles() {
        let reply: Vec<String> =
            ["A", ".hs.", "0100", "B", "..", "00"].iter().map(|s| (*s).to_owned()).collect();
        let map = seat_map_from(&reply);
        assert_eq!(map.available, 4);
        let a: Vec<(&str, SeatStatus, bool)> = map.rows[0]
            .seats
            .iter()
            .map(|s| (s.seat_id.as_str(), s.status, s.aisle_after))
            .collect();
        assert_eq!(
            a,
            vec![
                ("A1", SeatStatus::Available, false),
                ("A2", SeatStatus::Held, true),
                ("A3", SeatStatus::Sold, false),
                ("A4", SeatStatus::Available, false)
            ]
        );
        assert_eq!(map.rows[1].seats[1].seat_id, "B2");
    }
}
