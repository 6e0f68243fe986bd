//! Checks that need only one file: syntax errors, quantities, tiers, `with`/`security`
//! attributes and their value kinds, comparisons of mismatched kinds, rule-phrase qualifiers,
//! and names defined twice inside one agent.

use std::collections::HashMap;

use symbiont_syntax::{
    ast::{self, AstNode, Expr, LiteralKind},
    quantity::{self, Quantity, QuantityError},
    SyntaxKind, SyntaxNode, TextRange,
};

use crate::{
    diagnostics::{self as rules, Diagnostic, FileEdit},
    items::agent_local_defs,
    settings::{self, ValueKind},
};

/// The kinds of node [`check_node`] checks; it finds nothing in any other.
pub const CHECKED_KINDS: &[SyntaxKind] = &[
    SyntaxKind::LITERAL,
    SyntaxKind::LITERAL_PAT,
    SyntaxKind::AGENT,
    SyntaxKind::SCHEDULE,
    SyntaxKind::WITH_ATTR,
    SyntaxKind::BIN_EXPR,
    SyntaxKind::QUALIFIER,
];

/// Whether [`check_node`] may find something in a node, read from its green node (no cursor is
/// made for the many nodes it would find nothing in): a literal only when it is a quantity, a
/// binary expression only when it compares, any other node when its kind is checked.
pub fn may_find(node: &rowan::GreenNodeData) -> bool {
    use rowan::{Language, NodeOrToken};
    use symbiont_syntax::SymLanguage;
    match SymLanguage::kind_from_raw(node.kind()) {
        SyntaxKind::LITERAL | SyntaxKind::LITERAL_PAT => {
            // The node's first token, as `SyntaxNode::first_token` finds it.
            let mut node = node;
            loop {
                match node.children().next() {
                    Some(NodeOrToken::Node(child)) => node = child,
                    Some(NodeOrToken::Token(token)) => return SymLanguage::kind_from_raw(token.kind()) == SyntaxKind::QUANTITY,
                    None => return false,
                }
            }
        }
        SyntaxKind::BIN_EXPR => node
            .children()
            .any(|child| child.as_token().is_some_and(|token| COMPARISONS.contains(&SymLanguage::kind_from_raw(token.kind())))),
        kind => CHECKED_KINDS.contains(&kind),
    }
}

/// The operators [`Checker::comparison`] checks.
const COMPARISONS: &[SyntaxKind] = &[SyntaxKind::EQ2, SyntaxKind::NEQ, SyntaxKind::LT, SyntaxKind::GT, SyntaxKind::LTEQ, SyntaxKind::GTEQ];

/// The one-file checks of one node (not of the nodes in it), found in `path`: no check looks
/// outside the node it checks, so the node may be a tree of its own. Called on every node of a
/// file in the order of a walk of its tree, they are the file's checks; syntax errors are the
/// parse's.
pub fn check_node(path: &std::path::Path, node: &SyntaxNode, out: &mut Vec<Diagnostic>) {
    Checker { path, diagnostics: out }.node(node);
}

struct Checker<'a> {
    path: &'a std::path::Path,
    diagnostics: &'a mut Vec<Diagnostic>,
}

/// The kind of value an expression certainly has, when it is a literal.
pub fn value_kind(expr: &Expr) -> Option<ValueKind> {
    Some(match expr {
        Expr::Literal(lit) => match lit.kind()? {
            LiteralKind::Int | LiteralKind::Float => ValueKind::Number,
            LiteralKind::String => ValueKind::String,
            LiteralKind::SecretRef => ValueKind::Secret,
            LiteralKind::Bool => ValueKind::Bool,
            LiteralKind::Null => return None,
            LiteralKind::Quantity => match quantity::parse(lit.token()?.text()).ok()? {
                Quantity::Duration(_) => ValueKind::Duration,
                Quantity::Size(_) => ValueKind::Size,
            },
        },
        Expr::PrefixExpr(prefix) if prefix.op()?.kind() == SyntaxKind::MINUS => match value_kind(&prefix.operand()?)? {
            ValueKind::Number => ValueKind::Number,
            _ => return None,
        },
        Expr::ArrayExpr(_) => ValueKind::Array,
        Expr::RecordExpr(_) => ValueKind::Record,
        _ => return None,
    })
}

