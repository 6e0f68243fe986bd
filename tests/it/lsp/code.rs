//! Agent code (Rust, Python, JavaScript, TypeScript): its findings as diagnostics, the deciding
//! rule on hover, the fixes as code actions — the `.sym` side as a cross-file edit.

use serde_json::json;

use super::{apply_edits, at, features::actions, Fixture};

const PY: &str = "agents/reviewer.py";

#[test]
fn python_findings_hover_and_fixes() {
    let fx = Fixture::new();
    let mut server = fx.server();
    let uri = fx.uri(PY);
    let diagnostics = fx.open(&mut server, PY);
    let hover = server.request("textDocument/hover", at(&uri, fx.at(PY, "requests.g$0et(target)"))).unwrap();
    let nothing = server.request("textDocument/hover", at(&uri, fx.at(PY, "def rev$0iew"))).unwrap();
    assert_eq!(nothing, serde_json::Value::Null);
    let position = fx.at(PY, "with op$0en(");
    let fixes = server
        .request(
            "textDocument/codeAction",
            json!({ "textDocument": { "uri": uri }, "range": { "start": position, "end": position }, "context": { "diagnostics": diagnostics } }),
        )
        .unwrap();
    insta::assert_snapshot!(format!(
        "diagnostics:\n{}\n\nhover on `requests.get`:\n{}\n{}\n\nfixes on `open(…, \"w\")`:\n{}",
        fx.render(&diagnostics),
        fx.render(&hover["range"]),
        hover["contents"]["value"].as_str().unwrap(),
        actions(&fx, &fixes)
    ));

    // The client applies the `.sym` fix: the deny goes, and with it the deciding rule — what
    // decides now is the default deny, whose fix allows the operation in the agent's policy.
    let sym_uri = fx.uri("agents/reviewer.sym");
    let sym_text = fx.text("agents/reviewer.sym");
    let edited = apply_fix(&fixes, "Remove", &sym_uri, &sym_text);
    assert!(edited.contains("deny: [\"spawn_process\"]"), "{edited}");
    server.open(&sym_uri, "symbiont", &edited);
    let after = server.diagnostics_until(&uri, |ds| ds.to_string().contains("(default deny)"));
    let fixes = server
        .request(
            "textDocument/codeAction",
            json!({ "textDocument": { "uri": uri }, "range": { "start": position, "end": position }, "context": { "diagnostics": after } }),
        )
        .unwrap();
    let allowed = apply_fix(&fixes, "Allow", &sym_uri, &edited);
    assert!(allowed.contains("allow: [\"file_read\", \"file_system_write\"]"), "{allowed}");
    server.change(&sym_uri, 2, json!([{ "text": allowed }]));
    // Allowed now, but not declared in `capabilities`: a warning.
    let after = server.diagnostics_until(&uri, |ds| !ds.to_string().contains("(default deny)"));
    assert_eq!(codes(&after), ["SYM0301", "SYM0402"], "{after}");
}

/// The text of a `.sym` file after the fix whose title starts with `title`.
fn apply_fix(fixes: &serde_json::Value, title: &str, sym_uri: &str, text: &str) -> String {
    let fix = fixes
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["title"].as_str().unwrap().starts_with(title))
        .unwrap_or_else(|| panic!("a fix `{title}…` in {fixes}"));
    assert_eq!(fix["kind"], "quickfix");
    apply_edits(text, &fix["edit"]["changes"][sym_uri])
}

#[test]
fn rust_javascript_and_typescript_findings() {
    let fx = Fixture::new();
    fx.write("tools/fetch.rs", "async fn fetch(url: &str) {\n    let body = reqwest::get(url).await;\n}\n");
    fx.write("tools/fetch.js", "// 𝄞 é\nconst r = fetch(\"https://example.com\");\n");
    fx.write(
        "tools/fetch.ts",
        "import axios from \"axios\";\nexport async function go(): Promise<void> {\n  await axios.get(\"https://example.com\");\n}\n",
    );
    let mut server = fx.server();
    let mut out = String::new();
    for file in ["tools/fetch.rs", "tools/fetch.js", "tools/fetch.ts"] {
        let diagnostics = fx.open(&mut server, file);
        let ranges: Vec<String> = diagnostics.as_array().unwrap().iter().map(|d| super::covered(&fx.text(file), &d["range"])).collect();
        out.push_str(&format!("{file}: {}\ncovering {ranges:?}\n", fx.render(&diagnostics)));
        // Features of the language's tree are empty on code.
        let uri = fx.uri(file);
        for method in ["textDocument/documentSymbol", "textDocument/foldingRange", "textDocument/codeLens"] {
            assert_eq!(server.request(method, json!({ "textDocument": { "uri": uri } })).unwrap(), json!([]), "{method} on {file}");
        }
        let tokens = server.request("textDocument/semanticTokens/full", json!({ "textDocument": { "uri": uri } })).unwrap();
        assert_eq!(tokens["data"], json!([]));
        let format = server.request(
            "textDocument/formatting",
            json!({ "textDocument": { "uri": uri }, "options": { "tabSize": 4, "insertSpaces": true } }),
        );
        assert_eq!(format.unwrap(), serde_json::Value::Null);
    }
    insta::assert_snapshot!(out);
}

pub(super) fn codes(diagnostics: &serde_json::Value) -> Vec<String> {
    diagnostics.as_array().unwrap().iter().map(|d| d["code"].as_str().unwrap().to_string()).collect()
}
