//! [`HttpProvider`]: the [`PaymentProvider`] that talks to the `marquee-payments` service over
//! HTTP (`--payments-url`).
//!
//! How answers map onto [`PaymentError`] decides what the saga does, so the mapping is
//! conservative: only an answer that says nothing was done becomes [`PaymentError::Declined`]
//! (`402`, and other `4xx` refusals) or [`PaymentError::Unavailable`] (the connection was never
//! made). Everything else that is not a success — `5xx`, a timeout, a connection lost after the
//! request was sent, an unreadable success body — is [`PaymentError::Unknown`]: the money may
//! have moved, and the saga (or the recovery sweeper) settles it by looking the charge up by its
//! key. Every call is bounded by the gateway's payment timeout and every body read is capped.

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::json;

use super::{BoxFuture, PaymentError, PaymentProvider, Receipt};

/// Largest error or receipt body read from the service.
const ANSWER_BYTES_MAX: usize = 64 * 1024;
/// Largest ledger listing proxied from the service (its ledger is capped well below this).
pub const LEDGER_BYTES_MAX: usize = 128 * 1024 * 1024;
/// Longest a connection attempt may take (capped by the call timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A `--payments-url` that is not a plain `http://host:port` URL.
#[derive(Debug, thiserror::Error)]
#[error("invalid payments URL {url:?}: {reason}")]
pub struct InvalidUrl {
    url: String,
    reason: String,
}

/// Client of the `marquee-payments` service. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct HttpProvider {
    base: Url,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct ReceiptBody {
    reference: String,
    amount_minor: i64,
    currency: String,
}

impl From<ReceiptBody> for Receipt {
    fn from(body: ReceiptBody) -> Self {
        Receipt {
            reference: body.reference,
            amount_minor: body.amount_minor,
            currency: body.currency,
        }
    }
}

