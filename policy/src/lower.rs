//! Lowering: from a file's syntax tree to its [`FileModel`]. One meaning per construct, written
//! down in `docs/policy-semantics.md`; what has none is kept as a [`LowerIssue`] and fails closed.

use std::sync::Arc;

use symbiont_syntax::{
    ast::{self, AstNode, Expr as Ast, Item, LiteralKind},
    quantity::{self, Quantity},
    LineCol, LineIndex, SyntaxKind, SyntaxNode, TextRange, TextSize,
};

use crate::{
    expr::{ArithOp, CmpOp, Expr, Method, Root},
    model::*,
    LevelKind, Value,
};

/// Lowers every policy and agent of one file: `tree` is the parse of `text`.
///
/// The model does not depend on the workspace configuration: level names are resolved when the
/// policy is evaluated, and checked against the configured levels by the static checks.
pub fn lower_file(path: &str, text: &str, tree: &ast::SourceFile) -> FileModel {
    let mut cx = Lowerer::new(path, text, TextSize::from(0), LineCol { line: 0, col: 0 });
    for item in tree.items() {
        cx.item(item);
    }
    cx.model
}

/// [`lower_file`] of one top-level item, `item` the root of the parse of `text`, which starts at
/// byte `offset` of its file, at 0-based line and column `at`: the model's locations are the
/// file's.
pub fn lower_item_at(path: &str, text: &str, item: Item, offset: TextSize, at: LineCol) -> FileModel {
    let mut cx = Lowerer::new(path, text, offset, at);
    cx.item(item);
    cx.model
}

struct Lowerer<'a> {
    file: Arc<str>,
    index: LineIndex,
    text: &'a str,
    /// Where `text` starts in its file.
    offset: TextSize,
    at: LineCol,
    model: FileModel,
}

/// A node's text on one line, for explanations: whitespace runs become one space, comments go.
/// `text` is the text of the node's tree (the lowered file's): what is written is read from it.
fn one_line(text: &str, node: &SyntaxNode) -> String {
    one_line_shared(text, node).to_string()
}

/// [`one_line`] as the model holds it: most rules are written on one line already, and then the
/// text is the answer, copied once.
fn one_line_shared(text: &str, node: &SyntaxNode) -> Arc<str> {
    let range = node.text_range();
    let written = text.get(usize::from(range.start())..usize::from(range.end()));
    if let Some(written) = written.filter(|w| !w.contains(['\n', '\r', '\t', '#', '/']) && !w.contains("  ")) {
        return Arc::from(written);
    }
    let mut out = String::with_capacity(usize::from(range.len()));
    symbiont_syntax::for_each_token(node, |kind, token| match kind {
        SyntaxKind::WHITESPACE => {
            if !out.ends_with(' ') && !out.is_empty() {
                out.push(' ');
            }
        }
        SyntaxKind::LINE_COMMENT | SyntaxKind::BLOCK_COMMENT => {}
        _ => out.push_str(token),
    });
    Arc::from(out.trim_end())
}

