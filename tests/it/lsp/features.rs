//! Each feature of the server on `.sym` files, on the fixture workspace.

use serde_json::{json, Value};

use super::{apply_edits, at, covered, Fixture, Server};

const REVIEWER: &str = "agents/reviewer.sym";
const POLICIES: &str = "policies.sym";

#[test]
fn initialize_announces_the_capabilities() {
    let mut server = Server::spawn();
    let result = server.request("initialize", json!({ "processId": null, "rootUri": null, "capabilities": {} })).unwrap();
    insta::assert_snapshot!(serde_json::to_string_pretty(&result).unwrap());
    server.notify("initialized", json!({}));
    assert_eq!(server.stop(), 0);
}

#[test]
fn diagnostics_are_pushed_and_pulled() {
    let fx = Fixture::new();
    let mut server = fx.server();
    let uri = fx.uri(REVIEWER);
    // The open text wins over the file on disk: a misspelt policy and a duplicate agent.
    let text = fx.text(REVIEWER).replace("policies = [reviewing]", "policies = [reviewng]") + "\nagent reviewer() {}\n";
    server.open(&uri, "symbiont", &text);
    let pushed = server.diagnostics(&uri, Some(1));
    insta::assert_snapshot!(fx.render(&pushed));
    let pulled = server.request("textDocument/diagnostic", json!({ "textDocument": { "uri": uri } })).unwrap();
    assert_eq!(pulled["kind"], "full");
    assert_eq!(pulled["items"], pushed, "pull and push agree");
    // Fixing the text clears them, at the new version.
    server.change(&uri, 2, json!([{ "text": fx.text(REVIEWER) }]));
    assert_eq!(server.diagnostics(&uri, Some(2)), json!([]));
}

#[test]
fn hover() {
    let fx = Fixture::new();
    let mut server = fx.server();
    fx.open(&mut server, REVIEWER);
    let mut out = String::new();
    for (file, snippet) in [
        (REVIEWER, "agent revi$0ewer(target"),
        (REVIEWER, "policies = [revi$0ewing]"),
        (REVIEWER, "    de$0ny: [\"file_system_write\""),
        (REVIEWER, "capabilities = [\"read\", \"ana$0lyze\""),
        (REVIEWER, "sand$0box = \"Tier2\""),
        (REVIEWER, "-> Rev$0iew {"),
        (REVIEWER, "agent: \"revi$0ewer\""),
        (REVIEWER, "let di$0ff"),
        (POLICIES, "policy base$0line {"),
    ] {
        let hover = server.request("textDocument/hover", at(&fx.uri(file), fx.at(file, snippet))).unwrap();
        out.push_str(&format!("## {file}: {snippet}\n"));
        if hover.is_null() {
            out.push_str("(none)\n\n");
            continue;
        }
        let text = fx.text(file);
        out.push_str(&format!(
            "range {} `{}`\n{}\n\n",
            fx.render(&hover["range"]),
            covered(&text, &hover["range"]),
            hover["contents"]["value"].as_str().unwrap()
        ));
        assert_eq!(hover["contents"]["kind"], "markdown");
    }
    insta::assert_snapshot!(out);
}

/// Locations with the text they cover, one per line.
fn locations(fx: &Fixture, value: &Value) -> String {
    let mut out = Vec::new();
    for location in value.as_array().unwrap() {
        let uri = location["uri"].as_str().unwrap();
        let relative = uri.strip_prefix(&format!("{}/", super::file_uri(fx.root()))).unwrap();
        out.push(format!(
            "{relative} {} `{}`",
            fx.render(&location["range"]).trim_matches('"'),
            covered(&fx.text(relative), &location["range"])
        ));
    }
    out.join("\n")
}

#[test]
fn definition_and_references_across_files() {
    let fx = Fixture::new();
    let mut server = fx.server();
    fx.open(&mut server, REVIEWER);
    let uri = fx.uri(REVIEWER);
    let definition = server.request("textDocument/definition", at(&uri, fx.at(REVIEWER, "policies = [revi$0ewing]"))).unwrap();
    let of_type = server.request("textDocument/definition", at(&uri, fx.at(REVIEWER, "-> Rev$0iew {"))).unwrap();
    let of_agent = server.request("textDocument/definition", at(&uri, fx.at(REVIEWER, "agent: \"revi$0ewer\""))).unwrap();
    let nothing = server.request("textDocument/definition", at(&uri, fx.at(REVIEWER, "let di$0ff"))).unwrap();
    assert_eq!(nothing, Value::Null);
    let mut params = at(&fx.uri(POLICIES), fx.at(POLICIES, "policy base$0line {"));
    params["context"] = json!({ "includeDeclaration": true });
    let references = server.request("textDocument/references", params.clone()).unwrap();
    params["context"] = json!({ "includeDeclaration": false });
    let without_declaration = server.request("textDocument/references", params).unwrap();
    insta::assert_snapshot!(format!(
        "definition of `reviewing`:\n{}\n\ndefinition of `Review`:\n{}\n\ndefinition of \"reviewer\":\n{}\n\nreferences to `baseline`:\n{}\n\nwithout the declaration:\n{}\n",
        locations(&fx, &definition),
        locations(&fx, &of_type),
        locations(&fx, &of_agent),
        locations(&fx, &references),
        locations(&fx, &without_declaration),
    ));
}

