//! The one seat-layout validator. A screen's rows are checked by the catalog when the screen is
//! stored, and a show's layout (those rows, plus prices) by the inventory shard when the show is
//! created. Both must agree, or a show the catalog scheduled could be refused by its shard after
//! the catalog recorded it (this happened with lowercase row labels: the catalog took them, the
//! shard did not). So both call [`check_rows`], and the shard's extra checks concern only what
//! the catalog does not have (prices and currency, [`check_priced`]).
//!
//! Row labels are 1..=[`ROW_LABEL_BYTES_MAX`] ASCII letters of either case, unique ignoring case
//! (so `a7` and `A7` never name two seats). Seat ids are `"{label}{number}"`, which parse
//! unambiguously because labels hold no digits.

use std::collections::{BTreeMap, BTreeSet};

use proto::layout::{Layout, RowSpec};

use crate::limits::{
    CATEGORIES_MAX, NAME_BYTES_MAX, PRICE_MINOR_MAX, ROWS_MAX, ROW_LABEL_BYTES_MAX, ROW_SEATS_MAX,
    SHOW_SEATS_MAX,
};

/// What is wrong with a layout: the offending field (a dotted path such as `rows[2].label`) and
/// why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutError {
    /// The field, e.g. `rows[0].label`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl LayoutError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> LayoutError {
        LayoutError { field: field.into(), reason: reason.into() }
    }
}

impl std::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Whether `label` is a valid row label (before the uniqueness check).
pub fn is_row_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= ROW_LABEL_BYTES_MAX
        && label.bytes().all(|b| b.is_ascii_alphabetic())
}

/// Checks the rows of a screen or show: 1..=[`ROWS_MAX`] rows with valid, unique labels,
/// 1..=[`ROW_SEATS_MAX`] seats each, aisles inside the row, at most [`SHOW_SEATS_MAX`] seats in
/// all. Returns the number of seats.
///
/// # Errors
/// The first offending field.
pub fn check_rows(rows: &[RowSpec]) -> Result<u32, LayoutError> {
    if rows.is_empty() || rows.len() > ROWS_MAX {
        return Err(LayoutError::new("rows", format!("1..={ROWS_MAX} rows")));
    }
    let mut labels = BTreeSet::new();
    let mut total = 0u32;
    for (i, row) in rows.iter().enumerate() {
        if !is_row_label(&row.label) {
            return Err(LayoutError::new(
                format!("rows[{i}].label"),
                format!("1..={ROW_LABEL_BYTES_MAX} ASCII letters"),
            ));
        }
        if !labels.insert(row.label.to_ascii_uppercase()) {
            return Err(LayoutError::new(format!("rows[{i}].label"), "row labels must be unique"));
        }
        if row.category.is_empty() || row.category.len() > NAME_BYTES_MAX {
            return Err(LayoutError::new(
                format!("rows[{i}].category"),
                format!("must be 1..={NAME_BYTES_MAX} bytes"),
            ));
        }
        if !(1..=ROW_SEATS_MAX).contains(&row.seats) {
            return Err(LayoutError::new(
                format!("rows[{i}].seats"),
                format!("1..={ROW_SEATS_MAX}"),
            ));
        }
        if row.aisles_after.iter().any(|&n| n == 0 || n >= row.seats) {
            return Err(LayoutError::new(
                format!("rows[{i}].aisles_after"),
                "seat numbers inside the row (1..seats)",
            ));
        }
        total += row.seats;
        if total > SHOW_SEATS_MAX {
            return Err(LayoutError::new("rows", format!("at most {SHOW_SEATS_MAX} seats")));
        }
    }
    Ok(total)
}

/// Checks a currency code: three uppercase ASCII letters (ISO 4217).
pub fn is_currency(currency: &str) -> bool {
    currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase())
}

