//! Retention end to end (issue 18, item 1): an agent with a short `retention_period`, run by
//! `symbiont run` in its sandbox (Tier 1, dockerd), writes files through its broker; each carries
//! its expiry from the moment it exists; `symbiont gc` keeps them before it, lists them with
//! `--dry-run` after it without deleting, then deletes them and says so. What another agent
//! without retention wrote, what the user put in the workspace, and the audit log stay. The
//! workspace's service (`symbiont up`) collects the same way at its start.

use std::{
    os::fd::AsFd,
    time::{Duration, Instant, SystemTime},
};

use super::{
    sandbox::{sandbox_ready, Ws},
    service::Up,
};

const WRITER: &str = r#"
import symbiont
symbiont.fs.write("report.txt", "the report")
symbiont.fs.write("notes/day1.txt", "first")
symbiont.fs.write("notes/day1.txt", ", second", append=True)
print("written")
"#;

/// `retention_period` is the shortest the policies state: the 10 seconds of the inline policy,
/// not the 90 days of the applied one.
const AGENTS: &str = r#"policy ninety_days {
    conditions: { retention_period: 90.days }
}

agent writer {
    implementation = ["writer.py"]
    policies = [ninety_days]
    security = { tier: Tier1, memory: 256MB, timeout: 60s }
    policy rules {
        allow: file_system_write
        conditions: { retention_period: 10.seconds }
    }
}

agent keeper {
    implementation = ["writer.py"]
    security = { tier: Tier1, memory: 256MB, timeout: 60s }
    policy rules {
        allow: file_system_write
    }
}
"#;

