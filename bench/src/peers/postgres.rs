//! PostgreSQL as a peer: one row per seat, one transaction per operation, every commit
//! durable (the harness refuses a server with `fsync` or `synchronous_commit` off).
//!
//! - **Hold (best available)**, **confirm** and **release** are PL/pgSQL functions
//!   (`postgres.sql`): one round trip, one transaction. A hold takes its section (category)
//!   row `FOR UPDATE`, which serialises holds of one section the way a Raft group serialises a
//!   show, finds the first row with `n` adjacent available seats in one aisle-free block
//!   (expired holds count as available) and claims them with an `UPDATE ... WHERE` that
//!   re-checks each seat's state. Confirm and release change only the hold's own seats, each
//!   `UPDATE` conditional on the seat's state and the rows changed counted (else the function
//!   raises and the transaction is undone): a seat is never sold twice.
//! - **Hold (explicit seats)** (adjacent mode) is a client-side transaction doing the same.
//! - Connections come from a small pool (`--connections`); the time to get one is part of
//!   each operation's latency, as a pooled HTTP client's is in `marquee-bench`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use serde_json::{json, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{Client, NoTls, Row as PgRow, Statement};

use super::{
    category_capacities, database, layout_rows, not_enough_seats, now_ms, seats_unavailable,
    status, Peer,
};
use crate::api::{
    Booking, Bookings, CreatedShow, Failure, HoldAck, HoldRequest, Row, Seat, SeatMap, SeatStatus,
};

/// The harness's own schema: dropped and made afresh at every start.
const SCHEMA_NAME: &str = "marquee_peer_bench";
/// Its tables and functions (run with `search_path` set to [`SCHEMA_NAME`]).
const SCHEMA: &str = include_str!("postgres.sql");

/// The statements of the hot path, prepared once per connection.
const HOLD_BEST: &str = "SELECT o_hold, o_seats, o_available
FROM hold_best($1::bigint, $2::text, $3::int, $4::bigint, $5::bigint, $6::text)";
const CONFIRM: &str =
    "SELECT o_booking, o_seats FROM confirm_hold($1::bigint, $2::text, $3::bigint)";
const RELEASE: &str = "SELECT release_hold($1::bigint, $2::text)";
const NEXT_HOLD: &str = "SELECT nextval('hold_ids')";
/// $1 show, $2 seats, $3 now, $4 hold id, $5 expiry.
const HOLD_SEATS: &str = "
UPDATE seats SET status = 'h', hold_id = $4::bigint, expires_at_ms = $5::bigint
WHERE show_id = $1::bigint AND seat_id = ANY($2::text[])
  AND (status = 'a' OR (status = 'h' AND expires_at_ms <= $3::bigint))
RETURNING seat_no, seat_id";
const INSERT_HOLD: &str = "INSERT INTO holds (hold_id, show_id, user_id, seats, expires_at_ms)
VALUES ($1::bigint, $2::bigint, $3::text, $4::text[], $5::bigint)";
const SEAT_MAP: &str = "SELECT row_no, block, seat_id, status, expires_at_ms FROM seats
WHERE show_id = $1::bigint ORDER BY row_no, seat_no";
const BOOKINGS: &str =
    "SELECT booking_id, status, seats FROM bookings WHERE show_id = $1::bigint ORDER BY booking_id";

/// Settings that make a commit durable; the harness refuses to measure without them.
const DURABILITY: [(&str, &str); 2] = [("fsync", "on"), ("synchronous_commit", "on")];
/// Settings printed with the results.
const SHOWN: [&str; 6] = [
    "fsync",
    "synchronous_commit",
    "wal_sync_method",
    "full_page_writes",
    "shared_buffers",
    "max_connections",
];

struct Statements {
    hold_best: Statement,
    confirm: Statement,
    release: Statement,
    next_hold: Statement,
    hold_seats: Statement,
    insert_hold: Statement,
    seat_map: Statement,
    bookings: Statement,
}

struct Conn {
    client: Client,
    st: Statements,
}

async fn open(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("marquee-peer-bench: postgres connection ended: {e}");
        }
    });
    Ok(client)
}

