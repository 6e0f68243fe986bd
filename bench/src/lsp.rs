//! `bench/run lsp`: the language server over its real stdio, as an editor drives it.
//!
//! 1. Latency of diagnostics: a 5,000-line `.sym` file is opened, then edited 200 times; each
//!    edit is one `didChange` (a one-character insertion or deletion), and the time is taken from
//!    writing it to reading the `publishDiagnostics` for its version. The next edit is sent once
//!    that one arrived. The same for a 5,000-line Python file bound to an agent (its findings are
//!    judged against the agent's policy on every edit).
//! 2. Memory: a fresh server on a 100,000-line workspace (`.sym` files and the Python files
//!    their agents are implemented by); once every file is loaded and its diagnostics computed,
//!    the server's resident set (`VmRSS`) and its peak (`VmHWM`).

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::{json, Value};

pub const ARGS: &str = "[--edits N] [--lines N] [--workspace-lines N]";

struct Options {
    edits: usize,
    lines: usize,
    workspace_lines: usize,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut options = Options { edits: 200, lines: 5_000, workspace_lines: 100_000 };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || -> Result<usize, String> {
            let v = args.next().ok_or_else(|| format!("`{arg}` needs a number"))?;
            v.parse::<usize>().ok().filter(|v| *v > 0).ok_or_else(|| format!("`{arg}` needs a positive number, found `{v}`"))
        };
        match arg.as_str() {
            "--edits" => options.edits = value()?,
            "--lines" => options.lines = value()?,
            "--workspace-lines" => options.workspace_lines = value()?,
            other => return Err(format!("unknown argument `{other}` for `lsp`")),
        }
    }
    Ok(options)
}

