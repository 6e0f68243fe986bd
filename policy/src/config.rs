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
//! pass_env = ["TZ"]              # host variables an agent's `env_get` may read (never secrets)
//!
//! [runtime.env]                  # variables an agent's `env_get` reads, with these values
//! REGION = "eu-west-1"
//!
//! [run]                          # a run's context when `symbiont run` has no `--context`
//! context = { user_clearance = "developer" }
//!
//! [run.agents.reviewer]          # one agent's, over the workspace's key by key
//! context = { audit_trail = true }
//!
//! [regions.us]                   # a region `geographic_restriction` can name (crate::geography)
//! hosts = ["*.us.example.com"]   # canonical host names; `*.` matches any subdomain
//! cidrs = ["10.0.0.0/8"]         # the addresses a request may connect to
//! s3_endpoints = ["https://s3.us-east-1.amazonaws.com"]  # where audit backups may go
//! ```

pub use crate::catalogue::CustomOperation;
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
    /// The `[run]` table.
    pub run: RunSettings,
    /// `[regions.NAME]`: the places a `geographic_restriction` condition can name.
    pub regions: BTreeMap<String, crate::geography::Region>,
}

/// The context a run gets when `symbiont run` is given no `--context` (so the editor's "Run
/// agent" too): `[run] context` for every agent, `[run.agents.NAME] context` for one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSettings {
    pub context: serde_json::Map<String, serde_json::Value>,
    /// Per agent: its context, and where its name is written in `symbiont.toml`.
    pub agents: BTreeMap<String, (serde_json::Map<String, serde_json::Value>, TextRange)>,
}

impl RunSettings {
    /// The context of a run of `agent`: the workspace's, then the agent's own, whose top-level
    /// keys replace the workspace's.
    pub fn context_for(&self, agent: &str) -> serde_json::Map<String, serde_json::Value> {
        let mut context = self.context.clone();
        if let Some((own, _)) = self.agents.get(agent) {
            context.extend(own.clone());
        }
        context
    }
}

/// The names the runtime gives every run's guards itself (`symbiont-runtime`'s `policy_env`),
/// which a context cannot set.
pub const RUNTIME_CONTEXT_KEYS: &[&str] = &["agent", "run_id", "tier", "input"];

/// How `symbiont run` runs this workspace's agents (`[runtime]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSettings {
    /// Every run as with `--warm`: it adopts a warm container an earlier run left and leaves one
    /// for the next (docs/runtime.md, "Warm containers for `symbiont run`").
    #[serde(default)]
    pub warm: bool,
    /// `[runtime.env]`: the variables an agent reads with `env_get`, with their values. With
    /// `pass_env`, the agent's whole environment: never the host's, never a secret.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Host variables an agent reads with `env_get`, by name, with the value the `symbiont`
    /// process has (none if unset). Never one of the runtime's own (`SYMBIONT_*`) nor one whose
    /// name says it is a secret ([`crate::names::looks_secret`]).
    #[serde(default)]
    pub pass_env: Vec<String>,
}

impl RuntimeSettings {
    /// Why the declared environment is refused, if it is: a name that is no variable name, the
    /// runtime's own, declared twice, or a secret passed through.
    fn environment_error(&self) -> Option<String> {
        use crate::names::{env_name_error, looks_secret};
        for name in self.env.keys() {
            if let Some(why) = env_name_error(name) {
                return Some(format!("[runtime.env]: {why}"));
            }
        }
        for (i, name) in self.pass_env.iter().enumerate() {
            if let Some(why) = env_name_error(name) {
                return Some(format!("[runtime] pass_env: {why}"));
            }
            if looks_secret(name) {
                return Some(format!(
                    "[runtime] pass_env: `{name}` looks like a secret, and the host's secrets never reach an agent's environment; \
                     give it to the agent as a secret (`SYMBIONT_SECRET_*`, read with `secret_get` under `secret_access`)"
                ));
            }
            if self.pass_env[..i].contains(name) || self.env.contains_key(name) {
                return Some(format!("[runtime] pass_env: `{name}` is declared twice"));
            }
        }
        None
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
    #[serde(default)]
    operations: BTreeMap<String, CustomOperation>,
    /// Rules for agent code; read by `symbiont-code` (`[code]`, `[[code.rules]]`).
    #[serde(default)]
    code: toml::Table,
    runtime: Option<toml::Spanned<RuntimeSettings>>,
    run: Option<RawRun>,
    #[serde(default)]
    regions: BTreeMap<toml::Spanned<String>, toml::Spanned<crate::geography::RawRegion>>,
}

/// `[run]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([run])")]
struct RawRun {
    #[serde(default)]
    context: RawContext,
    #[serde(default)]
    agents: BTreeMap<toml::Spanned<String>, RawAgentRun>,
}

/// `[run.agents.NAME]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table with a `context`")]
struct RawAgentRun {
    #[serde(default)]
    context: RawContext,
}

type RawContext = BTreeMap<String, toml::Spanned<toml::Value>>;

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
    if let Some(runtime) = raw.runtime {
        let span = runtime.span();
        config.runtime = runtime.into_inner();
        if let Some(message) = config.runtime.environment_error() {
            return Err(ConfigError { message, range: range(span) });
        }
    }
    if let Some(run) = raw.run {
        config.run = run_settings(run)?;
    }
    for (name, region) in raw.regions {
        let span = region.span();
        let region = region.into_inner().validate(name.get_ref()).map_err(|message| ConfigError { message, range: range(span) })?;
        config.regions.insert(name.into_inner(), region);
    }
    Ok(config)
}

