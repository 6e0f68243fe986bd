//! The generator in the editor: declaring an operation the code performs, "Generate
//! implementation" on an agent without code (files created and the `.sym` edited in one workspace
//! edit), and snippets for a new agent and a new policy.

use serde_json::{json, Value};

use super::{apply_edits, at, file_uri, Fixture, Server};

/// A workspace with an agent whose code reads the environment without declaring it, and an agent
/// without code.
fn fixture() -> Fixture {
    let fx = Fixture::empty();
    fx.write("symbiont.toml", "[policy]\nbase = \"baseline\"\n");
    fx.write("policies.sym", "policy baseline {\n    deny: [\"spawn_process\"]\n}\n");
    fx.write(
        "agents/notes.sym",
        "agent notes(input: String) -> String {\n    capabilities = [\"file_read\"]\n    implementation = [\"notes.py\"]\n\n    policy own {\n        allow: [\"file_read\", \"env_access\"]\n    }\n}\n",
    );
    fx.write("agents/notes.py", "import os\n\nprint(os.environ[\"HOME\"])\n");
    fx.write("bare/bare.sym", "agent bare(input: String) -> String {\n    capabilities = [\"file_read\", \"env_access\"]\n\n    policy own {\n        allow: [\"file_read\", \"env_access\"]\n    }\n}\n");
    fx
}

fn code_actions(server: &mut Server, uri: &str, position: &Value, context: Value) -> Value {
    let params = json!({ "textDocument": { "uri": uri }, "range": { "start": position, "end": position }, "context": context });
    server.request("textDocument/codeAction", params).unwrap()
}

fn titles(actions: &Value) -> Vec<&str> {
    actions.as_array().unwrap().iter().map(|a| a["title"].as_str().unwrap()).collect()
}

#[test]
fn an_undeclared_operation_is_declared_by_a_quick_fix() {
    let fx = fixture();
    let mut server = fx.server();
    let (py, sym) = (fx.uri("agents/notes.py"), fx.uri("agents/notes.sym"));
    let diagnostics = fx.open(&mut server, "agents/notes.py");
    assert!(diagnostics.to_string().contains("SYM0402"), "{diagnostics}");
    let actions = code_actions(&mut server, &py, &fx.at("agents/notes.py", "os.env$0iron"), json!({ "diagnostics": diagnostics }));
    let declare = actions.as_array().unwrap().iter().find(|a| a["title"] == "Add `env_access` to the capabilities of agent `notes`");
    let declare = declare.unwrap_or_else(|| panic!("no fix declaring `env_access` in {actions}"));
    assert_eq!((&declare["kind"], &declare["diagnostics"][0]["code"]), (&json!("quickfix"), &json!("SYM0402")));
    let edited = apply_edits(&fx.text("agents/notes.sym"), &declare["edit"]["changes"][&sym]);
    assert!(edited.contains("    capabilities = [\"file_read\", \"env_access\"]\n"), "{edited}");
    server.open(&sym, "symbiont", &edited);
    let after = server.diagnostics_until(&py, |ds| !ds.to_string().contains("SYM0402"));
    assert_eq!(after, json!([]));
}

