//! The public REST API (v1): routes, request validation and JSON shapes.
//!
//! Handlers validate at the edge (sizes, formats, ids), then call the cluster through the
//! [`ClusterClient`](crate::cluster::ClusterClient) or run the booking saga. One module per
//! area: [`auth`] (who is calling), [`catalog`] (browse), [`booking`] (holds and bookings),
//! [`admin`]; this module holds the router, the request observer and the helpers they share.

pub mod admin;
pub mod auth;
pub mod booking;
pub mod catalog;
pub mod error;
pub mod live;
pub mod reviews;
pub mod search;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use proto::catalog::{CatalogCommand, CatalogQuery, CatalogQueryResult, CatalogReply};
use proto::command::Query as InvQuery;
use proto::command::{Command, Proposal, QueryResult, Rejection, Reply};
use proto::meta::{MetaCommand, MetaQuery, MetaQueryResult, MetaReply};
use proto::META_GROUP;
use rand::Rng;
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::cluster::ClusterError;
use crate::limits::BODY_BYTES_MAX;
use crate::AppState;
use error::ApiError;

/// The gateway's routes, with `/openapi.json` describing them.
pub fn routes(state: Arc<AppState>) -> Router {
    let (documented, api) = documented_routes().split_for_parts();
    // Rendered once: the document is static for the life of the process.
    let api: Arc<str> = serde_json::to_string(&api).unwrap_or_else(|_| "{}".into()).into();
    documented
        .route(
            "/openapi.json",
            get(move || async move {
                ([(axum::http::header::CONTENT_TYPE, "application/json")], api.to_string())
            }),
        )
        .fallback(|| async { ApiError::NotFound("route") })
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), observe))
        .with_state(state)
}

/// The routes registered with their OpenAPI description.
fn documented_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .merge(auth::routes())
        .merge(booking::routes())
        .merge(catalog::routes())
        .merge(reviews::routes())
        .merge(search::routes())
        .routes(routes!(live::live))
        .merge(admin::routes())
}

/// The OpenAPI document of every documented route (what `/openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().split_for_parts().1
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "Alive", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

tokio::task_local! {
    /// The id of the request being served, for error bodies (see [`current_request_id`]).
    static REQUEST_ID: String;
}

/// The id of the request this task serves, if any (handlers run inside [`observe`]'s scope).
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Longest `X-Request-Id` accepted from a client (a longer or odd one is replaced).
const REQUEST_ID_BYTES_MAX: usize = 64;

/// The edge of every request: assigns a request id (the client's `X-Request-Id` when sane),
/// applies the per-IP rate limit, runs the handler inside a tracing span carrying the id, then
/// records count and latency per route template and logs one line per request.
async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= REQUEST_ID_BYTES_MAX
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(|| format!("{:016x}", rand::rng().random::<u64>()), str::to_owned);
    let client = crate::client_ip(&state, &request);
    let span = tracing::info_span!("request", request_id = %id, %method, %route);
    let started = Instant::now();
    // Probes and scrapes are never limited: a busy client must not make its gateway look dead.
    let operational = matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics");
    let limited = client.filter(|_| !operational).and_then(|ip| state.limits.ip.check(&ip).err());
    let mut response = match limited {
        Some(wait) => {
            state.metrics.rate_limited.with_label_values(&["ip"]).inc();
            REQUEST_ID
                .scope(id.clone(), async {
                    ApiError::RateLimited(crate::ratelimit::retry_after_secs(wait)).into_response()
                })
                .await
        }
        None => REQUEST_ID.scope(id.clone(), next.run(request)).instrument(span.clone()).await,
    };
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.requests.with_label_values(&[&method, &route, &status.to_string()]).inc();
    state.metrics.latency.with_label_values(&[&method, &route]).observe(elapsed.as_secs_f64());
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let _entered = span.enter();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    let client = client.map(|ip| ip.to_string()).unwrap_or_default();
    if status >= 500 {
        tracing::warn!(status, latency_ms, %client, "request");
    } else if status >= 400 {
        tracing::info!(status, latency_ms, %client, "request");
    } else {
        tracing::debug!(status, latency_ms, %client, "request");
    }
    response
}

pub(crate) fn request_id() -> String {
    format!("rq-{:032x}", rand::rng().random::<u128>())
}

pub(crate) fn parse_id<T: std::str::FromStr>(raw: &str, what: &'static str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound(what))
}

/// Proposes a catalog or account command to the meta group and returns its reply.
pub(crate) async fn catalog_command(
    state: &AppState,
    command: CatalogCommand,
) -> Result<CatalogReply, ApiError> {
    let proposal =
        Proposal { request_id: None, command: Command::Meta(MetaCommand::Catalog(command)) };
    match state.cluster.propose(META_GROUP, &proposal).await?? {
        Reply::Meta(MetaReply::Catalog(reply)) => Ok(reply),
        other => Err(ApiError::Internal(format!("unexpected catalog reply {other:?}"))),
    }
}

