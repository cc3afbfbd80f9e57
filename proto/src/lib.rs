//! Marquee's wire vocabulary, in one place.
//!
//! - `pb` (feature `grpc`): the gRPC services and envelopes generated from `proto/marquee.proto`.
//! - [`ids`]: identifiers (groups, shows, seats, owners, holds, bookings); [`layout`]: seat
//!   layouts and prices. Leaves: they import nothing else from this crate.
//! - [`catalog`]: accounts, movies, theaters, screens, shows and reviews (meta group).
//! - [`meta`]: the node registry and shard map (meta group).
//! - [`inventory`]: seat, hold and booking states and views of an inventory shard.
//! - [`command`]: the envelope of every group (commands, Raft entry payload, outcomes, reads),
//!   shared by the state machines and their clients (the gateway never links `raft-store`).
//! - [`calendar`]: date arithmetic shared by the catalog, the gateway and tests.
//! - [`limits`]: the bounds of the wire contract, enforced on apply and at the edge.
//! - [`codec`]: the single place where payloads are encoded to and decoded from bytes.
//!
//! Everything two crates must agree on lives here; nothing here does I/O.

pub mod calendar;
pub mod catalog;
pub mod command;
pub mod ids;
pub mod inventory;
pub mod layout;
pub mod limits;
pub mod meta;

/// Generated gRPC code (tonic + prost).
#[cfg(feature = "grpc")]
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("marquee.v1");
}

pub use ids::GroupId;

/// gRPC metadata key a node sets on an error status when it knows the request was not applied
/// (a forwarded proposal whose every attempt was refused or redirected, a node whose storage
/// failed): the caller may retry it even without a request id. A status without it, other than
/// a refused connection, leaves the outcome unknown.
pub const NOT_APPLIED_KEY: &str = "marquee-not-applied";

/// Marks an error status "not applied" ([`NOT_APPLIED_KEY`]).
#[cfg(feature = "grpc")]
pub fn not_applied(mut status: tonic::Status) -> tonic::Status {
    status.metadata_mut().insert(NOT_APPLIED_KEY, tonic::metadata::MetadataValue::from_static("1"));
    status
}

/// Whether a node marked this error status "not applied" ([`not_applied`]).
#[cfg(feature = "grpc")]
pub fn is_not_applied(status: &tonic::Status) -> bool {
    status.metadata().contains_key(NOT_APPLIED_KEY)
}
pub use limits::GRPC_MESSAGE_BYTES_MAX;
pub use meta::META_GROUP;

/// Encoding and decoding of JSON payloads carried in gRPC envelopes.
pub mod codec {
    use serde::{de::DeserializeOwned, Serialize};

    /// A payload that could not be encoded or decoded.
    #[derive(Debug, thiserror::Error)]
    #[error("payload codec: {0}")]
    pub struct CodecError(#[from] serde_json::Error);

    /// Encodes a payload.
    ///
    /// # Errors
    /// Fails only for types whose `Serialize` impl can fail (maps with non-string keys).
    pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
        Ok(serde_json::to_vec(value)?)
    }

    /// Encodes a payload at the end of `bytes` (a buffer the caller sized).
    ///
    /// # Errors
    /// As [`encode`].
    pub fn encode_into<T: Serialize>(bytes: &mut Vec<u8>, value: &T) -> Result<(), CodecError> {
        Ok(serde_json::to_writer(bytes, value)?)
    }

    /// Decodes a payload.
    ///
    /// # Errors
    /// Malformed or mismatched bytes.
    pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    /// The encoded `QueryResult::SeatMap { seat_map }` wraps the map as
    /// `{"seat_map":{"seat_map":MAP}}`.
    const SEAT_MAP_OPEN: &[u8] = br#"{"seat_map":{"seat_map":"#;
    const SEAT_MAP_CLOSE: &[u8] = b"}}";

    /// The encoded [`SeatMap`](crate::inventory::SeatMap) inside an encoded
    /// `QueryResult::SeatMap` answer, found without decoding it (the gateway passes seat maps
    /// through: docs/benchmarks.md, "Seat maps without copies"); `None` for any other answer.
    pub fn seat_map_of(answer: &[u8]) -> Option<&[u8]> {
        answer.strip_prefix(SEAT_MAP_OPEN)?.strip_suffix(SEAT_MAP_CLOSE)
    }

    #[cfg(test)]
    mod tests {
        use crate::command::QueryResult;
        use crate::ids::{SeatId, ShowId};
        use crate::inventory::{RowView, SeatMap, SeatStatus, SeatView};

        #[test]
        fn a_seat_map_is_found_inside_its_encoded_answer_and_nothing_else_is() {
            let seat = SeatView {
                seat_id: SeatId("A1".into()),
                number: 1,
                category: "standard".into(),
                price_minor: 900,
                status: SeatStatus::Held,
                aisle_after: true,
            };
            let seat_map = SeatMap {
                show_id: ShowId(7),
                title: "A \"quoted\" }} title".into(),
                starts_at_ms: 1,
                version: 3,
                currency: "EUR".into(),
                available: 0,
                cancelled: false,
                rows: vec![RowView { label: "A".into(), seats: vec![seat] }],
            };
            let answer =
                super::encode(&QueryResult::SeatMap { seat_map: seat_map.clone() }).unwrap();
            let inner = super::seat_map_of(&answer).unwrap();
            assert_eq!(super::decode::<SeatMap>(inner).unwrap(), seat_map);
            assert_eq!(inner, super::encode(&seat_map).unwrap());
            assert!(super::seat_map_of(&super::encode(&QueryResult::NotFound).unwrap()).is_none());
        }
    }
}