fn run_settings(raw: RawRun) -> Result<RunSettings, ConfigError> {
    let mut run = RunSettings { context: context(raw.context, "[run] context")?, agents: BTreeMap::new() };
    for (name, agent) in raw.agents {
        let name_range = range(name.span());
        let name = name.into_inner();
        let context = context(agent.context, &format!("[run.agents.{name}] context"))?;
        run.agents.insert(name, (context, name_range));
    }
    Ok(run)
}

/// A context table as the JSON object guards read. TOML has values JSON has not: a date-time is
/// refused (a guard compares strings), and so are the names the runtime sets itself.
fn context(raw: RawContext, table: &str) -> Result<serde_json::Map<String, serde_json::Value>, ConfigError> {
    let mut out = serde_json::Map::new();
    for (key, value) in raw {
        let span = value.span();
        let error = |why: String| ConfigError { message: format!("{table}: `{key}`: {why}"), range: range(span.clone()) };
        if RUNTIME_CONTEXT_KEYS.contains(&key.as_str()) {
            return Err(error(format!("the runtime sets `{key}` for every run ({}); a context cannot", RUNTIME_CONTEXT_KEYS.join(", "))));
        }
        out.insert(key.clone(), json_value(value.into_inner()).map_err(error)?);
    }
    Ok(out)
}