/// Checks a show's whole layout: the currency, 1..=[`CATEGORIES_MAX`] uniquely named categories
/// with prices in 0..=[`PRICE_MINOR_MAX`], the rows ([`check_rows`]), and that every row's
/// category is priced. Returns the prices by category and the number of seats.
///
/// # Errors
/// The first offending field.
pub fn check_priced(layout: &Layout) -> Result<(BTreeMap<String, i64>, u32), LayoutError> {
    if !is_currency(&layout.currency) {
        return Err(LayoutError::new("currency", "a 3-letter ISO 4217 code"));
    }
    if layout.categories.is_empty() || layout.categories.len() > CATEGORIES_MAX {
        return Err(LayoutError::new("categories", format!("1..={CATEGORIES_MAX} categories")));
    }
    let mut prices = BTreeMap::new();
    for (i, category) in layout.categories.iter().enumerate() {
        if category.name.is_empty() || category.name.len() > NAME_BYTES_MAX {
            return Err(LayoutError::new(
                format!("categories[{i}].name"),
                format!("must be 1..={NAME_BYTES_MAX} bytes"),
            ));
        }
        if !(0..=PRICE_MINOR_MAX).contains(&category.price_minor) {
            return Err(LayoutError::new(
                format!("categories[{i}].price_minor"),
                format!("0..={PRICE_MINOR_MAX}"),
            ));
        }
        if prices.insert(category.name.clone(), category.price_minor).is_some() {
            return Err(LayoutError::new(
                format!("categories[{i}].name"),
                format!("category {} listed twice", category.name),
            ));
        }
    }
    let total = check_rows(&layout.rows)?;
    if let Some((i, row)) =
        layout.rows.iter().enumerate().find(|(_, row)| !prices.contains_key(&row.category))
    {
        return Err(LayoutError::new(
            format!("rows[{i}].category"),
            format!("category {} has no price", row.category),
        ));
    }
    Ok((prices, total))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proto::layout::CategorySpec;

    use super::*;

    fn row(label: &str, seats: u32) -> RowSpec {
        RowSpec { label: label.into(), category: "classic".into(), seats, aisles_after: vec![] }
    }

    fn priced(rows: Vec<RowSpec>) -> Layout {
        Layout {
            rows,
            categories: vec![CategorySpec { name: "classic".into(), price_minor: 100 }],
            currency: "INR".into(),
        }
    }

    #[test]
    fn lowercase_labels_are_valid_for_screens_and_shows_alike() {
        let rows = vec![row("a", 5), row("Bb", 5)];
        assert_eq!(check_rows(&rows), Ok(10));
        assert_eq!(check_priced(&priced(rows)).map(|(_, seats)| seats), Ok(10));
    }

    #[test]
    fn labels_are_unique_ignoring_case() {
        let err = check_rows(&[row("A", 5), row("a", 5)]).unwrap_err();
        assert_eq!(err.field, "rows[1].label");
    }

    #[test]
    fn bad_rows_name_their_field() {
        assert_eq!(check_rows(&[]).unwrap_err().field, "rows");
        assert_eq!(check_rows(&[row("A1", 5)]).unwrap_err().field, "rows[0].label");
        assert_eq!(check_rows(&[row("ABCD", 5)]).unwrap_err().field, "rows[0].label");
        assert_eq!(check_rows(&[row("A", 0)]).unwrap_err().field, "rows[0].seats");
        let mut aisle = row("A", 5);
        aisle.aisles_after = vec![5];
        assert_eq!(check_rows(&[aisle]).unwrap_err().field, "rows[0].aisles_after");
        let big: Vec<RowSpec> = (0..255)
            .map(|i| row(&format!("{}{}", (b'A' + i / 26) as char, (b'A' + i % 26) as char), 200))
            .collect();
        assert_eq!(check_rows(&big).unwrap_err().field, "rows");
    }

    #[test]
    fn a_show_needs_a_price_for_every_row() {
        let mut layout = priced(vec![row("A", 5)]);
        layout.rows[0].category = "premium".into();
        assert_eq!(check_priced(&layout).unwrap_err().field, "rows[0].category");
        let mut layout = priced(vec![row("A", 5)]);
        layout.currency = "inr".into();
        assert_eq!(check_priced(&layout).unwrap_err().field, "currency");
    }
}
