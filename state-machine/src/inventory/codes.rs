//! Ticket codes of confirmed bookings. Since command version 3 the gateway computes a booking's
//! code with a secret kept outside the log and carries it in `Confirm`; the state machine only
//! bounds and stores it, so every replica stores the same code and nobody can compute it from
//! the public booking id (docs/architecture.md, "Ticket codes"). Older entries carry none and
//! get the legacy unkeyed code, so old logs replay to exactly the state they had.

use proto::command::Rejection;
use proto::ids::BookingId;

use crate::fnv1a;
use crate::limits::TICKET_CODE_BYTES_MAX;

/// Refuses a carried code that is empty, too long, or not ASCII letters and digits.
pub(super) fn check_ticket_code(code: &str) -> Result<(), Rejection> {
    if code.is_empty()
        || code.len() > TICKET_CODE_BYTES_MAX
        || !code.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(Rejection::CatalogInvalid {
            field: "ticket_code".into(),
            reason: format!("1..={TICKET_CODE_BYTES_MAX} ASCII letters and digits"),
        });
    }
    Ok(())
}

/// The ticket code of a `Confirm` that carries none (entries before version 3): derived from
/// the booking and the confirming entry with an unkeyed hash, so anyone who knows the booking
/// id can compute it. Kept only so old logs replay to the state they had; gateways send keyed
/// codes (docs/architecture.md, "Ticket codes").
pub(super) fn legacy_ticket_code(booking_id: BookingId, index: u64) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut h = fnv1a(format!("{booking_id}/{index}").as_bytes());
    let mut code = String::with_capacity(10);
    code.push_str("MQ");
    for _ in 0..8 {
        code.push(ALPHABET[(h % 32) as usize] as char);
        h /= 32;
    }
    code
}
