//! Running the catalog: movies and theaters (admins), screens and shows (admins and the
//! theater's managers), show cancellation with refunds, sales, and the sandbox payment ledger.
//!
//! Ids may be given (so an import can be re-run idempotently) or are chosen at random within
//! JavaScript's safe integer range. Show creation is two steps: the catalog entry (which also
//! places the show on a shard, in the same meta entry) and the show's seats on that shard. Both
//! are idempotent, so retrying the same request completes a creation a crash interrupted.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use proto::catalog::{
    CatalogCommand, CatalogReply, Movie, MovieSpec, Role, Screen, ScreenSpec, Show, ShowDetail,
    ShowSpec, Theater, TheaterSpec,
};
use proto::command::Query as InvQuery;
use proto::command::{Command, Proposal, QueryResult, Rejection, Reply};
use proto::ids::ShowId;
use proto::inventory::{BookingStatus, BookingView};
use proto::layout::{CategorySpec, Layout};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::AuthUser;
use super::catalog::{load_theater, MovieBody};
use super::json::JsonBody;
use crate::error::ApiError;
use crate::limits::SHOW_ID_MAX;
use crate::state::AppState;

const P: &str = "application/problem+json";

/// Admin routes.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create_movie))
        .routes(routes!(put_movie))
        .routes(routes!(create_theater))
        .routes(routes!(put_theater))
        .routes(routes!(create_screen))
        .routes(routes!(put_screen))
        .routes(routes!(create_show))
        .routes(routes!(reschedule_show))
        .routes(routes!(cancel_show))
        .routes(routes!(show_bookings))
        .routes(routes!(show_sales))
        .routes(routes!(verify_ticket))
        .routes(routes!(sandbox_ledger))
}

/// A new id: the given one if valid, else random in 1..=2^53-1.
fn new_id(given: Option<u64>, what: &str) -> Result<u64, ApiError> {
    match given {
        Some(id) if id == 0 || id > SHOW_ID_MAX => {
            Err(ApiError::Validation(format!("{what} must be 1..={SHOW_ID_MAX}")))
        }
        Some(id) => Ok(id),
        None => Ok(client::random_id()),
    }
}

/// Splits an optional id field off a create body and decodes the rest strictly (unknown fields
/// are refused: `#[serde(flatten)]` cannot deny them, so bodies are decoded in two steps).
fn split_body<T: serde::de::DeserializeOwned>(
    body: serde_json::Value,
    id_field: &str,
) -> Result<(Option<u64>, T), ApiError> {
    let serde_json::Value::Object(mut map) = body else {
        return Err(ApiError::MalformedBody(
            StatusCode::UNPROCESSABLE_ENTITY,
            "expected a JSON object".into(),
        ));
    };
    let id = match map.remove(id_field) {
        None | Some(serde_json::Value::Null) => None,
        Some(value) => Some(value.as_u64().ok_or_else(|| {
            ApiError::Validation(format!("{id_field} must be a positive integer"))
        })?),
    };
    let spec = serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| ApiError::MalformedBody(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    Ok((id, spec))
}

/// A create body: its id (given, or random when absent) and its strictly decoded fields.
fn new_record<T: serde::de::DeserializeOwned>(
    body: Result<JsonBody<serde_json::Value>, ApiError>,
    id_field: &str,
) -> Result<(u64, T), ApiError> {
    let JsonBody(body) = body?;
    let (id, spec) = split_body(body, id_field)?;
    Ok((new_id(id, id_field)?, spec))
}

fn path<T>(value: Result<Path<T>, PathRejection>, what: &'static str) -> Result<T, ApiError> {
    value.map(|Path(v)| v).map_err(|_| ApiError::NotFound(what))
}

fn unexpected(reply: &CatalogReply) -> ApiError {
    ApiError::Internal(format!("unexpected catalog reply {reply:?}"))
}

/// Fails with 403 unless the caller is an admin or manages `theater_id`.
fn require_manager(user: &AuthUser, theater_id: u64) -> Result<(), ApiError> {
    if user.may_manage(theater_id) {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!("you do not manage theater {theater_id}")))
}

