//! What a quantity literal means: durations and byte sizes (`30s`, `6months`, `90.days`,
//! `512MB`, `2GiB`).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    Duration(Duration),
    /// Bytes.
    Size(u64),
}

/// Units of duration, with their length in seconds (a month is 30 days, a year 365 days).
pub const DURATION_UNITS: &[(&str, u64)] =
    &[("ms", 0), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400), ("w", 604_800), ("months", 2_592_000), ("y", 31_536_000)];

/// Word units of the dotted form (`90.days`), with their single-letter equivalent.
const DOTTED_UNITS: &[(&str, &str)] = &[
    ("millisecond", "ms"),
    ("milliseconds", "ms"),
    ("second", "s"),
    ("seconds", "s"),
    ("minute", "m"),
    ("minutes", "m"),
    ("hour", "h"),
    ("hours", "h"),
    ("day", "d"),
    ("days", "d"),
    ("week", "w"),
    ("weeks", "w"),
    ("month", "months"),
    ("months", "months"),
    ("year", "y"),
    ("years", "y"),
];

/// Units of size, with their length in bytes.
pub const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuantityError {
    UnknownUnit { unit: String },
    Overflow,
}

impl std::fmt::Display for QuantityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuantityError::UnknownUnit { unit } => write!(
                f,
                "unknown unit `{unit}`: expected a duration unit (ms, s, m, h, d, w, months, y) or a size unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            ),
            QuantityError::Overflow => f.write_str("the quantity is too large"),
        }
    }
}

/// Splits a `QUANTITY` token's text into its number and unit.
fn split(text: &str) -> (&str, &str) {
    if let Some((number, unit)) = text.split_once('.') {
        if unit.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return (number, unit);
        }
    }
    let at = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    (&text[..at], &text[at..])
}

pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
    let (number, unit) = split(text);
    let dotted = text.contains('.') && !number.contains('.');
    let number: u64 = number.replace('_', "").parse().map_err(|_| QuantityError::Overflow)?;
    let unit = if dotted {
        match DOTTED_UNITS.iter().find(|(word, _)| *word == unit) {
            Some((_, short)) => *short,
            None => return Err(unknown(unit)),
        }
    } else {
        unit
    };
    if unit == "ms" {
        return Ok(Quantity::Duration(Duration::from_millis(number)));
    }
    if let Some(&(_, seconds)) = DURATION_UNITS.iter().find(|(u, _)| *u == unit) {
        let secs = number.checked_mul(seconds).ok_or(QuantityError::Overflow)?;
        return Ok(Quantity::Duration(Duration::from_secs(secs)));
    }
    if let Some(&(_, bytes)) = SIZE_UNITS.iter().find(|(u, _)| *u == unit) {
        return number.checked_mul(bytes).map(Quantity::Size).ok_or(QuantityError::Overflow);
    }
    Err(unknown(unit))
}

fn unknown(unit: &str) -> QuantityError {
    QuantityError::UnknownUnit { unit: unit.to_string() }
}

/// Every unit a quantity may carry, for suggestions.
pub fn all_units() -> impl Iterator<Item = &'static str> {
    DURATION_UNITS.iter().map(|(u, _)| *u).chain(SIZE_UNITS.iter().map(|(u, _)| *u)).chain(DOTTED_UNITS.iter().map(|(w, _)| *w))
}

/// Replaces the unit of a quantity's text (for fixes).
pub fn with_unit(text: &str, new_unit: &str) -> String {
    let (number, _) = split(text);
    let dotted = text.contains('.') && !number.contains('.') && DOTTED_UNITS.iter().any(|(w, _)| *w == new_unit);
    if dotted {
        format!("{number}.{new_unit}")
    } else {
        format!("{number}{new_unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("30s"), Ok(Quantity::Duration(Duration::from_secs(30))));
        assert_eq!(parse("90.days"), Ok(Quantity::Duration(Duration::from_secs(90 * 86_400))));
        assert_eq!(parse("6months"), Ok(Quantity::Duration(Duration::from_secs(6 * 2_592_000))));
        assert_eq!(parse("250ms"), Ok(Quantity::Duration(Duration::from_millis(250))));
        assert_eq!(parse("512MB"), Ok(Quantity::Size(512_000_000)));
        assert_eq!(parse("2GiB"), Ok(Quantity::Size(2 << 30)));
        assert!(matches!(parse("30x"), Err(QuantityError::UnknownUnit { .. })));
        assert!(matches!(parse("512mb"), Err(QuantityError::UnknownUnit { .. })));
        assert_eq!(parse("99999999999999999999y"), Err(QuantityError::Overflow));
    }
}
