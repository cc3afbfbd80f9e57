//! The public REST API (v1): routes, request validation and JSON shapes.
//!
//! Handlers validate at the edge (sizes, formats, ids), then call the inventory through the
//! [`ClusterClient`](crate::cluster::ClusterClient) or run the booking saga. Identity is the
//! temporary `X-Marquee-User` header until accounts exist; admin endpoints need the
//! `X-Marquee-Admin-Token` header.

pub mod error;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use proto::inventory::{
    BookingId, BookingView, Command, HoldId, HoldView, Layout, OwnerId, Proposal,
    Query as InvQuery, QueryResult, Rejection, Reply, SeatId, SeatSelection, ShowId,
};
use proto::meta::{MetaCommand, MetaReply};
use proto::META_GROUP;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cluster::ClusterError;
use crate::limits::{
    BODY_BYTES_MAX, IDEMPOTENCY_KEY_BYTES_MAX, OWNER_BYTES_MAX, PARTY_SIZE_MAX, SHOW_ID_MAX,
    TTL_MS_MAX, TTL_MS_MIN,
};
use crate::saga;
use crate::AppState;
use error::ApiError;

/// The gateway's routes.
pub fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/admin/shows", post(create_show))
        .route("/v1/admin/shows/{show_id}/bookings", get(show_bookings))
        .route("/v1/shows/{show_id}/seats", get(seat_map))
        .route("/v1/shows/{show_id}/holds", post(create_hold))
        .route("/v1/holds/{hold_id}", get(get_hold).delete(release_hold))
        .route("/v1/bookings", post(create_booking))
        .route("/v1/bookings/{booking_id}", get(get_booking))
        .route("/v1/bookings/{booking_id}/cancel", post(cancel_booking))
        .route("/v1/sandbox/payments", get(sandbox_ledger))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::NotFound("route") })
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), observe))
        .with_state(state)
}

/// Records request count and latency per route template and status.
async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    state.metrics.requests.with_label_values(&[&method, &route, &status]).inc();
    state
        .metrics
        .latency
        .with_label_values(&[&method, &route])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The caller, from the temporary `X-Marquee-User` header.
pub struct Owner(pub OwnerId);

impl<S: Send + Sync> FromRequestParts<S> for Owner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let value = parts
            .headers
            .get("x-marquee-user")
            .ok_or_else(|| ApiError::Unauthorized("missing X-Marquee-User header".into()))?;
        let value = value
            .to_str()
            .map_err(|_| ApiError::Unauthorized("X-Marquee-User must be ASCII".into()))?;
        let valid = !value.is_empty()
            && value.len() <= OWNER_BYTES_MAX
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-@".contains(&b));
        if !valid {
            return Err(ApiError::Unauthorized(format!(
                "X-Marquee-User must be 1..={OWNER_BYTES_MAX} characters of [A-Za-z0-9_.-@]"
            )));
        }
        Ok(Owner(OwnerId(value.to_owned())))
    }
}

/// An admin, proven by the `X-Marquee-Admin-Token` header.
pub struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get("x-marquee-admin-token")
            .ok_or_else(|| ApiError::Unauthorized("missing X-Marquee-Admin-Token header".into()))?;
        if !constant_time_eq(token.as_bytes(), state.admin_token.as_bytes()) {
            return Err(ApiError::Forbidden("invalid admin token".into()));
        }
        Ok(Admin)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn request_id() -> String {
    format!("rq-{:032x}", rand::rng().random::<u128>())
}

fn parse_id<T: std::str::FromStr>(raw: &str, what: &'static str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound(what))
}

/// Proposes a command with a request id to the shard that owns its show and returns its
/// successful reply.
pub(crate) async fn propose(
    state: &AppState,
    request_id: String,
    command: Command,
) -> Result<Reply, ApiError> {
    let show = command
        .show_id()
        .ok_or_else(|| ApiError::Internal(format!("{} names no show", command.kind())))?;
    let group = match state.cluster.locate(show).await {
        Ok(group) => group,
        // No shard has the show, so nothing the command names exists: answer as a shard would.
        Err(ClusterError::UnknownShow(_)) => {
            return Err(ApiError::Rejected(match command {
                Command::Release { .. } | Command::BeginCheckout { .. } => Rejection::HoldNotFound,
                Command::Confirm { .. }
                | Command::FailCheckout { .. }
                | Command::CancelBooking { .. } => Rejection::BookingNotFound,
                _ => Rejection::ShowNotFound { show_id: show },
            }))
        }
        Err(e) => return Err(e.into()),
    };
    let proposal = Proposal { request_id: Some(request_id), command };
    Ok(state.cluster.propose(group, &proposal).await??)
}

/// Reads from the shard that owns the query's show; `linearizable` uses a read index.
pub(crate) async fn query(
    state: &AppState,
    query: InvQuery,
    linearizable: bool,
) -> Result<QueryResult, ApiError> {
    let show = query.show_id().ok_or_else(|| ApiError::Internal("query names no show".into()))?;
    let group = match state.cluster.locate(show).await {
        Ok(group) => group,
        // An unplaced show has no holds, bookings or seats: the same answer a shard gives.
        Err(ClusterError::UnknownShow(_)) => return Ok(QueryResult::NotFound),
        Err(e) => return Err(e.into()),
    };
    Ok(state.cluster.query(group, &query, linearizable).await?)
}

