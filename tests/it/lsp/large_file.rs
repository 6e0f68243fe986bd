//! One huge file does not take the server down with it (#20): a generated 6 MB `.sym` file (7,000
//! agents, each with a warning) is opened over stdio while small files are open. Requests on a
//! small file are answered before the big file's diagnostics are published, even those that need
//! the workspace's names (the big file is summarised on a snapshot of its own, outside the
//! workspace, then listed); an edit of the small file meanwhile gets its diagnostics first too;
//! the big file's diagnostics arrive, every one of them, and its names are the workspace's then;
//! the answers that grow with the whole file are off for it, with a message saying so; and the
//! server's peak memory over the open stays under 30 times the file (it is parsed item by item).
//! The diagnostics of the file parsed item by item are those of a whole parse. About 10 s of the
//! suite's time in a debug build.

use std::{path::Path, process::Command};

use serde_json::{json, Value};

use super::{at, Fixture};

/// A small file using a type of another small file and one of the big file (a host type until the
/// big file is in the workspace: not an error).
const SMALL: &str = "agent helper(x: Finding) -> Report_1 {\n    capabilities = [\"read\"]\n}\n";
const TYPES: &str = "type Finding = { text: String }\n";

/// A `kB` field of `/proc/PID/status`.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server is running");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The peak resident set of `symbiont check DIR`, in kB (the child's `ru_maxrss`, from python3's
/// `resource`: the wrapper has no other child).
fn check_peak_kb(dir: &Path) -> u64 {
    const MEASURE: &str = "import resource, subprocess, sys\n\
        done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n\
        print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n";
    let output =
        Command::new("python3").args(["-c", MEASURE]).arg(crate::cli::binary()).arg("check").arg(dir).output().expect("python3 runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let (code, kb) = text.trim().split_once(' ').unwrap_or_else(|| panic!("{text}{}", String::from_utf8_lossy(&output.stderr)));
    // Warnings only: `check` exits with 0.
    assert_eq!(code, "0", "symbiont check {}", dir.display());
    kb.parse().unwrap()
}

/// Where `word` starts in `SMALL`'s first line.
fn small_at(word: &str) -> Value {
    json!({ "line": 0, "character": SMALL.find(word).unwrap() })
}

#[test]
fn a_huge_file_neither_blocks_other_files_nor_exhausts_memory() {
    let fx = Fixture::empty();
    fx.write("small.sym", SMALL);
    fx.write("types.sym", TYPES);
    let (big, blocks) = symbiont_tests::huge_sym_text(6_000_000);
    let mut server = fx.server();
    let small = fx.uri("small.sym");
    server.open(&small, "symbiont", SMALL);
    server.diagnostics(&small, Some(1));
    let pid = server.pid();
    let baseline_kb = status_kb(pid, "VmHWM");

    // The small file is edited (a syntax error), the big file opened (not on disk: the
    // workspace's load never read it, the open is the first the server sees of it), then the small
    // file asked about, and once answered edited again.
    let big_uri = fx.uri("big.sym");
    server.change(&small, 2, json!([{ "text": format!("{SMALL}agent {{\n") }]));
    server.open(&big_uri, "symbiont", &big);
    let outline = server.send_request("textDocument/documentSymbol", json!({ "textDocument": { "uri": small } }));
    let hover = server.send_request("textDocument/hover", at(&small, small_at("helper")));
    // Where `Finding` is defined: an answer that needs every file's names.
    let definition = server.send_request("textDocument/definition", at(&small, small_at("Finding")));
    let requests = [(outline, "small outline"), (hover, "small hover"), (definition, "small definition")];

    // None of these needs the big file, which is summarised outside the workspace meanwhile, and
    // an edit meanwhile waits for one of its items at most: all come before its diagnostics, which
    // need all of it parsed and checked.
    let mut order = Vec::new();
    let (mut big_diagnostics, mut small_diagnostics) = (None, None);
    let mut answers: Vec<(&str, Value)> = Vec::new();
    while big_diagnostics.is_none() || small_diagnostics.is_none() || answers.len() < requests.len() {
        let message = server.wait_for(|m| {
            m.get("id").is_some_and(|id| requests.iter().any(|(r, _)| *id == json!(r))) && m.get("method").is_none()
                || m["method"] == "textDocument/publishDiagnostics" && (m["params"]["uri"] == big_uri || m["params"]["version"] == 3)
        });
        match message["id"].as_i64() {
            Some(id) => {
                let what = requests.iter().find(|(r, _)| *r == id).unwrap().1;
                order.push(what);
                answers.push((what, message));
                if answers.len() == requests.len() {
                    server.change(&small, 3, json!([{ "text": format!("{SMALL}policy {{\n") }]));
                }
            }
            None if message["params"]["uri"] == big_uri => {
                order.push("big diagnostics");
                big_diagnostics = Some(message["params"].clone());
            }
            None => {
                order.push("small diagnostics");
                small_diagnostics = Some(message["params"].clone());
            }
        }
    }
    let position = |what: &str| order.iter().position(|o| *o == what).unwrap();
    for (_, what) in requests {
        assert!(position(what) < position("big diagnostics"), "{order:?}");
    }
    assert!(position("small diagnostics") < position("big diagnostics"), "{order:?}");
    for (what, answer) in &answers {
        assert!(answer.get("error").is_none() && !answer["result"].is_null(), "{what}: {answer}");
    }
    let found = answers.iter().find(|(what, _)| *what == "small definition").unwrap();
    assert_eq!(found.1["result"][0]["uri"], fx.uri("types.sym"), "{}", found.1);
    let small_diagnostics = small_diagnostics.unwrap();
    assert!(small_diagnostics["diagnostics"].as_array().unwrap().iter().any(|d| d["code"] == "SYM0001"), "{small_diagnostics}");

    // Every diagnostic of the big file, at the version opened.
    let big_diagnostics = big_diagnostics.unwrap();
    assert_eq!(big_diagnostics["version"], 1);
    let codes: Vec<&str> = big_diagnostics["diagnostics"].as_array().unwrap().iter().map(|d| d["code"].as_str().unwrap()).collect();
    assert_eq!(codes.len(), blocks);
    assert!(codes.iter().all(|c| *c == "SYM0201"), "{:?}", codes.iter().find(|c| **c != "SYM0201"));
    let analysed_kb = status_kb(pid, "VmHWM") - baseline_kb;

    // Its names are the workspace's now: the small file's `Report_1` is defined there.
    let report = server.request("textDocument/definition", at(&small, small_at("Report_1"))).unwrap();
    assert_eq!(report[0]["uri"], big_uri, "{report}");

    // The client is told which features are off for it, and they are; the rest answer.
    let notice = server.wait_for(|m| m["method"] == "window/showMessage");
    let message = notice["params"]["message"].as_str().unwrap();
    assert!(message.starts_with("big.sym is 6.0 MB: over 2 MB, its outline, folding"), "{message}");
    for method in ["textDocument/documentSymbol", "textDocument/semanticTokens/full", "textDocument/foldingRange", "textDocument/codeLens"]
    {
        assert_eq!(server.request(method, json!({ "textDocument": { "uri": big_uri } })), Ok(Value::Null), "{method}");
    }
    let options = json!({ "tabSize": 4, "insertSpaces": true });
    let formatting = server.request("textDocument/formatting", json!({ "textDocument": { "uri": big_uri }, "options": options }));
    assert!(formatting.unwrap_err()["message"].as_str().unwrap().contains("`symbiont fmt` formats it"));
    let hover_big = server.request("textDocument/hover", at(&big_uri, json!({ "line": 2, "character": 8 }))).unwrap();
    assert!(hover_big["contents"]["value"].as_str().unwrap().contains("reviewer_0"), "{hover_big}");
    let range = json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 40, "character": 0 } });
    let tokens =
        server.request("textDocument/semanticTokens/range", json!({ "textDocument": { "uri": big_uri }, "range": range })).unwrap();
    assert!(!tokens["data"].as_array().unwrap().is_empty());
    let navigated_kb = status_kb(pid, "VmHWM") - baseline_kb;
    assert_eq!(server.stop(), 0);

    // Peak memory. Opening and analysing the file holds the protocol's decoding of a 6 MB
    // message, the text, each item's text and summary (their copies assembled per file, the
    // workspace's checks of them), one item's tree at a time (the whole tree would be about 27
    // times the text), the diagnostics and their JSON: about 21 times the text here. The goal of
    // #20, 10 times, is not met: the summaries alone are about 9 times this dense text (an agent
    // with an inline policy every 820 bytes). Navigating in the file parses it whole (and keeps
    // the tree for the next request). `symbiont check`'s peak on the same file is printed beside.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.sym"), &big).unwrap();
    let check_kb = check_peak_kb(dir.path());
    let input_kb = big.len() as u64 / 1024;
    println!(
        "large_file: input_kb={input_kb} server_peak_growth_kb={analysed_kb} ({:.1}x) after_navigation_kb={navigated_kb} check_peak_kb={check_kb} ({:.1}x)",
        analysed_kb as f64 / input_kb as f64,
        check_kb as f64 / input_kb as f64
    );
    assert!(analysed_kb <= 30 * input_kb, "opening the file grew the server's peak by {analysed_kb} kB for {input_kb} kB of text");
    assert!(navigated_kb <= 60 * input_kb, "the server's peak grew by {navigated_kb} kB for {input_kb} kB of text");
}

/// The generated file's diagnostics, parsed item by item (as it is, over 2 MB) and whole.
#[test]
fn a_huge_file_parsed_item_by_item_has_the_whole_parses_diagnostics() {
    let (big, _) = symbiont_tests::huge_sym_text(3_000_000);
    let diagnostics = |above: usize| {
        let mut host = symbiont_analysis::AnalysisHost::new();
        host.parse_by_items_above(above);
        host.set_file("big.sym", big.as_str());
        host.set_file("small.sym", SMALL);
        host.all_diagnostics()
    };
    let by_items = diagnostics(symbiont_analysis::inputs::LARGE_TEXT);
    assert_eq!(by_items, diagnostics(usize::MAX));
    assert!(by_items[0].1.len() > 3000, "{}", by_items[0].1.len());
}
