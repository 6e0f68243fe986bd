//! The `.sym` grammar as recursive descent. `docs/dsl-reference.md` gives the same grammar in EBNF;
//! a test keeps the two in step (every node kind built here has a production there).
//!
//! Each function parses one construct starting at the current token. None of them loops without
//! consuming a token or stopping, and all nesting goes through `Parser::enter`, so no input can
//! hang the parser or overflow its stack.

use crate::{
    parser::{CompletedMarker, Parser},
    SyntaxKind::{self, *},
};

pub(crate) const ITEM_WORDS: &[&str] = &["metadata", "agent", "policy", "type", "function", "schedule", "channel", "memory", "webhook"];

/// Rule kinds in policies.
pub const RULE_KINDS: &[&str] = &["allow", "deny", "require", "audit", "conditions"];

fn rule_kind_kw(word: &str) -> Option<SyntaxKind> {
    SyntaxKind::keyword(word).filter(|kw| matches!(kw, ALLOW_KW | DENY_KW | REQUIRE_KW | AUDIT_KW | CONDITIONS_KW))
}

/// Opens a braced body: reports a missing `{` (saying what it opens) or nesting beyond the limit,
/// else consumes the `{` and returns the body's marker. The caller closes with [`close_braced`].
fn open_braced(p: &mut Parser<'_>, what: &str) -> Option<crate::parser::Marker> {
    if !p.at(L_BRACE) {
        p.error(format!("expected `{{`{what}, found {}", p.found()));
        return None;
    }
    if !p.enter() {
        return None;
    }
    let m = p.start();
    p.bump();
    Some(m)
}

fn close_braced(p: &mut Parser<'_>, m: crate::parser::Marker, closes: &str, kind: SyntaxKind) {
    p.expect(R_BRACE, closes);
    m.complete(p, kind);
    p.leave();
}

#[derive(Clone, Copy, Default)]
struct Restrictions {
    /// `Name { … }` is not a struct literal here (conditions, `with` attributes, match scrutinees).
    no_struct: bool,
    /// `in` is not an operator here but a qualifier word: an `allow`/`deny` body names operations,
    /// so `deny: expose_sensitive_sources in public_reports` is a phrase, not a membership test.
    no_in: bool,
}

const NO_STRUCT: Restrictions = Restrictions { no_struct: true, no_in: false };
const NONE: Restrictions = Restrictions { no_struct: false, no_in: false };
const OPERATION_BODY: Restrictions = Restrictions { no_struct: false, no_in: true };

pub(crate) fn source_file(p: &mut Parser<'_>) {
    let m = p.start();
    while !p.at_eof() {
        item(p);
    }
    m.complete(p, SOURCE_FILE);
}

fn at_item_start(p: &Parser<'_>) -> bool {
    p.at(IDENT) && ITEM_WORDS.contains(&p.nth_text(0))
}

fn item(p: &mut Parser<'_>) {
    if !p.at(IDENT) {
        garbage_between_items(p);
        return;
    }
    match p.nth_text(0) {
        "metadata" => metadata(p),
        "agent" => agent(p),
        "policy" => policy(p),
        "type" => type_def(p),
        "function" => function(p),
        "schedule" => entry_item(p, SCHEDULE_KW, SCHEDULE),
        "channel" => entry_item(p, CHANNEL_KW, CHANNEL),
        "memory" => entry_item(p, MEMORY_KW, MEMORY),
        "webhook" => entry_item(p, WEBHOOK_KW, WEBHOOK),
        _ => garbage_between_items(p),
    }
}

fn garbage_between_items(p: &mut Parser<'_>) {
    let range = p.current_range();
    let found = p.found();
    let m = p.start();
    while !p.at_eof() && !at_item_start(p) {
        p.bump_balanced();
    }
    m.complete(p, ERROR);
    p.error_at(
        range,
        format!("expected an item (`metadata`, `agent`, `policy`, `type`, `function`, `schedule`, `channel`, `memory` or `webhook`), found {found}"),
    );
}

