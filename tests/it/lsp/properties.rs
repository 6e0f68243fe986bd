//! Incremental sync is exact: random sequences of incremental edits (UTF-16 ranges, non-ASCII
//! text, several changes per notification) leave the server with the diagnostics a fresh server
//! gives for the final text.

use proptest::{
    collection::vec,
    prelude::*,
    test_runner::{Config, TestRunner},
};
use serde_json::{json, Value};

use super::{position, Fixture, Server};

const FRAGMENTS: &[&str] = &[
    "agent ",
    "policy p ",
    " ",
    "\n",
    "{",
    "}",
    "[",
    "]",
    "\"",
    ",",
    "x",
    "deny: [\"network_access\"]",
    "allow: [\"read\"]",
    "policies = [baseline]",
    "extends reviewing",
    "reviewer",
    "𝄞",
    "é",
    "漢",
    "// 𝄞 comment\n",
    "/*",
    "*/",
    "\r\n",
];

/// One change: replace `len` chars at a char index (both taken modulo the text) with a fragment.
#[derive(Debug, Clone)]
struct Edit {
    at: usize,
    len: usize,
    insert: &'static str,
}

fn edit() -> impl Strategy<Value = Edit> {
    (any::<usize>(), 0..12usize, proptest::sample::select(FRAGMENTS)).prop_map(|(at, len, insert)| Edit { at, len, insert })
}

/// Applies an edit to `text` as the client would, returning the protocol change.
fn apply(text: &mut String, edit: &Edit) -> Value {
    let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
    let start_index = edit.at % boundaries.len();
    let end_index = (start_index + edit.len).min(boundaries.len() - 1);
    let (start, end) = (boundaries[start_index], boundaries[end_index]);
    let range = json!({ "start": position(text, start), "end": position(text, end) });
    text.replace_range(start..end, edit.insert);
    json!({ "range": range, "text": edit.insert })
}

#[test]
fn incremental_edits_leave_the_diagnostics_of_a_fresh_open() {
    let fx = Fixture::new();
    let servers = std::cell::RefCell::new((fx.server(), fx.server()));
    let seeds = [fx.text("agents/reviewer.sym"), fx.text("policies.sym"), String::new()];
    let case = std::cell::Cell::new(0);
    let strategy = (0..seeds.len(), vec(vec(edit(), 1..4), 1..25));
    let mut runner = TestRunner::new(Config { cases: 40, max_shrink_iters: 200, ..Config::default() });
    let result = runner.run(&strategy, |(seed, batches)| {
        case.set(case.get() + 1);
        let (incremental, fresh) = &mut *servers.borrow_mut();
        // Not on disk: closing the document takes it out of the workspace again.
        let uri = fx.uri(&format!("agents/case_{}.sym", case.get()));
        let mut text = seeds[seed].clone();
        incremental.open(&uri, "symbiont", &text);
        let mut version = 1;
        for batch in &batches {
            version += 1;
            let changes: Vec<Value> = batch.iter().map(|e| apply(&mut text, e)).collect();
            incremental.change(&uri, version, Value::Array(changes));
        }
        let pull = |server: &mut Server| {
            server.request("textDocument/diagnostic", json!({ "textDocument": { "uri": uri } })).unwrap()["items"].clone()
        };
        let got = pull(incremental);
        let pushed = incremental.diagnostics(&uri, Some(version));
        fresh.open(&uri, "symbiont", &text);
        let expected = pull(fresh);
        for server in [incremental, fresh] {
            server.notify("textDocument/didClose", json!({ "textDocument": { "uri": uri } }));
            server.backlog.clear();
        }
        prop_assert_eq!(&got, &expected, "final text:\n{}", text);
        prop_assert_eq!(&pushed, &expected);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
