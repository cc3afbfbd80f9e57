//! The sandbox's in-memory ledger and its test tokens: a pure, synchronous core that the HTTP
//! layer ([`crate::http`]) wraps with waits and injected faults.
//!
//! Guarantees:
//! - **One charge per idempotency key.** A charge with a key the ledger already holds returns
//!   the existing charge without acting, whatever the token (the gateway uses the booking id as
//!   the key, so a retried or replayed charge never takes money twice). The same key with a
//!   different amount or currency is refused (`KeyReused`).
//! - **One refund per refund key**, and never more refunded than charged: the refunds of a
//!   charge sum to at most its amount, so two different refund keys for one booking cannot both
//!   succeed in full.
//! - **Bounded**: at most [`CHARGES_MAX`] charges and [`REFUNDS_MAX`] refunds; past that, new
//!   ones are refused (`Full`) and nothing is taken.
//!
//! The gateway's in-process sandbox keeps this same ledger, so the JSON form of [`Ledger`]
//! (`{"charges": {key: receipt}, "refunds": {key: [charge_ref, receipt]}}`) is what audits read
//! from either.
//! Nothing is persisted: a restarted service starts with an empty ledger (it is a sandbox).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::limits::{AMOUNT_MINOR_MAX, CHARGES_MAX, DELAY_MS_MAX, REFUNDS_MAX};

/// A charge or refund the ledger holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The service's reference: `ch_<key>` for charges, `rf_<key>` for refunds.
    pub reference: String,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 currency.
    pub currency: String,
}

/// Why the ledger refused a call. Nothing was charged or refunded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The idempotency key was used before for a different amount, currency or charge.
    #[error("idempotency key {key:?} was used for a different request")]
    KeyReused {
        /// The key.
        key: String,
    },
    /// A refund names a charge reference the ledger does not hold.
    #[error("no charge {charge_ref:?}")]
    ChargeNotFound {
        /// The reference.
        charge_ref: String,
    },
    /// A refund would take more than is left of the charge.
    #[error(
        "refund of {asked_minor} exceeds the {refundable_minor} left of charge {charge_ref:?}"
    )]
    RefundExceedsCharge {
        /// The charge.
        charge_ref: String,
        /// What is left to refund.
        refundable_minor: i64,
        /// What was asked.
        asked_minor: i64,
    },
    /// A refund's currency differs from its charge's.
    #[error("refund currency {asked} differs from the charge's {charged}")]
    CurrencyMismatch {
        /// The charge's currency.
        charged: String,
        /// The refund's currency.
        asked: String,
    },
    /// The ledger holds its maximum number of entries.
    #[error("the sandbox ledger is full")]
    Full,
}

/// A sandbox payment token: what the service does with a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// `tok_success`: charged.
    Success,
    /// `tok_decline`: declined, nothing charged.
    Decline,
    /// `tok_timeout`: no answer until the stall passes, then a timeout error; nothing charged.
    Timeout,
    /// `tok_fail_after_charge`: charged, then the response is lost (a 500).
    FailAfterCharge,
    /// `tok_delay_<ms>`: charged at once, answered after the delay.
    Delay(Duration),
    /// Anything else: declined as invalid.
    Unknown,
}

impl Token {
    /// Parses a token; never fails (unknown tokens are [`Token::Unknown`]).
    pub fn parse(token: &str) -> Token {
        match token {
            "tok_success" => Token::Success,
            "tok_decline" => Token::Decline,
            "tok_timeout" => Token::Timeout,
            "tok_fail_after_charge" => Token::FailAfterCharge,
            other => match other.strip_prefix("tok_delay_").map(str::parse::<u64>) {
                Some(Ok(ms)) if ms <= DELAY_MS_MAX => Token::Delay(Duration::from_millis(ms)),
                _ => Token::Unknown,
            },
        }
    }
}

/// What a charge call did, for the HTTP layer to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// Charged now (`new`) or found under the key (a replay).
    Charged {
        /// The charge.
        receipt: Receipt,
        /// Whether this call made it.
        new: bool,
    },
    /// Declined; nothing charged.
    Declined(String),
    /// Stall, then answer with a timeout; nothing charged.
    Stall,
    /// Charged; answer with a lost-response error.
    LostResponse(Receipt),
    /// Charged; answer after the delay.
    Delayed(Receipt, Duration),
}