/// Body of `POST /v1/admin/movies`: the movie's fields and an optional id.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // The request schema; bodies are decoded by `split_body`.
struct NewMovie {
    /// Optional id (1..=2^53-1); random when absent.
    movie_id: Option<u64>,
    #[serde(flatten)]
    spec: MovieSpec,
}

async fn put_movie_spec(
    state: &AppState,
    movie_id: u64,
    spec: MovieSpec,
) -> Result<Movie, ApiError> {
    match state.shards.catalog_command(CatalogCommand::PutMovie { movie_id, spec }).await? {
        CatalogReply::Movie { movie } => Ok(movie),
        other => Err(unexpected(&other)),
    }
}

/// Creates a movie (admin).
#[utoipa::path(post, path = "/v1/admin/movies", tag = "admin", security(("bearer" = [])),
    request_body = NewMovie,
    responses(
        (status = 201, description = "Created", body = MovieBody),
        (status = 403, description = "Not an admin", body = crate::openapi::Problem, content_type = P),
        (status = 422, description = "Invalid field (named in `field`)", body = crate::openapi::Problem, content_type = P),
    ))]
async fn create_movie(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    body: Result<JsonBody<serde_json::Value>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    user.require_admin()?;
    let (movie_id, spec) = new_record(body, "movie_id")?;
    let movie = put_movie_spec(&state, movie_id, spec).await?;
    Ok((StatusCode::CREATED, Json(MovieBody::from(movie))))
}

/// Replaces a movie's fields (admin); its rating is kept.
#[utoipa::path(put, path = "/v1/admin/movies/{movie_id}", tag = "admin", security(("bearer" = [])),
    params(("movie_id" = u64, Path, description = "The movie")),
    request_body = MovieSpec,
    responses(
        (status = 200, description = "Updated (or created with this id)", body = MovieBody),
        (status = 403, description = "Not an admin", body = crate::openapi::Problem, content_type = P),
        (status = 422, description = "Invalid field", body = crate::openapi::Problem, content_type = P),
    ))]
async fn put_movie(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    movie_id: Result<Path<u64>, PathRejection>,
    body: Result<JsonBody<MovieSpec>, ApiError>,
) -> Result<Json<MovieBody>, ApiError> {
    user.require_admin()?;
    let movie_id = path(movie_id, "movie")?;
    let JsonBody(spec) = body?;
    Ok(Json(put_movie_spec(&state, movie_id, spec).await?.into()))
}

/// Body of `POST /v1/admin/theaters`.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // The request schema; bodies are decoded by `split_body`.
struct NewTheater {
    /// Optional id; random when absent.
    theater_id: Option<u64>,
    #[serde(flatten)]
    spec: TheaterSpec,
}

async fn put_theater_spec(
    state: &AppState,
    theater_id: u64,
    spec: TheaterSpec,
) -> Result<Theater, ApiError> {
    match state.shards.catalog_command(CatalogCommand::PutTheater { theater_id, spec }).await? {
        CatalogReply::Theater { theater } => Ok(theater),
        other => Err(unexpected(&other)),
    }
}

/// Creates a theater (admin).
#[utoipa::path(post, path = "/v1/admin/theaters", tag = "admin", security(("bearer" = [])),
    request_body = NewTheater,
    responses(
        (status = 201, description = "Created", body = Theater),
        (status = 403, description = "Not an admin", body = crate::openapi::Problem, content_type = P),
        (status = 422, description = "Invalid field", body = crate::openapi::Problem, content_type = P),
    ))]
async fn create_theater(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    body: Result<JsonBody<serde_json::Value>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    user.require_admin()?;
    let (theater_id, spec) = new_record(body, "theater_id")?;
    Ok((StatusCode::CREATED, Json(put_theater_spec(&state, theater_id, spec).await?)))
}

