//! `symbiont run` and `symbiont image build`: hand an agent to `symbiont-runtime`, stream its
//! output, and exit with its status. This module resolves what the `.sym` says (the agent, its
//! effective policy, its implementation, its security settings), assesses the risk, and reports;
//! the runtime decides and enforces.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use lexopt::{Arg, Parser, ValueExt};
use serde_json::json;
use symbiont_runtime::{
    image::{self, ImageKind},
    AgentRuntime, Auditor, OutputStream, Tier,
};

use crate::{
    compose::{self, refuse, Ending, Refusal, RunRequest, Workspace},
    usage::{Parsed, UsageError},
    Exit,
};

pub const RUN_HELP: &str = "\
Run an agent in its sandbox, under its policy, with every boundary crossing audited

Usage: symbiont run FILE.sym [OPTIONS]

Options:
      --agent <NAME>      The agent to run (needed when FILE defines more than one)
      --tier <TIER>       auto, 1, 2 or 3 [default: auto]: raises the tier the risk assessment and
                          the .sym choose, never lowers it
      --audit-log <DIR>   The audit log [default: WORKSPACE/.symbiont/audit]
      --key <KEY>         The signing key: a key file or a PKCS#11 URI
                          [default: WORKSPACE/.symbiont/audit.key, created (0600) when missing]
      --input <JSON>      The agent's input (SYMBIONT_INPUT in the sandbox)
      --context <JSON>    A JSON object whose top-level keys are names the policy's guards and
                          requirements read, e.g. '{\"user_clearance\": \"developer\"}'
                          [default: symbiont.toml's [run] context, with [run.agents.NAME]
                          context's keys over it]
      --timeout <DUR>     Lower the execution timeout (e.g. 30s, 5m)
      --lock-wait <DUR>   How long to wait for another run writing the same audit log to finish
                          (runs of one workspace take turns on its log) [default: 60s]
      --summary <FORMAT>  The closing summary on standard error: human or json [default: human]
                          (json: one object with agent, run_id, state, exit_code, tier,
                          duration_ms, pooled, error, audit_log and audit_seqs, the run's first
                          and last entry)
      --warm              Run in a warm container an earlier `symbiont run --warm` left for
                          the same tier, image and limits, if one is ready; then, after the run,
                          leave one for the next (made by a detached process). Idle ones are
                          removed after 10 minutes; `symbiont pool drain` removes them all
  -h, --help              Print help

WORKSPACE is the directory of the nearest symbiont.toml above FILE, or FILE's directory.
The agent's output streams to standard output and error; a summary goes to standard error.

Exit status: the agent's own exit status when it ran to its end; 124 when it timed out;
137 when it was killed (out of memory, or SIGINT/Ctrl-C, SIGTERM, SIGHUP: the run cleans up
first); 69 when the sandbox or its image is not available (nothing weaker is tried); 77 when
the policy or the security settings refuse the run; 70 when the runtime failed (audit log, host
set-up); 2 on a usage or workspace error.
";

pub const IMAGE_HELP: &str = "\
Build the sandbox images from Debian packages (no registry needed)

Usage: symbiont image build [KIND]...
       symbiont image build --tier 3

Arguments:
  [KIND]...     python, node, minimal [default: all three]

Options:
      --tier <TIER>  1 or 2 (the default): the images above; 3: the Firecracker guest instead

Each image is debootstrap --variant=minbase plus its interpreter, imported into dockerd and
tagged symbiont/KIND:HASH by the hash of its recipe; an image that exists is not rebuilt.

--tier 3 makes what Tier 3's microVMs boot, in SYMBIONT_TIER3_DIR [default: /var/lib/symbiont/tier3]:
the root filesystem (ext4: debootstrap with Python, Node.js, socat and both SDKs), the kernel of
Debian's linux-image-cloud-amd64 as an uncompressed vmlinux (its configuration checked for
virtio-mmio, virtio block, vsock and ext4), and the initrd that loads the drivers Debian builds as
modules; recorded with their SHA-256 in manifest.json, where `symbiont run --tier 3` finds them and
verifies them before each boot. Nothing is rebuilt while the recipe and the files are unchanged.
Needs root (debootstrap), dpkg-deb, lz4 and e2fsprogs; x86_64 only.