#[test]
fn the_capabilities_list_offers_what_the_code_does() {
    let fx = fixture();
    let code =
        "import os\nimport subprocess\n\nprint(os.environ[\"HOME\"])\nopen(\"out.txt\", \"w\").write(\"x\")\nsubprocess.run([\"ls\"])\n";
    fx.write("agents/notes.py", code);
    let mut server = fx.server();
    let (py, sym) = (fx.uri("agents/notes.py"), fx.uri("agents/notes.sym"));
    fx.open(&mut server, "agents/notes.sym");
    let actions = code_actions(&mut server, &sym, &fx.at("agents/notes.sym", "capabil$0ities"), json!({ "diagnostics": [] }));
    let offered: Vec<&str> = titles(&actions).into_iter().filter(|t| t.starts_with("Add")).collect();
    // `spawn_process` is denied by the base policy: no edit of the agent makes it legal.
    assert_eq!(
        offered,
        [
            "Add `env_access` to the capabilities of agent `notes`",
            "Add `file_system_write` to the capabilities of agent `notes` and allow it in policy `own`"
        ]
    );
    // On the call, the same edit is a quick fix beside the allow alone.
    server.open(&py, "python", code);
    let diagnostics = server.diagnostics(&py, Some(1));
    let on_call = code_actions(&mut server, &py, &fx.at("agents/notes.py", "op$0en("), json!({ "diagnostics": diagnostics }));
    let on_call: Vec<&str> = titles(&on_call).into_iter().filter(|t| t.starts_with("Add") || t.starts_with("Allow")).collect();
    assert_eq!(
        on_call,
        [
            "Allow `file_system_write` in policy `own`",
            "Add `file_system_write` to the capabilities of agent `notes` and allow it in policy `own`"
        ]
    );
    let write = actions.as_array().unwrap().iter().find(|a| a["title"].as_str().unwrap().contains("file_system_write")).unwrap();
    let edited = apply_edits(&fx.text("agents/notes.sym"), &write["edit"]["changes"][&sym]);
    insta::assert_snapshot!(edited);
    server.change(&sym, 2, json!([{ "text": edited }]));
    let after = server.diagnostics_until(&py, |ds| !ds.to_string().contains("file_system_write"));
    assert!(after.to_string().contains("spawn_process"), "{after}");
}

#[test]
fn an_agent_without_code_gets_generate_implementation() {
    let fx = fixture();
    let creating = json!({ "workspace": { "workspaceEdit": { "documentChanges": true, "resourceOperations": ["create"] } } });
    let mut server = Server::start_with(Some(fx.root()), creating, Value::Null);
    let sym = fx.uri("bare/bare.sym");
    fx.open(&mut server, "bare/bare.sym");
    let position = fx.at("bare/bare.sym", "agent ba$0re");
    let actions = code_actions(&mut server, &sym, &position, json!({ "diagnostics": [], "only": ["refactor"] }));
    let generate: Vec<&str> = titles(&actions).into_iter().filter(|t| t.starts_with("Generate")).collect();
    assert_eq!(
        generate,
        [
            "Generate implementation in Python",
            "Generate implementation in TypeScript",
            "Generate implementation in JavaScript",
            "Generate implementation in Rust"
        ]
    );
    // The Python one, applied as a client applies it: each file created with its content, then
    // the `.sym` edit.
    let python = &actions.as_array().unwrap().iter().find(|a| a["title"] == "Generate implementation in Python").unwrap()["edit"];
    let mut operations = Vec::new();
    let mut sym_text = fx.text("bare/bare.sym");
    for change in python["documentChanges"].as_array().unwrap() {
        let uri = change["uri"].as_str().or(change["textDocument"]["uri"].as_str()).unwrap();
        let path = fx.root().join(uri.strip_prefix(&format!("{}/", file_uri(fx.root()))).unwrap());
        match change["kind"].as_str() {
            Some(kind) => {
                assert_eq!(change["options"], json!({ "overwrite": false, "ignoreIfExists": false }));
                assert!(!path.exists(), "{} would be overwritten", path.display());
                operations.push(format!("{kind} {}", fx.normalize(&change["uri"]).as_str().unwrap()));
                std::fs::write(&path, "").unwrap();
            }
            None if uri == sym => {
                sym_text = apply_edits(&sym_text, &change["edits"]);
                operations.push(format!("edit {}", fx.normalize(&change["textDocument"]["uri"]).as_str().unwrap()));
            }
            None => {
                std::fs::write(&path, apply_edits("", &change["edits"])).unwrap();
                operations.push(format!("write {}", fx.normalize(&change["textDocument"]["uri"]).as_str().unwrap()));
            }
        }
    }
    std::fs::write(fx.path("bare/bare.sym"), &sym_text).unwrap();
    insta::assert_snapshot!(format!("{}\n--- bare/bare.sym\n{sym_text}", operations.join("\n")));
    // Only what the policy allows gets a function; the whole workspace checks clean.
    let code = fx.text("bare/bare.py");
    assert!(code.contains("def read_file(") && code.contains("def read_env("), "{code}");
    let check = std::process::Command::new(crate::cli::binary()).arg("check").current_dir(fx.root()).output().unwrap();
    assert!(check.status.success(), "{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    // With the implementation listed, it is not offered again.
    server.change(&sym, 2, json!([{ "text": sym_text }]));
    server.diagnostics(&sym, Some(2));
    let again = code_actions(&mut server, &sym, &position, json!({ "diagnostics": [], "only": ["refactor"] }));
    assert!(!titles(&again).iter().any(|t| t.starts_with("Generate")), "{again}");
}

#[test]
fn a_client_that_cannot_create_files_is_not_offered_generate_implementation() {
    let fx = fixture();
    let mut server = fx.server();
    let sym = fx.uri("bare/bare.sym");
    fx.open(&mut server, "bare/bare.sym");
    let actions = code_actions(&mut server, &sym, &fx.at("bare/bare.sym", "agent ba$0re"), json!({ "diagnostics": [] }));
    assert!(!titles(&actions).iter().any(|t| t.starts_with("Generate")), "{actions}");
}

/// A snippet with each placeholder replaced by its default (the first choice), as a user who
/// only presses Tab gets it.
fn expand(snippet: &str) -> String {
    let mut out = String::new();
    let mut rest = snippet;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        rest = &rest[start + 1..];
        if let Some(body) = rest.strip_prefix('{') {
            let end = body.find('}').unwrap();
            let inner = &body[..end];
            let default = match inner.split_once(':') {
                Some((_, default)) => default.to_string(),
                None => inner.split_once('|').map(|(_, choices)| choices.split(',').next().unwrap().to_string()).unwrap_or_default(),
            };
            out.push_str(&default);
            rest = &body[end + 1..];
        } else {
            rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        }
    }
    out + rest
}

