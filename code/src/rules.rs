//! The built-in rules, as data: for each operation of the policy catalogue and each language, the
//! qualified names through which code performs it. `docs/code-rules.md` is generated from this
//! table (a test keeps it current), and every rule has positive, negative and alias fixtures in
//! `tests/it/code/`.

use crate::{
    lang::Family,
    sites::{Site, SiteKind},
};

/// When a matching call performs the operation only with certain arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgCheck {
    Any,
    /// Python `open(path, mode)` (and `Path(path).open(mode)`): the mode (`mode=`, or the 2nd
    /// positional argument, the 1st of `Path.open`) writes (`w`, `a`, `x`, `+`); the rule's other
    /// callees match whatever their arguments.
    OpenModeWrites,
    /// Python `open(path)` or a read-only mode.
    OpenModeReads,
}

impl ArgCheck {
    fn holds(self, site: &Site) -> bool {
        // Only `open` has a mode; the rule's other callees always write (or read).
        let position = match site.qualified.as_str() {
            "builtins.open" | "io.open" => 1,
            "pathlib.Path().open" => 0,
            _ => return true,
        };
        let mode = || {
            site.args
                .iter()
                .find(|a| a.keyword.as_deref() == Some("mode"))
                .or_else(|| site.args.iter().filter(|a| a.keyword.is_none()).nth(position))
                .map(|a| a.literal.clone())
        };
        match self {
            ArgCheck::Any => true,
            // An unknown (non-literal) mode might write: report it as a write.
            ArgCheck::OpenModeWrites => match mode() {
                Some(Some(m)) => m.contains(['w', 'a', 'x', '+']),
                Some(None) => true,
                None => false,
            },
            ArgCheck::OpenModeReads => match mode() {
                Some(Some(m)) => !m.contains(['w', 'a', 'x', '+']),
                Some(None) => false,
                None => true,
            },
        }
    }
}

/// A built-in rule.
#[derive(Debug)]
pub struct Rule {
    pub code: &'static str,
    pub name: &'static str,
    pub family: Family,
    /// The catalogue operation it detects.
    pub operation: &'static str,
    /// What kinds of site it looks at: calls, constructions (`new X`), references (`os.environ`).
    pub kinds: &'static [SiteKind],
    /// Qualified names; `*` matches any run of characters.
    pub patterns: &'static [&'static str],
    pub args: ArgCheck,
    pub summary: &'static str,
    /// A line of code the rule flags, and the same code without the operation.
    pub example: &'static str,
    pub negative: &'static str,
    /// The SDK rewrites: each callee (a qualified name exactly as a finding resolves it) that can
    /// become a call of the capability SDK taking the same arguments and returning what the code
    /// goes on to use, and that call. A callee not listed gets no SDK rewrite (its finding keeps
    /// the suppression and `.sym` fixes): a rewrite must never turn a finding into code that
    /// does not run. `docs/code-rules.md` and `docs/sdk.md` list them.
    pub sdk: &'static [SdkRewrite],
}

/// A callee the quick fix rewrites, and the SDK call it becomes with the same arguments, when the
/// call passes no more than `positional` arguments by position and no keyword but `keywords`
/// (and no `*args`/`**kwargs`/spread): the two agree on exactly those (`requests.get`'s second
/// positional is `params`, the SDK's is not, so `requests.get(url, p)` is not rewritten); and
/// when the code uses the call's result only through `result`, the members both results have
/// the same way (`r.status_code`, `r.json()`): the result discarded, read by member, or bound
/// to a name (without a declared type) that is only read by member. Anything else (`r.headers`,
/// `with urlopen(u) as r`, `const r: Response = ...`, passing it on) gets no rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdkRewrite {
    pub callee: &'static str,
    pub sdk_call: &'static str,
    pub positional: usize,
    pub keywords: &'static [&'static str],
    pub result: &'static [&'static str],
}

