//! Browse: cities, movies, theaters, show listings and show pages, read from the catalog in the
//! meta group. Public: no sign-in needed.
//!
//! Listings are read from any meta replica (they may trail the leader by the replication delay,
//! typically milliseconds); single records (a movie, a theater, a show page) are linearizable,
//! so a show cancelled a moment ago is never presented as on sale. Availability on a show page
//! comes from the show's shard.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use proto::catalog::{
    CatalogQuery, CatalogQueryResult, CityView, Movie, MovieFilter, Screen, ShowStatus,
    ShowSummary, Theater, TheaterShows,
};
use proto::command::Query as InvQuery;
use proto::command::QueryResult;
use proto::ids::ShowId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::params::{check_param, PageBody, PageParams};
use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::state::AppState;

const P: &str = "application/problem+json";

/// Browse routes.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(cities))
        .routes(routes!(movies))
        .routes(routes!(movie))
        .routes(routes!(movie_shows))
        .routes(routes!(theaters))
        .routes(routes!(theater))
        .routes(routes!(theater_shows))
        .routes(routes!(show))
}

/// A movie with its average rating.
#[derive(Debug, Serialize, ToSchema)]
pub struct MovieBody {
    /// The movie.
    #[serde(flatten)]
    pub movie: Movie,
    /// Average stars (1..=5), absent without reviews.
    pub rating_average: Option<f64>,
}

impl From<Movie> for MovieBody {
    fn from(movie: Movie) -> Self {
        MovieBody { rating_average: movie.rating.average(), movie }
    }
}

/// A show in a listing, with its start as RFC 3339.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShowListing {
    /// The show and what to display with it.
    #[serde(flatten)]
    pub summary: ShowSummary,
    /// RFC 3339 UTC form of `starts_at_ms`.
    pub starts_at: String,
}

/// A theater's shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct TheaterListing {
    /// The theater.
    pub theater: Theater,
    /// Its shows by start time.
    pub shows: Vec<ShowListing>,
}

impl From<TheaterShows> for TheaterListing {
    fn from(t: TheaterShows) -> Self {
        TheaterListing {
            theater: t.theater,
            shows: t
                .shows
                .into_iter()
                .map(|summary| ShowListing {
                    starts_at: rfc3339(summary.show.spec.starts_at_ms),
                    summary,
                })
                .collect(),
        }
    }
}

fn path<T>(value: Result<Path<T>, PathRejection>, what: &'static str) -> Result<T, ApiError> {
    value.map(|Path(v)| v).map_err(|_| ApiError::NotFound(what))
}

fn unexpected(other: &CatalogQueryResult) -> ApiError {
    ApiError::Internal(format!("unexpected catalog answer {other:?}"))
}

/// Today's UTC date, the default of `date` filters.
fn today() -> String {
    rfc3339(crate::clock::wall_clock_ms())[..10].to_owned()
}

fn check_date(date: Option<String>) -> Result<String, ApiError> {
    let date = date.unwrap_or_else(today);
    let b = date.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    let month = date.get(5..7).and_then(|m| m.parse::<u32>().ok()).unwrap_or(0);
    let day = date.get(8..10).and_then(|d| d.parse::<u32>().ok()).unwrap_or(0);
    if !shape || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(ApiError::Validation(format!("date must be YYYY-MM-DD, not {date:?}")));
    }
    Ok(date)
}

/// Cities with theaters.
#[utoipa::path(get, path = "/v1/cities", tag = "browse",
    responses((status = 200, description = "Cities by name", body = Vec<CityView>)))]
async fn cities(State(state): State<Arc<AppState>>) -> Result<Json<Vec<CityView>>, ApiError> {
    match state.shards.catalog_query(CatalogQuery::Cities, false).await? {
        Some(CatalogQueryResult::Cities { cities }) => Ok(Json(cities)),
        Some(other) => Err(unexpected(&other)),
        None => Ok(Json(Vec::new())),
    }
}

/// Filters of `GET /v1/movies`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct MovieParams {
    /// Only movies with an upcoming show in this city (case-insensitive).
    city: Option<String>,
    /// Only movies of this genre.
    genre: Option<String>,
    /// Only movies in this language.
    language: Option<String>,
    /// Substring of the title, cast or director.
    q: Option<String>,
    /// 1-based page.
    page: Option<u32>,
    /// 1..=100, default 20.
    per_page: Option<u32>,
}

/// Movies, filtered and paginated, by title.
#[utoipa::path(get, path = "/v1/movies", tag = "browse", params(MovieParams),
    responses(
        (status = 200, description = "A page of movies", body = PageBody<MovieBody>),
        (status = 400, description = "Unknown or malformed parameter", body = crate::openapi::Problem, content_type = P),
        (status = 422, description = "Out-of-range parameter", body = crate::openapi::Problem, content_type = P),
    ))]