/// Places a new show on a shard (meta group) and creates it there. If the shard refuses the
/// show (bad layout, id taken), the placement is withdrawn again unless the show exists.
async fn place_and_create(
    state: &AppState,
    show_id: ShowId,
    command: Command,
) -> Result<Reply, ApiError> {
    let seats = match &command {
        Command::CreateShow { layout, .. } => {
            layout.rows.iter().fold(0u32, |sum, row| sum.saturating_add(row.seats))
        }
        _ => 0,
    };
    let place = Proposal {
        request_id: None,
        command: Command::Meta(MetaCommand::PlaceShow { show_id, seats }),
    };
    let group = match state.cluster.propose(META_GROUP, &place).await?? {
        Reply::Meta(MetaReply::Placed { group, .. }) => group,
        other => return Err(ApiError::Internal(format!("unexpected placement reply {other:?}"))),
    };
    state.cluster.remember_show(show_id, group);
    let proposal = Proposal { request_id: Some(request_id()), command };
    let outcome = state.cluster.propose(group, &proposal).await?;
    if let Err(rejection) = &outcome {
        if !matches!(rejection, Rejection::ShowExists { .. }) {
            let unplace = Proposal {
                request_id: None,
                command: Command::Meta(MetaCommand::UnplaceShow { show_id, seats }),
            };
            if let Err(e) = state.cluster.propose(META_GROUP, &unplace).await {
                tracing::warn!(show = show_id.0, error = %e, "could not withdraw a placement");
            }
        }
    }
    Ok(outcome?)
}

/// A hold as returned by the API.
#[derive(Debug, Serialize)]
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

/// Unix milliseconds as an RFC 3339 UTC timestamp.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms % 1000
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateShowBody {
    show_id: Option<u64>,
    title: String,
    starts_at_ms: u64,
    layout: Layout,
}