/// Replaces a theater's fields (admin, or the theater's manager).
#[utoipa::path(put, path = "/v1/admin/theaters/{theater_id}", tag = "admin", security(("bearer" = [])),
    params(("theater_id" = u64, Path, description = "The theater")),
    request_body = TheaterSpec,
    responses(
        (status = 200, description = "Updated", body = Theater),
        (status = 403, description = "Not an admin or its manager", body = crate::openapi::Problem, content_type = P),
        (status = 404, description = "No such theater (managers cannot create theaters)", body = crate::openapi::Problem, content_type = P),
        (status = 422, description = "Invalid field", body = crate::openapi::Problem, content_type = P),
    ))]
async fn put_theater(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    theater_id: Result<Path<u64>, PathRejection>,
    body: Result<JsonBody<TheaterSpec>, ApiError>,
) -> Result<Json<Theater>, ApiError> {
    let theater_id = path(theater_id, "theater")?;
    require_manager(&user, theater_id)?;
    let JsonBody(spec) = body?;
    if user.role != Role::Admin {
        load_theater(&state, theater_id).await?;
    }
    Ok(Json(put_theater_spec(&state, theater_id, spec).await?))
}

/// Body of `POST /v1/admin/theaters/{theater_id}/screens`.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // The request schema; bodies are decoded by `split_body`.
struct NewScreen {
    /// Optional id; random when absent.
    screen_id: Option<u64>,
    #[serde(flatten)]
    spec: ScreenSpec,
}

async fn put_screen_spec(
    state: &AppState,
    screen_id: u64,
    theater_id: u64,
    spec: ScreenSpec,
) -> Result<Screen, ApiError> {
    match state
        .shards
        .catalog_command(CatalogCommand::PutScreen { screen_id, theater_id, spec })
        .await?
    {
        CatalogReply::Screen { screen } => Ok(screen),
        other => Err(unexpected(&other)),
    }
}

/// Adds a screen with its seat layout to a theater (admin, or the theater's manager).
#[utoipa::path(post, path = "/v1/admin/theaters/{theater_id}/screens", tag = "admin", security(("bearer" = [])),
    params(("theater_id" = u64, Path, description = "The theater")),
    request_body = NewScreen,
    responses(
        (status = 201, description = "Created", body = Screen),
        (status = 403, description = "Not an admin or its manager", body = crate::openapi::Problem, content_type = P),
        (status = 404, description = "No such theater", body = crate::openapi::Problem, content_type = P),
        (status = 409, description = "Screen id belongs to another theater", body = crate::openapi::Problem, content_type = P),
        (status = 422, description = "Invalid layout (field named)", body = crate::openapi::Problem, content_type = P),
    ))]
async fn create_screen(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    theater_id: Result<Path<u64>, PathRejection>,
    body: Result<JsonBody<serde_json::Value>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    let theater_id = path(theater_id, "theater")?;
    require_manager(&user, theater_id)?;
    let (screen_id, spec) = new_record(body, "screen_id")?;
    let screen = put_screen_spec(&state, screen_id, theater_id, spec).await?;
    Ok((StatusCode::CREATED, Json(screen)))
}

/// Body of `PUT /v1/admin/screens/{screen_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // The request schema; bodies are decoded by `split_body`.
struct PutScreen {
    /// The screen's theater (cannot change).
    theater_id: u64,
    #[serde(flatten)]
    spec: ScreenSpec,
}

/// Replaces a screen (admin, or the theater's manager). With scheduled shows only its name and
/// format may change.
#[utoipa::path(put, path = "/v1/admin/screens/{screen_id}", tag = "admin", security(("bearer" = [])),
    params(("screen_id" = u64, Path, description = "The screen")),
    request_body = PutScreen,
    responses(
        (status = 200, description = "Updated", body = Screen),
        (status = 403, description = "Not an admin or its manager", body = crate::openapi::Problem, content_type = P),
        (status = 409, description = "Layout change under scheduled shows, or another theater", body = crate::openapi::Problem, content_type = P),
        (status = 422, description = "Invalid layout", body = crate::openapi::Problem, content_type = P),
    ))]
