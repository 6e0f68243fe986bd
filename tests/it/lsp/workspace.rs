//! The workspace: its root, the files loaded from disk, changes to files not open in the editor,
//! configuration changes, and the open text winning over the disk's.

use serde_json::json;

use super::{code::codes, Fixture, Server};

const REVIEWER: &str = "agents/reviewer.sym";

fn watched(server: &mut Server, changes: &[(String, u8)]) {
    let changes: Vec<_> = changes.iter().map(|(uri, typ)| json!({ "uri": uri, "type": typ })).collect();
    server.notify("workspace/didChangeWatchedFiles", json!({ "changes": changes }));
}

#[test]
fn registers_file_watchers_when_the_client_can() {
    let fx = Fixture::new();
    let capabilities = json!({ "workspace": { "didChangeWatchedFiles": { "dynamicRegistration": true } } });
    let mut server = Server::start_with(Some(fx.root()), capabilities, serde_json::Value::Null);
    let registration = server.wait_for(|m| m["method"] == "client/registerCapability");
    insta::assert_snapshot!(serde_json::to_string_pretty(&registration["params"]).unwrap());
    // Without the capability, no registration.
    let mut plain = fx.server();
    fx.open(&mut plain, REVIEWER);
    plain.request("workspace/symbol", json!({ "query": "" })).unwrap();
    assert!(plain.server_requests.is_empty(), "{:?}", plain.server_requests);
}

#[test]
fn follows_files_not_open() {
    let fx = Fixture::new();
    let mut server = fx.server();
    let reviewer = fx.uri(REVIEWER);
    assert_eq!(fx.open(&mut server, REVIEWER), json!([]));
    // A policy renamed on disk: the open agent's reference breaks.
    fx.write("policies.sym", &fx.text("policies.sym").replace("policy reviewing", "policy reading"));
    watched(&mut server, &[(fx.uri("policies.sym"), 2)]);
    server.diagnostics_until(&reviewer, |ds| codes(ds).contains(&"SYM0102".to_string()));
    // A new file defines it again.
    fx.write("more/reviewing.sym", "policy reviewing extends baseline {\n    allow: [\"read\", \"analyze\", \"file_read\"]\n}\n");
    watched(&mut server, &[(fx.uri("more/reviewing.sym"), 1)]);
    server.diagnostics_until(&reviewer, |ds| ds == &json!([]));
    // A new file with a duplicate definition: the second in path order hears of it.
    fx.write("more/copy.sym", "policy reviewing {\n    allow: [\"read\"]\n}\n");
    watched(&mut server, &[(fx.uri("more/copy.sym"), 1)]);
    let duplicate = server.diagnostics_until(&fx.uri("more/reviewing.sym"), |ds| !ds.as_array().unwrap().is_empty());
    assert_eq!(codes(&duplicate), ["SYM0101"]);
    // Deleting the copy clears that.
    std::fs::remove_file(fx.path("more/copy.sym")).unwrap();
    watched(&mut server, &[(fx.uri("more/copy.sym"), 3)]);
    server.diagnostics_until(&fx.uri("more/reviewing.sym"), |ds| ds == &json!([]));
    // A deleted directory takes its files along.
    std::fs::remove_dir_all(fx.path("more")).unwrap();
    watched(&mut server, &[(fx.uri("more"), 3)]);
    server.diagnostics_until(&reviewer, |ds| codes(ds).contains(&"SYM0102".to_string()));
}

#[test]
fn follows_the_configuration() {
    let fx = Fixture::new();
    let mut server = fx.server();
    let code = fx.uri("agents/reviewer.py");
    let before = fx.open(&mut server, "agents/reviewer.py");
    assert_eq!(codes(&before), ["SYM0301", "SYM0302"]);
    // No base policy any more: `requests.get` is no longer denied by `baseline`… but `reviewing`
    // extends it, so it still is; a base policy that does not exist is the config's problem.
    fx.write("symbiont.toml", "[policy]\nbase = \"missing\"\n");
    server.notify("workspace/didChangeConfiguration", json!({ "settings": {} }));
    let config = server.diagnostics_until(&fx.uri("symbiont.toml"), |ds| !ds.as_array().unwrap().is_empty());
    insta::assert_snapshot!(fx.render(&config));
    // Through a watched-file event too.
    fx.write("symbiont.toml", "[policy]\nbase = \"baseline\"\n");
    watched(&mut server, &[(fx.uri("symbiont.toml"), 2)]);
    server.diagnostics_until(&fx.uri("symbiont.toml"), |ds| ds == &json!([]));
    // Opened in the editor, its text wins.
    let toml = fx.uri("symbiont.toml");
    server.open(&toml, "toml", "[policy]\nbase = \"nowhere\"\n");
    server.diagnostics_until(&toml, |ds| !ds.as_array().unwrap().is_empty());
    let _ = code;
}

#[test]
fn the_open_text_wins_over_the_disk() {
    let fx = Fixture::new();
    let mut server = fx.server();
    let reviewer = fx.uri(REVIEWER);
    let policies = fx.uri("policies.sym");
    fx.open(&mut server, REVIEWER);
    // Open policies.sym with `reviewing` renamed: the agent's reference breaks.
    server.open(&policies, "symbiont", &fx.text("policies.sym").replace("policy reviewing", "policy reading"));
    server.diagnostics_until(&reviewer, |ds| codes(ds).contains(&"SYM0102".to_string()));
    // A change on disk while it is open is ignored…
    fx.write("policies.sym", "policy nothing {}\n");
    watched(&mut server, &[(policies.clone(), 2)]);
    let hover = server.request("textDocument/hover", super::at(&policies, json!({ "line": 5, "character": 10 }))).unwrap();
    assert!(hover["contents"]["value"].as_str().unwrap().contains("reading"), "{hover}");
    // …until it is closed: then the disk's text is back (here: no `reviewing` either).
    server.notify("textDocument/didClose", json!({ "textDocument": { "uri": policies } }));
    let symbols = server.request("workspace/symbol", json!({ "query": "nothing" })).unwrap();
    assert_eq!(symbols.as_array().unwrap().len(), 1, "{symbols}");
}

#[test]
fn ignored_files_are_not_loaded() {
    let fx = Fixture::new();
    fx.write(".gitignore", "generated/\n");
    fx.write("generated/copy.sym", "policy reviewing {}\n");
    fx.write(".hidden/copy.sym", "policy reviewing {}\n");
    let mut server = fx.server();
    assert_eq!(fx.open(&mut server, "policies.sym"), json!([]), "no duplicate definitions from ignored files");
    let symbols = server.request("workspace/symbol", json!({ "query": "reviewing" })).unwrap();
    assert_eq!(symbols.as_array().unwrap().len(), 1, "{symbols}");
}

#[test]
fn the_root_is_where_symbiont_toml_is() {
    let fx = Fixture::new();
    // The client opens a subdirectory: the workspace is the directory of `symbiont.toml` above it.
    let mut server = Server::start(Some(&fx.path("agents")));
    assert_eq!(fx.open(&mut server, REVIEWER), json!([]), "`reviewing` is found in ../policies.sym");
    // No folder at all: the opened file's nearest `symbiont.toml` decides.
    let mut server = Server::start(None);
    let code = fx.open(&mut server, "agents/reviewer.py");
    assert_eq!(codes(&code), ["SYM0301", "SYM0302"]);
    // Files of that workspace answer without being open.
    let definition = server.request("textDocument/definition", super::at(&fx.uri(REVIEWER), fx.at(REVIEWER, "[revi$0ewing]")));
    assert_eq!(definition.unwrap()[0]["uri"], fx.uri("policies.sym"));
}
