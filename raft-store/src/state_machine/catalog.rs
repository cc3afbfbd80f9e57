//! The catalog and accounts part of the meta group's state: users and refresh-token families,
//! movies, theaters, screens, shows and reviews, as a pure function of the log.
//!
//! Why it lives next to the shard map: show creation must place the show on a shard in the same
//! entry that records it (no orphan placements), and every gateway must agree on emails and
//! tokens. Like the rest of the state machine it reads no clock (time is the entry's `now_ms`)
//! and uses only ordered maps, so replicas agree byte for byte.
//!
//! Secondary indexes (emails, shows by movie/theater/screen, theaters by city, review order,
//! token expiry) are kept in step by every command and serialized with the state, so listings
//! stay cheap as the catalog grows (issue #6 scales it to 100k shows).
//!
//! Every successful catalog change (not account changes) is also appended to a bounded **change
//! feed** with gap-free sequence numbers, which search indexes and caches tail.
//!
//! Idempotency: ids are chosen by the proposer; a create replayed with the same content returns
//! the stored record, with other content it is a conflict; `Put*` commands upsert.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use proto::catalog::{
    CatalogChange, CatalogCommand, CatalogQuery, CatalogQueryResult, CatalogReply, ChangeEntity,
    CityView, Movie, MovieDoc, MovieFilter, MovieId, MovieSpec, Page, Paged, Review, Role, Screen,
    ScreenId, ScreenSpec, Show, ShowDetail, ShowSpec, ShowStatus, ShowSummary, Theater, TheaterId,
    TheaterShows, TheaterSpec, User, UserId, SEARCH_DOCS_MAX,
};
use proto::inventory::{Rejection, ShowId};
use proto::GroupId;
use serde::{Deserialize, Serialize};

use crate::limits::{
    CATALOG_LIST_MAX, CATALOG_PAGE_MAX, CATALOG_TEXT_BYTES_MAX, CATEGORIES_MAX, CHANGE_FEED_MAX,
    CHANGE_FEED_READ_MAX, EMAIL_BYTES_MAX, NAME_BYTES_MAX, PRICE_MINOR_MAX,
    REFRESH_FAMILIES_PER_USER_MAX, ROWS_MAX, ROW_LABEL_BYTES_MAX, ROW_SEATS_MAX, SHOW_SEATS_MAX,
    URL_BYTES_MAX, USER_NAME_BYTES_MAX,
};

const DAY_MS: u64 = 86_400_000;

/// A stored refresh token (by the SHA-256 hex of its value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RefreshToken {
    user_id: UserId,
    family: String,
    expires_at_ms: u64,
    /// Already exchanged for a successor: presenting it again means it leaked.
    used: bool,
}

/// A refresh-token family: the tokens descended from one login.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Family {
    user_id: UserId,
    /// Log time the family was issued (orders a user's families for the cap).
    issued_at_ms: u64,
    tokens: BTreeSet<String>,
}

/// The catalog and accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    users: BTreeMap<UserId, User>,
    emails: BTreeMap<String, UserId>,
    tokens: BTreeMap<String, RefreshToken>,
    /// (expiry, token hash), to prune expired tokens in order.
    token_expiry: BTreeSet<(u64, String)>,
    families: BTreeMap<String, Family>,
    /// User -> (issued at, family), oldest first.
    user_families: BTreeMap<UserId, BTreeSet<(u64, String)>>,
    movies: BTreeMap<MovieId, Movie>,
    theaters: BTreeMap<TheaterId, Theater>,
    /// Lowercased city -> theaters.
    theaters_by_city: BTreeMap<String, BTreeSet<TheaterId>>,
    screens: BTreeMap<ScreenId, Screen>,
    shows: BTreeMap<u64, Show>,
    /// Movie -> (start, show).
    shows_by_movie: BTreeMap<MovieId, BTreeSet<(u64, u64)>>,
    /// Theater -> (start, show).
    shows_by_theater: BTreeMap<TheaterId, BTreeSet<(u64, u64)>>,
    /// Screen -> scheduled (not cancelled) shows.
    scheduled_by_screen: BTreeMap<ScreenId, BTreeSet<u64>>,
    /// Movie -> user -> review.
    reviews: BTreeMap<MovieId, BTreeMap<UserId, Review>>,
    /// Movie -> (u64::MAX - updated_at, user): most recently edited first.
    review_order: BTreeMap<MovieId, BTreeSet<(u64, UserId)>>,
    /// The change feed: the most recent [`CHANGE_FEED_MAX`] changes, oldest first.
    #[serde(default)]
    changes: VecDeque<CatalogChange>,
    /// Sequence number of the newest change (0: none yet).
    #[serde(default)]
    change_seq: u64,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Rejection {
    Rejection::CatalogInvalid { field: field.into(), reason: reason.into() }
}

fn not_found(kind: &str, id: u64) -> Rejection {
    Rejection::CatalogNotFound { kind: kind.to_owned(), id }
}

fn conflict(reason: impl Into<String>) -> Rejection {
    Rejection::CatalogConflict { reason: reason.into() }
}

fn check_text(field: &str, value: &str, min: usize, max: usize) -> Result<(), Rejection> {
    if value.len() < min || value.len() > max {
        return Err(invalid(field, format!("must be {min}..={max} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

fn check_list(
    field: &str,
    items: &[String],
    max_items: usize,
    max_bytes: usize,
) -> Result<(), Rejection> {
    if items.len() > max_items {
        return Err(invalid(field, format!("at most {max_items} entries")));
    }
    for (i, item) in items.iter().enumerate() {
        check_text(&format!("{field}[{i}]"), item, 1, max_bytes)?;
    }
    Ok(())
}

/// Days since the Unix epoch of a valid `YYYY-MM-DD`, else `None`.
pub fn parse_date(date: &str) -> Option<i64> {
    let b = date.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |n, c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month[usize::try_from(m - 1).ok()?] {
        return None;
    }
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The UTC millisecond range of local day `date` at `offset_minutes` from UTC.
fn local_day_range(date: &str, offset_minutes: i32) -> Option<(u64, u64)> {
    let days = parse_date(date)?;
    let start = days * DAY_MS as i64 - i64::from(offset_minutes) * 60_000;
    let start = u64::try_from(start.max(0)).ok()?;
    Some((start, start + DAY_MS))
}

fn check_movie(spec: &MovieSpec) -> Result<(), Rejection> {
    check_text("title", &spec.title, 1, NAME_BYTES_MAX)?;
    check_text("description", &spec.description, 0, CATALOG_TEXT_BYTES_MAX)?;
    if spec.genres.is_empty() || spec.genres.len() > 10 {
        return Err(invalid("genres", "1..=10 genres"));
    }
    for (i, genre) in spec.genres.iter().enumerate() {
        if genre.is_empty()
            || genre.len() > 40
            || !genre.bytes().all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'_')
        {
            return Err(invalid(format!("genres[{i}]"), "lowercase ASCII letters, - or _, 1..=40"));
        }
    }
    check_text("language", &spec.language, 1, 40)?;
    if spec.language.chars().any(char::is_uppercase) {
        return Err(invalid("language", "must be lowercase"));
    }
    if !(1..=1000).contains(&spec.duration_min) {
        return Err(invalid("duration_min", "1..=1000 minutes"));
    }
    if parse_date(&spec.release_date).is_none() {
        return Err(invalid("release_date", "a valid YYYY-MM-DD date"));
    }
    check_list("cast", &spec.cast, 50, NAME_BYTES_MAX)?;
    check_text("director", &spec.director, 0, NAME_BYTES_MAX)?;
    check_text("certificate", &spec.certificate, 0, 16)?;
    if let Some(url) = &spec.poster_url {
        if url.len() > URL_BYTES_MAX
            || !(url.starts_with("https://") || url.starts_with("http://"))
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "poster_url",
                format!("an http(s) URL of at most {URL_BYTES_MAX} bytes"),
            ));
        }
    }
    Ok(())
}

fn check_theater(spec: &TheaterSpec) -> Result<(), Rejection> {
    check_text("name", &spec.name, 1, NAME_BYTES_MAX)?;
    check_text("city", &spec.city, 1, 100)?;
    check_text("address", &spec.address, 0, 500)?;
    if !(-90_000_000..=90_000_000).contains(&spec.lat_e6) {
        return Err(invalid("lat_e6", "within ±90 degrees (in millionths)"));
    }
    if !(-180_000_000..=180_000_000).contains(&spec.lon_e6) {
        return Err(invalid("lon_e6", "within ±180 degrees (in millionths)"));
    }
    check_list("amenities", &spec.amenities, 20, 60)?;
    if !(-14 * 60..=14 * 60).contains(&spec.utc_offset_minutes) {
        return Err(invalid("utc_offset_minutes", "within ±14 hours"));
    }
    Ok(())
}

fn check_screen(spec: &ScreenSpec) -> Result<(), Rejection> {
    check_text("name", &spec.name, 1, NAME_BYTES_MAX)?;
    if spec.rows.is_empty() || spec.rows.len() > ROWS_MAX {
        return Err(invalid("rows", format!("1..={ROWS_MAX} rows")));
    }
    let mut labels = BTreeSet::new();
    let mut total = 0u32;
    for (i, row) in spec.rows.iter().enumerate() {
        if row.label.is_empty()
            || row.label.len() > ROW_LABEL_BYTES_MAX
            || !row.label.bytes().all(|b| b.is_ascii_alphabetic())
        {
            return Err(invalid(
                format!("rows[{i}].label"),
                format!("1..={ROW_LABEL_BYTES_MAX} ASCII letters"),
            ));
        }
        if !labels.insert(row.label.to_ascii_uppercase()) {
            return Err(invalid(format!("rows[{i}].label"), "row labels must be unique"));
        }
        check_text(&format!("rows[{i}].category"), &row.category, 1, NAME_BYTES_MAX)?;
        if !(1..=ROW_SEATS_MAX).contains(&row.seats) {
            return Err(invalid(format!("rows[{i}].seats"), format!("1..={ROW_SEATS_MAX}")));
        }
        if row.aisles_after.iter().any(|&n| n == 0 || n >= row.seats) {
            return Err(invalid(
                format!("rows[{i}].aisles_after"),
                "seat numbers inside the row (1..seats)",
            ));
        }
        total += row.seats;
    }
    if total > SHOW_SEATS_MAX {
        return Err(invalid("rows", format!("at most {SHOW_SEATS_MAX} seats")));
    }
    if spec.categories().len() > CATEGORIES_MAX {
        return Err(invalid("rows", format!("at most {CATEGORIES_MAX} categories")));
    }
    Ok(())
}

fn check_currency(currency: &str) -> Result<(), Rejection> {
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid("currency", "an ISO 4217 code such as INR"));
    }
    Ok(())
}