impl Conn {
    async fn open(url: &str) -> anyhow::Result<Conn> {
        let client = open(url).await?;
        client.batch_execute(&format!("SET search_path TO {SCHEMA_NAME}")).await?;
        let p = |sql: &'static str| {
            let client = &client;
            async move { client.prepare(sql).await.with_context(|| format!("preparing {sql}")) }
        };
        let st = Statements {
            hold_best: p(HOLD_BEST).await?,
            confirm: p(CONFIRM).await?,
            release: p(RELEASE).await?,
            next_hold: p(NEXT_HOLD).await?,
            hold_seats: p(HOLD_SEATS).await?,
            insert_hold: p(INSERT_HOLD).await?,
            seat_map: p(SEAT_MAP).await?,
            bookings: p(BOOKINGS).await?,
        };
        Ok(Conn { client, st })
    }
}

struct Pool {
    idle: Mutex<Vec<Conn>>,
    permits: Arc<Semaphore>,
}

/// A connection taken from the pool; goes back when dropped.
struct Lease {
    conn: Option<Conn>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("a lease holds its connection until it is dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.idle.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
        }
    }
}

/// A PostgreSQL server reached over a pool of connections.
#[derive(Clone)]
pub struct Postgres {
    pool: Arc<Pool>,
    described: Arc<str>,
}

fn pg(e: tokio_postgres::Error) -> Failure {
    if e.is_closed() {
        return Failure::Transport("connect");
    }
    let code = e.code().map_or("error", |c| c.code());
    let detail = e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned());
    database(format!("postgres-{code}"), &detail)
}

fn col<'a, T: FromSql<'a>>(row: &'a PgRow, index: usize) -> Result<T, Failure> {
    row.try_get(index).map_err(pg)
}

impl Postgres {
    /// Connects, checks that commits are durable, makes the schema afresh (dropping the
    /// harness's tables from an earlier run) and opens `connections` pooled connections.
    ///
    /// # Errors
    /// The server is unreachable, not durable, or refuses the schema.
    pub async fn connect(url: &str, connections: usize) -> anyhow::Result<Postgres> {
        let admin = open(url).await?;
        let version: String = admin.query_one("SHOW server_version", &[]).await?.try_get(0)?;
        let mut settings = Vec::new();
        for name in SHOWN {
            let value: String = admin.query_one(&format!("SHOW {name}"), &[]).await?.try_get(0)?;
            if let Some((_, wanted)) = DURABILITY.iter().find(|(n, _)| *n == name) {
                anyhow::ensure!(
                    value == *wanted,
                    "PostgreSQL at {url} has {name}={value}: the side-by-side needs {wanted}"
                );
            }
            settings.push(format!("{name}={value}"));
        }
        admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {SCHEMA_NAME} CASCADE; CREATE SCHEMA {SCHEMA_NAME}; \
                 SET search_path TO {SCHEMA_NAME}; {SCHEMA}"
            ))
            .await
            .context("making the schema")?;
        let mut idle = Vec::with_capacity(connections);
        for _ in 0..connections.max(1) {
            idle.push(Conn::open(url).await?);
        }
        let permits = Arc::new(Semaphore::new(idle.len()));
        let described = format!(
            "postgres {version} ({}, {} pooled connections)",
            settings.join(", "),
            idle.len()
        );
        Ok(Postgres {
            pool: Arc::new(Pool { idle: Mutex::new(idle), permits }),
            described: described.into(),
        })
    }

    /// Process ids of the server's backends and background processes (`pg_stat_activity`),
    /// for `--cpu-pids` when the server runs on this machine.
    ///
    /// # Errors
    /// The query failed.
    pub async fn server_pids(&self) -> anyhow::Result<Vec<u32>> {
        let mut lease = self.lease().await.map_err(|f| anyhow::anyhow!("{f}"))?;
        let rows = lease.conn().client.query("SELECT pid FROM pg_stat_activity", &[]).await?;
        rows.iter().map(|r| Ok(u32::try_from(r.try_get::<_, i32>(0)?)?)).collect()
    }

    async fn lease(&self) -> Result<Lease, Failure> {
        let permit = Arc::clone(&self.pool.permits)
            .acquire_owned()
            .await
            .map_err(|_| Failure::Transport("pool"))?;
        let conn = self.pool.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        // One permit per pooled connection: a permit always finds one idle.
        let conn = conn.ok_or(Failure::Transport("pool"))?;
        Ok(Lease { conn: Some(conn), pool: Arc::clone(&self.pool), _permit: permit })
    }
}

/// Seats returned by a claiming `UPDATE`, in seat-number order.
fn claimed(rows: &[PgRow]) -> Result<Vec<String>, Failure> {
    let mut seats: Vec<(i32, String)> =
        rows.iter().map(|r| Ok((col(r, 0)?, col(r, 1)?))).collect::<Result<_, Failure>>()?;
    seats.sort();
    Ok(seats.into_iter().map(|(_, id)| id).collect())
}

