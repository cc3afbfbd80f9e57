//! Accounts over HTTP: register, login, refresh, logout, `/v1/me`, the admin's user list and
//! role changes, and the [`AuthUser`] extractor every signed-in endpoint takes.
//!
//! A request is authenticated by `Authorization: Bearer <access token>` (a JWT this or any
//! gateway sharing `--jwt-secret` issued, see the `auth` crate). The token carries the
//! user id and role. For staff tokens (admin, theater manager) the account is read again on
//! every request (a linearizable read of the meta group), so a demotion or a lost theater
//! applies at once; customer requests, the bulk of the traffic, need no read. A promotion
//! applies at the user's next token (refresh or login).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Extension;
use axum::Json;
use proto::catalog::{
    CatalogCommand, CatalogQuery, CatalogQueryResult, CatalogReply, Role, TheaterId, User, UserId,
};
use proto::command::Rejection;
use proto::ids::OwnerId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::json::JsonBody;
use super::params::{PageBody, PageParams};
use crate::clock::rfc3339;
use crate::clock::wall_clock_ms;
use crate::error::ApiError;
use crate::state::{AppState, ClientIp};
use auth::CredentialError;

const P: &str = "application/problem+json";
/// Longest email (RFC 5321's path limit).
const EMAIL_BYTES_MAX: usize = 254;
/// Longest display name.
const NAME_BYTES_MAX: usize = 100;

/// Account routes.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(list_users))
        .routes(routes!(set_role))
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// Account id.
    pub user_id: UserId,
    /// Role (as of the access token).
    pub role: Role,
    /// Inventory owner id of the caller: `u{user_id}`.
    pub owner: OwnerId,
    /// Theaters a theater manager runs, as of this request (empty for other roles).
    pub theaters: BTreeSet<TheaterId>,
}

impl AuthUser {
    /// The inventory owner of this user's holds and bookings.
    pub fn owner(&self) -> &OwnerId {
        &self.owner
    }

    /// The inventory owner id of an account.
    pub fn owner_of(user_id: UserId) -> OwnerId {
        OwnerId(format!("u{user_id}"))
    }

    /// Fails with 403 unless the caller is an admin.
    ///
    /// # Errors
    /// `Forbidden` for other roles.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this needs the admin role".into()))
        }
    }

    /// Whether the caller may manage `theater`: an admin, or the manager of it (as read from
    /// the account for this request).
    pub fn may_manage(&self, theater: TheaterId) -> bool {
        self.role == Role::Admin
            || (self.role == Role::TheaterManager && self.theaters.contains(&theater))
    }
}

impl FromRequestParts<Arc<AppState>> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthorized(
                "sign in: send `Authorization: Bearer <access_token>` from /v1/auth/login".into(),
            )
        })?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("expected `Authorization: Bearer <token>`".into())
            })?;
        let (user_id, role) = state.tokens.verify(token).map_err(|e| {
            ApiError::Unauthorized(format!("{e}; refresh it at /v1/auth/refresh or sign in again"))
        })?;
        state.check_user_rate(user_id)?;
        let mut user = AuthUser {
            user_id,
            role,
            owner: AuthUser::owner_of(user_id),
            theaters: BTreeSet::new(),
        };
        if role != Role::Customer {
            // Staff rights are checked against the account as it is now.
            match state.shards.catalog_query(CatalogQuery::User { user_id }, true).await? {
                Some(CatalogQueryResult::User { user: account }) => {
                    user.role = account.role.min(role);
                    user.theaters = account.theaters;
                }
                _ => return Err(ApiError::Unauthorized("the account no longer exists".into())),
            }
        }
        Ok(user)
    }
}

impl From<CredentialError> for ApiError {
    fn from(e: CredentialError) -> Self {
        match e {
            CredentialError::WeakPassword(why) => ApiError::Validation(why),
            CredentialError::InvalidToken(why) => ApiError::Unauthorized(why),
            CredentialError::Hashing(why) | CredentialError::Config(why) => ApiError::Internal(why),
        }
    }
}

