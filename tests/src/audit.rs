//! The end-of-test audit of a show: no seat sold twice, the seat map's sold seats are exactly
//! the confirmed bookings' seats, and no booking a client was told succeeded is lost. These
//! are the `double-sale`, `sold-mismatch` and `lost-booking` invariants of
//! docs/reliability.md, checked here against one cluster at the end of a test.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};

use crate::client::seat_list;
use crate::cluster::Cluster;

/// Every confirmed booking's seats are disjoint, match the sold seats of the map exactly, and
/// include every booking a client was told succeeded. Returns the number of bookings.
///
/// # Errors
/// An invariant is broken, or the cluster could not be read.
pub async fn audit(
    cluster: &Cluster,
    show_id: u64,
    acknowledged: &[(String, Vec<String>)],
) -> Result<usize> {
    let bookings = cluster.bookings(show_id).await?;
    let mut owner_of: BTreeMap<String, String> = BTreeMap::new();
    let mut by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for booking in &bookings {
        let id = booking["booking_id"].as_str().unwrap_or_default().to_owned();
        for seat in seat_list(booking) {
            if let Some(other) = owner_of.insert(seat.clone(), id.clone()) {
                bail!("seat {seat} sold twice: bookings {other} and {id}");
            }
        }
        by_id.insert(id, seat_list(booking));
    }
    let sold: BTreeSet<String> =
        Cluster::seats_with_status(&cluster.seat_map(show_id).await?, "sold").into_iter().collect();
    let booked: BTreeSet<String> = owner_of.keys().cloned().collect();
    anyhow::ensure!(sold == booked, "sold seats {sold:?} != booked seats {booked:?}");
    for (id, seats) in acknowledged {
        let stored =
            by_id.get(id).ok_or_else(|| anyhow::anyhow!("acknowledged booking {id} lost"))?;
        anyhow::ensure!(stored == seats, "booking {id} seats changed: {seats:?} -> {stored:?}");
    }
    Ok(bookings.len())
}
