//! The public REST API (v1): routes, request validation and JSON shapes.
//!
//! The top layer: handlers validate at the edge (sizes, formats, ids), then call the cluster
//! through [`Shards`](crate::shards::Shards) or run a workflow ([`Saga`](crate::saga::Saga)).
//! One module per area: [`auth`] (who is calling), [`catalog`] (browse), [`booking`] (holds and
//! bookings), [`reviews`], [`search`], [`live`], [`admin`]; [`params`] holds the shapes they
//! share; [`web`] serves the embedded web site; this module holds the router and the request
//! observer.

pub mod admin;
pub mod auth;
pub mod booking;
pub mod catalog;
pub mod cluster;
pub mod json;
pub mod live;
pub mod params;
pub mod reviews;
pub mod search;
pub mod web;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use rand::Rng;
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, REQUEST_ID};
use crate::limits::BODY_BYTES_MAX;
use crate::openapi::contract;
use crate::ratelimit::retry_after_secs;
use crate::state::{client_ip, AppState, ClientIp};

/// The gateway's routes, with `/openapi.json` describing them.
pub fn routes(state: Arc<AppState>) -> Router {
    let (documented, api) = documented_routes().split_for_parts();
    // Rendered once: the document is static for the life of the process.
    let settings = contract::Settings { hold_ttl_max_ms: state.holds.ttl_max_ms };
    let api = contract::exact(serde_json::to_value(&api).unwrap_or_default(), settings);
    let api: Arc<str> = serde_json::to_string(&api).unwrap_or_else(|_| "{}".into()).into();
    documented
        .route(
            "/openapi.json",
            get(move || async move {
                ([(axum::http::header::CONTENT_TYPE, "application/json")], api.to_string())
            }),
        )
        .merge(web::routes())
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
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
        .merge(cluster::routes())
}

/// The OpenAPI document of every documented route, made exact (what `/openapi.json` serves
/// with the default flags).
pub fn openapi() -> serde_json::Value {
    let api = serde_json::to_value(documented_routes().split_for_parts().1).unwrap_or_default();
    contract::exact(api, contract::Settings::default())
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "Alive", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// Longest `X-Request-Id` accepted from a client (a longer or odd one is replaced).
const REQUEST_ID_BYTES_MAX: usize = 64;

/// The edge of every request: assigns a request id (the client's `X-Request-Id` when sane),
/// applies the per-IP rate limit, runs the handler inside a tracing span carrying the id, then
/// records count and latency per route template and logs one line per request.
async fn observe(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
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
    let client = client_ip(&state, &request);
    request.extensions_mut().insert(ClientIp(client));
    let span = tracing::info_span!("request", request_id = %id, %method, %route);
    let started = Instant::now();
    // Probes, scrapes and the contract are never limited: a busy client must not make its
    // gateway look dead.
    let operational =
        matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics" | "/openapi.json");
    let limited = client.filter(|_| !operational).and_then(|ip| state.limits.ip.check(&ip).err());
    let mut response = match limited {
        Some(wait) => {
            state.metrics.rate_limited.with_label_values(&["ip"]).inc();
            REQUEST_ID
                .scope(id.clone(), async {
                    ApiError::RateLimited(retry_after_secs(wait)).into_response()
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

/// Ready when the meta group answers a linearizable read with a shard map that has shards
/// (a bootstrapping cluster is not ready until its map is recorded).
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "Ready", body = String, content_type = "text/plain"),
    (status = 503, description = "Cluster unreachable or not bootstrapped", body = crate::openapi::Problem, content_type = "application/problem+json"),
))]
async fn readyz(State(state): State<Arc<AppState>>) -> Result<&'static str, ApiError> {
    state.shards.ready().await?;
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