/// An account as clients see it (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub user_id: UserId,
    /// Email (login).
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Theaters a theater manager runs.
    pub theaters: Vec<TheaterId>,
    /// Registration time, RFC 3339.
    pub created_at: String,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        UserView {
            user_id: user.user_id,
            email: user.email,
            name: user.name,
            role: user.role,
            theaters: user.theaters.into_iter().collect(),
            created_at: rfc3339(user.created_at_ms),
        }
    }
}

/// Tokens handed out at register, login and refresh.
#[derive(Debug, Serialize, ToSchema)]
struct TokensBody {
    /// JWT to send as `Authorization: Bearer ...`.
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
    /// Opaque token for `/v1/auth/refresh` (single use: each refresh returns a new one).
    refresh_token: String,
    /// Seconds until the refresh token expires.
    refresh_expires_in: u64,
    /// The account.
    user: UserView,
}

/// Body of `POST /v1/auth/register`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RegisterRequest {
    /// Login; stored lowercased.
    email: String,
    /// 8..=256 bytes, at least 8 characters.
    password: String,
    /// Display name, 1..=100 bytes.
    name: String,
}

/// Body of `POST /v1/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    email: String,
    password: String,
}

/// Body of `POST /v1/auth/refresh` and `POST /v1/auth/logout`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: String,
}

/// Body of `PUT /v1/admin/users/{user_id}/role`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RoleRequest {
    role: Role,
    /// Theaters a `theater_manager` runs (must exist); empty for other roles.
    #[serde(default)]
    theaters: BTreeSet<TheaterId>,
}

/// Normalizes and checks an email: lowercased, one `@` with text before it and a `.` after it,
/// no spaces or control characters anywhere (surrounding spaces are refused, not trimmed, so
/// the document's pattern states exactly what is taken).
fn normalize_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.to_lowercase();
    let valid = raw.len() <= EMAIL_BYTES_MAX
        && email.len() <= EMAIL_BYTES_MAX
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        });
    if valid {
        Ok(email)
    } else {
        Err(ApiError::Validation("email must be an address like name@example.com".into()))
    }
}

/// Issues an access token and a new refresh-token family for `user`.
async fn issue_tokens(state: &AppState, user: User) -> Result<TokensBody, ApiError> {
    let refresh_token = auth::random_token();
    let now = wall_clock_ms();
    let refresh_ttl_ms = state.tokens.refresh_ttl.as_millis() as u64;
    let command = CatalogCommand::IssueRefreshToken {
        token_hash: auth::token_hash(&refresh_token),
        user_id: user.user_id,
        expires_at_ms: now + refresh_ttl_ms,
    };
    match state.shards.catalog_command(command).await? {
        CatalogReply::User { user } => tokens_body(state, user, refresh_token),
        other => Err(ApiError::Internal(format!("unexpected catalog reply {other:?}"))),
    }
}

fn tokens_body(
    state: &AppState,
    user: User,
    refresh_token: String,
) -> Result<TokensBody, ApiError> {
    let access_token = state.tokens.issue(user.user_id, user.role, wall_clock_ms() / 1000)?;
    Ok(TokensBody {
        access_token,
        token_type: "Bearer",
        expires_in: state.tokens.access_ttl.as_secs(),
        refresh_token,
        refresh_expires_in: state.tokens.refresh_ttl.as_secs(),
        user: user.into(),
    })
}

/// Creates a customer account and signs it in.
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered and signed in", body = TokensBody),
        (status = 409, description = "Email already registered (`email-taken`)", body = crate::openapi::Problem, content_type = P),
        (status = 422, description = "Invalid email, name or a weak password", body = crate::openapi::Problem, content_type = P),
        (status = 429, description = "Too many registrations from this client IP (`rate-limited`, `Retry-After`)", body = crate::openapi::Problem, content_type = P),
    ))]
