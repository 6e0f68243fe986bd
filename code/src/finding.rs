//! What a scan reports: the places where code performs an operation, and the suppression
//! comments that answer for them.

use crate::sites::Site;

/// One place where code performs an operation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The rule's code (`SYM0301`) or, for custom rules, its id.
    pub rule: String,
    pub operation: String,
    pub message: String,
    pub start: usize,
    pub end: usize,
    pub callee_start: usize,
    pub callee_end: usize,
    /// What the callee resolved to (`requests.get`); empty for query rules.
    pub qualified: String,
    /// A `symbiont: allow OP -- reason` comment on the line or the line above.
    pub suppression: Option<Suppression>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Suppression {
    /// The justification after `--`; empty when missing (which `check` reports).
    pub reason: String,
    pub start: usize,
    pub end: usize,
}

/// The finding of a rule (its code or id, operation and message) at `site`.
pub(crate) fn finding(rule: &str, operation: &str, message: &str, site: &Site) -> Finding {
    Finding {
        rule: rule.to_string(),
        operation: operation.to_string(),
        message: message.to_string(),
        start: site.start,
        end: site.end,
        callee_start: site.callee_start,
        callee_end: site.callee_end,
        qualified: site.qualified.clone(),
        suppression: None,
    }
}
