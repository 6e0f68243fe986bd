//! `symbiont pool drain`, and the hidden `symbiont pool warm` that `symbiont run --warm` starts,
//! detached, after its run: the warm containers that outlive their process
//! (`symbiont_runtime::parked`, docs/runtime.md "Warm containers for `symbiont run`").

use std::{
    io::Write,
    os::unix::{
        fs::{DirBuilderExt, OpenOptionsExt},
        process::CommandExt,
    },
    path::PathBuf,
    process::{Command, Stdio},
};

use lexopt::{Arg, Parser, ValueExt};
use symbiont_runtime::{parked, sandbox::docker::DockerSandbox, Language, Limits, Tier};

use crate::{
    usage::{Parsed, UsageError},
    Exit,
};

pub const POOL_HELP: &str = "\
Manage the warm containers that `symbiont run --warm` keeps for the next run

Usage: symbiont pool drain

Commands:
  drain  Remove every warm container `symbiont run --warm` left, and its slot directory
         (but one a run is using: that run removes it)

A warm container waits, idle, for the next `symbiont run --warm` of the same tier, image and
limits; one idle for 10 minutes is removed by the next `symbiont run --warm`.
Exit status: 0 when done; 2 when dockerd cannot be reached.
";

/// What `symbiont pool warm` makes a warm container for.
#[derive(Debug, Clone, PartialEq)]
pub struct WarmOptions {
    pub tier: Tier,
    pub language: Language,
    pub limits: Limits,
}

fn language_named(name: &str) -> Option<Language> {
    [Language::Python, Language::JavaScript, Language::Native].into_iter().find(|l| l.name() == name)
}

/// What `symbiont pool` was asked.
#[derive(Debug)]
pub enum PoolCommand {
    Drain,
    /// Hidden: what `symbiont run --warm` starts, detached, after its run.
    Warm(WarmOptions),
}

pub fn parse(parser: &mut Parser) -> Result<Parsed<PoolCommand>, UsageError> {
    let err = |e: lexopt::Error| UsageError::new(e.to_string(), Some("pool"));
    let usage = |m: String| UsageError::new(m, Some("pool"));
    let warm = match parser.next().map_err(err)? {
        Some(Arg::Value(sub)) if sub == "drain" => false,
        Some(Arg::Value(sub)) if sub == "warm" => true,
        None | Some(Arg::Short('h') | Arg::Long("help")) => return Ok(Parsed::Help(POOL_HELP)),
        Some(Arg::Value(other)) => return Err(usage(format!("unknown pool command '{}' (expected 'drain')", other.to_string_lossy()))),
        Some(arg) => return Err(err(arg.unexpected())),
    };
    let (mut tier, mut language, mut limits) = (None, None, Limits::default());
    while let Some(arg) = parser.next().map_err(err)? {
        let name = match &arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Parsed::Help(POOL_HELP)),
            Arg::Long(name) if warm => name.to_string(),
            _ => return Err(err(arg.unexpected())),
        };
        let value = parser.value().map_err(err)?.string().map_err(err)?;
        let bad = || usage(format!("invalid value '{value}' for '--{name}'"));
        match name.as_str() {
            "tier" => tier = Some(value.parse().ok().and_then(Tier::from_number).ok_or_else(bad)?),
            "language" => language = Some(language_named(&value).ok_or_else(bad)?),
            "memory" => limits.memory_bytes = value.parse().map_err(|_| bad())?,
            "cpus" => limits.cpus = value.parse().map_err(|_| bad())?,
            "pids" => limits.pids = value.parse().map_err(|_| bad())?,
            "tmpfs" => limits.tmpfs_bytes = value.parse().map_err(|_| bad())?,
            _ => return Err(usage(format!("unexpected argument '--{name}'"))),
        }
    }
    if !warm {
        return Ok(Parsed::Options(PoolCommand::Drain));
    }
    match (tier, language) {
        (Some(tier), Some(language)) => Ok(Parsed::Options(PoolCommand::Warm(WarmOptions { tier, language, limits }))),
        _ => Err(usage("'pool warm' needs --tier and --language".into())),
    }
}

/// Where `symbiont run` stages its runs, and where the warm containers' slots are.
fn run_root() -> PathBuf {
    std::env::temp_dir().join("symbiont-runs")
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> Result<T, String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("cannot start tokio: {e}"))?;
    Ok(runtime.block_on(future))
}

/// Where a detached refill's errors go: nobody reads its standard error, and a warm container
/// that never appears must be explainable.
fn refill_log() -> PathBuf {
    run_root().join("refill.log")
}