#[test]
fn rename_across_files() {
    let fx = Fixture::new();
    let mut server = fx.server();
    fx.open(&mut server, REVIEWER);
    let uri = fx.uri(REVIEWER);
    let position = fx.at(REVIEWER, "policies = [revi$0ewing]");
    let prepared = server.request("textDocument/prepareRename", at(&uri, position.clone())).unwrap();
    assert_eq!(covered(&fx.text(REVIEWER), &prepared), "reviewing");
    let mut params = at(&uri, position.clone());
    params["newName"] = json!("careful_review");
    let edit = server.request("textDocument/rename", params.clone()).unwrap();
    let mut out = fx.render(&edit) + "\n";
    for (file, edits) in edit["changes"].as_object().unwrap() {
        let relative = file.strip_prefix(&format!("{}/", super::file_uri(fx.root()))).unwrap();
        out.push_str(&format!("\n--- {relative} after the rename\n{}", apply_edits(&fx.text(relative), edits)));
    }
    insta::assert_snapshot!(out);

    // A quoted reference renames inside its quotes.
    let quoted = fx.at(REVIEWER, "agent: \"revi$0ewer\"");
    let prepared = server.request("textDocument/prepareRename", at(&uri, quoted.clone())).unwrap();
    assert_eq!(covered(&fx.text(REVIEWER), &prepared), "reviewer");
    let mut params = at(&uri, quoted);
    params["newName"] = json!("critic");
    let edit = server.request("textDocument/rename", params).unwrap();
    let renamed = apply_edits(&fx.text(REVIEWER), &edit["changes"][&uri]);
    assert!(renamed.contains("agent critic(target") && renamed.contains("agent: \"critic\""), "{renamed}");

    // Nothing to rename; an invalid name; a name taken.
    let nothing = server.request("textDocument/prepareRename", at(&uri, fx.at(REVIEWER, "let di$0ff"))).unwrap();
    assert_eq!(nothing, Value::Null);
    let mut params = at(&uri, position);
    params["newName"] = json!("not a name");
    let error = server.request("textDocument/rename", params.clone()).unwrap_err();
    assert_eq!(error["code"], -32803);
    assert_eq!(error["message"], "`not a name` is not a valid name");
    params["newName"] = json!("baseline");
    let error = server.request("textDocument/rename", params).unwrap_err();
    assert_eq!(error["message"], "a policy named `baseline` already exists");
}

fn labels(completion: &Value) -> Vec<String> {
    completion.as_array().map(|items| items.iter().map(|i| i["label"].as_str().unwrap().to_string()).collect()).unwrap_or_default()
}

#[test]
fn completion() {
    let fx = Fixture::new();
    let mut server = fx.server();
    let uri = fx.uri(REVIEWER);
    let text = fx.text(REVIEWER).replace("policies = [reviewing]", "policies = [reviewing, ]");
    server.open(&uri, "symbiont", &text);
    server.diagnostics(&uri, Some(1));
    let complete = |server: &mut Server, snippet: &str| {
        let position = super::position(&text, super::find_cursor(&text, snippet));
        server.request("textDocument/completion", at(&uri, position)).unwrap()
    };
    let policies = complete(&mut server, "policies = [reviewing, $0]");
    assert_eq!(labels(&policies), ["baseline", "reviewing"]);
    assert_eq!(policies[0]["kind"], 8, "policies are interfaces");
    let operations = labels(&complete(&mut server, "capabilities = [\"read\", $0"));
    assert!(operations.iter().any(|o| o == "network_access") && operations.iter().any(|o| o == "file_read"), "{operations:?}");
    let rules = labels(&complete(&mut server, "    policy local_rules {\n$0"));
    assert_eq!(rules, ["allow:", "deny:", "require:", "audit:", "conditions:"]);
    let sandbox = labels(&complete(&mut server, "sandbox = \"$0Tier2"));
    assert_eq!(sandbox, ["Tier1", "Tier2", "Tier3", "auto"]);
    let items = labels(&complete(&mut server, "}\n$0\ntype Review"));
    insta::assert_snapshot!(format!("after an item: {items:?}\nin a policies list: {}", fx.render(&policies)));
}

