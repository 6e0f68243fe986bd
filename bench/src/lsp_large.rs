//! `bench/run lsp-large`: one huge `.sym` file opened in the language server (#20). A generated
//! file of `--mb` megabytes (the blocks of `tests/it/lsp/large_file.rs`: an agent with an inline
//! policy and a type, one warning each) is opened over stdio beside two small files; right after
//! it, a request on a small file that needs the workspace's names (where a type of the other
//! small file is defined). Measured: how long that request took, how long until the big file's
//! diagnostics, the server's peak RSS growth over the open (`VmHWM`), and in the same run
//! `symbiont check` on the same file (its time and peak RSS), each against the input's size.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use serde_json::json;

use crate::lsp::{file_uri, server_binary, Server};

pub const ARGS: &str = "[--mb N] [--symbiont-lsp PATH] [--symbiont PATH]";

const SMALL: &str = "agent helper(x: Finding) -> Report_1 {\n    capabilities = [\"read\"]\n}\n";
const TYPES: &str = "type Finding = { text: String }\n";

struct Options {
    mb: usize,
    server: PathBuf,
    symbiont: PathBuf,
}

fn options(args: &[String]) -> Result<Options, String> {
    let server = server_binary()?;
    let symbiont = server.with_file_name("symbiont");
    let mut o = Options { mb: 50, server, symbiont };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--mb" => o.mb = value()?.parse().map_err(|e| format!("--mb: {e}"))?,
            "--symbiont-lsp" => o.server = PathBuf::from(value()?),
            "--symbiont" => o.symbiont = PathBuf::from(value()?),
            other => return Err(format!("unknown argument `{other}`; usage: bench/run lsp-large {ARGS}")),
        }
    }
    if !o.symbiont.is_file() {
        return Err(format!(
            "{} not found: build it with `cargo build --release -p symbiont-cli` (bench/run lsp-large does)",
            o.symbiont.display()
        ));
    }
    Ok(o)
}

pub fn run(args: &[String]) -> Result<(), String> {
    let o = options(args)?;
    let dir = std::env::temp_dir().join(format!("symbiont-bench-lsp-large-{}", std::process::id()));
    let result = run_in(&o, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(o: &Options, dir: &Path) -> Result<(), String> {
    let (big, blocks) = symbiont_tests::huge_sym_text(o.mb * 1_000_000);
    let ws = dir.join("ws");
    for (name, text) in [("small.sym", SMALL), ("types.sym", TYPES)] {
        crate::lsp::write(&ws.join(name), text)?;
    }
    let input_mb = big.len() as f64 / 1e6;
    // The same file alone in a directory (not in the server's workspace), for `symbiont check`.
    let alone = dir.join("check");
    crate::lsp::write(&alone.join("big.sym"), &big)?;
    println!("lsp-large: a {input_mb:.1} MB file of {blocks} blocks; {}", o.server.display());

    let mut server = Server::start(Command::new(&o.server).arg("--stdio"), &ws)?;
    let (small, big_uri) = (file_uri(&ws.join("small.sym")), file_uri(&ws.join("big.sym")));
    server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": small, "languageId": "symbiont", "version": 1, "text": SMALL } }),
    )?;
    server.diagnostics(&small, 1)?;
    let baseline_kb = server.status_kb("VmHWM")?;

    let start = Instant::now();
    server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": big_uri, "languageId": "symbiont", "version": 1, "text": big } }),
    )?;
    drop(big);
    // Sent once the open is written (the server has read all but the pipe's buffer of it).
    let position = json!({ "line": 0, "character": SMALL.find("Finding").unwrap_or(0) });
    let sent = Instant::now();
    let found = server.request("textDocument/definition", json!({ "textDocument": { "uri": small }, "position": position }))?;
    let request_ms = sent.elapsed().as_secs_f64() * 1e3;
    if found.as_array().is_none_or(Vec::is_empty) {
        return Err(format!("no definition of `Finding` found: {found}"));
    }
    let (at, count) = server.diagnostics(&big_uri, 1)?;
    let diagnostics_s = (at - start).as_secs_f64();
    if count != blocks {
        return Err(format!("{count} diagnostics for the big file, not one per block ({blocks})"));
    }
    let peak_mb = (server.status_kb("VmHWM")? - baseline_kb) as f64 * 1024.0 / 1e6;
    server.stop();

    let (check_s, check_peak_mb) = check(&o.symbiont, &alone)?;
    println!("  small file's request during the open   {request_ms:>9.1} ms");
    println!("  big file's diagnostics after the open   {diagnostics_s:>9.2} s");
    println!("  server's peak RSS growth                {peak_mb:>9.1} MB  ({:.1}x the input)", peak_mb / input_mb);
    println!("  symbiont check on the file              {check_s:>9.2} s, peak {check_peak_mb:.1} MB ({:.1}x)", check_peak_mb / input_mb);
    println!(
        "RESULT lsp-large peak_vs_input={:.2} check_peak_vs_input={:.2} peak_rss_mb={peak_mb:.1} check_peak_rss_mb={check_peak_mb:.1} diagnostics_s={diagnostics_s:.2} check_s={check_s:.2} diagnostics_vs_check={:.2} small_request_ms={request_ms:.1} input_mb={input_mb:.1}",
        peak_mb / input_mb,
        check_peak_mb / input_mb,
        diagnostics_s / check_s,
    );
    Ok(())
}

/// `symbiont check DIR`: seconds and peak RSS in MB (10^6 bytes; the child's `ru_maxrss`).
/// Warnings only: `check` exits with 0.
fn check(symbiont: &Path, dir: &Path) -> Result<(f64, f64), String> {
    let dir = dir.to_str().ok_or("the benchmark's directory is not UTF-8")?;
    crate::audit_read::run_once(symbiont, &["check", dir])
}