const fn sdk(
    callee: &'static str,
    sdk_call: &'static str,
    positional: usize,
    keywords: &'static [&'static str],
    result: &'static [&'static str],
) -> SdkRewrite {
    SdkRewrite { callee, sdk_call, positional, keywords, result }
}

/// What `requests`/`httpx` and the Python SDK's `net` calls both take by name.
const PY_ONE_SHOT: &[&str] = &["headers", "timeout"];
const PY_WITH_BODY: &[&str] = &["data", "json", "headers", "timeout"];
/// What a `requests`/`httpx` response and the Python SDK's `Response` both have.
const PY_RESPONSE: &[&str] = &["status_code", "text", "ok", "json", "raise_for_status"];
/// What `fetch`'s `Response` and the JavaScript SDK's both have, of the same types.
const JS_RESPONSE: &[&str] = &["status", "ok", "text", "json"];
/// What `reqwest::blocking::Response` and the Rust SDK's both have, called the same way.
const RS_RESPONSE: &[&str] = &["text"];

/// Python: `requests` and `httpx`'s one-shot calls take the URL first and keyword arguments the
/// SDK's `net` takes too (`headers`, `data`, `json`), and return a response with `status_code`,
/// `text`, `json()`, `ok` and `raise_for_status()`. Sessions, clients, `head`, `urlopen` (whose
/// result is read like a file) and sockets have no SDK equivalent.
static PY_NET_SDK: &[SdkRewrite] = &[
    sdk("requests.get", "symbiont.net.get", 1, PY_ONE_SHOT, PY_RESPONSE),
    sdk("requests.post", "symbiont.net.post", 3, PY_WITH_BODY, PY_RESPONSE),
    sdk("requests.put", "symbiont.net.put", 2, PY_WITH_BODY, PY_RESPONSE),
    sdk("requests.delete", "symbiont.net.delete", 1, PY_ONE_SHOT, PY_RESPONSE),
    sdk("requests.request", "symbiont.net.request", 2, PY_WITH_BODY, PY_RESPONSE),
    sdk("httpx.get", "symbiont.net.get", 1, PY_ONE_SHOT, PY_RESPONSE),
    sdk("httpx.post", "symbiont.net.post", 1, PY_WITH_BODY, PY_RESPONSE),
    sdk("httpx.put", "symbiont.net.put", 1, PY_WITH_BODY, PY_RESPONSE),
    sdk("httpx.delete", "symbiont.net.delete", 1, PY_ONE_SHOT, PY_RESPONSE),
    sdk("httpx.request", "symbiont.net.request", 2, PY_WITH_BODY, PY_RESPONSE),
];

/// JavaScript and TypeScript: `fetch(url, init)` keeps its arguments and its result's `status`,
/// `ok`, `text()` and `json()`. axios (whose result is `{ data }`), got, http(s) and sockets have
/// no SDK equivalent.
static JS_NET_SDK: &[SdkRewrite] =
    &[sdk("fetch", "symbiont.net.fetch", 2, &[], JS_RESPONSE), sdk("undici.fetch", "symbiont.net.fetch", 2, &[], JS_RESPONSE)];

/// Rust: `reqwest::blocking::get(url)` returns a result whose response has `status()`-like fields
/// and `text()`; the async clients (`reqwest::get(..).await`) and builders have no SDK equivalent.
static RS_NET_SDK: &[SdkRewrite] = &[sdk("reqwest::blocking::get", "symbiont::net::get", 1, &[], RS_RESPONSE)];

/// One row of the table; the fields a row rarely sets (argument checks, site kinds, SDK) default.
#[allow(clippy::too_many_arguments)]
const fn rule(
    code: &'static str,
    name: &'static str,
    family: Family,
    operation: &'static str,
    patterns: &'static [&'static str],
    summary: &'static str,
    example: &'static str,
    negative: &'static str,
) -> Rule {
    Rule { code, name, family, operation, kinds: &[SiteKind::Call], patterns, args: ArgCheck::Any, summary, example, negative, sdk: &[] }
}