async fn put_screen(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    screen_id: Result<Path<u64>, PathRejection>,
    body: Result<JsonBody<serde_json::Value>, ApiError>,
) -> Result<Json<Screen>, ApiError> {
    let screen_id = path(screen_id, "screen")?;
    // Customers are refused before the body is read; managers once its theater is known.
    if user.role == Role::Customer {
        return Err(ApiError::Forbidden("this needs the admin or theater_manager role".into()));
    }
    let JsonBody(body) = body?;
    let (theater_id, spec) = split_body(body, "theater_id")?;
    let theater_id =
        theater_id.ok_or_else(|| ApiError::Validation("theater_id is required".into()))?;
    require_manager(&user, theater_id)?;
    Ok(Json(put_screen_spec(&state, screen_id, theater_id, spec).await?))
}

/// Body of `POST /v1/admin/shows`.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // The request schema; bodies are decoded by `split_body`.
struct NewShow {
    /// Optional id; random when absent. Retrying with the same id and fields is safe.
    show_id: Option<u64>,
    #[serde(flatten)]
    spec: ShowSpec,
}

/// A show as returned by the admin API.
#[derive(Debug, Serialize, ToSchema)]
struct ShowBody {
    #[serde(flatten)]
    show: Show,
    /// RFC 3339 form of the start.
    starts_at: String,
    /// Seats in the show.
    capacity: u32,
}

/// The inventory layout of a show: its screen's rows priced by the show.
fn layout(detail: &ShowDetail) -> Layout {
    Layout {
        rows: detail.screen.spec.rows.clone(),
        categories: detail
            .show
            .spec
            .prices
            .iter()
            .map(|(name, price)| CategorySpec { name: name.clone(), price_minor: *price })
            .collect(),
        currency: detail.show.spec.currency.clone(),
    }
}

/// Schedules a show (admin, or the manager of the screen's theater): records it in the
/// catalog, placed on the least-loaded shard, then creates its seats there.
#[utoipa::path(post, path = "/v1/admin/shows", tag = "admin", security(("bearer" = [])),
    request_body = NewShow,
    responses(
        (status = 201, description = "Scheduled and on sale", body = ShowBody),
        (status = 403, description = "Not an admin or the theater's manager", body = crate::openapi::Problem, content_type = P),
        (status = 404, description = "No such movie or screen", body = crate::openapi::Problem, content_type = P),
        (status = 409, description = "Show id taken with other fields", body = crate::openapi::Problem, content_type = P),
        (status = 422, description = "Invalid field (e.g. prices must cover the screen's categories)", body = crate::openapi::Problem, content_type = P),
    ))]
async fn create_show(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    body: Result<JsonBody<serde_json::Value>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    // Customers are refused before the body is read; managers once the screen is known.
    if user.role == Role::Customer {
        return Err(ApiError::Forbidden("this needs the admin or theater_manager role".into()));
    }
    let (show_id, spec): (_, ShowSpec) = new_record(body, "show_id")?;
    if user.role != Role::Admin {
        require_screen_manager(&state, &user, spec.screen_id).await?;
    }
    let show_id = ShowId(show_id);
    let show =
        match state.shards.catalog_command(CatalogCommand::CreateShow { show_id, spec }).await? {
            CatalogReply::Show { show } => show,
            other => return Err(unexpected(&other)),
        };
    state.shards.remember_show(show_id, show.group);
    let detail = state.shards.load_show(show_id.0).await?;
    let command = Command::CreateShow {
        show_id,
        title: detail.movie.spec.title.clone(),
        starts_at_ms: show.spec.starts_at_ms,
        layout: layout(&detail),
    };
    let proposal = Proposal { request_id: Some(format!("create-show:{}", show_id.0)), command };
    let capacity = match state.shards.propose_to(show.group, &proposal).await? {
        Ok(Reply::ShowCreated { capacity, .. }) => capacity,
        // Created by an earlier attempt of this request.
        Err(Rejection::ShowExists { .. }) => detail.screen.spec.capacity(),
        Ok(other) => return Err(ApiError::Internal(format!("unexpected reply {other:?}"))),
        Err(rejection) => return Err(rejection.into()),
    };
    let starts_at = crate::clock::rfc3339(show.spec.starts_at_ms);
    Ok((StatusCode::CREATED, Json(ShowBody { show, starts_at, capacity })))
}

