//! Finding where code performs something: every call, construction and notable reference, with the
//! callee resolved to a qualified name through the file's imports and aliases
//! (`import requests as r; r.get(u)` is `requests.get`; `use std::fs::write; write(p, b)` is
//! `std::fs::write`). Names defined in the file shadow imports and globals, so a local function
//! called `fetch` is not the global `fetch`.

use std::collections::{HashMap, HashSet};

use tree_sitter::Node;

use crate::lang::{Family, Lang};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SiteKind {
    /// `f(…)`
    Call,
    /// `new F(…)`
    Construct,
    /// A qualified name used without a call (`os.environ`, `process.env`).
    Reference,
}

/// An argument as far as rules care: its keyword (Python `mode=`) and its value when it is a
/// string or boolean literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub keyword: Option<String>,
    pub literal: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub kind: SiteKind,
    /// The resolved callee, e.g. `requests.get`, `fs.promises.writeFile`, `std::fs::write`, or for
    /// method chains on a constructed value `pathlib.Path().write_text`.
    pub qualified: String,
    /// The whole call (or reference), in bytes.
    pub start: usize,
    pub end: usize,
    /// The callee expression, in bytes (what an SDK rewrite replaces).
    pub callee_start: usize,
    pub callee_end: usize,
    pub args: Vec<Arg>,
}

/// Bindings from local names to what they stand for, and the names the file defines itself.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scope {
    bindings: HashMap<String, String>,
    shadowed: HashSet<String>,
}

impl Scope {
    /// Adds what a later part of the file binds: its bindings win, as they would in one pass.
    pub fn extend(&mut self, later: Scope) {
        self.bindings.extend(later.bindings);
        self.shadowed.extend(later.shadowed);
    }

    /// [`Scope::extend`] from a scope that is kept: copies its entries, not the scope.
    pub fn extend_from(&mut self, later: &Scope) {
        self.bindings.extend(later.bindings.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.shadowed.extend(later.shadowed.iter().cloned());
    }
}

const PY_BUILTINS: &[&str] = &["open", "eval", "exec", "compile", "__import__"];

/// The names of the global object in JavaScript: `window.fetch` is `fetch`.
const JS_GLOBAL_OBJECTS: &[&str] = &["globalThis", "window", "self", "global"];

/// Every site of a file, sorted by position. The work is done per top-level node (what
/// [`child_scope`] and [`child_sites`] compute), so that an incremental scan can redo it only for
/// the nodes an edit touched.
pub fn sites(lang: Lang, tree: &tree_sitter::Tree, text: &str) -> Vec<Site> {
    let src = text.as_bytes();
    let root = tree.root_node();
    let mut cursor = root.walk();
    let children: Vec<Node<'_>> = root.named_children(&mut cursor).collect();
    // First: imports, aliases and local definitions, wherever they are.
    let mut scope = root_scope(lang.family(), root, src);
    for child in &children {
        scope.extend(child_scope(lang.family(), *child, src));
    }
    let mut out: Vec<Site> = site(lang.family(), root, None, src, &scope).into_iter().collect();
    for child in children {
        out.extend(child_sites(lang, child, root, src, &scope));
    }
    out.sort_by_key(|s| (s.start, s.end));
    out
}

/// What the root node itself binds (nothing, for the grammars' root kinds).
pub fn root_scope(family: Family, root: Node<'_>, src: &[u8]) -> Scope {
    let mut scope = Scope::default();
    bind(family, root, src, &mut scope);
    scope
}

/// What the subtree of `node` binds, in the order of a pre-order walk.
pub fn child_scope(family: Family, node: Node<'_>, src: &[u8]) -> Scope {
    let mut scope = Scope::default();
    let mut stack = vec![node];
    while let Some(node) = stack.pop() {
        bind(family, node, src, &mut scope);
        push_children(node, &mut stack);
    }
    scope
}

/// The sites in the subtree of `node` (whose parent is `parent`), sorted by position.
pub fn child_sites(lang: Lang, node: Node<'_>, parent: Node<'_>, src: &[u8], scope: &Scope) -> Vec<Site> {
    let mut out = Vec::new();
    // Each node with its parent: tree-sitter finds a node's parent by descending from the root,
    // which deep trees make quadratic.
    let mut stack = vec![(node, Some(parent))];
    while let Some((node, parent)) = stack.pop() {
        if let Some(site) = site(lang.family(), node, parent, src, scope) {
            out.push(site);
        }
        if lang.family() == Family::Rust && node.kind() == "token_tree" {
            macro_sites(node, src, scope, &mut out);
        }
        let mut cursor = node.walk();
        let children: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
        stack.extend(children.into_iter().rev().map(|child| (child, Some(node))));
    }
    out.sort_by_key(|s| (s.start, s.end));
    out
}

fn push_children<'t>(node: Node<'t>, stack: &mut Vec<Node<'t>>) {
    let mut cursor = node.walk();
    let children: Vec<Node<'t>> = node.named_children(&mut cursor).collect();
    stack.extend(children.into_iter().rev());
}

