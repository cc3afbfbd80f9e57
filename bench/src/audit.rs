//! The end-of-run audit: the benchmark is only worth its numbers if nothing was oversold or
//! lost while producing them.
//!
//! For every show the run created it reads the seat map (linearizable) and the admin listing
//! of confirmed bookings, and checks that (1) the seats marked `sold` are exactly the union of
//! the confirmed bookings' seats, (2) every booking acknowledged to the bench with a 201 is
//! listed, confirmed, with the same seats, and (3) no seat is in two confirmed bookings.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::api::{Booking, Failure, SeatMap, SeatStatus, Timed};
use crate::backend::Backend;
use crate::workload::Acked;

/// Attempts to read one resource while the cluster is unavailable.
const READ_ATTEMPTS: u32 = 10;
/// Rounds of reads per show before a mismatch is reported: a booking whose request timed out
/// on the bench's side may still be confirming, so a mismatch is re-read after a pause.
const ROUNDS: u32 = 3;
/// Shows audited concurrently.
const PARALLELISM: usize = 8;
/// Problems listed in the report (all are counted).
pub const PROBLEMS_LISTED: usize = 20;
/// Seat ids quoted in one problem line.
const SEATS_QUOTED: usize = 8;

/// What the audit found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditReport {
    /// No problem found.
    pub ok: bool,
    /// Shows audited.
    pub shows: usize,
    /// Seats with status `sold`, all shows.
    pub seats_sold: u64,
    /// Seats in confirmed bookings (admin listing), all shows.
    pub seats_in_bookings: u64,
    /// Confirmed bookings in the admin listings.
    pub confirmed_bookings: u64,
    /// Bookings the bench got a 201 for.
    pub acknowledged_bookings: u64,
    /// Confirmed bookings the bench never got a 201 for (e.g. its request timed out).
    pub confirmed_unacknowledged: u64,
    /// Problems found, in all.
    pub problems_total: usize,
    /// The first [`PROBLEMS_LISTED`] problems.
    pub problems: Vec<String>,
}

#[derive(Default)]
struct ShowAudit {
    seats_sold: u64,
    seats_in_bookings: u64,
    confirmed: u64,
    unacknowledged: u64,
    problems: Vec<String>,
}

fn quote(seats: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let seats: Vec<String> = seats.into_iter().map(|s| s.as_ref().to_owned()).collect();
    let mut text = seats.iter().take(SEATS_QUOTED).cloned().collect::<Vec<_>>().join(",");
    if seats.len() > SEATS_QUOTED {
        text.push_str(&format!(",... ({} in all)", seats.len()));
    }
    text
}

async fn read<T, F, Fut>(mut call: F) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Timed<T>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await.result {
            Ok(value) => return Ok(value),
            Err(failure) => match failure.pause() {
                Some(_) if attempt < READ_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                _ => return Err(failure),
            },
        }
    }
}

