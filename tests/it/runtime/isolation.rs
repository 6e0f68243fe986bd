//! Which isolation each tier really gets, as dockerd and the kernel report it (not as the
//! runtime's settings say): Tier 2 runs under gVisor's `runsc` with gVisor's kernel, Tier 1 under
//! runc on the host's kernel. Without this a Tier 2 container silently created under runc (its
//! `runtime` setting dropped) would pass every other test.
//!
//! The probe agent reports the kernel it sees (`/proc/version` and the kernel log, which gVisor
//! fills with its own boot messages), then waits, boundedly, until the host has inspected its
//! container: the host finds the container from dockerd's `start` event, reads its runtime and
//! the host process behind it, and then writes `inspected` in the agent's workspace.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;
use symbiont_runtime::{Limits, State, Tier};

use super::sandbox::{assert_no_container, run_direct, sandbox_ready, Ws};

/// Prints what kernel the agent runs on, then waits for the host (at most ~30 s) to write
/// `inspected` in its workspace, so that its container is still running while it is inspected.
const PROBE: &str = r#"
import ctypes, json, os, time
import symbiont

libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(1 << 16)
n = libc.klogctl(3, buf, len(buf))  # SYSLOG_ACTION_READ_ALL
kernel_log = buf.raw[:n].decode(errors="replace") if n > 0 else "unreadable: errno %d" % ctypes.get_errno()
print(json.dumps({"proc_version": open("/proc/version").read(), "release": os.uname().release, "kernel_log": kernel_log[:4000]}), flush=True)

for _ in range(600):
    try:
        symbiont.fs.read("inspected")
        print("inspected", flush=True)
        break
    except symbiont.BrokerError:
        time.sleep(0.05)
"#;

/// What dockerd says of the agent's container while it runs.
struct Container {
    runtime: String,
    /// The host executable of the container's first process (`State.Pid`): the agent's own
    /// interpreter under runc, gVisor's sandbox (`runsc`) under runsc.
    exe: String,
}

/// The first container dockerd started since `since` (seconds) labelled as `agent` whose mounts
/// lie under `run_root`, inspected while it runs; then `release` is written so the agent ends.
/// Bounded: `docker events` stops by itself 90 s after `since`.
fn inspect_when_started(agent: &str, since: u64, run_root: &Path, release: &Path) -> Result<Container, String> {
    let result = (|| {
        let mut events = Command::new("docker")
            .args(["events", "--since", &since.to_string(), "--until", &(since + 90).to_string()])
            .args(["--filter", "type=container", "--filter", "event=start"])
            .args(["--filter", &format!("label=dev.symbiont.agent={agent}"), "--format", "{{.ID}}"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("docker events: {e}"))?;
        let lines = BufReader::new(events.stdout.take().unwrap()).lines();
        let mut found = Err(format!("no container of agent {agent} started within 90 s"));
        for id in lines.map_while(Result::ok) {
            let out = Command::new("docker")
                .args(["inspect", "--format", "{{.HostConfig.Runtime}} {{.State.Pid}} {{json .Mounts}}", &id])
                .output()
                .map_err(|e| format!("docker inspect: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let mut fields = text.trim().splitn(3, ' ');
            let (runtime, pid, mounts) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""), fields.next().unwrap_or(""));
            if !mounts.contains(run_root.to_str().unwrap()) {
                continue; // another test's container
            }
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).map_err(|e| format!("container {id}: /proc/{pid}/exe: {e}"))?;
            found = Ok(Container { runtime: runtime.to_string(), exe: exe.display().to_string() });
            break;
        }
        // Our own child: stop it now rather than at --until.
        let _ = events.kill();
        let _ = events.wait();
        found
    })();
    let _ = std::fs::write(release, "");
    result
}

fn isolation(tier: Tier) {
    let test = format!("isolation {tier}");
    if !sandbox_ready(&test) {
        return;
    }
    let agent = match tier {
        Tier::GVisor => "probe_tier2",
        _ => "probe_tier1",
    };
    let ws = Ws::new();
    ws.write("probe.py", PROBE);
    ws.write("agent.sym", &format!("agent {agent} {{\n    policy rules {{\n        allow: [\"file_read\"]\n    }}\n}}\n"));
    let release = ws.path(".symbiont/workspaces").join(agent).join("inspected");
    let run_root = ws.tmp.path().to_path_buf();
    // A second early: `docker events --since` replays from whole seconds.
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() - 1;
    let inspector = std::thread::spawn(move || inspect_when_started(agent, since, &run_root, &release));
    let limits = Limits { timeout: Duration::from_secs(60), ..Limits::default() };
    let (report, stdout) = run_direct(&ws, agent, tier, limits, "probe.py", Value::Null);
    let container = inspector.join().unwrap().unwrap_or_else(|e| panic!("{test}: {e}"));
    assert_eq!((report.state, report.exit_code), (State::Completed, Some(0)), "{test}: {report:?}\n{stdout}");
    assert!(stdout.lines().any(|l| l == "inspected"), "{test}: the agent ended before the host inspected it:\n{stdout}");
    let seen: Value = serde_json::from_str(stdout.lines().next().unwrap_or("")).unwrap_or_else(|e| panic!("{test}: {e}: {stdout}"));
    let guest_version = seen["proc_version"].as_str().unwrap();
    let kernel_log = seen["kernel_log"].as_str().unwrap();
    let host_version = std::fs::read_to_string("/proc/version").unwrap();
    let exe_name = Path::new(&container.exe).file_name().unwrap().to_string_lossy().to_string();

    if tier == Tier::GVisor {
        assert_eq!(container.runtime, "runsc", "{test}: dockerd created the container with another runtime");
        assert_eq!(exe_name, "runsc", "{test}: the container's process on the host is {}, not gVisor's sandbox", container.exe);
        assert_ne!(guest_version, host_version, "{test}: the agent sees the host's kernel");
        // gVisor's own kernel log: its first message since its first release.
        assert!(kernel_log.contains("Starting gVisor"), "{test}: the kernel is not gVisor's: {guest_version} {kernel_log}");
    } else {
        assert_eq!(container.runtime, "runc", "{test}");
        assert!(exe_name.starts_with("python"), "{test}: the container's process on the host is {}, not the agent", container.exe);
        assert_eq!(guest_version, host_version, "{test}: the agent does not see the host's kernel");
        assert!(!kernel_log.contains("gVisor"), "{test}: {kernel_log}");
    }
    assert_no_container(&report.run_id);
    ws.assert_clean_dir();
}

#[test]
fn tier2_runs_under_gvisor() {
    isolation(Tier::GVisor);
}

#[test]
fn tier1_runs_under_runc_on_the_host_kernel() {
    isolation(Tier::Docker);
}