/// Fails with 403 unless a theater manager runs the theater `screen_id` belongs to (found
/// among their theaters' screens: a manager runs few theaters).
async fn require_screen_manager(
    state: &AppState,
    user: &AuthUser,
    screen_id: u64,
) -> Result<(), ApiError> {
    if user.role == Role::TheaterManager {
        for theater in user.theaters.iter().copied() {
            if load_theater(state, theater).await?.screens.iter().any(|s| s.screen_id == screen_id)
            {
                return Ok(());
            }
        }
    }
    Err(ApiError::Forbidden(format!("you do not manage the theater of screen {screen_id}")))
}

/// Body of `PATCH /v1/admin/shows/{show_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Reschedule {
    /// New start, Unix ms.
    starts_at_ms: u64,
}

/// Moves a scheduled show's start (admin, or the theater's manager).
#[utoipa::path(patch, path = "/v1/admin/shows/{show_id}", tag = "admin", security(("bearer" = [])),
    params(("show_id" = u64, Path, description = "The show")),
    request_body = Reschedule,
    responses(
        (status = 200, description = "Rescheduled", body = Show),
        (status = 403, description = "Not an admin or the theater's manager", body = crate::openapi::Problem, content_type = P),
        (status = 404, description = "No such show", body = crate::openapi::Problem, content_type = P),
        (status = 409, description = "The show was cancelled", body = crate::openapi::Problem, content_type = P),
    ))]
async fn reschedule_show(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    show_id: Result<Path<u64>, PathRejection>,
    body: Result<JsonBody<Reschedule>, ApiError>,
) -> Result<Json<Show>, ApiError> {
    let show_id = path(show_id, "show")?;
    let detail = state.shards.load_show(show_id).await?;
    require_manager(&user, detail.show.theater_id)?;
    let JsonBody(body) = body?;
    let command = CatalogCommand::RescheduleShow {
        show_id: ShowId(show_id),
        starts_at_ms: body.starts_at_ms,
    };
    match state.shards.catalog_command(command).await? {
        CatalogReply::Show { show } => Ok(Json(show)),
        other => Err(unexpected(&other)),
    }
}

/// What cancelling a show did.
#[derive(Debug, Serialize, ToSchema)]
struct CancelSummary {
    /// The show, now `cancelled`.
    show: Show,
    /// Bookings refunded and cancelled by this call.
    refunded: u32,
    /// Holds released and checkouts failed on the shard.
    released: u32,
}

/// Cancels a show (admin, or the theater's manager): marks it cancelled in the catalog, stops
/// sales on its shard, and refunds every booking in full. Safe to repeat: a repeat finishes
/// refunds an earlier call could not.
#[utoipa::path(post, path = "/v1/admin/shows/{show_id}/cancel", tag = "admin", security(("bearer" = [])),
    params(("show_id" = u64, Path, description = "The show")),
    responses(
        (status = 200, description = "Cancelled; bookings refunded", body = CancelSummary),
        (status = 403, description = "Not an admin or the theater's manager", body = crate::openapi::Problem, content_type = P),
        (status = 404, description = "No such show", body = crate::openapi::Problem, content_type = P),
        (status = 502, description = "A refund could not be issued yet; repeat the call", body = crate::openapi::Problem, content_type = P),
    ))]