/// Reads the catalog from the meta group; `None` when the record does not exist.
/// `linearizable` reads go through the leader; others may trail it by the replication delay
/// and are served from the gateway's [`crate::cache`] when it holds them.
pub(crate) async fn catalog_query(
    state: &AppState,
    query: CatalogQuery,
    linearizable: bool,
) -> Result<Option<CatalogQueryResult>, ApiError> {
    let cached = !linearizable && crate::cache::cacheable(&query);
    if cached {
        if let Some(hit) = state.cache.get(&query) {
            state.metrics.catalog_cache.with_label_values(&["hit"]).inc();
            return Ok(Some(hit));
        }
        state.metrics.catalog_cache.with_label_values(&["miss"]).inc();
    }
    let ticket = state.cache.ticket();
    let read = InvQuery::Meta(MetaQuery::Catalog(query.clone()));
    // A miss that will be cached is read linearizably: a lagging replica's answer could
    // predate a change the cache's feed watcher has already seen, and would then be served
    // until the next change. Hits never touch the cluster.
    match state.cluster.query(META_GROUP, &read, linearizable || cached).await? {
        QueryResult::Meta(MetaQueryResult::Catalog(result)) => {
            if cached {
                state.cache.put(&query, &result, ticket);
            }
            Ok(Some(*result))
        }
        QueryResult::NotFound => Ok(None),
        other => Err(ApiError::Internal(format!("unexpected catalog answer {other:?}"))),
    }
}

/// `?page=&per_page=` of every list endpoint.
#[derive(Debug, Clone, Copy, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1..=100 (default 20).
    pub per_page: Option<u32>,
}

impl PageParams {
    /// The state machine's offset/limit.
    ///
    /// # Errors
    /// Out-of-range values.
    pub fn page(&self) -> Result<proto::catalog::Page, ApiError> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(20);
        if page == 0 || page > 100_000 {
            return Err(ApiError::Validation("page must be 1..=100000".into()));
        }
        if !(1..=100).contains(&per_page) {
            return Err(ApiError::Validation("per_page must be 1..=100".into()));
        }
        Ok(proto::catalog::Page { offset: (page - 1).saturating_mul(per_page), limit: per_page })
    }
}

/// A page of a list, as every list endpoint answers.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PageBody<T> {
    /// The items.
    pub items: Vec<T>,
    /// Matching items in total.
    pub total: u64,
    /// This page (1-based).
    pub page: u32,
    /// Items per page.
    pub per_page: u32,
}

impl<T> PageBody<T> {
    /// Converts a state-machine page.
    pub fn from_paged<U>(paged: proto::catalog::Paged<U>, f: impl FnMut(U) -> T) -> Self {
        let per_page = paged.limit.max(1);
        PageBody {
            items: paged.items.into_iter().map(f).collect(),
            total: paged.total,
            page: paged.offset / per_page + 1,
            per_page,
        }
    }
}

/// A short, bounded query-string value (filters, dates).
pub(crate) fn check_param(name: &str, value: &Option<String>) -> Result<(), ApiError> {
    match value {
        Some(v) if v.is_empty() || v.len() > 200 => {
            Err(ApiError::Validation(format!("{name} must be 1..=200 characters")))
        }
        _ => Ok(()),
    }
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
                | Command::RequestCancel { .. }
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

/// Ready when the meta group answers a linearizable read with a shard map that has shards
/// (a bootstrapping cluster is not ready until its map is recorded).
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "Ready", body = String, content_type = "text/plain"),
    (status = 503, description = "Cluster unreachable or not bootstrapped", body = crate::openapi::Problem, content_type = "application/problem+json"),
))]
async fn readyz(State(state): State<Arc<AppState>>) -> Result<&'static str, ApiError> {
    state.cluster.query(META_GROUP, &InvQuery::Digest, true).await?;
    let topology = state.cluster.refresh_topology().await?;
    if topology.shards().is_empty() {
        return Err(ApiError::Unavailable("the cluster has no shard map yet".into()));
    }
    Ok("ready")
}

/// Prometheus metrics of this gateway (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Metrics", body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<Arc<AppState>>) -> Result<String, ApiError> {
    use prometheus::Encoder;
    use std::sync::atomic::Ordering::Relaxed;
    if let Some(status) = &state.search_status {
        let gauge = |field: &str, value: u64| {
            state
                .metrics
                .search
                .with_label_values(&[field])
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        gauge("indexed_seq", status.indexed_seq.load(Relaxed));
        gauge("head_seq", status.head_seq.load(Relaxed));
        gauge("lag", status.lag());
        gauge("rebuilds", status.rebuilds.load(Relaxed));
        gauge("errors", status.errors.load(Relaxed));
    }
    let live = state.live_connections.load(Relaxed);
    state.metrics.live_connections.set(i64::try_from(live).unwrap_or(i64::MAX));
    let streams = state.live_hub.streams();
    state.metrics.live_streams.set(i64::try_from(streams).unwrap_or(i64::MAX));
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