/// Completion in a list, at each place a name can go: before an existing element, between two,
/// after the last, with a word typed. Each case: the text of the fixture's `.sym` to change, what
/// it becomes (with the cursor as `$0`), and the item chosen. The chosen item applied (its
/// `textEdit`, else its label at the cursor, as a client does) must leave a file without syntax
/// errors; the snapshot shows the line it makes.
const LIST_CASES: &[(&str, &str, &str)] = &[
    ("capabilities = [\"read\"", "capabilities = [$0\"read\"", "network_access"),
    ("capabilities = [\"read\"", "capabilities = [ $0 \"read\"", "network_access"),
    ("\"read\", \"analyze\"", "\"read\", $0\"analyze\"", "network_access"),
    ("\"file_read\"]\n    policies", "\"file_read\"$0]\n    policies", "network_access"),
    ("capabilities = [\"read\"", "capabilities = [netw$0\"read\"", "network_access"),
    ("capabilities = [\"read\"", "capabilities = [\"netw$0\", \"read\"", "network_access"),
    ("allow: [\"file_read\"]", "allow: [$0\"file_read\"]", "read"),
    ("deny: [\"file_system_write\"", "deny: [$0\"file_system_write\"", "network_access"),
    ("policies = [reviewing]", "policies = [$0reviewing]", "baseline"),
    ("policies = [reviewing]", "policies = [reviewing$0]", "baseline"),
    ("policies = [reviewing]", "policies = [base$0 reviewing]", "baseline"),
];

#[test]
fn completion_in_a_list_before_an_existing_name() {
    let fx = Fixture::new();
    let mut server = fx.server();
    let uri = fx.uri(REVIEWER);
    let original = fx.text(REVIEWER);
    server.open(&uri, "symbiont", &original);
    server.diagnostics(&uri, Some(1));
    let mut out = String::new();
    for (version, (find, marked, choice)) in (2..).zip(LIST_CASES) {
        let (replacement, cursor) = super::cursors(marked);
        assert!(original.contains(find), "{find}");
        let text = original.replacen(find, &replacement, 1);
        let cursor = original.find(find).unwrap() + cursor[0];
        server.change(&uri, version, json!([{ "text": text }]));
        let completion = server.request("textDocument/completion", at(&uri, super::position(&text, cursor))).unwrap();
        let item = completion
            .as_array()
            .and_then(|items| items.iter().find(|i| i["label"] == *choice))
            .unwrap_or_else(|| panic!("{marked}: no `{choice}` in {completion}"));
        let applied = match item.get("textEdit") {
            Some(edit) => apply_edits(&text, &json!([edit])),
            None => format!("{}{}{}", &text[..cursor], choice, &text[cursor..]),
        };
        let line = applied.lines().nth(text[..cursor].matches('\n').count()).unwrap().trim().to_string();
        let parse = symbiont_syntax::parse(&applied);
        assert!(parse.errors().is_empty(), "{marked} then `{choice}`: {line}\n{:?}", parse.errors());
        out.push_str(&format!("{marked}  →  {line}\n"));
    }
    insta::assert_snapshot!(out);
}

#[test]
fn document_and_workspace_symbols() {
    let fx = Fixture::new();
    let mut server = fx.server();
    fx.open(&mut server, REVIEWER);
    let symbols = server.request("textDocument/documentSymbol", json!({ "textDocument": { "uri": fx.uri(REVIEWER) } })).unwrap();
    let workspace = server.request("workspace/symbol", json!({ "query": "rev" })).unwrap();
    let all = server.request("workspace/symbol", json!({ "query": "" })).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 5, "{all}");
    insta::assert_snapshot!(format!(
        "document symbols:\n{}\n\nworkspace symbols matching `rev`:\n{}",
        fx.render(&symbols),
        fx.render(&workspace)
    ));
}

