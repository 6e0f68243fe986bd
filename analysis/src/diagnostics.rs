//! Diagnostics as data: every diagnostic has a stable code from [`RULES`], and every rule is
//! documented in `docs/diagnostics.md` (a test checks that each code's example triggers it and
//! each documented fix silences it).

use std::{collections::BTreeMap, fmt, path::PathBuf};

use symbiont_syntax::{TextRange, TextSize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Hint,
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Hint => "hint",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A documented rule: its stable code, a kebab-case name, default severity and a one-line summary.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    pub code: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
    /// The page documenting it (`docs/diagnostics.md` or `docs/code-rules.md`).
    pub page: &'static str,
}

macro_rules! rules {
    ($($ident:ident = ($code:literal, $name:literal, $severity:ident, $summary:literal);)*) => {
        $(pub static $ident: Rule = Rule { code: $code, name: $name, severity: Severity::$severity, summary: $summary, page: "docs/diagnostics.md" };)*
        /// Every rule, in code order.
        pub static RULES: &[&Rule] = &[$(&$ident),*];
    };
}

rules! {
    SYNTAX_ERROR = ("SYM0001", "syntax-error", Error, "The file does not follow the grammar of the language.");
    INVALID_FILE = ("SYM0002", "invalid-file", Error, "The file cannot be read or is not valid UTF-8.");
    INVALID_CONFIG = ("SYM0003", "invalid-config", Error, "`symbiont.toml` is malformed or holds an unknown setting.");
    DUPLICATE_DEFINITION = ("SYM0101", "duplicate-definition", Error, "Two definitions of the same kind share a name in the workspace.");
    UNRESOLVED_REFERENCE = ("SYM0102", "unresolved-reference", Error, "A name refers to no agent, policy or type defined in the workspace.");
    INVALID_QUANTITY = ("SYM0103", "invalid-quantity", Error, "A duration or size has a unit the language does not know.");
    UNKNOWN_TIER = ("SYM0104", "unknown-tier", Warning, "The isolation tier or sandbox backend is one the runtime cannot provide.");
    UNKNOWN_ATTRIBUTE = ("SYM0105", "unknown-attribute", Warning, "A `with` or `security` attribute is not one the runtime knows.");
    EXTENDS_CYCLE = ("SYM0106", "extends-cycle", Error, "Policies extend each other in a cycle.");
    MISMATCHED_COMPARISON = ("SYM0107", "mismatched-comparison", Error, "A comparison between values of different kinds is never meaningful.");
    WRONG_VALUE_KIND = ("SYM0108", "wrong-value-kind", Error, "A setting is given a value of the wrong kind.");
    UNKNOWN_QUALIFIER = ("SYM0109", "unknown-qualifier", Warning, "A rule phrase uses a qualifier word the language gives no meaning to.");
    INVALID_SCHEDULE = ("SYM0110", "invalid-schedule", Error, "A `schedule` has no agent, a time zone other than UTC, or no cron expression the runtime can run.");
    UNKNOWN_OPERATION = ("SYM0201", "unknown-operation", Warning, "An operation name is neither in the catalogue nor declared by the project.");
    ALLOW_DENY_CONFLICT = ("SYM0202", "allow-deny-conflict", Warning, "One policy both allows and denies the same operation.");
    UNREACHABLE_ALLOW = ("SYM0203", "unreachable-allow", Error, "An allow tries to weaken an inherited deny and can never take effect.");
    DENIED_CAPABILITY = ("SYM0204", "denied-capability", Warning, "An agent declares a capability its effective policy never allows.");
    CONDITION_CONFLICT = ("SYM0205", "condition-conflict", Warning, "Two policies state the same condition differently.");
    UNKNOWN_LEVEL = ("SYM0206", "unknown-level", Error, "A clearance or classification comparison names no known level.");
    UNEVALUABLE_GUARD = ("SYM0207", "unevaluable-guard", Warning, "A guard uses something the policy engine cannot evaluate, so it fails closed.");
    NOT_AN_OPERATION = ("SYM0208", "not-an-operation", Error, "An allow or deny rule names no operation.");
    SECRET_NAME_NOT_CANONICAL = ("SYM0209", "secret-name-not-canonical", Error, "A `secret_access` guard compares the secret's name with a string that is not lowercase `a`-`z`, `0`-`9`, `_`.");
    HOST_NOT_CANONICAL = ("SYM0210", "host-not-canonical", Error, "An HTTP guard compares the request's host with a string that is not a canonical host.");
    UNDECLARED_REGION = ("SYM0211", "undeclared-region", Error, "A `geographic_restriction` names a region `symbiont.toml` does not declare.");
    UNENFORCED_CONDITION = ("SYM0212", "unenforced-condition", Warning, "A `conditions` key is one the runtime does not enforce: it is merged and reported, nothing more.");
    CUSTOM_CODE_RULE = ("SYM0399", "custom-code-rule", Error, "A custom rule from `symbiont.toml` found code performing an operation the policy denies.");
    UNDECLARED_OPERATION = ("SYM0402", "undeclared-operation", Warning, "Agent code performs an operation the agent does not declare in `capabilities`.");
    UNJUSTIFIED_SUPPRESSION = ("SYM0403", "unjustified-suppression", Error, "A `symbiont: allow` comment has no justification.");
    CODE_SYNTAX_ERROR = ("SYM0404", "code-syntax-error", Warning, "Agent code does not parse, so the rules may miss what its broken part does.");
    CODE_NOT_CHECKED = ("SYM0405", "code-not-checked", Warning, "A code file is too large to parse and was not checked.");
}

