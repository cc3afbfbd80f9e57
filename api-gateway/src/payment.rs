//! Payments: the [`PaymentProvider`] trait, the in-process sandbox provider (the default) and
//! [`http::HttpProvider`], the client of the `marquee-payments` service (`--payments-url`).
//!
//! Every call carries an idempotency key (the booking id for charges, `refund:<booking>` for
//! refunds), so the saga can retry or look a charge up after an unknown outcome without ever
//! charging twice.
//!
//! Sandbox test tokens (documented in docs/api.md):
//!
//! | token                    | behaviour                                                      |
//! |--------------------------|----------------------------------------------------------------|
//! | `tok_success`            | charge succeeds                                                |
//! | `tok_decline`            | declined, nothing charged                                      |
//! | `tok_timeout`            | no answer within the gateway's payment timeout, nothing charged |
//! | `tok_fail_after_charge`  | the charge is made, then the call fails (lost response)        |
//!
//! Any other token is declined as invalid. The `marquee-payments` service understands the
//! same tokens plus `tok_delay_<ms>` and service-wide faults (docs/api.md).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use payments::ledger::{ChargeOutcome, Ledger, LedgerError, Token};
use payments::limits::AMOUNT_MINOR_MAX;

pub mod http;

/// A boxed, sendable future (the trait is used as `dyn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A successful charge or refund: the sandbox ledger's receipt, which the service's JSON
/// carries too.
pub use payments::ledger::Receipt;

/// Why a payment call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The provider refused the charge; nothing was taken.
    #[error("payment declined: {0}")]
    Declined(String),
    /// The outcome is unknown (timeout, lost response): look the key up before deciding.
    #[error("payment outcome unknown: {0}")]
    Unknown(String),
    /// The provider could not be reached; the call certainly did nothing.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
}

/// A payment provider. Implementations must be idempotent per key.
pub trait PaymentProvider: Send + Sync + 'static {
    /// Charges `amount_minor` with `token`, once per `key`.
    fn charge<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        amount_minor: i64,
        currency: &'a str,
    ) -> BoxFuture<'a, Result<Receipt, PaymentError>>;
    /// Refunds the charge `charge_ref`, once per `key`.
    fn refund<'a>(
        &'a self,
        key: &'a str,
        charge_ref: &'a str,
        amount_minor: i64,
        currency: &'a str,
    ) -> BoxFuture<'a, Result<Receipt, PaymentError>>;
    /// The charge made under `key`, if any.
    fn lookup<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Receipt>, PaymentError>>;
}

/// The in-process sandbox provider: the `payments` crate's ledger (the same one the
/// `marquee-payments` service keeps, so both answer a token alike and their ledgers read the
/// same), without the service's network, waits and fault flags. Deterministic: behaviour
/// depends only on the token.
#[derive(Clone, Default)]
pub struct SandboxProvider {
    ledger: Arc<Mutex<Ledger>>,
    /// How long `tok_timeout` stalls; set above the gateway's payment timeout.
    stall: Duration,
}

impl SandboxProvider {
    /// A sandbox whose `tok_timeout` stalls for `stall`.
    pub fn new(stall: Duration) -> Self {
        SandboxProvider { ledger: Arc::default(), stall }
    }

    /// A copy of the ledger.
    pub fn ledger(&self) -> Ledger {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().expect("ledger lock never poisoned")
    }
}

/// A ledger refusal as the saga sees it: nothing was charged or refunded.
fn refused(e: LedgerError) -> PaymentError {
    match e {
        LedgerError::Full => PaymentError::Unavailable(e.to_string()),
        other => PaymentError::Declined(other.to_string()),
    }
}

