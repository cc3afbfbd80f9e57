//! The catalog and accounts vocabulary, replicated in the meta group (group 0) next to the shard
//! map: users and refresh tokens, movies, theaters, screens with seat layouts, shows, reviews.
//!
//! Why the meta group: these are small, rarely written, read-mostly records that every gateway
//! must agree on (an email is taken once; a show is placed on exactly one shard when it is
//! created), so they get one linearizable home. Seats, holds and bookings stay in the inventory
//! shards, which is where the write rate is.
//!
//! Ids are chosen by the proposer (random, within JavaScript's safe integer range, or given by
//! an admin), so every command is naturally idempotent: re-applying a create with the same id and
//! the same content returns the existing record; the same id with different content is a
//! [`Rejection::CatalogConflict`](crate::command::Rejection::CatalogConflict). Updates replace
//! a record's spec wholesale. Time (`created_at_ms`, token expiry) is the entry's log time, never a
//! replica's clock.
//!
//! Password hashing (argon2id) happens in the gateway before proposing; the state machine only
//! stores and compares the PHC strings and SHA-256 hex digests of refresh tokens.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::{GroupId, ShowId};

/// A user account id (proposer-chosen). The inventory owner id of a user is `u{user_id}`.
pub type UserId = u64;
/// A movie id.
pub type MovieId = u64;
/// A theater id.
pub type TheaterId = u64;
/// A screen id (unique cluster-wide, not per theater).
pub type ScreenId = u64;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Browses, holds, books, cancels and reviews; sees only their own holds and bookings.
    Customer,
    /// A customer who also runs the screens and shows of the theaters listed in
    /// [`User::theaters`].
    TheaterManager,
    /// Everything, everywhere.
    Admin,
}

/// A user account as stored (the gateway never returns `password_hash`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// Id.
    pub user_id: UserId,
    /// Login, lowercased by the gateway; unique.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Theaters a theater manager runs (empty for other roles).
    pub theaters: BTreeSet<TheaterId>,
    /// Log time of registration, Unix ms.
    pub created_at_ms: u64,
}

/// Descriptive fields of a movie (what admins send).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MovieSpec {
    /// Title.
    pub title: String,
    /// Synopsis.
    pub description: String,
    /// Genres, e.g. `["action", "drama"]` (lowercase).
    pub genres: Vec<String>,
    /// Original language, e.g. `hindi` (lowercase).
    pub language: String,
    /// Running time in minutes.
    pub duration_min: u32,
    /// Release date, `YYYY-MM-DD`.
    pub release_date: String,
    /// Leading cast.
    pub cast: Vec<String>,
    /// Director.
    pub director: String,
    /// Certificate, e.g. `UA`, `PG-13`.
    pub certificate: String,
    /// Poster image URL (http or https).
    pub poster_url: Option<String>,
}

/// Aggregate of a movie's reviews, maintained as reviews are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rating {
    /// Number of reviews.
    pub count: u64,
    /// Sum of their stars.
    pub stars_sum: u64,
}

impl Rating {
    /// Average stars, `None` without reviews.
    pub fn average(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)]
        (self.count > 0).then(|| self.stars_sum as f64 / self.count as f64)
    }
}

/// A movie as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Movie {
    /// Id.
    pub movie_id: MovieId,
    /// Descriptive fields.
    #[serde(flatten)]
    pub spec: MovieSpec,
    /// Review aggregate.
    pub rating: Rating,
}

/// Descriptive fields of a theater.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TheaterSpec {
    /// Name.
    pub name: String,
    /// City, as displayed (browse matches it case-insensitively).
    pub city: String,
    /// Street address.
    pub address: String,
    /// Latitude in millionths of a degree (integers keep the state machine exact).
    pub lat_e6: i32,
    /// Longitude in millionths of a degree.
    pub lon_e6: i32,
    /// Amenities, e.g. `["parking", "food_court"]`.
    pub amenities: Vec<String>,
    /// Offset of the theater's local time from UTC, in minutes (`date` filters use local days).
    pub utc_offset_minutes: i32,
}

/// A theater as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Theater {
    /// Id.
    pub theater_id: TheaterId,
    /// Descriptive fields.
    #[serde(flatten)]
    pub spec: TheaterSpec,
}