pub fn run(args: &[String]) -> Result<(), String> {
    let options = options(args)?;
    let binary = server_binary()?;
    let dir = std::env::temp_dir().join(format!("symbiont-bench-lsp-{}", std::process::id()));
    let result = run_in(&binary, &dir, &options);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(binary: &Path, dir: &Path, options: &Options) -> Result<(), String> {
    println!("symbiont-lsp: {}", binary.display());
    // 1. Latency.
    let latency_dir = dir.join("latency");
    write(&latency_dir.join("symbiont.toml"), "[policy]\nbase = \"baseline\"\n")?;
    write(&latency_dir.join("policies.sym"), "policy baseline {\n    deny: [\"network_access\"]\n}\n")?;
    let sym_text = sym_file("big", options.lines);
    write(&latency_dir.join("big.sym"), &sym_text)?;
    let py_text = python_file(options.lines);
    write(&latency_dir.join("worker.sym"), WORKER_AGENT)?;
    write(&latency_dir.join("worker.py"), &py_text)?;

    let mut server = Server::start(binary, &latency_dir)?;
    let sym = latencies(&mut server, &latency_dir.join("big.sym"), "symbiont", &sym_text, "// edited", options.edits)?;
    let py = latencies(&mut server, &latency_dir.join("worker.py"), "python", &py_text, "# edited", options.edits)?;
    server.stop();

    println!("\ndidChange → publishDiagnostics, {} edits each (ms):", options.edits);
    println!("{:<44} {:>8} {:>8} {:>8} {:>8}", "file", "p50", "p90", "p99", "max");
    for (name, lines, times) in [("`.sym`", count_lines(&sym_text), &sym), ("Python bound to an agent", count_lines(&py_text), &py)] {
        println!(
            "{:<44} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            format!("{name}, {lines} lines"),
            percentile(times, 50.0),
            percentile(times, 90.0),
            percentile(times, 99.0),
            percentile(times, 100.0)
        );
    }

    // 2. Memory.
    let workspace_dir = dir.join("workspace");
    let (files, lines, bytes) = workspace(&workspace_dir, options.workspace_lines)?;
    let started = Instant::now();
    let mut server = Server::start(binary, &workspace_dir)?;
    // A request waits until the load is applied; pulling every file's diagnostics makes the
    // server analyse all of them.
    server.request("workspace/symbol", json!({ "query": "agent_0" }))?;
    let mut problems = 0;
    for file in &files {
        let report = server.request("textDocument/diagnostic", json!({ "textDocument": { "uri": file_uri(file) } }))?;
        problems += report["items"].as_array().map_or(0, Vec::len);
    }
    let loaded = started.elapsed();
    let (rss, hwm) = (server.status_kb("VmRSS")?, server.status_kb("VmHWM")?);
    server.stop();
    let (rss_mb, hwm_mb) = (rss as f64 / 1024.0, hwm as f64 / 1024.0);
    println!(
        "\nworkspace: {} files, {lines} lines, {:.1} MB; loaded and checked in {:.2} s ({problems} diagnostics)",
        files.len(),
        bytes as f64 / 1e6,
        loaded.as_secs_f64()
    );
    println!("server memory after opening it: VmRSS {rss_mb:.1} MB, peak VmHWM {hwm_mb:.1} MB (MiB)");

    println!(
        "RESULT lsp sym_p50_ms={:.2} sym_p99_ms={:.2} py_p50_ms={:.2} py_p99_ms={:.2} rss_mb={:.1} peak_rss_mb={:.1} workspace_lines={lines} edits={}",
        percentile(&sym, 50.0),
        percentile(&sym, 99.0),
        percentile(&py, 50.0),
        percentile(&py, 99.0),
        rss_mb,
        hwm_mb,
        options.edits
    );
    Ok(())
}

/// Opens `path`, then inserts and deletes `marker` at the start of a line chosen anew each time,
/// timing each edit until its diagnostics arrive. Returns milliseconds.
fn latencies(server: &mut Server, path: &Path, language: &str, text: &str, marker: &str, edits: usize) -> Result<Vec<f64>, String> {
    let uri = file_uri(path);
    server.notify("textDocument/didOpen", json!({ "textDocument": { "uri": uri, "languageId": language, "version": 1, "text": text } }))?;
    server.diagnostics(&uri, 1)?;
    let lines = count_lines(text);
    let mut times = Vec::with_capacity(edits);
    let mut inserted: Option<usize> = None;
    for i in 0..edits {
        let version = 2 + i as i64;
        let change = match inserted.take() {
            // Delete the line inserted by the edit before.
            Some(line) => {
                json!({ "range": { "start": { "line": line, "character": 0 }, "end": { "line": line + 1, "character": 0 } }, "text": "" })
            }
            // A comment line of its own, spread over the file.
            None => {
                let line = (i * 7919) % lines.max(1);
                inserted = Some(line);
                let at = json!({ "line": line, "character": 0 });
                json!({ "range": { "start": at, "end": at }, "text": format!("{marker}\n") })
            }
        };
        let sent = Instant::now();
        server
            .notify("textDocument/didChange", json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": [change] }))?;
        let received = server.diagnostics(&uri, version)?;
        times.push(received.duration_since(sent).as_secs_f64() * 1e3);
    }
    Ok(times)
}

fn percentile(times: &[f64], p: f64) -> f64 {
    if times.is_empty() {
        return 0.0;
    }
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn count_lines(text: &str) -> usize {
    text.lines().count()
}

// -------------------------------------------------------------------------------------------------
// Workloads

/// One block of the language, about 24 lines, its names suffixed with `n`.
fn sym_block(prefix: &str, n: usize) -> String {
    format!(
        "// Block {n}: a policy, a type, an agent and its schedule.
policy {prefix}_policy_{n} extends baseline {{
    allow: [\"read\", \"analyze\", \"file_read\"]
    deny: [\"spawn_process\"]
    audit: {{ log_level: \"info\", include_policy_decisions: true }}
}}

type {prefix}_Report_{n} = {{ id: String, score: int, notes: List<String> }}

agent {prefix}_agent_{n}(target: String) -> {prefix}_Report_{n} {{
    capabilities = [\"read\", \"analyze\"]
    policies = [{prefix}_policy_{n}]
    with memory = \"ephemeral\", sandbox = \"Tier2\", timeout = 30.seconds {{
        let data = read(target);
        let report = analyze(data);
        return report;
    }}
}}

schedule {prefix}_nightly_{n} {{
    cron: \"0 2 * * 1-5\"
    agent: \"{prefix}_agent_{n}\"
}}

"
    )
}

fn sym_file(prefix: &str, lines: usize) -> String {
    let mut text = String::new();
    let mut n = 0;
    while count_lines(&text) < lines {
        text.push_str(&sym_block(prefix, n));
        n += 1;
    }
    text
}

const WORKER_AGENT: &str = "agent worker(job: String) -> String {
    capabilities = [\"read\", \"file_read\", \"network_access\"]
    implementation = [\"worker.py\"]
    policy worker_rules {
        allow: [\"read\", \"file_read\"]
        deny: [\"file_system_write\"]
    }
}
";

/// Python of about `lines` lines: functions that read files, call out to the network (denied by
/// the base policy) and compute.
fn python_file(lines: usize) -> String {
    let mut text = String::from("\"\"\"A generated agent implementation.\"\"\"\nimport json\nimport os\n\nimport requests\n\n\n");
    let mut n = 0;
    while count_lines(&text) < lines {
        text.push_str(&format!(
            "def step_{n}(path, url):
    with open(path, encoding=\"utf-8\") as handle:
        data = json.load(handle)
    total = sum(item.get(\"score\", 0) for item in data)
    if n_{n} := os.environ.get(\"STEP_{n}\"):
        total += int(n_{n})
    response = requests.get(url, timeout=5)
    return {{\"total\": total, \"status\": response.status_code}}


"
        ));
        n += 1;
    }
    text
}

/// A workspace of about `lines` lines: 1,000-line `.sym` files, one in five agents' files beside a
/// 1,000-line Python implementation. Returns the files, the line count and the size.
fn workspace(dir: &Path, lines: usize) -> Result<(Vec<PathBuf>, usize, usize), String> {
    write(&dir.join("symbiont.toml"), "[policy]\nbase = \"baseline\"\n")?;
    write(&dir.join("policies.sym"), "policy baseline {\n    deny: [\"network_access\"]\n}\n")?;
    let mut files = Vec::new();
    let (mut total_lines, mut bytes) = (0, 0);
    let mut i = 0;
    while total_lines < lines {
        let (path, text) = if i % 5 == 4 {
            let agent = format!(
                "agent code_agent_{i}(job: String) -> String {{\n    capabilities = [\"read\", \"file_read\"]\n    implementation = [\"impl_{i}.py\"]\n}}\n"
            );
            write(&dir.join(format!("pkg_{i}/agent.sym")), &agent)?;
            files.push(dir.join(format!("pkg_{i}/agent.sym")));
            total_lines += count_lines(&agent);
            (dir.join(format!("pkg_{i}/impl_{i}.py")), python_file(1_000))
        } else {
            (dir.join(format!("pkg_{i}/file.sym")), sym_file(&format!("f{i}"), 1_000))
        };
        write(&path, &text)?;
        total_lines += count_lines(&text);
        bytes += text.len();
        files.push(path);
        i += 1;
    }
    Ok((files, total_lines, bytes))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn file_uri(path: &Path) -> String {
    let mut uri = String::from("file://");
    for byte in path.to_string_lossy().bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            uri.push(byte as char);
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri
}

/// `<target>/release/symbiont-lsp`, beside this binary (`bench/run lsp` builds it).
fn server_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the bench binary: {e}"))?;
    let binary = exe.parent().ok_or("the bench binary is not in <target>/<profile>/")?.join("symbiont-lsp");
    if !binary.is_file() {
        return Err(format!("{} not found: build it with `cargo build --release -p symbiont-lsp` (bench/run lsp does)", binary.display()));
    }
    Ok(binary)
}

// -------------------------------------------------------------------------------------------------
// A minimal client: frames JSON-RPC over the server's stdio, timestamps what it reads.

struct Server {
    child: Child,
    stdin: ChildStdin,
    messages: mpsc::Receiver<(Instant, Value)>,
    next_id: i64,
}

impl Server {
    fn start(binary: &Path, root: &Path) -> Result<Server, String> {
        let mut child = Command::new(binary)
            .arg("--stdio")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            while let Some(message) = read_message(&mut reader) {
                if tx.send((Instant::now(), message)).is_err() {
                    return;
                }
            }
        });
        let mut server = Server { child, stdin, messages, next_id: 0 };
        let root_uri = file_uri(root);
        server.request(
            "initialize",
            json!({ "processId": null, "rootUri": root_uri, "workspaceFolders": [{ "uri": root_uri, "name": "bench" }], "capabilities": {} }),
        )?;
        server.notify("initialized", json!({}))?;
        Ok(server)
    }

    fn send(&mut self, message: Value) -> Result<(), String> {
        self.stdin
            .write_all(&symbiont_tests::frame(message.to_string().as_bytes()))
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("the server's stdin: {e}"))
    }

    fn notify(&mut self, method: &str, params: Value) -> Result<(), String> {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }))
    }

    fn next(&mut self) -> Result<(Instant, Value), String> {
        let (at, message) =
            self.messages.recv_timeout(Duration::from_secs(120)).map_err(|_| "the server did not answer in 120 s".to_string())?;
        if message.get("method").is_some() {
            if let Some(id) = message.get("id") {
                let id = id.clone();
                self.send(json!({ "jsonrpc": "2.0", "id": id, "result": null }))?;
            }
        }
        Ok((at, message))
    }

    fn request(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }))?;
        loop {
            let (_, message) = self.next()?;
            if message.get("id") == Some(&json!(id)) && message.get("method").is_none() {
                if let Some(error) = message.get("error") {
                    return Err(format!("{method} failed: {error}"));
                }
                return Ok(message.get("result").cloned().unwrap_or(Value::Null));
            }
        }
    }

    /// When the diagnostics for `uri` at `version` arrived.
    fn diagnostics(&mut self, uri: &str, version: i64) -> Result<Instant, String> {
        loop {
            let (at, message) = self.next()?;
            let params = &message["params"];
            if message["method"] == "textDocument/publishDiagnostics" && params["uri"] == uri && params["version"] == json!(version) {
                return Ok(at);
            }
        }
    }

    fn status_kb(&self, field: &str) -> Result<u64, String> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("no `{field}` in {path}"))
    }

    fn stop(mut self) {
        let _ = self.request("shutdown", Value::Null);
        let _ = self.notify("exit", Value::Null);
        let _ = self.child.wait();
    }
}

fn read_message(reader: &mut impl BufRead) -> Option<Value> {
    serde_json::from_slice(&symbiont_tests::read_frame(reader)?).ok()
}
