//! Seat layouts and prices: what a screen's rows look like and what its seat categories cost.
//! The catalog stores a screen's rows; a show fixes rows, categories and prices at creation.

use serde::{Deserialize, Serialize};

/// Money in minor units (paise, cents) of one currency.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Money {
    /// Amount in the currency's minor unit.
    pub amount_minor: i64,
    /// ISO 4217 code, e.g. `INR`.
    pub currency: String,
}

/// A seat category and its price for one show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CategorySpec {
    /// Category name, e.g. `premium`.
    pub name: String,
    /// Price of one seat, in the show currency's minor unit.
    pub price_minor: i64,
}

/// One row of seats. Seats are numbered 1..=`seats` and identified `"{label}{number}"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RowSpec {
    /// Row label, e.g. `A`. ASCII letters only, so seat ids parse unambiguously.
    pub label: String,
    /// Category of every seat in this row.
    pub category: String,
    /// Number of seats in the row.
    pub seats: u32,
    /// Seat numbers after which an aisle or gap breaks adjacency.
    #[serde(default)]
    pub aisles_after: Vec<u32>,
}

/// A show's seat layout and prices, fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Layout {
    /// Rows in order from the screen/stage backwards.
    pub rows: Vec<RowSpec>,
    /// Categories with prices; every row's category must be listed.
    pub categories: Vec<CategorySpec>,
    /// ISO 4217 currency of all prices.
    pub currency: String,
}
