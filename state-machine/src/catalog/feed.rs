//! The catalog change feed: every successful catalog change (not account changes) gets a
//! gap-free sequence number and names the movies whose search document it may have changed.
//! Search indexes and gateway caches tail it (`WatchCatalog`); a reader behind the retained
//! window is told to rebuild. The search document of a movie is derived here too, so the feed and
//! the documents it points at come from one state.

use std::collections::BTreeSet;

use proto::catalog::{
    CatalogChange, CatalogCommand, CatalogQueryResult, ChangeEntity, Movie, MovieDoc, MovieId,
    ShowStatus, SEARCH_DOCS_MAX,
};
use proto::ids::ShowId;

use super::Catalog;
use crate::limits::{CHANGE_FEED_MAX, CHANGE_FEED_READ_MAX};

impl Catalog {
    /// Appends the change a successful command made to the feed (account commands are not
    /// catalog changes and are not recorded).
    pub(super) fn record_change(&mut self, command: &CatalogCommand, now: u64) {
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

    pub(super) fn changes_after(&self, after: &u64, limit: &u32) -> Option<CatalogQueryResult> {
        let limit = (*limit).clamp(1, CHANGE_FEED_READ_MAX) as usize;
        let truncated = self.changes.front().is_some_and(|first| first.seq > after + 1);
        // Sequence numbers are contiguous: the first wanted change is at a known offset.
        let first_seq = self.changes.front().map_or(0, |c| c.seq);
        let skip = (after + 1).saturating_sub(first_seq) as usize;
        Some(CatalogQueryResult::Changes {
            changes: self
                .changes
                .range(skip.min(self.changes.len())..)
                .take(limit)
                .cloned()
                .collect(),
            head: self.change_seq,
            truncated,
        })
    }

    pub(super) fn search_docs(
        &self,
        movie_ids: &[MovieId],
        now_ms: &u64,
    ) -> Option<CatalogQueryResult> {
        let mut docs = Vec::new();
        let mut missing = Vec::new();
        for id in movie_ids.iter().take(SEARCH_DOCS_MAX) {
            match self.movies.get(id) {
                Some(movie) => docs.push(self.movie_doc(movie, *now_ms)),
                None => missing.push(*id),
            }
        }
        Some(CatalogQueryResult::SearchDocs { docs, missing })
    }

    pub(super) fn movie_ids_after(
        &self,
        after: &MovieId,
        limit: &u32,
    ) -> Option<CatalogQueryResult> {
        let limit = (*limit).clamp(1, CHANGE_FEED_READ_MAX) as usize;
        Some(CatalogQueryResult::MovieIds {
            ids: self
                .movies
                .range(after.saturating_add(1)..)
                .map(|(id, _)| *id)
                .take(limit)
                .collect(),
        })
    }
}