fn name(p: &mut Parser<'_>, what: &str) {
    if p.at(IDENT) {
        let m = p.start();
        p.bump();
        m.complete(p, NAME);
    } else {
        p.error(format!("expected {what}, found {}", p.found()));
    }
}

fn name_ref(p: &mut Parser<'_>) {
    let m = p.start();
    p.bump();
    m.complete(p, NAME_REF);
}

fn metadata(p: &mut Parser<'_>) {
    let m = p.start();
    p.bump_kw(METADATA_KW);
    entry_block(p);
    m.complete(p, METADATA);
}

fn entry_item(p: &mut Parser<'_>, kw: SyntaxKind, kind: SyntaxKind) {
    let m = p.start();
    p.bump_kw(kw);
    name(p, &format!("a name after `{}`", p.nth_text(0)));
    entry_block(p);
    m.complete(p, kind);
}

/// `{ entry … }` where entries are `key = v`, `key: v`, `key v`, `key { … }` or `policy NAME { … }`.
fn entry_block(p: &mut Parser<'_>) {
    let Some(m) = open_braced(p, "") else { return };
    while !p.at(R_BRACE) && !p.at_eof() {
        if at_item_start(p) && p.newline_before() && p.nth(1) == IDENT && p.nth(2) == L_BRACE && !p.at_word("policy") {
            // `agent x {` at the start of a line: the block lost its `}`; let the item take over.
            break;
        }
        entry(p);
    }
    close_braced(p, m, "to close the block", ENTRY_BLOCK);
}

fn entry(p: &mut Parser<'_>) {
    if p.at_word("policy") && p.nth(1) == IDENT {
        policy(p);
        p.eat(COMMA);
        return;
    }
    if !matches!(p.current(), IDENT | STRING) {
        p.err_and_bump(format!("expected a key, found {}", p.found()));
        return;
    }
    let m = p.start();
    let key = p.start();
    p.bump();
    key.complete(p, NAME);
    match p.current() {
        EQ | COLON => {
            p.bump();
            expr(p);
        }
        L_BRACE => entry_block(p),
        _ if can_start_expr(p) && !p.newline_before() => {
            expr_r(p, NO_STRUCT);
        }
        _ => p.error(format!("expected `=`, `:` or a value after the key, found {}", p.found())),
    }
    if !p.eat(COMMA) {
        p.eat(SEMI);
    }
    m.complete(p, ENTRY);
}

fn agent(p: &mut Parser<'_>) {
    let m = p.start();
    p.bump_kw(AGENT_KW);
    name(p, "the agent's name");
    if p.at(L_PAREN) {
        param_list(p);
    }
    if p.at(THIN_ARROW) {
        ret_type(p);
    }
    agent_body(p);
    m.complete(p, AGENT);
}

fn param_list(p: &mut Parser<'_>) {
    let m = p.start();
    p.bump();
    while !p.at(R_PAREN) && !p.at_eof() && !p.at(L_BRACE) {
        if !p.at(IDENT) {
            p.err_and_bump(format!("expected a parameter name, found {}", p.found()));
            continue;
        }
        let param = p.start();
        name(p, "a parameter name");
        if p.eat(COLON) {
            type_ref(p);
        }
        param.complete(p, PARAM);
        if !p.at(R_PAREN) && !p.expect(COMMA, "between parameters") && !p.at(IDENT) {
            break;
        }
    }
    p.expect(R_PAREN, "to close the parameter list");
    m.complete(p, PARAM_LIST);
}

fn ret_type(p: &mut Parser<'_>) {
    let m = p.start();
    p.bump();
    type_ref(p);
    m.complete(p, RET_TYPE);
}

