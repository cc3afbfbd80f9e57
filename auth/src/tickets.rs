//! Ticket codes: `MQ` and 16 base-32 characters (80 bits) of HMAC-SHA-256 over the booking id,
//! keyed with a secret every gateway holds and the cluster never stores.
//!
//! Why keyed: booking ids are `{show}-{log index}` and show ids are public, so an unkeyed
//! derivation (the first one was FNV-1a of the id) lets anyone compute every ticket of a show.
//! Why deterministic rather than random: the gateway computes the code and carries it in the
//! `Confirm` log entry (so replicas store the same code without knowing the secret), and a saga
//! retried through another gateway, or the recovery sweeper, must propose the very same entry
//! under the same request id. Check-in compares the presented code with the stored one
//! (docs/architecture.md, "Ticket codes").

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{CredentialError, JWT_SECRET_BYTES_MIN};

/// Characters of a ticket code (`MQ` and 16 code characters).
pub const TICKET_CODE_CHARS: usize = 18;
/// The code alphabet: no `I`, `O`, `0` or `1`, which read alike on paper.
const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

type HmacSha256 = Hmac<Sha256>;

/// The key ticket codes are computed with. Every gateway of a cluster must hold the same one.
#[derive(Clone)]
pub struct TicketKey([u8; 32]);

impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketKey(..)")
    }
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

impl TicketKey {
    /// A key from a dedicated secret of at least [`JWT_SECRET_BYTES_MIN`] bytes.
    ///
    /// # Errors
    /// A short secret.
    pub fn new(secret: &[u8]) -> Result<TicketKey, CredentialError> {
        if secret.len() < JWT_SECRET_BYTES_MIN {
            return Err(CredentialError::Config(format!(
                "the ticket secret must be at least {JWT_SECRET_BYTES_MIN} bytes"
            )));
        }
        Ok(TicketKey(mac(secret, &[b"marquee ticket codes v1"])))
    }

    /// A key derived from the access-token secret, for clusters that set no ticket secret of
    /// their own: a different key (domain-separated), from a secret the gateways already share.
    ///
    /// # Errors
    /// A short secret.
    pub fn derived_from_jwt_secret(jwt_secret: &[u8]) -> Result<TicketKey, CredentialError> {
        if jwt_secret.len() < JWT_SECRET_BYTES_MIN {
            return Err(CredentialError::Config(format!(
                "the JWT secret must be at least {JWT_SECRET_BYTES_MIN} bytes"
            )));
        }
        Ok(TicketKey(mac(jwt_secret, &[b"marquee ticket codes from the jwt secret v1"])))
    }

    /// The ticket code of a booking (its id as rendered in the API, e.g. `7-361`).
    pub fn code(&self, booking_id: &str) -> String {
        let digest = mac(&self.0, &[b"ticket:", booking_id.as_bytes()]);
        let mut bits = u128::from_be_bytes(digest[..16].try_into().expect("16 of 32 bytes"));
        let mut code = String::with_capacity(TICKET_CODE_CHARS);
        code.push_str("MQ");
        for _ in 2..TICKET_CODE_CHARS {
            code.push(ALPHABET[(bits % 32) as usize] as char);
            bits /= 32;
        }
        code
    }
}

/// Whether two codes are equal, in time independent of where they differ (a scanner must not
/// learn a code a character at a time).
pub fn codes_match(presented: &str, stored: &str) -> bool {
    let (a, b) = (presented.as_bytes(), stored.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn codes_are_stable_keyed_and_readable() {
        let key = TicketKey::new(SECRET).unwrap();
        let code = key.code("7-361");
        assert_eq!(code, key.code("7-361"), "deterministic: every gateway computes the same");
        assert_eq!(code.len(), TICKET_CODE_CHARS);
        assert!(code.starts_with("MQ"));
        assert!(code[2..].bytes().all(|b| ALPHABET.contains(&b)), "{code}");
        assert_ne!(code, key.code("7-362"));
        let other = TicketKey::new(b"another secret of at least 32 bytes!").unwrap();
        assert_ne!(code, other.code("7-361"), "another key, another code");
        let derived = TicketKey::derived_from_jwt_secret(SECRET).unwrap();
        assert_ne!(code, derived.code("7-361"), "the derived key is domain-separated");
        assert!(TicketKey::new(b"short").is_err());
    }

    #[test]
    fn codes_match_only_when_equal() {
        assert!(codes_match("MQABC", "MQABC"));
        assert!(!codes_match("MQABD", "MQABC"));
        assert!(!codes_match("MQAB", "MQABC"));
    }
}
