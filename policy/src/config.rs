//! `symbiont.toml`: workspace-wide settings.
//!
//! ```toml
//! [policy]
//! base = "org_baseline"          # a top-level policy applied to every agent and to unbound code
//!
//! [levels]
//! clearance = ["public", "developer", "maintainer", "admin"]          # lowest first
//! classification = ["public", "internal", "confidential", "secret"]  # lowest first
//!
//! [operations.deploy]            # a project-defined operation
//! description = "Roll out a release"
//! parent = "execute_code"        # optional: a catalogue operation it is a case of
//!
//! [code]                         # rules for agent code (docs/code-rules.md)
//! builtin_rules = true
//!
//! [runtime]                      # `symbiont run` (docs/runtime.md)
//! warm = true                    # as `--warm`: adopt and leave warm containers
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use symbiont_syntax::{TextRange, TextSize};

use crate::Levels;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// The base policy's name and where it is written in `symbiont.toml`.
    pub base_policy: Option<(String, TextRange)>,
    pub levels: Levels,
    /// Project-defined operations, by name.
    pub operations: BTreeMap<String, CustomOperation>,
    /// The `[code]` table, as TOML text: the code analysis gives it meaning.
    pub code: String,
    /// The `[runtime]` table.
    pub runtime: RuntimeSettings,
}

/// How `symbiont run` runs this workspace's agents (`[runtime]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSettings {
    /// Every run as with `--warm`: it adopts a warm container an earlier run left and leaves one
    /// for the next (docs/runtime.md, "Warm containers for `symbiont run`").
    #[serde(default)]
    pub warm: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomOperation {
    #[serde(default)]
    pub description: String,
    pub parent: Option<String>,
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
    #[serde(default)]
    operations: BTreeMap<String, CustomOperation>,
    /// Rules for agent code; read by `symbiont-code` (`[code]`, `[[code.rules]]`).
    #[serde(default)]
    code: toml::Table,
    #[serde(default)]
    runtime: RuntimeSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    base: Option<toml::Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLevels {
    clearance: Option<toml::Spanned<Vec<String>>>,
    classification: Option<toml::Spanned<Vec<String>>>,
}

fn range(span: std::ops::Range<usize>) -> TextRange {
    TextRange::new(TextSize::from(span.start as u32), TextSize::from(span.end as u32))
}

/// Parses `symbiont.toml`. Errors carry the range they concern.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text)
        .map_err(|e| ConfigError { message: e.message().to_string(), range: e.span().map_or(TextRange::empty(0.into()), range) })?;
    let mut config = Config::default();
    if let Some(base) = raw.policy.and_then(|p| p.base) {
        let span = base.span();
        config.base_policy = Some((base.into_inner(), range(span)));
    }
    if let Some(levels) = raw.levels {
        for (list, target) in
            [(levels.clearance, &mut config.levels.clearances), (levels.classification, &mut config.levels.classifications)]
        {
            let Some(list) = list else { continue };
            let span = list.span();
            let list = list.into_inner();
            if list.is_empty() {
                return Err(ConfigError { message: "a level list must name at least one level".into(), range: range(span) });
            }
            if let Some(dup) = list.iter().enumerate().find_map(|(i, l)| list[..i].contains(l).then_some(l)) {
                return Err(ConfigError { message: format!("level `{dup}` is listed twice"), range: range(span) });
            }
            *target = list;
        }
    }
    for (name, op) in &raw.operations {
        if let Some(parent) = &op.parent {
            if crate::catalogue::lookup(parent).is_none() && !raw.operations.contains_key(parent) {
                return Err(ConfigError {
                    message: format!("operation `{name}` names parent `{parent}`, which is neither a catalogue nor a project operation"),
                    range: TextRange::empty(0.into()),
                });
            }
        }
    }
    config.operations = raw.operations;
    config.code = toml::to_string(&raw.code).unwrap_or_default();
    config.runtime = raw.runtime;
    Ok(config)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_and_rejects_unknown_keys() {
        let config = super::parse(
            "[policy]\nbase = \"org\"\n[levels]\nclearance = [\"a\", \"b\"]\n[operations.deploy]\nparent = \"execute_code\"\n",
        )
        .unwrap();
        assert_eq!(config.base_policy.as_ref().unwrap().0, "org");
        assert_eq!(config.levels.clearances, ["a", "b"]);
        assert_eq!(config.operations["deploy"].parent.as_deref(), Some("execute_code"));
        let err = super::parse("[policy]\nbasis = \"org\"\n").unwrap_err();
        assert!(err.message.contains("basis"), "{}", err.message);
        assert_eq!(u32::from(err.range.start()), 9);
        assert!(super::parse("[levels]\nclearance = [\"a\", \"a\"]\n").is_err());
    }

    #[test]
    fn runtime_settings() {
        assert!(!super::parse("").unwrap().runtime.warm);
        assert!(super::parse("[runtime]\nwarm = true\n").unwrap().runtime.warm);
        assert!(super::parse("[runtime]\nwarm = \"yes\"\n").is_err());
        let err = super::parse("[runtime]\nwarn = true\n").unwrap_err();
        assert!(err.message.contains("warn"), "{}", err.message);
    }
}