async fn cancel_show(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    show_id: Result<Path<u64>, PathRejection>,
) -> Result<Json<CancelSummary>, ApiError> {
    let show_id = path(show_id, "show")?;
    let detail = state.shards.load_show(show_id).await?;
    require_manager(&user, detail.show.theater_id)?;
    let show = match state
        .shards
        .catalog_command(CatalogCommand::CancelShow { show_id: ShowId(show_id) })
        .await?
    {
        CatalogReply::Show { show } => show,
        other => return Err(unexpected(&other)),
    };
    let summary = state.saga.cancel_show(ShowId(show_id)).await?;
    Ok(Json(CancelSummary { show, refunded: summary.refunded, released: summary.released }))
}

async fn load_bookings(state: &AppState, show_id: u64) -> Result<Vec<BookingView>, ApiError> {
    match state.shards.query(InvQuery::ShowBookings { show_id: ShowId(show_id) }, true).await? {
        QueryResult::Bookings { bookings } => Ok(bookings),
        QueryResult::NotFound => Err(ApiError::NotFound("show")),
        other => Err(ApiError::Internal(format!("unexpected answer {other:?}"))),
    }
}

/// A show's bookings.
#[derive(Debug, Serialize, ToSchema)]
struct BookingsBody {
    /// Confirmed bookings, by id.
    bookings: Vec<BookingView>,
}

/// The confirmed bookings of a show (admin, or the theater's manager).
#[utoipa::path(get, path = "/v1/admin/shows/{show_id}/bookings", tag = "admin", security(("bearer" = [])),
    params(("show_id" = u64, Path, description = "The show")),
    responses(
        (status = 200, description = "Bookings", body = BookingsBody),
        (status = 403, description = "Not an admin or the theater's manager", body = crate::openapi::Problem, content_type = P),
        (status = 404, description = "No such show", body = crate::openapi::Problem, content_type = P),
    ))]
async fn show_bookings(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    show_id: Result<Path<u64>, PathRejection>,
) -> Result<Json<BookingsBody>, ApiError> {
    let show_id = path(show_id, "show")?;
    authorize_show(&state, &user, show_id).await?;
    Ok(Json(BookingsBody { bookings: load_bookings(&state, show_id).await? }))
}

/// Body of `POST /v1/admin/shows/{show_id}/tickets/verify`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct VerifyTicketRequest {
    /// The code printed on the ticket: `MQ` and 16 characters (bookings confirmed before keyed
    /// codes: `MQ` and 8).
    #[schema(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9]+$")]
    ticket_code: String,
}

/// Checks a ticket at the door (admin, or the theater's manager): the confirmed booking of the
/// show whose stored ticket code is the one presented. Codes are keyed with the gateways'
/// secret, so they cannot be computed from booking ids (docs/architecture.md, "Ticket codes").
#[utoipa::path(post, path = "/v1/admin/shows/{show_id}/tickets/verify", tag = "admin", security(("bearer" = [])),
    params(("show_id" = u64, Path, description = "The show")),
    request_body = VerifyTicketRequest,
    responses(
        (status = 200, description = "A valid ticket: its confirmed booking", body = BookingView),
        (status = 403, description = "Not an admin or the theater's manager", body = crate::openapi::Problem, content_type = P),
        (status = 404, description = "No such show, or no confirmed booking of it has this code (`not-found`, `resource: ticket`)", body = crate::openapi::Problem, content_type = P),
        (status = 422, description = "Malformed code", body = crate::openapi::Problem, content_type = P),
    ))]
async fn verify_ticket(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    show_id: Result<Path<u64>, PathRejection>,
    body: Result<JsonBody<VerifyTicketRequest>, ApiError>,
) -> Result<Json<BookingView>, ApiError> {
    let show_id = path(show_id, "show")?;
    authorize_show(&state, &user, show_id).await?;
    let JsonBody(body) = body?;
    let code = body.ticket_code;
    if code.is_empty()
        || code.len() > proto::limits::TICKET_CODE_BYTES_MAX
        || !code.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(ApiError::Validation(format!(
            "ticket_code must be 1..={} ASCII letters and digits",
            proto::limits::TICKET_CODE_BYTES_MAX
        )));
    }
    let bookings = load_bookings(&state, show_id).await?;
    bookings
        .into_iter()
        .find(|b| {
            b.status == BookingStatus::Confirmed
                && b.ticket_code.as_deref().is_some_and(|stored| auth::codes_match(&code, stored))
        })
        .map(Json)
        .ok_or(ApiError::NotFound("ticket"))
}