async fn create_show(conn: &mut Conn, body: &Value) -> Result<CreatedShow, Failure> {
    let rows = layout_rows(body)?;
    let (mut ids, mut categories, mut row_nos, mut seat_nos, mut blocks) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (r, row) in rows.iter().enumerate() {
        for number in 1..=row.seats {
            ids.push(row.seat_id(number));
            categories.push(row.category.clone());
            row_nos.push(r as i32);
            seat_nos.push(number as i32);
            blocks.push(row.block_of(number) as i32);
        }
    }
    let capacity = ids.len() as i32;
    let title = body["title"].as_str().unwrap_or("show");
    let tx = conn.client.transaction().await.map_err(pg)?;
    let show = tx
        .query_one(
            "INSERT INTO shows (title, capacity) VALUES ($1, $2) RETURNING show_id",
            &[&title, &capacity],
        )
        .await
        .map_err(pg)?;
    let show_id: i64 = col(&show, 0)?;
    for (category, seats) in category_capacities(&rows) {
        let in_category: Vec<i32> =
            (0..rows.len() as i32).filter(|r| rows[*r as usize].category == category).collect();
        tx.execute(
            "INSERT INTO sections (show_id, category, capacity, rows) VALUES ($1, $2, $3, $4)",
            &[&show_id, &category, &(seats as i32), &in_category],
        )
        .await
        .map_err(pg)?;
    }
    tx.execute(
        "INSERT INTO seats (show_id, seat_id, category, row_no, seat_no, block)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::int[], $5::int[], $6::int[])",
        &[&show_id, &ids, &categories, &row_nos, &seat_nos, &blocks],
    )
    .await
    .map_err(pg)?;
    tx.commit().await.map_err(pg)?;
    Ok(CreatedShow { show_id: show_id as u64, capacity: capacity as u32 })
}

/// The code of an error the schema's functions raise on purpose, if `e` is one.
fn raised(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code()).filter(|c| c.starts_with("MB"))
}

async fn hold(
    conn: &mut Conn,
    user: &str,
    show_id: i64,
    what: &HoldRequest,
    ttl_ms: i64,
) -> Result<HoldAck, Failure> {
    let now = now_ms();
    let expires = now + ttl_ms;
    match what {
        HoldRequest::Best { quantity, category } => {
            let party = *quantity as i32;
            let params: [&(dyn ToSql + Sync); 6] =
                [&show_id, category, &party, &now, &expires, &user];
            let row = match conn.client.query_opt(&conn.st.hold_best, &params).await {
                Ok(Some(row)) => row,
                Ok(None) => return Err(status(404, "show-not-found", Value::Null)),
                Err(e) if raised(&e).is_some() => return Err(seats_unavailable(&[])),
                Err(e) => return Err(pg(e)),
            };
            match (col::<Option<i64>>(&row, 0)?, col::<Option<Vec<String>>>(&row, 1)?) {
                (Some(hold_id), Some(seats)) => Ok(HoldAck { hold_id: hold_id.to_string(), seats }),
                _ => Err(not_enough_seats(col::<Option<i64>>(&row, 2)?.unwrap_or(0) as u64)),
            }
        }
        HoldRequest::Seats(wanted) => hold_seats(conn, user, show_id, wanted, now, expires).await,
    }
}

/// A hold of explicit seats (adjacent mode): a client-side transaction, all seats or none.
async fn hold_seats(
    conn: &mut Conn,
    user: &str,
    show_id: i64,
    wanted: &[String],
    now: i64,
    expires: i64,
) -> Result<HoldAck, Failure> {
    let Conn { client, st } = conn;
    let tx = client.transaction().await.map_err(pg)?;
    let hold_id: i64 = col(&tx.query_one(&st.next_hold, &[]).await.map_err(pg)?, 0)?;
    let rows = tx
        .query(&st.hold_seats, &[&show_id, &wanted, &now, &hold_id, &expires])
        .await
        .map_err(pg)?;
    let got = claimed(&rows)?;
    let unique: BTreeSet<&String> = wanted.iter().collect();
    if got.len() != unique.len() {
        tx.rollback().await.map_err(pg)?;
        let taken: Vec<String> = unique.into_iter().filter(|s| !got.contains(s)).cloned().collect();
        return Err(seats_unavailable(&taken));
    }
    tx.execute(&st.insert_hold, &[&hold_id, &show_id, &user, &got, &expires]).await.map_err(pg)?;
    tx.commit().await.map_err(pg)?;
    Ok(HoldAck { hold_id: hold_id.to_string(), seats: got })
}

