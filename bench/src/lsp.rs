//! `bench/run lsp`: the language server over its real stdio, as an editor drives it, against
//! peers measured in the same run.
//!
//! 1. Latency of diagnostics: a 5,000-line `.sym` file is opened, then edited 200 times; each
//!    edit is one `didChange` of one character (a letter inserted into a string, then deleted),
//!    and the time is taken from writing it to reading the `publishDiagnostics` for its version.
//!    The next edit is sent once that one arrived. Its baseline: a fresh `symbiont_syntax::parse`
//!    of each of the same texts, in this process. Then a 5,000-line Python file bound to an agent
//!    (its findings are judged against the agent's policy on every edit), edited by a comment line
//!    inserted and deleted again, with `ruff server` (the pinned ruff of `.venv-test`, as
//!    `scripts/test` installs it) driven the same way on the same file with the same edits: the
//!    same client capabilities (none, so both push diagnostics), the same untimed warm-up edits,
//!    the two servers' edits interleaved so that a change of load hits both.
//! 2. Memory: a fresh server on a 100,000-line workspace (`.sym` files and the Python files
//!    their agents are implemented by); once every file is loaded and its diagnostics computed,
//!    the server's resident set (`VmRSS`) and its peak (`VmHWM`).

use std::{
    io::{BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::{json, Value};

pub const ARGS: &str = "[--edits N] [--warmup N] [--lines N] [--workspace-lines N]";

struct Options {
    edits: usize,
    warmup: usize,
    lines: usize,
    workspace_lines: usize,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut options = Options { edits: 200, warmup: 20, lines: 5_000, workspace_lines: 100_000 };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || -> Result<usize, String> {
            let v = args.next().ok_or_else(|| format!("`{arg}` needs a number"))?;
            v.parse::<usize>().ok().filter(|v| *v > 0).ok_or_else(|| format!("`{arg}` needs a positive number, found `{v}`"))
        };
        match arg.as_str() {
            "--edits" => options.edits = value()?,
            "--warmup" => options.warmup = value()?,
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
    let ruff = ruff_binary()?;
    let dir = std::env::temp_dir().join(format!("symbiont-bench-lsp-{}", std::process::id()));
    let result = run_in(&binary, &ruff, &dir, &options);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(binary: &Path, ruff: &Ruff, dir: &Path, options: &Options) -> Result<(), String> {
    println!("symbiont-lsp: {}", binary.display());
    println!("ruff server: {} (ruff {})", ruff.path.display(), ruff.version);
    // 1. Latency.
    let latency_dir = dir.join("latency");
    write(&latency_dir.join("symbiont.toml"), "[policy]\nbase = \"baseline\"\n")?;
    write(&latency_dir.join("policies.sym"), "policy baseline {\n    deny: [\"network_access\"]\n}\n")?;
    // ruff's defaults, and no user configuration found instead (ruff looks for one only when the
    // project has none).
    write(&latency_dir.join("ruff.toml"), "# ruff's default rules\n")?;
    let sym_text = sym_file("big", options.lines);
    write(&latency_dir.join("big.sym"), &sym_text)?;
    let py_text = python_file(options.lines);
    write(&latency_dir.join("worker.sym"), WORKER_AGENT)?;
    write(&latency_dir.join("worker.py"), &py_text)?;

    let sym_edits = char_edits(&sym_text, options.warmup + options.edits);
    let py_edits = line_edits(&py_text, "# edited", options.warmup + options.edits);
    let mut ours = Server::start(Command::new(binary).arg("--stdio"), &latency_dir)?;
    let mut peer = Server::start(Command::new(&ruff.path).arg("server"), &latency_dir)?;
    let sym = latencies(&mut [&mut ours], &latency_dir.join("big.sym"), "symbiont", &sym_text, &sym_edits, options.warmup)?;
    let py = latencies(&mut [&mut ours, &mut peer], &latency_dir.join("worker.py"), "python", &py_text, &py_edits, options.warmup)?;
    ours.stop();
    peer.stop();
    let parse = parse_times(&sym_text, &sym_edits, options.warmup);

    println!("\ndidChange → publishDiagnostics, {} edits each after {} untimed (ms):", options.edits, options.warmup);
    println!("{:<52} {:>8} {:>8} {:>8} {:>8} {:>12}", "server, file", "p50", "p90", "p99", "max", "diagnostics");
    let rows = [
        (format!("symbiont, `.sym`, {} lines", count_lines(&sym_text)), &sym[0]),
        (format!("symbiont, Python bound to an agent, {} lines", count_lines(&py_text)), &py[0]),
        (format!("ruff {}, the same Python", ruff.version), &py[1]),
    ];
    for (name, run) in rows {
        println!(
            "{:<52} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>12}",
            name,
            run.p(50.0),
            run.p(90.0),
            run.p(99.0),
            run.p(100.0),
            run.diagnostics
        );
    }
    println!(
        "{:<52} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        "fresh symbiont_syntax::parse of each `.sym` text",
        percentile(&parse, 50.0),
        percentile(&parse, 90.0),
        percentile(&parse, 99.0),
        percentile(&parse, 100.0)
    );

    // 2. Memory.
    let workspace_dir = dir.join("workspace");
    let (files, lines, bytes) = workspace(&workspace_dir, options.workspace_lines)?;
    let started = Instant::now();
    let mut server = Server::start(Command::new(binary).arg("--stdio"), &workspace_dir)?;
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

    let (sym, py, ruff) = (&sym[0], &py[0], &py[1]);
    let (parse_p50, parse_p99) = (percentile(&parse, 50.0), percentile(&parse, 99.0));
    println!(
        "RESULT lsp py_vs_ruff_p50={:.2} py_vs_ruff_p99={:.2} sym_vs_parse_p50={:.2} sym_vs_parse_p99={:.2} \
         sym_p50_ms={:.2} sym_p99_ms={:.2} parse_p50_ms={parse_p50:.2} parse_p99_ms={parse_p99:.2} \
         py_p50_ms={:.2} py_p99_ms={:.2} ruff_p50_ms={:.2} ruff_p99_ms={:.2} \
         rss_mb={rss_mb:.1} peak_rss_mb={hwm_mb:.1} workspace_lines={lines} edits={}",
        py.p(50.0) / ruff.p(50.0),
        py.p(99.0) / ruff.p(99.0),
        sym.p(50.0) / parse_p50,
        sym.p(99.0) / parse_p99,
        sym.p(50.0),
        sym.p(99.0),
        py.p(50.0),
        py.p(99.0),
        ruff.p(50.0),
        ruff.p(99.0),
        options.edits
    );
    Ok(())
}

/// One server's timed edits of one file.
struct Latencies {
    /// Milliseconds from writing each `didChange` to reading its `publishDiagnostics`.
    times: Vec<f64>,
    /// How many diagnostics the last `publishDiagnostics` held.
    diagnostics: usize,
}

impl Latencies {
    fn p(&self, p: f64) -> f64 {
        percentile(&self.times, p)
    }
}

/// Opens `path` in every server, then sends each of `edits` to each server in turn, timing each
/// edit until its diagnostics arrive; the first `warmup` edits are not timed. The servers take
/// turns edit by edit, the first one alternating, so that neither always runs right after the
/// other.
fn latencies(
    servers: &mut [&mut Server],
    path: &Path,
    language: &str,
    text: &str,
    edits: &[Edit],
    warmup: usize,
) -> Result<Vec<Latencies>, String> {
    let uri = file_uri(path);
    let mut runs: Vec<Latencies> = Vec::new();
    for server in servers.iter_mut() {
        server.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": language, "version": 1, "text": text } }),
        )?;
        let (_, diagnostics) = server.diagnostics(&uri, 1)?;
        runs.push(Latencies { times: Vec::with_capacity(edits.len()), diagnostics });
    }
    for (i, edit) in edits.iter().enumerate() {
        let version = 2 + i as i64;
        let change = json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": [edit.json()] });
        for turn in 0..servers.len() {
            let s = (turn + i) % servers.len();
            let sent = Instant::now();
            servers[s].notify("textDocument/didChange", change.clone())?;
            let (received, diagnostics) = servers[s].diagnostics(&uri, version)?;
            runs[s].diagnostics = diagnostics;
            if i >= warmup {
                runs[s].times.push(received.duration_since(sent).as_secs_f64() * 1e3);
            }
        }
    }
    Ok(runs)
}

/// Milliseconds of a fresh `symbiont_syntax::parse` of the text after each timed edit (the
/// warm-up texts parsed untimed first, as the server saw them).
fn parse_times(text: &str, edits: &[Edit], warmup: usize) -> Vec<f64> {
    let mut text = text.to_string();
    let mut times = Vec::with_capacity(edits.len());
    for (i, edit) in edits.iter().enumerate() {
        edit.apply(&mut text);
        let started = Instant::now();
        let parse = std::hint::black_box(symbiont_syntax::parse(std::hint::black_box(&text)));
        let elapsed = started.elapsed();
        drop(parse);
        if i >= warmup {
            times.push(elapsed.as_secs_f64() * 1e3);
        }
    }
    times
}

/// A `didChange` content change: the text between two positions (line, character; the
/// workloads are ASCII, so characters are bytes) replaced.
struct Edit {
    start: (usize, usize),
    end: (usize, usize),
    text: String,
}

impl Edit {
    fn json(&self) -> Value {
        let position = |(line, character): (usize, usize)| json!({ "line": line, "character": character });
        json!({ "range": { "start": position(self.start), "end": position(self.end) }, "text": self.text })
    }

    fn apply(&self, text: &mut String) {
        let (start, end) = (offset(text, self.start), offset(text, self.end));
        text.replace_range(start..end, &self.text);
    }
}

/// The byte offset of a position in an ASCII text.
fn offset(text: &str, (line, character): (usize, usize)) -> usize {
    let line_start = if line == 0 { 0 } else { text.match_indices('\n').nth(line - 1).map_or(text.len(), |(i, _)| i + 1) };
    line_start + character
}

/// `count` edits that insert `marker` as a comment line of its own at a line spread over the
/// file, then delete it again.
fn line_edits(text: &str, marker: &str, count: usize) -> Vec<Edit> {
    let lines = count_lines(text).max(1);
    (0..count)
        .map(|i| {
            let line = ((i / 2) * 2 * 7919) % lines;
            if i % 2 == 0 {
                Edit { start: (line, 0), end: (line, 0), text: format!("{marker}\n") }
            } else {
                Edit { start: (line, 0), end: (line + 1, 0), text: String::new() }
            }
        })
        .collect()
}

/// `count` one-character edits: a letter inserted into the first string of a line spread over the
/// file (the first line with a string from there on), then deleted again. Inside an item, so
/// that its meaning changes (an unknown operation, a schedule's agent that does not resolve) and
/// the positions of everything after it move by one.
fn char_edits(text: &str, count: usize) -> Vec<Edit> {
    let lines: Vec<&str> = text.lines().collect();
    (0..count)
        .map(|i| {
            let from = ((i / 2) * 2 * 7919) % lines.len().max(1);
            let (line, column) =
                (from..lines.len()).chain(0..from).find_map(|l| lines[l].find('"').map(|c| (l, c + 1))).expect("the workload has strings");
            if i % 2 == 0 {
                Edit { start: (line, column), end: (line, column), text: "x".to_string() }
            } else {
                Edit { start: (line, column), end: (line, column + 1), text: String::new() }
            }
        })
        .collect()
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

pub(crate) fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn file_uri(path: &Path) -> String {
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
pub(crate) fn server_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the bench binary: {e}"))?;
    let binary = exe.parent().ok_or("the bench binary is not in <target>/<profile>/")?.join("symbiont-lsp");
    if !binary.is_file() {
        return Err(format!("{} not found: build it with `cargo build --release -p symbiont-lsp` (bench/run lsp does)", binary.display()));
    }
    Ok(binary)
}

/// The pinned ruff that `scripts/test` installs into `.venv-test` (from the Python SDK's
/// `requirements-dev.txt`).
struct Ruff {
    path: PathBuf,
    version: String,
}

fn ruff_binary() -> Result<Ruff, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("bench/ lives in the repository");
    let requirements = root.join("runtime/sdk/python/requirements-dev.txt");
    let pins = std::fs::read_to_string(&requirements).map_err(|e| format!("{}: {e}", requirements.display()))?;
    let pinned = pins
        .lines()
        .find_map(|l| l.trim().strip_prefix("ruff=="))
        .ok_or_else(|| format!("no `ruff==VERSION` pin in {}", requirements.display()))?;
    let path = root.join(".venv-test/bin/ruff");
    let install = format!("run scripts/test, which installs it, or `{}/bin/pip install ruff=={pinned}`", root.join(".venv-test").display());
    let output = Command::new(&path).arg("--version").output().map_err(|e| format!("{}: {e}: {install}", path.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let version = stdout.trim().strip_prefix("ruff ").unwrap_or_default().to_string();
    if version != pinned {
        return Err(format!("{} is ruff `{version}`, the pin is {pinned}: {install}", path.display()));
    }
    Ok(Ruff { path, version })
}

// -------------------------------------------------------------------------------------------------
// A minimal client: frames JSON-RPC over the server's stdio, timestamps what it reads.

pub(crate) struct Server {
    child: Child,
    stdin: ChildStdin,
    messages: mpsc::Receiver<(Instant, Value)>,
    next_id: i64,
}

impl Server {
    pub(crate) fn start(command: &mut Command, root: &Path) -> Result<Server, String> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", command.get_program().to_string_lossy()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            // A message arrives when its last byte is read: the time this client then takes to
            // parse it (longer for a thousand diagnostics than for none) is not the server's.
            while let Some(frame) = symbiont_tests::read_frame(&mut reader) {
                let at = Instant::now();
                let Ok(message) = serde_json::from_slice(&frame) else { continue };
                if tx.send((at, message)).is_err() {
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

    pub(crate) fn notify(&mut self, method: &str, params: Value) -> Result<(), String> {
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

    pub(crate) fn request(&mut self, method: &str, params: Value) -> Result<Value, String> {
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

    /// When the diagnostics for `uri` at `version` arrived, and how many there were.
    pub(crate) fn diagnostics(&mut self, uri: &str, version: i64) -> Result<(Instant, usize), String> {
        loop {
            let (at, message) = self.next()?;
            let params = &message["params"];
            if message["method"] == "textDocument/publishDiagnostics" && params["uri"] == uri && params["version"] == json!(version) {
                return Ok((at, params["diagnostics"].as_array().map_or(0, Vec::len)));
            }
        }
    }

    pub(crate) fn status_kb(&self, field: &str) -> Result<u64, String> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("no `{field}` in {path}"))
    }

    pub(crate) fn stop(mut self) {
        let _ = self.request("shutdown", Value::Null);
        let _ = self.notify("exit", Value::Null);
        let _ = self.child.wait();
    }
}
