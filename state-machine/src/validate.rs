//! Field checks of catalog records, each naming the offending field in its rejection
//! (`CatalogInvalid { field, reason }`), so the gateway can answer `422` with the field. Seat
//! layouts are checked by [`crate::layout`], shared with the inventory shards.

use proto::calendar::parse_date;
use proto::catalog::{MovieSpec, ScreenSpec, TheaterSpec};
use proto::command::Rejection;

use crate::limits::{
    CATALOG_TEXT_BYTES_MAX, CATEGORIES_MAX, NAME_BYTES_MAX, SHOW_ID_MAX, URL_BYTES_MAX,
};

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Rejection {
    Rejection::CatalogInvalid { field: field.into(), reason: reason.into() }
}

pub(crate) fn not_found(kind: &str, id: u64) -> Rejection {
    Rejection::CatalogNotFound { kind: kind.to_owned(), id }
}

pub(crate) fn conflict(reason: impl Into<String>) -> Rejection {
    Rejection::CatalogConflict { reason: reason.into() }
}

pub(crate) fn check_text(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<(), Rejection> {
    if value.len() < min || value.len() > max {
        return Err(invalid(field, format!("must be {min}..={max} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

pub(crate) fn check_list(
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

pub(crate) fn check_movie(spec: &MovieSpec) -> Result<(), Rejection> {
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

pub(crate) fn check_theater(spec: &TheaterSpec) -> Result<(), Rejection> {
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

pub(crate) fn check_screen(spec: &ScreenSpec) -> Result<(), Rejection> {
    check_text("name", &spec.name, 1, NAME_BYTES_MAX)?;
    crate::layout::check_rows(&spec.rows).map_err(|e| invalid(e.field, e.reason))?;
    for (i, row) in spec.rows.iter().enumerate() {
        check_text(&format!("rows[{i}].category"), &row.category, 1, NAME_BYTES_MAX)?;
    }
    if spec.categories().len() > CATEGORIES_MAX {
        return Err(invalid("rows", format!("at most {CATEGORIES_MAX} categories")));
    }
    Ok(())
}

pub(crate) fn check_currency(currency: &str) -> Result<(), Rejection> {
    if !crate::layout::is_currency(currency) {
        return Err(invalid("currency", "an ISO 4217 code such as INR"));
    }
    Ok(())
}

pub(crate) fn check_id(field: &str, id: u64) -> Result<(), Rejection> {
    if id == 0 || id > SHOW_ID_MAX {
        return Err(invalid(field, "1..=2^53-1"));
    }
    Ok(())
}

pub(crate) fn check_start(starts_at_ms: u64) -> Result<(), Rejection> {
    // Year 2000 .. year 2200: catches seconds-for-milliseconds mistakes.
    if !(946_684_800_000..=7_258_118_400_000).contains(&starts_at_ms) {
        return Err(invalid("starts_at_ms", "Unix milliseconds between 2000 and 2200"));
    }
    Ok(())
}

pub(crate) fn check_hash(hash: &str) -> Result<(), Rejection> {
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        return Err(invalid("token_hash", "64 lowercase hex digits (SHA-256)"));
    }
    Ok(())
}