The Debian mirror is SYMBIONT_DEBIAN_MIRROR [default: http://deb.debian.org/debian].
Exit status: 0 when everything exists or was built; 2 otherwise.
";

pub use crate::compose::status;

#[derive(Debug)]
pub struct RunOptions {
    pub file: PathBuf,
    pub agent: Option<String>,
    pub tier: Option<Tier>,
    pub audit_log: Option<PathBuf>,
    pub key: Option<String>,
    pub input: serde_json::Value,
    /// `--context`; without it, the run's context is the one `symbiont.toml`'s `[run]` gives.
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    pub timeout: Option<Duration>,
    /// How long to wait for another writer of the audit log to close it.
    pub lock_wait: Duration,
    pub json_summary: bool,
    /// Adopt a warm container left by an earlier run, and leave one for the next.
    pub warm: bool,
}

pub fn parse_run(parser: &mut Parser) -> Result<Parsed<RunOptions>, UsageError> {
    let err = |e: lexopt::Error| UsageError::new(e.to_string(), Some("run"));
    let usage = |m: String| UsageError::new(m, Some("run"));
    let (mut file, mut agent, mut tier, mut audit_log, mut key, mut input, mut timeout) = (None, None, None, None, None, json!(null), None);
    let mut context = None;
    let mut lock_wait = compose::DEFAULT_LOCK_WAIT;
    let (mut json_summary, mut warm) = (false, false);
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Parsed::Help(RUN_HELP)),
            Arg::Long("warm") => warm = true,
            Arg::Long("agent") => agent = Some(parser.value().map_err(err)?.string().map_err(err)?),
            Arg::Long("tier") => {
                tier = match parser.value().map_err(err)?.string().map_err(err)?.to_ascii_lowercase().trim_start_matches("tier") {
                    "auto" => None,
                    n @ ("1" | "2" | "3") => Tier::from_number(n.parse().unwrap_or(0)),
                    other => return Err(usage(format!("invalid value '{other}' for '--tier' (expected auto, 1, 2 or 3)"))),
                }
            }
            Arg::Long("audit-log") => audit_log = Some(PathBuf::from(parser.value().map_err(err)?)),
            Arg::Long("key") => key = Some(parser.value().map_err(err)?.string().map_err(err)?),
            Arg::Long("input") => {
                let text = parser.value().map_err(err)?.string().map_err(err)?;
                input = serde_json::from_str(&text).map_err(|e| usage(format!("'--input' is not JSON: {e}")))?;
            }
            Arg::Long("context") => {
                let text = parser.value().map_err(err)?.string().map_err(err)?;
                context = match serde_json::from_str(&text) {
                    Ok(serde_json::Value::Object(map)) => Some(map),
                    Ok(_) => return Err(usage("'--context' must be a JSON object".into())),
                    Err(e) => return Err(usage(format!("'--context' is not JSON: {e}"))),
                };
            }
            Arg::Long("summary") => {
                json_summary = match parser.value().map_err(err)?.string().map_err(err)?.as_str() {
                    "human" => false,
                    "json" => true,
                    other => return Err(usage(format!("invalid value '{other}' for '--summary' (expected human or json)"))),
                }
            }
            Arg::Long("timeout") => {
                let text = parser.value().map_err(err)?.string().map_err(err)?;
                match symbiont_syntax::quantity::parse(&text) {
                    Ok(symbiont_syntax::quantity::Quantity::Duration(d)) if !d.is_zero() => timeout = Some(d),
                    _ => return Err(usage(format!("invalid value '{text}' for '--timeout' (expected a duration such as 30s or 5m)"))),
                }
            }
            Arg::Long("lock-wait") => {
                let text = parser.value().map_err(err)?.string().map_err(err)?;
                match symbiont_syntax::quantity::parse(&text) {
                    Ok(symbiont_syntax::quantity::Quantity::Duration(d)) => lock_wait = d,
                    _ => return Err(usage(format!("invalid value '{text}' for '--lock-wait' (expected a duration such as 60s or 5m)"))),
                }
            }
            Arg::Value(path) if file.is_none() => file = Some(PathBuf::from(path)),
            arg => return Err(err(arg.unexpected())),
        }
    }
    let file = file.ok_or_else(|| usage("missing FILE.sym".into()))?;
    Ok(Parsed::Options(RunOptions { file, agent, tier, audit_log, key, input, context, timeout, lock_wait, json_summary, warm }))
}

