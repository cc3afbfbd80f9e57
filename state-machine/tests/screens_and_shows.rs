//! The catalog and the inventory shards apply one seat-layout rule: a show the catalog schedules
//! on a screen it accepted is always accepted by the show's shard. (Before, the catalog took
//! lowercase row labels and the shard refused them, leaving a scheduled show with no seats.)
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proto::catalog::{
    CatalogCommand, CatalogReply, MovieSpec, ScreenFormat, ScreenSpec, ShowSpec, TheaterSpec,
};
use proto::command::{Command, LogCommand, Outcome, Reply, COMMAND_VERSION};
use proto::ids::ShowId;
use proto::layout::{CategorySpec, Layout, RowSpec};
use proto::meta::{MetaCommand, MetaReply};
use proto::GroupId;
use state_machine::{Inventory, MetaState};

const NOW_MS: u64 = 1_800_000_000_000;

fn entry(command: Command) -> LogCommand {
    LogCommand { v: COMMAND_VERSION, now_ms: NOW_MS, request_id: None, command }
}

fn meta(meta: &mut MetaState, command: CatalogCommand) -> Outcome {
    meta.apply(&entry(Command::Meta(MetaCommand::Catalog(command))))
}

/// A meta group with one shard, a theater (1) and a movie (1).
fn catalog() -> MetaState {
    let mut state = MetaState::default();
    let init = MetaCommand::InitCluster {
        nodes: BTreeMap::from([(1, "127.0.0.1:7001".to_owned())]),
        meta_replicas: BTreeSet::from([1]),
        shards: BTreeMap::from([(GroupId(1), BTreeSet::from([1]))]),
    };
    assert!(state.apply(&entry(Command::Meta(init))).is_ok());
    let theater = TheaterSpec {
        name: "Harbour Cinema".into(),
        city: "Mumbai".into(),
        address: String::new(),
        lat_e6: 0,
        lon_e6: 0,
        amenities: vec![],
        utc_offset_minutes: 330,
    };
    assert!(meta(&mut state, CatalogCommand::PutTheater { theater_id: 1, spec: theater }).is_ok());
    let movie = MovieSpec {
        title: "Midnight Harbour".into(),
        description: String::new(),
        genres: vec!["drama".into()],
        language: "hindi".into(),
        duration_min: 120,
        release_date: "2026-01-01".into(),
        cast: vec![],
        director: String::new(),
        certificate: "U".into(),
        poster_url: None,
    };
    assert!(meta(&mut state, CatalogCommand::PutMovie { movie_id: 1, spec: movie }).is_ok());
    state
}

/// Stores a screen with `rows` and schedules show 7 on it; if the catalog accepts both, creates
/// the show on a shard from the catalog's records, as the gateway does, and returns the shard's
/// outcome. `None` when the catalog refused.
fn schedule(rows: Vec<RowSpec>) -> Option<Outcome> {
    let mut state = catalog();
    let spec = ScreenSpec { name: "Audi 1".into(), format: ScreenFormat::TwoD, rows };
    let put = CatalogCommand::PutScreen { screen_id: 1, theater_id: 1, spec: spec.clone() };
    meta(&mut state, put).ok()?;
    let prices: BTreeMap<String, i64> =
        spec.categories().into_iter().map(|c| (c.to_owned(), 250)).collect();
    let show = ShowSpec {
        movie_id: 1,
        screen_id: 1,
        starts_at_ms: NOW_MS + 86_400_000,
        prices: prices.clone(),
        currency: "INR".into(),
    };
    let created = meta(&mut state, CatalogCommand::CreateShow { show_id: ShowId(7), spec: show });
    let Ok(Reply::Meta(MetaReply::Catalog(CatalogReply::Show { show }))) = created else {
        return None;
    };
    let layout = Layout {
        rows: spec.rows,
        categories: prices
            .into_iter()
            .map(|(name, price_minor)| CategorySpec { name, price_minor })
            .collect(),
        currency: show.spec.currency,
    };
    let mut shard = Inventory::default();
    let create = Command::CreateShow {
        show_id: show.show_id,
        title: "Midnight Harbour".into(),
        starts_at_ms: show.spec.starts_at_ms,
        layout,
    };
    Some(shard.apply(1, &entry(create)))
}

fn row(label: &str, category: &str, seats: u32) -> RowSpec {
    RowSpec { label: label.into(), category: category.into(), seats, aisles_after: vec![] }
}

#[test]
fn a_screen_with_lowercase_row_labels_gets_shows_its_shard_accepts() {
    let outcome = schedule(vec![row("a", "classic", 10), row("b", "prime", 8)])
        .expect("the catalog accepts lowercase row labels");
    assert!(
        matches!(outcome, Ok(Reply::ShowCreated { capacity: 18, .. })),
        "the shard refused a show the catalog scheduled: {outcome:?}"
    );
}

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Ea-e]{1,2}",
        Just(String::new()),
        "[A-Z]{4}",
        "[A-Z][0-9]",
        Just("é".to_owned()),
    ]
}

fn rows() -> impl Strategy<Value = Vec<RowSpec>> {
    let row = (label(), prop_oneof![Just("classic"), Just("prime")], 0u32..=205, 0u32..12)
        .prop_map(|(label, category, seats, aisle)| RowSpec {
            label,
            category: category.to_owned(),
            seats,
            aisles_after: if aisle == 0 { vec![] } else { vec![aisle] },
        });
    prop::collection::vec(row, 0..8)
}

proptest! {
    /// Whatever rows a screen has, a show the catalog schedules on it is created by its shard.
    #[test]
    fn the_shard_accepts_every_show_the_catalog_schedules(rows in rows()) {
        if let Some(outcome) = schedule(rows.clone()) {
            prop_assert!(
                matches!(outcome, Ok(Reply::ShowCreated { .. })),
                "rows {rows:?}: catalog scheduled, shard answered {outcome:?}"
            );
        }
    }
}

/// Entries written before the one layout rule are replayed with the rule they were applied
/// with, so a replica that replays an old log and one that loads a snapshot of it agree.
#[test]
fn a_version_one_create_show_keeps_the_uppercase_rule_on_replay() {
    let layout = Layout {
        rows: vec![row("a", "classic", 5)],
        categories: vec![CategorySpec { name: "classic".into(), price_minor: 100 }],
        currency: "INR".into(),
    };
    let create = |v| LogCommand {
        v,
        now_ms: NOW_MS,
        request_id: None,
        command: Command::CreateShow {
            show_id: ShowId(9),
            title: "Old".into(),
            starts_at_ms: NOW_MS + 1,
            layout: layout.clone(),
        },
    };
    let old = Inventory::default().apply(1, &create(1));
    assert!(matches!(old, Err(proto::command::Rejection::InvalidLayout { .. })), "{old:?}");
    let new = Inventory::default().apply(1, &create(COMMAND_VERSION));
    assert!(matches!(new, Ok(Reply::ShowCreated { capacity: 5, .. })), "{new:?}");
}