fn paged<T: Clone>(items: impl Iterator<Item = T>, total: usize, page: Page) -> Paged<T> {
    let limit = page.limit.clamp(1, CATALOG_PAGE_MAX);
    Paged {
        items: items.skip(page.offset as usize).take(limit as usize).collect(),
        total: total as u64,
        offset: page.offset,
        limit,
    }
}

fn contains_ci(haystack: &str, needle_lower: &str) -> bool {
    haystack.to_lowercase().contains(needle_lower)
}

impl Catalog {
    /// Applies a catalog command at log time `now`. `place` puts a new show on a shard (the
    /// meta state's least-loaded placement) and is called only once the show is valid.
    ///
    /// Rejections change nothing, with one deliberate exception: presenting an already rotated
    /// refresh token revokes its family *and* is rejected (`RefreshTokenReused`), because a
    /// reused token means it leaked. Successful catalog changes are appended to the feed.
    pub fn apply(
        &mut self,
        command: &CatalogCommand,
        now: u64,
        place: &mut dyn FnMut(ShowId, u32) -> Result<GroupId, Rejection>,
    ) -> Result<CatalogReply, Rejection> {
        let reply = self.apply_command(command, now, place)?;
        self.record_change(command, now);
        Ok(reply)
    }

    /// Appends the change a successful command made to the feed (account commands are not
    /// catalog changes and are not recorded).
    fn record_change(&mut self, command: &CatalogCommand, now: u64) {
        let movie_of = |catalog: &Catalog, show: ShowId| {
            catalog.shows.get(&show.0).map(|s| vec![s.spec.movie_id]).unwrap_or_default()
        };
        let (entity, movies) = match command {
            CatalogCommand::PutMovie { movie_id, .. } => {
                (ChangeEntity::Movie(*movie_id), vec![*movie_id])
            }
            CatalogCommand::PutTheater { theater_id, .. } => {
                // Its city may have changed: every movie playing there lists its cities.
                let movies: BTreeSet<MovieId> = self
                    .shows_by_theater
                    .get(theater_id)
                    .into_iter()
                    .flatten()
                    .filter_map(|(_, show)| self.shows.get(show).map(|s| s.spec.movie_id))
                    .collect();
                (ChangeEntity::Theater(*theater_id), movies.into_iter().collect())
            }
            CatalogCommand::PutScreen { screen_id, .. } => {
                (ChangeEntity::Screen(*screen_id), Vec::new())
            }
            CatalogCommand::CreateShow { show_id, .. }
            | CatalogCommand::RescheduleShow { show_id, .. }
            | CatalogCommand::CancelShow { show_id } => {
                (ChangeEntity::Show(*show_id), movie_of(self, *show_id))
            }
            CatalogCommand::PutReview { movie_id, .. }
            | CatalogCommand::DeleteReview { movie_id, .. } => {
                (ChangeEntity::Rating(*movie_id), vec![*movie_id])
            }
            CatalogCommand::RegisterUser { .. }
            | CatalogCommand::SetUserRole { .. }
            | CatalogCommand::IssueRefreshToken { .. }
            | CatalogCommand::RotateRefreshToken { .. }
            | CatalogCommand::RevokeRefreshToken { .. } => return,
        };
        self.change_seq += 1;
        self.changes.push_back(CatalogChange { seq: self.change_seq, at_ms: now, entity, movies });
        while self.changes.len() > CHANGE_FEED_MAX {
            self.changes.pop_front();
        }
    }

