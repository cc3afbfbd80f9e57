//! Seat-map answers encoded straight from the shard's records (docs/benchmarks.md, "Seat maps
//! without copies").
//!
//! A seat map is the largest and most frequent read: 600 seats on a cinema screen, 40 000 on a
//! stadium, once per journey. Building its [`SeatMap`](proto::inventory::SeatMap) view first
//! allocated two strings per seat (its id and category) and a price lookup, only to encode the
//! view and drop it. [`Inventory::encode_answer`] writes the same bytes from borrowed records:
//! the encoding is byte for byte what `codec::encode(&QueryResult::SeatMap { .. })` produces
//! (the property tests compare them), so the gateway can pass the map through unparsed.

use proto::codec::{self, CodecError};
use proto::command::{Query, QueryResult};
use proto::ids::ShowId;
use proto::inventory::SeatStatus;
use serde::ser::{SerializeSeq, SerializeStruct, SerializeStructVariant};
use serde::{Serialize, Serializer};

use super::{Inventory, Row, SeatState, Show};

impl Inventory {
    /// The encoded answer to a read: [`codec::encode`] of [`Inventory::query`], with seat maps
    /// written from the records without building their view.
    ///
    /// # Errors
    /// Only if encoding fails, which JSON of these types cannot.
    pub fn encode_answer(&self, query: &Query) -> Result<Vec<u8>, CodecError> {
        match query {
            Query::SeatMap { show_id } => match self.shows.get(show_id) {
                Some(show) => {
                    // Sized once: growing a 66 kB buffer by doubling copied it about ten times.
                    let seats: usize = show.rows.iter().map(|row| row.seats.len()).sum();
                    let mut bytes = Vec::with_capacity(SEAT_MAP_HEAD_BYTES + seats * SEAT_BYTES);
                    let answer = SeatMapAnswer { show_id: *show_id, show };
                    codec::encode_into(&mut bytes, &answer)?;
                    Ok(bytes)
                }
                None => codec::encode(&QueryResult::NotFound),
            },
            other => codec::encode(&self.query(other)),
        }
    }
}

/// Room for the map's fields before its rows.
const SEAT_MAP_HEAD_BYTES: usize = 512;
/// Room per seat: `{"seat_id":"AA30","number":30,"category":"standard","price_minor":1200,
/// "status":"available","aisle_after":false}` is 105 bytes; longer categories may grow it once.
const SEAT_BYTES: usize = 112;

/// `QueryResult::SeatMap { seat_map }`, borrowed.
struct SeatMapAnswer<'a> {
    show_id: ShowId,
    show: &'a Show,
}

impl Serialize for SeatMapAnswer<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut variant = serializer.serialize_struct_variant("QueryResult", 0, "seat_map", 1)?;
        variant
            .serialize_field("seat_map", &SeatMapRef { show_id: self.show_id, show: self.show })?;
        variant.end()
    }
}

/// [`proto::inventory::SeatMap`]'s fields, in its order.
struct SeatMapRef<'a> {
    show_id: ShowId,
    show: &'a Show,
}

impl Serialize for SeatMapRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let show = self.show;
        let mut map = serializer.serialize_struct("SeatMap", 8)?;
        map.serialize_field("show_id", &self.show_id)?;
        map.serialize_field("title", &show.title)?;
        map.serialize_field("starts_at_ms", &show.starts_at_ms)?;
        map.serialize_field("version", &show.version)?;
        map.serialize_field("currency", &show.currency)?;
        map.serialize_field("available", &show.available)?;
        map.serialize_field("cancelled", &show.cancelled)?;
        map.serialize_field("rows", &Rows(show))?;
        map.end()
    }
}

struct Rows<'a>(&'a Show);

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut rows = serializer.serialize_seq(Some(self.0.rows.len()))?;
        for row in &self.0.rows {
            // A show's every category has a price (checked when the show is created).
            let price = self.0.prices.get(&row.category).copied().unwrap_or_default();
            rows.serialize_element(&RowRef { row, price })?;
        }
        rows.end()
    }
}

/// [`proto::inventory::RowView`]'s fields.
struct RowRef<'a> {
    row: &'a Row,
    price: i64,
}

impl Serialize for RowRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut row = serializer.serialize_struct("RowView", 2)?;
        row.serialize_field("label", &self.row.label)?;
        row.serialize_field("seats", &SeatsRef(self))?;
        row.end()
    }
}

struct SeatsRef<'a>(&'a RowRef<'a>);

impl Serialize for SeatsRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let RowRef { row, price } = self.0;
        let mut seats = serializer.serialize_seq(Some(row.seats.len()))?;
        for (offset, state) in row.seats.iter().enumerate() {
            let number = u32::try_from(offset + 1).unwrap_or(u32::MAX);
            seats.serialize_element(&SeatRef { row, number, state, price: *price })?;
        }
        seats.end()
    }
}

/// [`proto::inventory::SeatView`]'s fields.
struct SeatRef<'a> {
    row: &'a Row,
    number: u32,
    state: &'a SeatState,
    price: i64,
}

impl Serialize for SeatRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let status = match self.state {
            SeatState::Free => SeatStatus::Available,
            SeatState::Held(_) => SeatStatus::Held,
            SeatState::Sold(_) => SeatStatus::Sold,
        };
        let mut seat = serializer.serialize_struct("SeatView", 6)?;
        seat.serialize_field("seat_id", &SeatIdRef(&self.row.label, self.number))?;
        seat.serialize_field("number", &self.number)?;
        seat.serialize_field("category", &self.row.category)?;
        seat.serialize_field("price_minor", &self.price)?;
        seat.serialize_field("status", &status)?;
        seat.serialize_field("aisle_after", &self.row.aisles_after.contains(&self.number))?;
        seat.end()
    }
}

/// A seat id (`{label}{number}`, as [`super::seat_id`] spells it) written without a `String`.
struct SeatIdRef<'a>(&'a str, u32);

impl Serialize for SeatIdRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{}{}", self.0, self.1))
    }
}