fn type_ref(p: &mut Parser<'_>) {
    if !p.enter() {
        return;
    }
    let lhs = match p.current() {
        IDENT => {
            let m = p.start();
            name_ref(p);
            while p.at(COLON2) && p.nth(1) == IDENT {
                p.bump();
                name_ref(p);
            }
            if p.at(LT) {
                let args = p.start();
                p.bump();
                while !p.at(GT) && !p.at_eof() {
                    if !can_start_type(p) {
                        break;
                    }
                    type_ref(p);
                    if !p.eat(COMMA) {
                        break;
                    }
                }
                p.expect(GT, "to close the type arguments");
                args.complete(p, GENERIC_ARGS);
            }
            Some(m.complete(p, PATH_TYPE))
        }
        L_BRACE if p.nth(1) == R_BRACE || (matches!(p.nth(1), IDENT | STRING) && p.nth(2) == COLON) => {
            let m = p.start();
            p.bump();
            while !p.at(R_BRACE) && !p.at_eof() {
                if !matches!(p.current(), IDENT | STRING) {
                    p.err_and_bump(format!("expected a field name, found {}", p.found()));
                    continue;
                }
                let field = p.start();
                let n = p.start();
                p.bump();
                n.complete(p, NAME);
                p.expect(COLON, "after the field name");
                type_ref(p);
                field.complete(p, FIELD_DEF);
                if !p.at(R_BRACE) && !p.eat(COMMA) && !p.eat(SEMI) && !p.at(IDENT) {
                    break;
                }
            }
            p.expect(R_BRACE, "to close the record type");
            Some(m.complete(p, RECORD_TYPE))
        }
        L_BRACK => {
            let m = p.start();
            p.bump();
            type_ref(p);
            p.expect(R_BRACK, "to close the array type");
            Some(m.complete(p, ARRAY_TYPE))
        }
        _ => {
            p.error(format!("expected a type, found {}", p.found()));
            None
        }
    };
    if let Some(lhs) = lhs {
        if p.at(QUESTION) {
            let m = lhs.precede(p);
            p.bump();
            m.complete(p, OPTIONAL_TYPE);
        }
    }
    p.leave();
}

fn can_start_type(p: &Parser<'_>) -> bool {
    matches!(p.current(), IDENT | L_BRACE | L_BRACK)
}

fn agent_body(p: &mut Parser<'_>) {
    if !p.at(L_BRACE) {
        p.error(format!("expected `{{` to open the agent body, found {}", p.found()));
        return;
    }
    let m = p.start();
    p.bump();
    while !p.at(R_BRACE) && !p.at_eof() {
        if p.at(IDENT) {
            let word = p.nth_text(0);
            match word {
                "policy" if p.nth(1) == IDENT => {
                    policy(p);
                    continue;
                }
                "function" if p.nth(1) == IDENT => {
                    function(p);
                    continue;
                }
                "with" if !matches!(p.nth(1), EQ | COLON) => {
                    with_block(p);
                    continue;
                }
                _ if matches!(p.nth(1), EQ | COLON) => {
                    agent_field(p);
                    continue;
                }
                "agent" | "metadata" | "type" | "schedule" | "webhook" | "memory" | "channel" if p.newline_before() => {
                    // The agent body lost its `}`: leave this item to the top level.
                    break;
                }
                _ => {}
            }
        }
        p.err_recover_line(format!("expected an agent member (`name = value`, `policy`, `function` or `with`), found {}", p.found()));
    }
    p.expect(R_BRACE, "to close the agent body");
    m.complete(p, AGENT_BODY);
}

fn agent_field(p: &mut Parser<'_>) {
    let m = p.start();
    name(p, "a field name");
    p.bump(); // `=` or `:`
    expr(p);
    if !p.eat(COMMA) {
        p.eat(SEMI);
    }
    m.complete(p, AGENT_FIELD);
}

fn policy(p: &mut Parser<'_>) {
    let m = p.start();
    p.bump_kw(POLICY_KW);
    name(p, "the policy's name");
    if p.at_word("extends") {
        let clause = p.start();
        p.bump_kw(EXTENDS_KW);
        loop {
            if p.at(IDENT) {
                name_ref(p);
            } else {
                p.error(format!("expected the name of a parent policy, found {}", p.found()));
                break;
            }
            if !p.eat(COMMA) {
                break;
            }
        }
        clause.complete(p, EXTENDS_CLAUSE);
    }
    policy_body(p);
    m.complete(p, POLICY);
}

fn at_rule_start(p: &Parser<'_>) -> bool {
    p.at(IDENT) && p.nth(1) == COLON
}