/// Projection format of a screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ScreenFormat {
    /// Flat.
    #[serde(rename = "2D")]
    TwoD,
    /// Stereoscopic.
    #[serde(rename = "3D")]
    ThreeD,
    /// IMAX.
    #[serde(rename = "IMAX")]
    Imax,
}

/// One row of a screen's seat layout: the same shape a show's inventory layout uses, so a
/// show's seats are built from its screen's rows plus the show's prices.
pub type ScreenRow = crate::layout::RowSpec;

/// Descriptive fields and seat layout of a screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScreenSpec {
    /// Name, e.g. `Audi 1`.
    pub name: String,
    /// Format.
    pub format: ScreenFormat,
    /// Rows from the screen backwards.
    pub rows: Vec<ScreenRow>,
}

impl ScreenSpec {
    /// Number of seats.
    pub fn capacity(&self) -> u32 {
        self.rows.iter().fold(0u32, |sum, row| sum.saturating_add(row.seats))
    }

    /// Distinct seat categories, sorted.
    pub fn categories(&self) -> BTreeSet<&str> {
        self.rows.iter().map(|r| r.category.as_str()).collect()
    }
}

/// A screen as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Screen {
    /// Id.
    pub screen_id: ScreenId,
    /// Theater it belongs to.
    pub theater_id: TheaterId,
    /// Fields and layout.
    #[serde(flatten)]
    pub spec: ScreenSpec,
}

/// What a show is scheduled as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ShowSpec {
    /// The movie.
    pub movie_id: MovieId,
    /// The screen (its theater is implied).
    pub screen_id: ScreenId,
    /// Start, Unix ms.
    pub starts_at_ms: u64,
    /// Price of one seat per category, in minor units; must price every category of the screen.
    pub prices: BTreeMap<String, i64>,
    /// ISO 4217 currency of the prices.
    pub currency: String,
}

/// Lifecycle of a show in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ShowStatus {
    /// On sale.
    Scheduled,
    /// Cancelled by an admin or its theater's manager; bookings are refunded.
    Cancelled,
}

/// A show as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Show {
    /// Id (also its inventory id).
    pub show_id: ShowId,
    /// Theater of its screen (denormalised for listings and manager checks).
    pub theater_id: TheaterId,
    /// What was scheduled.
    #[serde(flatten)]
    pub spec: ShowSpec,
    /// Lifecycle.
    pub status: ShowStatus,
    /// Inventory shard holding its seats (chosen when the show was created).
    pub group: GroupId,
}

/// A user's review of a movie (one per user per movie).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Review {
    /// The movie.
    pub movie_id: MovieId,
    /// The author.
    pub user_id: UserId,
    /// Author's display name when written.
    pub author: String,
    /// 1..=5.
    pub stars: u8,
    /// Text (may be empty).
    pub text: String,
    /// Log time first written.
    pub created_at_ms: u64,
    /// Log time last edited.
    pub updated_at_ms: u64,
}