/// The expiry marked on a workspace file.
fn expiry(ws: &Ws, relative: &str) -> Option<SystemTime> {
    let file = std::fs::File::open(ws.path(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"));
    symbiont_runtime::retention::expiry(file.as_fd()).unwrap()
}

#[test]
fn outputs_expire_with_their_agents_retention() {
    let test = "outputs expire with their agent's retention";
    if !sandbox_ready(test) {
        return;
    }
    let ws = Ws::new();
    ws.write("writer.py", WRITER);
    ws.write("agents.sym", AGENTS);
    ws.write(".symbiont/workspaces/writer/input.txt", "the user's own file");
    let before = SystemTime::now();
    for agent in ["writer", "keeper"] {
        let run = ws.run(&["run", "agents.sym", "--agent", agent]);
        assert_eq!(run.code, 0, "{test}: {agent}\nstdout: {}\nstderr: {}", run.stdout, run.stderr);
        assert!(run.stdout.contains("written"), "{test}: {}", run.stdout);
        ws.assert_clean(&run);
    }
    let audited = ws.audit().len();

    // Marked at the write: 10 s after it (rounded up to the second), never 90 days.
    let expires = expiry(&ws, ".symbiont/workspaces/writer/report.txt").expect("the writer's output carries an expiry");
    let after = SystemTime::now();
    assert!(expires >= before + Duration::from_secs(10) && expires <= after + Duration::from_secs(11), "{test}: {expires:?}");
    assert!(expiry(&ws, ".symbiont/workspaces/writer/notes/day1.txt").is_some(), "{test}: the appended file is marked");
    assert_eq!(expiry(&ws, ".symbiont/workspaces/keeper/report.txt"), None, "{test}: no retention, no expiry");
    assert_eq!(expiry(&ws, ".symbiont/workspaces/writer/input.txt"), None);

    // Before the expiry: nothing is deleted.
    let early = ws.run(&["gc"]);
    assert!(SystemTime::now() < expires, "{test}: the machine was too slow to run gc before the expiry");
    assert_eq!(early.code, 0, "{test}: {}{}", early.stdout, early.stderr);
    assert_eq!(
        early.stdout.lines().last().unwrap_or(""),
        format!(
            "0 files deleted (0 bytes); 2 kept until their retention ends, the next at {}; 3 without retention, never deleted",
            s3(expires)
        ),
        "{test}"
    );
    std::thread::sleep(expires.duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_millis(1100));

    // After it, a dry run lists both files and deletes neither.
    let dry = ws.run(&["gc", "--dry-run"]);
    assert_eq!(dry.code, 0, "{test}: {}{}", dry.stdout, dry.stderr);
    let listed: Vec<&str> = dry.stdout.lines().collect();
    assert_eq!(listed.len(), 3, "{test}: {}", dry.stdout);
    assert!(
        listed[0].starts_with("would delete .symbiont/workspaces/writer/notes/day1.txt (agent writer, 13 bytes, expired "),
        "{test}: {}",
        dry.stdout
    );
    assert!(
        listed[1].starts_with("would delete .symbiont/workspaces/writer/report.txt (agent writer, 10 bytes, expired "),
        "{test}: {}",
        dry.stdout
    );
    assert_eq!(listed[2], "2 files would be deleted (23 bytes); 0 kept until their retention ends; 3 without retention, never deleted");
    assert!(ws.path(".symbiont/workspaces/writer/report.txt").exists() && ws.path(".symbiont/workspaces/writer/notes/day1.txt").exists());

    // Then gc deletes them, and the directory they emptied, and says so; the rest stays.
    let gc = ws.run(&["gc"]);
    assert_eq!(gc.code, 0, "{test}: {}{}", gc.stdout, gc.stderr);
    assert_eq!(gc.stdout.replace("would delete", "deleted").replace("would be deleted", "deleted"), gc.stdout, "{test}");
    assert_eq!(gc.stdout, dry.stdout.replace("would delete", "deleted").replace("would be deleted", "deleted"), "{test}");
    for gone in ["writer/report.txt", "writer/notes"] {
        assert!(!ws.path(&format!(".symbiont/workspaces/{gone}")).exists(), "{test}: {gone} is left");
    }
    for kept in ["writer/input.txt", "keeper/report.txt", "keeper/notes/day1.txt"] {
        assert!(ws.path(&format!(".symbiont/workspaces/{kept}")).exists(), "{test}: {kept} was deleted");
    }
    // The audit log is whole: it still verifies, with every entry.
    assert_eq!(ws.audit().len(), audited, "{test}: gc never touches the audit log");
    let again = ws.run(&["gc"]);
    assert!(again.stdout.starts_with("0 files deleted"), "{test}: {}", again.stdout);

    // The service collects at its start (and then hourly): written again, expired, and gone
    // once `symbiont up` serves, which says what it deleted.
    let run = ws.run(&["run", "agents.sym", "--agent", "writer"]);
    assert_eq!(run.code, 0, "{test}\nstdout: {}\nstderr: {}", run.stdout, run.stderr);
    let expires = expiry(&ws, ".symbiont/workspaces/writer/report.txt").expect("marked");
    std::thread::sleep(expires.duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_millis(1100));
    let up = Up::start(&ws);
    let deadline = Instant::now() + Duration::from_secs(30);
    while ws.path(".symbiont/workspaces/writer/report.txt").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, said) = up.terminate();
    assert_eq!(code, 0, "{test}: {said}");
    assert!(!ws.path(".symbiont/workspaces/writer/report.txt").exists(), "{test}: the service did not collect:\n{said}");
    for line in [
        "symbiont up: gc: deleted .symbiont/workspaces/writer/notes/day1.txt (agent writer, 13 bytes, expired ",
        "symbiont up: gc: deleted .symbiont/workspaces/writer/report.txt (agent writer, 10 bytes, expired ",
        "symbiont up: gc: 2 files deleted (23 bytes); 0 kept until their retention ends; 3 without retention, never deleted",
    ] {
        assert!(said.contains(line), "{test}: {line:?} not in:\n{said}");
    }
    assert!(ws.path(".symbiont/workspaces/keeper/report.txt").exists() && ws.path(".symbiont/workspaces/writer/input.txt").exists());
}

fn s3(at: SystemTime) -> String {
    symbiont_audit::backup::s3_time(at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_micros() as i64)
}

/// What `gc` cannot judge it leaves, naming it on standard error with why, and exits 1; a usage
/// error exits 2. No sandbox is needed: the mark is set by hand (with Python's `os.setxattr`).
#[test]
fn gc_leaves_what_it_cannot_judge_and_says_why() {
    let ws = Ws::new();
    ws.write(".symbiont/workspaces/a/odd.txt", "marked by hand");
    ws.write(".symbiont/workspaces/a/old.txt", "expired long ago");
    let mark = |file: &str, value: &str| {
        let path = ws.path(&format!(".symbiont/workspaces/a/{file}"));
        let script = format!("import os; os.setxattr({:?}, 'user.symbiont.expires', b'{value}')", path.display().to_string());
        assert!(std::process::Command::new("python3").args(["-c", &script]).status().unwrap().success());
    };
    mark("odd.txt", "soon");
    mark("old.txt", "100");
    let gc = ws.run(&["gc"]);
    assert_eq!(gc.code, 1, "{}{}", gc.stdout, gc.stderr);
    assert_eq!(
        gc.stderr,
        "error: .symbiont/workspaces/a/odd.txt: its user.symbiont.expires is \"soon\", not a number of seconds; left in place\n"
    );
    assert!(
        gc.stdout.starts_with("deleted .symbiont/workspaces/a/old.txt (agent a, 16 bytes, expired 1970-01-01T00:01:40Z)\n"),
        "{}",
        gc.stdout
    );
    assert!(ws.path(".symbiont/workspaces/a/odd.txt").exists() && !ws.path(".symbiont/workspaces/a/old.txt").exists());

    for (args, why) in [(&["gc", "--force"][..], "invalid option '--force'"), (&["gc", "no-such-dir"][..], "no-such-dir")] {
        let run = ws.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(why), "{args:?}: {}", run.stderr);
    }
}

/// `check` reports a `retention_period` that is no duration (SYM0108, an error: the broker would
/// refuse every write of the agent), and accepts each form a duration takes.
#[test]
fn check_reports_a_retention_that_is_no_duration() {
    let text = "policy quantity {\n    conditions: { retention_period: 2.seconds }\n}\n\
        policy text {\n    conditions: { retention_period: \"30d\" }\n}\n\
        policy days {\n    conditions: { retention_period: 7 }\n}\n\
        policy forever {\n    conditions: { retention_period: \"forever\" }\n}\n\
        policy negative {\n    conditions: { retention_period: -3 }\n}\n";
    let report = crate::malformed::render_with_config("retention.sym", text, None);
    let lines: Vec<&str> = report.lines().filter(|l| l.contains("retention_period")).collect();
    assert_eq!(lines.len(), 2, "{report}");
    assert!(
        lines[0].starts_with("11:5..11:48 SYM0108 error: the condition retention_period is \"forever\", which is not a duration"),
        "{report}"
    );
    assert!(
        lines[1].starts_with("14:5..14:41 SYM0108 error: the condition retention_period is \"-3\", which is not a duration"),
        "{report}"
    );
    assert!(lines.iter().all(|l| l.ends_with("; the broker refuses the agent's writes")), "{report}");
}