fn policy_body(p: &mut Parser<'_>) {
    let Some(m) = open_braced(p, " to open the policy body") else { return };
    while !p.at(R_BRACE) && !p.at_eof() {
        if at_rule_start(p) {
            rule(p);
        } else if p.eat(COMMA) || p.eat(SEMI) {
        } else if p.newline_before() && (at_item_start(p) && p.nth(1) == IDENT || p.at_word("with") || p.at_word("function")) {
            // The policy lost its `}`: what follows belongs to the enclosing agent or file.
            break;
        } else {
            p.err_recover_line(format!("expected a rule (`allow:`, `deny:`, `require:`, `audit:` or `conditions:`), found {}", p.found()));
        }
    }
    close_braced(p, m, "to close the policy body", POLICY_BODY);
}

fn rule(p: &mut Parser<'_>) {
    let m = p.start();
    let kind = rule_kind_kw(p.nth_text(0));
    match kind {
        Some(kw) => p.bump_kw(kw),
        None => {
            let range = p.current_range();
            let word = p.nth_text(0).to_string();
            p.error_at(range, format!("unknown rule kind `{word}`: expected `allow`, `deny`, `require`, `audit` or `conditions`"));
            p.bump();
        }
    }
    p.bump(); // `:`
    let names_operations = matches!(kind, Some(ALLOW_KW | DENY_KW));
    let body = expr_r(p, if names_operations { OPERATION_BODY } else { NONE });
    if let Some(body) = body {
        if at_qualifier(p) {
            let phrase = body.precede(p);
            while at_qualifier(p) {
                let q = p.start();
                p.bump();
                if can_start_expr(p) && !(p.at(IDENT) && (p.at_word("if") || at_rule_start(p))) {
                    expr_bp(p, PREFIX_BP, NONE);
                }
                q.complete(p, QUALIFIER);
            }
            phrase.complete(p, PHRASE);
        }
    }
    if p.at_word("if") {
        let g = p.start();
        p.bump_kw(IF_KW);
        expr(p);
        g.complete(p, GUARD);
    }
    if !p.eat(COMMA) {
        p.eat(SEMI);
    }
    m.complete(p, RULE);
}

/// A qualifier word continues a rule phrase on the same line: `legal_authorization for x`.
fn at_qualifier(p: &Parser<'_>) -> bool {
    p.at(IDENT) && !p.at_word("if") && !at_rule_start(p) && !p.newline_before()
}

fn with_block(p: &mut Parser<'_>) {
    let m = p.start();
    p.bump_kw(WITH_KW);
    let list = p.start();
    while p.at(IDENT) {
        let attr = p.start();
        name(p, "an attribute name");
        if p.expect(EQ, "after the attribute name") {
            expr_r(p, NO_STRUCT);
        }
        attr.complete(p, WITH_ATTR);
        if !p.eat(COMMA) {
            break;
        }
    }
    list.complete(p, WITH_ATTR_LIST);
    block(p);
    m.complete(p, WITH_BLOCK);
}

fn function(p: &mut Parser<'_>) {
    let m = p.start();
    p.bump_kw(FUNCTION_KW);
    name(p, "the function's name");
    if p.at(L_PAREN) {
        param_list(p);
    } else {
        p.error(format!("expected `(` to open the parameter list, found {}", p.found()));
    }
    if p.at(THIN_ARROW) {
        ret_type(p);
    }
    block(p);
    m.complete(p, FUNCTION);
}

fn type_def(p: &mut Parser<'_>) {
    let m = p.start();
    p.bump_kw(TYPE_KW);
    name(p, "the type's name");
    if p.expect(EQ, "after the type's name") {
        type_ref(p);
    }
    p.eat(SEMI);
    m.complete(p, TYPE_DEF);
}

// ---------------------------------------------------------------------------------------------
// Statements

fn block(p: &mut Parser<'_>) {
    let Some(m) = open_braced(p, " to open a block") else { return };
    while !p.at(R_BRACE) && !p.at_eof() {
        if p.eat(SEMI) {
            continue;
        }
        if at_item_start(p)
            && p.newline_before()
            && p.nth(1) == IDENT
            && !matches!(p.nth(2), EQ | DOT | L_PAREN | L_BRACK)
            && p.nth_text(0) != "type"
        {
            // An item keyword at the start of a line inside a block: the block lost its `}`.
            break;
        }
        stmt(p);
    }
    close_braced(p, m, "to close the block", BLOCK);
}