impl HttpProvider {
    /// A client of the service at `base_url` (e.g. `http://127.0.0.1:8090`) whose calls each
    /// give up after `timeout`.
    ///
    /// # Errors
    /// The URL is not an `http` URL with a host, or the HTTP client cannot be built.
    pub fn new(base_url: &str, timeout: Duration) -> Result<HttpProvider, InvalidUrl> {
        let invalid = |reason: String| InvalidUrl { url: base_url.to_owned(), reason };
        let base = Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        if base.scheme() != "http" || base.host().is_none() {
            return Err(invalid("expected http://host:port (TLS is not built in)".into()));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(HttpProvider { base, client })
    }

    fn url(&self, segments: &[&str]) -> Result<Url, PaymentError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| PaymentError::Unavailable("payments URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// The service's ledger as JSON bytes (`{charges, refunds}`), for `GET /v1/sandbox/payments`.
    ///
    /// # Errors
    /// The service did not answer `200` in time, or its answer is over [`LEDGER_BYTES_MAX`].
    pub async fn ledger(&self) -> Result<Vec<u8>, PaymentError> {
        let response = self.client.get(self.url(&["v1", "ledger"])?).send().await;
        let response = response.map_err(|e| transport("ledger", &e))?;
        let status = response.status();
        let body = read_capped(response, LEDGER_BYTES_MAX).await?;
        if status != StatusCode::OK {
            return Err(PaymentError::Unknown(format!("ledger answered {status}")));
        }
        Ok(body)
    }
}

/// A transport failure: `Unavailable` if the request certainly never reached the service.
fn transport(call: &str, e: &reqwest::Error) -> PaymentError {
    if e.is_connect() {
        PaymentError::Unavailable(format!("{call}: cannot connect to the payment service: {e}"))
    } else if e.is_timeout() {
        PaymentError::Unknown(format!("{call}: payment service timed out"))
    } else {
        PaymentError::Unknown(format!("{call}: {e}"))
    }
}

async fn read_capped(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, PaymentError> {
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|e| PaymentError::Unknown(format!("reading answer: {e}")))?
    {
        if body.len() + chunk.len() > max {
            return Err(PaymentError::Unknown(format!("answer over {max} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The `detail` of a problem+json answer, or the status if there is none.
fn detail(status: StatusCode, body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["detail"].as_str().map(|d| d.chars().take(200).collect()))
        .unwrap_or_else(|| format!("payment service answered {status}"))
}

/// Maps a charge or refund answer: success -> receipt, 4xx -> declined, else unknown.
async fn receipt_or_error(
    call: &str,
    response: reqwest::Response,
) -> Result<Receipt, PaymentError> {
    let status = response.status();
    let body = read_capped(response, ANSWER_BYTES_MAX).await?;
    if status.is_success() {
        return serde_json::from_slice::<ReceiptBody>(&body)
            .map(Receipt::from)
            .map_err(|e| PaymentError::Unknown(format!("{call}: unreadable receipt: {e}")));
    }
    if status.is_client_error() && status != StatusCode::REQUEST_TIMEOUT {
        return Err(PaymentError::Declined(detail(status, &body)));
    }
    Err(PaymentError::Unknown(format!("{call}: {}", detail(status, &body))))
}

impl PaymentProvider for HttpProvider {
    fn charge<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        amount_minor: i64,
        currency: &'a str,
    ) -> BoxFuture<'a, Result<Receipt, PaymentError>> {
        Box::pin(async move {
            let body = json!({"key": key, "amount_minor": amount_minor, "currency": currency, "token": token});
            let response = self.client.post(self.url(&["v1", "charges"])?).json(&body).send().await;
            receipt_or_error("charge", response.map_err(|e| transport("charge", &e))?).await
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
            let body = json!({
                "key": key, "charge_ref": charge_ref,
                "amount_minor": amount_minor, "currency": currency,
            });
            let response = self.client.post(self.url(&["v1", "refunds"])?).json(&body).send().await;
            receipt_or_error("refund", response.map_err(|e| transport("refund", &e))?).await
        })
    }

    fn lookup<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Receipt>, PaymentError>> {
        Box::pin(async move {
            let response = self.client.get(self.url(&["v1", "charges", key])?).send().await;
            let response = response.map_err(|e| transport("lookup", &e))?;
            let status = response.status();
            let body = read_capped(response, ANSWER_BYTES_MAX).await?;
            match status {
                StatusCode::OK => serde_json::from_slice::<ReceiptBody>(&body)
                    .map(|r| Some(r.into()))
                    .map_err(|e| PaymentError::Unknown(format!("lookup: unreadable receipt: {e}"))),
                StatusCode::NOT_FOUND => Ok(None),
                status => Err(PaymentError::Unknown(format!("lookup: {}", detail(status, &body)))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls_are_accepted() {
        let timeout = Duration::from_secs(1);
        assert!(HttpProvider::new("http://127.0.0.1:8090", timeout).is_ok());
        assert!(HttpProvider::new("https://pay.example", timeout).is_err());
        assert!(HttpProvider::new("127.0.0.1:8090", timeout).is_err());
        assert!(HttpProvider::new("", timeout).is_err());
    }

    #[test]
    fn urls_keep_a_base_path_and_escape_keys() {
        let provider = HttpProvider::new("http://h:1/pay/", Duration::from_secs(1)).unwrap();
        assert_eq!(
            provider.url(&["v1", "charges", "1-4"]).unwrap().as_str(),
            "http://h:1/pay/v1/charges/1-4"
        );
        assert_eq!(
            provider.url(&["v1", "charges", "a/b?c"]).unwrap().as_str(),
            "http://h:1/pay/v1/charges/a%2Fb%3Fc"
        );
    }

    #[tokio::test]
    async fn an_unreachable_service_is_unavailable_not_unknown() {
        // Bind then drop: nothing listens on the port for the moment of the test.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let provider =
            HttpProvider::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2)).unwrap();
        let result = provider.charge("1-1", "tok_success", 1, "INR").await;
        assert!(matches!(result, Err(PaymentError::Unavailable(_))), "{result:?}");
    }
}