/// A change to the catalog or accounts (meta group only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogCommand {
    /// Creates an account. Replaying the same id and email returns it; another id with a taken
    /// email is [`Rejection::EmailTaken`](crate::command::Rejection::EmailTaken).
    RegisterUser {
        /// Proposer-chosen id.
        user_id: UserId,
        /// Lowercased email.
        email: String,
        /// Display name.
        name: String,
        /// Argon2id PHC string, computed by the gateway.
        password_hash: String,
        /// Role (the public register endpoint only ever sends `customer`).
        role: Role,
    },
    /// Changes a user's role and managed theaters (admin).
    SetUserRole {
        /// The user.
        user_id: UserId,
        /// New role.
        role: Role,
        /// Theaters, for a theater manager (must exist); must be empty for other roles.
        theaters: BTreeSet<TheaterId>,
    },
    /// Records a new refresh-token family at login.
    IssueRefreshToken {
        /// SHA-256 hex of the token.
        token_hash: String,
        /// The user.
        user_id: UserId,
        /// Expiry, Unix ms (compared with log time).
        expires_at_ms: u64,
    },
    /// Exchanges a refresh token for its successor. Presenting a token that was already
    /// rotated revokes its whole family (token theft detection) and is rejected.
    RotateRefreshToken {
        /// SHA-256 hex of the presented token.
        old_hash: String,
        /// SHA-256 hex of the new token.
        new_hash: String,
        /// Expiry of the new token, Unix ms.
        expires_at_ms: u64,
    },
    /// Revokes the family of a refresh token (logout). Unknown tokens are a no-op.
    RevokeRefreshToken {
        /// SHA-256 hex of the token.
        token_hash: String,
    },
    /// Creates or replaces a movie (its rating is kept).
    PutMovie {
        /// Id.
        movie_id: MovieId,
        /// Fields.
        spec: MovieSpec,
    },
    /// Creates or replaces a theater.
    PutTheater {
        /// Id.
        theater_id: TheaterId,
        /// Fields.
        spec: TheaterSpec,
    },
    /// Creates or replaces a screen. A screen with scheduled shows keeps its layout: only
    /// name and format may change then (shows' seats were fixed at creation).
    PutScreen {
        /// Id.
        screen_id: ScreenId,
        /// Its theater (cannot change once created).
        theater_id: TheaterId,
        /// Fields and layout.
        spec: ScreenSpec,
    },
    /// Records a show and places it on the least-loaded inventory shard in the same entry
    /// (replying [`CatalogReply::Show`] with the shard); the gateway then creates its seats
    /// there. Replaying the same id and spec returns the existing show.
    CreateShow {
        /// Proposer-chosen id.
        show_id: ShowId,
        /// What to schedule.
        spec: ShowSpec,
    },
    /// Moves a scheduled show's start time (prices and seats are fixed at creation).
    RescheduleShow {
        /// The show.
        show_id: ShowId,
        /// New start, Unix ms.
        starts_at_ms: u64,
    },
    /// Marks a show cancelled in the catalog (the gateway then cancels it on its shard, which
    /// refunds its bookings). Idempotent.
    CancelShow {
        /// The show.
        show_id: ShowId,
    },
    /// Creates or edits the user's review of a movie and updates the movie's rating.
    PutReview {
        /// The movie.
        movie_id: MovieId,
        /// The author.
        user_id: UserId,
        /// 1..=5.
        stars: u8,
        /// Text.
        text: String,
    },
    /// Deletes the user's review of a movie (no-op if none) and updates the rating.
    DeleteReview {
        /// The movie.
        movie_id: MovieId,
        /// The author.
        user_id: UserId,
    },
}

impl CatalogCommand {
    /// Stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            CatalogCommand::RegisterUser { .. } => "register_user",
            CatalogCommand::SetUserRole { .. } => "set_user_role",
            CatalogCommand::IssueRefreshToken { .. } => "issue_refresh_token",
            CatalogCommand::RotateRefreshToken { .. } => "rotate_refresh_token",
            CatalogCommand::RevokeRefreshToken { .. } => "revoke_refresh_token",
            CatalogCommand::PutMovie { .. } => "put_movie",
            CatalogCommand::PutTheater { .. } => "put_theater",
            CatalogCommand::PutScreen { .. } => "put_screen",
            CatalogCommand::CreateShow { .. } => "create_catalog_show",
            CatalogCommand::RescheduleShow { .. } => "reschedule_show",
            CatalogCommand::CancelShow { .. } => "cancel_catalog_show",
            CatalogCommand::PutReview { .. } => "put_review",
            CatalogCommand::DeleteReview { .. } => "delete_review",
        }
    }
}

/// The successful result of a [`CatalogCommand`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogReply {
    /// `RegisterUser`, `SetUserRole`, `IssueRefreshToken`, `RotateRefreshToken`.
    User {
        /// The user (with hash: the gateway strips it).
        user: User,
    },
    /// `RevokeRefreshToken`.
    Revoked,
    /// `PutMovie`.
    Movie {
        /// The movie.
        movie: Movie,
    },
    /// `PutTheater`.
    Theater {
        /// The theater.
        theater: Theater,
    },
    /// `PutScreen`.
    Screen {
        /// The screen.
        screen: Screen,
    },
    /// `CreateShow`, `RescheduleShow`, `CancelShow`.
    Show {
        /// The show (with its shard).
        show: Show,
    },
    /// `PutReview`.
    Review {
        /// The review.
        review: Review,
        /// The movie's rating after it.
        rating: Rating,
    },
    /// `DeleteReview`.
    ReviewDeleted {
        /// The movie's rating after it.
        rating: Rating,
    },
}

