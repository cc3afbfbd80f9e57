//! `/v1/search` and `/v1/search/suggest`: full-text movie search with typo tolerance, filters,
//! facets, highlights and sorting, and prefix autocomplete, answered by the configured search
//! backend (see the `search` crate). Search trails the catalog by the sync worker's lag, which
//! every answer reports (`freshness`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use search_sync::{SearchError, SearchHit, SearchRequest, Sort, Suggestion, QUERY_CHARS_MAX};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::params::PageParams;
use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::state::AppState;

const P: &str = "application/problem+json";
/// Most suggestions one request returns.
const SUGGEST_MAX: usize = 20;

/// Search routes.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(search)).routes(routes!(suggest))
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::Unavailable(cause) => ApiError::SearchUnavailable {
                detail: "the search index could not be reached; retry shortly (the /v1/movies \
                         listings do not depend on it)",
                cause,
            },
            SearchError::Catalog(why) => ApiError::Unavailable(why),
            SearchError::Backend(why) | SearchError::Config(why) => ApiError::Internal(why),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SearchParams {
    /// Free text (title, cast, director, description), up to 200 characters: every word must
    /// match (punctuation, quotes and `-` only separate words); typos are tolerated and the
    /// last word matches as a prefix. Empty: every movie matching the filters.
    q: Option<String>,
    /// Only movies with an upcoming show in this city.
    city: Option<String>,
    /// Only movies of this genre.
    genre: Option<String>,
    /// Only movies in this language.
    language: Option<String>,
    /// Only movies rated at least this, 0..=5.
    min_rating: Option<f64>,
    /// `relevance` (default), `rating`, `next_show` or `title`. Every sort but `relevance` is
    /// strict, with or without `q`: its key, then title, then movie id.
    sort: Option<String>,
    /// 1-based page (default 1).
    page: Option<u32>,
    /// Hits per page, 1..=100 (default 20).
    per_page: Option<u32>,
}

/// One result.
#[derive(Debug, Serialize, ToSchema)]
struct Hit {
    /// The movie's indexed fields (`movie_id`, `title`, `genres`, `language`, `rating`,
    /// `cities`, `next_show_ms`, ...) and `highlights`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    hit: SearchHit,
    /// RFC 3339 form of `next_show_ms`.
    next_show_at: Option<String>,
}

/// Facet counts for the current query and filters.
#[derive(Debug, Serialize, ToSchema)]
struct FacetsBody {
    /// Genre -> matching movies.
    #[schema(value_type = Object)]
    genres: std::collections::BTreeMap<String, u64>,
    /// Language -> matching movies.
    #[schema(value_type = Object)]
    languages: std::collections::BTreeMap<String, u64>,
}

/// How far the index trails the catalog.
#[derive(Debug, Serialize, ToSchema)]
struct Freshness {
    /// `embedded` or `meilisearch`.
    backend: &'static str,
    /// Last catalog change in the index: indexed by this gateway's sync worker, or recorded by
    /// the process that syncs the index (read every second). Absent only with search off.
    indexed_seq: Option<u64>,
    /// Newest catalog change seen in the feed.
    head_seq: Option<u64>,
    /// Changes not yet indexed.
    lag: Option<u64>,
}

/// A page of results.
#[derive(Debug, Serialize, ToSchema)]
struct SearchBody {
    items: Vec<Hit>,
    /// Matching movies.
    total: u64,
    page: u32,
    per_page: u32,
    facets: FacetsBody,
    freshness: Freshness,
}

fn check_text(name: &str, value: Option<&str>, max: usize) -> Result<(), ApiError> {
    match value {
        Some(v) if v.chars().count() > max || v.chars().any(char::is_control) => Err(
            ApiError::Validation(format!("{name} must be at most {max} characters, no controls")),
        ),
        _ => Ok(()),
    }
}

fn index(state: &AppState) -> Result<&Arc<dyn search_sync::SearchIndex>, ApiError> {
    state.search.as_ref().ok_or_else(|| ApiError::SearchUnavailable {
        detail: "search is off on this gateway",
        cause: "--search off".into(),
    })
}