fn is_block_like(kind: SyntaxKind) -> bool {
    matches!(kind, IF_EXPR | FOR_EXPR | WHILE_EXPR | MATCH_EXPR | TRY_EXPR | BLOCK_EXPR)
}

fn stmt(p: &mut Parser<'_>) {
    if p.at_word("let") {
        let m = p.start();
        p.bump_kw(LET_KW);
        pattern(p);
        if p.eat(COLON) {
            type_ref(p);
        }
        if p.expect(EQ, "in `let`") {
            expr(p);
        }
        p.expect(SEMI, "after the `let` statement");
        m.complete(p, LET_STMT);
        return;
    }
    if !can_start_expr(p) {
        p.err_and_bump(format!("expected a statement, found {}", p.found()));
        return;
    }
    let m = p.start();
    let e = expr(p);
    let block_like = e.is_some_and(|e| is_block_like(e.kind()));
    if !p.eat(SEMI) && !block_like && !p.at(R_BRACE) {
        p.error(format!("expected `;` after the statement, found {}", p.found()));
    }
    m.complete(p, EXPR_STMT);
}

fn pattern(p: &mut Parser<'_>) {
    match p.current() {
        IDENT if p.nth_text(0) == "_" => {
            let m = p.start();
            p.bump();
            m.complete(p, WILDCARD_PAT);
        }
        IDENT if matches!(p.nth_text(0), "true" | "false" | "null") => {
            let m = p.start();
            let kw = SyntaxKind::keyword(p.nth_text(0)).unwrap_or(IDENT);
            p.bump_kw(kw);
            m.complete(p, LITERAL_PAT);
        }
        IDENT if p.nth(1) == L_PAREN || p.nth(1) == COLON2 => {
            let m = p.start();
            let path = p.start();
            name_ref(p);
            while p.at(COLON2) && p.nth(1) == IDENT {
                p.bump();
                name_ref(p);
            }
            path.complete(p, PATH_EXPR);
            if p.at(L_PAREN) {
                p.bump();
                while !p.at(R_PAREN) && !p.at_eof() {
                    if !p.enter() {
                        break;
                    }
                    pattern(p);
                    p.leave();
                    if !p.eat(COMMA) {
                        break;
                    }
                }
                p.expect(R_PAREN, "to close the pattern");
            }
            m.complete(p, TUPLE_STRUCT_PAT);
        }
        IDENT => {
            let m = p.start();
            name(p, "a name");
            m.complete(p, IDENT_PAT);
        }
        INT | FLOAT | STRING | QUANTITY => {
            let m = p.start();
            p.bump();
            m.complete(p, LITERAL_PAT);
        }
        MINUS if matches!(p.nth(1), INT | FLOAT) => {
            let m = p.start();
            p.bump();
            p.bump();
            m.complete(p, LITERAL_PAT);
        }
        _ => p.err_and_bump(format!("expected a pattern, found {}", p.found())),
    }
}

// ---------------------------------------------------------------------------------------------
// Expressions

/// Binding power of prefix `!` and `-` (and the left side of postfix operators).
const PREFIX_BP: u8 = 15;
/// `not` binds looser than comparisons: `not a == b` is `not (a == b)`.
const NOT_BP: u8 = 7;

fn infix_bp(p: &Parser<'_>, r: Restrictions) -> Option<(u8, u8)> {
    Some(match p.current() {
        EQ | PLUS_EQ | MINUS_EQ | STAR_EQ | SLASH_EQ | PERCENT_EQ => (2, 1),
        PIPE2 => (3, 4),
        AMP2 => (5, 6),
        EQ2 | NEQ | LT | GT | LTEQ | GTEQ => (9, 10),
        IDENT if p.nth_text(0) == "in" && !r.no_in => (9, 10),
        PLUS | MINUS => (11, 12),
        STAR | SLASH | PERCENT => (13, 14),
        _ => return None,
    })
}