impl<'a> Lowerer<'a> {
    fn new(path: &str, text: &'a str, offset: TextSize, at: LineCol) -> Lowerer<'a> {
        Lowerer { file: Arc::from(path), index: LineIndex::new(text), text, offset, at, model: FileModel::default() }
    }

    fn item(&mut self, item: Item) {
        match item {
            Item::Policy(policy) => {
                if let Some(def) = self.policy(&policy, None) {
                    self.model.policies.push(Arc::new(def));
                }
            }
            Item::Agent(agent) => self.agent(&agent),
            _ => {}
        }
    }

    /// `range` of the lowered text, in the file.
    fn loc(&self, range: TextRange) -> SourceLoc {
        let pos = self.index.line_col(self.text, range.start());
        let col = if pos.line == 0 { self.at.col + pos.col } else { pos.col };
        SourceLoc { file: self.file.clone(), line: self.at.line + pos.line + 1, col: col + 1, range: range + self.offset }
    }

    fn issue(&mut self, kind: IssueKind, range: TextRange, message: String) {
        let loc = self.loc(range);
        self.model.issues.push(LowerIssue { kind, message, loc });
    }

    fn agent(&mut self, agent: &ast::Agent) {
        let Some(name) = agent.name() else { return };
        let agent_name = name.text();
        let mut def = AgentDef {
            name: agent_name.clone(),
            capabilities: Vec::new(),
            applied: Vec::new(),
            inline: Vec::new(),
            implementation: Vec::new(),
            security: Security::default(),
            loc: self.loc(name.syntax().text_range()),
        };
        for (field, target) in
            [("capabilities", &mut def.capabilities), ("policies", &mut def.applied), ("implementation", &mut def.implementation)]
        {
            if let Some(Ast::ArrayExpr(list)) = agent.field(field).and_then(|f| f.value()) {
                for element in list.elements() {
                    if let Some(word) = word(&element) {
                        target.push((word, self.loc(element.syntax().text_range())));
                    }
                }
            }
        }
        if let Some(Ast::RecordExpr(record)) = agent.field("security").and_then(|f| f.value()) {
            for field in record.fields() {
                if let (Some(name), Some(value)) = (field.name(), field.value()) {
                    security_setting(&mut def.security, &name.text(), &value);
                }
            }
        }
        for block in agent.with_blocks() {
            for attr in block.attrs() {
                if let (Some(name), Some(value)) = (attr.name(), attr.value()) {
                    security_setting(&mut def.security, &name.text(), &value);
                }
            }
        }
        for policy in agent.policies() {
            if let Some(p) = self.policy(&policy, Some(agent_name.clone())) {
                def.inline.push(Arc::new(p));
            }
        }
        for list in [&mut def.capabilities, &mut def.applied, &mut def.implementation] {
            list.shrink_to_fit();
        }
        def.inline.shrink_to_fit();
        self.model.agents.push(Arc::new(def));
    }

    fn policy(&mut self, policy: &ast::Policy, owner: Option<String>) -> Option<PolicyDef> {
        let name = policy.name()?;
        let extends = policy.extends().map(|p| (p.text(), self.loc(p.syntax().text_range()))).collect();
        let rules = policy.rules().filter_map(|r| self.rule(&r)).map(Arc::new).collect();
        Some(PolicyDef { name: name.text(), extends, rules, loc: self.loc(name.syntax().text_range()), owner })
    }

    fn rule(&mut self, rule: &ast::Rule) -> Option<Rule> {
        let kind = rule.kind()?;
        let body = rule.body()?;
        let mut lowered = Rule {
            kind,
            ops: Vec::new(),
            guard: None,
            preconditions: Vec::new(),
            obligations: Vec::new(),
            text: one_line_shared(self.text, rule.syntax()),
            loc: self.loc(rule.syntax().text_range()),
        };
        // A phrase is its subject plus qualifiers; qualifiers mean the same for every rule kind.
        let (subject, qualifiers) = match &body {
            Ast::Phrase(phrase) => (phrase.subject()?, phrase.qualifiers().collect::<Vec<_>>()),
            other => (other.clone(), Vec::new()),
        };
        match kind {
            RuleKind::Allow | RuleKind::Deny => self.operations(&subject, &mut lowered.ops),
            RuleKind::Require => lowered.preconditions = self.requirements(&subject, &[]),
            RuleKind::Audit | RuleKind::Conditions => lowered.obligations = self.obligations(&subject),
        }
        let mut unless = Vec::new();
        for qualifier in &qualifiers {
            let (Some(word), Some(value)) = (qualifier.word(), qualifier.value()) else { continue };
            match word.text() {
                "for" => self.operations(&value, &mut lowered.ops),
                "with" if kind == RuleKind::Require => {
                    let more = self.requirements(&value, &[]);
                    lowered.preconditions.extend(more);
                }
                "unless" => unless.push(value),
                other => lowered.obligations.push((other.to_string(), self.value(&value))),
            }
        }
        let params: Vec<String> = lowered.ops.first().map(|o| o.params.clone()).unwrap_or_default();
        let mut guard = rule.guard().and_then(|g| g.condition()).map(|c| self.guard(&c, &params));
        for exception in unless {
            let negated = self.guard(&exception, &params);
            let expr = Expr::Not(Box::new(Arc::unwrap_or_clone(negated.expr)));
            guard = Some(match guard {
                None => Guard { expr: Arc::new(expr), text: format!("not ({})", negated.text).into(), loc: negated.loc },
                Some(g) => Guard {
                    expr: Arc::new(Expr::And(Box::new(Arc::unwrap_or_clone(g.expr)), Box::new(expr))),
                    text: format!("{} && not ({})", g.text, negated.text).into(),
                    loc: g.loc,
                },
            });
        }
        lowered.guard = guard.map(Box::new);
        // A huge file holds hundreds of thousands of rules: their lists are kept at their size.
        lowered.ops.shrink_to_fit();
        lowered.preconditions.shrink_to_fit();
        lowered.obligations.shrink_to_fit();
        if let Some(guard) = &mut lowered.guard {
            for arg in CANONICAL_ARGS.iter().filter(|arg| lowered.ops.iter().any(|o| arg.operations.contains(&o.name.as_str()))) {
                self.canonical_comparisons(guard, arg);
            }
        }
        Some(lowered)
    }

    /// A guard reads `arg` in its one canonical form: compared with a literal in another, it could
    /// never match, and a deny would silently never deny. Each such comparison fails closed
    /// instead (as an unsupported expression: an allow never allows, a deny always denies) and is
    /// reported.
    fn canonical_comparisons(&mut self, guard: &mut Guard, arg: &CanonicalArg) {
        let mut found = Vec::new();
        non_canonical_comparisons(Arc::make_mut(&mut guard.expr), arg, &mut found);
        for literal in found {
            let message = format!(
                "{}, so comparing `{}` with {literal:?} could never hold; the rule fails closed (an allow never allows, a deny always denies){}",
                arg.why,
                arg.param,
                (arg.suggest)(&literal).map_or(String::new(), |s| format!("; write {s:?}"))
            );
            self.model.issues.push(LowerIssue { kind: arg.kind, message, loc: guard.loc.clone() });
        }
    }

    /// The operations a rule body names: `"op"`, `op`, `op(a, b)`, or an array of those.
    fn operations(&mut self, expr: &Ast, out: &mut Vec<OpPattern>) {
        match expr {
            Ast::ArrayExpr(list) => list.elements().for_each(|e| self.operations(&e, out)),
            Ast::CallExpr(call) => {
                let Some(name) = call.callee().as_ref().and_then(word) else {
                    self.issue(IssueKind::NotAnOperation, expr.syntax().text_range(), "expected an operation name before `(`".into());
                    return;
                };
                let params =
                    call.arg_list().map(|a| a.args().map(|arg| word(&arg).unwrap_or_else(|| "any".into())).collect()).unwrap_or_default();
                out.push(OpPattern { name, params, loc: self.loc(expr.syntax().text_range()) });
            }
            other => match word(other) {
                Some(name) => out.push(OpPattern { name, params: Vec::new(), loc: self.loc(expr.syntax().text_range()) }),
                None => self.issue(
                    IssueKind::NotAnOperation,
                    other.syntax().text_range(),
                    format!(
                        "`{}` names no operation: expected `\"op\"`, `op`, `op(args)` or a list of them",
                        one_line(self.text, other.syntax())
                    ),
                ),
            },
        }
    }

    /// Preconditions of a `require` rule.
    fn requirements(&mut self, expr: &Ast, params: &[String]) -> Vec<Guard> {
        match expr {
            Ast::ArrayExpr(list) => list.elements().flat_map(|e| self.requirements(&e, params)).collect(),
            Ast::RecordExpr(record) => record
                .fields()
                .filter_map(|field| {
                    let name = field.name()?;
                    let value = field.value()?;
                    let loc = self.loc(field.syntax().text_range());
                    let lhs = Expr::Path { root: Root::Env(name.text().into()), fields: Box::new([]) };
                    let rhs = self.compile(&value, params);
                    Some(Guard {
                        expr: Arc::new(self.comparison(CmpOp::Eq, lhs, rhs, Some(&name.text()), &value)),
                        text: one_line_shared(self.text, field.syntax()),
                        loc,
                    })
                })
                .collect(),
            // A bare name or string is a flag that must be true: `require: legal_authorization`.
            other if word(other).is_some() && !matches!(other, Ast::CallExpr(_)) => {
                let name = word(other).unwrap_or_default();
                let lhs = Expr::Path { root: Root::Env(name.into()), fields: Box::new([]) };
                vec![Guard {
                    expr: Arc::new(Expr::Cmp(CmpOp::Eq, Box::new(lhs), Box::new(Expr::Lit(Value::Bool(true))))),
                    text: one_line_shared(self.text, other.syntax()),
                    loc: self.loc(other.syntax().text_range()),
                }]
            }
            other => vec![self.guard(other, params)],
        }
    }

    /// Fields of an `audit` or `conditions` obligation.
    fn obligations(&mut self, expr: &Ast) -> Vec<(String, Value)> {
        match expr {
            Ast::RecordExpr(record) => record
                .fields()
                .filter_map(|f| Some((f.name()?.text(), f.value().map(|v| self.value(&v)).unwrap_or(Value::Bool(true)))))
                .collect(),
            other => vec![("subject".to_string(), self.value(other))],
        }
    }

    /// A literal-ish expression as a value; names become strings, quantities keep their text.
    fn value(&self, expr: &Ast) -> Value {
        match expr {
            Ast::Literal(lit) => match lit.kind() {
                Some(LiteralKind::Int | LiteralKind::Float) => {
                    Value::Number(lit.syntax().text().to_string().replace('_', "").parse().unwrap_or(f64::NAN))
                }
                Some(LiteralKind::String) => Value::String(lit.string_value().unwrap_or_default()),
                Some(LiteralKind::Bool) => Value::Bool(lit.syntax().text() == "true"),
                Some(LiteralKind::Null) | None => Value::Null,
                Some(LiteralKind::Quantity | LiteralKind::SecretRef) => Value::String(lit.syntax().text().to_string()),
            },
            Ast::ArrayExpr(list) => Value::Array(list.elements().map(|e| self.value(&e)).collect()),
            Ast::RecordExpr(record) => Value::object(
                record.fields().filter_map(|f| Some((f.name()?.text(), f.value().map(|v| self.value(&v)).unwrap_or(Value::Null)))),
            ),
            other => Value::String(one_line(self.text, other.syntax())),
        }
    }

    fn guard(&mut self, expr: &Ast, params: &[String]) -> Guard {
        let compiled = self.compile(expr, params);
        Guard { expr: Arc::new(compiled), text: one_line_shared(self.text, expr.syntax()), loc: self.loc(expr.syntax().text_range()) }
    }

    fn unsupported(&mut self, expr: &Ast, what: String) -> Expr {
        self.issue(
            IssueKind::UnevaluableGuard,
            expr.syntax().text_range(),
            format!("the policy engine cannot evaluate {what}; the rule fails closed (an allow never allows, a deny always denies)"),
        );
        Expr::Unsupported(what.into())
    }

    fn compile(&mut self, expr: &Ast, params: &[String]) -> Expr {
        match expr {
            Ast::Literal(lit) => match lit.kind() {
                Some(LiteralKind::Quantity) => match quantity::parse(lit.syntax().text().to_string().as_str()) {
                    // Durations compare in milliseconds, sizes in bytes.
                    Ok(Quantity::Duration(d)) => Expr::Lit(Value::Number(d.as_millis() as f64)),
                    Ok(Quantity::Size(bytes)) => Expr::Lit(Value::Number(bytes as f64)),
                    Err(_) => self.unsupported(expr, format!("the quantity `{}`", lit.syntax().text())),
                },
                Some(LiteralKind::SecretRef) => self.unsupported(expr, "a secret reference".into()),
                _ => Expr::Lit(self.value(expr)),
            },
            Ast::PathExpr(path) => {
                let segments: Vec<String> = path.segments().map(|s| s.text()).collect();
                if segments.len() != 1 {
                    return self.unsupported(expr, format!("the path `{}`", path.text()));
                }
                let name = &segments[0];
                let root = match params.iter().position(|p| p == name) {
                    Some(index) => Root::Param { index, name: name.as_str().into() },
                    None => Root::Env(name.as_str().into()),
                };
                Expr::Path { root, fields: Box::new([]) }
            }
            Ast::FieldExpr(field) => {
                let receiver = field.receiver().map(|r| self.compile(&r, params));
                let name = field.field().map(|f| f.text()).unwrap_or_default();
                match receiver {
                    Some(Expr::Path { root, fields }) => {
                        let mut fields = fields.into_vec();
                        fields.push(name.into());
                        Expr::Path { root, fields: fields.into() }
                    }
                    Some(Expr::Unsupported(what)) => Expr::Unsupported(what),
                    _ => self.unsupported(expr, format!("the field access `{}`", one_line(self.text, expr.syntax()))),
                }
            }
            Ast::IndexExpr(index) => {
                let key = index.index().and_then(|i| match i {
                    Ast::Literal(lit) => {
                        lit.string_value().or_else(|| (lit.kind() == Some(LiteralKind::Int)).then(|| lit.syntax().text().to_string()))
                    }
                    _ => None,
                });
                match (index.base().map(|b| self.compile(&b, params)), key) {
                    (Some(Expr::Path { root, fields }), Some(key)) => {
                        let mut fields = fields.into_vec();
                        fields.push(key.into());
                        Expr::Path { root, fields: fields.into() }
                    }
                    _ => self.unsupported(expr, format!("the index `{}`", one_line(self.text, expr.syntax()))),
                }
            }
            Ast::CallExpr(call) => {
                if let Some(Ast::FieldExpr(callee)) = call.callee() {
                    let method_name = callee.field().map(|f| f.text()).unwrap_or_default();
                    if let (Some(method), Some(receiver)) = (Method::from_name(&method_name), callee.receiver()) {
                        let receiver = self.compile(&receiver, params);
                        let args =
                            call.arg_list().map(|a| a.args().map(|arg| self.compile(&arg, params)).collect::<Vec<_>>()).unwrap_or_default();
                        return Expr::Method { receiver: Box::new(receiver), method, args: args.into() };
                    }
                    return self.unsupported(expr, format!("the method `{method_name}`"));
                }
                self.unsupported(expr, format!("the call `{}`", one_line(self.text, expr.syntax())))
            }
            Ast::ParenExpr(paren) => match paren.expr() {
                Some(inner) => self.compile(&inner, params),
                None => self.unsupported(expr, "an empty parenthesis".into()),
            },
            Ast::ArrayExpr(list) => Expr::Array(list.elements().map(|e| self.compile(&e, params)).collect()),
            Ast::PrefixExpr(prefix) => {
                let operand =
                    prefix.operand().map(|o| self.compile(&o, params)).unwrap_or_else(|| Expr::Unsupported("a missing operand".into()));
                match prefix.op().map(|t| t.kind()) {
                    Some(SyntaxKind::MINUS) => Expr::Neg(Box::new(operand)),
                    _ => Expr::Not(Box::new(operand)),
                }
            }
            Ast::BinExpr(bin) => {
                let (Some(lhs_ast), Some(rhs_ast), Some(op)) = (bin.lhs(), bin.rhs(), bin.op()) else {
                    return self.unsupported(expr, "an incomplete expression".into());
                };
                let lhs = self.compile(&lhs_ast, params);
                let rhs = self.compile(&rhs_ast, params);
                let arith = |op| Expr::Arith(op, Box::new(lhs.clone()), Box::new(rhs.clone()));
                match op.kind() {
                    SyntaxKind::AMP2 => Expr::And(Box::new(lhs), Box::new(rhs)),
                    SyntaxKind::PIPE2 => Expr::Or(Box::new(lhs), Box::new(rhs)),
                    SyntaxKind::IN_KW => Expr::In(Box::new(lhs), Box::new(rhs)),
                    SyntaxKind::PLUS => arith(ArithOp::Add),
                    SyntaxKind::MINUS => arith(ArithOp::Sub),
                    SyntaxKind::STAR => arith(ArithOp::Mul),
                    SyntaxKind::SLASH => arith(ArithOp::Div),
                    SyntaxKind::PERCENT => arith(ArithOp::Rem),
                    kind => {
                        let op = match kind {
                            // `audit_trail = true` in a requirement list states a value.
                            SyntaxKind::EQ | SyntaxKind::EQ2 => CmpOp::Eq,
                            SyntaxKind::NEQ => CmpOp::Ne,
                            SyntaxKind::LT => CmpOp::Lt,
                            SyntaxKind::GT => CmpOp::Gt,
                            SyntaxKind::LTEQ => CmpOp::Le,
                            SyntaxKind::GTEQ => CmpOp::Ge,
                            _ => return self.unsupported(expr, format!("the operator `{}`", op.text())),
                        };
                        let attribute = last_segment(&lhs);
                        self.comparison(op, lhs, rhs, attribute.as_deref(), &rhs_ast)
                    }
                }
            }
            _ => self.unsupported(expr, format!("`{}`", one_line(self.text, expr.syntax()))),
        }
    }

    /// A comparison; ordered comparisons against a level name compare levels.
    fn comparison(&mut self, op: CmpOp, lhs: Expr, rhs: Expr, attribute: Option<&str>, rhs_ast: &Ast) -> Expr {
        let literal = match &rhs {
            Expr::Lit(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        // Equality compares spelling; only ordered comparisons need ranks.
        let Some(literal) = literal.filter(|_| !matches!(op, CmpOp::Eq | CmpOp::Ne)) else {
            return Expr::Cmp(op, Box::new(lhs), Box::new(rhs));
        };
        let kind = attribute.and_then(LevelKind::from_attribute);
        let loc = self.loc(rhs_ast.syntax().text_range());
        self.model.level_literals.push(LevelLiteral { kind, name: literal, loc });
        Expr::LevelCmp(op, kind, Box::new(lhs), Box::new(rhs))
    }
}

/// A request argument the broker hands to guards in one canonical form only.
struct CanonicalArg {
    /// The operations whose rules read it: the broker's operation and the catalogue's ancestors.
    operations: &'static [&'static str],
    /// The argument's name, as a guard binds it (`secret_access(name)`).
    param: &'static str,
    /// Whether a literal can equal the argument: the whole of a canonical value.
    whole: fn(&str) -> bool,
    /// Whether a literal can be part of the argument (`starts_with`, `ends_with`, `contains`).
    part: fn(&str) -> bool,
    kind: IssueKind,
    /// What the canonical form is, for the message.
    why: &'static str,
    /// The canonical spelling of a literal, where one is clear.
    suggest: fn(&str) -> Option<String>,
}

static CANONICAL_ARGS: &[CanonicalArg] = &[
    CanonicalArg {
        operations: &["secret_access"],
        param: "name",
        whole: crate::names::secret_name_chars,
        part: crate::names::secret_name_chars,
        kind: IssueKind::NonCanonicalSecretName,
        why: "secret names are canonical (lowercase letters, digits and `_`: the broker reads `DB_PASSWORD` as `db_password`)",
        suggest: |literal| crate::names::secret_name(literal).ok(),
    },
    CanonicalArg {
        operations: &["http_request", "https_request", "network_access"],
        param: "host",
        whole: crate::names::host_is_canonical,
        part: crate::names::host_part_is_canonical,
        kind: IssueKind::NonCanonicalHost,
        why: "hosts are canonical (a name in lowercase without a trailing dot, an IPv4 address as a dotted quad, \
              an IPv6 address compressed: the broker reads `LOCALHOST.` as `localhost` and `127.1` as `127.0.0.1`)",
        suggest: |_| None,
    },
];

/// Whether `expr` is the request's argument `param` as a guard binds it (or it lowercased).
fn is_param(expr: &Expr, param: &str) -> bool {
    match expr {
        Expr::Path { root: Root::Param { name, .. }, fields } => &**name == param && fields.is_empty(),
        Expr::Method { receiver, method: Method::Lower, .. } => is_param(receiver, param),
        _ => false,
    }
}

/// The string literals of `expr` (a literal or a list of them) that `can_match` refuses.
fn non_canonical(expr: &Expr, can_match: fn(&str) -> bool) -> Vec<String> {
    match expr {
        Expr::Lit(Value::String(s)) if !can_match(s) => vec![s.clone()],
        Expr::Lit(Value::Array(items)) => items.iter().filter_map(Value::as_str).filter(|s| !can_match(s)).map(str::to_string).collect(),
        Expr::Array(items) => items.iter().flat_map(|e| non_canonical(e, can_match)).collect(),
        _ => Vec::new(),
    }
}

/// Replaces each comparison of `arg` with a literal no canonical value can match (`==`, `!=`,
/// `in`, `starts_with`, `ends_with`, `contains`) by an unsupported expression, collecting the
/// literals.
fn non_canonical_comparisons(expr: &mut Expr, arg: &CanonicalArg, found: &mut Vec<String>) {
    let substring = |m: &Method| matches!(m, Method::StartsWith | Method::EndsWith | Method::Contains);
    let is_arg = |e: &Expr| is_param(e, arg.param);
    let bad = match &*expr {
        // `name in "a,b"` asks whether the value is part of the string: any string may hold one.
        Expr::In(a, b) if is_arg(a) && matches!(**b, Expr::Lit(Value::String(_))) => Vec::new(),
        Expr::Cmp(_, a, b) | Expr::In(a, b) if is_arg(a) => non_canonical(b, arg.whole),
        // `"x" in name` asks whether the string is part of the value.
        Expr::In(a, b) if is_arg(b) => non_canonical(a, arg.part),
        Expr::Cmp(_, a, b) if is_arg(b) => non_canonical(a, arg.whole),
        Expr::Method { receiver, method, args } if substring(method) && is_arg(receiver) => {
            args.iter().flat_map(|e| non_canonical(e, arg.part)).collect()
        }
        Expr::Method { receiver, method: Method::Contains, args } if args.first().is_some_and(is_arg) => non_canonical(receiver, arg.whole),
        _ => Vec::new(),
    };
    if !bad.is_empty() {
        *expr = Expr::Unsupported(format!("`{}` compared with {bad:?}, which no canonical value can match", arg.param).into());
        found.extend(bad);
        return;
    }
    let mut recurse = |e: &mut Expr| non_canonical_comparisons(e, arg, found);
    match expr {
        Expr::Not(e) | Expr::Neg(e) => recurse(e),
        Expr::And(a, b) | Expr::Or(a, b) | Expr::Cmp(_, a, b) | Expr::LevelCmp(_, _, a, b) | Expr::In(a, b) | Expr::Arith(_, a, b) => {
            recurse(a);
            recurse(b);
        }
        Expr::Array(items) => items.iter_mut().for_each(recurse),
        Expr::Method { receiver, args, .. } => {
            recurse(receiver);
            args.iter_mut().for_each(recurse);
        }
        Expr::Lit(_) | Expr::Path { .. } | Expr::Unsupported(_) => {}
    }
}

fn last_segment(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Path { root, fields } => Some(match fields.last() {
            Some(f) => f.to_string(),
            None => match root {
                Root::Param { name, .. } | Root::Env(name) => name.to_string(),
            },
        }),
        _ => None,
    }
}

/// Reads one runtime setting into `security`; values of the wrong kind are left to the checks
/// (SYM0105) and ignored here. Bare numbers: bytes for `memory`, MiB for `max_memory_mb`,
/// milliseconds for `timeout`.
fn security_setting(security: &mut Security, name: &str, value: &Ast) {
    let number = || match value {
        Ast::Literal(lit) if matches!(lit.kind(), Some(LiteralKind::Int | LiteralKind::Float)) => {
            lit.syntax().text().to_string().replace('_', "").parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.0)
        }
        _ => None,
    };
    let quantity = || match value {
        Ast::Literal(lit) if lit.kind() == Some(LiteralKind::Quantity) => quantity::parse(&lit.syntax().text().to_string()).ok(),
        _ => None,
    };
    match name {
        "tier" | "sandbox" => {
            if let Some(word) = word(value) {
                security.merge_isolation(word);
            }
        }
        "memory" => match (quantity(), number()) {
            (Some(Quantity::Size(bytes)), _) => security.merge_memory(bytes),
            (_, Some(bytes)) => security.merge_memory(bytes as u64),
            _ => {}
        },
        "max_memory_mb" => {
            if let Some(mib) = number() {
                security.merge_memory((mib * 1024.0 * 1024.0) as u64);
            }
        }
        "cpus" | "max_cpu_cores" => {
            if let Some(cpus) = number() {
                security.merge_cpus(cpus);
            }
        }
        "timeout" => match (quantity(), number()) {
            (Some(Quantity::Duration(d)), _) => security.merge_timeout(d),
            (_, Some(ms)) => security.merge_timeout(std::time::Duration::from_millis(ms as u64)),
            _ => {}
        },
        _ => {}
    }
}