/// Semantic tokens decoded: `line:col length type[.modifier…] text`, by the legend the server
/// announces (`initialize_announces_the_capabilities`).
fn decode_tokens(text: &str, data: &Value) -> Vec<String> {
    let legend = ["keyword", "type", "function", "variable", "property", "string", "number", "comment", "operator", "class", "operation"];
    let modifiers = ["declaration", "definition"];
    let data: Vec<u64> = data.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    let (mut line, mut col) = (0, 0);
    let mut out = Vec::new();
    for token in data.chunks(5) {
        if token[0] > 0 {
            line += token[0];
            col = token[1];
        } else {
            col += token[1];
        }
        let start = super::offset(text, line as usize, col as usize);
        let end = super::offset(text, line as usize, (col + token[2]) as usize);
        let mut kind = legend[token[3] as usize].to_string();
        for (bit, modifier) in modifiers.iter().enumerate() {
            if token[4] & (1 << bit) != 0 {
                kind.push_str(&format!(".{modifier}"));
            }
        }
        out.push(format!("{line}:{col} {} {kind} `{}`", token[2], &text[start..end]));
    }
    out
}

#[test]
fn semantic_tokens_full_and_range() {
    let fx = Fixture::new();
    let mut server = fx.server();
    fx.open(&mut server, REVIEWER);
    let uri = fx.uri(REVIEWER);
    let text = fx.text(REVIEWER);
    let full = server.request("textDocument/semanticTokens/full", json!({ "textDocument": { "uri": uri } })).unwrap();
    let full = decode_tokens(&text, &full["data"]);
    let range = json!({ "start": { "line": 7, "character": 0 }, "end": { "line": 10, "character": 0 } });
    let ranged = server.request("textDocument/semanticTokens/range", json!({ "textDocument": { "uri": uri }, "range": range })).unwrap();
    let ranged = decode_tokens(&text, &ranged["data"]);
    assert!(!ranged.is_empty() && ranged.iter().all(|t| full.contains(t)), "range tokens are full tokens: {ranged:?}");
    assert!(ranged.iter().all(|t| (7..=10).contains(&t.split(':').next().unwrap().parse::<u32>().unwrap())));
    insta::assert_snapshot!(full.join("\n"));
}

/// Operations in each form the policy engine reads (a string, a name, a call's callee, a `for`
/// qualifier's), never a guard's names; a function's and a policy's defining names.
#[test]
fn semantic_tokens_of_operations_and_definitions() {
    let fx = Fixture::new();
    let text = "function score(x: int) -> int {\n    return x;\n}\n\npolicy guarded extends baseline {\n    deny: invoke_tool(tool) if tool.name == \"Bash\"\n    allow: [file_read, \"read\"]\n    require: legal_authorization for network_access\n}\n";
    fx.write("more.sym", text);
    let mut server = fx.server();
    fx.open(&mut server, "more.sym");
    let full = server.request("textDocument/semanticTokens/full", json!({ "textDocument": { "uri": fx.uri("more.sym") } })).unwrap();
    insta::assert_snapshot!(decode_tokens(text, &full["data"]).join("\n"));
}

#[test]
fn formatting_whole_file_and_range() {
    let fx = Fixture::new();
    let messy = "policy a {\n        deny: [\"network_access\"]\n}\n\n\n\npolicy   b extends a {\nallow: [\"read\"]\n}\n";
    fx.write("messy.sym", messy);
    let mut server = fx.server();
    fx.open(&mut server, "messy.sym");
    let uri = fx.uri("messy.sym");
    let options = json!({ "tabSize": 4, "insertSpaces": true });
    let edits = server.request("textDocument/formatting", json!({ "textDocument": { "uri": uri }, "options": options })).unwrap();
    let formatted = apply_edits(messy, &edits);
    // Only the first policy's lines: the second keeps its layout.
    let range = json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 2, "character": 1 } });
    let ranged = server
        .request("textDocument/rangeFormatting", json!({ "textDocument": { "uri": uri }, "range": range, "options": options }))
        .unwrap();
    let range_formatted = apply_edits(messy, &ranged);
    insta::assert_snapshot!(format!("edits: {}\n--- formatted\n{formatted}--- lines 0-2 formatted\n{range_formatted}", fx.render(&edits)));
    // Formatting a formatted file changes nothing; a file with syntax errors is left alone.
    server.change(&uri, 2, json!([{ "text": formatted }]));
    server.diagnostics(&uri, Some(2));
    let again = server.request("textDocument/formatting", json!({ "textDocument": { "uri": uri }, "options": options })).unwrap();
    assert_eq!(again, json!([]));
    server.change(&uri, 3, json!([{ "text": "policy {" }]));
    server.diagnostics(&uri, Some(3));
    let broken = server.request("textDocument/formatting", json!({ "textDocument": { "uri": uri }, "options": options })).unwrap();
    assert_eq!(broken, Value::Null);
}