async fn release(conn: &mut Conn, user: &str, hold_id: i64) -> Result<Value, Failure> {
    let row = conn.client.query_one(&conn.st.release, &[&hold_id, &user]).await.map_err(pg)?;
    if col::<Option<bool>>(&row, 0)? != Some(true) {
        return Err(status(404, "hold-not-found", Value::Null));
    }
    Ok(json!({ "hold_id": hold_id.to_string(), "status": "released" }))
}

async fn confirm(conn: &mut Conn, user: &str, hold_id: i64) -> Result<Booking, Failure> {
    let params: [&(dyn ToSql + Sync); 3] = [&hold_id, &user, &now_ms()];
    let row = match conn.client.query_opt(&conn.st.confirm, &params).await {
        Ok(Some(row)) => row,
        Ok(None) => return Err(status(409, "hold-not-active", Value::Null)),
        // The hold expired and another hold took some of its seats.
        Err(e) if raised(&e).is_some() => return Err(status(409, "hold-expired", Value::Null)),
        Err(e) => return Err(pg(e)),
    };
    let booking_id: i64 = col(&row, 0)?;
    Ok(Booking {
        booking_id: booking_id.to_string(),
        status: "confirmed".into(),
        seats: col(&row, 1)?,
    })
}

async fn seat_map(conn: &mut Conn, show_id: i64) -> Result<SeatMap, Failure> {
    let rows = conn.client.query(&conn.st.seat_map, &[&show_id]).await.map_err(pg)?;
    let now = now_ms();
    let mut by_row: BTreeMap<i32, Vec<(i32, Seat)>> = BTreeMap::new();
    let mut available = 0;
    for row in &rows {
        let (row_no, block, seat_id): (i32, i32, String) =
            (col(row, 0)?, col(row, 1)?, col(row, 2)?);
        let state: i8 = col(row, 3)?;
        let expires: Option<i64> = col(row, 4)?;
        let status = match state as u8 {
            b's' => SeatStatus::Sold,
            b'h' if expires.is_some_and(|e| e > now) => SeatStatus::Held,
            _ => SeatStatus::Available,
        };
        available += u32::from(status == SeatStatus::Available);
        by_row
            .entry(row_no)
            .or_default()
            .push((block, Seat { seat_id, status, aisle_after: false }));
    }
    let rows = by_row
        .into_values()
        .map(|mut seats| {
            for i in 1..seats.len() {
                if seats[i].0 != seats[i - 1].0 {
                    seats[i - 1].1.aisle_after = true;
                }
            }
            Row { seats: seats.into_iter().map(|(_, seat)| seat).collect() }
        })
        .collect();
    Ok(SeatMap { available, rows })
}

async fn bookings(conn: &mut Conn, show_id: i64) -> Result<Bookings, Failure> {
    let rows = conn.client.query(&conn.st.bookings, &[&show_id]).await.map_err(pg)?;
    let bookings = rows
        .iter()
        .map(|r| {
            let id: i64 = col(r, 0)?;
            Ok(Booking { booking_id: id.to_string(), status: col(r, 1)?, seats: col(r, 2)? })
        })
        .collect::<Result<_, Failure>>()?;
    Ok(Bookings { bookings })
}

fn show_id(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

impl Peer for Postgres {
    fn describe(&self) -> String {
        self.described.to_string()
    }

    async fn create_show(&self, body: &Value) -> Result<CreatedShow, Failure> {
        create_show(self.lease().await?.conn(), body).await
    }

    async fn hold(
        &self,
        user: &str,
        show: u64,
        what: &HoldRequest,
        ttl_ms: u64,
    ) -> Result<HoldAck, Failure> {
        let ttl = i64::try_from(ttl_ms).unwrap_or(i64::MAX);
        hold(self.lease().await?.conn(), user, show_id(show), what, ttl).await
    }

    async fn release(&self, user: &str, hold_id: i64) -> Result<Value, Failure> {
        release(self.lease().await?.conn(), user, hold_id).await
    }

    async fn confirm(&self, user: &str, hold_id: i64) -> Result<Booking, Failure> {
        confirm(self.lease().await?.conn(), user, hold_id).await
    }

    async fn seat_map(&self, show: u64) -> Result<SeatMap, Failure> {
        seat_map(self.lease().await?.conn(), show_id(show)).await
    }

    async fn bookings(&self, show: u64) -> Result<Bookings, Failure> {
        bookings(self.lease().await?.conn(), show_id(show)).await
    }
}
