//! `symbiont.toml`: workspace-wide settings.
//!
//! ```toml
//! [policy]
//! base = "org_baseline"          # a top-level policy applied to every agent and to unbound code
//!
//! [levels]
//! clearance = ["public", "developer", "maintainer", "admin"]          # lowest first
//! classification = ["public", "internal", "confidential", "secret"]  # lowest first
//! ```

use serde::Deserialize;
use symbiont_syntax::{TextRange, TextSize};

pub const DEFAULT_CLEARANCES: &[&str] = &["public", "developer", "maintainer", "admin"];
pub const DEFAULT_CLASSIFICATIONS: &[&str] = &["public", "internal", "confidential", "secret"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The base policy's name and where it is written in `symbiont.toml`.
    pub base_policy: Option<(String, TextRange)>,
    /// Clearance levels, lowest first.
    pub clearances: Vec<String>,
    /// Data classification levels, lowest first.
    pub classifications: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            base_policy: None,
            clearances: DEFAULT_CLEARANCES.iter().map(|s| s.to_string()).collect(),
            classifications: DEFAULT_CLASSIFICATIONS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub message: String,
    pub range: TextRange,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    policy: Option<RawPolicy>,
    levels: Option<RawLevels>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    base: Option<toml::Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLevels {
    clearance: Option<Vec<String>>,
    classification: Option<Vec<String>>,
}

fn range(span: std::ops::Range<usize>) -> TextRange {
    TextRange::new(TextSize::from(span.start as u32), TextSize::from(span.end as u32))
}

/// Parses `symbiont.toml`. Errors carry the range they concern.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
        message: e.message().to_string(),
        range: e.span().map_or(TextRange::empty(0.into()), range),
    })?;
    let mut config = Config::default();
    if let Some(base) = raw.policy.and_then(|p| p.base) {
        let span = base.span();
        config.base_policy = Some((base.into_inner(), range(span)));
    }
    if let Some(levels) = raw.levels {
        for (list, target) in [(levels.clearance, &mut config.clearances), (levels.classification, &mut config.classifications)] {
            if let Some(list) = list {
                if list.is_empty() {
                    return Err(ConfigError { message: "a level list must name at least one level".into(), range: TextRange::empty(0.into()) });
                }
                *target = list;
            }
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_and_rejects_unknown_keys() {
        let config = super::parse("[policy]\nbase = \"org\"\n[levels]\nclearance = [\"a\", \"b\"]\n").unwrap();
        assert_eq!(config.base_policy.as_ref().unwrap().0, "org");
        assert_eq!(config.clearances, ["a", "b"]);
        let err = super::parse("[policy]\nbasis = \"org\"\n").unwrap_err();
        assert!(err.message.contains("basis"), "{}", err.message);
        assert_eq!(u32::from(err.range.start()), 9);
    }
}
