//! The broker's file operations and the staging of implementation files, attacked (issue 13,
//! findings 1–4 and 11): paths spelt another way than the one a guard compares, links swapped in
//! by a host process while the agent reads and writes, a workspace that is a link, and
//! implementation files that are links to host files.
//!
//! The sandbox tests skip, saying why, when no sandbox is set up, unless
//! `SYMBIONT_REQUIRE_SANDBOX` is set: then they fail.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde_json::Value;

use super::sandbox::{entries_of, sandbox_ready, Ws};

const TOPSECRET: &str = "TOPSECRET-d41c";
const KEY: &str = "KEYMATERIAL-88e2";
const PROTECTED: &str = "PROTECTED-ORIGINAL";

/// Tries each path, printing one JSON object: path -> `ok: CONTENT` or the error's code.
const PROBE: &str = r#"
import json, sys
import symbiont

def attempt(fn):
    try:
        return "ok: " + str(fn())
    except symbiont.BrokerError as e:
        return "error: " + e.code

reads = ["topsecret.txt/", "topsecret.txt/.", "./topsecret.txt", "topsecret.txt//", "topsecret.txt",
         "id.key/.", "id.key/", "./id.key", "id.key", "../x", "/etc/passwd", "ok.txt"]
writes = ["protected.txt//", "protected.txt/.", "./protected.txt", "protected.txt/", "protected.txt",
          "../x", "/etc/passwd", "out.txt"]
results = {"read " + p: attempt(lambda p=p: symbiont.fs.read(p)) for p in reads}
results.update({"write " + p: attempt(lambda p=p: symbiont.fs.write(p, "OVERWRITTEN")) for p in writes})
print(json.dumps(results))
sys.stdout.flush()
"#;

fn prober_sym(tier: u8, file: &str) -> String {
    format!(
        r#"agent prober {{
    implementation = ["{file}"]
    security = {{ tier: Tier{tier}, memory: 256MB, timeout: 60s }}
    policy rules {{
        allow: ["file_read", "file_system_write"]
        deny: file_read(path) if path == "topsecret.txt"
        deny: file_read(path) if path.ends_with(".key")
        deny: file_system_write(path) if path == "protected.txt"
    }}
}}
"#
    )
}