async fn create_show(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    body: Result<Json<CreateShowBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body?;
    let show_id = match body.show_id {
        Some(0) => return Err(ApiError::Validation("show_id must be positive".into())),
        Some(id) if id > SHOW_ID_MAX => {
            return Err(ApiError::Validation(format!("show_id must be at most {SHOW_ID_MAX}")))
        }
        Some(id) => id,
        // Random ids within JavaScript's safe integer range, chosen by the proposer.
        None => rand::rng().random_range(1..=SHOW_ID_MAX),
    };
    let command = Command::CreateShow {
        show_id: ShowId(show_id),
        title: body.title,
        starts_at_ms: body.starts_at_ms,
        layout: body.layout,
    };
    match place_and_create(&state, ShowId(show_id), command).await? {
        Reply::ShowCreated { show_id, capacity } => {
            Ok((StatusCode::CREATED, Json(json!({ "show_id": show_id, "capacity": capacity }))))
        }
        other => Err(ApiError::Internal(format!("unexpected reply {other:?}"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeatMapParams {
    /// `strong` (default): linearizable read from the leader; `fast`: any replica, may lag.
    consistency: Option<String>,
}

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
    match query(&state, InvQuery::SeatMap { show_id: ShowId(show_id) }, linearizable).await? {
        QueryResult::SeatMap { seat_map } => Ok(Json(seat_map).into_response()),
        QueryResult::NotFound => Err(ApiError::NotFound("show")),
        other => Err(ApiError::Internal(format!("unexpected answer {other:?}"))),
    }
}

async fn show_bookings(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    show_id: Result<Path<u64>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(show_id) = show_id.map_err(|_| ApiError::NotFound("show"))?;
    match query(&state, InvQuery::ShowBookings { show_id: ShowId(show_id) }, true).await? {
        QueryResult::Bookings { bookings } => {
            Ok(Json(json!({ "bookings": bookings })).into_response())
        }
        QueryResult::NotFound => Err(ApiError::NotFound("show")),
        other => Err(ApiError::Internal(format!("unexpected answer {other:?}"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldRequest {
    seats: Option<Vec<String>>,
    quantity: Option<u32>,
    category: Option<String>,
    ttl_ms: Option<u64>,
}

async fn create_hold(
    State(state): State<Arc<AppState>>,
    Owner(owner): Owner,
    show_id: Result<Path<u64>, PathRejection>,
    body: Result<Json<HoldRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Path(show_id) = show_id.map_err(|_| ApiError::NotFound("show"))?;
    let Json(body) = body?;
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
    if let Some(ttl) = body.ttl_ms {
        if !(TTL_MS_MIN..=TTL_MS_MAX).contains(&ttl) {
            return Err(ApiError::Validation(format!(
                "ttl_ms must be {TTL_MS_MIN}..={TTL_MS_MAX}"
            )));
        }
    }
    let command = Command::Hold { show_id: ShowId(show_id), owner, selection, ttl_ms: body.ttl_ms };
    match propose(&state, request_id(), command).await? {
        Reply::Held { hold } => {
            state.metrics.holds.with_label_values(&["created"]).inc();
            Ok((StatusCode::CREATED, Json(HoldBody::from(hold))))
        }
        other => Err(ApiError::Internal(format!("unexpected reply {other:?}"))),
    }
}

async fn load_hold(
    state: &AppState,
    hold_id: HoldId,
    owner: &OwnerId,
) -> Result<HoldView, ApiError> {
    match query(state, InvQuery::Hold { hold_id }, true).await? {
        QueryResult::Hold { hold } if &hold.owner == owner => Ok(hold),
        QueryResult::Hold { .. } | QueryResult::NotFound => Err(ApiError::NotFound("hold")),
        other => Err(ApiError::Internal(format!("unexpected answer {other:?}"))),
    }
}

async fn get_hold(
    State(state): State<Arc<AppState>>,
    Owner(owner): Owner,
    Path(hold_id): Path<String>,
) -> Result<Json<HoldBody>, ApiError> {
    let hold_id: HoldId = parse_id(&hold_id, "hold")?;
    Ok(Json(load_hold(&state, hold_id, &owner).await?.into()))
}

async fn release_hold(
    State(state): State<Arc<AppState>>,
    Owner(owner): Owner,
    Path(hold_id): Path<String>,
) -> Result<Json<HoldBody>, ApiError> {
    let hold_id: HoldId = parse_id(&hold_id, "hold")?;
    match propose(&state, request_id(), Command::Release { hold_id, owner }).await? {
        Reply::Released { hold } => {
            state.metrics.holds.with_label_values(&["released"]).inc();
            Ok(Json(hold.into()))
        }
        other => Err(ApiError::Internal(format!("unexpected reply {other:?}"))),
    }
}

/// Body of `POST /v1/bookings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookingRequest {
    /// The hold to pay for.
    pub hold_id: String,
    /// Payment method token (sandbox: see docs/api.md).
    pub payment_token: String,
}

async fn create_booking(
    State(state): State<Arc<AppState>>,
    Owner(owner): Owner,
    headers: HeaderMap,
    body: Result<Json<BookingRequest>, JsonRejection>,
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
    let Json(body) = body?;
    let hold_id: HoldId = body.hold_id.parse().map_err(|_| ApiError::NotFound("hold"))?;
    if body.payment_token.is_empty() || body.payment_token.len() > 200 {
        return Err(ApiError::Validation("payment_token must be 1..=200 characters".into()));
    }
    let booking = saga::book(&state, &owner, &key, hold_id, &body.payment_token).await?;
    Ok((StatusCode::CREATED, Json(booking)))
}

pub(crate) async fn load_booking(
    state: &AppState,
    booking_id: BookingId,
    owner: &OwnerId,
) -> Result<BookingView, ApiError> {
    match query(state, InvQuery::Booking { booking_id }, true).await? {
        QueryResult::Booking { booking } if &booking.owner == owner => Ok(booking),
        QueryResult::Booking { .. } | QueryResult::NotFound => Err(ApiError::NotFound("booking")),
        other => Err(ApiError::Internal(format!("unexpected answer {other:?}"))),
    }
}

async fn get_booking(
    State(state): State<Arc<AppState>>,
    Owner(owner): Owner,
    Path(booking_id): Path<String>,
) -> Result<Json<BookingView>, ApiError> {
    let booking_id: BookingId = parse_id(&booking_id, "booking")?;
    Ok(Json(load_booking(&state, booking_id, &owner).await?))
}

async fn cancel_booking(
    State(state): State<Arc<AppState>>,
    Owner(owner): Owner,
    Path(booking_id): Path<String>,
) -> Result<Json<BookingView>, ApiError> {
    let booking_id: BookingId = parse_id(&booking_id, "booking")?;
    Ok(Json(saga::cancel(&state, &owner, booking_id).await?))
}

async fn sandbox_ledger(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    if let Some(sandbox) = &state.sandbox {
        return Ok(Json(sandbox.ledger()).into_response());
    }
    let Some(provider) = &state.payments_http else {
        return Err(ApiError::NotFound("sandbox ledger"));
    };
    match provider.ledger().await {
        Ok(body) => Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response()),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the payment service's ledger");
            Err(ApiError::PaymentUnavailable)
        }
    }
}

/// Ready when the meta group answers a linearizable read with a shard map that has shards
/// (a bootstrapping cluster is not ready until its map is recorded).
async fn readyz(State(state): State<Arc<AppState>>) -> Result<&'static str, ApiError> {
    state.cluster.query(META_GROUP, &InvQuery::Digest, true).await?;
    let topology = state.cluster.refresh_topology().await?;
    if topology.shards().is_empty() {
        return Err(ApiError::Unavailable("the cluster has no shard map yet".into()));
    }
    Ok("ready")
}

async fn metrics(State(state): State<Arc<AppState>>) -> Result<String, ApiError> {
    use prometheus::Encoder;
    let mut buffer = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&state.metrics.registry.gather(), &mut buffer)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    String::from_utf8(buffer).map_err(|e| ApiError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_790_000_000_000), "2026-09-21T14:13:20.000Z");
    }
}
