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

mod accounts;
mod feed;
mod listings;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use proto::catalog::{
    CatalogChange, CatalogCommand, CatalogReply, Movie, MovieId, MovieSpec, Review, Screen,
    ScreenId, ScreenSpec, Show, ShowSpec, ShowStatus, Theater, TheaterId, TheaterSpec, User,
    UserId,
};
use proto::command::Rejection;
use proto::ids::ShowId;
use proto::GroupId;
use serde::{Deserialize, Serialize};

use crate::limits::{CATALOG_TEXT_BYTES_MAX, PRICE_MINOR_MAX};
use crate::validate::{
    check_currency, check_id, check_movie, check_screen, check_start, check_text, check_theater,
    conflict, invalid, not_found,
};

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
                self.set_user_role(user_id, role, theaters)
            }
            CatalogCommand::IssueRefreshToken { token_hash, user_id, expires_at_ms } => {
                self.issue_refresh_token(token_hash, user_id, expires_at_ms, now)
            }
            CatalogCommand::RotateRefreshToken { old_hash, new_hash, expires_at_ms } => {
                self.rotate_refresh_token(old_hash, new_hash, expires_at_ms, now)
            }
            CatalogCommand::RevokeRefreshToken { token_hash } => {
                self.revoke_refresh_token(token_hash)
            }
            CatalogCommand::PutMovie { movie_id, spec } => self.put_movie(movie_id, spec),
            CatalogCommand::PutTheater { theater_id, spec } => self.put_theater(theater_id, spec),
            CatalogCommand::PutScreen { screen_id, theater_id, spec } => {
                self.put_screen(screen_id, theater_id, spec)
            }
            CatalogCommand::CreateShow { show_id, spec } => self.create_show(*show_id, spec, place),
            CatalogCommand::RescheduleShow { show_id, starts_at_ms } => {
                self.reschedule_show(show_id, starts_at_ms)
            }
            CatalogCommand::CancelShow { show_id } => self.cancel_show(show_id),
            CatalogCommand::PutReview { movie_id, user_id, stars, text } => {
                self.put_review(movie_id, user_id, stars, text, now)
            }
            CatalogCommand::DeleteReview { movie_id, user_id } => {
                self.delete_review(movie_id, user_id)
            }
        }
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

    fn put_movie(
        &mut self,
        movie_id: &MovieId,
        spec: &MovieSpec,
    ) -> Result<CatalogReply, Rejection> {
        check_id("movie_id", *movie_id)?;
        check_movie(spec)?;
        let rating = self.movies.get(movie_id).map(|m| m.rating).unwrap_or_default();
        let movie = Movie { movie_id: *movie_id, spec: spec.clone(), rating };
        self.movies.insert(*movie_id, movie.clone());
        Ok(CatalogReply::Movie { movie })
    }

    fn put_theater(
        &mut self,
        theater_id: &TheaterId,
        spec: &TheaterSpec,
    ) -> Result<CatalogReply, Rejection> {
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
        self.theaters_by_city.entry(spec.city.to_lowercase()).or_default().insert(*theater_id);
        let theater = Theater { theater_id: *theater_id, spec: spec.clone() };
        self.theaters.insert(*theater_id, theater.clone());
        Ok(CatalogReply::Theater { theater })
    }

    fn put_screen(
        &mut self,
        screen_id: &ScreenId,
        theater_id: &TheaterId,
        spec: &ScreenSpec,
    ) -> Result<CatalogReply, Rejection> {
        check_id("screen_id", *screen_id)?;
        check_screen(spec)?;
        if !self.theaters.contains_key(theater_id) {
            return Err(not_found("theater", *theater_id));
        }
        if let Some(old) = self.screens.get(screen_id) {
            if old.theater_id != *theater_id {
                return Err(conflict("a screen cannot move to another theater"));
            }
            let scheduled = self.scheduled_by_screen.get(screen_id).is_some_and(|s| !s.is_empty());
            if scheduled && old.spec.rows != spec.rows {
                return Err(conflict(
                    "the screen has scheduled shows: only its name and format may change",
                ));
            }
        }
        let screen = Screen { screen_id: *screen_id, theater_id: *theater_id, spec: spec.clone() };
        self.screens.insert(*screen_id, screen.clone());
        Ok(CatalogReply::Screen { screen })
    }

    fn reschedule_show(
        &mut self,
        show_id: &ShowId,
        starts_at_ms: &u64,
    ) -> Result<CatalogReply, Rejection> {
        let show = self.shows.get(&show_id.0).ok_or_else(|| not_found("show", show_id.0))?;
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

    fn cancel_show(&mut self, show_id: &ShowId) -> Result<CatalogReply, Rejection> {
        let show = self.shows.get_mut(&show_id.0).ok_or_else(|| not_found("show", show_id.0))?;
        show.status = ShowStatus::Cancelled;
        let show = show.clone();
        if let Some(set) = self.scheduled_by_screen.get_mut(&show.spec.screen_id) {
            set.remove(&show_id.0);
        }
        Ok(CatalogReply::Show { show })
    }

    fn put_review(
        &mut self,
        movie_id: &MovieId,
        user_id: &UserId,
        stars: &u8,
        text: &str,
        now: u64,
    ) -> Result<CatalogReply, Rejection> {
        if !(1..=5).contains(stars) {
            return Err(invalid("stars", "1..=5"));
        }
        check_text("text", text, 0, CATALOG_TEXT_BYTES_MAX)?;
        let author =
            self.users.get(user_id).ok_or_else(|| not_found("user", *user_id))?.name.clone();
        if !self.movies.contains_key(movie_id) {
            return Err(not_found("movie", *movie_id));
        }
        let previous = self.remove_review(*movie_id, *user_id);
        let review = Review {
            movie_id: *movie_id,
            user_id: *user_id,
            author,
            stars: *stars,
            text: text.to_owned(),
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

    fn delete_review(
        &mut self,
        movie_id: &MovieId,
        user_id: &UserId,
    ) -> Result<CatalogReply, Rejection> {
        if !self.movies.contains_key(movie_id) {
            return Err(not_found("movie", *movie_id));
        }
        self.remove_review(*movie_id, *user_id);
        let rating = self.movies.get(movie_id).map(|m| m.rating).unwrap_or_default();
        Ok(CatalogReply::ReviewDeleted { rating })
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
}

#[cfg(test)]
mod tests;