/// Checks one show's seat map against its bookings and the bench's acknowledgements.
fn check(show_id: u64, map: &SeatMap, bookings: &[Booking], acked: &[Acked]) -> ShowAudit {
    let mut audit = ShowAudit::default();
    let sold: BTreeSet<&str> = map
        .rows
        .iter()
        .flat_map(|r| &r.seats)
        .filter(|s| s.status == SeatStatus::Sold)
        .map(|s| s.seat_id.as_str())
        .collect();
    audit.seats_sold = sold.len() as u64;
    let confirmed: Vec<&Booking> = bookings.iter().filter(|b| b.status == "confirmed").collect();
    audit.confirmed = confirmed.len() as u64;
    // (3) no seat in two confirmed bookings.
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for booking in &confirmed {
        for seat in &booking.seats {
            audit.seats_in_bookings += 1;
            if let Some(first) = owner.insert(seat, &booking.booking_id) {
                audit.problems.push(format!(
                    "show {show_id}: seat {seat} is in two confirmed bookings, {first} and {}",
                    booking.booking_id
                ));
            }
        }
    }
    // (1) sold seats == seats of confirmed bookings.
    let booked: BTreeSet<&str> = owner.keys().copied().collect();
    let sold_unbooked: Vec<&str> = sold.difference(&booked).copied().collect();
    if !sold_unbooked.is_empty() {
        audit.problems.push(format!(
            "show {show_id}: {} seat(s) sold but in no confirmed booking: {}",
            sold_unbooked.len(),
            quote(&sold_unbooked)
        ));
    }
    let booked_unsold: Vec<&str> = booked.difference(&sold).copied().collect();
    if !booked_unsold.is_empty() {
        audit.problems.push(format!(
            "show {show_id}: {} seat(s) of confirmed bookings not marked sold: {}",
            booked_unsold.len(),
            quote(&booked_unsold)
        ));
    }
    // (2) every acknowledged booking listed, confirmed, same seats.
    let listed: HashMap<&str, &Booking> =
        confirmed.iter().map(|b| (b.booking_id.as_str(), *b)).collect();
    for ack in acked {
        if ack.status != "confirmed" {
            audit.problems.push(format!(
                "show {show_id}: booking {} was acknowledged with status {:?}",
                ack.booking_id, ack.status
            ));
        }
        let acked_seats: BTreeSet<&String> = ack.seats.iter().collect();
        if acked_seats != ack.held.iter().collect() {
            audit.problems.push(format!(
                "show {show_id}: booking {} was acknowledged with seats {} but its hold had {}",
                ack.booking_id,
                quote(&ack.seats),
                quote(&ack.held)
            ));
        }
        match listed.get(ack.booking_id.as_str()) {
            None => audit.problems.push(format!(
                "show {show_id}: acknowledged booking {} (seats {}) is not among the confirmed \
                 bookings",
                ack.booking_id,
                quote(&ack.seats)
            )),
            Some(listed) => {
                if acked_seats != listed.seats.iter().collect() {
                    audit.problems.push(format!(
                        "show {show_id}: booking {} was acknowledged with seats {} but is listed \
                         with seats {}",
                        ack.booking_id,
                        quote(&ack.seats),
                        quote(&listed.seats)
                    ));
                }
            }
        }
    }
    let acked_ids: BTreeSet<&str> = acked.iter().map(|a| a.booking_id.as_str()).collect();
    audit.unacknowledged =
        confirmed.iter().filter(|b| !acked_ids.contains(b.booking_id.as_str())).count() as u64;
    audit
}

fn unreadable(show_id: u64, what: &str, failure: &Failure) -> ShowAudit {
    ShowAudit {
        problems: vec![format!("show {show_id}: could not read the {what}: {failure}")],
        ..ShowAudit::default()
    }
}