/// Every other spelling of a guarded path is refused before the policy decides, and audited as
/// refused; the canonical spelling meets the guard. Nothing guarded reaches the agent.
fn other_spellings(tier: u8) {
    let test = format!("other spellings of guarded paths, Tier{tier}");
    if !sandbox_ready(&test) {
        return;
    }
    let ws = Ws::new();
    ws.write("probe.py", PROBE);
    ws.write("agent.sym", &prober_sym(tier, "probe.py"));
    for (name, text) in [("topsecret.txt", TOPSECRET), ("id.key", KEY), ("protected.txt", PROTECTED), ("ok.txt", "fine")] {
        ws.write(&format!(".symbiont/workspaces/prober/{name}"), text);
    }
    let run = ws.run(&["run", "agent.sym"]);
    assert_eq!(run.code, 0, "{test}\nstdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stderr.contains(&format!("at Tier{tier}")), "{test}: {}", run.stderr);
    for secret in [TOPSECRET, KEY, PROTECTED] {
        assert!(!run.stdout.contains(secret), "{test}: {secret} reached the agent:\n{}", run.stdout);
    }
    let results: Value = serde_json::from_str(run.stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    let result = |probe: &str| results[probe].as_str().unwrap_or_else(|| panic!("{test}: no result for {probe}: {results}")).to_string();
    // The probes that are not refused work: the test is not passing because nothing does.
    assert_eq!(result("read ok.txt"), "ok: fine", "{test}");
    assert_eq!(result("write out.txt"), "ok: 11", "{test}");
    let canonical = ["read topsecret.txt", "read id.key", "write protected.txt"];
    for (probe, outcome) in results.as_object().unwrap() {
        if probe == "read ok.txt" || probe == "write out.txt" {
            continue;
        }
        let expected = if canonical.contains(&probe.as_str()) { "error: denied" } else { "error: bad_request" };
        assert_eq!(outcome, expected, "{test}: {probe}");
    }
    let protected = std::fs::read_to_string(ws.path(".symbiont/workspaces/prober/protected.txt")).unwrap();
    assert_eq!(protected, PROTECTED, "{test}: the write guard was passed");

    // Each refused or denied probe is in the audit log as such, with why; none is `allow`.
    let entries = ws.audit();
    for (operation, verb) in [("file_read", "read"), ("file_system_write", "write")] {
        for entry in entries_of(&entries, operation) {
            let path = entry["details"]["request"]["path"].as_str().unwrap();
            let probe = format!("{verb} {path}");
            let decision = entry["decision"].as_str().unwrap();
            if probe == "read ok.txt" || probe == "write out.txt" {
                assert_eq!(decision, "allow", "{test}: {entry}");
                continue;
            }
            assert_eq!(decision, "deny", "{test}: {probe} was audited {decision}: {entry}");
            if !canonical.contains(&probe.as_str()) {
                assert_eq!(entry["details"]["reason"], "InvalidPath", "{test}: {entry}");
                assert!(entry["details"]["refused"].as_str().is_some_and(|why| why.contains("is refused")), "{test}: {entry}");
            }
        }
    }
    let audited = entries_of(&entries, "file_read").len() + entries_of(&entries, "file_system_write").len();
    assert_eq!(audited, results.as_object().unwrap().len(), "{test}: one entry per request");
    ws.assert_clean(&run);
}

#[test]
fn other_spellings_of_guarded_paths_tier1() {
    other_spellings(1);
}

#[test]
fn other_spellings_of_guarded_paths_tier2() {
    other_spellings(2);
}

/// Reads and writes in a loop, printing whatever it read that is not the workspace's own text.
const LOOPER: &str = r#"
import sys, time
import symbiont

seen = set()
start = time.time()
rounds = 0
while rounds < 400 and time.time() - start < 8:
    for path in ["data.txt", "sub/data.txt"]:
        try:
            text = symbiont.fs.read(path)
            if text != "inside":
                seen.add(text)
        except symbiont.BrokerError:
            pass
        try:
            symbiont.fs.write(path.replace("data", "out"), "written by the agent", append=rounds % 2 == 0)
        except symbiont.BrokerError:
            pass
    rounds += 1
print("rounds", rounds)
print("seen", sorted(seen))
sys.stdout.flush()
"#;

/// A host process swaps a workspace file and a parent directory for links to a secret file and
/// a directory outside, and back, while the agent reads and writes: the secret never reaches the
/// agent and nothing is written outside. The swapper is bounded by iterations and time, and
/// stops when the run ends.
fn swapped_links(tier: u8) {
    let test = format!("links swapped in during file operations, Tier{tier}");
    if !sandbox_ready(&test) {
        return;
    }
    const SECRET: &str = "HOST-SECRET-c0ffee";
    let ws = Ws::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("data.txt"), SECRET).unwrap();
    std::fs::create_dir(outside.path().join("sub")).unwrap();
    std::fs::write(outside.path().join("sub/data.txt"), SECRET).unwrap();
    ws.write("looper.py", LOOPER);
    ws.write("agent.sym", &prober_sym(tier, "looper.py"));
    let root = ws.path(".symbiont/workspaces/prober");
    ws.write(".symbiont/workspaces/prober/data.txt", "inside");
    ws.write(".symbiont/workspaces/prober/sub/data.txt", "inside");
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, root, outside) = (stop.clone(), root.clone(), outside.path().to_path_buf());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut swaps = 0;
            while swaps < 1_000_000 && !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let name = if swaps % 2 == 0 { "data.txt" } else { "sub" };
                swap(&root.join(name), &outside.join(name));
                swaps += 1;
            }
            swaps
        })
    };
    let run = ws.run(&["run", "agent.sym"]);
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert_eq!(run.code, 0, "{test}\nstdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(!run.stdout.contains(SECRET), "{test}: the agent read the host's file:\n{}", run.stdout);
    assert!(run.stdout.contains("seen []"), "{test}: {}", run.stdout);
    assert!(swaps > 100, "{test}: the swapper ran ({swaps} swaps)");
    // Outside: the same two files, unchanged, and nothing else (no temporary file either).
    let mut names = Vec::new();
    for dir in [outside.path(), &outside.path().join("sub")] {
        names.extend(std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()));
    }
    names.sort();
    assert_eq!(names, ["data.txt", "data.txt", "sub"], "{test}: something was written outside the workspace");
    for file in ["data.txt", "sub/data.txt"] {
        assert_eq!(std::fs::read_to_string(outside.path().join(file)).unwrap(), SECRET, "{test}: {file} outside was written");
    }
    ws.assert_clean(&run);
}

