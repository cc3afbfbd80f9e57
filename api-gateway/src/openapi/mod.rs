//! The OpenAPI 3.1 document served at `/openapi.json`, generated from the code: every route is
//! registered through `utoipa_axum`'s router from its handler's `#[utoipa::path]` annotation, so
//! a route cannot exist without being documented, and request/response schemas are derived from
//! the very types the handlers (de)serialize.
//!
//! This module holds what is not attached to one handler: the document's info, the bearer
//! security scheme, tags, and the problem+json schema every error uses; [`contract`] makes the
//! derived document exact (bounds, statuses, complete response types).

pub mod contract;

use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// An error body (RFC 9457 problem details). `type` is stable: clients branch on it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `https://marquee.dev/problems/{slug}`, e.g. `.../seats-unavailable`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short human summary of the type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What happened, for humans.
    pub detail: String,
    /// The request's id (also in the `X-Request-Id` header); quote it in bug reports.
    pub request_id: Option<String>,
    /// Seats that were taken (`seats-unavailable`).
    pub unavailable_seats: Option<Vec<String>>,
    /// Seconds to wait before retrying (also the `Retry-After` header) on 429, 502 and 503.
    pub retry_after_s: Option<u64>,
    /// `payment-declined`: whether the hold is still active (same seats, same expiry), so
    /// another card may pay for it under a new `Idempotency-Key`.
    pub hold_kept: Option<bool>,
}

/// The document's fixed parts; paths and schemas are added by the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Marquee",
        description = "Ticketing for cinemas and live events: browse, hold seats, book, cancel, review. \
                       Errors are application/problem+json with a stable `type`; money is in minor \
                       units with a currency; lists are paginated.",
        license(name = "Apache-2.0"),
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "browse", description = "Cities, movies, theaters, shows"),
        (name = "booking", description = "Seat maps, holds, bookings, cancellation"),
        (name = "reviews", description = "Reviews and ratings"),
        (name = "admin", description = "Catalog and operations for admins and theater managers"),
        (name = "ops", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` security scheme (JWT access tokens from `/v1/auth/*`).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}