pub(crate) fn expr(p: &mut Parser<'_>) -> Option<CompletedMarker> {
    expr_bp(p, 0, NONE)
}

fn expr_r(p: &mut Parser<'_>, r: Restrictions) -> Option<CompletedMarker> {
    expr_bp(p, 0, r)
}

fn can_start_expr(p: &Parser<'_>) -> bool {
    matches!(p.current(), IDENT | INT | FLOAT | QUANTITY | STRING | SECRET_REF | L_PAREN | L_BRACK | L_BRACE | BANG | MINUS)
}

fn expr_bp(p: &mut Parser<'_>, min_bp: u8, r: Restrictions) -> Option<CompletedMarker> {
    if !p.enter() {
        return None;
    }
    let result = expr_bp_inner(p, min_bp, r);
    p.leave();
    result
}

fn expr_bp_inner(p: &mut Parser<'_>, min_bp: u8, r: Restrictions) -> Option<CompletedMarker> {
    let mut lhs = match p.current() {
        BANG | MINUS => {
            let m = p.start();
            p.bump();
            expr_bp(p, PREFIX_BP, r);
            m.complete(p, PREFIX_EXPR)
        }
        IDENT if p.nth_text(0) == "not" && p.nth(1) != COLON && p.nth(1) != EQ => {
            let m = p.start();
            p.bump_kw(NOT_KW);
            expr_bp(p, NOT_BP, r);
            m.complete(p, PREFIX_EXPR)
        }
        _ => postfix(p, r)?,
    };
    while let Some((l_bp, r_bp)) = infix_bp(p, r) {
        if l_bp < min_bp {
            break;
        }
        let m = lhs.precede(p);
        if p.at(IDENT) {
            p.bump_kw(IN_KW);
        } else {
            p.bump();
        }
        if expr_bp(p, r_bp, r).is_none() {
            // The operator's right side is missing; `expr_bp` reported it.
        }
        lhs = m.complete(p, BIN_EXPR);
    }
    Some(lhs)
}

fn postfix(p: &mut Parser<'_>, r: Restrictions) -> Option<CompletedMarker> {
    let mut lhs = primary(p, r)?;
    loop {
        match p.current() {
            DOT => {
                let m = lhs.precede(p);
                p.bump();
                if matches!(p.current(), IDENT | INT) {
                    name_ref(p);
                } else {
                    p.error(format!("expected a field or method name after `.`, found {}", p.found()));
                }
                lhs = m.complete(p, FIELD_EXPR);
            }
            L_PAREN => {
                let m = lhs.precede(p);
                arg_list(p);
                lhs = m.complete(p, CALL_EXPR);
            }
            L_BRACK => {
                let m = lhs.precede(p);
                p.bump();
                expr(p);
                p.expect(R_BRACK, "to close the index");
                lhs = m.complete(p, INDEX_EXPR);
            }
            _ => break,
        }
    }
    Some(lhs)
}

fn arg_list(p: &mut Parser<'_>) {
    let m = p.start();
    p.bump();
    while !p.at(R_PAREN) && !p.at_eof() {
        if p.at(IDENT) && matches!(p.nth(1), EQ | COLON) && p.nth(2) != EQ {
            let arg = p.start();
            name(p, "an argument name");
            p.bump();
            expr(p);
            arg.complete(p, NAMED_ARG);
        } else if can_start_expr(p) {
            expr(p);
        } else {
            p.err_and_bump(format!("expected an argument, found {}", p.found()));
            continue;
        }
        if !p.at(R_PAREN) && !p.expect(COMMA, "between arguments") {
            break;
        }
    }
    p.expect(R_PAREN, "to close the argument list");
    m.complete(p, ARG_LIST);
}

/// Whether `(` at the current token opens lambda parameters: `(a, b) => …`.
fn at_paren_lambda(p: &Parser<'_>) -> bool {
    let mut i = 1;
    loop {
        match p.nth(i) {
            IDENT | COMMA => i += 1,
            R_PAREN => return p.nth(i + 1) == FAT_ARROW,
            _ => return false,
        }
    }
}

