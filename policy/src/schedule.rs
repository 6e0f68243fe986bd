//! `schedule` blocks: what they say (read from the syntax tree as plain data, so the runtime needs
//! neither the tree nor the analysis) and the one parser of their cron expressions, shared by the
//! static check (`SYM0410`) and the runtime's driver so that both accept exactly the same text.
//!
//! Expressions follow POSIX/Vixie cron (`croner`): five fields (minute, hour, day of month, month,
//! day of week, Sunday = 0 or 7) or six with a leading seconds field; when both a day of month and
//! a day of week are restricted, either matches. Every time is UTC.

use std::{str::FromStr, time::SystemTime};

use symbiont_syntax::{
    ast::{self, AstNode, EntryItem, Expr, Item},
    TextRange,
};

/// One `schedule NAME { cron: "...", agent: "..." }` block, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleDecl {
    pub name: String,
    /// The `agent` entry, written as a name or a string.
    pub agent: Option<String>,
    /// The `cron` entry's string, and the range of the string literal.
    pub cron: Option<(String, TextRange)>,
    /// The `timezone` entry's string and its range, if written: schedules run in UTC only.
    pub timezone: Option<(String, TextRange)>,
    /// The whole block.
    pub range: TextRange,
}

/// The schedules a file declares, in order. Blocks without a name are skipped (a syntax error
/// already says so).
pub fn schedules(file: &ast::SourceFile) -> Vec<ScheduleDecl> {
    file.items().filter_map(|item| if let Item::Schedule(s) = item { declaration(&s) } else { None }).collect()
}

/// One block's declaration; `None` without a name.
pub fn declaration(schedule: &ast::Schedule) -> Option<ScheduleDecl> {
    let item = EntryItem::Schedule(schedule.clone());
    let name = item.name()?.text();
    let mut decl = ScheduleDecl { name, agent: None, cron: None, timezone: None, range: item.syntax().text_range() };
    for entry in item.body().into_iter().flat_map(|b| b.entries().collect::<Vec<_>>()) {
        let (Some(key), Some(value)) = (entry.key(), entry.value()) else { continue };
        match (key.text().as_str(), &value) {
            ("agent", Expr::PathExpr(path)) => decl.agent = Some(path.text()),
            ("agent", Expr::Literal(lit)) => decl.agent = lit.string_value(),
            ("cron", Expr::Literal(lit)) => decl.cron = lit.string_value().map(|text| (text, lit.syntax().text_range())),
            ("timezone", Expr::Literal(lit)) => decl.timezone = lit.string_value().map(|text| (text, lit.syntax().text_range())),
            _ => {}
        }
    }
    Some(decl)
}

/// A parsed cron expression, evaluated in UTC.
#[derive(Debug, Clone)]
pub struct Cron {
    inner: croner::Cron,
    text: String,
}

impl Cron {
    /// Parses five fields, or six with seconds first. The error says what is wrong.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let fields = text.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(format!(
                "a cron expression has 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, found {fields}"
            ));
        }
        let parser = croner::parser::CronParser::builder().seconds(croner::parser::Seconds::Optional).build();
        let inner = parser.parse(text).map_err(|e| e.to_string())?;
        // croner accepts patterns that can never match (`0 0 30 2 *`); one that never fires is
        // refused here rather than found out by a service that waits forever.
        let probe = jiff::Timestamp::UNIX_EPOCH.to_zoned(jiff::tz::TimeZone::UTC);
        if inner.find_next_occurrence(&probe, false).is_err() {
            return Err("this expression matches no date".to_string());
        }
        Ok(Cron { inner, text: text.to_string() })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the expression has a seconds field.
    pub fn has_seconds(&self) -> bool {
        self.text.split_whitespace().count() == 6
    }

    /// The first tick strictly after `after` (UTC), or `None` past the representable years.
    pub fn next_after(&self, after: SystemTime) -> Option<SystemTime> {
        let at = jiff::Timestamp::try_from(after).ok()?.to_zoned(jiff::tz::TimeZone::UTC);
        let next = self.inner.find_next_occurrence(&at, false).ok()?;
        Some(SystemTime::from(next.timestamp()))
    }
}

impl FromStr for Cron {
    type Err = String;
    fn from_str(text: &str) -> Result<Cron, String> {
        Cron::parse(text)
    }
}

/// A time as RFC 3339 in UTC with seconds (`2026-12-07T02:00:00Z`), as schedules' audit entries
/// write it.
pub fn utc_string(at: SystemTime) -> String {
    match jiff::Timestamp::try_from(at) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => "out of range".to_string(),
    }
}

/// The inverse of [`utc_string`].
pub fn parse_utc(text: &str) -> Option<SystemTime> {
    text.parse::<jiff::Timestamp>().ok().map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at(rfc3339: &str) -> SystemTime {
        SystemTime::from(rfc3339.parse::<jiff::Timestamp>().unwrap())
    }

    #[test]
    fn weekdays_at_two_utc() {
        let cron = Cron::parse("0 2 * * 1-5").unwrap();
        // Friday 2026-12-04 03:00 → Monday 2026-12-07 02:00.
        let next = cron.next_after(at("2026-12-04T03:00:00Z")).unwrap();
        assert_eq!(utc_string(next), "2026-12-07T02:00:00Z");
        // Exactly on a tick: the next one, never the same.
        assert_eq!(utc_string(cron.next_after(next).unwrap()), "2026-12-08T02:00:00Z");
        assert_eq!(parse_utc(&utc_string(next)), Some(next));
        // Names, as written in the docs' examples, mean the same.
        let named = Cron::parse("0 2 * * MON-FRI").unwrap();
        assert_eq!(named.next_after(at("2026-12-04T03:00:00Z")), Some(next));
    }

    #[test]
    fn six_fields_tick_every_second() {
        let cron = Cron::parse("* * * * * *").unwrap();
        assert!(cron.has_seconds());
        let start = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(cron.next_after(start), Some(start + Duration::from_secs(1)));
        assert!(!Cron::parse("*/5 * * * *").unwrap().has_seconds());
    }

    #[test]
    fn bad_expressions_say_why() {
        for (text, says) in [
            ("", "found 0"),
            ("* * * *", "found 4"),
            ("0 0 * * * * 2030", "found 7"),
            ("61 * * * *", ""),
            ("0 25 * * *", ""),
            ("0 0 30 2 *", "matches no date"),
            ("every day", "found 2"),
            ("@daily", "found 1"),
            // Odd input from an editor's keystrokes: an error, never a panic.
            ("*/0 * * * *", ""),
            ("0-99999999999999999999 * * * *", ""),
            ("5-1/0 * * * *", ""),
            ("0 0 L W # ?", ""),
            ("é * * * *", ""),
            ("0 0 0 0 0", ""),
        ] {
            let error = Cron::parse(text).expect_err(text);
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn declarations_are_read_from_the_tree() {
        let parse = symbiont_syntax::parse(
            "schedule nightly {\n    cron: \"0 2 * * 1-5\"\n    agent: \"reviewer\"\n}\nschedule other { agent: triage }\n",
        );
        let file = ast::SourceFile::cast(parse.syntax()).unwrap();
        let found = schedules(&file);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].name.as_str(), found[0].agent.as_deref()), ("nightly", Some("reviewer")));
        assert_eq!(found[0].cron.as_ref().map(|c| c.0.as_str()), Some("0 2 * * 1-5"));
        assert_eq!((found[1].agent.as_deref(), found[1].cron.is_none()), (Some("triage"), true));
    }
}
