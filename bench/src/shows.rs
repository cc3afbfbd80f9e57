//! The shows under test: the layout the bench creates, Zipf popularity over popularity ranks
//! ("slots"), and what happens when a show sells out.
//!
//! A slot holds the show currently at that popularity rank. When a journey finds its show
//! (nearly) sold out, the slot is either refilled with a freshly created show
//! ([`OnSoldOut::Replace`], the default, which keeps the load and the popularity curve steady
//! for long runs) or retired ([`OnSoldOut::Stop`]; the run stops once every slot is retired).
//! Every show ever created is remembered for the audit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::{Distribution, Zipf};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::api::{CreatedShow, Failure, Timed};
use crate::backend::Backend;
use crate::config::{Args, LayoutKind, OnSoldOut};
use crate::stats::{Op, Stats};

/// Seat categories of the layout and their prices (minor units, INR).
const CATEGORIES: [(&str, i64); 2] = [("standard", 25_000), ("premium", 40_000)];
/// Attempts to create one show at setup before giving up.
const CREATE_ATTEMPTS: u32 = 6;
/// Shows created concurrently at setup.
const SETUP_PARALLELISM: usize = 8;

/// A seat category of a show, as far as the bench knows it.
#[derive(Debug)]
pub struct Category {
    /// Category name.
    pub name: &'static str,
    /// Seats of this category in the layout.
    pub capacity: u32,
    /// Seen (nearly) sold out: best-mode journeys stop asking for it.
    exhausted: AtomicBool,
}

/// A show created by the bench.
#[derive(Debug)]
pub struct Show {
    /// Gateway-assigned id.
    pub id: u64,
    /// Seats in all.
    pub capacity: u32,
    /// Its categories.
    pub categories: Vec<Category>,
}

impl Show {
    /// A category that is not exhausted, weighted by capacity; `None` if all are exhausted.
    pub fn pick_category(&self, rng: &mut StdRng) -> Option<&Category> {
        let live = || self.categories.iter().filter(|c| !c.exhausted.load(Ordering::Relaxed));
        let total: u64 = live().map(|c| u64::from(c.capacity)).sum();
        if total == 0 {
            return None;
        }
        let mut ticket = rng.random_range(0..total);
        for category in live() {
            let weight = u64::from(category.capacity);
            if ticket < weight {
                return Some(category);
            }
            ticket -= weight;
        }
        None
    }

    /// Marks `category` exhausted; true when every category of the show now is.
    pub fn exhaust(&self, category: &str) -> bool {
        for c in &self.categories {
            if c.name == category {
                c.exhausted.store(true, Ordering::Relaxed);
            }
        }
        self.categories.iter().all(|c| c.exhausted.load(Ordering::Relaxed))
    }
}

/// The layout every bench show gets.
#[derive(Debug, Clone)]
pub struct Layout {
    json: Value,
    capacity: u32,
    categories: Vec<(&'static str, u32)>,
}

/// Row label `index` (0-based): A..Z, AA..ZZ, AAA.. (bijective base 26).
pub fn row_label(index: u32) -> String {
    let mut n = index + 1;
    let mut label = Vec::new();
    while n > 0 {
        n -= 1;
        label.push(b'A' + (n % 26) as u8);
        n /= 26;
    }
    label.reverse();
    String::from_utf8_lossy(&label).into_owned()
}

/// Sections of the stadium layout and their prices (minor units, INR).
const STADIUM_CATEGORIES: [(&str, i64); 3] =
    [("floor", 600_000), ("lower", 350_000), ("upper", 150_000)];
/// Seats between two aisles of a stadium row (one section's width).
const STADIUM_SECTION_SEATS: u32 = 25;

impl Layout {
    /// `rows` rows of `seats` seats; the middle third of the rows is premium, the rest
    /// standard; rows of 8+ seats get aisles after a quarter and three quarters of the row.
    pub fn new(rows: u32, seats: u32) -> Layout {
        let aisles: Vec<u32> = if seats >= 8 { vec![seats / 4, seats - seats / 4] } else { vec![] };
        let premium = if rows >= 3 { rows / 3..(2 * rows) / 3 } else { 0..0 };
        Layout::build(rows, seats, aisles, &CATEGORIES, |r| usize::from(premium.contains(&r)))
    }

    /// A stadium for the flash sale: `rows` rows of `seats` seats in sections of
    /// 25 seats between aisles; the front fifth of the rows is `floor`, the next two fifths
    /// `lower`, the rest `upper`.
    pub fn stadium(rows: u32, seats: u32) -> Layout {
        let aisles: Vec<u32> = (1..seats.div_ceil(STADIUM_SECTION_SEATS))
            .map(|section| section * STADIUM_SECTION_SEATS)
            .collect();
        let category = |r: u32| {
            if r < rows / 5 {
                0
            } else if r < 3 * rows / 5 {
                1
            } else {
                2
            }
        };
        Layout::build(rows, seats, aisles, &STADIUM_CATEGORIES, category)
    }

