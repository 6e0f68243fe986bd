//! Shared helpers for the integration tests in `it/`.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives in the repository").to_path_buf()
}

/// A binary of the workspace, built on first use: cargo builds integration tests' dependencies but
/// not another package's binaries, so the tests build it themselves (a no-op when it is fresh),
/// with the profile and into the target directory they run from. The environment variable
/// `override_var` names a prebuilt binary instead. Callers keep the path (a `OnceLock`).
pub fn workspace_binary(package: &str, bin: &str, override_var: &str) -> PathBuf {
    use std::process::{Command, Stdio};
    if let Some(path) = std::env::var_os(override_var) {
        return PathBuf::from(path);
    }
    // Tests run as <target>/<profile>/deps/it-<hash>.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("<target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("<target>");
    let profile = profile_dir.file_name().and_then(|n| n.to_str()).expect("a profile name");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", package, "--bin", bin]);
    if profile != "debug" {
        build.args(["--profile", if profile == "release" { "release" } else { profile }]);
    }
    let output = build.env("CARGO_TARGET_DIR", target_dir).current_dir(repo_root()).stdin(Stdio::null()).output().expect("cargo runs");
    assert!(output.status.success(), "building {bin} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let binary = profile_dir.join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    assert!(binary.is_file(), "{} was not built", binary.display());
    binary
}

/// The shared corpus of real `.sym` files written elsewhere.
pub fn corpus_dir() -> PathBuf {
    std::env::var_os("SYMBIONT_CORPUS").map(PathBuf::from).unwrap_or_else(|| repo_root().join("../shared/corpus/upstream-agents"))
}

/// Every corpus file with its text, sorted by path. Panics when the corpus is missing, so a
/// misplaced checkout fails loudly instead of testing nothing.
pub fn corpus_files() -> Vec<(PathBuf, String)> {
    let dir = corpus_dir();
    let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the corpus at {}: {e}", dir.display()))
        .map(|entry| entry.expect("readable corpus entry").path())
        .filter(|path| matches!(path.extension().and_then(|e| e.to_str()), Some("sym" | "symbi")))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, text)
        })
        .collect();
    files.sort();
    assert!(files.len() >= 10, "expected the corpus at {} to hold its files", dir.display());
    files
}

/// Copies the directory tree `from` to `to`, leaving out the files whose name `skip` says.
pub fn copy_dir(from: &Path, to: &Path, skip: &dyn Fn(&std::ffi::OsStr) -> bool) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target, skip);
        } else if !skip(&entry.file_name()) {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// JSON-RPC's framing as LSP uses it (`Content-Length`, a blank line, the body), for the clients
/// that drive `symbiont-lsp` over its stdio: the tests' and the `lsp` benchmark's.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// The body of the next frame on `reader`; `None` at the end of the stream or on a frame without
/// a `Content-Length`.
pub fn read_frame(reader: &mut impl std::io::BufRead) -> Option<Vec<u8>> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("Content-Length:") {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}

/// The one pseudo-random generator of the tests and benchmarks: xorshift64 (Marsaglia's 13, 7,
/// 17). Small and fixed on purpose: a seed gives the same sequence on every machine and with
/// every version of every dependency, so a failing sequence is replayed by its seed. Not for
/// anything that needs unpredictability.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed`, which must not be 0 (xorshift's one fixed point).
    pub fn new(seed: u64) -> XorShift {
        assert_ne!(seed, 0, "xorshift stays at 0 forever");
        XorShift(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// About 820 bytes a block: a comment, an agent with an inline policy and a body, and a type.
/// Each block has one warning, SYM0201 (`write_data` is no operation of the catalogue).
pub fn huge_sym_block(n: usize) -> String {
    format!(
        "// Reviewer {n}: reads a change and reports what it finds. It never writes, and every
// decision it takes is logged, so that a run can be audited afterwards.
agent reviewer_{n}(target: String) -> Report_{n} {{
    capabilities = [\"read\", \"analyze\"]
    description = \"Reviews the working tree for correctness bugs, security issues and clarity problems; produces a concise list of findings with file and line references and a one-line verdict.\"

    policy review_only_{n} {{
        allow: [\"read\", \"analyze\"]
        deny: [\"write_data\", \"execute_code\", \"network_access\"]
        audit: {{ log_level: \"info\", include_findings: true }}
    }}

    with memory = \"ephemeral\", sandbox = \"Tier1\", timeout = 30.seconds {{
        return review(target);
    }}
}}

type Report_{n} = {{ verdict: String, findings: List<String> }}

"
    )
}

/// A generated `.sym` text of at least `bytes` bytes, blocks of [`huge_sym_block`], and their
/// number: the one huge file of the language server's test and of `bench/run lsp-large`.
pub fn huge_sym_text(bytes: usize) -> (String, usize) {
    let mut text = String::with_capacity(bytes + 1000);
    let mut n = 0;
    while text.len() < bytes {
        text.push_str(&huge_sym_block(n));
        n += 1;
    }
    (text, n)
}