/// What `symbiont image build` builds.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageBuild {
    /// The sandbox images of these kinds.
    Kinds(Vec<ImageKind>),
    /// `--tier 3`: the Firecracker guest's kernel, initrd and root filesystem.
    Tier3,
}

pub fn parse_image(parser: &mut Parser) -> Result<Parsed<ImageBuild>, UsageError> {
    let err = |e: lexopt::Error| UsageError::new(e.to_string(), Some("image"));
    match parser.next().map_err(err)? {
        Some(Arg::Value(sub)) if sub == "build" => {}
        None | Some(Arg::Short('h') | Arg::Long("help")) => return Ok(Parsed::Help(IMAGE_HELP)),
        Some(Arg::Value(other)) => {
            return Err(UsageError::new(format!("unknown image command '{}' (expected 'build')", other.to_string_lossy()), Some("image")))
        }
        Some(arg) => return Err(err(arg.unexpected())),
    }
    let (mut kinds, mut tier3) = (Vec::new(), false);
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Parsed::Help(IMAGE_HELP)),
            Arg::Long("tier") => {
                match parser.value().map_err(err)?.string().map_err(err)?.to_ascii_lowercase().trim_start_matches("tier") {
                    "1" | "2" => tier3 = false,
                    "3" => tier3 = true,
                    other => {
                        return Err(UsageError::new(format!("invalid value '{other}' for '--tier' (expected 1, 2 or 3)"), Some("image")))
                    }
                }
            }
            Arg::Value(kind) => {
                let name = kind.string().map_err(err)?;
                kinds.push(
                    ImageKind::from_name(&name).ok_or_else(|| {
                        UsageError::new(format!("unknown image '{name}' (expected python, node or minimal)"), Some("image"))
                    })?,
                );
            }
            arg => return Err(err(arg.unexpected())),
        }
    }
    if tier3 {
        if !kinds.is_empty() {
            return Err(UsageError::new(
                "--tier 3 builds one root filesystem for every language and takes no KIND".to_string(),
                Some("image"),
            ));
        }
        return Ok(Parsed::Options(ImageBuild::Tier3));
    }
    if kinds.is_empty() {
        kinds = ImageKind::ALL.to_vec();
    }
    Ok(Parsed::Options(ImageBuild::Kinds(kinds)))
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| format!("cannot start the async runtime: {e}"))
}

pub fn image_build(kinds: &[ImageKind]) -> Exit {
    let runtime = match tokio_runtime() {
        Ok(r) => r,
        Err(e) => return Exit::failure(e),
    };
    runtime.block_on(async {
        let docker = match symbiont_runtime::sandbox::docker::connect().await {
            Ok(docker) => docker,
            Err(e) => return Exit::failure(e),
        };
        for &kind in kinds {
            let mut progress = |line: String| {
                let _ = writeln!(std::io::stderr(), "{line}");
            };
            if let Err(e) = image::build(&docker, kind, &mut progress).await {
                return Exit::failure(format!("building the {} image: {e}", kind.name()));
            }
        }
        Exit::Clean
    })
}

/// `symbiont image build --tier 3`: the Firecracker guest's artifacts (`image::tier3`).
pub fn image_build_tier3() -> Exit {
    let runtime = match tokio_runtime() {
        Ok(r) => r,
        Err(e) => return Exit::failure(e),
    };
    let mut progress = |line: String| {
        let _ = writeln!(std::io::stderr(), "{line}");
    };
    match runtime.block_on(image::tier3::build(&mut progress)) {
        Ok(_) => Exit::Clean,
        Err(e) => Exit::failure(format!("building the Tier 3 artifacts: {e}")),
    }
}

pub fn run(options: &RunOptions) -> Exit {
    match run_inner(options) {
        Ok(status) => Exit::Code(status),
        Err(Refusal { status, message }) => {
            crate::print_error(message);
            Exit::Code(status)
        }
    }
}