/// Appends one line to [`refill_log`] (0600), starting it afresh once it passes 64 KiB so that
/// failing refills cannot fill the disk. Created only when a refill fails.
fn append_to_refill_log(line: &str) {
    const LIMIT: u64 = 64 << 10;
    let path = refill_log();
    // The run root as the runtime makes it (`pool::make_slot`), if no run has yet.
    let _ = std::fs::DirBuilder::new().recursive(true).mode(0o711).create(run_root());
    let full = std::fs::metadata(&path).is_ok_and(|m| m.len() > LIMIT);
    let mut options = std::fs::OpenOptions::new();
    options.create(true).mode(0o600);
    if full {
        options.write(true).truncate(true);
    } else {
        options.append(true);
    }
    if let Ok(mut log) = options.open(&path) {
        let _ = writeln!(log, "{line}");
    }
}

/// Starts `symbiont pool warm` for the key of a run that has just ended, detached (standard
/// streams null: its failure goes to [`refill_log`]; its own process group, not waited for), so
/// that this process exits at once.
pub fn spawn_refill(tier: Tier, language: Language, limits: &Limits) {
    if !matches!(tier, Tier::Docker | Tier::GVisor) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let mut command = Command::new(exe);
    command
        .args(["pool", "warm", "--tier", &tier.number().to_string(), "--language", language.name()])
        .args(["--memory", &limits.memory_bytes.to_string(), "--cpus", &limits.cpus.to_string()])
        .args(["--pids", &limits.pids.to_string(), "--tmpfs", &limits.tmpfs_bytes.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    // Not waited for: it outlives this process, whose exit hands it to init.
    if let Ok(child) = command.spawn() {
        drop(child);
    }
}

/// `symbiont pool warm`: expiry, then one warm container for the key unless one is ready.
pub fn warm(options: &WarmOptions) -> Exit {
    let tended = block_on(async {
        let backend = DockerSandbox::new(symbiont_runtime::sandbox::docker::connect().await, options.tier);
        parked::tend(&backend, &run_root(), options.tier, options.language, &options.limits).await
    });
    match tended.and_then(|t| t) {
        Ok(_) => Exit::Clean,
        Err(e) => {
            let at = symbiont_audit::time::format_micros(symbiont_audit::time::now_micros());
            let (tier, language) = (options.tier.number(), options.language.name());
            let message = format!("making a warm container (tier {tier}, {language}): {e}");
            append_to_refill_log(&format!("{at}: {message}"));
            Exit::failure(message)
        }
    }
}

/// `symbiont pool drain`.
pub fn drain() -> Exit {
    let drained = block_on(async {
        let docker = symbiont_runtime::sandbox::docker::connect().await;
        if let Err(e) = &docker {
            return Err(e.clone());
        }
        parked::drain(&DockerSandbox::new(docker, Tier::Docker), &run_root()).await
    });
    match drained.and_then(|d| d) {
        Ok(n) => {
            let _ = writeln!(std::io::stderr(), "symbiont: removed {n} warm container{}", if n == 1 { "" } else { "s" });
            Exit::Clean
        }
        Err(e) => Exit::failure(format!("draining the warm containers: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `symbiont pool ARGS…`, as `args.rs` hands them over (after `pool`).
    fn parse_str(args: &[&str]) -> Result<Parsed<PoolCommand>, UsageError> {
        assert_eq!(args[0], "pool");
        parse(&mut Parser::from_args(args[1..].iter().map(std::ffi::OsString::from)))
    }

    #[test]
    fn pool_warm_reads_back_what_spawn_refill_writes() {
        let limits = Limits { memory_bytes: 123 << 20, cpus: 0.5, pids: 64, tmpfs_bytes: 1 << 20, ..Limits::default() };
        let args = ["pool", "warm", "--tier", "2", "--language", "javascript", "--memory", "128974848", "--cpus", "0.5"];
        let Ok(Parsed::Options(PoolCommand::Warm(o))) = parse_str(&[&args[..], &["--pids", "64", "--tmpfs", "1048576"]].concat()) else {
            panic!("pool warm parses")
        };
        assert_eq!(o, WarmOptions { tier: Tier::GVisor, language: Language::JavaScript, limits });
        assert!(matches!(parse_str(&["pool", "drain"]), Ok(Parsed::Options(PoolCommand::Drain))));
        assert!(parse_str(&["pool", "drain", "--tier", "1"]).is_err());
        assert!(parse_str(&["pool", "warm", "--tier", "1"]).is_err());
        assert!(parse_str(&["pool", "fill"]).is_err());
    }
}
