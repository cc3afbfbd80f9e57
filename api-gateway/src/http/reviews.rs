//! Reviews and ratings: one review per user per movie (posting again edits it), a public
//! paginated listing, and deleting one's own. The movie's rating aggregate is updated by the
//! meta state machine in the same entry as the review, so it is exact at the review's commit.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use proto::catalog::{
    CatalogCommand, CatalogQuery, CatalogQueryResult, CatalogReply, Rating, Review,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::AuthUser;
use super::json::JsonBody;
use super::params::{PageBody, PageParams};
use crate::error::ApiError;
use crate::state::AppState;

const P: &str = "application/problem+json";
/// Longest review text.
const TEXT_BYTES_MAX: usize = 4_000;

/// Review routes.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(list_reviews, put_review)).routes(routes!(delete_review))
}

/// Body of `POST /v1/movies/{movie_id}/reviews`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReviewRequest {
    /// 1..=5.
    stars: u8,
    /// Up to 4000 bytes (may be empty).
    #[serde(default)]
    text: String,
}

/// A review and the movie's rating after it.
#[derive(Debug, Serialize, ToSchema)]
struct ReviewBody {
    review: Review,
    rating: Rating,
    /// Average stars after this review.
    rating_average: Option<f64>,
}

/// A page of reviews and the movie's rating.
#[derive(Debug, Serialize, ToSchema)]
struct ReviewsPage {
    #[serde(flatten)]
    page: PageBody<Review>,
    rating: Rating,
    rating_average: Option<f64>,
}

fn movie_id(value: Result<Path<u64>, PathRejection>) -> Result<u64, ApiError> {
    value.map(|Path(v)| v).map_err(|_| ApiError::NotFound("movie"))
}

/// Creates or edits the caller's review of a movie.
#[utoipa::path(post, path = "/v1/movies/{movie_id}/reviews", tag = "reviews", security(("bearer" = [])),
    params(("movie_id" = u64, Path, description = "The movie")),
    request_body = ReviewRequest,
    responses(
        (status = 201, description = "Written (created or edited)", body = ReviewBody),
        (status = 401, description = "Not signed in", body = crate::openapi::Problem, content_type = P),
        (status = 404, description = "No such movie", body = crate::openapi::Problem, content_type = P),
        (status = 422, description = "Stars outside 1..=5 or text too long", body = crate::openapi::Problem, content_type = P),
    ))]
async fn put_review(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    movie: Result<Path<u64>, PathRejection>,
    body: Result<JsonBody<ReviewRequest>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    let movie_id = movie_id(movie)?;
    let JsonBody(body) = body?;
    if !(1..=5).contains(&body.stars) {
        return Err(ApiError::Validation("stars must be 1..=5".into()));
    }
    if body.text.len() > TEXT_BYTES_MAX {
        return Err(ApiError::Validation(format!("text must be at most {TEXT_BYTES_MAX} bytes")));
    }
    let command = CatalogCommand::PutReview {
        movie_id,
        user_id: user.user_id,
        stars: body.stars,
        text: body.text,
    };
    match state.shards.catalog_command(command).await? {
        CatalogReply::Review { review, rating } => Ok((
            StatusCode::CREATED,
            Json(ReviewBody { review, rating_average: rating.average(), rating }),
        )),
        other => Err(ApiError::Internal(format!("unexpected catalog reply {other:?}"))),
    }
}

/// A movie's reviews, most recently edited first, with its rating.
#[utoipa::path(get, path = "/v1/movies/{movie_id}/reviews", tag = "reviews",
    params(("movie_id" = u64, Path, description = "The movie"), PageParams),
    responses(
        (status = 200, description = "A page of reviews", body = ReviewsPage),
        (status = 404, description = "No such movie", body = crate::openapi::Problem, content_type = P),
    ))]
async fn list_reviews(
    State(state): State<Arc<AppState>>,
    movie: Result<Path<u64>, PathRejection>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<ReviewsPage>, ApiError> {
    let movie_id = movie_id(movie)?;
    let Query(params) = params?;
    let page = params.page()?;
    match state.shards.catalog_query(CatalogQuery::Reviews { movie_id, page }, false).await? {
        Some(CatalogQueryResult::Reviews { page, rating }) => Ok(Json(ReviewsPage {
            page: PageBody::from_paged(page, |r| r),
            rating_average: rating.average(),
            rating,
        })),
        Some(other) => Err(ApiError::Internal(format!("unexpected catalog answer {other:?}"))),
        None => Err(ApiError::NotFound("movie")),
    }
}

/// Deletes the caller's review of a movie (a no-op if there is none).
#[utoipa::path(delete, path = "/v1/movies/{movie_id}/reviews/me", tag = "reviews", security(("bearer" = [])),
    params(("movie_id" = u64, Path, description = "The movie")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not signed in", body = crate::openapi::Problem, content_type = P),
        (status = 404, description = "No such movie", body = crate::openapi::Problem, content_type = P),
    ))]
async fn delete_review(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    movie: Result<Path<u64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let movie_id = movie_id(movie)?;
    state
        .shards
        .catalog_command(CatalogCommand::DeleteReview { movie_id, user_id: user.user_id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