/// The run as `symbiont run`'s options ask for it, and its workspace's root.
fn request(options: &RunOptions) -> Result<(RunRequest, PathBuf), Refusal> {
    let usage = |m: String| refuse(status::USAGE, m);
    let cwd = std::env::current_dir().map_err(|e| usage(format!("cannot read the current directory: {e}")))?;
    let file = cwd.join(&options.file);
    if !file.is_file() {
        return Err(usage(format!("{}: no such file", options.file.display())));
    }
    let root = compose::workspace_root(&options.file, &cwd);
    let request = RunRequest {
        file,
        agent: options.agent.clone(),
        tier: options.tier.map(Tier::number),
        input: options.input.clone(),
        context: options.context.clone(),
        timeout_ms: options.timeout.map(|t| t.as_millis() as u64),
        warm: options.warm,
        passed_env: compose::passed_env(&root),
    };
    Ok((request, root))
}

/// Hands the run to the workspace's service when one is up (and the run uses the workspace's own
/// audit log and key), else runs it in this process.
fn run_inner(options: &RunOptions) -> Result<u8, Refusal> {
    let (request, root) = request(options)?;
    if options.audit_log.is_none() && options.key.is_none() {
        if let Some(handed) = crate::service::client::hand_off(&root, &request, options.json_summary) {
            return handed;
        }
    }
    run_here(options, &request, &root)
}

/// Composes the run, opens the audit log (waiting its turn), audits the risk assessment, hands
/// the agent to a runtime of this process, streams its output, closes the log and reports.
fn run_here(options: &RunOptions, request: &RunRequest, root: &Path) -> Result<u8, Refusal> {
    let workspace = Workspace::load(root)?;
    let composed = compose::compose(request, &workspace)?;
    drop(workspace);
    // The audit log and its key: per workspace by default, never inside what the agent sees.
    let state_dir = root.join(".symbiont");
    let log_dir = match &options.audit_log {
        Some(dir) => dir.clone(),
        None => compose::default_log_dir(root)?,
    };
    let signer = compose::signer(options.key.as_deref(), &state_dir).map_err(|m| refuse(status::RUNTIME_FAILED, m))?;
    let (log, opened) = compose::open_log(&log_dir, signer, options.lock_wait)?;
    let log = Arc::new(log);
    let key = options.key.as_deref().map_or_else(|| state_dir.join("audit.key"), PathBuf::from);
    compose::check_log_outside(&composed.config, &log_dir, &key)?;

    let (tier, language, limits, warm) = (composed.config.tier, composed.config.language, composed.config.limits, composed.warm);
    let auditor = Auditor::new(log.clone());
    let runtime = tokio_runtime().map_err(|m| refuse(status::RUNTIME_FAILED, m))?;
    let outcome = runtime.block_on(async {
        // First, so that no stop signal kills the process while it has made anything.
        let cancel = crate::signals::stop_signals().map_err(|m| refuse(status::RUNTIME_FAILED, m))?;
        compose::record_risk(&auditor, &composed).await?;
        let mut runtime = AgentRuntime::new(auditor).await;
        runtime.set_adopt_parked(warm);
        // What an earlier `symbiont run` killed with SIGKILL left: removed, and audited when its
        // audit log is this one.
        runtime.set_reap_leftovers(true);
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<symbiont_runtime::Output>();
        let printer = tokio::spawn(async move {
            while let Some((stream, bytes)) = receiver.recv().await {
                let _ = match stream {
                    OutputStream::Stdout => std::io::stdout().write_all(&bytes).and_then(|()| std::io::stdout().flush()),
                    OutputStream::Stderr => std::io::stderr().write_all(&bytes),
                };
            }
        });
        let result = runtime.run(composed.config, sender, cancel).await;
        let _ = printer.await;
        Ok::<_, Refusal>(result)
    })?;
    // Entries are durable already; closing writes the final checkpoint.
    drop(runtime);
    let written = log.commit_stats().entries;
    if let Ok(log) = Arc::try_unwrap(log) {
        let _ = log.close();
    }
    // This run's entries: from the first appended after opening to the last.
    let seqs = (opened.entries, (opened.entries + written).saturating_sub(1));
    if warm && outcome.is_ok() {
        // After the run's clean-up, and without waiting: the next run's warm container.
        crate::warm::spawn_refill(tier, language, &limits);
    }
    let Ending { summary, status } = Ending::of(outcome, options.json_summary, &log_dir, seqs)?;
    let _ = std::io::stderr().write_all(summary.as_bytes());
    Ok(status)
}
