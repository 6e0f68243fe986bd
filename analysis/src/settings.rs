//! The settings the language knows, as data: `with` attributes, `security` fields, isolation
//! tiers and rule-phrase qualifiers. Checks and documentation both read these tables.

/// The kind of a literal value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    String,
    Number,
    Duration,
    Size,
    Bool,
    Secret,
    Array,
    Record,
}

impl ValueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueKind::String => "a string",
            ValueKind::Number => "a number",
            ValueKind::Duration => "a duration",
            ValueKind::Size => "a size",
            ValueKind::Bool => "a boolean",
            ValueKind::Secret => "a secret reference",
            ValueKind::Array => "an array",
            ValueKind::Record => "a record",
        }
    }
}

/// A known setting and the kinds of value it takes.
#[derive(Debug)]
pub struct Setting {
    pub name: &'static str,
    pub kinds: &'static [ValueKind],
    /// The value names an isolation tier or sandbox backend.
    pub isolation: bool,
    pub doc: &'static str,
}

use ValueKind::*;

const fn setting(name: &'static str, kinds: &'static [ValueKind], doc: &'static str) -> Setting {
    Setting { name, kinds, isolation: false, doc }
}

pub static WITH_ATTRIBUTES: &[Setting] = &[
    setting("memory", &[String], "memory mode: \"ephemeral\", \"persistent\", \"session\" or \"encrypted\""),
    setting("privacy", &[String], "privacy level"),
    setting("security", &[String], "security level"),
    Setting {
        name: "sandbox",
        kinds: &[String],
        isolation: true,
        doc: "isolation tier (Tier1, Tier2, Tier3) or backend (docker, gvisor, firecracker)",
    },
    setting("timeout", &[Duration, Number], "execution timeout: a duration, or a number of milliseconds"),
    setting("requires", &[String, Array], "approvals or clearances required to run"),
    setting("max_memory_mb", &[Number], "memory limit in MiB"),
    setting("max_cpu_cores", &[Number], "CPU limit in cores"),
    setting("network_policy", &[String], "network access: \"deny_all\" or \"allow_listed\""),
    setting("coordination", &[String], "whether the agent coordinates other agents"),
];

pub static SECURITY_FIELDS: &[Setting] = &[
    Setting { name: "tier", kinds: &[String], isolation: true, doc: "isolation tier: Tier1, Tier2, Tier3 or auto" },
    setting("memory", &[Size, Number], "memory limit: a size, or a number of bytes"),
    setting("cpus", &[Number], "CPU limit in cores"),
    setting("timeout", &[Duration, Number], "execution timeout: a duration, or a number of milliseconds"),
];

/// Qualifier words of rule phrases, with their meaning.
pub static QUALIFIERS: &[(&str, &str)] = &[
    ("for", "the operation or resource the rule applies to"),
    ("with", "what an audit entry or requirement includes"),
    ("on", "the resource or event the rule watches"),
    ("to", "the destination of an operation"),
    ("from", "the source of an operation"),
    ("within", "the scope the rule is limited to"),
    ("unless", "an exception to the rule"),
];

pub use symbiont_policy::model::{parse_isolation, Isolation};