/// A setting's text value: a string literal's content or a bare name (`Tier2`).
fn word_value(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Literal(lit) => lit.string_value(),
        Expr::PathExpr(path) => Some(path.text()),
        _ => None,
    }
}

impl Checker<'_> {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn node(&mut self, node: &SyntaxNode) {
        match node.kind() {
            SyntaxKind::LITERAL | SyntaxKind::LITERAL_PAT => self.quantity(node),
            SyntaxKind::AGENT => {
                if let Some(agent) = ast::Agent::cast(node.clone()) {
                    self.agent(&agent);
                }
            }
            SyntaxKind::SCHEDULE => {
                if let Some(schedule) = ast::Schedule::cast(node.clone()) {
                    self.schedule(&schedule);
                }
            }
            SyntaxKind::WITH_ATTR => {
                if let Some(attr) = ast::WithAttr::cast(node.clone()) {
                    self.setting(attr.name(), attr.value(), settings::WITH_ATTRIBUTES, "`with` attribute");
                }
            }
            SyntaxKind::BIN_EXPR => {
                if let Some(bin) = ast::BinExpr::cast(node.clone()) {
                    self.comparison(&bin);
                }
            }
            SyntaxKind::QUALIFIER => {
                if let Some(word) = ast::Qualifier::cast(node.clone()).and_then(|q| q.word()) {
                    if !settings::QUALIFIERS.iter().any(|(q, _)| *q == word.text()) {
                        let known: Vec<&str> = settings::QUALIFIERS.iter().map(|(q, _)| *q).collect();
                        self.push(Diagnostic::new(
                            &rules::UNKNOWN_QUALIFIER,
                            word.text_range(),
                            format!(
                                "the qualifier `{}` has no meaning here and is ignored; known qualifiers: {}",
                                word.text(),
                                known.join(", ")
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
    }

    /// What the runtime needs to drive a schedule: an agent (whether it exists is SYM0102's) and
    /// a cron expression its driver accepts (the same parser, `symbiont_policy::schedule::Cron`).
    fn schedule(&mut self, schedule: &ast::Schedule) {
        let Some(decl) = symbiont_policy::schedule::declaration(schedule) else { return };
        let head = ast::EntryItem::Schedule(schedule.clone()).name().map_or(decl.range, |n| n.syntax().text_range());
        if decl.agent.is_none() {
            let message = format!("schedule `{}` names no agent to run: add `agent: \"NAME\"`", decl.name);
            self.push(Diagnostic::new(&rules::INVALID_SCHEDULE, head, message));
        }
        if let Some((zone, range)) = decl.timezone.as_ref().filter(|(zone, _)| zone != "UTC") {
            let message = format!("schedules run in UTC only, not `{zone}`: write the cron expression in UTC and drop `timezone`");
            self.push(Diagnostic::new(&rules::INVALID_SCHEDULE, *range, message));
        }
        match &decl.cron {
            None => {
                let message = format!("schedule `{}` has no cron expression: add `cron: \"MIN HOUR DOM MON DOW\"` (UTC)", decl.name);
                self.push(Diagnostic::new(&rules::INVALID_SCHEDULE, head, message));
            }
            Some((text, range)) => {
                if let Err(e) = symbiont_policy::schedule::Cron::parse(text) {
                    self.push(Diagnostic::new(&rules::INVALID_SCHEDULE, *range, format!("invalid cron expression `{text}`: {e}")));
                }
            }
        }
    }

    fn quantity(&mut self, node: &SyntaxNode) {
        let Some(token) = node.first_token().filter(|t| t.kind() == SyntaxKind::QUANTITY) else { return };
        let message = match quantity::parse(token.text()) {
            Ok(_) => return,
            Err(e) => e,
        };
        let mut diagnostic = Diagnostic::new(&rules::INVALID_QUANTITY, token.text_range(), format!("`{}`: {message}", token.text()));
        let suggestion = match &message {
            // Case slips such as `512mb` are common: prefer the unit with the right case.
            QuantityError::UnknownUnit { unit } => quantity::all_units()
                .find(|u| u.eq_ignore_ascii_case(unit))
                .or_else(|| symbiont_syntax::suggest::closest(unit, quantity::all_units())),
            QuantityError::Overflow => None,
        };
        if let Some(unit) = suggestion {
            let new_text = quantity::with_unit(token.text(), unit);
            diagnostic = diagnostic
                .with_fix(format!("Write `{new_text}`"), vec![FileEdit::new(self.path.to_path_buf(), token.text_range(), new_text)]);
        }
        self.push(diagnostic);
    }

    fn agent(&mut self, agent: &ast::Agent) {
        let mut seen: HashMap<(crate::items::DefKind, String), TextRange> = HashMap::new();
        for (kind, name) in agent_local_defs(agent) {
            let range = name.syntax().text_range();
            if let Some(&first) = seen.get(&(kind, name.text())) {
                self.push(
                    Diagnostic::new(
                        &rules::DUPLICATE_DEFINITION,
                        range,
                        format!("{} `{}` is defined more than once in this agent", kind.as_str(), name.text()),
                    )
                    .with_related(self.path.to_path_buf(), first, "first defined here"),
                );
            } else {
                seen.insert((kind, name.text()), range);
            }
        }
        if let Some(Expr::RecordExpr(security)) = agent.field("security").and_then(|f| f.value()) {
            for field in security.fields() {
                self.setting(field.name(), field.value(), settings::SECURITY_FIELDS, "`security` setting");
            }
        }
    }

    /// Checks a `name = value` setting against the table of known settings.
    fn setting(&mut self, name: Option<ast::Name>, value: Option<Expr>, table: &[settings::Setting], what: &str) {
        let Some(name) = name else { return };
        let key = name.text();
        let Some(setting) = table.iter().find(|s| s.name == key) else {
            let mut diagnostic = Diagnostic::new(
                &rules::UNKNOWN_ATTRIBUTE,
                name.syntax().text_range(),
                format!("unknown {what} `{key}`: the runtime ignores it"),
            );
            if let Some(best) = symbiont_syntax::suggest::closest(&key, table.iter().map(|s| s.name)) {
                diagnostic = diagnostic.with_fix(
                    format!("Replace with `{best}`"),
                    vec![FileEdit::new(self.path.to_path_buf(), name.syntax().text_range(), best.to_string())],
                );
            }
            self.push(diagnostic);
            return;
        };
        let Some(value) = value else { return };
        let range = value.syntax().text_range();
        if setting.isolation {
            if let Some(word) = word_value(&value) {
                if settings::parse_isolation(&word).is_none() {
                    self.push(Diagnostic::new(
                        &rules::UNKNOWN_TIER,
                        range,
                        format!(
                            "the runtime cannot provide isolation `{word}`: `symbiont run` will refuse this agent; use Tier1 (Docker), Tier2 (gVisor), Tier3 (microVM) or auto"
                        ),
                    ));
                }
                return;
            }
        }
        if let Some(kind) = value_kind(&value) {
            if !setting.kinds.contains(&kind) {
                let expected: Vec<&str> = setting.kinds.iter().map(|k| k.as_str()).collect();
                self.push(Diagnostic::new(
                    &rules::WRONG_VALUE_KIND,
                    range,
                    format!("`{key}` takes {}, found {}", expected.join(" or "), kind.as_str()),
                ));
            }
        }
    }

    fn comparison(&mut self, bin: &ast::BinExpr) {
        let Some(op) = bin.op() else { return };
        if !COMPARISONS.contains(&op.kind()) {
            return;
        }
        let (Some(lhs), Some(rhs)) = (bin.lhs(), bin.rhs()) else { return };
        let (Some(left), Some(right)) = (value_kind(&lhs), value_kind(&rhs)) else { return };
        if left != right {
            self.push(Diagnostic::new(
                &rules::MISMATCHED_COMPARISON,
                bin.syntax().text_range(),
                format!("`{}` compares {} with {}: the result never depends on the values", op.text(), left.as_str(), right.as_str()),
            ));
        }
    }
}