async fn register(
    State(state): State<Arc<AppState>>,
    Extension(ip): Extension<ClientIp>,
    body: Result<JsonBody<RegisterRequest>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    let JsonBody(body) = body?;
    let email = normalize_email(&body.email)?;
    // Bounds apply to what was sent (so the document can state them); the name is stored
    // without surrounding spaces.
    let name = body.name.trim().to_owned();
    if name.is_empty()
        || body.name.len() > NAME_BYTES_MAX
        || body.name.chars().any(char::is_control)
    {
        return Err(ApiError::Validation(format!(
            "name must be 1..={NAME_BYTES_MAX} bytes without control characters"
        )));
    }
    // Accounts are what a hoarder multiplies (docs/api.md, "Limits"): bounded per client IP.
    state.check_register_rate(ip)?;
    let password_hash = state.hasher.hash(body.password).await?;
    // Ids are random in JavaScript's safe range; a clash (vanishingly rare) is retried.
    let mut attempts = 0;
    let user = loop {
        attempts += 1;
        let command = CatalogCommand::RegisterUser {
            user_id: client::random_id(),
            email: email.clone(),
            name: name.clone(),
            password_hash: password_hash.clone(),
            role: Role::Customer,
        };
        match state.shards.catalog_command(command).await {
            Ok(CatalogReply::User { user }) => break user,
            Ok(other) => return Err(ApiError::Internal(format!("unexpected reply {other:?}"))),
            Err(ApiError::Rejected(Rejection::CatalogConflict { .. })) if attempts < 3 => {}
            Err(e) => return Err(e),
        }
    };
    tracing::info!(user_id = user.user_id, "account registered");
    Ok((StatusCode::CREATED, Json(issue_tokens(&state, user).await?)))
}

/// Signs in with email and password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokensBody),
        (status = 401, description = "Wrong email or password (the same answer for both)", body = crate::openapi::Problem, content_type = P),
        (status = 422, description = "Malformed body", body = crate::openapi::Problem, content_type = P),
    ))]
async fn login(
    State(state): State<Arc<AppState>>,
    body: Result<JsonBody<LoginRequest>, ApiError>,
) -> Result<Json<TokensBody>, ApiError> {
    let JsonBody(body) = body?;
    if body.password.len() > auth::PASSWORD_BYTES_MAX {
        return Err(ApiError::Unauthorized("wrong email or password".into()));
    }
    let user = match normalize_email(&body.email) {
        Ok(email) => {
            match state.shards.catalog_query(CatalogQuery::UserByEmail { email }, true).await? {
                Some(CatalogQueryResult::User { user }) => Some(user),
                _ => None,
            }
        }
        Err(_) => None,
    };
    // Unknown emails are verified against a decoy hash, so timing does not reveal accounts.
    let phc = user.as_ref().map(|u| u.password_hash.clone());
    if !state.hasher.verify(body.password, phc).await {
        return Err(ApiError::Unauthorized("wrong email or password".into()));
    }
    let user = user.expect("verify succeeds only against a real account's hash");
    Ok(Json(issue_tokens(&state, user).await?))
}

/// Exchanges a refresh token for a new access token and a new refresh token. Each refresh
/// token works once: presenting a used one again signs that session out everywhere.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokensBody),
        (status = 401, description = "Unknown, expired or revoked token (`refresh-token-invalid`), or a reused one (`refresh-token-reused`)", body = crate::openapi::Problem, content_type = P),
    ))]
async fn refresh(
    State(state): State<Arc<AppState>>,
    body: Result<JsonBody<RefreshRequest>, ApiError>,
) -> Result<Json<TokensBody>, ApiError> {
    let JsonBody(body) = body?;
    if body.refresh_token.len() > 128 {
        return Err(ApiError::Rejected(Rejection::RefreshTokenInvalid));
    }
    let new_token = auth::random_token();
    let command = CatalogCommand::RotateRefreshToken {
        old_hash: auth::token_hash(&body.refresh_token),
        new_hash: auth::token_hash(&new_token),
        expires_at_ms: wall_clock_ms() + state.tokens.refresh_ttl.as_millis() as u64,
    };
    match state.shards.catalog_command(command).await? {
        CatalogReply::User { user } => Ok(Json(tokens_body(&state, user, new_token)?)),
        other => Err(ApiError::Internal(format!("unexpected catalog reply {other:?}"))),
    }
}

/// Signs a session out: its refresh token (and every token rotated from the same login)
/// stops working. Access tokens already issued expire on their own.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    request_body = RefreshRequest,
    responses((status = 204, description = "Signed out (also for unknown tokens)")))]