/// Charges by key and refunds by key, with indexes to refund by charge reference.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ledger {
    /// Charges by idempotency key.
    pub charges: BTreeMap<String, Receipt>,
    /// Refunds by refund idempotency key, with the reference of the charge they refund.
    pub refunds: BTreeMap<String, (String, Receipt)>,
    /// Charge reference -> (charge key, amount refunded so far).
    #[serde(skip)]
    by_reference: BTreeMap<String, (String, i64)>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// The charge made under `key`, if any.
    pub fn lookup(&self, key: &str) -> Option<&Receipt> {
        self.charges.get(key)
    }

    /// Runs a charge call for `token`. A key the ledger holds replays its charge first.
    ///
    /// # Errors
    /// [`LedgerError::KeyReused`] for the same key with another amount or currency;
    /// [`LedgerError::Full`] when a new charge does not fit. Nothing is charged then.
    pub fn charge(
        &mut self,
        key: &str,
        token: Token,
        amount_minor: i64,
        currency: &str,
    ) -> Result<ChargeOutcome, LedgerError> {
        debug_assert!((0..=AMOUNT_MINOR_MAX).contains(&amount_minor), "validated by the caller");
        if let Some(existing) = self.charges.get(key) {
            if existing.amount_minor != amount_minor || existing.currency != currency {
                return Err(LedgerError::KeyReused { key: key.to_owned() });
            }
            return Ok(ChargeOutcome::Charged { receipt: existing.clone(), new: false });
        }
        let record = |ledger: &mut Ledger| -> Result<Receipt, LedgerError> {
            if ledger.charges.len() >= CHARGES_MAX {
                return Err(LedgerError::Full);
            }
            let receipt = Receipt {
                reference: format!("ch_{key}"),
                amount_minor,
                currency: currency.to_owned(),
            };
            ledger.charges.insert(key.to_owned(), receipt.clone());
            ledger.by_reference.insert(receipt.reference.clone(), (key.to_owned(), 0));
            Ok(receipt)
        };
        Ok(match token {
            Token::Success => ChargeOutcome::Charged { receipt: record(self)?, new: true },
            Token::Decline => ChargeOutcome::Declined("card declined (sandbox tok_decline)".into()),
            Token::Timeout => ChargeOutcome::Stall,
            Token::FailAfterCharge => ChargeOutcome::LostResponse(record(self)?),
            Token::Delay(delay) => ChargeOutcome::Delayed(record(self)?, delay),
            Token::Unknown => ChargeOutcome::Declined("unknown sandbox token".into()),
        })
    }

    /// Refunds `amount_minor` of the charge `charge_ref`, once per `key`. Returns the refund
    /// and whether this call made it (`false`: a replay of the same key).
    ///
    /// # Errors
    /// No such charge, another request under the key, a currency mismatch, more than is left
    /// of the charge, or a full ledger. Nothing is refunded then.
    pub fn refund(
        &mut self,
        key: &str,
        charge_ref: &str,
        amount_minor: i64,
        currency: &str,
    ) -> Result<(Receipt, bool), LedgerError> {
        debug_assert!((0..=AMOUNT_MINOR_MAX).contains(&amount_minor), "validated by the caller");
        if let Some((refunded_ref, existing)) = self.refunds.get(key) {
            if refunded_ref != charge_ref
                || existing.amount_minor != amount_minor
                || existing.currency != currency
            {
                return Err(LedgerError::KeyReused { key: key.to_owned() });
            }
            return Ok((existing.clone(), false));
        }
        let (charge_key, refunded_minor) = self
            .by_reference
            .get(charge_ref)
            .ok_or_else(|| LedgerError::ChargeNotFound { charge_ref: charge_ref.to_owned() })?;
        let charge = self.charges.get(charge_key).expect("by_reference points at held charges");
        if charge.currency != currency {
            return Err(LedgerError::CurrencyMismatch {
                charged: charge.currency.clone(),
                asked: currency.to_owned(),
            });
        }
        let refundable_minor = charge.amount_minor - refunded_minor;
        if amount_minor > refundable_minor {
            return Err(LedgerError::RefundExceedsCharge {
                charge_ref: charge_ref.to_owned(),
                refundable_minor,
                asked_minor: amount_minor,
            });
        }
        if self.refunds.len() >= REFUNDS_MAX {
            return Err(LedgerError::Full);
        }
        let receipt =
            Receipt { reference: format!("rf_{key}"), amount_minor, currency: currency.to_owned() };
        self.refunds.insert(key.to_owned(), (charge_ref.to_owned(), receipt.clone()));
        let entry = self.by_reference.get_mut(charge_ref).expect("looked up above");
        entry.1 += amount_minor;
        assert!(entry.1 <= charge.amount_minor, "refunds of a charge never exceed its amount");
        Ok((receipt, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charged(outcome: ChargeOutcome) -> Receipt {
        match outcome {
            ChargeOutcome::Charged { receipt, .. }
            | ChargeOutcome::LostResponse(receipt)
            | ChargeOutcome::Delayed(receipt, _) => receipt,
            other => panic!("expected a charge, got {other:?}"),
        }
    }

    #[test]
    fn tokens_parse_with_bounded_delays() {
        assert_eq!(Token::parse("tok_success"), Token::Success);
        assert_eq!(Token::parse("tok_delay_250"), Token::Delay(Duration::from_millis(250)));
        assert_eq!(Token::parse("tok_delay_"), Token::Unknown);
        assert_eq!(Token::parse("tok_delay_-1"), Token::Unknown);
        assert_eq!(Token::parse(&format!("tok_delay_{}", DELAY_MS_MAX + 1)), Token::Unknown);
        assert_eq!(Token::parse("tok_delay_99999999999999999999999"), Token::Unknown);
        assert_eq!(Token::parse(""), Token::Unknown);
    }

    #[test]
    fn charges_are_idempotent_per_key_whatever_the_token() {
        let mut ledger = Ledger::new();
        let first = charged(ledger.charge("b1", Token::Success, 100, "INR").unwrap());
        let replay = ledger.charge("b1", Token::Decline, 100, "INR").unwrap();
        assert_eq!(replay, ChargeOutcome::Charged { receipt: first, new: false });
        assert_eq!(ledger.charges.len(), 1);
        assert_eq!(
            ledger.charge("b1", Token::Success, 101, "INR"),
            Err(LedgerError::KeyReused { key: "b1".into() })
        );
    }

    #[test]
    fn decline_timeout_and_unknown_charge_nothing() {
        let mut ledger = Ledger::new();
        for token in [Token::Decline, Token::Timeout, Token::Unknown] {
            let outcome = ledger.charge("k", token, 1, "INR").unwrap();
            assert!(matches!(outcome, ChargeOutcome::Declined(_) | ChargeOutcome::Stall));
        }
        assert!(ledger.charges.is_empty());
        assert!(ledger.lookup("k").is_none());
    }

    #[test]
    fn fail_after_charge_and_delay_charge_before_answering() {
        let mut ledger = Ledger::new();
        let lost = ledger.charge("a", Token::FailAfterCharge, 5, "INR").unwrap();
        assert!(matches!(lost, ChargeOutcome::LostResponse(_)));
        let delay = Token::Delay(Duration::from_millis(7));
        let delayed = ledger.charge("b", delay, 5, "INR").unwrap();
        assert!(matches!(delayed, ChargeOutcome::Delayed(_, d) if d == Duration::from_millis(7)));
        assert!(ledger.lookup("a").is_some() && ledger.lookup("b").is_some());
    }

    #[test]
    fn refunds_are_idempotent_and_never_exceed_the_charge() {
        let mut ledger = Ledger::new();
        assert!(matches!(
            ledger.refund("r0", "ch_none", 1, "INR"),
            Err(LedgerError::ChargeNotFound { .. })
        ));
        let charge = charged(ledger.charge("b", Token::Success, 10, "INR").unwrap());
        let (first, new) = ledger.refund("refund:b", &charge.reference, 10, "INR").unwrap();
        assert!(new);
        assert_eq!(ledger.refund("refund:b", &charge.reference, 10, "INR"), Ok((first, false)));
        assert!(matches!(
            ledger.refund("refund:b:again", &charge.reference, 1, "INR"),
            Err(LedgerError::RefundExceedsCharge { refundable_minor: 0, .. })
        ));
        assert!(matches!(
            ledger.refund("refund:b", &charge.reference, 9, "INR"),
            Err(LedgerError::KeyReused { .. })
        ));
        assert_eq!(ledger.refunds.len(), 1);
    }

    #[test]
    fn partial_refunds_add_up_to_the_charge() {
        let mut ledger = Ledger::new();
        let charge = charged(ledger.charge("b", Token::Success, 10, "INR").unwrap());
        ledger.refund("r1", &charge.reference, 4, "INR").unwrap();
        ledger.refund("r2", &charge.reference, 6, "INR").unwrap();
        assert!(ledger.refund("r3", &charge.reference, 1, "INR").is_err());
        assert!(matches!(
            ledger.refund("r4", &charge.reference, 0, "USD"),
            Err(LedgerError::CurrencyMismatch { .. })
        ));
    }

    #[test]
    fn ledger_json_matches_the_gateway_sandbox_shape() {
        let mut ledger = Ledger::new();
        let charge = charged(ledger.charge("1-4", Token::Success, 10, "INR").unwrap());
        ledger.refund("refund:1-4", &charge.reference, 10, "INR").unwrap();
        let json = serde_json::to_value(&ledger).unwrap();
        assert_eq!(json["charges"]["1-4"]["reference"], "ch_1-4");
        assert_eq!(json["refunds"]["refund:1-4"][0], "ch_1-4");
        assert_eq!(json["refunds"]["refund:1-4"][1]["reference"], "rf_refund:1-4");
        assert_eq!(json.as_object().unwrap().len(), 2, "indexes stay out of the JSON");
    }
}