fn json_value(value: toml::Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as Json;
    Ok(match value {
        toml::Value::String(s) => Json::String(s),
        toml::Value::Integer(i) => Json::from(i),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(f).map(Json::Number).ok_or(format!("{f} is not a number a guard can compare"))?
        }
        toml::Value::Boolean(b) => Json::Bool(b),
        toml::Value::Datetime(d) => return Err(format!("a date-time ({d}) is not a context value; write it as a string (\"{d}\")")),
        toml::Value::Array(items) => Json::Array(items.into_iter().map(json_value).collect::<Result<_, _>>()?),
        toml::Value::Table(table) => {
            Json::Object(table.into_iter().map(|(k, v)| Ok((k, json_value(v)?))).collect::<Result<serde_json::Map<_, _>, String>>()?)
        }
    })
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

    #[test]
    fn runtime_environment() {
        let config = super::parse("[runtime]\npass_env = [\"TZ\", \"LANG\"]\n[runtime.env]\nREGION = \"eu-west-1\"\n").unwrap();
        assert_eq!(config.runtime.pass_env, ["TZ", "LANG"]);
        assert_eq!(config.runtime.env["REGION"], "eu-west-1");
        assert!(super::parse("").unwrap().runtime.env.is_empty(), "no environment unless declared");
        let refused = |text: &str, why: &str| {
            let err = super::parse(text).unwrap_err();
            assert!(err.message.contains(why), "{text}: {}", err.message);
            assert!(u32::from(err.range.end()) > 0, "{text}: the error points into the file");
        };
        refused("[runtime]\npass_env = [\"AWS_SECRET_ACCESS_KEY\"]\n", "looks like a secret");
        refused("[runtime]\npass_env = [\"GITHUB_TOKEN\"]\n", "looks like a secret");
        refused("[runtime]\npass_env = [\"SYMBIONT_SECRET_DB\"]\n", "the runtime's own");
        refused("[runtime.env]\nSYMBIONT_BROKER = \"/x\"\n", "the runtime's own");
        refused("[runtime.env]\n\"A-B\" = \"x\"\n", "not a variable name");
        refused("[runtime]\npass_env = [\"TZ\", \"TZ\"]\n", "declared twice");
        refused("[runtime]\npass_env = [\"TZ\"]\n[runtime.env]\nTZ = \"UTC\"\n", "declared twice");
        // Values are literal strings; unknown keys are refused as everywhere in `[runtime]`.
        refused("[runtime.env]\nPORT = 8080\n", "string");
        refused("[runtime]\npass_env = \"TZ\"\n", "sequence");
        refused("[runtime]\nenviron = [\"TZ\"]\n", "environ");
    }

    #[test]
    fn run_context() {
        let config = super::parse(
            "[run]\ncontext = { user_clearance = \"developer\", audit_trail = true, user = { roles = [\"dev\"] } }\n\
             [run.agents.reviewer]\ncontext = { user_clearance = \"maintainer\", max = 2.5 }\n",
        )
        .unwrap();
        let reviewer = serde_json::Value::Object(config.run.context_for("reviewer"));
        assert_eq!(
            reviewer,
            serde_json::json!({ "user_clearance": "maintainer", "audit_trail": true, "user": { "roles": ["dev"] }, "max": 2.5 }),
            "the agent's keys replace the workspace's"
        );
        let other = serde_json::Value::Object(config.run.context_for("other"));
        assert_eq!(other, serde_json::json!({ "user_clearance": "developer", "audit_trail": true, "user": { "roles": ["dev"] } }));
        let text = "[run.agents.reviewer]\ncontext = { n = 1 }\n";
        let (_, name_range) = &super::parse(text).unwrap().run.agents["reviewer"];
        assert_eq!(&text[*name_range], "reviewer");
        assert!(super::parse("").unwrap().run.context_for("any").is_empty(), "no context unless declared");
    }

    #[test]
    fn regions() {
        let config = super::parse(
            "[regions.us]\nhosts = [\"*.us.example\"]\ncidrs = [\"10.0.0.0/8\"]\ns3_endpoints = [\"https://S3.us-east-1.amazonaws.com/\"]\n[regions.eu]\n",
        )
        .unwrap();
        let us = &config.regions["us"];
        assert_eq!((us.hosts.as_slice(), us.cidrs[0].to_string()), (&["*.us.example".to_string()][..], "10.0.0.0/8".to_string()));
        assert_eq!(us.s3_endpoints, ["https://s3.us-east-1.amazonaws.com:443"], "endpoints are kept in one spelling");
        assert_eq!(config.regions["eu"], Default::default(), "a region may declare nothing yet");
        let refused = |text: &str, why: &str| {
            let err = super::parse(text).unwrap_err();
            assert!(err.message.contains(why), "{text}: {}", err.message);
            assert!(u32::from(err.range.end()) > 0, "{text}: the error points into the file");
        };
        refused("[regions.us]\ncidrs = [\"10.0.0.1/8\"]\n", "[regions.us] cidrs: `10.0.0.1/8` has bits set after its prefix");
        refused("[regions.us]\nhosts = [\"API.example\"]\n", "[regions.us] hosts: `API.example` is not a host pattern");
        refused("[regions.us]\ns3_endpoints = [\"s3.example\"]\n", "[regions.us] s3_endpoints: `s3.example` is not an S3 endpoint");
        refused("[regions.us]\nhost = []\n", "unknown field `host`");
        refused("[regions]\nus = 1\n", "a table with `hosts`, `cidrs` and `s3_endpoints`");
    }

    #[test]
    fn run_context_refused() {
        let refused = |text: &str, why: &str, at: &str| {
            let err = super::parse(text).unwrap_err();
            assert!(err.message.contains(why), "{text}: {}", err.message);
            assert_eq!(&text[err.range], at, "{text}: {}", err.message);
        };
        refused("[run]\ncontxt = {}\n", "unknown field `contxt`", "contxt");
        refused("[run]\ncontext = \"developer\"\n", "invalid type: string", "\"developer\"");
        refused("[run.agents.reviewer]\ncontext = { a = 1 }\nclearance = 2\n", "unknown field `clearance`", "clearance");
        refused("[run.agents]\nreviewer = 3\n", "invalid type: integer `3`, expected a table with a `context`", "3");
        refused("[run]\ncontext = { since = 1979-05-27 }\n", "[run] context: `since`: a date-time (1979-05-27)", "1979-05-27");
        refused(
            "[run.agents.a]\ncontext = { agent = \"b\" }\n",
            "[run.agents.a] context: `agent`: the runtime sets `agent` for every run",
            "\"b\"",
        );
        refused("[run]\ncontext = { x = nan }\n", "NaN is not a number", "nan");
    }
}