    fn apply_command(
        &mut self,
        command: &CatalogCommand,
        now: u64,
        place: &mut dyn FnMut(ShowId, u32) -> Result<GroupId, Rejection>,
    ) -> Result<CatalogReply, Rejection> {
        self.prune_tokens(now);
        match command {
            CatalogCommand::RegisterUser { user_id, email, name, password_hash, role } => {
                self.register(*user_id, email, name, password_hash, *role, now)
            }
            CatalogCommand::SetUserRole { user_id, role, theaters } => {
                if !self.users.contains_key(user_id) {
                    return Err(not_found("user", *user_id));
                }
                if *role != Role::TheaterManager && !theaters.is_empty() {
                    return Err(invalid("theaters", "only a theater manager manages theaters"));
                }
                if theaters.len() > CATALOG_LIST_MAX {
                    return Err(invalid("theaters", format!("at most {CATALOG_LIST_MAX}")));
                }
                if let Some(missing) = theaters.iter().find(|t| !self.theaters.contains_key(t)) {
                    return Err(not_found("theater", *missing));
                }
                let user = self.users.get_mut(user_id).expect("checked above");
                user.role = *role;
                user.theaters = theaters.clone();
                Ok(CatalogReply::User { user: user.clone() })
            }
            CatalogCommand::IssueRefreshToken { token_hash, user_id, expires_at_ms } => {
                check_hash(token_hash)?;
                let user =
                    self.users.get(user_id).ok_or_else(|| not_found("user", *user_id))?.clone();
                if let Some(existing) = self.tokens.get(token_hash) {
                    // A replayed issue of the same token is harmless; anything else is a clash.
                    return if existing.user_id == *user_id && existing.family == *token_hash {
                        Ok(CatalogReply::User { user })
                    } else {
                        Err(conflict("token already issued"))
                    };
                }
                if *expires_at_ms <= now {
                    return Err(invalid("expires_at_ms", "must be after the entry's time"));
                }
                loop {
                    let families = self.user_families.entry(*user_id).or_default();
                    if families.len() < REFRESH_FAMILIES_PER_USER_MAX {
                        break;
                    }
                    let (_, oldest) = families.pop_first().expect("non-empty");
                    self.drop_family_tokens(&oldest);
                }
                self.user_families.entry(*user_id).or_default().insert((now, token_hash.clone()));
                self.families.insert(
                    token_hash.clone(),
                    Family { user_id: *user_id, issued_at_ms: now, tokens: BTreeSet::new() },
                );
                self.insert_token(token_hash, *user_id, token_hash, *expires_at_ms);
                Ok(CatalogReply::User { user })
            }
            CatalogCommand::RotateRefreshToken { old_hash, new_hash, expires_at_ms } => {
                check_hash(new_hash)?;
                let Some(old) = self.tokens.get(old_hash).cloned() else {
                    return Err(Rejection::RefreshTokenInvalid);
                };
                if old.used {
                    self.revoke_family(&old.family);
                    return Err(Rejection::RefreshTokenReused);
                }
                if old.expires_at_ms <= now {
                    return Err(Rejection::RefreshTokenInvalid);
                }
                if self.tokens.contains_key(new_hash) || *expires_at_ms <= now {
                    return Err(conflict("new token already issued or already expired"));
                }
                let user =
                    self.users.get(&old.user_id).ok_or(Rejection::RefreshTokenInvalid)?.clone();
                if let Some(token) = self.tokens.get_mut(old_hash) {
                    token.used = true;
                }
                self.insert_token(new_hash, old.user_id, &old.family, *expires_at_ms);
                Ok(CatalogReply::User { user })
            }
            CatalogCommand::RevokeRefreshToken { token_hash } => {
                if let Some(family) = self.tokens.get(token_hash).map(|t| t.family.clone()) {
                    self.revoke_family(&family);
                }
                Ok(CatalogReply::Revoked)
            }
            CatalogCommand::PutMovie { movie_id, spec } => {
                check_id("movie_id", *movie_id)?;
                check_movie(spec)?;
                let rating = self.movies.get(movie_id).map(|m| m.rating).unwrap_or_default();
                let movie = Movie { movie_id: *movie_id, spec: spec.clone(), rating };
                self.movies.insert(*movie_id, movie.clone());
                Ok(CatalogReply::Movie { movie })
            }
            CatalogCommand::PutTheater { theater_id, spec } => {
                check_id("theater_id", *theater_id)?;
                check_theater(spec)?;
                if let Some(old) = self.theaters.get(theater_id) {
                    let old_city = old.spec.city.to_lowercase();
                    if let Some(set) = self.theaters_by_city.get_mut(&old_city) {
                        set.remove(theater_id);
                        if set.is_empty() {
                            self.theaters_by_city.remove(&old_city);
                        }
                    }
                }
                self.theaters_by_city
                    .entry(spec.city.to_lowercase())
                    .or_default()
                    .insert(*theater_id);
                let theater = Theater { theater_id: *theater_id, spec: spec.clone() };
                self.theaters.insert(*theater_id, theater.clone());
                Ok(CatalogReply::Theater { theater })
            }
            CatalogCommand::PutScreen { screen_id, theater_id, spec } => {
                check_id("screen_id", *screen_id)?;
                check_screen(spec)?;
                if !self.theaters.contains_key(theater_id) {
                    return Err(not_found("theater", *theater_id));
                }
                if let Some(old) = self.screens.get(screen_id) {
                    if old.theater_id != *theater_id {
                        return Err(conflict("a screen cannot move to another theater"));
                    }
                    let scheduled =
                        self.scheduled_by_screen.get(screen_id).is_some_and(|s| !s.is_empty());
                    if scheduled && old.spec.rows != spec.rows {
                        return Err(conflict(
                            "the screen has scheduled shows: only its name and format may change",
                        ));
                    }
                }
                let screen =
                    Screen { screen_id: *screen_id, theater_id: *theater_id, spec: spec.clone() };
                self.screens.insert(*screen_id, screen.clone());
                Ok(CatalogReply::Screen { screen })
            }
            CatalogCommand::CreateShow { show_id, spec } => self.create_show(*show_id, spec, place),
            CatalogCommand::RescheduleShow { show_id, starts_at_ms } => {
                let show =
                    self.shows.get(&show_id.0).ok_or_else(|| not_found("show", show_id.0))?;
                if show.status == ShowStatus::Cancelled {
                    return Err(conflict("a cancelled show cannot be rescheduled"));
                }
                check_start(*starts_at_ms)?;
                let (movie, theater, old_start) =
                    (show.spec.movie_id, show.theater_id, show.spec.starts_at_ms);
                self.reindex_start(show_id.0, movie, theater, old_start, *starts_at_ms);
                let show = self.shows.get_mut(&show_id.0).expect("checked above");
                show.spec.starts_at_ms = *starts_at_ms;
                Ok(CatalogReply::Show { show: show.clone() })
            }
            CatalogCommand::CancelShow { show_id } => {
                let show =
                    self.shows.get_mut(&show_id.0).ok_or_else(|| not_found("show", show_id.0))?;
                show.status = ShowStatus::Cancelled;
                let show = show.clone();
                if let Some(set) = self.scheduled_by_screen.get_mut(&show.spec.screen_id) {
                    set.remove(&show_id.0);
                }
                Ok(CatalogReply::Show { show })
            }
            CatalogCommand::PutReview { movie_id, user_id, stars, text } => {
                if !(1..=5).contains(stars) {
                    return Err(invalid("stars", "1..=5"));
                }
                check_text("text", text, 0, CATALOG_TEXT_BYTES_MAX)?;
                let author = self
                    .users
                    .get(user_id)
                    .ok_or_else(|| not_found("user", *user_id))?
                    .name
                    .clone();
                if !self.movies.contains_key(movie_id) {
                    return Err(not_found("movie", *movie_id));
                }
                let previous = self.remove_review(*movie_id, *user_id);
                let review = Review {
                    movie_id: *movie_id,
                    user_id: *user_id,
                    author,
                    stars: *stars,
                    text: text.clone(),
                    created_at_ms: previous.as_ref().map_or(now, |r| r.created_at_ms),
                    updated_at_ms: now,
                };
                self.reviews.entry(*movie_id).or_default().insert(*user_id, review.clone());
                self.review_order.entry(*movie_id).or_default().insert((u64::MAX - now, *user_id));
                let movie = self.movies.get_mut(movie_id).expect("checked above");
                movie.rating.count += 1;
                movie.rating.stars_sum += u64::from(*stars);
                Ok(CatalogReply::Review { review, rating: movie.rating })
            }
            CatalogCommand::DeleteReview { movie_id, user_id } => {
                if !self.movies.contains_key(movie_id) {
                    return Err(not_found("movie", *movie_id));
                }
                self.remove_review(*movie_id, *user_id);
                let rating = self.movies.get(movie_id).map(|m| m.rating).unwrap_or_default();
                Ok(CatalogReply::ReviewDeleted { rating })
            }
        }
    }

