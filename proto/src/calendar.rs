//! Calendar maths on the proleptic Gregorian calendar, in one place: the catalog turns a local
//! `YYYY-MM-DD` into a UTC range of log time, the gateway renders timestamps as RFC 3339, tests
//! compute dates. Pure integer arithmetic (Howard Hinnant's `days_from_civil` and
//! `civil_from_days`), so every replica and client agrees.

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;

/// Days since 1970-01-01 of a valid `YYYY-MM-DD` date, else `None`.
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
    Some(days_from_civil(y, m, d))
}

/// Days since 1970-01-01 of a civil date (`month` 1..=12, `day` 1..=31).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a count of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The UTC date (`YYYY-MM-DD`) of Unix milliseconds.
pub fn date_of_ms(ms: u64) -> String {
    let (year, month, day) = civil_from_days((ms / DAY_MS) as i64);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Unix milliseconds as an RFC 3339 UTC timestamp with milliseconds.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let rem = secs % 86_400;
    format!(
        "{}T{:02}:{:02}:{:02}.{:03}Z",
        date_of_ms(ms),
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms % 1000
    )
}

/// The UTC millisecond range `[start, end)` of local day `date` at `offset_minutes` from UTC.
pub fn local_day_range(date: &str, offset_minutes: i32) -> Option<(u64, u64)> {
    let days = parse_date(date)?;
    let start = days * DAY_MS as i64 - i64::from(offset_minutes) * 60_000;
    let start = u64::try_from(start.max(0)).ok()?;
    Some((start, start + DAY_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for days in [-719_468, -1, 0, 1, 10_957, 11_016, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(parse_date("2000-02-29"), Some(11_016));
        assert_eq!(parse_date("1900-02-29"), None);
        assert_eq!(parse_date("2024-13-01"), None);
        assert_eq!(date_of_ms(951_782_400_000), "2000-02-29");
        assert_eq!(rfc3339(951_782_400_123 + 3_723_000), "2000-02-29T01:02:03.123Z");
        assert_eq!(
            local_day_range("1970-01-02", 330),
            Some((DAY_MS - 330 * 60_000, 2 * DAY_MS - 330 * 60_000))
        );
    }
}
