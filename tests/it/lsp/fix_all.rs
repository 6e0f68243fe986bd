//! Fix on save: the `source.fixAll.symbiont` code action applies every fix that needs no review to
//! a whole document, `.sym` or agent code, exactly as `symbiont check --fix` applies them.

use std::process::Command;

use serde_json::{json, Value};

use super::{apply_edits, Fixture, Server};

const SYM: &str = "agents/reviewer.sym";
const PY: &str = "agents/reviewer.py";

/// The code actions of a document for `only` (none: the client asks for every kind).
fn code_actions(server: &mut Server, uri: &str, only: Option<Value>) -> Vec<Value> {
    let mut context = json!({ "diagnostics": [] });
    if let Some(only) = only {
        context["only"] = only;
    }
    let start = json!({ "line": 0, "character": 0 });
    let params = json!({ "textDocument": { "uri": uri }, "range": { "start": start, "end": start }, "context": context });
    server.request("textDocument/codeAction", params).unwrap().as_array().unwrap().clone()
}

fn is_source(action: &Value) -> bool {
    action["kind"].as_str().unwrap().starts_with("source")
}

#[test]
fn fix_all_applies_every_safe_fix_as_check_fix_does() {
    let fx = Fixture::new();
    // Two misspelt names in the `.sym` (each with a safe fix); the Python file's `requests.get`
    // has a safe SDK rewrite and `open(…, "w")` only fixes that need review.
    let sym = fx.text(SYM).replace("policies = [reviewing]", "policies = [reviewng]").replace("agent: \"reviewer\"", "agent: \"reviewr\"");
    fx.write(SYM, &sym);
    let py = fx.text(PY);
    let mut server = fx.server();
    let mut out = String::new();
    let mut fixed = Vec::new();
    for (file, text) in [(SYM, &sym), (PY, &py)] {
        let uri = fx.uri(file);
        server.open(&uri, super::language_of(file), text);
        server.diagnostics(&uri, Some(1));
        let actions = code_actions(&mut server, &uri, Some(json!(["source.fixAll"])));
        assert_eq!(actions.len(), 1, "{file}: {actions:#?}");
        let action = &actions[0];
        assert_eq!(action["kind"], "source.fixAll.symbiont");
        let changes = action["edit"]["changes"].as_object().unwrap();
        assert_eq!(changes.keys().collect::<Vec<_>>(), [&uri], "{file}: the document's own fixes");
        let after = apply_edits(text, &changes[&uri]);
        out.push_str(&format!("## {file}: {}\n{after}\n", action["title"].as_str().unwrap()));
        // Asked for by kind only: neither among the fixes at a position nor unasked.
        for only in [None, Some(json!(["quickfix"])), Some(json!(["refactor"]))] {
            let others = code_actions(&mut server, &uri, only.clone());
            assert!(!others.iter().any(is_source), "{file}, only {only:?}: {others:#?}");
        }
        assert_eq!(code_actions(&mut server, &uri, Some(json!(["source"]))), actions, "{file}: `source` covers it");
        // Applied, nothing is left that is safe to fix.
        server.change(&uri, 2, json!([{ "text": after }]));
        server.diagnostics(&uri, Some(2));
        assert_eq!(code_actions(&mut server, &uri, Some(json!(["source.fixAll.symbiont"]))), Vec::<Value>::new(), "{file}");
        fixed.push((file, after));
    }
    insta::assert_snapshot!(out);

    // `symbiont check --fix` on the same files makes the same text.
    let check = Command::new(crate::cli::binary()).args(["check", "--fix", "."]).current_dir(fx.root()).output().unwrap();
    assert!(String::from_utf8_lossy(&check.stderr).contains("applied 3 safe fixes"), "{}", String::from_utf8_lossy(&check.stderr));
    for (file, after) in fixed {
        assert_eq!(fx.text(file), after, "{file}: the editor's fix-all and check --fix agree");
    }
    assert_eq!(server.stop(), 0);
}
