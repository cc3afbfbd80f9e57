//! The service's HTTP API: charge, look up, refund, list the ledger, and set faults.
//!
//! | method + path                  | body                                             | answer |
//! |--------------------------------|--------------------------------------------------|--------|
//! | `POST /v1/charges`             | `{key, amount_minor, currency, token}`           | `201` charge (`200` on a replay of the key) |
//! | `GET /v1/charges/{key}`        | —                                                | `200` charge, `404 charge-not-found` |
//! | `POST /v1/refunds`             | `{key, charge_ref, amount_minor, currency}`      | `201` refund (`200` on a replay) |
//! | `GET /v1/ledger`               | —                                                | `200 {charges, refunds}` |
//! | `GET/PUT/DELETE /v1/admin/faults` | `{fail_next_calls, lose_next_responses, latency_ms}` | the fault flags |
//! | `GET /healthz`                 | —                                                | `ok` |
//!
//! Errors are `application/problem+json` with a stable `type`. Service-wide faults (set by the
//! admin endpoint) apply to charge, lookup and refund calls, in this order: the added latency,
//! then `fail_next_calls` (answer `503 injected-fault` without acting), then the call itself,
//! then `lose_next_responses` (charges and refunds only: act, then answer `500 response-lost`).
//! Every wait ends early with `503` when the service shuts down, so shutdown never hangs on a
//! stalled call.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::ledger::{ChargeOutcome, Ledger, LedgerError, Receipt, Token};
use crate::limits::{
    AMOUNT_MINOR_MAX, BODY_BYTES_MAX, DELAY_MS_MAX, FAULT_COUNT_MAX, IN_FLIGHT_MAX, KEY_BYTES_MAX,
    TOKEN_BYTES_MAX,
};

/// Service-wide fault flags, set with `PUT /v1/admin/faults`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// The next this many charge/lookup/refund calls fail with `503` and do nothing.
    #[serde(default)]
    pub fail_next_calls: u32,
    /// The next this many charges/refunds are made, then answered `500 response-lost`.
    #[serde(default)]
    pub lose_next_responses: u32,
    /// Added before every charge/lookup/refund call, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
}

/// The shared state of the handlers.
pub struct Service {
    ledger: Mutex<Ledger>,
    faults: Mutex<Faults>,
    /// How long `tok_timeout` stalls before answering `504`.
    stall: Duration,
    admin_token: Option<String>,
    in_flight: Arc<Semaphore>,
    shutdown: CancellationToken,
}

impl Service {
    /// A service with an empty ledger and no faults.
    pub fn new(stall: Duration, admin_token: Option<String>, shutdown: CancellationToken) -> Self {
        Service {
            ledger: Mutex::default(),
            faults: Mutex::default(),
            stall,
            admin_token,
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT_MAX)),
            shutdown,
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // No code panics while holding the lock (the ledger's own asserts aside, which are
        // programmer errors): recover the data rather than poison every later call.
        self.ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits `delay`, or fails with `503` if the service shuts down first.
    async fn pause(&self, delay: Duration) -> Result<(), ApiError> {
        if delay.is_zero() {
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => Ok(()),
            () = self.shutdown.cancelled() => Err(ApiError::ShuttingDown),
        }
    }

    /// Applies the injected latency and `fail_next_calls` before a call.
    async fn before_call(&self) -> Result<(), ApiError> {
        let (latency_ms, fail) = {
            let mut faults = self.faults();
            let fail = faults.fail_next_calls > 0;
            if fail {
                faults.fail_next_calls -= 1;
            }
            (faults.latency_ms, fail)
        };
        self.pause(Duration::from_millis(latency_ms)).await?;
        if fail {
            return Err(ApiError::InjectedFault);
        }
        Ok(())
    }

    /// Whether to lose this call's response (consumes one `lose_next_responses`).
    fn lose_response(&self) -> bool {
        let mut faults = self.faults();
        let lose = faults.lose_next_responses > 0;
        if lose {
            faults.lose_next_responses -= 1;
        }
        lose
    }
}

/// The service's routes.
pub fn routes(service: Arc<Service>) -> Router {
    Router::new()
        .route("/v1/charges", post(charge))
        .route("/v1/charges/{key}", get(lookup))
        .route("/v1/refunds", post(refund))
        .route("/v1/ledger", get(ledger))
        .route("/v1/admin/faults", put(set_faults).get(get_faults).delete(clear_faults))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { ApiError::NotFound("route") })
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&service), limit_in_flight))
        .with_state(service)
}