async fn movies(
    State(state): State<Arc<AppState>>,
    params: Result<Query<MovieParams>, QueryRejection>,
) -> Result<Json<PageBody<MovieBody>>, ApiError> {
    let Query(p) = params?;
    for (name, value) in
        [("city", &p.city), ("genre", &p.genre), ("language", &p.language), ("q", &p.q)]
    {
        check_param(name, value)?;
    }
    let page = PageParams { page: p.page, per_page: p.per_page }.page()?;
    let filter = MovieFilter {
        city: p.city,
        genre: p.genre,
        language: p.language,
        q: p.q,
        now_ms: crate::clock::wall_clock_ms(),
    };
    match state.shards.catalog_query(CatalogQuery::Movies { filter, page }, false).await? {
        Some(CatalogQueryResult::Movies { page }) => {
            Ok(Json(PageBody::from_paged(page, MovieBody::from)))
        }
        Some(other) => Err(unexpected(&other)),
        None => Err(ApiError::Internal("movie listing answered not found".into())),
    }
}

async fn load_movie(state: &AppState, movie_id: u64) -> Result<Movie, ApiError> {
    match state.shards.catalog_query(CatalogQuery::Movie { movie_id }, true).await? {
        Some(CatalogQueryResult::Movie { movie }) => Ok(movie),
        Some(other) => Err(unexpected(&other)),
        None => Err(ApiError::NotFound("movie")),
    }
}

/// One movie with its rating.
#[utoipa::path(get, path = "/v1/movies/{movie_id}", tag = "browse",
    params(("movie_id" = u64, Path, description = "The movie")),
    responses(
        (status = 200, description = "The movie", body = MovieBody),
        (status = 404, description = "No such movie", body = crate::openapi::Problem, content_type = P),
    ))]
async fn movie(
    State(state): State<Arc<AppState>>,
    movie_id: Result<Path<u64>, PathRejection>,
) -> Result<Json<MovieBody>, ApiError> {
    let movie_id = path(movie_id, "movie")?;
    Ok(Json(load_movie(&state, movie_id).await?.into()))
}

/// Parameters of `GET /v1/movies/{movie_id}/shows`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct MovieShowsParams {
    /// City (case-insensitive).
    city: String,
    /// Local date `YYYY-MM-DD` in each theater's time zone (default: today, UTC).
    date: Option<String>,
}

/// A movie's scheduled shows in a city on a date, grouped by theater.
#[utoipa::path(get, path = "/v1/movies/{movie_id}/shows", tag = "browse",
    params(("movie_id" = u64, Path, description = "The movie"), MovieShowsParams),
    responses(
        (status = 200, description = "Theaters by name, each with its shows by start", body = Vec<TheaterListing>),
        (status = 400, description = "Missing city or unknown parameter", body = crate::openapi::Problem, content_type = P),
        (status = 404, description = "No such movie", body = crate::openapi::Problem, content_type = P),
        (status = 422, description = "Bad date", body = crate::openapi::Problem, content_type = P),
    ))]
async fn movie_shows(
    State(state): State<Arc<AppState>>,
    movie_id: Result<Path<u64>, PathRejection>,
    params: Result<Query<MovieShowsParams>, QueryRejection>,
) -> Result<Json<Vec<TheaterListing>>, ApiError> {
    let movie_id = path(movie_id, "movie")?;
    let Query(p) = params?;
    check_param("city", &Some(p.city.clone()))?;
    let date = check_date(p.date)?;
    let query = CatalogQuery::MovieShows { movie_id, city: p.city, date };
    match state.shards.catalog_query(query, false).await? {
        Some(CatalogQueryResult::MovieShows { theaters }) => {
            Ok(Json(theaters.into_iter().map(TheaterListing::from).collect()))
        }
        Some(other) => Err(unexpected(&other)),
        None => Err(ApiError::NotFound("movie")),
    }
}

/// Parameters of `GET /v1/theaters`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct TheaterParams {
    /// Only theaters in this city (case-insensitive).
    city: Option<String>,
    /// 1-based page.
    page: Option<u32>,
    /// 1..=100, default 20.
    per_page: Option<u32>,
}

/// Theaters, optionally in one city, by name.
#[utoipa::path(get, path = "/v1/theaters", tag = "browse", params(TheaterParams),
    responses(
        (status = 200, description = "A page of theaters", body = PageBody<Theater>),
        (status = 422, description = "Out-of-range parameter", body = crate::openapi::Problem, content_type = P),
    ))]
async fn theaters(
    State(state): State<Arc<AppState>>,
    params: Result<Query<TheaterParams>, QueryRejection>,
) -> Result<Json<PageBody<Theater>>, ApiError> {
    let Query(p) = params?;
    check_param("city", &p.city)?;
    let page = PageParams { page: p.page, per_page: p.per_page }.page()?;
    match state.shards.catalog_query(CatalogQuery::Theaters { city: p.city, page }, false).await? {
        Some(CatalogQueryResult::Theaters { page }) => Ok(Json(PageBody::from_paged(page, |t| t))),
        Some(other) => Err(unexpected(&other)),
        None => Err(ApiError::Internal("theater listing answered not found".into())),
    }
}