    /// The layout as `POST /v1/admin/shows` takes it.
    pub fn json(&self) -> &Value {
        &self.json
    }

    fn build(
        rows: u32,
        seats: u32,
        mut aisles: Vec<u32>,
        prices: &[(&'static str, i64)],
        category_of: impl Fn(u32) -> usize,
    ) -> Layout {
        aisles.retain(|a| *a >= 1 && *a < seats);
        aisles.dedup();
        let mut counts = vec![0u32; prices.len()];
        let row_specs: Vec<Value> = (0..rows)
            .map(|r| {
                let category = category_of(r).min(prices.len() - 1);
                counts[category] += seats;
                json!({
                    "label": row_label(r),
                    "category": prices[category].0,
                    "seats": seats,
                    "aisles_after": aisles,
                })
            })
            .collect();
        let categories: Vec<(&'static str, u32)> = prices
            .iter()
            .zip(counts)
            .filter(|(_, count)| *count > 0)
            .map(|((name, _), count)| (*name, count))
            .collect();
        let json = json!({
            "rows": row_specs,
            "categories": prices
                .iter()
                .filter(|(name, _)| categories.iter().any(|(n, _)| n == name))
                .map(|(name, price)| json!({ "name": name, "price_minor": price }))
                .collect::<Vec<_>>(),
            "currency": "INR",
        });
        Layout { json, capacity: rows * seats, categories }
    }
}

struct Slot {
    show: RwLock<Arc<Show>>,
    replacing: AtomicBool,
    retired: AtomicBool,
}

/// The shows of a run and their popularity.
pub struct Shows {
    slots: Vec<Slot>,
    zipf: Zipf<f64>,
    layout: Layout,
    policy: OnSoldOut,
    run_tag: String,
    all: Mutex<Vec<u64>>,
    created: AtomicU64,
    replaced: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn create_body(layout: &Layout, run_tag: &str, number: u64) -> Value {
    json!({
        "title": format!("marquee-bench {run_tag} show {number}"),
        // A month ahead: far enough that nothing about the show's start matters.
        "starts_at_ms": now_ms() + 30 * 24 * 3600 * 1000,
        "layout": layout.json,
    })
}

fn show_from(layout: &Layout, created: &CreatedShow) -> Show {
    Show {
        id: created.show_id,
        capacity: created.capacity,
        categories: layout
            .categories
            .iter()
            .map(|(name, capacity)| Category {
                name,
                capacity: *capacity,
                exhausted: AtomicBool::new(false),
            })
            .collect(),
    }
}

/// Creates one show, retrying while the cluster is unavailable.
async fn create_with_retries(api: &impl Backend, body: &Value) -> Result<CreatedShow, Failure> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match api.create_show(body).await.result {
            Ok(created) => return Ok(created),
            Err(failure) => match failure.pause() {
                Some(_) if attempt < CREATE_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                _ => return Err(failure),
            },
        }
    }
}

impl Shows {
    /// Setup phase (not measured): creates `--shows` shows.
    ///
    /// # Errors
    /// A show that cannot be created (bad admin token, gateway down, ...).
    pub async fn create<B: Backend>(api: &B, args: &Args, run_tag: &str) -> anyhow::Result<Shows> {
        let layout = match args.layout {
            LayoutKind::Cinema => Layout::new(args.rows, args.seats_per_row),
            LayoutKind::Stadium => Layout::stadium(args.rows, args.seats_per_row),
        };
        let semaphore = Arc::new(Semaphore::new(SETUP_PARALLELISM));
        let mut tasks = JoinSet::new();
        for number in 0..args.shows {
            let (api, semaphore) = (api.clone(), Arc::clone(&semaphore));
            let body = create_body(&layout, run_tag, number as u64);
            tasks.spawn(async move {
                let _permit = semaphore.acquire_owned().await;
                (number, create_with_retries(&api, &body).await)
            });
        }
        let mut created: Vec<Option<CreatedShow>> = vec![None; args.shows];
        while let Some(joined) = tasks.join_next().await {
            let (number, result) = joined.context("show creation task")?;
            let show = result.map_err(|f| anyhow::anyhow!("creating show {number}: {f}"))?;
            anyhow::ensure!(
                show.capacity == layout.capacity,
                "show {} has capacity {}, expected {}",
                show.show_id,
                show.capacity,
                layout.capacity
            );
            created[number] = Some(show);
        }
        let created: Vec<CreatedShow> = created.into_iter().flatten().collect();
        anyhow::ensure!(created.len() == args.shows, "not every show was created");
        // Rank 1 (the most popular) is slot 0.
        let zipf = Zipf::new(args.shows as f64, args.zipf_s)
            .map_err(|e| anyhow::anyhow!("Zipf distribution: {e}"))?;
        Ok(Shows {
            all: Mutex::new(created.iter().map(|c| c.show_id).collect()),
            slots: created
                .iter()
                .map(|c| Slot {
                    show: RwLock::new(Arc::new(show_from(&layout, c))),
                    replacing: AtomicBool::new(false),
                    retired: AtomicBool::new(false),
                })
                .collect(),
            zipf,
            created: AtomicU64::new(args.shows as u64),
            replaced: AtomicU64::new(0),
            layout,
            policy: args.on_sold_out,
            run_tag: run_tag.to_owned(),
        })
    }

    /// Seats per show.
    pub fn capacity(&self) -> u32 {
        self.layout.capacity
    }

    fn current(&self, slot: usize) -> Arc<Show> {
        Arc::clone(&self.slots[slot].show.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Draws a show by Zipf popularity, skipping retired slots; `None` when all are retired.
    pub fn pick(&self, rng: &mut StdRng) -> Option<(usize, Arc<Show>)> {
        for _ in 0..64 {
            let rank = self.zipf.sample(rng) as usize;
            let slot = rank.clamp(1, self.slots.len()) - 1;
            if !self.slots[slot].retired.load(Ordering::Relaxed) {
                return Some((slot, self.current(slot)));
            }
        }
        // Mostly retired: take the most popular live slot.
        let slot = self.slots.iter().position(|s| !s.retired.load(Ordering::Relaxed))?;
        Some((slot, self.current(slot)))
    }

    /// True when every slot is retired ([`OnSoldOut::Stop`] only).
    pub fn all_retired(&self) -> bool {
        self.slots.iter().all(|s| s.retired.load(Ordering::Relaxed))
    }

    /// Show `show_id` in `slot` is (nearly) sold out: retire the slot or refill it with a new
    /// show. Only the first journey to report a show acts; the creation of the replacement is
    /// recorded as [`Op::CreateShow`].
    pub async fn sold_out(&self, api: &impl Backend, slot: usize, show_id: u64, stats: &mut Stats) {
        let s = &self.slots[slot];
        if self.current(slot).id != show_id {
            return;
        }
        match self.policy {
            OnSoldOut::Stop => s.retired.store(true, Ordering::Relaxed),
            OnSoldOut::Replace => {
                if s.replacing.swap(true, Ordering::AcqRel) {
                    return;
                }
                if self.current(slot).id == show_id {
                    let number = self.created.fetch_add(1, Ordering::Relaxed);
                    let timed: Timed<CreatedShow> =
                        api.create_show(&create_body(&self.layout, &self.run_tag, number)).await;
                    match timed.result {
                        Ok(created) => {
                            stats.ok(Op::CreateShow, timed.micros);
                            let show = Arc::new(show_from(&self.layout, &created));
                            self.all.lock().unwrap_or_else(PoisonError::into_inner).push(show.id);
                            *s.show.write().unwrap_or_else(PoisonError::into_inner) = show;
                            self.replaced.fetch_add(1, Ordering::Relaxed);
                        }
                        // Left in place; a later journey on the slot tries again.
                        Err(failure) => stats.error(Op::CreateShow, failure.key()),
                    }
                }
                s.replacing.store(false, Ordering::Release);
            }
        }
    }

    /// Every show created by this run, setup and replacements.
    pub fn all_ids(&self) -> Vec<u64> {
        self.all.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Shows created to replace sold-out ones.
    pub fn replaced(&self) -> u64 {
        self.replaced.load(Ordering::Relaxed)
    }

    /// Slots retired ([`OnSoldOut::Stop`]).
    pub fn retired(&self) -> usize {
        self.slots.iter().filter(|s| s.retired.load(Ordering::Relaxed)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_labels_are_bijective_base_26() {
        assert_eq!(row_label(0), "A");
        assert_eq!(row_label(25), "Z");
        assert_eq!(row_label(26), "AA");
        assert_eq!(row_label(99), "CV");
        assert_eq!(row_label(701), "ZZ");
        assert_eq!(row_label(702), "AAA");
    }

    #[test]
    fn layout_has_aisles_and_both_categories() {
        let layout = Layout::new(20, 30);
        assert_eq!(layout.capacity, 600);
        assert_eq!(layout.categories, vec![("standard", 390), ("premium", 210)]);
        assert_eq!(layout.json["rows"][0]["aisles_after"], json!([7, 23]));
        assert_eq!(layout.json["rows"][6]["category"], json!("premium"));
        let tiny = Layout::new(1, 4);
        assert_eq!(tiny.categories, vec![("standard", 4)]);
        assert_eq!(tiny.json["categories"].as_array().map(Vec::len), Some(1));
    }
}