/// Offset pagination of a list read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page {
    /// Items to skip.
    pub offset: u32,
    /// Items to return (the state machine caps it at its maximum).
    pub limit: u32,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Paged<T> {
    /// The items.
    pub items: Vec<T>,
    /// Matching items in total.
    pub total: u64,
    /// Offset of the first item.
    pub offset: u32,
    /// Limit applied.
    pub limit: u32,
}

/// A city and how much runs there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CityView {
    /// City name as first written.
    pub city: String,
    /// Theaters in it.
    pub theaters: u64,
}

/// Filters of the movie listing. Strings match case-insensitively; `q` is a substring of the
/// title, cast or director.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovieFilter {
    /// Only movies with a scheduled show in this city starting at or after `now_ms`.
    pub city: Option<String>,
    /// Only movies with this genre.
    pub genre: Option<String>,
    /// Only movies in this language.
    pub language: Option<String>,
    /// Substring of title, cast or director.
    pub q: Option<String>,
    /// The reader's clock (reads are not replicated), for "upcoming".
    pub now_ms: u64,
}

/// A show with what a listing needs to display it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShowSummary {
    /// The show.
    pub show: Show,
    /// Movie title.
    pub movie_title: String,
    /// Screen name.
    pub screen_name: String,
    /// Screen format.
    pub format: ScreenFormat,
}

/// A theater's shows in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TheaterShows {
    /// The theater.
    pub theater: Theater,
    /// Its shows, by start time.
    pub shows: Vec<ShowSummary>,
}

/// Everything a show page needs except live seat states (those come from its shard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShowDetail {
    /// The show.
    pub show: Show,
    /// Its movie.
    pub movie: Movie,
    /// Its theater.
    pub theater: Theater,
    /// Its screen and layout.
    pub screen: Screen,
}

/// A read of the catalog and accounts (meta group only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogQuery {
    /// One user by id.
    User {
        /// The user.
        user_id: UserId,
    },
    /// One user by (lowercased) email, for login.
    UserByEmail {
        /// The email.
        email: String,
    },
    /// Users, by id (admin).
    Users {
        /// Page.
        page: Page,
    },
    /// Cities with theaters, by name.
    Cities,
    /// Movies matching a filter, by title then id.
    Movies {
        /// Filter.
        filter: MovieFilter,
        /// Page.
        page: Page,
    },
    /// One movie.
    Movie {
        /// The movie.
        movie_id: MovieId,
    },
    /// Scheduled shows of a movie in a city on a local date, grouped by theater (theaters by
    /// name, shows by start).
    MovieShows {
        /// The movie.
        movie_id: MovieId,
        /// City (case-insensitive).
        city: String,
        /// Local date `YYYY-MM-DD` in each theater's offset.
        date: String,
    },
    /// Theaters, optionally in one city, by name then id.
    Theaters {
        /// City filter (case-insensitive).
        city: Option<String>,
        /// Page.
        page: Page,
    },
    /// One theater and its screens.
    Theater {
        /// The theater.
        theater_id: TheaterId,
    },
    /// A theater's shows on a local date (cancelled ones included, marked), by start.
    TheaterShows {
        /// The theater.
        theater_id: TheaterId,
        /// Local date `YYYY-MM-DD`.
        date: String,
    },
    /// One show with its movie, theater and screen.
    Show {
        /// The show.
        show_id: ShowId,
    },
    /// A movie's reviews, most recently edited first.
    Reviews {
        /// The movie.
        movie_id: MovieId,
        /// Page.
        page: Page,
    },
    /// The change feed after a cursor, oldest first (see [`CatalogChange`]).
    Changes {
        /// Return changes with `seq > after` (0: from the start of what is retained).
        after: u64,
        /// At most this many (capped by the state machine).
        limit: u32,
    },
    /// Search documents of movies as of `now_ms` (upcoming shows start after it).
    SearchDocs {
        /// The movies (at most [`SEARCH_DOCS_MAX`]).
        movie_ids: Vec<MovieId>,
        /// Shows starting at or before this are not upcoming.
        now_ms: u64,
    },
    /// Movie ids after a cursor, ascending (a full re-index walks them).
    MovieIds {
        /// Start after this id (0: from the first).
        after: MovieId,
        /// At most this many (capped by the state machine).
        limit: u32,
    },
}