/// The code analysis's built-in rules (`symbiont-code`), as diagnostic rules: documented in
/// `docs/code-rules.md`, reported as errors when the policy denies what they find.
static CODE_RULES: std::sync::LazyLock<Vec<Rule>> = std::sync::LazyLock::new(|| {
    symbiont_code::rules::RULES
        .iter()
        .map(|r| Rule { code: r.code, name: r.name, severity: Severity::Error, summary: r.summary, page: "docs/code-rules.md" })
        .collect()
});

/// The diagnostic rule of a code rule's code.
pub fn code_rule(code: &str) -> Option<&'static Rule> {
    CODE_RULES.iter().find(|r| r.code == code)
}

/// Every rule: the analysis's own and the code analysis's.
pub fn all_rules() -> impl Iterator<Item = &'static Rule> {
    RULES.iter().copied().chain(CODE_RULES.iter())
}

/// Looks a rule up by its code (`SYM0101`) or name (`duplicate-definition`).
pub fn rule(code_or_name: &str) -> Option<&'static Rule> {
    all_rules().find(|r| r.code == code_or_name || r.name == code_or_name)
}

/// A location elsewhere that explains a diagnostic ("first defined here").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Related {
    pub path: PathBuf,
    pub range: TextRange,
    pub message: String,
}

pub use symbiont_code::fix::Edit;

/// A text edit ([`Edit`], the one kind: bytes `start..end` replaced) in a named file of the
/// workspace: a fix or a rename may change several files.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileEdit {
    pub path: PathBuf,
    pub edit: Edit,
}

impl FileEdit {
    /// Replaces `range` of the file `path` with `new_text`.
    pub fn new(path: impl Into<PathBuf>, range: TextRange, new_text: impl Into<String>) -> FileEdit {
        FileEdit { path: path.into(), edit: Edit { start: range.start().into(), end: range.end().into(), new_text: new_text.into() } }
    }

    /// The range replaced.
    pub fn range(&self) -> TextRange {
        let offset = |at: usize| TextSize::from(u32::try_from(at).unwrap_or(u32::MAX));
        TextRange::new(offset(self.edit.start), offset(self.edit.end))
    }
}

/// A fix: a title and the edits that make the diagnostic go away.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fix {
    pub title: String,
    pub edits: Vec<FileEdit>,
    /// Safe to apply without review (`symbiont check --fix` applies only these).
    pub safe: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    pub rule: &'static Rule,
    pub severity: Severity,
    pub message: String,
    /// The primary range, in the file the diagnostic is reported for.
    pub range: TextRange,
    pub related: Vec<Related>,
    pub fix: Option<Fix>,
    /// Other fixes, for editors to offer beside the preferred one.
    pub alternatives: Vec<Fix>,
}

impl Diagnostic {
    pub fn new(rule: &'static Rule, range: TextRange, message: impl Into<String>) -> Self {
        Diagnostic {
            rule,
            severity: rule.severity,
            message: message.into(),
            range,
            related: Vec::new(),
            fix: None,
            alternatives: Vec::new(),
        }
    }

    pub fn with_related(mut self, path: PathBuf, range: TextRange, message: impl Into<String>) -> Self {
        self.related.push(Related { path, range, message: message.into() });
        self
    }

    pub fn with_fix(mut self, title: impl Into<String>, edits: Vec<FileEdit>) -> Self {
        self.fix = Some(Fix { title: title.into(), edits, safe: true });
        self
    }

    pub fn code(&self) -> &'static str {
        self.rule.code
    }
}

/// The safe fixes (those that need no review) among some diagnostics, as edits ready to apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SafeFixes {
    /// How many safe fixes there were.
    pub fixes: usize,
    /// Per file, sorted by position and not overlapping.
    pub edits: BTreeMap<PathBuf, Vec<Edit>>,
}

/// Every safe fix of `diagnostics` at once: what `symbiont check --fix` applies and the editor's
/// fix-all (`source.fixAll.symbiont`) returns. Fixes share edits (every SDK rewrite of a file adds
/// the same import; a finding in a file bound to two agents carries its fix twice): each such
/// edit is kept once. An edit that overlaps an earlier one is left out, and the fix it belongs to
/// is then applied in part at most; the next round of checks reports what is left.
pub fn safe_fixes<'a>(diagnostics: impl IntoIterator<Item = &'a Diagnostic>) -> SafeFixes {
    let mut out = SafeFixes::default();
    for fix in diagnostics.into_iter().filter_map(|d| d.fix.as_ref()).filter(|f| f.safe) {
        out.fixes += 1;
        for edit in &fix.edits {
            out.edits.entry(edit.path.clone()).or_default().push(edit.edit.clone());
        }
    }
    for edits in out.edits.values_mut() {
        edits.sort_by(|a, b| (a.start, a.end, &a.new_text).cmp(&(b.start, b.end, &b.new_text)));
        edits.dedup();
        let mut end = None;
        edits.retain(|edit| {
            let keep = end.is_none_or(|end| edit.start >= end);
            if keep {
                end = Some(edit.end);
            }
            keep
        });
    }
    out
}
