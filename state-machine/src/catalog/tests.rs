//! Unit and property tests of the catalog and accounts.

use proptest::prelude::*;
use proto::catalog::*;
use proto::command::Rejection;
use proto::ids::ShowId;
use proto::GroupId;

use proto::calendar::DAY_MS;

use super::*;
use crate::limits::{CHANGE_FEED_MAX, REFRESH_FAMILIES_PER_USER_MAX};

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
        CatalogCommand::PutMovie { movie_id: 2, spec: movie("Quiet Harbour", "drama", "english") },
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
    apply(&mut c, CatalogCommand::PutScreen { screen_id: 100, theater_id: 10, spec: screen() }, T0)
        .unwrap();
    apply(&mut c, CatalogCommand::PutScreen { screen_id: 110, theater_id: 11, spec: screen() }, T0)
        .unwrap();
    c
}

#[test]
fn registration_is_idempotent_and_emails_are_unique() {
    let mut c = Catalog::default();
    assert!(register(&mut c, 1, "a@example.com").is_ok());
    assert!(register(&mut c, 1, "a@example.com").is_ok(), "a replay returns the user");
    assert_eq!(register(&mut c, 2, "a@example.com"), Err(Rejection::EmailTaken));
    assert!(matches!(register(&mut c, 1, "b@example.com"), Err(Rejection::CatalogConflict { .. })));
    for bad in ["A@example.com", "no-at", "@x", "x@", "a b@x.y"] {
        assert!(matches!(register(&mut c, 3, bad), Err(Rejection::CatalogInvalid { .. })), "{bad}");
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
        CatalogCommand::IssueRefreshToken { token_hash: hash(1), user_id: 1, expires_at_ms: exp },
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
        CatalogCommand::IssueRefreshToken { token_hash: hash(6), user_id: 1, expires_at_ms: exp },
        T0,
    )
    .unwrap();
    assert!(apply(&mut c, CatalogCommand::RevokeRefreshToken { token_hash: hash(6) }, T0).is_ok());
    assert_eq!(rotate(&mut c, 6, 7, T0 + 5), Err(Rejection::RefreshTokenInvalid));
    assert!(apply(&mut c, CatalogCommand::RevokeRefreshToken { token_hash: hash(99) }, T0).is_ok());

    // Expiry is log time: at `exp` the token is gone, pruned from memory.
    apply(
        &mut c,
        CatalogCommand::IssueRefreshToken { token_hash: hash(8), user_id: 1, expires_at_ms: exp },
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
        apply(&mut c, CatalogCommand::DeleteReview { movie_id: 1, user_id: n as u64 }, T0).unwrap();
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
        c.apply(&CatalogCommand::CreateShow { show_id: ShowId(501), spec: bad }, T0, &mut place),
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
    assert_eq!(movies(MovieFilter { q: Some("harb".into()), ..all.clone() }, 0, 10), (1, vec![2]));
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
        (CatalogCommand::PutMovie { movie_id: 0, spec: movie("X", "action", "hindi") }, "movie_id"),
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
            CatalogCommand::PutReview { movie_id: 1, user_id: 1, stars: 6, text: String::new() },
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