/// The answer to a [`CatalogQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogQueryResult {
    /// `User`, `UserByEmail`.
    User {
        /// The user.
        user: User,
    },
    /// `Users`.
    Users {
        /// The page.
        page: Paged<User>,
    },
    /// `Cities`.
    Cities {
        /// The cities.
        cities: Vec<CityView>,
    },
    /// `Movies`.
    Movies {
        /// The page.
        page: Paged<Movie>,
    },
    /// `Movie`.
    Movie {
        /// The movie.
        movie: Movie,
    },
    /// `MovieShows`.
    MovieShows {
        /// By theater.
        theaters: Vec<TheaterShows>,
    },
    /// `Theaters`.
    Theaters {
        /// The page.
        page: Paged<Theater>,
    },
    /// `Theater`.
    Theater {
        /// The theater.
        theater: Theater,
        /// Its screens, by id.
        screens: Vec<Screen>,
    },
    /// `TheaterShows`.
    TheaterShows {
        /// The theater and its shows.
        listing: TheaterShows,
    },
    /// `Show`.
    Show {
        /// The show page.
        detail: Box<ShowDetail>,
    },
    /// `Reviews`.
    Reviews {
        /// The page.
        page: Paged<Review>,
        /// The movie's rating.
        rating: Rating,
    },
    /// `Changes`.
    Changes {
        /// Changes after the cursor, oldest first.
        changes: Vec<CatalogChange>,
        /// Sequence number of the newest change (0 when there was none).
        head: u64,
        /// Changes after the cursor were already dropped from the feed (it keeps the most
        /// recent ones): the reader must rebuild from the current state, then read from `head`.
        truncated: bool,
    },
    /// `SearchDocs`.
    SearchDocs {
        /// Documents of the movies that exist, in the order asked.
        docs: Vec<MovieDoc>,
        /// Asked-for movies that do not exist (delete them from an index).
        missing: Vec<MovieId>,
    },
    /// `MovieIds`.
    MovieIds {
        /// Ids, ascending.
        ids: Vec<MovieId>,
    },
}

/// Most movies one `SearchDocs` read covers.
pub const SEARCH_DOCS_MAX: usize = 500;

/// What a catalog change touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeEntity {
    /// A movie was created or changed.
    Movie(MovieId),
    /// A theater was created or changed.
    Theater(TheaterId),
    /// A screen was created or changed.
    Screen(ScreenId),
    /// A show was created, rescheduled or cancelled.
    Show(ShowId),
    /// A movie's rating changed (a review was written or deleted).
    Rating(MovieId),
}

/// One entry of the meta group's catalog change feed. Sequence numbers are assigned in apply
/// order by the replicated state machine, so every replica has the same feed: a reader that
/// resumes after `seq` from any replica, after any leader change, sees no gap and no repeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogChange {
    /// Position in the feed, from 1, without gaps.
    pub seq: u64,
    /// Log time of the change, Unix ms.
    pub at_ms: u64,
    /// What changed.
    pub entity: ChangeEntity,
    /// Movies whose search document may have changed because of it.
    pub movies: Vec<MovieId>,
}

/// A movie as the search index sees it: its fields, rating and upcoming shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovieDoc {
    /// The movie.
    pub movie: Movie,
    /// Cities with a scheduled show after `now_ms`, as spelled by their theaters, sorted.
    pub cities: Vec<String>,
    /// Start of the next scheduled show, Unix ms.
    pub next_show_ms: Option<u64>,
    /// Scheduled shows after `now_ms`.
    pub upcoming_shows: u64,
}