/// A name written as a path or a string.
fn word(expr: &Ast) -> Option<String> {
    match expr {
        Ast::PathExpr(path) => Some(path.text()),
        Ast::Literal(lit) => lit.string_value(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{model::IssueKind, Effect, Engine, Value};

    /// The effect for agent `a` of `operation` with `args`, and the file's issues of `kind`.
    fn decide_with(policy: &str, operation: &str, args: serde_json::Value, kind: IssueKind) -> (Effect, Vec<String>) {
        let text = format!("agent a {{\n    policy p {{\n        {policy}\n    }}\n}}\n");
        let model = super::lower_file("a.sym", &text, &symbiont_syntax::parse(&text).tree());
        let issues = model.issues.iter().filter(|i| i.kind == kind).map(|i| i.message.clone()).collect();
        let universe = crate::Universe::new([&model], Default::default());
        let engine = Engine::compile(universe.effective(Some("a")).unwrap());
        (engine.decide(operation, &Value::from(args), &Value::from(json!({}))).effect, issues)
    }

    /// `secret_access` of the secret `name`.
    fn decide(policy: &str, name: &str) -> (Effect, Vec<String>) {
        decide_with(policy, "secret_access", json!({ "name": name }), IssueKind::NonCanonicalSecretName)
    }

    /// `http_request` to `host`.
    fn decide_host(policy: &str, host: &str) -> (Effect, Vec<String>) {
        decide_with(policy, "http_request", json!({ "host": host }), IssueKind::NonCanonicalHost)
    }

    #[test]
    fn a_non_canonical_host_in_a_guard_fails_closed() {
        let allow_all = "allow: [\"http_request\"]\n        ";
        let canonical = format!("{allow_all}deny: http_request(host) if host == \"localhost\" || host.ends_with(\".internal\")");
        assert_eq!(decide_host(&canonical, "localhost"), (Effect::Deny, vec![]));
        assert_eq!(decide_host(&canonical, "db.internal"), (Effect::Deny, vec![]));
        assert_eq!(decide_host(&canonical, "api.example.com"), (Effect::Allow, vec![]));
        for guard in [
            "host == \"LOCALHOST\"",
            "host == \"localhost.\"",
            "host in [\"localhost\", \"127.1\"]",
            "host == \"2130706433\"",
            "host == \"[::1]\"",
            "host.ends_with(\".INTERNAL\")",
        ] {
            let (effect, issues) = decide_host(&format!("{allow_all}deny: http_request(host) if {guard}"), "api.example.com");
            assert_eq!(effect, Effect::Deny, "{guard}");
            assert_eq!(issues.len(), 1, "{guard}: {issues:?}");
            assert!(issues[0].contains("hosts are canonical"), "{guard}: {}", issues[0]);
        }
        // A rule on the parent operation reads the same argument.
        let (_, issues) = decide_host("deny: network_access(host) if host == \"127.1\"", "x");
        assert_eq!(issues.len(), 1);
    }

    #[test]
    fn a_non_canonical_secret_name_in_a_guard_fails_closed() {
        // Canonical literals: the rule means what it says, and nothing is reported.
        let allow_all = "allow: [\"secret_access\"]\n        ";
        let canonical = format!("{allow_all}deny: secret_access(name) if name == \"db_password\"");
        assert_eq!(decide(&canonical, "db_password"), (Effect::Deny, vec![]));
        assert_eq!(decide(&canonical, "api_key"), (Effect::Allow, vec![]));
        // A deny written with a name no request can carry denies every secret, and says why.
        for guard in [
            "name == \"DB_PASSWORD\"",
            "name != \"DB_PASSWORD\" && false",
            "name in [\"api_key\", \"DB_PASSWORD\"]",
            "name.starts_with(\"DB_\")",
            "\"PASSWORD\" in name",
            "[\"DB_PASSWORD\"].contains(name)",
            "name.lower() == \"prod/db\"",
        ] {
            let (effect, issues) = decide(&format!("{allow_all}deny: secret_access(name) if {guard}"), "api_key");
            assert_eq!(effect, Effect::Deny, "{guard}");
            assert_eq!(issues.len(), 1, "{guard}: {issues:?}");
            assert!(issues[0].contains("could never hold"), "{guard}: {}", issues[0]);
        }
        let (_, issues) = decide(&format!("{allow_all}deny: secret_access(name) if name == \"DB_PASSWORD\""), "x");
        assert!(issues[0].ends_with("write \"db_password\""), "{}", issues[0]);
        // An allow so written never allows.
        assert_eq!(decide("allow: secret_access(name) if name == \"API_KEY\"", "api_key").0, Effect::Deny);
        // Other comparisons, and other operations, are left alone.
        assert_eq!(decide(&format!("{allow_all}deny: secret_access(name) if user == \"Alice\""), "x").1, Vec::<String>::new());
        let env = "allow: env_access(name) if name == \"HOME\"";
        assert_eq!(decide(env, "x").1, Vec::<String>::new());
        assert_eq!(decide("allow: secret_access(name) if name in \"db_password,api_key\"", "api_key"), (Effect::Allow, vec![]));
    }
}