#[test]
fn folding_ranges() {
    let fx = Fixture::new();
    let mut server = fx.server();
    fx.open(&mut server, REVIEWER);
    let folds = server.request("textDocument/foldingRange", json!({ "textDocument": { "uri": fx.uri(REVIEWER) } })).unwrap();
    let text = fx.text(REVIEWER);
    let lines: Vec<&str> = text.lines().collect();
    let out: Vec<String> = folds
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let (start, end) = (f["startLine"].as_u64().unwrap() as usize, f["endLine"].as_u64().unwrap() as usize);
            format!("{start}-{end} {}: {} … {}", f["kind"].as_str().unwrap(), lines[start].trim(), lines[end].trim())
        })
        .collect();
    insta::assert_snapshot!(out.join("\n"));
}

/// Code actions as `kind: title (preferred) [diagnostic code]`, with their edits.
pub(super) fn actions(fx: &Fixture, actions: &Value) -> String {
    let mut out = String::new();
    for action in actions.as_array().unwrap() {
        let codes: Vec<String> = action["diagnostics"]
            .as_array()
            .map(|ds| ds.iter().map(|d| d["code"].as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        out.push_str(&format!(
            "- {}: {}{}{}\n  edit: {}\n",
            action["kind"].as_str().unwrap(),
            action["title"].as_str().unwrap(),
            if action["isPreferred"] == json!(true) { " (preferred)" } else { "" },
            if codes.is_empty() { String::new() } else { format!(" {codes:?}") },
            serde_json::to_string(&fx.normalize(&action["edit"])).unwrap(),
        ));
    }
    out
}

#[test]
fn code_actions_fix_and_refactor() {
    let fx = Fixture::new();
    let mut server = fx.server();
    let uri = fx.uri(REVIEWER);
    let text = fx.text(REVIEWER).replace("policies = [reviewing]", "policies = [reviewng]");
    server.open(&uri, "symbiont", &text);
    let diagnostics = server.diagnostics(&uri, Some(1));
    let typo = super::position(&text, super::find_cursor(&text, "[revi$0ewng]"));
    let request = |server: &mut Server, position: &Value, only: Option<Value>| {
        let mut context = json!({ "diagnostics": diagnostics });
        if let Some(only) = only {
            context["only"] = only;
        }
        server
            .request(
                "textDocument/codeAction",
                json!({ "textDocument": { "uri": uri }, "range": { "start": position, "end": position }, "context": context }),
            )
            .unwrap()
    };
    let fixes = request(&mut server, &typo, Some(json!(["quickfix"])));
    // The fix carries the diagnostic it fixes, as the client published it.
    let typo = diagnostics.as_array().unwrap().iter().find(|d| d["code"] == "SYM0102").unwrap();
    assert_eq!(&fixes[0]["diagnostics"][0], typo);
    let inline = super::position(&text, super::find_cursor(&text, "policy local_$0rules"));
    let refactors = request(&mut server, &inline, Some(json!(["refactor"])));
    let extract = request(&mut server, &inline, Some(json!(["refactor.extract"])));
    assert_eq!(extract.as_array().unwrap().len(), 1);
    let extracted = apply_edits(&text, &extract[0]["edit"]["changes"][&uri]);
    insta::assert_snapshot!(format!(
        "on the misspelt policy, quick fixes:\n{}\non the inline policy, refactors:\n{}\n--- after extracting\n{extracted}",
        actions(&fx, &fixes),
        actions(&fx, &refactors)
    ));
}

#[test]
fn code_lens_runs_no_agent() {
    let fx = Fixture::new();
    let mut server = fx.server();
    fx.open(&mut server, REVIEWER);
    let lenses = server.request("textDocument/codeLens", json!({ "textDocument": { "uri": fx.uri(REVIEWER) } })).unwrap();
    insta::assert_snapshot!(fx.render(&lenses));
    let command = &lenses[0]["command"];
    assert_eq!(command["command"], "symbiont.runAgent");
    assert_eq!(command["arguments"][0], "reviewer");
    // A run that cannot start says why (here: no such agent); `lsp/run.rs` runs one for real.
    crate::cli::binary();
    let error = server
        .request("workspace/executeCommand", json!({ "command": command["command"], "arguments": ["nobody", command["arguments"][1]] }))
        .unwrap_err();
    assert_eq!(error["code"], -32803);
    assert!(error["message"].as_str().unwrap().contains("no agent `nobody`"), "{error}");
    let unknown = server.request("workspace/executeCommand", json!({ "command": "symbiont.nothing" })).unwrap_err();
    assert_eq!(unknown["code"], -32602);
}
