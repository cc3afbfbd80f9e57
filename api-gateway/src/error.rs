//! The gateway's one error type, used by every layer: shard calls, workflows and handlers.
//! Every failure leaves the gateway as `application/problem+json` (RFC 9457) with a stable
//! `type`; domain rejections map to client errors in one `match`; 5xx bodies never carry
//! internal text (the cause is logged once, here). The id of the request being served, which
//! error bodies quote, lives here too ([`REQUEST_ID`]), so that rendering an error needs
//! nothing from the HTTP layer above.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use proto::command::Rejection;
use proto::ids::SeatId;
use serde_json::{json, Map, Value};

use client::ClusterError;

tokio::task_local! {
    /// The id of the request being served, for error bodies (see [`current_request_id`]); the
    /// HTTP layer's request observer scopes each request's handler in it.
    pub static REQUEST_ID: String;
}

/// The id of the request this task serves, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Input failed validation.
    #[error("{0}")]
    Validation(String),
    /// The body is not valid JSON for the endpoint (400 syntax, 415 content type, 422 types).
    #[error("{1}")]
    MalformedBody(StatusCode, String),
    /// The body is over the size limit.
    #[error("request body over {0} bytes")]
    PayloadTooLarge(usize),
    /// No or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource (or not yours).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A WebSocket endpoint was called without a valid upgrade handshake.
    #[error("{0}")]
    UpgradeRequired(String),
    /// The path exists, but not with this method.
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// The query string has an unknown parameter or a value of the wrong type.
    #[error("{0}")]
    MalformedQuery(String),
    /// A deterministic refusal from the inventory.
    #[error("{0}")]
    Rejected(Rejection),
    /// The payment was declined; nothing was charged. `hold_kept`: the hold is still active
    /// (same seats, same expiry), so the customer may pay again with another card.
    #[error("{reason}")]
    PaymentDeclined {
        /// The provider's reason.
        reason: String,
        /// Whether the hold is still active.
        hold_kept: bool,
    },
    /// The checkout expired before the payment completed; the charge was refunded.
    #[error("checkout expired; payment refunded")]
    CheckoutExpiredRefunded,
    /// The payment provider did not answer; nothing was charged.
    #[error("payment provider unavailable")]
    PaymentUnavailable,
    /// The client is over its rate limit; it may retry after the given seconds.
    #[error("rate limit exceeded; retry in {0} s")]
    RateLimited(u64),
    /// The cluster could not be reached in time.
    #[error("service unavailable")]
    Unavailable(String),
    /// Search is off on this gateway or its index is unreachable (`detail`: what the client
    /// is told; `cause`: what is logged).
    #[error("search unavailable")]
    SearchUnavailable { detail: &'static str, cause: String },
    /// A bug or unexpected state.
    #[error("internal error")]
    Internal(String),
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Unavailable(cause) => ApiError::Unavailable(cause),
            ClusterError::OutcomeUnknown(cause) => {
                ApiError::Unavailable(format!("outcome unknown: {cause}"))
            }
            ClusterError::Invalid(cause) => ApiError::Internal(cause),
            ClusterError::UnknownShow(_) => ApiError::NotFound("show"),
            ClusterError::Refused(rejection) => ApiError::Rejected(rejection),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        ApiError::Rejected(r)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::PayloadTooLarge(crate::limits::BODY_BYTES_MAX);
        }
        match r {
            JsonRejection::MissingJsonContentType(_) => ApiError::MalformedBody(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected Content-Type: application/json".into(),
            ),
            other => ApiError::MalformedBody(other.status(), other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::Validation(r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::MalformedQuery(r.body_text())
    }
}

fn seats(seats: &[SeatId]) -> Value {
    Value::Array(seats.iter().map(|s| Value::String(s.0.clone())).collect())
}

impl ApiError {
    /// Status, stable type slug, title, and extension members.
    fn parts(&self) -> (StatusCode, &'static str, &'static str, Map<String, Value>) {
        use Rejection as R;
        let mut ext = Map::new();
        let (status, slug, title) = match self {
            ApiError::Validation(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "validation-error", "Invalid request")
            }
            ApiError::MalformedBody(status, _) => {
                (*status, "malformed-body", "Malformed request body")
            }
            ApiError::PayloadTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Request body too large")
            }
            ApiError::Unauthorized(_) => {
                (StatusCode::UNAUTHORIZED, "unauthorized", "Authentication required")
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Not allowed"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::UpgradeRequired(_) => {
                (StatusCode::UPGRADE_REQUIRED, "upgrade-required", "WebSocket upgrade required")
            }
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed")
            }
            ApiError::MalformedQuery(_) => {
                (StatusCode::BAD_REQUEST, "malformed-query", "Malformed query string")
            }
            ApiError::PaymentDeclined { hold_kept, .. } => {
                ext.insert("hold_kept".into(), json!(hold_kept));
                (StatusCode::PAYMENT_REQUIRED, "payment-declined", "Payment declined")
            }
            ApiError::CheckoutExpiredRefunded => {
                (StatusCode::CONFLICT, "checkout-expired", "Checkout expired, payment refunded")
            }
            ApiError::PaymentUnavailable => {
                ext.insert("retry_after_s".into(), json!(5));
                (StatusCode::BAD_GATEWAY, "payment-unavailable", "Payment provider unavailable")
            }
            ApiError::RateLimited(seconds) => {
                ext.insert("retry_after_s".into(), json!(seconds));
                (StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests")
            }
            ApiError::Unavailable(_) | ApiError::SearchUnavailable { .. } => {
                ext.insert("retry_after_s".into(), json!(1));
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable")
            }
            ApiError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error")
            }
            ApiError::Rejected(rejection) => match rejection {
                R::ShowNotFound { .. } => {
                    (StatusCode::NOT_FOUND, "show-not-found", "Show not found")
                }
                R::ShowExists { .. } => {
                    (StatusCode::CONFLICT, "show-exists", "Show already exists")
                }
                R::InvalidLayout { .. } => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid-layout", "Invalid seat layout")
                }
                R::UnknownSeats { seats: s } => {
                    ext.insert("unknown_seats".into(), seats(s));
                    (StatusCode::UNPROCESSABLE_ENTITY, "unknown-seats", "Unknown seats")
                }
                R::SeatsUnavailable { seats: s } => {
                    ext.insert("unavailable_seats".into(), seats(s));
                    (StatusCode::CONFLICT, "seats-unavailable", "Seats unavailable")
                }
                R::NotEnoughSeats { available, .. } => {
                    ext.insert("available".into(), json!(available));
                    (StatusCode::CONFLICT, "not-enough-seats", "Not enough seats available")
                }
                R::UnknownCategory { .. } => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "unknown-category", "Unknown seat category")
                }
                R::InvalidParty { party_size_max, .. } => {
                    ext.insert("party_size_max".into(), json!(party_size_max));
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid-party", "Invalid party")
                }
                R::TooManyHolds { holds_per_owner_max } => {
                    ext.insert("holds_per_owner_max".into(), json!(holds_per_owner_max));
                    (StatusCode::CONFLICT, "too-many-holds", "Too many active holds")
                }
                R::TooManySeatsHeld { seats_per_owner_max, held } => {
                    ext.insert("seats_per_account_max".into(), json!(seats_per_owner_max));
                    ext.insert("seats_held".into(), json!(held));
                    (
                        StatusCode::CONFLICT,
                        "too-many-seats-held",
                        "Too many seats held on this show",
                    )
                }
                R::HoldNotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
                R::HoldExpired => (StatusCode::GONE, "hold-expired", "Hold expired"),
                R::HoldNotActive { .. } => {
                    (StatusCode::CONFLICT, "hold-not-active", "Hold is not active")
                }
                // Someone else's hold or booking is indistinguishable from a missing one.
                R::NotOwner => (StatusCode::NOT_FOUND, "not-found", "Not found"),
                R::BookingNotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
                R::BookingWrongState { .. } => (
                    StatusCode::CONFLICT,
                    "booking-wrong-state",
                    "Booking is not in a state that allows this",
                ),
                R::RequestIdReused => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency-key-reused",
                    "Idempotency-Key reused with a different request",
                ),
                R::ShowCancelled { .. } => {
                    (StatusCode::CONFLICT, "show-cancelled", "The show was cancelled")
                }
                R::CancellationClosed { deadline_ms } => {
                    ext.insert("cancel_deadline_ms".into(), json!(deadline_ms));
                    (StatusCode::CONFLICT, "cancellation-closed", "Cancellation window closed")
                }
                R::InvalidRefund { .. } => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid-refund", "Invalid refund")
                }
                R::CatalogNotFound { kind, .. } => {
                    ext.insert("resource".into(), json!(kind));
                    (StatusCode::NOT_FOUND, "not-found", "Not found")
                }
                R::CatalogInvalid { field, .. } => {
                    ext.insert("field".into(), json!(field));
                    (StatusCode::UNPROCESSABLE_ENTITY, "validation-error", "Invalid request")
                }
                R::CatalogConflict { .. } => (StatusCode::CONFLICT, "conflict", "Conflict"),
                R::EmailTaken => (StatusCode::CONFLICT, "email-taken", "Email already registered"),
                R::RefreshTokenInvalid => (
                    StatusCode::UNAUTHORIZED,
                    "invalid-refresh-token",
                    "Refresh token invalid, expired or revoked",
                ),
                R::RefreshTokenReused => (
                    StatusCode::UNAUTHORIZED,
                    "refresh-token-reused",
                    "Refresh token already used; its session was revoked",
                ),
                // Placement and routing answers the gateway never provokes on a client's
                // behalf: reaching one is a gateway or cluster bug.
                R::WrongGroup
                | R::NodeNotFound { .. }
                | R::GroupNotFound { .. }
                | R::InvalidPlacement { .. }
                | R::NestedBatch => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error")
                }
            },
        };
        (status, slug, title, ext)
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let upgrade = matches!(self, ApiError::UpgradeRequired(_));
        let (status, slug, title, ext) = self.parts();
        let detail = if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
            match &self {
                ApiError::Unavailable(_) => {
                    "the booking cluster could not be reached in time; retry shortly".to_owned()
                }
                ApiError::SearchUnavailable { detail, .. } => (*detail).to_owned(),
                ApiError::PaymentUnavailable => {
                    "the payment provider did not answer; nothing was charged, retry shortly"
                        .to_owned()
                }
                _ => "an internal error occurred; it has been logged".to_owned(),
            }
        } else {
            match &self {
                ApiError::Rejected(r) => r.to_string(),
                other => other.to_string(),
            }
        };
        let mut body = Map::new();
        body.insert("type".into(), json!(format!("https://marquee.dev/problems/{slug}")));
        body.insert("title".into(), json!(title));
        body.insert("status".into(), json!(status.as_u16()));
        body.insert("detail".into(), json!(detail));
        if let Some(id) = current_request_id() {
            body.insert("request_id".into(), json!(id));
        }
        let retry_after = ext.get("retry_after_s").and_then(Value::as_u64);
        body.extend(ext);
        let mut response = (status, axum::Json(Value::Object(body))).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if upgrade {
            // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
            let headers = response.headers_mut();
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        }
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