/// A theater and its screens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TheaterBody {
    /// The theater.
    #[serde(flatten)]
    pub theater: Theater,
    /// Its screens with their seat layouts.
    pub screens: Vec<Screen>,
}

/// Reads a theater and its screens (linearizable).
pub(crate) async fn load_theater(
    state: &AppState,
    theater_id: u64,
) -> Result<TheaterBody, ApiError> {
    match state.shards.catalog_query(CatalogQuery::Theater { theater_id }, true).await? {
        Some(CatalogQueryResult::Theater { theater, screens }) => {
            Ok(TheaterBody { theater, screens })
        }
        Some(other) => Err(unexpected(&other)),
        None => Err(ApiError::NotFound("theater")),
    }
}

/// One theater with its screens.
#[utoipa::path(get, path = "/v1/theaters/{theater_id}", tag = "browse",
    params(("theater_id" = u64, Path, description = "The theater")),
    responses(
        (status = 200, description = "The theater", body = TheaterBody),
        (status = 404, description = "No such theater", body = crate::openapi::Problem, content_type = P),
    ))]
async fn theater(
    State(state): State<Arc<AppState>>,
    theater_id: Result<Path<u64>, PathRejection>,
) -> Result<Json<TheaterBody>, ApiError> {
    let theater_id = path(theater_id, "theater")?;
    Ok(Json(load_theater(&state, theater_id).await?))
}

/// Parameters of `GET /v1/theaters/{theater_id}/shows`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DateParams {
    /// Local date `YYYY-MM-DD` in the theater's time zone (default: today, UTC).
    date: Option<String>,
}

/// A theater's shows on a date (cancelled ones included, with their status).
#[utoipa::path(get, path = "/v1/theaters/{theater_id}/shows", tag = "browse",
    params(("theater_id" = u64, Path, description = "The theater"), DateParams),
    responses(
        (status = 200, description = "The theater and its shows by start", body = TheaterListing),
        (status = 404, description = "No such theater", body = crate::openapi::Problem, content_type = P),
        (status = 422, description = "Bad date", body = crate::openapi::Problem, content_type = P),
    ))]
async fn theater_shows(
    State(state): State<Arc<AppState>>,
    theater_id: Result<Path<u64>, PathRejection>,
    params: Result<Query<DateParams>, QueryRejection>,
) -> Result<Json<TheaterListing>, ApiError> {
    let theater_id = path(theater_id, "theater")?;
    let Query(p) = params?;
    let date = check_date(p.date)?;
    match state.shards.catalog_query(CatalogQuery::TheaterShows { theater_id, date }, false).await?
    {
        Some(CatalogQueryResult::TheaterShows { listing }) => Ok(Json(listing.into())),
        Some(other) => Err(unexpected(&other)),
        None => Err(ApiError::NotFound("theater")),
    }
}

/// Seats left in a show.
#[derive(Debug, Serialize, ToSchema)]
pub struct Availability {
    /// Seats free to hold now.
    pub available: u32,
    /// Seats in the show.
    pub capacity: u32,
}

/// A show page: the show, its movie, theater and screen, prices, and availability.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShowBody {
    /// The show (status `cancelled` means nothing is bookable).
    #[serde(flatten)]
    pub detail: proto::catalog::ShowDetail,
    /// RFC 3339 UTC form of the start.
    pub starts_at: String,
    /// Whether seats can be held now.
    pub bookable: bool,
    /// Seats left, from the show's shard (absent if the shard could not be read).
    pub availability: Option<Availability>,
}

/// A show page. The seat map itself is `GET /v1/shows/{show_id}/seats`.
#[utoipa::path(get, path = "/v1/shows/{show_id}", tag = "browse",
    params(("show_id" = u64, Path, description = "The show")),
    responses(
        (status = 200, description = "The show", body = ShowBody),
        (status = 404, description = "No such show", body = crate::openapi::Problem, content_type = P),
    ))]
async fn show(
    State(state): State<Arc<AppState>>,
    show_id: Result<Path<u64>, PathRejection>,
) -> Result<Json<ShowBody>, ApiError> {
    let show_id = path(show_id, "show")?;
    let detail = state.shards.load_show(show_id).await?;
    let capacity = detail.screen.spec.capacity();
    let availability =
        match state.shards.query(InvQuery::SeatMap { show_id: ShowId(show_id) }, false).await {
            Ok(QueryResult::SeatMap { seat_map }) => {
                Some(Availability { available: seat_map.available, capacity })
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(show_id, error = %e, "show page without availability");
                None
            }
        };
    let bookable = detail.show.status == ShowStatus::Scheduled
        && detail.show.spec.starts_at_ms > crate::clock::wall_clock_ms()
        && availability.as_ref().is_some_and(|a| a.available > 0);
    Ok(Json(ShowBody {
        starts_at: rfc3339(detail.show.spec.starts_at_ms),
        bookable,
        availability,
        detail,
    }))
}