/// Moves `real` aside, puts a link to `target` in its place, then puts it back.
fn swap(real: &Path, target: &Path) {
    let parked = real.with_extension("parked");
    if std::fs::rename(real, &parked).is_ok() {
        let _ = std::os::unix::fs::symlink(target, real);
        std::thread::yield_now();
        let _ = std::fs::remove_file(real);
        let _ = std::fs::rename(&parked, real);
    }
}

#[test]
fn swapped_links_never_reach_outside_tier1() {
    swapped_links(1);
}

#[test]
fn swapped_links_never_reach_outside_tier2() {
    swapped_links(2);
}

/// A run that must be refused before anything runs: exit 2, the message naming `names` and
/// `why`, the agent never started (no lifecycle entry, no output).
fn assert_refused(ws: &Ws, names: &str, why: &str) {
    let run = ws.run(&["run", "agent.sym"]);
    assert_eq!(run.code, 2, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stderr.contains(names) && run.stderr.contains(why), "the message names {names} and {why}: {}", run.stderr);
    assert!(!run.stdout.contains("RAN"), "the agent ran: {}", run.stdout);
    let log = ws.path(".symbiont/audit");
    if log.exists() {
        let entries = ws.audit();
        let started: Vec<_> =
            entries_of(&entries, "lifecycle").into_iter().filter(|e| e["decision"] != "created" && e["decision"] != "failed").collect();
        assert!(started.is_empty(), "nothing may start: {started:?}");
    }
    ws.assert_clean_dir();
}

fn runner(ws: &Ws) {
    ws.write("agent.py", "import symbiont\nprint('RAN', symbiont.fs.read('secret.txt'))\n");
    ws.write("agent.sym", "agent worker {\n    implementation = [\"agent.py\"]\n    security = { tier: Tier1 }\n    policy rules {\n        allow: [\"file_read\"]\n    }\n}\n");
}

/// `.symbiont/workspaces/AGENT -> /`, a parent `.symbiont/workspaces -> elsewhere`, a workspace
/// owned by another user, or a file where the directory should be: each refuses the run.
#[test]
fn a_workspace_that_is_a_link_or_not_owned_refuses_the_run() {
    let ws = Ws::new();
    runner(&ws);
    std::fs::create_dir_all(ws.path(".symbiont/workspaces")).unwrap();
    std::os::unix::fs::symlink("/", ws.path(".symbiont/workspaces/worker")).unwrap();
    assert_refused(&ws, ".symbiont/workspaces/worker", "symbolic link");

    let ws = Ws::new();
    runner(&ws);
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir(elsewhere.path().join("worker")).unwrap();
    std::fs::write(elsewhere.path().join("worker/secret.txt"), "ELSEWHERE-SECRET").unwrap();
    std::fs::create_dir_all(ws.path(".symbiont")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), ws.path(".symbiont/workspaces")).unwrap();
    assert_refused(&ws, ".symbiont/workspaces", "symbolic link");

    let ws = Ws::new();
    runner(&ws);
    std::os::unix::fs::symlink(elsewhere.path(), ws.path(".symbiont")).unwrap();
    assert_refused(&ws, ".symbiont", "symbolic link");
    assert!(!elsewhere.path().join("audit.key").exists(), "the key was written through the link");

    // Giving the directory away needs root, as CI runs (where the case must run); elsewhere it
    // is left out, saying so.
    let ws = Ws::new();
    runner(&ws);
    std::fs::create_dir_all(ws.path(".symbiont/workspaces/worker")).unwrap();
    match std::os::unix::fs::chown(ws.path(".symbiont/workspaces/worker"), Some(54321), None) {
        Ok(()) => assert_refused(&ws, ".symbiont/workspaces/worker", "owned by uid 54321"),
        Err(e) if std::env::var_os("CI").is_none() => eprintln!("SKIPPED the not-owned workspace case: chown needs root ({e})"),
        Err(e) => panic!("the not-owned workspace case must run in CI, as root: {e}"),
    }

    let ws = Ws::new();
    runner(&ws);
    ws.write(".symbiont/workspaces/worker", "a file");
    assert_refused(&ws, ".symbiont/workspaces/worker", "not a directory");

    // The audit log may not be put where the agent's file operations reach.
    let ws = Ws::new();
    runner(&ws);
    let run = ws.run(&["run", "agent.sym", "--audit-log", ".symbiont/workspaces/worker/log"]);
    assert_eq!(run.code, 2, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stderr.contains("is inside the agent's workspace"), "{}", run.stderr);
    assert!(!run.stdout.contains("RAN"), "the agent ran: {}", run.stdout);
}

