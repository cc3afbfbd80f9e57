//! The history of a chaos run: every client operation as an `invoke` followed by `ok`, `fail`
//! or `info` (outcome unknown), plus the nemesis's fault events, in the order they happened.
//!
//! Written as JSON lines so a run can be re-checked later (`marquee-chaos check`) and so tests
//! can doctor a history to prove the checker catches what it claims to.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// What happened to an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A client started the operation.
    Invoke,
    /// It succeeded (the system acknowledged it).
    Ok,
    /// It definitely did not take effect (a deterministic rejection).
    Fail,
    /// Unknown: timed out, connection lost, 5xx. It may or may not have taken effect.
    Info,
}

/// The operation kinds clients perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Hold explicit seats.
    Hold,
    /// Release a hold.
    Release,
    /// Pay for a hold (the whole saga).
    Book,
    /// Cancel a booking (refund, seats freed).
    Cancel,
    /// A fault injected or healed by the nemesis.
    Nemesis,
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Client process id (`-1` for the nemesis).
    pub process: i64,
    /// Invoke or completion.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Operation.
    pub op: OpKind,
    /// Nanoseconds since the run started (monotonic).
    pub time_ns: u64,
    /// The show (0 for the nemesis).
    #[serde(default)]
    pub show: u64,
    /// Seats named or granted.
    #[serde(default)]
    pub seats: Vec<String>,
    /// Hold id, when known.
    #[serde(default)]
    pub hold_id: Option<String>,
    /// Booking id, when known.
    #[serde(default)]
    pub booking_id: Option<String>,
    /// Hold expiry (Unix ms, server log time), for holds that succeeded.
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    /// Wall clock (Unix ms) at the event, to compare with `expires_at_ms`.
    #[serde(default)]
    pub wall_ms: u64,
    /// Free text: HTTP status and error type, or the fault.
    #[serde(default)]
    pub detail: String,
}

/// An append-only history shared by all clients of a run.
#[derive(Clone)]
pub struct Recorder {
    started: Instant,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder { started: Instant::now(), events: Arc::default() }
    }
}

impl Recorder {
    /// Appends `event`, stamping its time.
    pub fn record(&self, mut event: Event) {
        event.time_ns = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        event.wall_ms = wall_ms();
        self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(event);
    }

    /// Every event so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Unix milliseconds now.
pub fn wall_ms() -> u64 {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(now.as_millis()).unwrap_or(u64::MAX)
}

/// Writes a history as JSON lines.
///
/// # Errors
/// The file could not be written.
pub fn write(path: &Path, events: &[Event]) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for event in events {
        serde_json::to_writer(&mut out, event)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Reads a history written by [`write()`].
///
/// # Errors
/// The file is missing or a line is not an event.
pub fn read(path: &Path) -> anyhow::Result<Vec<Event>> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut events = Vec::new();
    for (n, line) in file.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        events.push(
            serde_json::from_str(&line)
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), n + 1))?,
        );
    }
    Ok(events)
}
