//! Marquee's wire vocabulary, in one place.
//!
//! - [`pb`]: the gRPC services and envelopes generated from `proto/marquee.proto`.
//! - [`catalog`]: accounts, movies, theaters, screens, shows and reviews (meta group).
//! - [`inventory`]: commands, outcomes and queries of the inventory state machine, shared by the
//!   state machine itself and by the gateway, which never links `raft-store`.
//! - [`codec`]: the single place where payloads are encoded to and decoded from bytes.
//!
//! Everything two crates must agree on lives here; nothing here does I/O.

pub mod catalog;
pub mod inventory;
pub mod meta;

/// Generated gRPC code (tonic + prost).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("marquee.v1");
}

/// A Raft group: 0 is reserved for the meta group; inventory shards are 1.. .
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct GroupId(pub u64);

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

pub use meta::META_GROUP;

/// Largest gRPC message a node or gateway accepts or sends.
pub const GRPC_MESSAGE_BYTES_MAX: usize = 8 * 1024 * 1024;

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
