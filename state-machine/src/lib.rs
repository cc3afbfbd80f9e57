//! Marquee's replicated state machines, as pure functions of the log: the rules of the system,
//! with nothing else in the way.
//!
//! - [`inventory`]: seats, holds, checkouts and bookings of the shows one inventory shard owns.
//! - [`meta`]: the meta group (group 0): node registry, shard map and show placement, with the
//!   [`catalog`] (accounts, movies, theaters, screens, shows, reviews, change feed) beside it.
//! - [`layout`]: the one seat-layout validator, used by the catalog's screens and the shards'
//!   shows alike; [`validate`]: the field checks the catalog shares.
//! - [`limits`]: the domain bounds.
//!
//! Nothing here reads a clock, draws a random number, iterates a hash map, touches a disk or a
//! socket, or knows about Raft: time is the entry's `now_ms`, ids derive from log indexes, and
//! every collection is ordered, so every replica computes the same state and the same answer
//! from the same log (docs/architecture.md, invariant 5). `raft-store` runs these under openraft
//! on RocksDB; the property tests here check them against small models without either.

pub mod catalog;
pub mod inventory;
pub mod layout;
pub mod limits;
pub mod meta;
pub mod planted;
pub mod validate;

pub use inventory::Inventory;
pub use meta::MetaState;

/// A snapshot or stored state that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("undecodable state: {0}")]
pub struct DecodeError(#[from] serde_json::Error);

/// 64-bit FNV-1a: the digest replicas compare, and the fingerprint of idempotent requests.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