fn text<'s>(node: Node<'_>, src: &'s [u8]) -> &'s str {
    node.utf8_text(src).unwrap_or("")
}

/// A path's text without whitespace (`std :: fs` is `std::fs`).
fn compact(node: Node<'_>, src: &[u8]) -> String {
    text(node, src).chars().filter(|c| !c.is_whitespace()).collect()
}

fn string_value(node: Node<'_>, src: &[u8]) -> Option<String> {
    match node.kind() {
        "string" | "string_literal" | "raw_string_literal" | "template_string" => {
            let t = text(node, src);
            let t = t.trim_start_matches(|c: char| c.is_ascii_alphabetic() && c != '"' && c != '\'');
            let trimmed = t.trim_matches(|c| c == '"' || c == '\'' || c == '`');
            Some(trimmed.to_string())
        }
        "true" | "false" | "boolean_literal" => Some(text(node, src).to_string()),
        _ => None,
    }
}

fn js_module(name: &str) -> String {
    name.strip_prefix("node:").unwrap_or(name).replace('/', ".")
}

fn bind(family: Family, node: Node<'_>, src: &[u8], scope: &mut Scope) {
    match (family, node.kind()) {
        (Family::Python, "import_statement") => {
            let mut cursor = node.walk();
            for name in node.children_by_field_name("name", &mut cursor) {
                match name.kind() {
                    "dotted_name" => {
                        let full = text(name, src).to_string();
                        let first = full.split('.').next().unwrap_or(&full).to_string();
                        scope.bindings.insert(first.clone(), first);
                    }
                    "aliased_import" => {
                        if let (Some(n), Some(a)) = (name.child_by_field_name("name"), name.child_by_field_name("alias")) {
                            scope.bindings.insert(text(a, src).to_string(), text(n, src).to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        (Family::Python, "import_from_statement") => {
            let Some(module) = node.child_by_field_name("module_name") else { return };
            let module = text(module, src).to_string();
            let mut cursor = node.walk();
            for name in node.children_by_field_name("name", &mut cursor) {
                let (imported, local) = match name.kind() {
                    "dotted_name" => (text(name, src).to_string(), text(name, src).to_string()),
                    "aliased_import" => match (name.child_by_field_name("name"), name.child_by_field_name("alias")) {
                        (Some(n), Some(a)) => (text(n, src).to_string(), text(a, src).to_string()),
                        _ => continue,
                    },
                    _ => continue,
                };
                scope.bindings.insert(local, format!("{module}.{imported}"));
            }
        }
        (Family::Python, "function_definition" | "class_definition") => {
            // A method (`def open(self)` in a class body) is an attribute of its class: it does
            // not hide the builtin or import of the same name from the rest of the file.
            if is_method(node) {
                return;
            }
            if let Some(name) = node.child_by_field_name("name") {
                scope.shadowed.insert(text(name, src).to_string());
            }
        }
        (Family::Js, "import_statement") => {
            // TypeScript's `import x = require("m")`.
            let mut cursor = node.walk();
            if let Some(clause) = node.named_children(&mut cursor).find(|c| c.kind() == "import_require_clause") {
                let mut c = clause.walk();
                let id = clause.named_children(&mut c).find(|n| n.kind() == "identifier");
                let source = clause.child_by_field_name("source").and_then(|s| string_value(s, src));
                if let (Some(id), Some(source)) = (id, source) {
                    scope.bindings.insert(text(id, src).to_string(), js_module(&source));
                }
                return;
            }
            let Some(source) = node.child_by_field_name("source").and_then(|s| string_value(s, src)) else { return };
            let module = js_module(&source);
            let mut cursor = node.walk();
            for clause in node.named_children(&mut cursor).filter(|c| c.kind() == "import_clause") {
                let mut inner = clause.walk();
                for part in clause.named_children(&mut inner) {
                    match part.kind() {
                        "identifier" => {
                            scope.bindings.insert(text(part, src).to_string(), module.clone());
                        }
                        "namespace_import" => {
                            let mut c = part.walk();
                            let id = part.named_children(&mut c).find(|n| n.kind() == "identifier");
                            if let Some(id) = id {
                                scope.bindings.insert(text(id, src).to_string(), module.clone());
                            }
                        }
                        "named_imports" => {
                            let mut c = part.walk();
                            for spec in part.named_children(&mut c).filter(|n| n.kind() == "import_specifier") {
                                let Some(name) = spec.child_by_field_name("name") else { continue };
                                let local = spec.child_by_field_name("alias").unwrap_or(name);
                                scope.bindings.insert(text(local, src).to_string(), format!("{module}.{}", text(name, src)));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        (Family::Js, "variable_declarator") => {
            let (Some(name), value) = (node.child_by_field_name("name"), node.child_by_field_name("value")) else { return };
            match value.and_then(|v| required_module(v, src)) {
                Some(module) => match name.kind() {
                    "identifier" => {
                        scope.bindings.insert(text(name, src).to_string(), module);
                    }
                    "object_pattern" => {
                        let mut c = name.walk();
                        for prop in name.named_children(&mut c) {
                            match prop.kind() {
                                "shorthand_property_identifier_pattern" => {
                                    let p = text(prop, src).to_string();
                                    scope.bindings.insert(p.clone(), format!("{module}.{p}"));
                                }
                                "pair_pattern" => {
                                    if let (Some(k), Some(v)) = (prop.child_by_field_name("key"), prop.child_by_field_name("value")) {
                                        scope.bindings.insert(text(v, src).to_string(), format!("{module}.{}", text(k, src)));
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                },
                None => {
                    if name.kind() == "identifier" {
                        scope.shadowed.insert(text(name, src).to_string());
                    }
                }
            }
        }
        (Family::Js, "function_declaration" | "class_declaration" | "generator_function_declaration") => {
            if let Some(name) = node.child_by_field_name("name") {
                scope.shadowed.insert(text(name, src).to_string());
            }
        }
        (Family::Rust, "use_declaration") => {
            if let Some(argument) = node.child_by_field_name("argument") {
                bind_rust_use(argument, src, scope);
            }
        }
        (Family::Rust, "function_item") => {
            if let Some(name) = node.child_by_field_name("name") {
                scope.shadowed.insert(text(name, src).to_string());
            }
        }
        _ => {}
    }
}

/// `require("m")`, `require("m").x`, `await import("m")`: the module (and member) a value stands
/// for. Iterative, and bounded like [`qualify`].
fn required_module(value: Node<'_>, src: &[u8]) -> Option<String> {
    let mut members: Vec<&str> = Vec::new();
    let mut value = value;
    for _ in 0..MAX_QUALIFY_DEPTH {
        match value.kind() {
            "call_expression" => {
                let function = value.child_by_field_name("function")?;
                if text(function, src) != "require" && function.kind() != "import" {
                    return None;
                }
                let args = value.child_by_field_name("arguments")?;
                let mut c = args.walk();
                let first = args.named_children(&mut c).next()?;
                let mut module = js_module(&string_value(first, src)?);
                for member in members.iter().rev() {
                    module.push('.');
                    module.push_str(member);
                }
                return Some(module);
            }
            "member_expression" => {
                members.push(text(value.child_by_field_name("property")?, src));
                value = value.child_by_field_name("object")?;
            }
            "await_expression" | "parenthesized_expression" => {
                let mut c = value.walk();
                value = value.named_children(&mut c).next()?;
            }
            _ => return None,
        }
    }
    None
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}::{name}")
    }
}

/// The bindings of a `use` tree. Iterative, with nesting bounded like [`qualify`].
fn bind_rust_use(node: Node<'_>, src: &[u8], scope: &mut Scope) {
    // Each tree still to bind, with the path it is under and how deep it nests.
    let mut stack = vec![(node, String::new(), 0)];
    while let Some((node, prefix, depth)) = stack.pop() {
        if depth > MAX_QUALIFY_DEPTH {
            continue;
        }
        match node.kind() {
            "identifier" | "scoped_identifier" | "crate" | "self" | "super" => {
                let full = join(&prefix, &compact(node, src));
                let last = full.rsplit("::").next().unwrap_or(&full).to_string();
                let full = if last == "self" { full.trim_end_matches("::self").to_string() } else { full };
                let local = full.rsplit("::").next().unwrap_or(&full).to_string();
                scope.bindings.insert(local, full);
            }
            "use_as_clause" => {
                if let (Some(path), Some(alias)) = (node.child_by_field_name("path"), node.child_by_field_name("alias")) {
                    scope.bindings.insert(text(alias, src).to_string(), join(&prefix, &compact(path, src)));
                }
            }
            "scoped_use_list" => {
                let path = node.child_by_field_name("path").map(|p| join(&prefix, &compact(p, src))).unwrap_or(prefix);
                if let Some(list) = node.child_by_field_name("list") {
                    stack.push((list, path, depth + 1));
                }
            }
            "use_list" => {
                let mut c = node.walk();
                for item in node.named_children(&mut c) {
                    stack.push((item, prefix.clone(), depth + 1));
                }
            }
            _ => {}
        }
    }
}

/// How many levels of member access, calls and paths a qualified name may have. Real callees have
/// a handful; minified and generated code chains thousands (`a.then(f).then(g)…`), which are
/// not resolved: giving up keeps every call of such a chain from walking all of it.
const MAX_QUALIFY_DEPTH: usize = 64;

/// The qualified name an expression stands for, when it is a name, a path, a member of one, or a
/// call in a method chain (`Path("x")` in `Path("x").write_text(…)` is `pathlib.Path()`).
/// Iterative: it walks from the outermost expression down to the name the chain starts with,
/// collecting what each level appends.
fn qualify(family: Family, node: Node<'_>, src: &[u8], scope: &Scope) -> Option<String> {
    let mut suffixes: Vec<String> = Vec::new();
    let mut node = node;
    let mut depth = 0;
    let base = loop {
        depth += 1;
        if depth > MAX_QUALIFY_DEPTH {
            return None;
        }
        match node.kind() {
            "identifier" | "type_identifier" => {
                let name = text(node, src);
                if let Some(bound) = scope.bindings.get(name) {
                    break bound.clone();
                }
                if scope.shadowed.contains(name) {
                    return None;
                }
                if family == Family::Python && PY_BUILTINS.contains(&name) {
                    break format!("builtins.{name}");
                }
                break name.to_string();
            }
            "attribute" => {
                suffixes.push(format!(".{}", text(node.child_by_field_name("attribute")?, src)));
                node = node.child_by_field_name("object")?;
            }
            "member_expression" => {
                let object = node.child_by_field_name("object")?;
                let property = text(node.child_by_field_name("property")?, src);
                // `window.fetch`, `globalThis.process.env`: a member of the global object is the
                // global itself, even where a local of the same name shadows the bare name.
                if object.kind() == "identifier" && JS_GLOBAL_OBJECTS.contains(&text(object, src)) {
                    let name = text(object, src);
                    if !scope.bindings.contains_key(name) && !scope.shadowed.contains(name) {
                        break property.to_string();
                    }
                }
                suffixes.push(format!(".{property}"));
                node = object;
            }
            "scoped_identifier" | "scoped_type_identifier" => {
                let name = text(node.child_by_field_name("name")?, src);
                match node.child_by_field_name("path") {
                    Some(path) => {
                        suffixes.push(format!("::{name}"));
                        node = path;
                    }
                    None => break name.to_string(),
                }
            }
            "generic_function" | "generic_type" => {
                node = node.child_by_field_name("function").or(node.child_by_field_name("type"))?;
            }
            // `require("fs").readFileSync(…)`: an inline require (or dynamic import) is the module.
            "call_expression" if family == Family::Js && required_module(node, src).is_some() => {
                break required_module(node, src)?;
            }
            "call" | "call_expression" => {
                suffixes.push("()".to_string());
                node = node.child_by_field_name("function")?;
            }
            "field_expression" => {
                let value = node.child_by_field_name("value")?;
                // Only method chains on calls resolve: a variable's type is unknown here.
                if value.kind() != "call_expression" {
                    return None;
                }
                suffixes.push(format!(".{}", text(node.child_by_field_name("field")?, src)));
                node = value;
            }
            "parenthesized_expression" | "await_expression" | "non_null_expression" => {
                let mut c = node.walk();
                let inner = node.named_children(&mut c).next()?;
                node = inner;
            }
            _ => return None,
        }
    };
    let mut out = base;
    for suffix in suffixes.iter().rev() {
        out.push_str(suffix);
    }
    Some(out)
}

fn args(node: Option<Node<'_>>, src: &[u8]) -> Vec<Arg> {
    let Some(node) = node else { return Vec::new() };
    let mut c = node.walk();
    node.named_children(&mut c)
        .filter(|a| a.kind() != "comment")
        .map(|a| match a.kind() {
            "keyword_argument" => Arg {
                keyword: a.child_by_field_name("name").map(|n| text(n, src).to_string()),
                literal: a.child_by_field_name("value").and_then(|v| string_value(v, src)),
            },
            _ => Arg { keyword: None, literal: string_value(a, src) },
        })
        .collect()
}

fn site<'t>(family: Family, node: Node<'t>, parent: Option<Node<'t>>, src: &[u8], scope: &Scope) -> Option<Site> {
    let (kind, callee, arguments) = match (family, node.kind()) {
        (_, "call" | "call_expression") => (SiteKind::Call, node.child_by_field_name("function")?, node.child_by_field_name("arguments")),
        (Family::Js, "new_expression") => {
            (SiteKind::Construct, node.child_by_field_name("constructor")?, node.child_by_field_name("arguments"))
        }
        // `from os import environ; environ["X"]`: an imported name used as a value.
        (Family::Python, "identifier") if scope.bindings.contains_key(text(node, src)) && is_python_value(node, parent?) => {
            (SiteKind::Reference, node, None)
        }
        (Family::Python, "attribute") | (Family::Js, "member_expression") => {
            // A reference only when it is not itself the callee or the object of a longer name.
            let parent = parent?;
            if matches!(parent.kind(), "call" | "call_expression" | "new_expression" | "attribute" | "member_expression") {
                let is_callee = parent.child_by_field_name("function").or(parent.child_by_field_name("constructor")) == Some(node);
                let is_object = parent.child_by_field_name("object") == Some(node);
                if is_callee || is_object {
                    return None;
                }
            }
            (SiteKind::Reference, node, None)
        }
        _ => return None,
    };
    let qualified = qualify(family, callee, src, scope)?;
    // tree-sitter-typescript parses `await f<T>(x)` as a call of `await f`: the callee an SDK
    // rewrite replaces is `f`, and the `await` stays.
    let mut replaced = callee;
    while replaced.kind() == "await_expression" {
        let mut c = replaced.walk();
        let Some(inner) = replaced.named_children(&mut c).next() else { break };
        replaced = inner;
    }
    Some(Site {
        kind,
        qualified,
        start: node.start_byte(),
        end: node.end_byte(),
        callee_start: replaced.start_byte(),
        callee_end: replaced.end_byte(),
        args: args(arguments, src),
    })
}

/// Whether a Python `def` or `class` is a method or nested class: its body is a class's
/// (decorators aside).
fn is_method(node: Node<'_>) -> bool {
    let mut parent = node.parent();
    if parent.is_some_and(|p| p.kind() == "decorated_definition") {
        parent = parent.and_then(|p| p.parent());
    }
    parent.is_some_and(|p| p.kind() == "block" && p.parent().is_some_and(|c| c.kind() == "class_definition"))
}

/// Whether a Python identifier is read as a value: not part of an import, a definition, a
/// parameter or an assignment target, and not a callee or an attribute's object (those are
/// sites of their own).
fn is_python_value<'t>(node: Node<'t>, parent: Node<'t>) -> bool {
    if matches!(
        parent.kind(),
        "attribute"
            | "dotted_name"
            | "aliased_import"
            | "import_statement"
            | "import_from_statement"
            | "parameters"
            | "lambda_parameters"
            | "typed_parameter"
            | "global_statement"
            | "nonlocal_statement"
            | "as_pattern_target"
            | "pattern_list"
            | "tuple_pattern"
            | "list_pattern"
    ) {
        return false;
    }
    !["function", "left", "name", "alias"].iter().any(|field| parent.child_by_field_name(field) == Some(node))
}

/// Calls inside a Rust macro's arguments (`println!("{}", env::var("X")?)`, `tokio::join!(…)`),
/// which tree-sitter leaves as flat token trees: a path `a::b::c` followed by a `(…)` group, and
/// not preceded by `.` (a method), is a call. The path's head resolves through `use` as anywhere
/// else. Arguments are split at top-level commas; only single literals are kept.
fn macro_sites(tree: Node<'_>, src: &[u8], scope: &Scope, out: &mut Vec<Site>) {
    let mut cursor = tree.walk();
    let tokens: Vec<Node<'_>> = tree.children(&mut cursor).collect();
    // The path being read, whether the next token may extend it (after `::`), and whether it
    // follows a `.`.
    let mut path: Vec<Node<'_>> = Vec::new();
    let mut open = true;
    let mut method = false;
    let mut after_dot = false;
    for token in tokens {
        match token.kind() {
            "identifier" | "self" | "super" | "crate" => {
                if !open {
                    path.clear();
                }
                if path.is_empty() {
                    method = after_dot;
                }
                path.push(token);
                open = false;
            }
            "::" if !open || path.is_empty() => open = true,
            "token_tree" if !path.is_empty() && !open && !method && src.get(token.start_byte()) == Some(&b'(') => {
                let head = text(path[0], src);
                let resolved = match scope.bindings.get(head) {
                    Some(bound) => Some(bound.clone()),
                    None if scope.shadowed.contains(head) => None,
                    None => Some(head.to_string()),
                };
                if let Some(resolved) = resolved {
                    let rest: Vec<&str> = path[1..].iter().map(|n| text(*n, src)).collect();
                    let qualified = std::iter::once(resolved.as_str()).chain(rest).collect::<Vec<_>>().join("::");
                    out.push(Site {
                        kind: SiteKind::Call,
                        qualified,
                        start: path[0].start_byte(),
                        end: token.end_byte(),
                        callee_start: path[0].start_byte(),
                        callee_end: path[path.len() - 1].end_byte(),
                        args: macro_args(token, src),
                    });
                }
                path.clear();
                open = true;
            }
            _ => {
                path.clear();
                open = true;
            }
        }
        after_dot = token.kind() == ".";
    }
}

fn macro_args(group: Node<'_>, src: &[u8]) -> Vec<Arg> {
    let mut cursor = group.walk();
    let mut args = Vec::new();
    let mut current: Vec<Node<'_>> = Vec::new();
    let mut push = |current: &mut Vec<Node<'_>>| {
        if !current.is_empty() {
            let literal = if current.len() == 1 { string_value(current[0], src) } else { None };
            args.push(Arg { keyword: None, literal });
            current.clear();
        }
    };
    for token in group.children(&mut cursor) {
        match token.kind() {
            "(" | ")" => {}
            "," => push(&mut current),
            _ => current.push(token),
        }
    }
    push(&mut current);
    args
}
