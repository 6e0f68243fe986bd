//! Whether a call can become its SDK call ([`crate::rules::SdkRewrite`]) and still run: it passes
//! only what the SDK call takes the same way, and what comes after uses its result only through
//! members the SDK's result has too. Conservative by design: whatever this cannot see through
//! (the result passed on, returned, typed, used in a `with`, a name rebound) is a misfit, and
//! the finding keeps its other fixes.

use tree_sitter::Node;

use crate::{lang::Family, rules::SdkRewrite, scan, Finding, Lang};

/// `None` when the call cannot be found in the tree.
pub(crate) fn fits(lang: Lang, text: &str, finding: &Finding, row: &SdkRewrite) -> Option<bool> {
    let tree = scan::parse(lang, text)?;
    let callee = tree.root_node().descendant_for_byte_range(finding.callee_start, finding.callee_end)?;
    let mut call = callee;
    while call.byte_range() == callee.byte_range() || !matches!(call.kind(), "call" | "call_expression") {
        call = call.parent()?;
    }
    let family = lang.family();
    Some(arguments_fit(text, call, row)? && result_fits(family, text, call, row.result) && errors_convert(family, text, call))
}

/// In Rust, a `?` on the SDK's result must convert `symbiont::Error` into the function's error:
/// a boxed `dyn Error`, `anyhow`/`eyre`, or the SDK's own. Anything else is a misfit (a
/// `reqwest::Error` does not come from a `symbiont::Error`).
fn errors_convert(family: Family, text: &str, call: Node) -> bool {
    if family != Family::Rust {
        return true;
    }
    let value = result_of(family, text, call);
    let (mut node, mut through_question_mark) = (call, false);
    while node.id() != value.id() {
        let Some(parent) = node.parent() else { break };
        through_question_mark |= parent.kind() == "try_expression";
        node = parent;
    }
    if !through_question_mark {
        return true;
    }
    let mut function = call;
    while !matches!(function.kind(), "function_item" | "closure_expression") {
        let Some(parent) = function.parent() else { return false };
        function = parent;
    }
    let returns = function.child_by_field_name("return_type").map_or("", |r| &text[r.byte_range()]);
    (returns.contains("dyn") && returns.contains("Error")) || ["anyhow::", "eyre::", "symbiont::"].iter().any(|c| returns.contains(c))
}

/// At most `row.positional` arguments by position, keywords among `row.keywords`, no `*args`,
/// `**kwargs` or spread.
fn arguments_fit(text: &str, call: Node, row: &SdkRewrite) -> Option<bool> {
    let arguments = call.child_by_field_name("arguments")?;
    let mut cursor = arguments.walk();
    let (mut positional, mut fits) = (0, true);
    for argument in arguments.named_children(&mut cursor).filter(|a| a.kind() != "comment") {
        match argument.kind() {
            "keyword_argument" => {
                let name = argument.child_by_field_name("name").map(|n| &text[n.byte_range()]);
                fits &= name.is_some_and(|name| row.keywords.contains(&name));
            }
            "list_splat" | "dictionary_splat" | "spread_element" => fits = false,
            _ => positional += 1,
        }
    }
    Some(fits && positional <= row.positional)
}

/// The result is discarded, read by a member in `members`, or bound to a name (no declared type)
/// that is only ever read by such members.
fn result_fits(family: Family, text: &str, call: Node, members: &[&str]) -> bool {
    let value = result_of(family, text, call);
    let Some(parent) = value.parent() else { return false };
    if parent.kind() == "expression_statement" {
        return true;
    }
    if let Some(member) = member_read(family, text, value) {
        return members.contains(&member);
    }
    match bound_name(family, parent, value) {
        Some(name) => uses_only_members(family, text, scope_of(family, parent), name, members),
        None => false,
    }
}

/// The expression that holds the call's result: through `await`, parentheses, TypeScript's `!`,
/// and Rust's `?`, `.unwrap()` and `.expect(..)`.
fn result_of<'t>(family: Family, text: &str, call: Node<'t>) -> Node<'t> {
    let mut value = call;
    while let Some(parent) = value.parent() {
        let through = match parent.kind() {
            "await" | "await_expression" | "parenthesized_expression" | "non_null_expression" | "try_expression" => Some(parent),
            // `x.unwrap()`: the field expression's parent is the call that answers the response.
            "field_expression" if family == Family::Rust && matches!(member_read(family, text, value), Some("unwrap" | "expect")) => {
                parent.parent().filter(|c| c.kind() == "call_expression")
            }
            _ => None,
        };
        match through {
            Some(next) => value = next,
            None => break,
        }
    }
    value
}

/// The member read from `object` when `object` is the object of a member access (`object.name`,
/// `object?.name`, `object.name()`).
fn member_read<'a>(family: Family, text: &'a str, object: Node) -> Option<&'a str> {
    let parent = object.parent()?;
    let (kind, object_field, member_field) = match family {
        Family::Python => ("attribute", "object", "attribute"),
        Family::Js => ("member_expression", "object", "property"),
        Family::Rust => ("field_expression", "value", "field"),
    };
    let is_object = parent.child_by_field_name(object_field).is_some_and(|o| o.id() == object.id());
    (parent.kind() == kind && is_object).then(|| parent.child_by_field_name(member_field)).flatten().map(|m| &text[m.byte_range()])
}