impl PaymentProvider for SandboxProvider {
    fn charge<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        amount_minor: i64,
        currency: &'a str,
    ) -> BoxFuture<'a, Result<Receipt, PaymentError>> {
        Box::pin(async move {
            if !(0..=AMOUNT_MINOR_MAX).contains(&amount_minor) {
                return Err(PaymentError::Declined(format!("invalid amount {amount_minor}")));
            }
            // `tok_delay_<ms>` is the service's; the in-process sandbox declines it as unknown.
            let token = match Token::parse(token) {
                Token::Delay(_) => Token::Unknown,
                other => other,
            };
            let outcome =
                self.lock().charge(key, token, amount_minor, currency).map_err(refused)?;
            match outcome {
                ChargeOutcome::Charged { receipt, .. } | ChargeOutcome::Delayed(receipt, _) => {
                    Ok(receipt)
                }
                ChargeOutcome::Declined(reason) => Err(PaymentError::Declined(reason)),
                ChargeOutcome::Stall => {
                    tokio::time::sleep(self.stall).await;
                    Err(PaymentError::Unknown("sandbox tok_timeout stalled".into()))
                }
                ChargeOutcome::LostResponse(_) => Err(PaymentError::Unknown(
                    "sandbox tok_fail_after_charge lost the response".into(),
                )),
            }
        })
    }

    fn refund<'a>(
        &'a self,
        key: &'a str,
        charge_ref: &'a str,
        amount_minor: i64,
        currency: &'a str,
    ) -> BoxFuture<'a, Result<Receipt, PaymentError>> {
        Box::pin(async move {
            if amount_minor <= 0 || amount_minor > AMOUNT_MINOR_MAX {
                return Err(PaymentError::Declined(format!(
                    "refund of {amount_minor} exceeds what is left of charge {charge_ref}"
                )));
            }
            let (receipt, _) =
                self.lock().refund(key, charge_ref, amount_minor, currency).map_err(refused)?;
            Ok(receipt)
        })
    }

    fn lookup<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Receipt>, PaymentError>> {
        Box::pin(async move { Ok(self.lock().lookup(key).cloned()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn charges_are_idempotent_per_key() {
        let sandbox = SandboxProvider::new(Duration::from_millis(1));
        let first = sandbox.charge("b1", "tok_success", 100, "INR").await.unwrap();
        let again = sandbox.charge("b1", "tok_success", 100, "INR").await.unwrap();
        assert_eq!(first, again);
        assert_eq!(sandbox.ledger().charges.len(), 1);
    }

    #[tokio::test]
    async fn fail_after_charge_is_found_by_lookup() {
        let sandbox = SandboxProvider::new(Duration::from_millis(1));
        let result = sandbox.charge("b2", "tok_fail_after_charge", 100, "INR").await;
        assert!(matches!(result, Err(PaymentError::Unknown(_))));
        assert!(sandbox.lookup("b2").await.unwrap().is_some());
        assert!(sandbox.lookup("b3").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn decline_and_timeout_charge_nothing() {
        let sandbox = SandboxProvider::new(Duration::from_millis(1));
        assert!(matches!(
            sandbox.charge("d", "tok_decline", 1, "INR").await,
            Err(PaymentError::Declined(_))
        ));
        assert!(matches!(
            sandbox.charge("t", "tok_timeout", 1, "INR").await,
            Err(PaymentError::Unknown(_))
        ));
        assert!(sandbox.ledger().charges.is_empty());
    }

    #[tokio::test]
    async fn refunds_need_a_charge_and_are_idempotent() {
        let sandbox = SandboxProvider::new(Duration::from_millis(1));
        assert!(sandbox.refund("r0", "ch_none", 1, "INR").await.is_err());
        let charge = sandbox.charge("b", "tok_success", 5, "INR").await.unwrap();
        let first = sandbox.refund("refund:b", &charge.reference, 5, "INR").await.unwrap();
        let again = sandbox.refund("refund:b", &charge.reference, 5, "INR").await.unwrap();
        assert_eq!(first, again);
        assert_eq!(sandbox.ledger().refunds.len(), 1);
        // Nothing is left to refund, and amounts or currencies that do not fit are refused.
        assert!(sandbox.refund("refund:b2", &charge.reference, 1, "INR").await.is_err());
        let other = sandbox.charge("c", "tok_success", 10, "INR").await.unwrap();
        for (amount, currency) in [(0, "INR"), (-1, "INR"), (11, "INR"), (5, "USD")] {
            assert!(
                sandbox.refund("refund:c", &other.reference, amount, currency).await.is_err(),
                "{amount} {currency}"
            );
        }
        sandbox.refund("refund:c", &other.reference, 4, "INR").await.unwrap();
        sandbox.refund("refund:c2", &other.reference, 6, "INR").await.unwrap();
        assert_eq!(sandbox.ledger().refunds.len(), 3);
    }
}
