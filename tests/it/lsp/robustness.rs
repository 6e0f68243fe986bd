//! What a client can get wrong, and what the protocol makes hard: malformed messages, unknown
//! methods, unknown documents, positions out of range, panics, non-ASCII text (UTF-16 columns),
//! edits sent faster than they are applied, the exit code.

use serde_json::{json, Value};

use super::{at, client::frame, covered, position, Fixture, Server};

/// The server still answers: a request that needs the whole pipeline.
fn still_serving(server: &mut Server) {
    let symbols = server.request("workspace/symbol", json!({ "query": "" })).expect("the server still answers");
    assert!(symbols.is_array());
}

fn next_error(server: &mut Server) -> Value {
    server.wait_for(|m| m.get("error").is_some() && m.get("method").is_none())
}

#[test]
fn malformed_messages_get_error_responses() {
    let mut server = Server::start(None);
    server.send_raw(&frame(b"{not json"));
    let error = next_error(&mut server);
    assert_eq!((error["id"].clone(), error["error"]["code"].clone()), (Value::Null, json!(-32700)), "{error}");
    still_serving(&mut server);

    server.send_raw(&frame(b"[1, 2]"));
    assert_eq!(next_error(&mut server)["error"]["code"], -32600);
    server.send_raw(&frame(br#"{"jsonrpc":"2.0","id":41}"#));
    let error = next_error(&mut server);
    assert_eq!((error["id"].clone(), error["error"]["code"].clone()), (json!(41), json!(-32600)), "{error}");
    server.send_raw(&frame(br#"{"id":42,"method":"workspace/symbol","params":{"query":""}}"#));
    assert_eq!(next_error(&mut server)["id"], 42, "a message without `jsonrpc` is refused, with its id");
    server.send_raw(&frame("\"é\u{1d11e}\"".as_bytes()));
    assert_eq!(next_error(&mut server)["error"]["code"], -32600);
    // Headers without a length.
    server.send_raw(b"Content-Type: application/json\r\n\r\n");
    assert_eq!(next_error(&mut server)["error"]["code"], -32700);
    still_serving(&mut server);

    // Wrong parameters for a known method.
    let error = server.request("textDocument/hover", json!({ "textDocument": 3 })).unwrap_err();
    assert_eq!(error["code"], -32602);
    still_serving(&mut server);
    assert_eq!(server.stop(), 0);
}

#[test]
fn unknown_methods() {
    let mut server = Server::start(None);
    let error = server.request("symbiont/noSuchMethod", json!({})).unwrap_err();
    assert_eq!(error["code"], -32601);
    // Unknown notifications are ignored ($/ ones silently, as the protocol says).
    server.notify("$/noSuchNotification", json!({}));
    server.notify("noSuchNotification", json!({}));
    let error = server.request("$/noSuchRequest", json!({})).unwrap_err();
    assert_eq!(error["code"], -32601);
    still_serving(&mut server);
}

#[test]
fn requests_before_initialize_are_refused() {
    let mut server = Server::spawn();
    let error = server.request("textDocument/hover", at("file:///x.sym", json!({ "line": 0, "character": 0 }))).unwrap_err();
    assert_eq!(error["code"], -32002);
}

#[test]
fn unknown_documents_and_positions_out_of_range() {
    let fx = Fixture::new();
    let mut server = fx.server();
    let uri = fx.uri("agents/reviewer.sym");
    fx.open(&mut server, "agents/reviewer.sym");
    // A file neither open nor in the workspace.
    for method in ["textDocument/hover", "textDocument/definition", "textDocument/completion"] {
        let error = server.request(method, at(&fx.uri("nowhere.sym"), json!({ "line": 0, "character": 0 }))).unwrap_err();
        assert_eq!(error["code"], -32602, "{method}: {error}");
        assert!(error["message"].as_str().unwrap().contains("unknown document"), "{error}");
    }
    let error = server.request("textDocument/documentSymbol", json!({ "textDocument": { "uri": "untitled:Untitled-1" } })).unwrap_err();
    assert_eq!(error["code"], -32602);
    let error = server.request("textDocument/diagnostic", json!({ "textDocument": { "uri": "https://example.com/a.sym" } })).unwrap_err();
    assert_eq!(error["code"], -32602);
    // A file of the workspace that is not open answers from its text on disk.
    let hover = server.request("textDocument/hover", at(&fx.uri("policies.sym"), fx.at("policies.sym", "policy base$0line"))).unwrap();
    assert!(hover["contents"]["value"].as_str().unwrap().contains("baseline"));
    // A line past the end is an error; a character past a line's end means its end.
    let error = server.request("textDocument/hover", at(&uri, json!({ "line": 1000, "character": 0 }))).unwrap_err();
    assert_eq!(error["code"], -32602);
    assert_eq!(error["message"], "position 1000:0 is out of range: the document has 25 lines");
    let error = server
        .request("textDocument/semanticTokens/range", json!({ "textDocument": { "uri": uri }, "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 99, "character": 0 } } }))
        .unwrap_err();
    assert_eq!(error["code"], -32602);
    let past_end = server.request("textDocument/hover", at(&uri, json!({ "line": 2, "character": 4000 }))).unwrap();
    assert!(past_end.is_null() || past_end["contents"].is_object());
    let mut params = at(&uri, json!({ "line": 4000, "character": 0 }));
    params["newName"] = json!("x");
    assert_eq!(server.request("textDocument/rename", params).unwrap_err()["code"], -32602);
    // An edit out of range (a client's bug) is clamped, not a crash.
    server.change(
        &uri,
        2,
        json!([{ "range": { "start": { "line": 500, "character": 3 }, "end": { "line": 600, "character": 0 } }, "text": "\n// end\n" }]),
    );
    server.diagnostics(&uri, Some(2));
    still_serving(&mut server);
}

#[test]
fn a_panic_is_an_error_response_and_the_server_goes_on() {
    let mut server = Server::start(None);
    for place in ["async", "blocking"] {
        let error = server.request("symbiont/debugPanic", json!({ "where": place })).unwrap_err();
        assert_eq!(error["code"], -32603, "{error}");
        assert!(error["message"].as_str().unwrap().contains("requested panic"), "{error}");
        still_serving(&mut server);
    }
    assert!(server.is_running());
    assert_eq!(server.stop(), 0);
}

#[test]
fn exit_without_shutdown_exits_with_1() {
    let mut server = Server::start(None);
    server.notify("exit", Value::Null);
    assert_eq!(server.wait_exit(), 1);
    // Closing stdin ends it too.
    let mut server = Server::start(None);
    assert_eq!(server.wait_exit(), 1);
}

/// Astral-plane characters count two UTF-16 units: every position on a line after one is off by
/// one in anything that counts bytes or chars.
#[test]
fn positions_are_utf16() {
    let fx = Fixture::new();
    let mut server = fx.server();
    let uri = fx.uri("agents/reviewer.sym");
    let text = fx.text("agents/reviewer.sym").replace("policies = [reviewing]", "policies = [/* 𝄞é漢 */ reviewng]");
    server.open(&uri, "symbiont", &text);
    let diagnostics = server.diagnostics(&uri, Some(1));
    let typo = diagnostics.as_array().unwrap().iter().find(|d| d["code"] == "SYM0102").expect("the misspelt policy");
    let range = &typo["range"];
    assert_eq!(covered(&text, range), "reviewng");
    // `    policies = [/* ` is 19 units, then 𝄞 (2) é (1) 漢 (1), ` */ `: 27.
    assert_eq!(range["start"], json!({ "line": 4, "character": 27 }));
    // Hover and completion at UTF-16 positions after them.
    let hover = server.request("textDocument/hover", at(&uri, json!({ "line": 4, "character": 29 }))).unwrap();
    assert_eq!(covered(&text, &hover["range"]), "reviewng");
    // An incremental edit after them: fix the typo by inserting `i` at UTF-16 column 33.
    server.change(
        &uri,
        2,
        json!([{ "range": { "start": { "line": 4, "character": 33 }, "end": { "line": 4, "character": 33 } }, "text": "i" }]),
    );
    assert_eq!(server.diagnostics(&uri, Some(2)), json!([]));
    // Replace the astral character itself (two units) with an ASCII one.
    server.change(
        &uri,
        3,
        json!([{ "range": { "start": { "line": 4, "character": 19 }, "end": { "line": 4, "character": 21 } }, "text": "x" }]),
    );
    server.change(
        &uri,
        4,
        json!([{ "range": { "start": { "line": 4, "character": 26 }, "end": { "line": 4, "character": 26 } }, "text": "_" }]),
    );
    let diagnostics = server.diagnostics(&uri, Some(4));
    let expected = text.replace("𝄞", "x").replace("reviewng", "_reviewing");
    let typo = diagnostics.as_array().unwrap().iter().find(|d| d["code"] == "SYM0102").expect("the misspelt policy");
    assert_eq!(covered(&expected, &typo["range"]), "_reviewing", "{diagnostics}");
    // The position of the range's end agrees with the client's own counting.
    assert_eq!(typo["range"]["end"], position(&expected, expected.find("_reviewing]").unwrap() + "_reviewing".len()));
}

/// Edits sent back to back, without waiting: applied in order, each on the text the one before
/// left. The policy name typed one letter at a time comes out whole.
#[test]
fn edits_are_applied_in_arrival_order() {
    let fx = Fixture::new();
    let mut server = fx.server();
    let uri = fx.uri("agents/reviewer.sym");
    let text = fx.text("agents/reviewer.sym").replace("policies = [reviewing]", "policies = [reviewing, ]");
    server.open(&uri, "symbiont", &text);
    server.diagnostics(&uri, Some(1));
    let start = position(&text, super::find_cursor(&text, "[reviewing, $0]"));
    let name = "a_policy_typed_one_letter_at_a_time_without_waiting_for_the_server_in_between";
    for (i, letter) in name.chars().enumerate() {
        let at = json!({ "line": start["line"], "character": start["character"].as_u64().unwrap() + i as u64 });
        server.change(&uri, 2 + i as i64, json!([{ "range": { "start": at, "end": at }, "text": letter.to_string() }]));
    }
    // A request right behind the edits sees all of them.
    let pulled = server.request("textDocument/diagnostic", json!({ "textDocument": { "uri": uri } })).unwrap();
    let message = pulled["items"][0]["message"].as_str().unwrap();
    assert!(message.contains(&format!("`{name}`")), "{message}");
    let last = 1 + name.len() as i64;
    let pushed = server.diagnostics(&uri, Some(last));
    assert_eq!(pushed, pulled["items"]);
}

/// A read whose text changes under it answers `ContentModified` (-32801), deterministically: the
/// test hook `symbiont/debugHold` takes its snapshot and says so, only then is the edit sent, and
/// the hook waits for the edit to cancel the snapshot. The edit is then applied and published,
/// and reads of the new text are answered.
#[test]
fn a_read_overtaken_by_an_edit_is_content_modified() {
    let fx = Fixture::new();
    let mut server = fx.server();
    let uri = fx.uri("agents/reviewer.sym");
    let text = fx.text("agents/reviewer.sym");
    server.open(&uri, "symbiont", &text);
    server.diagnostics(&uri, Some(1));
    let id = server.send_request("symbiont/debugHold", json!({ "textDocument": { "uri": uri } }));
    server.wait_for(|m| m["method"] == "symbiont/debugHolding" && m["params"]["uri"] == uri);
    let end = position(&text, text.len());
    server.change(&uri, 2, json!([{ "range": { "start": end, "end": end }, "text": "\n// edited\n" }]));
    let error = server.response(id).unwrap_err();
    assert_eq!(error["code"], -32801, "{error}");
    // The edit went through: published for its version, and seen by the next read.
    server.diagnostics(&uri, Some(2));
    let pulled = server.request("textDocument/diagnostic", json!({ "textDocument": { "uri": uri } })).unwrap();
    assert!(pulled["items"].is_array(), "{pulled}");
    still_serving(&mut server);
}