/// The name `value` is bound to by `binding` (`r = value`, `const r = value`, `let r = value;`),
/// when it binds a plain name with no declared type.
fn bound_name<'t>(family: Family, binding: Node<'t>, value: Node<'t>) -> Option<Node<'t>> {
    let (kind, name_field, value_field) = match family {
        Family::Python => ("assignment", "left", "right"),
        Family::Js => ("variable_declarator", "name", "value"),
        Family::Rust => ("let_declaration", "pattern", "value"),
    };
    let is_value = binding.child_by_field_name(value_field).is_some_and(|v| v.id() == value.id());
    let name = binding.child_by_field_name(name_field).filter(|n| n.kind() == "identifier")?;
    (binding.kind() == kind && is_value && binding.child_by_field_name("type").is_none()).then_some(name)
}

/// The function (or the file) a binding's name lives in.
fn scope_of(family: Family, node: Node) -> Node {
    let kinds: &[&str] = match family {
        Family::Python => &["function_definition", "lambda"],
        Family::Js => {
            &["function_declaration", "function_expression", "arrow_function", "method_definition", "generator_function_declaration"]
        }
        Family::Rust => &["function_item", "closure_expression"],
    };
    let mut scope = node;
    while let Some(parent) = scope.parent() {
        scope = parent;
        if kinds.contains(&scope.kind()) {
            break;
        }
    }
    scope
}

/// Every other mention of `name` in `scope` reads one of `members` from it. A mention in another
/// form (`{ r }`, `f(r)`, `r = x`) is a misfit, even of another variable of the same name.
fn uses_only_members(family: Family, text: &str, scope: Node, name: Node, members: &[&str]) -> bool {
    let spelled = &text[name.byte_range()];
    let mut stack = vec![scope];
    while let Some(node) = stack.pop() {
        let mention = matches!(node.kind(), "identifier" | "shorthand_property_identifier") && &text[node.byte_range()] == spelled;
        if mention && node.id() != name.id() && !member_read(family, text, node).is_some_and(|m| members.contains(&m)) {
            return false;
        }
        let mut cursor = node.walk();
        stack.extend(node.named_children(&mut cursor));
    }
    true
}

#[cfg(test)]
mod tests {
    use crate::{rules, Lang, RuleSet};

    /// Whether the first finding with an SDK row in `text` gets its rewrite.
    fn rewritten(lang: Lang, text: &str) -> bool {
        let findings = RuleSet::default().scan(lang, text).findings;
        let (finding, row) = findings
            .iter()
            .find_map(|f| Some((f, rules::lookup(&f.rule)?.sdk.iter().find(|row| row.callee == f.qualified)?)))
            .expect("a finding with an SDK row");
        super::fits(lang, text, finding, row).expect("the call is in the tree")
    }

    #[test]
    fn results_used_as_both_responses_have_them_fit() {
        let cases: &[(Lang, &str, bool)] = &[
            (Lang::Python, "import requests\nrequests.get(u)\n", true),
            (Lang::Python, "import requests\nr = requests.get(u)\nprint(r.status_code, r.json())\n", true),
            (Lang::Python, "import requests\nprint(requests.get(u).text)\n", true),
            (Lang::Python, "import requests\nr = requests.get(u)\nprint(r.headers)\n", false),
            (Lang::Python, "import requests\nprint(requests.get(u).content)\n", false),
            (Lang::Python, "import requests\nr = requests.get(u)\nuse(r)\n", false),
            (Lang::Python, "import requests\nr: requests.Response = requests.get(u)\n", false),
            (Lang::Python, "import requests\ndef f():\n    return requests.get(u)\n", false),
            (Lang::JavaScript, "const r = await fetch(u);\nconsole.log(r.ok, await r.json());\n", true),
            (Lang::JavaScript, "const r = await fetch(u);\nconsole.log(r.headers.get('x'));\n", false),
            (Lang::JavaScript, "const r = await fetch(u);\nreturn { r };\n", false),
            (Lang::TypeScript, "const r: Response = await fetch(u);\n", false),
            (Lang::TypeScript, "const body = await (await fetch(u))!.text();\n", true),
            (Lang::Rust, "fn f() -> Result<String, Box<dyn std::error::Error>> { Ok(reqwest::blocking::get(u)?.text()?) }\n", true),
            (Lang::Rust, "fn f() -> Result<String, reqwest::Error> { reqwest::blocking::get(u)?.text() }\n", false),
            (Lang::Rust, "fn f() -> u16 { reqwest::blocking::get(u).unwrap().status().as_u16() }\n", false),
            (Lang::Rust, "fn f() -> String { reqwest::blocking::get(u).unwrap().text().unwrap() }\n", true),
        ];
        for &(lang, text, expected) in cases {
            assert_eq!(rewritten(lang, text), expected, "{lang:?}:\n{text}");
        }
    }
}