/// Admins see every show; a manager only shows of their theaters (shows created before the
/// catalog, with no catalog record, are admin-only).
async fn authorize_show(state: &AppState, user: &AuthUser, show_id: u64) -> Result<(), ApiError> {
    if user.role == Role::Admin {
        return Ok(());
    }
    let detail = state.shards.load_show(show_id).await?;
    require_manager(user, detail.show.theater_id)
}

/// Sales of a show.
#[derive(Debug, Serialize, ToSchema)]
struct Sales {
    /// The show.
    show_id: u64,
    /// Seats sold (confirmed bookings).
    seats_sold: u32,
    /// Revenue of confirmed bookings by seat category, minor units.
    revenue_by_category: BTreeMap<String, i64>,
    /// Total revenue of confirmed bookings, minor units.
    revenue_minor: i64,
    /// Currency.
    currency: String,
    /// Bookings by status (the listing holds confirmed ones).
    bookings_by_status: BTreeMap<String, u32>,
}

/// Seats sold and revenue of a show (admin, or the theater's manager).
#[utoipa::path(get, path = "/v1/admin/shows/{show_id}/sales", tag = "admin", security(("bearer" = [])),
    params(("show_id" = u64, Path, description = "The show")),
    responses(
        (status = 200, description = "Sales", body = Sales),
        (status = 403, description = "Not an admin or the theater's manager", body = crate::openapi::Problem, content_type = P),
        (status = 404, description = "No such show", body = crate::openapi::Problem, content_type = P),
    ))]
async fn show_sales(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    show_id: Result<Path<u64>, PathRejection>,
) -> Result<Json<Sales>, ApiError> {
    let show_id = path(show_id, "show")?;
    authorize_show(&state, &user, show_id).await?;
    let bookings = load_bookings(&state, show_id).await?;
    let seat_map =
        match state.shards.query(InvQuery::SeatMap { show_id: ShowId(show_id) }, true).await? {
            QueryResult::SeatMap { seat_map } => seat_map,
            _ => return Err(ApiError::NotFound("show")),
        };
    let price: BTreeMap<&str, (&str, i64)> = seat_map
        .rows
        .iter()
        .flat_map(|r| r.seats.iter())
        .map(|s| (s.seat_id.0.as_str(), (s.category.as_str(), s.price_minor)))
        .collect();
    let mut sales = Sales {
        show_id,
        seats_sold: 0,
        revenue_by_category: BTreeMap::new(),
        revenue_minor: 0,
        currency: seat_map.currency.clone(),
        bookings_by_status: BTreeMap::new(),
    };
    for booking in &bookings {
        let status = serde_json::to_value(booking.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *sales.bookings_by_status.entry(status).or_default() += 1;
        if booking.status != BookingStatus::Confirmed {
            continue;
        }
        for seat in &booking.seats {
            sales.seats_sold += 1;
            if let Some((category, minor)) = price.get(seat.0.as_str()) {
                *sales.revenue_by_category.entry((*category).to_owned()).or_default() += minor;
                sales.revenue_minor += minor;
            }
        }
    }
    Ok(Json(sales))
}

/// The sandbox payment ledger (admin): charges and refunds, for audits and tests.
#[utoipa::path(get, path = "/v1/sandbox/payments", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "Ledger entries", body = serde_json::Value),
        (status = 403, description = "Not an admin", body = crate::openapi::Problem, content_type = P),
        (status = 404, description = "A real provider is configured", body = crate::openapi::Problem, content_type = P),
    ))]
async fn sandbox_ledger(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
) -> Result<Response, ApiError> {
    user.require_admin()?;
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