/// Refuses requests beyond [`IN_FLIGHT_MAX`] at once with `503 overloaded`.
async fn limit_in_flight(
    State(service): State<Arc<Service>>,
    request: Request,
    next: Next,
) -> Response {
    match Arc::clone(&service.in_flight).try_acquire_owned() {
        Ok(_permit) => next.run(request).await,
        Err(_) => ApiError::Overloaded.into_response(),
    }
}

fn check_key(key: &str, what: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > KEY_BYTES_MAX || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::Validation(format!(
            "{what} must be 1..={KEY_BYTES_MAX} printable ASCII characters"
        )));
    }
    Ok(())
}

fn check_money(amount_minor: i64, currency: &str) -> Result<(), ApiError> {
    if !(0..=AMOUNT_MINOR_MAX).contains(&amount_minor) {
        return Err(ApiError::Validation(format!("amount_minor must be 0..={AMOUNT_MINOR_MAX}")));
    }
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ApiError::Validation("currency must be a 3-letter ISO 4217 code".into()));
    }
    Ok(())
}

fn receipt_body(key: &str, receipt: &Receipt) -> serde_json::Value {
    json!({
        "key": key,
        "reference": receipt.reference,
        "amount_minor": receipt.amount_minor,
        "currency": receipt.currency,
    })
}

/// Body of `POST /v1/charges`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChargeRequest {
    /// Idempotency key (the gateway sends the booking id).
    key: String,
    amount_minor: i64,
    currency: String,
    /// Sandbox token, see [`Token`].
    token: String,
}

async fn charge(
    State(service): State<Arc<Service>>,
    body: Result<Json<ChargeRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    check_key(&body.key, "key")?;
    check_money(body.amount_minor, &body.currency)?;
    if body.token.is_empty() || body.token.len() > TOKEN_BYTES_MAX {
        return Err(ApiError::Validation(format!("token must be 1..={TOKEN_BYTES_MAX} bytes")));
    }
    service.before_call().await?;
    let token = Token::parse(&body.token);
    let outcome = service.ledger().charge(&body.key, token, body.amount_minor, &body.currency)?;
    let (receipt, new) = match outcome {
        ChargeOutcome::Charged { receipt, new } => (receipt, new),
        ChargeOutcome::Declined(reason) => return Err(ApiError::Declined(reason)),
        ChargeOutcome::Stall => {
            service.pause(service.stall).await?;
            return Err(ApiError::ProviderTimeout);
        }
        ChargeOutcome::LostResponse(_) => return Err(ApiError::ResponseLost),
        ChargeOutcome::Delayed(receipt, delay) => {
            service.pause(delay).await?;
            (receipt, true)
        }
    };
    if new {
        tracing::info!(key = %body.key, amount_minor = receipt.amount_minor, "charged");
    }
    if service.lose_response() {
        return Err(ApiError::ResponseLost);
    }
    let status = if new { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(receipt_body(&body.key, &receipt))).into_response())
}

async fn lookup(
    State(service): State<Arc<Service>>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(key) = key.map_err(|_| ApiError::NotFound("charge"))?;
    check_key(&key, "key")?;
    service.before_call().await?;
    let receipt = service.ledger().lookup(&key).cloned();
    match receipt {
        Some(receipt) => Ok(Json(receipt_body(&key, &receipt)).into_response()),
        None => Err(ApiError::NotFound("charge")),
    }
}

/// Body of `POST /v1/refunds`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundRequest {
    /// Refund idempotency key (the gateway sends `refund:<booking>`).
    key: String,
    /// Reference of the charge to refund (`ch_<charge key>`).
    charge_ref: String,
    amount_minor: i64,
    currency: String,
}

async fn refund(
    State(service): State<Arc<Service>>,
    body: Result<Json<RefundRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    check_key(&body.key, "key")?;
    check_key(&body.charge_ref, "charge_ref")?;
    check_money(body.amount_minor, &body.currency)?;
    service.before_call().await?;
    let (receipt, new) =
        service.ledger().refund(&body.key, &body.charge_ref, body.amount_minor, &body.currency)?;
    if new {
        tracing::info!(key = %body.key, charge_ref = %body.charge_ref, "refunded");
    }
    if service.lose_response() {
        return Err(ApiError::ResponseLost);
    }
    let status = if new { StatusCode::CREATED } else { StatusCode::OK };
    let mut body_json = receipt_body(&body.key, &receipt);
    body_json["charge_ref"] = json!(body.charge_ref);
    Ok((status, Json(body_json)).into_response())
}

async fn ledger(State(service): State<Arc<Service>>) -> Response {
    // Serialize under the lock: a copy of a full ledger would double its memory for a moment.
    let ledger = service.ledger();
    Json(&*ledger).into_response()
}