fn primary(p: &mut Parser<'_>, r: Restrictions) -> Option<CompletedMarker> {
    let m = p.start();
    let kind = match p.current() {
        INT | FLOAT | QUANTITY | STRING | SECRET_REF => {
            p.bump();
            LITERAL
        }
        L_PAREN if at_paren_lambda(p) => {
            let params = p.start();
            p.bump();
            while p.at(IDENT) {
                name(p, "a parameter");
                if !p.eat(COMMA) {
                    break;
                }
            }
            p.expect(R_PAREN, "to close the lambda parameters");
            params.complete(p, LAMBDA_PARAMS);
            p.bump(); // `=>`
            expr(p);
            LAMBDA_EXPR
        }
        L_PAREN => {
            p.bump();
            expr(p);
            p.expect(R_PAREN, "to close the parenthesis");
            PAREN_EXPR
        }
        L_BRACK => {
            p.bump();
            while !p.at(R_BRACK) && !p.at_eof() {
                if !can_start_expr(p) {
                    p.err_and_bump(format!("expected an array element, found {}", p.found()));
                    continue;
                }
                expr(p);
                if !p.at(R_BRACK) && !p.expect(COMMA, "between array elements") {
                    break;
                }
            }
            p.expect(R_BRACK, "to close the array");
            ARRAY_EXPR
        }
        L_BRACE => {
            record_fields(p);
            RECORD_EXPR
        }
        IDENT => return Some(word_expr(p, m, r)),
        _ => {
            m.abandon(p);
            if matches!(p.current(), R_BRACE | R_PAREN | R_BRACK | EOF | SEMI | COMMA) {
                p.error(format!("expected an expression, found {}", p.found()));
            } else {
                p.err_and_bump(format!("expected an expression, found {}", p.found()));
            }
            return None;
        }
    };
    Some(m.complete(p, kind))
}

/// `{ key: value, … }`, shared by record and struct literals.
fn record_fields(p: &mut Parser<'_>) {
    p.bump();
    while !p.at(R_BRACE) && !p.at_eof() {
        if !matches!(p.current(), IDENT | STRING) {
            p.err_and_bump(format!("expected a field name, found {}", p.found()));
            continue;
        }
        let field = p.start();
        let key = p.start();
        p.bump();
        key.complete(p, NAME);
        if p.eat(COLON) {
            expr(p);
        }
        field.complete(p, RECORD_FIELD);
        if !p.at(R_BRACE) && !p.expect(COMMA, "between record fields") {
            break;
        }
    }
    p.expect(R_BRACE, "to close the record");
}

fn word_expr(p: &mut Parser<'_>, m: crate::parser::Marker, r: Restrictions) -> CompletedMarker {
    let word = p.nth_text(0);
    match word {
        "true" | "false" | "null" => {
            let kw = SyntaxKind::keyword(word).unwrap_or(IDENT);
            p.bump_kw(kw);
            return m.complete(p, LITERAL);
        }
        "if" => {
            if_expr(p);
            return m.complete(p, IF_EXPR);
        }
        "match" if p.nth(1) != DOT && p.nth(1) != L_PAREN => {
            p.bump_kw(MATCH_KW);
            expr_r(p, NO_STRUCT);
            match_arms(p);
            return m.complete(p, MATCH_EXPR);
        }
        "for" => {
            p.bump_kw(FOR_KW);
            pattern(p);
            if p.at_word("in") {
                p.bump_kw(IN_KW);
            } else {
                p.error(format!("expected `in` in the `for` loop, found {}", p.found()));
            }
            expr_r(p, NO_STRUCT);
            block(p);
            return m.complete(p, FOR_EXPR);
        }
        "while" => {
            p.bump_kw(WHILE_KW);
            expr_r(p, NO_STRUCT);
            block(p);
            return m.complete(p, WHILE_EXPR);
        }
        "try" if p.nth(1) == L_BRACE => {
            p.bump_kw(TRY_KW);
            block(p);
            while p.at_word("catch") {
                let c = p.start();
                p.bump_kw(CATCH_KW);
                if p.eat(L_PAREN) {
                    if p.at(IDENT) && p.nth(1) == IDENT {
                        let t = p.start();
                        name_ref(p);
                        t.complete(p, PATH_TYPE);
                    }
                    name(p, "the caught error's name");
                    p.expect(R_PAREN, "to close the `catch` clause");
                }
                block(p);
                c.complete(p, CATCH_CLAUSE);
            }
            return m.complete(p, TRY_EXPR);
        }
        "return" | "break" | "continue" => {
            let (kw, kind) = match word {
                "return" => (RETURN_KW, RETURN_EXPR),
                "break" => (BREAK_KW, BREAK_EXPR),
                _ => (CONTINUE_KW, CONTINUE_EXPR),
            };
            p.bump_kw(kw);
            if kind == RETURN_EXPR && can_start_expr(p) {
                expr_r(p, r);
            }
            return m.complete(p, kind);
        }
        _ => {}
    }
    if p.nth(1) == FAT_ARROW {
        let params = p.start();
        name(p, "a parameter");
        params.complete(p, LAMBDA_PARAMS);
        p.bump();
        expr(p);
        return m.complete(p, LAMBDA_EXPR);
    }
    name_ref(p);
    while p.at(COLON2) && p.nth(1) == IDENT {
        p.bump();
        name_ref(p);
    }
    let path = m.complete(p, PATH_EXPR);
    if p.at(L_BRACE) && !r.no_struct {
        let s = path.precede(p);
        record_fields(p);
        return s.complete(p, STRUCT_EXPR);
    }
    path
}