use Family::{Js, Python as Py, Rust as Rs};

pub static RULES: &[Rule] = &[
    // ---- Python -------------------------------------------------------------------------
    Rule {
        sdk: PY_NET_SDK,
        ..rule(
            "SYM0301",
            "py-network",
            Py,
            "network_access",
            &[
                "requests.get",
                "requests.post",
                "requests.put",
                "requests.delete",
                "requests.patch",
                "requests.head",
                "requests.options",
                "requests.request",
                "requests.Session",
                "requests.session",
                "httpx.get",
                "httpx.post",
                "httpx.put",
                "httpx.delete",
                "httpx.patch",
                "httpx.head",
                "httpx.request",
                "httpx.stream",
                "httpx.Client",
                "httpx.AsyncClient",
                "urllib.request.urlopen",
                "urllib.request.urlretrieve",
                "urllib.request.build_opener",
                "aiohttp.ClientSession",
                "aiohttp.request",
                "socket.socket",
                "socket.create_connection",
                "http.client.HTTPConnection",
                "http.client.HTTPSConnection",
                "urllib3.PoolManager",
                "urllib3.request",
            ],
            "Network access from Python: requests, httpx, urllib, aiohttp, sockets.",
            "import requests\nrequests.get(\"https://example.com\")",
            "import my.requests\nmy.requests.get(\"https://example.com\")",
        )
    },
    Rule {
        args: ArgCheck::OpenModeWrites,
        ..rule(
            "SYM0302",
            "py-file-write",
            Py,
            "file_system_write",
            &[
                "builtins.open",
                "io.open",
                "pathlib.Path().write_text",
                "pathlib.Path().write_bytes",
                "pathlib.Path().open",
                "pathlib.Path().mkdir",
                "pathlib.Path().unlink",
                "pathlib.Path().rmdir",
                "pathlib.Path().rename",
                "pathlib.Path().touch",
                "os.remove",
                "os.unlink",
                "os.rmdir",
                "os.removedirs",
                "os.rename",
                "os.renames",
                "os.replace",
                "os.mkdir",
                "os.makedirs",
                "shutil.rmtree",
                "shutil.move",
                "shutil.copy",
                "shutil.copy2",
                "shutil.copyfile",
                "shutil.copytree",
            ],
            "File writes, deletions and renames from Python: `open` with a writing mode, pathlib writers, os and shutil.",
            "with open(\"out.txt\", \"w\") as f:\n    f.write(\"x\")",
            "with open(\"in.txt\") as f:\n    data = f.read()",
        )
    },
    Rule {
        args: ArgCheck::OpenModeReads,
        ..rule(
            "SYM0303",
            "py-file-read",
            Py,
            "file_read",
            &[
                "builtins.open",
                "io.open",
                "pathlib.Path().open",
                "pathlib.Path().read_text",
                "pathlib.Path().read_bytes",
                "os.listdir",
                "os.scandir",
                "os.walk",
            ],
            "File reads from Python: `open` for reading, pathlib readers, directory listings.",
            "with open(\"in.txt\") as f:\n    data = f.read()",
            "data = load_from_memory(\"in.txt\")",
        )
    },
    rule(
        "SYM0304",
        "py-process",
        Py,
        "spawn_process",
        &[
            "subprocess.run",
            "subprocess.call",
            "subprocess.check_call",
            "subprocess.check_output",
            "subprocess.Popen",
            "subprocess.getoutput",
            "subprocess.getstatusoutput",
            "os.system",
            "os.popen",
            "os.exec*",
            "os.spawn*",
            "os.posix_spawn*",
            "asyncio.create_subprocess_exec",
            "asyncio.create_subprocess_shell",
        ],
        "Starting processes from Python: subprocess, os.system, os.exec*, os.spawn*.",
        "import subprocess\nsubprocess.run([\"ls\"])",
        "import my_subprocess as subprocess_like\nsubprocess_like.describe([\"ls\"])",
    ),
    Rule {
        kinds: &[SiteKind::Call, SiteKind::Reference],
        ..rule(
            "SYM0305",
            "py-env",
            Py,
            "env_access",
            &["os.environ", "os.environ.*", "os.getenv", "os.putenv", "os.unsetenv"],
            "Environment variables from Python: os.environ, os.getenv.",
            "import os\ntoken = os.environ[\"TOKEN\"]",
            "import config\ntoken = config.environ[\"TOKEN\"]",
        )
    },
    rule(
        "SYM0306",
        "py-dynamic-code",
        Py,
        "dynamic_code",
        &["builtins.eval", "builtins.exec", "builtins.compile", "builtins.__import__", "importlib.import_module"],
        "Code built at run time from Python: eval, exec, compile, dynamic imports.",
        "result = eval(expression)",
        "result = ast.literal_eval(expression)",
    ),
    rule(
        "SYM0307",
        "py-secret",
        Py,
        "secret_access",
        &["keyring.get_password", "keyring.get_credential", "hvac.Client"],
        "Secrets from Python: keyring, HashiCorp Vault clients.",
        "import keyring\npassword = keyring.get_password(\"svc\", \"user\")",
        "password = prompt_user(\"svc\", \"user\")",
    ),
    // ---- JavaScript and TypeScript --------------------------------------------------------
    Rule {
        sdk: JS_NET_SDK,
        ..rule(
            "SYM0311",
            "js-network",
            Js,
            "network_access",
            &[
                "fetch",
                "node-fetch",
                "undici.fetch",
                "undici.request",
                "axios",
                "axios.get",
                "axios.post",
                "axios.put",
                "axios.delete",
                "axios.patch",
                "axios.head",
                "axios.request",
                "axios.create",
                "http.request",
                "http.get",
                "https.request",
                "https.get",
                "http2.connect",
                "net.connect",
                "net.createConnection",
                "tls.connect",
                "dgram.createSocket",
                "got",
                "got.*",
                "superagent.*",
            ],
            "Network access from JavaScript and TypeScript: fetch, axios, http(s), net, tls, WebSocket.",
            "const res = await fetch(\"https://example.com\");",
            "function fetch(url) { return cache[url]; }\nconst res = fetch(\"https://example.com\");",
        )
    },
    Rule {
        kinds: &[SiteKind::Construct],
        ..rule(
            "SYM0312",
            "js-websocket",
            Js,
            "socket_connect",
            &["WebSocket", "ws", "ws.WebSocket", "EventSource"],
            "WebSocket and server-sent-event connections from JavaScript and TypeScript.",
            "const socket = new WebSocket(\"wss://example.com\");",
            "const socket = new LocalChannel(\"wss://example.com\");",
        )
    },
    rule(
        "SYM0313",
        "js-file-write",
        Js,
        "file_system_write",
        &[
            "fs.writeFile",
            "fs.writeFileSync",
            "fs.appendFile",
            "fs.appendFileSync",
            "fs.unlink",
            "fs.unlinkSync",
            "fs.rm",
            "fs.rmSync",
            "fs.rmdir",
            "fs.rmdirSync",
            "fs.mkdir",
            "fs.mkdirSync",
            "fs.rename",
            "fs.renameSync",
            "fs.copyFile",
            "fs.copyFileSync",
            "fs.cp",
            "fs.cpSync",
            "fs.createWriteStream",
            "fs.truncate",
            "fs.truncateSync",
            "fs.promises.writeFile",
            "fs.promises.appendFile",
            "fs.promises.unlink",
            "fs.promises.rm",
            "fs.promises.rmdir",
            "fs.promises.mkdir",
            "fs.promises.rename",
            "fs.promises.copyFile",
            "fs.promises.cp",
            "fs.promises.truncate",
            "fs-extra.*",
        ],
        "File writes, deletions and renames from JavaScript and TypeScript: fs, fs/promises.",
        "import { writeFileSync } from \"fs\";\nwriteFileSync(\"out.txt\", data);",
        "import { readFileSync } from \"fs\";\nconst data = readFileSync(\"in.txt\");",
    ),
    rule(
        "SYM0314",
        "js-file-read",
        Js,
        "file_read",
        &[
            "fs.readFile",
            "fs.readFileSync",
            "fs.createReadStream",
            "fs.readdir",
            "fs.readdirSync",
            "fs.promises.readFile",
            "fs.promises.readdir",
            "fs.opendir",
            "fs.opendirSync",
        ],
        "File reads from JavaScript and TypeScript: fs, fs/promises.",
        "const fs = require(\"fs\");\nconst data = fs.readFileSync(\"in.txt\");",
        "const data = memory.readFileSync(\"in.txt\");",
    ),
    rule(
        "SYM0315",
        "js-process",
        Js,
        "spawn_process",
        &[
            "child_process.exec",
            "child_process.execSync",
            "child_process.execFile",
            "child_process.execFileSync",
            "child_process.spawn",
            "child_process.spawnSync",
            "child_process.fork",
            "execa",
            "execa.*",
        ],
        "Starting processes from JavaScript and TypeScript: child_process.",
        "const { execSync } = require(\"child_process\");\nexecSync(\"ls\");",
        "const { execSync } = require(\"./local-shell\");\nexecSync(\"ls\");",
    ),
    Rule {
        kinds: &[SiteKind::Reference, SiteKind::Call],
        ..rule(
            "SYM0316",
            "js-env",
            Js,
            "env_access",
            &["process.env", "process.env.*"],
            "Environment variables from JavaScript and TypeScript: process.env.",
            "const token = process.env.TOKEN;",
            "const token = config.env.TOKEN;",
        )
    },
    rule(
        "SYM0317",
        "js-dynamic-code",
        Js,
        "dynamic_code",
        &["eval", "vm.runInNewContext", "vm.runInThisContext", "vm.runInContext", "vm.compileFunction"],
        "Code built at run time from JavaScript and TypeScript: eval, vm.",
        "const result = eval(expression);",
        "const result = JSON.parse(expression);",
    ),
    Rule {
        kinds: &[SiteKind::Construct, SiteKind::Call],
        ..rule(
            "SYM0318",
            "js-new-function",
            Js,
            "dynamic_code",
            &["Function", "vm.Script"],
            "Functions built from strings in JavaScript and TypeScript: `new Function`, `new vm.Script`.",
            "const f = new Function(\"a\", \"return a * 2\");",
            "const f = (a) => a * 2;",
        )
    },
    // ---- Rust -------------------------------------------------------------------------------
    Rule {
        sdk: RS_NET_SDK,
        ..rule(
            "SYM0321",
            "rs-network",
            Rs,
            "network_access",
            &[
                "reqwest::get",
                "reqwest::Client::new",
                "reqwest::Client::builder",
                "reqwest::ClientBuilder::new",
                "reqwest::blocking::get",
                "reqwest::blocking::Client::new",
                "reqwest::blocking::Client::builder",
                "ureq::get",
                "ureq::post",
                "ureq::put",
                "ureq::delete",
                "ureq::patch",
                "ureq::head",
                "ureq::request",
                "ureq::agent",
                "ureq::Agent::new*",
                "hyper::Client::new",
                "hyper::Client::builder",
                "hyper_util::client::legacy::Client::builder",
                "std::net::TcpStream::connect*",
                "std::net::UdpSocket::bind",
                "std::net::TcpListener::bind",
                "tokio::net::TcpStream::connect",
                "tokio::net::UdpSocket::bind",
                "tokio::net::TcpListener::bind",
            ],
            "Network access from Rust: reqwest, ureq, hyper clients, std::net and tokio::net connections.",
            "let body = reqwest::blocking::get(\"https://example.com\")?.text()?;",
            "let body = cache::get(\"https://example.com\")?;",
        )
    },
    rule(
        "SYM0322",
        "rs-file-write",
        Rs,
        "file_system_write",
        &[
            "std::fs::write",
            "std::fs::File::create*",
            "std::fs::remove_file",
            "std::fs::remove_dir",
            "std::fs::remove_dir_all",
            "std::fs::rename",
            "std::fs::create_dir",
            "std::fs::create_dir_all",
            "std::fs::copy",
            "std::fs::hard_link",
            "std::fs::OpenOptions::new()*.write",
            "std::fs::OpenOptions::new()*.append",
            "std::fs::OpenOptions::new()*.create",
            "std::fs::OpenOptions::new()*.create_new",
            "std::fs::OpenOptions::new()*.truncate",
            "tokio::fs::write",
            "tokio::fs::File::create",
            "tokio::fs::remove_file",
            "tokio::fs::remove_dir",
            "tokio::fs::remove_dir_all",
            "tokio::fs::rename",
            "tokio::fs::create_dir",
            "tokio::fs::create_dir_all",
            "tokio::fs::copy",
            "tokio::fs::OpenOptions::new()*.write",
            "tokio::fs::OpenOptions::new()*.append",
        ],
        "File writes, deletions and renames from Rust: std::fs and tokio::fs writers, `File::create`, `OpenOptions` with write.",
        "std::fs::write(\"out.txt\", data)?;",
        "let data = std::fs::read(\"in.txt\")?;",
    ),
    rule(
        "SYM0323",
        "rs-file-read",
        Rs,
        "file_read",
        &[
            "std::fs::read",
            "std::fs::read_to_string",
            "std::fs::read_dir",
            "std::fs::File::open",
            "tokio::fs::read",
            "tokio::fs::read_to_string",
            "tokio::fs::read_dir",
            "tokio::fs::File::open",
        ],
        "File reads from Rust: std::fs and tokio::fs readers.",
        "let text = std::fs::read_to_string(\"in.txt\")?;",
        "let text = String::from(\"in.txt\");",
    ),
    rule(
        "SYM0324",
        "rs-process",
        Rs,
        "spawn_process",
        &["std::process::Command::new", "tokio::process::Command::new", "std::os::unix::process::CommandExt*"],
        "Starting processes from Rust: std::process and tokio::process `Command`.",
        "let out = std::process::Command::new(\"ls\").output()?;",
        "let out = my_crate::Command::new(\"ls\");",
    ),
    rule(
        "SYM0325",
        "rs-env",
        Rs,
        "env_access",
        &["std::env::var", "std::env::var_os", "std::env::vars", "std::env::vars_os", "std::env::set_var", "std::env::remove_var"],
        "Environment variables from Rust: std::env.",
        "let token = std::env::var(\"TOKEN\")?;",
        "let token = config::var(\"TOKEN\")?;",
    ),
    rule(
        "SYM0326",
        "rs-dynamic-code",
        Rs,
        "dynamic_code",
        &["libloading::Library::new", "libloading::os::unix::Library::new"],
        "Code loaded at run time from Rust: dynamic libraries.",
        "let lib = unsafe { libloading::Library::new(\"plugin.so\")? };",
        "let lib = plugins::Registry::new();",
    ),
];

/// Whether `text` matches a pattern where `*` stands for any run of characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else { return false };
            (0..=tail.len()).filter(|&i| tail.is_char_boundary(i)).any(|i| glob(rest, &tail[i..]))
        }
    }
}

impl Rule {
    pub fn matches(&self, site: &Site) -> bool {
        self.kinds.contains(&site.kind) && self.patterns.iter().any(|p| glob(p, &site.qualified)) && self.args.holds(site)
    }

    /// The summary up to its colon: `Network access from Python`.
    pub fn summary_short(&self) -> &'static str {
        self.summary.split(':').next().unwrap_or(self.summary).trim_end_matches('.')
    }
}

pub fn lookup(code: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.code == code || r.name == code)
}