fn check_admin(service: &Service, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &service.admin_token else { return Ok(()) };
    let given = headers
        .get("x-marquee-admin-token")
        .ok_or_else(|| ApiError::Unauthorized("missing X-Marquee-Admin-Token header".into()))?;
    let same = given.as_bytes().len() == expected.len()
        && given.as_bytes().iter().zip(expected.as_bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err(ApiError::Forbidden("invalid admin token".into()));
    }
    Ok(())
}

async fn set_faults(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Result<Json<Faults>, JsonRejection>,
) -> Result<Json<Faults>, ApiError> {
    check_admin(&service, &headers)?;
    let Json(faults) = body?;
    if faults.fail_next_calls > FAULT_COUNT_MAX || faults.lose_next_responses > FAULT_COUNT_MAX {
        return Err(ApiError::Validation(format!("fault counts must be 0..={FAULT_COUNT_MAX}")));
    }
    if faults.latency_ms > DELAY_MS_MAX {
        return Err(ApiError::Validation(format!("latency_ms must be 0..={DELAY_MS_MAX}")));
    }
    tracing::warn!(?faults, "fault flags set");
    *service.faults() = faults.clone();
    Ok(Json(faults))
}

async fn get_faults(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
) -> Result<Json<Faults>, ApiError> {
    check_admin(&service, &headers)?;
    let faults = service.faults().clone();
    Ok(Json(faults))
}

async fn clear_faults(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
) -> Result<Json<Faults>, ApiError> {
    check_admin(&service, &headers)?;
    *service.faults() = Faults::default();
    Ok(Json(Faults::default()))
}

/// An error answered to a client, rendered as problem+json.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not valid JSON for the endpoint.
    #[error("{1}")]
    Malformed(StatusCode, String),
    /// The body is over [`BODY_BYTES_MAX`].
    #[error("request body over {BODY_BYTES_MAX} bytes")]
    PayloadTooLarge,
    /// A field is out of its bounds.
    #[error("{0}")]
    Validation(String),
    /// The charge was declined; nothing was charged.
    #[error("{0}")]
    Declined(String),
    /// The ledger refused the call.
    #[error("{0}")]
    Ledger(#[from] LedgerError),
    /// No such resource.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// `tok_timeout`: the provider gave up; nothing was charged.
    #[error("the payment network timed out; nothing was charged")]
    ProviderTimeout,
    /// The call acted but its response was lost (`tok_fail_after_charge` or the fault flag).
    #[error("the response was lost; look the charge up by its key")]
    ResponseLost,
    /// `fail_next_calls`: nothing was done.
    #[error("injected fault; nothing was done")]
    InjectedFault,
    /// Too many requests in flight; nothing was done.
    #[error("too many requests in flight")]
    Overloaded,
    /// The service is shutting down; a delayed call was cut short.
    #[error("shutting down")]
    ShuttingDown,
    /// No admin token.
    #[error("{0}")]
    Unauthorized(String),
    /// Wrong admin token.
    #[error("{0}")]
    Forbidden(String),
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::PayloadTooLarge;
        }
        ApiError::Malformed(r.status(), r.body_text())
    }
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Malformed(status, _) => (*status, "malformed-body"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large"),
            ApiError::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation-error"),
            ApiError::Declined(_) => (StatusCode::PAYMENT_REQUIRED, "card-declined"),
            ApiError::Ledger(LedgerError::KeyReused { .. }) => {
                (StatusCode::CONFLICT, "idempotency-key-reused")
            }
            ApiError::Ledger(LedgerError::ChargeNotFound { .. }) => {
                (StatusCode::NOT_FOUND, "charge-not-found")
            }
            ApiError::Ledger(LedgerError::RefundExceedsCharge { .. }) => {
                (StatusCode::CONFLICT, "refund-exceeds-charge")
            }
            ApiError::Ledger(LedgerError::CurrencyMismatch { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "currency-mismatch")
            }
            ApiError::Ledger(LedgerError::Full) => (StatusCode::SERVICE_UNAVAILABLE, "ledger-full"),
            ApiError::NotFound("charge") => (StatusCode::NOT_FOUND, "charge-not-found"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            ApiError::ProviderTimeout => (StatusCode::GATEWAY_TIMEOUT, "provider-timeout"),
            ApiError::ResponseLost => (StatusCode::INTERNAL_SERVER_ERROR, "response-lost"),
            ApiError::InjectedFault => (StatusCode::SERVICE_UNAVAILABLE, "injected-fault"),
            ApiError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting-down"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug) = self.parts();
        let body = json!({
            "type": format!("https://marquee.dev/problems/{slug}"),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            // The sandbox has no secrets: every message is safe to show.
            "detail": self.to_string(),
        });
        let mut response = (status, Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        response
    }
}
