//! Holds and bookings: the seat map, hold/release, the booking saga entry point and
//! cancellation. Every hold and booking belongs to the authenticated caller; another user's are
//! answered 404, exactly like ones that do not exist.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use proto::command::Query as InvQuery;
use proto::command::{Command, QueryResult, Rejection, Reply};
use proto::ids::{BookingId, HoldId, OwnerId, SeatId, ShowId};
use proto::inventory::{BookingStatus, BookingView, HoldView, SeatSelection};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::AuthUser;
use super::json::JsonBody;
use super::params::{parse_id, request_id};
use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::limits::{IDEMPOTENCY_KEY_BYTES_MAX, PARTY_SIZE_MAX, TTL_MS_MIN};
use crate::state::{AppState, ClientIp};

/// Seat map, hold and booking routes.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(seat_map))
        .routes(routes!(create_hold))
        .routes(routes!(get_hold, release_hold))
        .routes(routes!(create_booking))
        .routes(routes!(get_booking))
        .routes(routes!(cancel_booking))
        .routes(routes!(cancellation_quote))
        .routes(routes!(ticket_qr))
        .routes(routes!(my_bookings))
}

/// A hold as returned by the API.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldBody {
    #[serde(flatten)]
    hold: HoldView,
    /// RFC 3339 form of `expires_at_ms`.
    expires_at: String,
}