/// Searches movies.
#[utoipa::path(get, path = "/v1/search", tag = "browse",
    params(SearchParams),
    responses(
        (status = 200, description = "A page of hits with facets", body = SearchBody),
        (status = 422, description = "A parameter out of range", body = crate::openapi::Problem, content_type = P),
        (status = 503, description = "Search is off, or the backend is unreachable", body = crate::openapi::Problem, content_type = P),
    ))]
async fn search(
    State(state): State<Arc<AppState>>,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<SearchBody>, ApiError> {
    let Query(params) = params?;
    check_text("q", params.q.as_deref(), QUERY_CHARS_MAX)?;
    for (name, value) in
        [("city", &params.city), ("genre", &params.genre), ("language", &params.language)]
    {
        super::params::check_param(name, value)?;
        check_text(name, value.as_deref(), 200)?;
    }
    if params.min_rating.is_some_and(|r| !(0.0..=5.0).contains(&r)) {
        return Err(ApiError::Validation("min_rating must be 0..=5".into()));
    }
    let sort = match params.sort.as_deref() {
        None | Some("relevance") => Sort::Relevance,
        Some("rating") => Sort::Rating,
        Some("next_show") => Sort::NextShow,
        Some("title") => Sort::Title,
        Some(_) => {
            return Err(ApiError::Validation(
                "sort must be relevance, rating, next_show or title".into(),
            ))
        }
    };
    let page = PageParams { page: params.page, per_page: params.per_page }.page()?;
    let index = index(&state)?;
    let request = SearchRequest {
        q: params.q.unwrap_or_default(),
        city: params.city,
        genre: params.genre,
        language: params.language,
        min_rating: params.min_rating,
        sort,
        offset: page.offset as usize,
        limit: page.limit as usize,
    };
    let response = index.search(&request).await?;
    let status = state.search_status.as_ref();
    Ok(Json(SearchBody {
        items: response
            .hits
            .into_iter()
            .map(|hit| Hit { next_show_at: hit.doc.next_show_ms.map(rfc3339), hit })
            .collect(),
        total: response.total,
        page: page.offset / page.limit.max(1) + 1,
        per_page: page.limit,
        facets: FacetsBody { genres: response.facets.genres, languages: response.facets.languages },
        freshness: Freshness {
            backend: index.backend(),
            indexed_seq: status.map(|s| s.indexed_seq.load(Ordering::Relaxed)),
            head_seq: status.map(|s| s.head_seq.load(Ordering::Relaxed)),
            lag: status.map(|s| s.lag()),
        },
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SuggestParams {
    /// What was typed so far (1..=200 characters).
    q: String,
    /// Suggestions, 1..=20 (default 8).
    limit: Option<usize>,
}

/// Autocomplete: movie titles for what was typed so far.
#[utoipa::path(get, path = "/v1/search/suggest", tag = "browse",
    params(SuggestParams),
    responses(
        (status = 200, description = "Suggestions, best first", body = Vec<Object>),
        (status = 422, description = "q empty or too long, or limit out of range", body = crate::openapi::Problem, content_type = P),
        (status = 503, description = "Search is off, or the backend is unreachable", body = crate::openapi::Problem, content_type = P),
    ))]
async fn suggest(
    State(state): State<Arc<AppState>>,
    params: Result<Query<SuggestParams>, QueryRejection>,
) -> Result<Json<Vec<Suggestion>>, ApiError> {
    let Query(params) = params?;
    if params.q.trim().is_empty() {
        return Err(ApiError::Validation("q must not be empty".into()));
    }
    check_text("q", Some(&params.q), QUERY_CHARS_MAX)?;
    let limit = params.limit.unwrap_or(8);
    if !(1..=SUGGEST_MAX).contains(&limit) {
        return Err(ApiError::Validation(format!("limit must be 1..={SUGGEST_MAX}")));
    }
    Ok(Json(index(&state)?.suggest(&params.q, limit).await?))
}