async fn audit_show(api: &impl Backend, show_id: u64, acked: &[Acked]) -> ShowAudit {
    let mut round = 0;
    loop {
        round += 1;
        let bookings = read(|| api.show_bookings(show_id)).await;
        let map = read(|| api.seat_map(show_id, false)).await;
        // Unreadable after retries: report it, re-reading more would not help.
        let (map, bookings) = match (map, bookings) {
            (Ok(map), Ok(bookings)) => (map, bookings),
            (Err(failure), _) => return unreadable(show_id, "seat map", &failure),
            (_, Err(failure)) => return unreadable(show_id, "bookings", &failure),
        };
        let audit = check(show_id, &map, &bookings.bookings, acked);
        if audit.problems.is_empty() || round >= ROUNDS {
            return audit;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Audits every show in `show_ids` against the bookings acknowledged to the bench.
pub async fn audit<B: Backend>(api: &B, show_ids: &[u64], acked: &[Acked]) -> AuditReport {
    let mut by_show: HashMap<u64, Vec<Acked>> = HashMap::new();
    for ack in acked {
        by_show.entry(ack.show_id).or_default().push(ack.clone());
    }
    let mut report = AuditReport {
        shows: show_ids.len(),
        acknowledged_bookings: acked.len() as u64,
        ..AuditReport::default()
    };
    let mut problems = Vec::new();
    let known: BTreeSet<u64> = show_ids.iter().copied().collect();
    for (show_id, acks) in &by_show {
        if !known.contains(show_id) {
            problems
                .push(format!("{} bookings acknowledged on unknown show {show_id}", acks.len()));
        }
    }
    let semaphore = Arc::new(Semaphore::new(PARALLELISM));
    let mut tasks = JoinSet::new();
    for (index, &show_id) in show_ids.iter().enumerate() {
        let (api, semaphore) = (api.clone(), Arc::clone(&semaphore));
        let acks = by_show.remove(&show_id).unwrap_or_default();
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            (index, audit_show(&api, show_id, &acks).await)
        });
    }
    let mut results: Vec<(usize, ShowAudit)> = Vec::with_capacity(show_ids.len());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(result) => results.push(result),
            Err(e) => problems.push(format!("an audit task failed: {e}")),
        }
    }
    results.sort_by_key(|(index, _)| *index);
    for (_, show) in results {
        report.seats_sold += show.seats_sold;
        report.seats_in_bookings += show.seats_in_bookings;
        report.confirmed_bookings += show.confirmed;
        report.confirmed_unacknowledged += show.unacknowledged;
        problems.extend(show.problems);
    }
    report.ok = problems.is_empty();
    report.problems_total = problems.len();
    problems.truncate(PROBLEMS_LISTED);
    report.problems = problems;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Row, Seat, SeatStatus};

    fn map(sold: &[&str]) -> SeatMap {
        let seats = ["A1", "A2", "A3", "A4"]
            .iter()
            .map(|id| Seat {
                seat_id: (*id).into(),
                status: if sold.contains(id) { SeatStatus::Sold } else { SeatStatus::Available },
                aisle_after: false,
            })
            .collect();
        SeatMap { available: 4 - sold.len() as u32, rows: vec![Row { seats }] }
    }

    fn booking(id: &str, seats: &[&str]) -> Booking {
        Booking {
            booking_id: id.into(),
            status: "confirmed".into(),
            seats: seats.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn ack(id: &str, seats: &[&str]) -> Acked {
        let seats: Vec<String> = seats.iter().map(|s| (*s).to_owned()).collect();
        Acked {
            show_id: 1,
            booking_id: id.into(),
            status: "confirmed".into(),
            held: seats.clone(),
            seats,
        }
    }

    #[test]
    fn consistent_show_passes() {
        let bookings = [booking("1-1", &["A1", "A2"]), booking("1-2", &["A4"])];
        let audit = check(1, &map(&["A1", "A2", "A4"]), &bookings, &[ack("1-1", &["A2", "A1"])]);
        assert!(audit.problems.is_empty(), "{:?}", audit.problems);
        assert_eq!((audit.seats_sold, audit.confirmed, audit.unacknowledged), (3, 2, 1));
    }

    #[test]
    fn each_violation_is_reported() {
        let bookings = [booking("1-1", &["A1", "A2"]), booking("1-2", &["A2"])];
        let mut wrong_hold = ack("1-1", &["A1", "A3"]);
        wrong_hold.held = vec!["A1".into()];
        let acked = [wrong_hold, ack("1-9", &["A4"])];
        let audit = check(1, &map(&["A1", "A3"]), &bookings, &acked);
        let text = audit.problems.join("\n");
        assert!(text.contains("two confirmed bookings"), "{text}");
        assert!(text.contains("sold but in no confirmed booking: A3"), "{text}");
        assert!(text.contains("not marked sold: A2"), "{text}");
        assert!(text.contains("1-9"), "{text}");
        assert!(text.contains("listed with seats A1,A2"), "{text}");
        assert!(text.contains("its hold had A1"), "{text}");
    }
}
