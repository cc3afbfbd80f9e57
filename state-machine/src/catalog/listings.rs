//! Catalog reads: browse listings (cities, movies with filters, a movie's shows by theater for a
//! local date, theaters, a theater's shows, show pages, reviews), paged and ordered
//! deterministically. Local dates use each theater's UTC offset ([`proto::calendar`]).

use std::collections::{BTreeMap, BTreeSet};

use proto::calendar::local_day_range;
use proto::catalog::{
    CatalogQuery, CatalogQueryResult, CityView, Movie, MovieFilter, MovieId, Page, Paged, Show,
    ShowDetail, ShowStatus, ShowSummary, Theater, TheaterId, TheaterShows,
};
use proto::ids::ShowId;

use super::Catalog;
use crate::limits::CATALOG_PAGE_MAX;

impl Catalog {
    /// Answers a read. `NotFound` for an unknown id.
    pub fn query(&self, query: &CatalogQuery) -> Option<CatalogQueryResult> {
        Some(match query {
            CatalogQuery::Changes { after, limit } => return self.changes_after(after, limit),
            CatalogQuery::SearchDocs { movie_ids, now_ms } => {
                return self.search_docs(movie_ids, now_ms)
            }
            CatalogQuery::MovieIds { after, limit } => return self.movie_ids_after(after, limit),
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
            CatalogQuery::Movies { filter, page } => return self.movies_page(filter, page),
            CatalogQuery::Movie { movie_id } => {
                CatalogQueryResult::Movie { movie: self.movies.get(movie_id)?.clone() }
            }
            CatalogQuery::MovieShows { movie_id, city, date } => {
                return self.movie_shows(movie_id, city, date)
            }
            CatalogQuery::Theaters { city, page } => return self.theaters_page(city, page),
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
                return self.theater_shows(theater_id, date)
            }
            CatalogQuery::Show { show_id } => return self.show_detail(show_id),
            CatalogQuery::Reviews { movie_id, page } => return self.reviews_page(movie_id, page),
        })
    }

    fn movie_shows(
        &self,
        movie_id: &MovieId,
        city: &str,
        date: &str,
    ) -> Option<CatalogQueryResult> {
        self.movies.get(movie_id)?;
        let city = city.to_lowercase();
        let mut by_theater: BTreeMap<TheaterId, Vec<ShowSummary>> = BTreeMap::new();
        for (_, show_id) in self.shows_by_movie.get(movie_id).into_iter().flatten() {
            let Some(show) = self.shows.get(show_id) else { continue };
            let Some(theater) = self.theaters.get(&show.theater_id) else { continue };
            if show.status != ShowStatus::Scheduled || theater.spec.city.to_lowercase() != city {
                continue;
            }
            let Some((from, to)) = local_day_range(date, theater.spec.utc_offset_minutes) else {
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
        Some(CatalogQueryResult::MovieShows { theaters })
    }

    fn theaters_page(&self, city: &Option<String>, page: &Page) -> Option<CatalogQueryResult> {
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
        Some(CatalogQueryResult::Theaters { page: paged(list.into_iter().cloned(), total, *page) })
    }

    fn theater_shows(&self, theater_id: &TheaterId, date: &str) -> Option<CatalogQueryResult> {
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
        Some(CatalogQueryResult::TheaterShows {
            listing: TheaterShows { theater: theater.clone(), shows },
        })
    }

    fn show_detail(&self, show_id: &ShowId) -> Option<CatalogQueryResult> {
        let show = self.shows.get(&show_id.0)?;
        Some(CatalogQueryResult::Show {
            detail: Box::new(ShowDetail {
                show: show.clone(),
                movie: self.movies.get(&show.spec.movie_id)?.clone(),
                theater: self.theaters.get(&show.theater_id)?.clone(),
                screen: self.screens.get(&show.spec.screen_id)?.clone(),
            }),
        })
    }

    fn reviews_page(&self, movie_id: &MovieId, page: &Page) -> Option<CatalogQueryResult> {
        let movie = self.movies.get(movie_id)?;
        let reviews = self.reviews.get(movie_id);
        let order = self.review_order.get(movie_id);
        let total = order.map_or(0, BTreeSet::len);
        let items = order
            .into_iter()
            .flatten()
            .filter_map(|(_, user)| reviews.and_then(|r| r.get(user)).cloned());
        Some(CatalogQueryResult::Reviews { page: paged(items, total, *page), rating: movie.rating })
    }

    fn movies_page(&self, filter: &MovieFilter, page: &Page) -> Option<CatalogQueryResult> {
        let matches = self.movies_matching(filter);
        let total = matches.len();
        Some(CatalogQueryResult::Movies { page: paged(matches.into_iter().cloned(), total, *page) })
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
