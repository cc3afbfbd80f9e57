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

    /// Decodes a payload.
    ///
    /// # Errors
    /// Malformed or mismatched bytes.
    pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}