impl From<HoldView> for HoldBody {
    fn from(hold: HoldView) -> Self {
        HoldBody { expires_at: rfc3339(hold.expires_at_ms), hold }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SeatMapParams {
    /// `strong` (default): linearizable read from the leader; `fast`: any replica, may lag.
    consistency: Option<String>,
}

/// The seat map of a show: every seat's status, category and price, with a version.
#[utoipa::path(get, path = "/v1/shows/{show_id}/seats", tag = "booking",
    params(("show_id" = u64, Path, description = "The show"), SeatMapParams),
    responses(
        (status = 200, description = "The seat map", body = proto::inventory::SeatMap),
        (status = 404, description = "No such show", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad consistency value", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
async fn seat_map(
    State(state): State<Arc<AppState>>,
    show_id: Result<Path<u64>, PathRejection>,
    params: Result<Query<SeatMapParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(show_id) = show_id.map_err(|_| ApiError::NotFound("show"))?;
    let Query(params) = params?;
    let linearizable = match params.consistency.as_deref() {
        None | Some("strong") => true,
        Some("fast") => false,
        Some(other) => {
            return Err(ApiError::Validation(format!(
                "consistency must be strong or fast, not {other:?}"
            )))
        }
    };
    match state.shards.seat_map_encoded(ShowId(show_id), linearizable).await? {
        Some(body) => Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response()),
        None => Err(ApiError::NotFound("show")),
    }
}

/// Body of `POST /v1/shows/{show_id}/holds`: either `seats`, or `quantity` with `category`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct HoldRequest {
    /// Exact seat ids, e.g. `["C7", "C8"]` (all or nothing), 1..=10.
    seats: Option<Vec<String>>,
    /// Party size for best-available, 1..=10.
    quantity: Option<u32>,
    /// Seat category for best-available.
    category: Option<String>,
    /// Hold lifetime in ms: 1 s..=`--hold-ttl-max-ms` (default 15 minutes); default: the
    /// cluster's (10 minutes).
    ttl_ms: Option<u64>,
}

/// Holds seats for the caller until `expires_at`. One account may hold at most
/// `--hold-seats-per-account-max` seats (default 10) of a show at once, in at most two holds,
/// and create holds at a bounded rate (per account and per client IP).
#[utoipa::path(post, path = "/v1/shows/{show_id}/holds", tag = "booking",
    security(("bearer" = [])),
    params(("show_id" = u64, Path, description = "The show")),
    request_body = HoldRequest,
    responses(
        (status = 201, description = "Held", body = HoldBody),
        (status = 401, description = "Not signed in", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such show", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Seats unavailable (listed), not enough seats, too many holds, too many seats held (`too-many-seats-held`), or show cancelled", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid party, unknown seats or category, ttl_ms over the caller's cap", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited (holds per account or per client IP)", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
async fn create_hold(
    State(state): State<Arc<AppState>>,
    Extension(ip): Extension<ClientIp>,
    user: AuthUser,
    show_id: Result<Path<u64>, PathRejection>,
    body: Result<JsonBody<HoldRequest>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    let Path(show_id) = show_id.map_err(|_| ApiError::NotFound("show"))?;
    let JsonBody(body) = body?;
    let selection = match (body.seats, body.quantity, body.category) {
        (Some(seats), None, None) => {
            if seats.is_empty() || seats.len() > PARTY_SIZE_MAX {
                return Err(ApiError::Validation(format!(
                    "seats must list 1..={PARTY_SIZE_MAX} seat ids"
                )));
            }
            if seats.iter().any(|s| s.is_empty() || s.len() > 16) {
                return Err(ApiError::Validation("seat ids are 1..=16 characters".into()));
            }
            SeatSelection::Seats(seats.into_iter().map(SeatId).collect())
        }
        (None, Some(quantity), Some(category)) => {
            if quantity == 0 || quantity as usize > PARTY_SIZE_MAX {
                return Err(ApiError::Validation(format!("quantity must be 1..={PARTY_SIZE_MAX}")));
            }
            if category.is_empty() || category.len() > 200 {
                return Err(ApiError::Validation("category must be 1..=200 characters".into()));
            }
            SeatSelection::BestAvailable { quantity, category }
        }
        _ => {
            return Err(ApiError::Validation(
                "give either `seats` (a list of seat ids) or `quantity` with `category`".into(),
            ))
        }
    };
    // A short cap, so seats cannot be taken out of sale for long (docs/api.md, "Limits").
    let ttl_max = state.holds.ttl_max_ms;
    if let Some(ttl) = body.ttl_ms {
        if !(TTL_MS_MIN..=ttl_max).contains(&ttl) {
            return Err(ApiError::Validation(format!("ttl_ms must be {TTL_MS_MIN}..={ttl_max}")));
        }
    }
    state.check_hold_rate(user.user_id, ip)?;
    let command = Command::Hold {
        show_id: ShowId(show_id),
        owner: user.owner().clone(),
        selection,
        ttl_ms: body.ttl_ms,
        owner_seats_max: Some(state.holds.seats_per_account_max),
    };
    match state.shards.propose(request_id(), command).await {
        Ok(Reply::Held { hold }) => {
            state.metrics.holds.with_label_values(&["created"]).inc();
            Ok((StatusCode::CREATED, Json(HoldBody::from(hold))))
        }
        Ok(other) => Err(ApiError::Internal(format!("unexpected reply {other:?}"))),
        Err(e) => {
            if let ApiError::Rejected(Rejection::TooManySeatsHeld { .. }) = e {
                state.metrics.holds.with_label_values(&["refused_seat_limit"]).inc();
            }
            Err(e)
        }
    }
}

async fn load_hold(
    state: &AppState,
    hold_id: HoldId,
    owner: &OwnerId,
) -> Result<HoldView, ApiError> {
    match state.shards.query(InvQuery::Hold { hold_id }, true).await? {
        QueryResult::Hold { hold } if &hold.owner == owner => Ok(hold),
        QueryResult::Hold { .. } | QueryResult::NotFound => Err(ApiError::NotFound("hold")),
        other => Err(ApiError::Internal(format!("unexpected answer {other:?}"))),
    }
}

/// One of the caller's holds.
#[utoipa::path(get, path = "/v1/holds/{hold_id}", tag = "booking", security(("bearer" = [])),
    params(("hold_id" = String, Path, description = "The hold, `{show}-{seq}`")),
    responses(
        (status = 200, description = "The hold", body = HoldBody),
        (status = 401, description = "Not signed in", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such hold of the caller", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
async fn get_hold(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    hold_id: Result<Path<String>, PathRejection>,
) -> Result<Json<HoldBody>, ApiError> {
    // An id that is not even UTF-8 names nothing either.
    let Path(hold_id) = hold_id.map_err(|_| ApiError::NotFound("hold"))?;
    let hold_id: HoldId = parse_id(&hold_id, "hold")?;
    Ok(Json(load_hold(&state, hold_id, user.owner()).await?.into()))
}

/// Releases one of the caller's active holds.
#[utoipa::path(delete, path = "/v1/holds/{hold_id}", tag = "booking", security(("bearer" = [])),
    params(("hold_id" = String, Path, description = "The hold")),
    responses(
        (status = 200, description = "Released", body = HoldBody),
        (status = 401, description = "Not signed in", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such hold of the caller", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Hold not active", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 410, description = "Hold expired", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
async fn release_hold(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    hold_id: Result<Path<String>, PathRejection>,
) -> Result<Json<HoldBody>, ApiError> {
    // An id that is not even UTF-8 names nothing either.
    let Path(hold_id) = hold_id.map_err(|_| ApiError::NotFound("hold"))?;
    let hold_id: HoldId = parse_id(&hold_id, "hold")?;
    match state
        .shards
        .propose(request_id(), Command::Release { hold_id, owner: user.owner().clone() })
        .await?
    {
        Reply::Released { hold } => {
            state.metrics.holds.with_label_values(&["released"]).inc();
            Ok(Json(hold.into()))
        }
        other => Err(ApiError::Internal(format!("unexpected reply {other:?}"))),
    }
}

/// Body of `POST /v1/bookings`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingRequest {
    /// The hold to pay for.
    pub hold_id: String,
    /// Payment method token (sandbox: see docs/api.md).
    pub payment_token: String,
}

/// Pays for a hold and confirms it (the booking saga). Replaying the same `Idempotency-Key`
/// returns the first outcome and never charges twice.
#[utoipa::path(post, path = "/v1/bookings", tag = "booking", security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, description = "1..=64 printable ASCII characters, unique per booking attempt")),
    request_body = BookingRequest,
    responses(
        (status = 201, description = "Confirmed, with a ticket code", body = proto::inventory::BookingView),
        (status = 401, description = "Not signed in", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 402, description = "Payment declined; nothing charged", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such hold of the caller", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Hold not active, or checkout expired and the payment was refunded", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 410, description = "Hold expired", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or bad Idempotency-Key, key reused with another body", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 502, description = "Payment provider unavailable; nothing charged", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
async fn create_booking(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    headers: HeaderMap,
    body: Result<JsonBody<BookingRequest>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    let key = headers
        .get("idempotency-key")
        .ok_or_else(|| ApiError::Validation("the Idempotency-Key header is required".into()))?
        .to_str()
        .map_err(|_| ApiError::Validation("Idempotency-Key must be ASCII".into()))?
        .to_owned();
    if key.is_empty()
        || key.len() > IDEMPOTENCY_KEY_BYTES_MAX
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::Validation(format!(
            "Idempotency-Key must be 1..={IDEMPOTENCY_KEY_BYTES_MAX} printable ASCII characters"
        )));
    }
    let JsonBody(body) = body?;
    let hold_id: HoldId = body.hold_id.parse().map_err(|_| ApiError::NotFound("hold"))?;
    if body.payment_token.is_empty() || body.payment_token.len() > 200 {
        return Err(ApiError::Validation("payment_token must be 1..=200 characters".into()));
    }
    let booking = state.saga.book(user.owner(), &key, hold_id, &body.payment_token).await?;
    Ok((StatusCode::CREATED, Json(booking)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct MyBookingsParams {
    /// How many of the most recent bookings, 1..=100 (default 20).
    limit: Option<u32>,
}

/// The caller's bookings.
#[derive(Debug, Serialize, ToSchema)]
struct MyBookings {
    /// Most recent first (by checkout time), any status.
    bookings: Vec<BookingView>,
}

/// The caller's most recent bookings across every show. Each shard keeps an index of its
/// bookings by owner; the gateway asks every shard (linearizable reads, so a booking just made
/// is listed) and merges. A shard that cannot answer fails the request (503) rather than
/// silently leaving bookings out.
#[utoipa::path(get, path = "/v1/me/bookings", tag = "booking", security(("bearer" = [])),
    params(MyBookingsParams),
    responses(
        (status = 200, description = "The caller's bookings", body = MyBookings),
        (status = 401, description = "Not signed in", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "limit outside 1..=100", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 503, description = "A shard did not answer; retry", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
async fn my_bookings(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    params: Result<Query<MyBookingsParams>, QueryRejection>,
) -> Result<Json<MyBookings>, ApiError> {
    let Query(params) = params?;
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::Validation("limit must be 1..=100".into()));
    }
    let shards = state.shards.shard_groups().await?;
    let mut reads = tokio::task::JoinSet::new();
    for group in shards {
        let (state, owner) = (Arc::clone(&state), user.owner().clone());
        reads.spawn(async move {
            let query = InvQuery::OwnerBookings { owner, limit };
            state.shards.query_group(group, &query, true).await
        });
    }
    let mut bookings = Vec::new();
    while let Some(read) = reads.join_next().await {
        match read.map_err(|e| ApiError::Internal(e.to_string()))?? {
            QueryResult::Bookings { bookings: some } => bookings.extend(some),
            other => return Err(ApiError::Internal(format!("unexpected answer {other:?}"))),
        }
    }
    bookings.sort_by_key(|b| std::cmp::Reverse((b.created_at_ms, b.booking_id)));
    bookings.truncate(limit as usize);
    Ok(Json(MyBookings { bookings }))
}

/// One of the caller's bookings.
#[utoipa::path(get, path = "/v1/bookings/{booking_id}", tag = "booking", security(("bearer" = [])),
    params(("booking_id" = String, Path, description = "The booking, `{show}-{seq}`")),
    responses(
        (status = 200, description = "The booking", body = proto::inventory::BookingView),
        (status = 401, description = "Not signed in", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such booking of the caller", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
async fn get_booking(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    booking_id: Result<Path<String>, PathRejection>,
) -> Result<Json<BookingView>, ApiError> {
    // An id that is not even UTF-8 names nothing either.
    let Path(booking_id) = booking_id.map_err(|_| ApiError::NotFound("booking"))?;
    let booking_id: BookingId = parse_id(&booking_id, "booking")?;
    Ok(Json(state.shards.load_booking(booking_id, user.owner()).await?))
}

/// Cancels one of the caller's confirmed bookings under the cancellation policy: refunds, then
/// frees the seats.
#[utoipa::path(post, path = "/v1/bookings/{booking_id}/cancel", tag = "booking", security(("bearer" = [])),
    params(("booking_id" = String, Path, description = "The booking")),
    responses(
        (status = 200, description = "Cancelled (or already cancelled)", body = proto::inventory::BookingView),
        (status = 401, description = "Not signed in", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such booking of the caller", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not confirmed, or the cancellation cutoff has passed", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 502, description = "Refund could not be issued; retry", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
async fn cancel_booking(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    booking_id: Result<Path<String>, PathRejection>,
) -> Result<Json<BookingView>, ApiError> {
    // An id that is not even UTF-8 names nothing either.
    let Path(booking_id) = booking_id.map_err(|_| ApiError::NotFound("booking"))?;
    let booking_id: BookingId = parse_id(&booking_id, "booking")?;
    Ok(Json(state.saga.cancel(user.owner(), booking_id).await?))
}

/// What cancelling a booking now would refund (`GET /v1/bookings/{booking_id}/cancellation`).
#[derive(Debug, Serialize, ToSchema)]
struct CancellationQuote {
    /// The booking.
    booking_id: String,
    /// Whether `POST /v1/bookings/{booking_id}/cancel` would be accepted now.
    cancellable: bool,
    /// What it would refund now, minor units (0 when not cancellable).
    refund_minor: i64,
    /// What was paid, minor units.
    amount_minor: i64,
    /// Currency of both amounts.
    currency: String,
    /// Last moment a cancellation is accepted (Unix ms; the show's start less the cutoff).
    cancel_deadline_ms: u64,
    /// RFC 3339 form of `cancel_deadline_ms`.
    cancel_deadline: String,
    /// Why it cannot be cancelled, in plain words (absent when it can).
    reason: Option<String>,
}

/// What cancelling one of the caller's bookings would refund now under the cancellation
/// policy, shown before the person confirms. Changes nothing.
#[utoipa::path(get, path = "/v1/bookings/{booking_id}/cancellation", tag = "booking", security(("bearer" = [])),
    params(("booking_id" = String, Path, description = "The booking")),
    responses(
        (status = 200, description = "The refund a cancellation now would give", body = CancellationQuote),
        (status = 401, description = "Not signed in", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such booking of the caller", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
async fn cancellation_quote(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    booking_id: Result<Path<String>, PathRejection>,
) -> Result<Json<CancellationQuote>, ApiError> {
    // An id that is not even UTF-8 names nothing either.
    let Path(booking_id) = booking_id.map_err(|_| ApiError::NotFound("booking"))?;
    let booking_id: BookingId = parse_id(&booking_id, "booking")?;
    let (booking, refund_minor, deadline_ms) =
        state.saga.cancel_quote(user.owner(), booking_id).await?;
    let reason = if booking.status != BookingStatus::Confirmed {
        Some(format!(
            "only confirmed bookings can be cancelled; this one is {}",
            booking.status.as_str()
        ))
    } else if crate::clock::wall_clock_ms() > deadline_ms {
        Some(format!(
            "cancellations closed at {} (shortly before the show starts)",
            rfc3339(deadline_ms)
        ))
    } else {
        None
    };
    Ok(Json(CancellationQuote {
        booking_id: booking.booking_id.to_string(),
        cancellable: reason.is_none(),
        refund_minor: if reason.is_none() { refund_minor } else { 0 },
        amount_minor: booking.amount.amount_minor,
        currency: booking.amount.currency,
        cancel_deadline_ms: deadline_ms,
        cancel_deadline: rfc3339(deadline_ms),
        reason,
    }))
}

/// The ticket code of one of the caller's confirmed bookings as a QR code (SVG), drawn here so
/// the page needs no outside service.
#[utoipa::path(get, path = "/v1/bookings/{booking_id}/qr", tag = "booking", security(("bearer" = [])),
    params(("booking_id" = String, Path, description = "The booking")),
    responses(
        (status = 200, description = "The ticket code as a QR code", body = String, content_type = "image/svg+xml"),
        (status = 401, description = "Not signed in", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such booking of the caller", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not confirmed: no ticket code", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
async fn ticket_qr(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    booking_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    // An id that is not even UTF-8 names nothing either.
    let Path(booking_id) = booking_id.map_err(|_| ApiError::NotFound("booking"))?;
    let booking_id: BookingId = parse_id(&booking_id, "booking")?;
    let booking = state.shards.load_booking(booking_id, user.owner()).await?;
    let code = match (&booking.status, &booking.ticket_code) {
        (BookingStatus::Confirmed, Some(code)) => code,
        (status, _) => {
            return Err(ApiError::Rejected(proto::command::Rejection::BookingWrongState {
                status: *status,
            }))
        }
    };
    let svg = qr_svg(code)?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "image/svg+xml"),
            (axum::http::header::CACHE_CONTROL, "private, no-store"),
        ],
        svg,
    )
        .into_response())
}

/// `text` as a QR code in SVG (error correction M, a quiet zone of four modules).
fn qr_svg(text: &str) -> Result<String, ApiError> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| ApiError::Internal(format!("QR code of a ticket: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_ticket_code_renders_as_an_svg_qr_code() {
        let svg = super::qr_svg("T-0123456789ABCDEF").expect("renders");
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{svg}");
        assert!(svg.contains("<path") || svg.contains("<rect"));
    }
}