#[test]
fn snippets_for_a_new_agent_and_policy() {
    let fx = fixture();
    let snippets = json!({ "textDocument": { "completion": { "completionItem": { "snippetSupport": true } } } });
    let mut server = Server::start_with(Some(fx.root()), snippets, Value::Null);
    let uri = fx.uri("policies.sym");
    let text = fx.text("policies.sym") + "\n";
    server.open(&uri, "symbiont", &text);
    server.diagnostics(&uri, Some(1));
    let end = super::position(&text, text.len());
    let items = server.request("textDocument/completion", at(&uri, end.clone())).unwrap();
    let snippets: Vec<&Value> = items.as_array().unwrap().iter().filter(|i| i["kind"] == 15).collect();
    assert!(snippets.iter().all(|s| s["insertTextFormat"] == 2), "{items}");
    insta::assert_snapshot!(snippets
        .iter()
        .map(|s| format!("{} ({})\n{}", s["label"].as_str().unwrap(), s["detail"].as_str().unwrap(), s["insertText"].as_str().unwrap()))
        .collect::<Vec<_>>()
        .join("\n"));
    // Inserted with their defaults, they check clean.
    let expanded: String = snippets.iter().map(|s| expand(s["insertText"].as_str().unwrap())).collect::<Vec<_>>().join("\n");
    server.change(&uri, 2, json!([{ "text": format!("{text}{expanded}") }]));
    assert_eq!(server.diagnostics(&uri, Some(2)), json!([]), "{expanded}");
    // A client without snippets gets none.
    let mut plain = fx.server();
    plain.open(&uri, "symbiont", &text);
    plain.diagnostics(&uri, Some(1));
    let items = plain.request("textDocument/completion", at(&uri, end)).unwrap();
    assert!(items.as_array().unwrap().iter().all(|i| i["kind"] != 15), "{items}");
}