    fn register(
        &mut self,
        user_id: UserId,
        email: &str,
        name: &str,
        password_hash: &str,
        role: Role,
        now: u64,
    ) -> Result<CatalogReply, Rejection> {
        check_id("user_id", user_id)?;
        if email.len() > EMAIL_BYTES_MAX
            || email.chars().any(|c| c.is_uppercase() || c.is_whitespace() || c.is_control())
            || !email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            })
        {
            return Err(invalid("email", "a lowercase address like name@example.com"));
        }
        check_text("name", name, 1, USER_NAME_BYTES_MAX)?;
        if !password_hash.starts_with("$argon2id$") || password_hash.len() > 512 {
            return Err(invalid("password_hash", "an argon2id PHC string"));
        }
        if let Some(existing) = self.users.get(&user_id) {
            return if existing.email == email {
                Ok(CatalogReply::User { user: existing.clone() })
            } else {
                Err(conflict(format!("user id {user_id} is taken")))
            };
        }
        if self.emails.contains_key(email) {
            return Err(Rejection::EmailTaken);
        }
        let user = User {
            user_id,
            email: email.to_owned(),
            name: name.to_owned(),
            password_hash: password_hash.to_owned(),
            role,
            theaters: BTreeSet::new(),
            created_at_ms: now,
        };
        self.emails.insert(email.to_owned(), user_id);
        self.users.insert(user_id, user.clone());
        Ok(CatalogReply::User { user })
    }

    fn create_show(
        &mut self,
        show_id: ShowId,
        spec: &ShowSpec,
        place: &mut dyn FnMut(ShowId, u32) -> Result<GroupId, Rejection>,
    ) -> Result<CatalogReply, Rejection> {
        if let Some(existing) = self.shows.get(&show_id.0) {
            return if existing.spec == *spec {
                Ok(CatalogReply::Show { show: existing.clone() })
            } else {
                Err(conflict(format!("show id {} is taken", show_id.0)))
            };
        }
        check_id("show_id", show_id.0)?;
        check_start(spec.starts_at_ms)?;
        check_currency(&spec.currency)?;
        if !self.movies.contains_key(&spec.movie_id) {
            return Err(not_found("movie", spec.movie_id));
        }
        let screen =
            self.screens.get(&spec.screen_id).ok_or_else(|| not_found("screen", spec.screen_id))?;
        let categories = screen.spec.categories();
        let priced: BTreeSet<&str> = spec.prices.keys().map(String::as_str).collect();
        if priced != categories {
            return Err(invalid(
                "prices",
                format!("price exactly the screen's categories: {categories:?}"),
            ));
        }
        if let Some((category, _)) =
            spec.prices.iter().find(|(_, p)| !(0..=PRICE_MINOR_MAX).contains(*p))
        {
            return Err(invalid(format!("prices.{category}"), format!("0..={PRICE_MINOR_MAX}")));
        }
        let theater_id = screen.theater_id;
        let capacity = screen.spec.capacity();
        let group = place(show_id, capacity)?;
        let show =
            Show { show_id, theater_id, spec: spec.clone(), status: ShowStatus::Scheduled, group };
        self.shows_by_movie
            .entry(spec.movie_id)
            .or_default()
            .insert((spec.starts_at_ms, show_id.0));
        self.shows_by_theater.entry(theater_id).or_default().insert((spec.starts_at_ms, show_id.0));
        self.scheduled_by_screen.entry(spec.screen_id).or_default().insert(show_id.0);
        self.shows.insert(show_id.0, show.clone());
        Ok(CatalogReply::Show { show })
    }

    fn reindex_start(&mut self, show: u64, movie: MovieId, theater: TheaterId, old: u64, new: u64) {
        for index in [self.shows_by_movie.get_mut(&movie), self.shows_by_theater.get_mut(&theater)]
            .into_iter()
            .flatten()
        {
            index.remove(&(old, show));
            index.insert((new, show));
        }
    }

    fn remove_review(&mut self, movie_id: MovieId, user_id: UserId) -> Option<Review> {
        let review = self.reviews.get_mut(&movie_id)?.remove(&user_id)?;
        if let Some(order) = self.review_order.get_mut(&movie_id) {
            order.remove(&(u64::MAX - review.updated_at_ms, user_id));
        }
        if let Some(movie) = self.movies.get_mut(&movie_id) {
            movie.rating.count -= 1;
            movie.rating.stars_sum -= u64::from(review.stars);
        }
        Some(review)
    }

    fn insert_token(&mut self, hash: &str, user_id: UserId, family: &str, expires_at_ms: u64) {
        self.tokens.insert(
            hash.to_owned(),
            RefreshToken { user_id, family: family.to_owned(), expires_at_ms, used: false },
        );
        self.token_expiry.insert((expires_at_ms, hash.to_owned()));
        if let Some(f) = self.families.get_mut(family) {
            f.tokens.insert(hash.to_owned());
        }
    }

    /// Forgets every token of a family (revocation: unknown tokens are invalid).
    fn revoke_family(&mut self, family: &str) {
        if let Some(f) = self.families.get(family) {
            if let Some(set) = self.user_families.get_mut(&f.user_id) {
                set.remove(&(f.issued_at_ms, family.to_owned()));
            }
        }
        self.drop_family_tokens(family);
    }

    fn drop_family_tokens(&mut self, family: &str) {
        if let Some(f) = self.families.remove(family) {
            for hash in f.tokens {
                if let Some(token) = self.tokens.remove(&hash) {
                    self.token_expiry.remove(&(token.expires_at_ms, hash));
                }
            }
        }
    }

    /// Drops tokens that expired at or before `now`, and families left empty.
    fn prune_tokens(&mut self, now: u64) {
        while let Some((at, _)) = self.token_expiry.first() {
            if *at > now {
                break;
            }
            let (_, hash) = self.token_expiry.pop_first().expect("first() was Some");
            let Some(token) = self.tokens.remove(&hash) else { continue };
            let empty = self.families.get_mut(&token.family).is_some_and(|f| {
                f.tokens.remove(&hash);
                f.tokens.is_empty()
            });
            if empty {
                self.revoke_family(&token.family);
            }
        }
    }

    /// The search document of a movie as of `now_ms`.
    fn movie_doc(&self, movie: &Movie, now_ms: u64) -> MovieDoc {
        let mut cities = BTreeSet::new();
        let mut next_show_ms = None;
        let mut upcoming_shows = 0;
        let upcoming = self
            .shows_by_movie
            .get(&movie.movie_id)
            .into_iter()
            .flat_map(|set| set.range((now_ms.saturating_add(1), 0)..));
        for (start, show_id) in upcoming {
            let Some(show) = self.shows.get(show_id) else { continue };
            if show.status != ShowStatus::Scheduled {
                continue;
            }
            upcoming_shows += 1;
            next_show_ms = Some(next_show_ms.map_or(*start, |n: u64| n.min(*start)));
            if let Some(theater) = self.theaters.get(&show.theater_id) {
                cities.insert(theater.spec.city.clone());
            }
        }
        MovieDoc {
            movie: movie.clone(),
            cities: cities.into_iter().collect(),
            next_show_ms,
            upcoming_shows,
        }
    }

    /// Answers a read. `NotFound` for an unknown id.
    pub fn query(&self, query: &CatalogQuery) -> Option<CatalogQueryResult> {
        Some(match query {
            CatalogQuery::Changes { after, limit } => {
                let limit = (*limit).clamp(1, CHANGE_FEED_READ_MAX) as usize;
                let truncated = self.changes.front().is_some_and(|first| first.seq > after + 1);
                // Sequence numbers are contiguous: the first wanted change is at a known offset.
                let first_seq = self.changes.front().map_or(0, |c| c.seq);
                let skip = (after + 1).saturating_sub(first_seq) as usize;
                CatalogQueryResult::Changes {
                    changes: self
                        .changes
                        .range(skip.min(self.changes.len())..)
                        .take(limit)
                        .cloned()
                        .collect(),
                    head: self.change_seq,
                    truncated,
                }
            }
            CatalogQuery::SearchDocs { movie_ids, now_ms } => {
                let mut docs = Vec::new();
                let mut missing = Vec::new();
                for id in movie_ids.iter().take(SEARCH_DOCS_MAX) {
                    match self.movies.get(id) {
                        Some(movie) => docs.push(self.movie_doc(movie, *now_ms)),
                        None => missing.push(*id),
                    }
                }
                CatalogQueryResult::SearchDocs { docs, missing }
            }
            CatalogQuery::MovieIds { after, limit } => {
                let limit = (*limit).clamp(1, CHANGE_FEED_READ_MAX) as usize;
                CatalogQueryResult::MovieIds {
                    ids: self
                        .movies
                        .range(after.saturating_add(1)..)
                        .map(|(id, _)| *id)
                        .take(limit)
                        .collect(),
                }
            }
            CatalogQuery::User { user_id } => {
                CatalogQueryResult::User { user: self.users.get(user_id)?.clone() }
            }
            CatalogQuery::UserByEmail { email } => {
                let id = self.emails.get(email)?;
                CatalogQueryResult::User { user: self.users.get(id)?.clone() }
            }
            CatalogQuery::Users { page } => CatalogQueryResult::Users {
                page: paged(self.users.values().cloned(), self.users.len(), *page),
            },
            CatalogQuery::Cities => CatalogQueryResult::Cities {
                cities: self
                    .theaters_by_city
                    .values()
                    .filter_map(|ids| {
                        let first = self.theaters.get(ids.first()?)?;
                        Some(CityView { city: first.spec.city.clone(), theaters: ids.len() as u64 })
                    })
                    .collect(),
            },
            CatalogQuery::Movies { filter, page } => {
                let matches = self.movies_matching(filter);
                let total = matches.len();
                CatalogQueryResult::Movies {
                    page: paged(matches.into_iter().cloned(), total, *page),
                }
            }
            CatalogQuery::Movie { movie_id } => {
                CatalogQueryResult::Movie { movie: self.movies.get(movie_id)?.clone() }
            }
            CatalogQuery::MovieShows { movie_id, city, date } => {
                self.movies.get(movie_id)?;
                let city = city.to_lowercase();
                let mut by_theater: BTreeMap<TheaterId, Vec<ShowSummary>> = BTreeMap::new();
                for (_, show_id) in self.shows_by_movie.get(movie_id).into_iter().flatten() {
                    let Some(show) = self.shows.get(show_id) else { continue };
                    let Some(theater) = self.theaters.get(&show.theater_id) else { continue };
                    if show.status != ShowStatus::Scheduled
                        || theater.spec.city.to_lowercase() != city
                    {
                        continue;
                    }
                    let Some((from, to)) = local_day_range(date, theater.spec.utc_offset_minutes)
                    else {
                        continue;
                    };
                    if (from..to).contains(&show.spec.starts_at_ms) {
                        if let Some(summary) = self.summary(show) {
                            by_theater.entry(show.theater_id).or_default().push(summary);
                        }
                    }
                }
                let mut theaters: Vec<TheaterShows> = by_theater
                    .into_iter()
                    .filter_map(|(id, shows)| {
                        Some(TheaterShows { theater: self.theaters.get(&id)?.clone(), shows })
                    })
                    .collect();
                theaters.sort_by(|a, b| {
                    (a.theater.spec.name.to_lowercase(), a.theater.theater_id)
                        .cmp(&(b.theater.spec.name.to_lowercase(), b.theater.theater_id))
                });
                CatalogQueryResult::MovieShows { theaters }
            }
            CatalogQuery::Theaters { city, page } => {
                let mut list: Vec<&Theater> = match city {
                    Some(city) => self
                        .theaters_by_city
                        .get(&city.to_lowercase())
                        .into_iter()
                        .flatten()
                        .filter_map(|id| self.theaters.get(id))
                        .collect(),
                    None => self.theaters.values().collect(),
                };
                list.sort_by(|a, b| {
                    (a.spec.name.to_lowercase(), a.theater_id)
                        .cmp(&(b.spec.name.to_lowercase(), b.theater_id))
                });
                let total = list.len();
                CatalogQueryResult::Theaters {
                    page: paged(list.into_iter().cloned(), total, *page),
                }
            }
            CatalogQuery::Theater { theater_id } => CatalogQueryResult::Theater {
                theater: self.theaters.get(theater_id)?.clone(),
                screens: self
                    .screens
                    .values()
                    .filter(|s| s.theater_id == *theater_id)
                    .cloned()
                    .collect(),
            },
            CatalogQuery::TheaterShows { theater_id, date } => {
                let theater = self.theaters.get(theater_id)?;
                let shows = match local_day_range(date, theater.spec.utc_offset_minutes) {
                    Some((from, to)) => self
                        .shows_by_theater
                        .get(theater_id)
                        .into_iter()
                        .flat_map(|set| set.range((from, 0)..(to, 0)))
                        .filter_map(|(_, id)| self.shows.get(id))
                        .filter_map(|show| self.summary(show))
                        .collect(),
                    None => Vec::new(),
                };
                CatalogQueryResult::TheaterShows {
                    listing: TheaterShows { theater: theater.clone(), shows },
                }
            }
            CatalogQuery::Show { show_id } => {
                let show = self.shows.get(&show_id.0)?;
                CatalogQueryResult::Show {
                    detail: Box::new(ShowDetail {
                        show: show.clone(),
                        movie: self.movies.get(&show.spec.movie_id)?.clone(),
                        theater: self.theaters.get(&show.theater_id)?.clone(),
                        screen: self.screens.get(&show.spec.screen_id)?.clone(),
                    }),
                }
            }
            CatalogQuery::Reviews { movie_id, page } => {
                let movie = self.movies.get(movie_id)?;
                let reviews = self.reviews.get(movie_id);
                let order = self.review_order.get(movie_id);
                let total = order.map_or(0, BTreeSet::len);
                let items = order
                    .into_iter()
                    .flatten()
                    .filter_map(|(_, user)| reviews.and_then(|r| r.get(user)).cloned());
                CatalogQueryResult::Reviews {
                    page: paged(items, total, *page),
                    rating: movie.rating,
                }
            }
        })
    }

    fn summary(&self, show: &Show) -> Option<ShowSummary> {
        let screen = self.screens.get(&show.spec.screen_id)?;
        Some(ShowSummary {
            show: show.clone(),
            movie_title: self.movies.get(&show.spec.movie_id)?.spec.title.clone(),
            screen_name: screen.spec.name.clone(),
            format: screen.spec.format,
        })
    }

    fn movies_matching(&self, filter: &MovieFilter) -> Vec<&Movie> {
        let in_city: Option<BTreeSet<MovieId>> = filter.city.as_ref().map(|city| {
            self.theaters_by_city
                .get(&city.to_lowercase())
                .into_iter()
                .flatten()
                .flat_map(|theater| {
                    self.shows_by_theater
                        .get(theater)
                        .into_iter()
                        .flat_map(|set| set.range((filter.now_ms, 0)..))
                })
                .filter_map(|(_, id)| self.shows.get(id))
                .filter(|show| show.status == ShowStatus::Scheduled)
                .map(|show| show.spec.movie_id)
                .collect()
        });
        let genre = filter.genre.as_ref().map(|g| g.to_lowercase());
        let language = filter.language.as_ref().map(|l| l.to_lowercase());
        let q = filter.q.as_ref().map(|q| q.to_lowercase());
        let mut movies: Vec<&Movie> = self
            .movies
            .values()
            .filter(|m| in_city.as_ref().is_none_or(|set| set.contains(&m.movie_id)))
            .filter(|m| genre.as_ref().is_none_or(|g| m.spec.genres.iter().any(|x| x == g)))
            .filter(|m| language.as_ref().is_none_or(|l| m.spec.language.to_lowercase() == *l))
            .filter(|m| {
                q.as_ref().is_none_or(|q| {
                    contains_ci(&m.spec.title, q)
                        || contains_ci(&m.spec.director, q)
                        || m.spec.cast.iter().any(|c| contains_ci(c, q))
                })
            })
            .collect();
        movies.sort_by(|a, b| {
            (a.spec.title.to_lowercase(), a.movie_id)
                .cmp(&(b.spec.title.to_lowercase(), b.movie_id))
        });
        movies
    }

    /// A user by id (for tests and the gateway's manager checks through queries).
    pub fn user(&self, user_id: UserId) -> Option<&User> {
        self.users.get(&user_id)
    }

    /// Number of live refresh tokens (for tests: pruning keeps this bounded).
    pub fn refresh_tokens(&self) -> usize {
        self.tokens.len()
    }
}