/// What a repository may ship in `.symbiont/` beside the workspaces: a signing key it knows (git
/// checks files out 0644), a link to a key, or a link for the audit log's directory. Each refuses
/// the run before anything is signed or written there.
#[test]
fn a_shipped_key_or_audit_link_refuses_the_run() {
    let known_key = tempfile::tempdir().unwrap();
    let key = known_key.path().join("audit.key");
    // A key as `symbiont audit keygen` writes it (0600), its public key beside it.
    let public = symbiont_audit::keys::FileSigner::generate().unwrap().write(&key).unwrap();
    for (case, expect) in [("shipped key", "must be mode 0600"), ("linked key", "symbolic link"), ("linked log", "symbolic link")] {
        let ws = Ws::new();
        runner(&ws);
        std::fs::create_dir_all(ws.path(".symbiont")).unwrap();
        match case {
            "shipped key" => {
                std::fs::copy(&key, ws.path(".symbiont/audit.key")).unwrap();
                std::fs::set_permissions(ws.path(".symbiont/audit.key"), std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
            }
            "linked key" => std::os::unix::fs::symlink(&key, ws.path(".symbiont/audit.key")).unwrap(),
            _ => std::os::unix::fs::symlink(known_key.path(), ws.path(".symbiont/audit")).unwrap(),
        }
        let run = ws.run(&["run", "agent.sym"]);
        assert_ne!(run.code, 0, "{case}: stdout: {}\nstderr: {}", run.stdout, run.stderr);
        assert!(run.stderr.contains(expect), "{case}: {}", run.stderr);
        assert!(!run.stdout.contains("RAN"), "{case}: the agent ran: {}", run.stdout);
        let written: Vec<_> = std::fs::read_dir(known_key.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(written.len(), 2, "{case}: something was written where the repository points: {written:?}");
    }
    assert!(public.exists());
}

/// An implementation file that is a link to a host file (or to the process's environment) is
/// not staged: the run is refused and the host's file never reaches the sandbox.
#[test]
fn implementation_files_that_are_links_refuse_the_run() {
    if !sandbox_ready("implementation files that are links") {
        return;
    }
    const SECRET: &str = "HOST-SHADOW-5eed";
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("shadow"), SECRET).unwrap();
    for (target, expect) in [(outside.path().join("shadow"), SECRET), ("/proc/self/environ".into(), "SYMBIONT_SECRET_STAGED")] {
        let ws = Ws::new();
        ws.write("agent.py", "print('RAN', open('/agent/notes.txt').read())\n");
        ws.write("agent.sym", "agent worker {\n    implementation = [\"agent.py\", \"notes.txt\"]\n    security = { tier: Tier1 }\n}\n");
        std::os::unix::fs::symlink(&target, ws.path("notes.txt")).unwrap();
        let run = ws.command(&["run", "agent.sym"]).env("SYMBIONT_SECRET_STAGED", "STAGED-ENV-SECRET").output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
        assert_eq!(run.status.code(), Some(2), "{target:?}\nstdout: {stdout}\nstderr: {stderr}");
        assert!(stderr.contains("notes.txt") && stderr.contains("symbolic link"), "{stderr}");
        for secret in [expect, SECRET, "STAGED-ENV-SECRET"] {
            assert!(!stdout.contains(secret) && !stderr.contains(secret), "{secret} leaked: {stdout}{stderr}");
        }
        assert!(!stdout.contains("RAN"), "{stdout}");
        ws.assert_clean_dir();
    }
}
