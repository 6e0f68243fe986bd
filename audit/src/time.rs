//! UTC timestamps in RFC 3339 (`2026-11-27T02:40:15.123456Z`) without a calendar library.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-27T02:40:15.123456Z`
pub fn format_micros(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Parses an RFC 3339 UTC timestamp (`Z` or `+00:00`; fractional seconds optional) to microseconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z').or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = text.split_once('T')?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: u32 = date_parts.next()?.parse().ok()?;
    let day: u32 = date_parts.next()?.parse().ok()?;
    let (hms, frac) = match time.split_once('.') {
        Some((hms, frac)) => (hms, frac),
        None => (time, ""),
    };
    let mut t = hms.splitn(3, ':');
    let (h, m, s): (i64, i64, i64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || h > 23
        || m > 59
        || s > 60
        || frac.len() > 9
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let micros_frac: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<6}")[..6].parse().ok()? };
    Some(((days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s) * 1_000_000) + micros_frac)
}

/// `--since` values: an RFC 3339 timestamp (`Z` or any `±HH:MM` offset), or a duration ago (`90s`,
/// `15m`, `2h`, `7d`, `2w`).
pub fn parse_since(text: &str, now: i64) -> Option<i64> {
    if let Some(t) = parse_rfc3339(text).or_else(|| parse_with_offset(text)) {
        return Some(t);
    }
    let micros = i64::try_from(Duration::from_secs(parse_seconds(text, "smhdw")?).as_micros()).ok()?;
    now.checked_sub(micros)
}

/// A duration written as a whole number and one unit among `units` (`90s`, `15m`, `2h`, `7d`,
/// `2w`, `7y`; a year is 365 days), in seconds: the one reading of durations, for `--since` and
/// a backup's retention.
pub fn parse_seconds(text: &str, units: &str) -> Option<u64> {
    let unit = text.chars().last().filter(|u| units.contains(*u))?;
    let count = &text[..text.len() - unit.len_utf8()];
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let per_unit = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        'y' => 365 * 86_400,
        _ => return None,
    };
    count.parse::<u64>().ok()?.checked_mul(per_unit)
}

/// An RFC 3339 time with a numeric offset (`2026-12-07T10:30:00+01:00`), in UTC microseconds.
fn parse_with_offset(text: &str) -> Option<i64> {
    let (time, offset) = text.split_at(text.len().checked_sub(6)?);
    let (sign, hm) = match offset.as_bytes().first()? {
        b'+' => (1, &offset[1..]),
        b'-' => (-1, &offset[1..]),
        _ => return None,
    };
    let (h, m) = hm.split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    if h > 23 || m > 59 || !time.contains('T') {
        return None;
    }
    Some(parse_rfc3339(&format!("{time}Z"))? - sign * (h * 3600 + m * 60) * 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for micros in [0, 1_764_210_015_123_456, -1, 951_782_400_000_000 /* 2000-02-29 */] {
            assert_eq!(parse_rfc3339(&format_micros(micros)), Some(micros), "{}", format_micros(micros));
        }
        assert_eq!(format_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(format_micros(951_782_400_000_000), "2000-02-29T00:00:00.000000Z");
        assert_eq!(parse_rfc3339("2026-11-27T02:40:15Z"), parse_rfc3339("2026-11-27T02:40:15.000000Z"));
        assert_eq!(parse_since("2h", 10_000_000_000), Some(10_000_000_000 - 7_200_000_000));
        assert_eq!(parse_since("2026-11-27T03:40:15+01:00", 0), parse_rfc3339("2026-11-27T02:40:15Z"));
        assert_eq!(parse_since("2026-11-27T01:10:15.5-01:30", 0), parse_rfc3339("2026-11-27T02:40:15.5Z"));
        for bad in ["99999999999999999999w", "9999999999999999w", "2h ago", "1y", "2026-11-27", "2026-11-27T02:40:15+1:00", "yesterday"] {
            assert_eq!(parse_since(bad, 0), None, "{bad}");
        }
        assert!(parse_rfc3339("2026-13-01T00:00:00Z").is_none());
    }
}
