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
    let mut hasher = Fnv1a::default();
    hasher.update(bytes);
    hasher.finish()
}

/// [`fnv1a`] fed in pieces, e.g. as the `io::Write` a serializer writes into: the same value
/// as [`fnv1a`] of the concatenated bytes, without the buffer holding them.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The hash of everything fed so far.
    pub fn finish(&self) -> u64 {
        self.0
    }

    /// The hash of `value`'s JSON encoding (the bytes `serde_json::to_vec` would return).
    ///
    /// # Errors
    /// Only if `value` cannot be encoded as JSON (a map with non-string keys).
    pub fn of_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<u64, serde_json::Error> {
        let mut hasher = Fnv1a::default();
        serde_json::to_writer(&mut hasher, value)?;
        Ok(hasher.finish())
    }
}

impl std::io::Write for Fnv1a {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_streamed_equals_fnv1a_of_the_bytes() {
        // The published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
        let value =
            serde_json::json!({"hold": {"show_id": 7, "seats": ["A1", "A2"], "owner": "ü"}});
        let bytes = serde_json::to_vec(&value).unwrap();
        assert_eq!(Fnv1a::of_json(&value).unwrap(), fnv1a(&bytes));
        let mut pieces = Fnv1a::default();
        for chunk in bytes.chunks(3) {
            pieces.update(chunk);
        }
        assert_eq!(pieces.finish(), fnv1a(&bytes));
    }
}