fn check_id(field: &str, id: u64) -> Result<(), Rejection> {
    if id == 0 || id > (1 << 53) - 1 {
        return Err(invalid(field, "1..=2^53-1"));
    }
    Ok(())
}

fn check_start(starts_at_ms: u64) -> Result<(), Rejection> {
    // Year 2000 .. year 2200: catches seconds-for-milliseconds mistakes.
    if !(946_684_800_000..=7_258_118_400_000).contains(&starts_at_ms) {
        return Err(invalid("starts_at_ms", "Unix milliseconds between 2000 and 2200"));
    }
    Ok(())
}

fn check_hash(hash: &str) -> Result<(), Rejection> {
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        return Err(invalid("token_hash", "64 lowercase hex digits (SHA-256)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;
    use proto::catalog::{ScreenFormat, ScreenRow};

    use super::*;

    const T0: u64 = 1_800_000_000_000;

    fn no_shards(_: ShowId, _: u32) -> Result<GroupId, Rejection> {
        Ok(GroupId(1))
    }

    fn apply(
        catalog: &mut Catalog,
        command: CatalogCommand,
        now: u64,
    ) -> Result<CatalogReply, Rejection> {
        catalog.apply(&command, now, &mut no_shards)
    }

    fn hash(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    fn register(catalog: &mut Catalog, id: u64, email: &str) -> Result<CatalogReply, Rejection> {
        apply(
            catalog,
            CatalogCommand::RegisterUser {
                user_id: id,
                email: email.into(),
                name: format!("User {id}"),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
                role: Role::Customer,
            },
            T0,
        )
    }

    fn movie(title: &str, genre: &str, language: &str) -> MovieSpec {
        MovieSpec {
            title: title.into(),
            description: "A film.".into(),
            genres: vec![genre.into()],
            language: language.into(),
            duration_min: 120,
            release_date: "2026-11-20".into(),
            cast: vec!["Asha Rao".into()],
            director: "Vikram Sen".into(),
            certificate: "UA".into(),
            poster_url: Some("https://img.example/p.jpg".into()),
        }
    }

    fn theater(name: &str, city: &str) -> TheaterSpec {
        TheaterSpec {
            name: name.into(),
            city: city.into(),
            address: "1 Main Road".into(),
            lat_e6: 19_076_000,
            lon_e6: 72_877_000,
            amenities: vec!["parking".into()],
            utc_offset_minutes: 330,
        }
    }

    fn screen() -> ScreenSpec {
        ScreenSpec {
            name: "Audi 1".into(),
            format: ScreenFormat::TwoD,
            rows: vec![
                ScreenRow {
                    label: "A".into(),
                    category: "classic".into(),
                    seats: 10,
                    aisles_after: vec![5],
                },
                ScreenRow {
                    label: "B".into(),
                    category: "prime".into(),
                    seats: 8,
                    aisles_after: vec![],
                },
            ],
        }
    }

    fn show(movie_id: u64, screen_id: u64, starts_at_ms: u64) -> ShowSpec {
        ShowSpec {
            movie_id,
            screen_id,
            starts_at_ms,
            prices: BTreeMap::from([("classic".into(), 20_000), ("prime".into(), 35_000)]),
            currency: "INR".into(),
        }
    }

    /// Movie 1 (action, hindi) and 2 (drama, english); theater 10 in Mumbai with screen 100,
    /// theater 11 in Pune with screen 110.
    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        apply(
            &mut c,
            CatalogCommand::PutMovie { movie_id: 1, spec: movie("Monsoon Run", "action", "hindi") },
            T0,
        )
        .unwrap();
        apply(
            &mut c,
            CatalogCommand::PutMovie {
                movie_id: 2,
                spec: movie("Quiet Harbour", "drama", "english"),
            },
            T0,
        )
        .unwrap();
        apply(
            &mut c,
            CatalogCommand::PutTheater { theater_id: 10, spec: theater("Regal", "Mumbai") },
            T0,
        )
        .unwrap();
        apply(
            &mut c,
            CatalogCommand::PutTheater { theater_id: 11, spec: theater("Apsara", "Pune") },
            T0,
        )
        .unwrap();
        apply(
            &mut c,
            CatalogCommand::PutScreen { screen_id: 100, theater_id: 10, spec: screen() },
            T0,
        )
        .unwrap();
        apply(
            &mut c,
            CatalogCommand::PutScreen { screen_id: 110, theater_id: 11, spec: screen() },
            T0,
        )
        .unwrap();
        c
    }

    #[test]
    fn registration_is_idempotent_and_emails_are_unique() {
        let mut c = Catalog::default();
        assert!(register(&mut c, 1, "a@example.com").is_ok());
        assert!(register(&mut c, 1, "a@example.com").is_ok(), "a replay returns the user");
        assert_eq!(register(&mut c, 2, "a@example.com"), Err(Rejection::EmailTaken));
        assert!(matches!(
            register(&mut c, 1, "b@example.com"),
            Err(Rejection::CatalogConflict { .. })
        ));
        for bad in ["A@example.com", "no-at", "@x", "x@", "a b@x.y"] {
            assert!(
                matches!(register(&mut c, 3, bad), Err(Rejection::CatalogInvalid { .. })),
                "{bad}"
            );
        }
        assert_eq!(c.users.len(), 1);
    }

    #[test]
    fn refresh_tokens_rotate_and_a_reused_token_revokes_its_family() {
        let mut c = Catalog::default();
        register(&mut c, 1, "a@example.com").unwrap();
        let exp = T0 + 1_000_000;
        apply(
            &mut c,
            CatalogCommand::IssueRefreshToken {
                token_hash: hash(1),
                user_id: 1,
                expires_at_ms: exp,
            },
            T0,
        )
        .unwrap();
        let rotate = |c: &mut Catalog, old: u8, new: u8, now: u64| {
            apply(
                c,
                CatalogCommand::RotateRefreshToken {
                    old_hash: hash(old),
                    new_hash: hash(new),
                    expires_at_ms: exp + now,
                },
                now,
            )
        };
        assert!(rotate(&mut c, 1, 2, T0 + 1).is_ok());
        assert!(rotate(&mut c, 2, 3, T0 + 2).is_ok());
        // Token 1 was already used: replaying it kills the family, token 3 included.
        assert_eq!(rotate(&mut c, 1, 4, T0 + 3), Err(Rejection::RefreshTokenReused));
        assert_eq!(rotate(&mut c, 3, 5, T0 + 4), Err(Rejection::RefreshTokenInvalid));
        assert_eq!(c.refresh_tokens(), 0);

        // A new login; logout revokes it; unknown tokens are a no-op.
        apply(
            &mut c,
            CatalogCommand::IssueRefreshToken {
                token_hash: hash(6),
                user_id: 1,
                expires_at_ms: exp,
            },
            T0,
        )
        .unwrap();
        assert!(
            apply(&mut c, CatalogCommand::RevokeRefreshToken { token_hash: hash(6) }, T0).is_ok()
        );
        assert_eq!(rotate(&mut c, 6, 7, T0 + 5), Err(Rejection::RefreshTokenInvalid));
        assert!(
            apply(&mut c, CatalogCommand::RevokeRefreshToken { token_hash: hash(99) }, T0).is_ok()
        );

        // Expiry is log time: at `exp` the token is gone, pruned from memory.
        apply(
            &mut c,
            CatalogCommand::IssueRefreshToken {
                token_hash: hash(8),
                user_id: 1,
                expires_at_ms: exp,
            },
            T0,
        )
        .unwrap();
        assert_eq!(rotate(&mut c, 8, 9, exp), Err(Rejection::RefreshTokenInvalid));
        assert_eq!(c.refresh_tokens(), 0);
        assert!(c.families.is_empty() && c.user_families.values().all(BTreeSet::is_empty));
    }

    fn changes(c: &Catalog, after: u64, limit: u32) -> (Vec<CatalogChange>, u64, bool) {
        match c.query(&CatalogQuery::Changes { after, limit }) {
            Some(CatalogQueryResult::Changes { changes, head, truncated }) => {
                (changes, head, truncated)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_change_feed_is_gap_free_and_search_docs_follow_the_shows() {
        let mut c = catalog();
        // The fixture made 2 movies, 2 theaters, 2 screens: six changes, in order.
        let (all, head, truncated) = changes(&c, 0, 100);
        assert_eq!((head, truncated), (6, false));
        assert_eq!(all.iter().map(|ch| ch.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(all[0].entity, ChangeEntity::Movie(1));
        assert_eq!(all[4].entity, ChangeEntity::Screen(100));
        // Account commands are not catalog changes.
        register(&mut c, 7, "a@example.com").unwrap();
        let day = 86_400_000;
        let mut place = |_: ShowId, _: u32| Ok(GroupId(1));
        for (id, screen, start) in [(500, 100, T0 + day), (501, 110, T0 + 2 * day)] {
            c.apply(
                &CatalogCommand::CreateShow { show_id: ShowId(id), spec: show(1, screen, start) },
                T0,
                &mut place,
            )
            .unwrap();
        }
        // Rejected commands record nothing.
        assert!(apply(&mut c, CatalogCommand::CancelShow { show_id: ShowId(999) }, T0).is_err());
        let (tail, head, _) = changes(&c, 6, 100);
        assert_eq!(head, 8);
        assert_eq!(
            tail.iter().map(|ch| (ch.seq, ch.movies.clone())).collect::<Vec<_>>(),
            [(7, vec![1]), (8, vec![1])]
        );
        assert_eq!(changes(&c, 7, 1).0[0].seq, 8, "a cursor resumes exactly after itself");
        assert!(changes(&c, 8, 100).0.is_empty());
        // A theater change names the movies playing there (their city list may change).
        apply(
            &mut c,
            CatalogCommand::PutTheater { theater_id: 11, spec: theater("Apsara", "Nashik") },
            T0,
        )
        .unwrap();
        let (last, _, _) = changes(&c, 8, 100);
        assert_eq!((last[0].entity, last[0].movies.clone()), (ChangeEntity::Theater(11), vec![1]));

        let docs = |c: &Catalog, now| match c
            .query(&CatalogQuery::SearchDocs { movie_ids: vec![1, 2, 3], now_ms: now })
        {
            Some(CatalogQueryResult::SearchDocs { docs, missing }) => (docs, missing),
            other => panic!("{other:?}"),
        };
        let (d, missing) = docs(&c, T0);
        assert_eq!(missing, [3]);
        assert_eq!(
            (d[0].cities.clone(), d[0].next_show_ms, d[0].upcoming_shows),
            (vec!["Mumbai".to_owned(), "Nashik".to_owned()], Some(T0 + day), 2)
        );
        assert_eq!((d[1].cities.len(), d[1].next_show_ms), (0, None), "movie 2 has no shows");
        // Time passes the first show; cancelling the second leaves nothing upcoming.
        let (d, _) = docs(&c, T0 + day);
        assert_eq!((d[0].cities.clone(), d[0].upcoming_shows), (vec!["Nashik".to_owned()], 1));
        apply(&mut c, CatalogCommand::CancelShow { show_id: ShowId(501) }, T0).unwrap();
        let (d, _) = docs(&c, T0 + day);
        assert_eq!((d[0].upcoming_shows, d[0].next_show_ms), (0, None));
        match c.query(&CatalogQuery::MovieIds { after: 1, limit: 10 }) {
            Some(CatalogQueryResult::MovieIds { ids }) => assert_eq!(ids, [2]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_reader_behind_the_retained_feed_is_told_to_rebuild() {
        let mut c = catalog();
        for n in 0..CHANGE_FEED_MAX {
            apply(&mut c, CatalogCommand::DeleteReview { movie_id: 1, user_id: n as u64 }, T0)
                .unwrap();
        }
        let (_, head, truncated) = changes(&c, 0, 10);
        assert_eq!(head, 6 + CHANGE_FEED_MAX as u64);
        assert!(truncated, "changes 1..=6 were dropped");
        let (kept, _, truncated) = changes(&c, 6, 10);
        assert!(!truncated);
        assert_eq!(kept[0].seq, 7);
    }

    #[test]
    fn sessions_per_user_are_capped() {
        let mut c = Catalog::default();
        register(&mut c, 1, "a@example.com").unwrap();
        for n in 0..(REFRESH_FAMILIES_PER_USER_MAX as u8 + 5) {
            apply(
                &mut c,
                CatalogCommand::IssueRefreshToken {
                    token_hash: hash(n),
                    user_id: 1,
                    expires_at_ms: T0 + 10_000,
                },
                T0 + u64::from(n),
            )
            .unwrap();
        }
        assert_eq!(c.refresh_tokens(), REFRESH_FAMILIES_PER_USER_MAX);
        assert!(!c.tokens.contains_key(&hash(0)), "the oldest session was dropped");
    }

    #[test]
    fn shows_are_placed_validated_and_listed_by_local_date() {
        let mut c = catalog();
        let placed = std::cell::RefCell::new(Vec::new());
        let mut place = |id: ShowId, seats: u32| {
            placed.borrow_mut().push((id.0, seats));
            Ok(GroupId(3))
        };
        // 2026-11-25 18:30 IST = 13:00 UTC.
        let evening = 1_795_564_800_000 + 13 * 3_600_000;
        let reply = c
            .apply(
                &CatalogCommand::CreateShow { show_id: ShowId(500), spec: show(1, 100, evening) },
                T0,
                &mut place,
            )
            .unwrap();
        let CatalogReply::Show { show: created } = reply else { panic!() };
        assert_eq!((created.group, created.theater_id), (GroupId(3), 10));
        // Replay: same show, no second placement. Other content: conflict.
        assert!(c
            .apply(
                &CatalogCommand::CreateShow { show_id: ShowId(500), spec: show(1, 100, evening) },
                T0,
                &mut place
            )
            .is_ok());
        assert!(matches!(
            c.apply(
                &CatalogCommand::CreateShow { show_id: ShowId(500), spec: show(2, 100, evening) },
                T0,
                &mut place
            ),
            Err(Rejection::CatalogConflict { .. })
        ));
        assert_eq!(*placed.borrow(), vec![(500, 18)]);
        // Prices must cover exactly the screen's categories; unknown refs are not found.
        let mut bad = show(1, 100, evening);
        bad.prices.remove("prime");
        assert!(matches!(
            c.apply(
                &CatalogCommand::CreateShow { show_id: ShowId(501), spec: bad },
                T0,
                &mut place
            ),
            Err(Rejection::CatalogInvalid { .. })
        ));
        assert!(matches!(
            c.apply(
                &CatalogCommand::CreateShow { show_id: ShowId(502), spec: show(9, 100, evening) },
                T0,
                &mut place
            ),
            Err(Rejection::CatalogNotFound { .. })
        ));
        assert_eq!(placed.borrow().len(), 1, "invalid shows are never placed");

        // 01:00 IST on the 26th is 19:30 UTC on the 25th: listed under the local date.
        let late = 1_795_564_800_000 + 19 * 3_600_000 + 1_800_000;
        c.apply(
            &CatalogCommand::CreateShow { show_id: ShowId(503), spec: show(1, 100, late) },
            T0,
            &mut place,
        )
        .unwrap();
        let listing = |c: &Catalog, date: &str| match c.query(&CatalogQuery::MovieShows {
            movie_id: 1,
            city: "MUMBAI".into(),
            date: date.into(),
        }) {
            Some(CatalogQueryResult::MovieShows { theaters }) => theaters
                .iter()
                .flat_map(|t| t.shows.iter().map(|s| s.show.show_id.0))
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(listing(&c, "2026-11-25"), vec![500]);
        assert_eq!(listing(&c, "2026-11-26"), vec![503]);
        assert_eq!(listing(&c, "2026-13-01"), Vec::<u64>::new());

        // The screen's layout is frozen while shows are scheduled; its name is not.
        let mut renamed = screen();
        renamed.name = "Gold".into();
        assert!(apply(
            &mut c,
            CatalogCommand::PutScreen { screen_id: 100, theater_id: 10, spec: renamed.clone() },
            T0
        )
        .is_ok());
        renamed.rows[0].seats = 12;
        assert!(matches!(
            apply(
                &mut c,
                CatalogCommand::PutScreen { screen_id: 100, theater_id: 10, spec: renamed.clone() },
                T0
            ),
            Err(Rejection::CatalogConflict { .. })
        ));
        // Cancelled shows stop counting, leave listings and cannot be rescheduled.
        apply(&mut c, CatalogCommand::CancelShow { show_id: ShowId(500) }, T0).unwrap();
        apply(&mut c, CatalogCommand::CancelShow { show_id: ShowId(503) }, T0).unwrap();
        assert!(apply(
            &mut c,
            CatalogCommand::PutScreen { screen_id: 100, theater_id: 10, spec: renamed },
            T0
        )
        .is_ok());
        assert_eq!(listing(&c, "2026-11-25"), Vec::<u64>::new());
        assert!(matches!(
            apply(
                &mut c,
                CatalogCommand::RescheduleShow { show_id: ShowId(500), starts_at_ms: late },
                T0
            ),
            Err(Rejection::CatalogConflict { .. })
        ));
    }

    #[test]
    fn movie_listing_filters_and_pages() {
        let mut c = catalog();
        let tomorrow = T0 + DAY_MS;
        apply(
            &mut c,
            CatalogCommand::CreateShow { show_id: ShowId(1), spec: show(1, 100, tomorrow) },
            T0,
        )
        .unwrap();
        apply(
            &mut c,
            CatalogCommand::CreateShow { show_id: ShowId(2), spec: show(2, 110, tomorrow) },
            T0,
        )
        .unwrap();
        let movies = |filter: MovieFilter, offset: u32, limit: u32| match c
            .query(&CatalogQuery::Movies { filter, page: Page { offset, limit } })
        {
            Some(CatalogQueryResult::Movies { page }) => {
                (page.total, page.items.iter().map(|m| m.movie_id).collect::<Vec<_>>())
            }
            other => panic!("{other:?}"),
        };
        let all = MovieFilter { now_ms: T0, ..MovieFilter::default() };
        assert_eq!(movies(all.clone(), 0, 10), (2, vec![1, 2]), "by title");
        assert_eq!(movies(all.clone(), 1, 1), (2, vec![2]));
        assert_eq!(
            movies(MovieFilter { city: Some("mumbai".into()), ..all.clone() }, 0, 10),
            (1, vec![1])
        );
        assert_eq!(
            movies(
                MovieFilter { city: Some("Mumbai".into()), now_ms: tomorrow + 1, ..all.clone() },
                0,
                10
            ),
            (0, vec![]),
            "only upcoming shows count"
        );
        assert_eq!(
            movies(MovieFilter { genre: Some("DRAMA".into()), ..all.clone() }, 0, 10),
            (1, vec![2])
        );
        assert_eq!(
            movies(MovieFilter { language: Some("hindi".into()), ..all.clone() }, 0, 10),
            (1, vec![1])
        );
        assert_eq!(
            movies(MovieFilter { q: Some("harb".into()), ..all.clone() }, 0, 10),
            (1, vec![2])
        );
        assert_eq!(
            movies(MovieFilter { q: Some("vikram".into()), ..all }, 0, 1000).1.len(),
            2,
            "director matches; limit capped"
        );
        match c.query(&CatalogQuery::Cities) {
            Some(CatalogQueryResult::Cities { cities }) => {
                assert_eq!(
                    cities.iter().map(|c| c.city.as_str()).collect::<Vec<_>>(),
                    ["Mumbai", "Pune"]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_catalog_input_is_rejected_with_its_field() {
        let mut c = catalog();
        let cases: Vec<(CatalogCommand, &str)> = vec![
            (
                CatalogCommand::PutMovie {
                    movie_id: 3,
                    spec: MovieSpec {
                        release_date: "2026-02-30".into(),
                        ..movie("X", "action", "hindi")
                    },
                },
                "release_date",
            ),
            (
                CatalogCommand::PutMovie {
                    movie_id: 3,
                    spec: MovieSpec { genres: vec![], ..movie("X", "action", "hindi") },
                },
                "genres",
            ),
            (
                CatalogCommand::PutMovie {
                    movie_id: 3,
                    spec: MovieSpec {
                        poster_url: Some("ftp://x".into()),
                        ..movie("X", "action", "hindi")
                    },
                },
                "poster_url",
            ),
            (
                CatalogCommand::PutMovie { movie_id: 0, spec: movie("X", "action", "hindi") },
                "movie_id",
            ),
            (
                CatalogCommand::PutTheater {
                    theater_id: 12,
                    spec: TheaterSpec { lat_e6: 91_000_000, ..theater("T", "Goa") },
                },
                "lat_e6",
            ),
            (
                CatalogCommand::PutScreen {
                    screen_id: 101,
                    theater_id: 10,
                    spec: ScreenSpec { rows: vec![], ..screen() },
                },
                "rows",
            ),
            (
                CatalogCommand::PutScreen {
                    screen_id: 101,
                    theater_id: 10,
                    spec: ScreenSpec {
                        rows: vec![ScreenRow {
                            label: "A1".into(),
                            category: "c".into(),
                            seats: 1,
                            aisles_after: vec![],
                        }],
                        ..screen()
                    },
                },
                "rows[0].label",
            ),
            (
                CatalogCommand::PutReview {
                    movie_id: 1,
                    user_id: 1,
                    stars: 6,
                    text: String::new(),
                },
                "stars",
            ),
        ];
        let before = c.clone();
        for (command, field) in cases {
            match apply(&mut c, command, T0) {
                Err(Rejection::CatalogInvalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert_eq!(c, before, "rejections change nothing");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Register(u64, u8),
        Review(u64, u64, u8),
        Delete(u64, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u64..6, 0u8..4).prop_map(|(id, email)| Op::Register(id, email)),
            (1u64..4, 1u64..6, 0u8..7).prop_map(|(m, u, s)| Op::Review(m, u, s)),
            (1u64..4, 1u64..6).prop_map(|(m, u)| Op::Delete(m, u)),
        ]
    }

    proptest! {
        /// Against a model: ratings always equal a recount of the stored reviews, one review per
        /// user per movie, and no email belongs to two users.
        #[test]
        fn reviews_and_accounts_match_a_model(ops in proptest::collection::vec(op(), 1..80)) {
            let mut c = Catalog::default();
            for m in 1..=3 {
                apply(&mut c, CatalogCommand::PutMovie { movie_id: m, spec: movie("M", "drama", "tamil") }, T0).unwrap();
            }
            let mut model: BTreeMap<(u64, u64), u8> = BTreeMap::new();
            let mut users: BTreeMap<u64, String> = BTreeMap::new();
            for (i, op) in ops.into_iter().enumerate() {
                let now = T0 + i as u64;
                match op {
                    Op::Register(id, e) => {
                        let email = format!("u{e}@example.com");
                        let outcome = register(&mut c, id, &email);
                        let expected_ok = match users.get(&id) {
                            Some(existing) => *existing == email,
                            None => !users.values().any(|v| *v == email),
                        };
                        prop_assert_eq!(outcome.is_ok(), expected_ok);
                        if expected_ok { users.insert(id, email); }
                    }
                    Op::Review(m, u, stars) => {
                        let outcome = apply(&mut c, CatalogCommand::PutReview { movie_id: m, user_id: u, stars, text: "ok".into() }, now);
                        let ok = users.contains_key(&u) && (1..=5).contains(&stars);
                        prop_assert_eq!(outcome.is_ok(), ok);
                        if ok { model.insert((m, u), stars); }
                    }
                    Op::Delete(m, u) => {
                        let deleted = apply(&mut c, CatalogCommand::DeleteReview { movie_id: m, user_id: u }, now);
                        prop_assert!(deleted.is_ok());
                        model.remove(&(m, u));
                    }
                }
                for m in 1..=3u64 {
                    let stars: Vec<u64> = model.iter().filter(|((mm, _), _)| *mm == m).map(|(_, s)| u64::from(*s)).collect();
                    let rating = c.movies[&m].rating;
                    prop_assert_eq!(rating.count, stars.len() as u64);
                    prop_assert_eq!(rating.stars_sum, stars.iter().sum::<u64>());
                    let Some(CatalogQueryResult::Reviews { page, .. }) = c.query(&CatalogQuery::Reviews { movie_id: m, page: Page { offset: 0, limit: 100 } }) else { panic!() };
                    prop_assert_eq!(page.total, stars.len() as u64);
                }
                let emails: BTreeSet<&String> = c.users.values().map(|u| &u.email).collect();
                prop_assert_eq!(emails.len(), c.users.len());
            }
        }
    }

    #[test]
    fn the_catalog_round_trips_through_json() {
        let mut c = catalog();
        apply(
            &mut c,
            CatalogCommand::CreateShow { show_id: ShowId(7), spec: show(1, 100, T0 + DAY_MS) },
            T0,
        )
        .unwrap();
        register(&mut c, 1, "a@example.com").unwrap();
        apply(
            &mut c,
            CatalogCommand::IssueRefreshToken {
                token_hash: hash(1),
                user_id: 1,
                expires_at_ms: T0 + DAY_MS,
            },
            T0,
        )
        .unwrap();
        apply(
            &mut c,
            CatalogCommand::PutReview { movie_id: 1, user_id: 1, stars: 4, text: "Good".into() },
            T0,
        )
        .unwrap();
        let json = serde_json::to_vec(&c).unwrap();
        let back: Catalog = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, c);
    }
}