async fn logout(
    State(state): State<Arc<AppState>>,
    body: Result<JsonBody<RefreshRequest>, ApiError>,
) -> Result<StatusCode, ApiError> {
    let JsonBody(body) = body?;
    if body.refresh_token.len() <= 128 {
        let token_hash = auth::token_hash(&body.refresh_token);
        state.shards.catalog_command(CatalogCommand::RevokeRefreshToken { token_hash }).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn load_user(state: &AppState, user_id: UserId) -> Result<User, ApiError> {
    match state.shards.catalog_query(CatalogQuery::User { user_id }, true).await? {
        Some(CatalogQueryResult::User { user }) => Ok(user),
        _ => Err(ApiError::NotFound("user")),
    }
}

/// The signed-in account.
#[utoipa::path(get, path = "/v1/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = UserView),
        (status = 401, description = "Not signed in", body = crate::openapi::Problem, content_type = P),
    ))]
async fn me(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(load_user(&state, user.user_id).await?.into()))
}

/// Every account, by id (admin).
#[utoipa::path(get, path = "/v1/admin/users", tag = "admin", security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of accounts", body = PageBody<UserView>),
        (status = 403, description = "Not an admin", body = crate::openapi::Problem, content_type = P),
    ))]
async fn list_users(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<PageBody<UserView>>, ApiError> {
    user.require_admin()?;
    let Query(params) = params?;
    let page = params.page()?;
    match state.shards.catalog_query(CatalogQuery::Users { page }, true).await? {
        Some(CatalogQueryResult::Users { page }) => {
            Ok(Json(PageBody::from_paged(page, UserView::from)))
        }
        other => Err(ApiError::Internal(format!("unexpected catalog answer {other:?}"))),
    }
}

/// Sets an account's role and, for a theater manager, the theaters it runs (admin).
#[utoipa::path(put, path = "/v1/admin/users/{user_id}/role", tag = "admin", security(("bearer" = [])),
    params(("user_id" = u64, Path, description = "The account")),
    request_body = RoleRequest,
    responses(
        (status = 200, description = "Updated; a demotion applies at once, a promotion at the user's next token", body = UserView),
        (status = 403, description = "Not an admin", body = crate::openapi::Problem, content_type = P),
        (status = 404, description = "No such user or theater", body = crate::openapi::Problem, content_type = P),
        (status = 422, description = "Theaters given for a role that has none", body = crate::openapi::Problem, content_type = P),
    ))]
async fn set_role(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    target: Result<Path<u64>, PathRejection>,
    body: Result<JsonBody<RoleRequest>, ApiError>,
) -> Result<Json<UserView>, ApiError> {
    user.require_admin()?;
    let Path(user_id) = target.map_err(|_| ApiError::NotFound("user"))?;
    let JsonBody(body) = body?;
    let command = CatalogCommand::SetUserRole { user_id, role: body.role, theaters: body.theaters };
    match state.shards.catalog_command(command).await? {
        CatalogReply::User { user: updated } => {
            tracing::info!(by = user.user_id, user_id, role = ?updated.role, "role changed");
            Ok(Json(updated.into()))
        }
        other => Err(ApiError::Internal(format!("unexpected catalog reply {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(normalize_email("Asha@Example.COM").unwrap(), "asha@example.com");
        let bad = [
            "",
            "asha",
            "@example.com",
            "asha@",
            "asha@localhost",
            "a b@x.com",
            "a@b@c.com",
            " asha@example.com",
            "asha@example.com\n",
            "as\u{1}ha@example.com",
        ];
        for bad in bad {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
        assert!(normalize_email(&format!("{}@example.com", "a".repeat(250))).is_err());
        // The document's pattern takes exactly what this takes (lengths aside).
        let pattern = regex::Regex::new(&crate::openapi::contract::email_pattern()).unwrap();
        for email in bad.iter().chain(&["asha@example.com", "a@b.", "x@.y", "a.b@c.d.e"]) {
            assert_eq!(pattern.is_match(email), normalize_email(email).is_ok(), "{email:?}");
        }
    }
}