fn if_expr(p: &mut Parser<'_>) {
    p.bump_kw(IF_KW);
    if p.at_word("let") {
        let c = p.start();
        p.bump_kw(LET_KW);
        pattern(p);
        if p.expect(EQ, "in `if let`") {
            expr_r(p, NO_STRUCT);
        }
        c.complete(p, LET_CONDITION);
    } else {
        expr_r(p, NO_STRUCT);
    }
    block(p);
    if p.at_word("else") {
        p.bump_kw(ELSE_KW);
        if p.at_word("if") {
            let m = p.start();
            if_expr(p);
            m.complete(p, IF_EXPR);
        } else {
            block(p);
        }
    }
}

fn match_arms(p: &mut Parser<'_>) {
    let Some(list) = open_braced(p, " to open the match arms") else { return };
    while !p.at(R_BRACE) && !p.at_eof() {
        let arm = p.start();
        pattern(p);
        if p.at_word("if") {
            let g = p.start();
            p.bump_kw(IF_KW);
            expr_r(p, NO_STRUCT);
            g.complete(p, GUARD);
        }
        if p.expect(FAT_ARROW, "after the match pattern") {
            if p.at(L_BRACE) {
                let b = p.start();
                block(p);
                b.complete(p, BLOCK_EXPR);
            } else {
                expr(p);
            }
        }
        arm.complete(p, MATCH_ARM);
        if !p.eat(COMMA) && !p.at(R_BRACE) && !p.newline_before() {
            p.error(format!("expected `,` between match arms, found {}", p.found()));
            break;
        }
    }
    close_braced(p, list, "to close the match arms", MATCH_ARM_LIST);
}

/// Lexes and parses `text` into its green tree and its errors (lexing's and parsing's, sorted,
/// one per position): the grammar's entry point.
pub(crate) fn parse_text(text: &str) -> (rowan::GreenNode, Vec<crate::SyntaxError>) {
    let (raw, lex_errors) = crate::lexer::tokenize(text);
    let mut p = Parser::new(text, &raw);
    source_file(&mut p);
    let (green, mut errors) = p.finish(&raw);
    let mut all: Vec<crate::SyntaxError> =
        lex_errors.into_iter().map(|e| crate::SyntaxError::new(e.message, crate::TextRange::new(e.start.into(), e.end.into()))).collect();
    all.append(&mut errors);
    all.sort_by_key(|e| (e.range.start(), e.range.end()));
    // One mistake often leaves several parsers expecting something at the same spot; the first
    // (innermost) expectation is the useful one.
    all.dedup_by_key(|e| e.range.start());
    (green, all)
}
