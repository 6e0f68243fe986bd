//! `symbiont gc`: deletes what agents wrote whose retention has ended
//! (`symbiont_runtime::retention`), saying what; the workspace's service (`symbiont up`) runs the
//! same collection at its start and every hour. Audit entries are never collected.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use lexopt::{Arg, Parser};
use symbiont_runtime::retention::{self, GcReport};

use crate::{
    usage::{Parsed, UsageError},
    Exit,
};

pub const GC_HELP: &str = "\
Delete the files agents wrote whose retention has ended

Usage: symbiont gc [OPTIONS] [DIR]

Arguments:
  [DIR]  The workspace: the nearest directory with a symbiont.toml at or above DIR [default: .]

Options:
      --dry-run  Delete nothing; list what would be deleted
  -h, --help     Print help

A file an agent writes through its broker carries its agent's merged retention_period as an
expiry (the extended attribute user.symbiont.expires). gc deletes, beneath
.symbiont/workspaces/, each file whose expiry has passed, one line each, then a summary; files
without an expiry (put there by you, or by an agent with no retention_period) are never
deleted, and neither is the audit log. 'symbiont up' runs the same collection hourly.

Exit status: 0 when every expired file was deleted (or, with --dry-run, listed), 1 when some
could not be (each is named), 2 on a usage or I/O error.
";

#[derive(Debug)]
pub struct GcOptions {
    pub dir: Option<PathBuf>,
    pub dry_run: bool,
}

pub fn parse(parser: &mut Parser) -> Result<Parsed<GcOptions>, UsageError> {
    let err = |e: lexopt::Error| UsageError::new(e.to_string(), Some("gc"));
    let mut options = GcOptions { dir: None, dry_run: false };
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Parsed::Help(GC_HELP)),
            Arg::Long("dry-run") => options.dry_run = true,
            Arg::Value(dir) if options.dir.is_none() => options.dir = Some(PathBuf::from(dir)),
            arg => return Err(err(arg.unexpected())),
        }
    }
    Ok(Parsed::Options(options))
}

pub fn run(options: &GcOptions) -> Exit {
    let root = match workspace_root(options.dir.as_deref().unwrap_or(Path::new("."))) {
        Ok(root) => root,
        Err(e) => return Exit::failure(e),
    };
    let report = match retention::collect(&root, SystemTime::now(), options.dry_run) {
        Ok(report) => report,
        Err(e) => return Exit::failure(e),
    };
    let shown = std::env::current_dir().ok().and_then(|cwd| root.strip_prefix(cwd).ok().map(Path::to_path_buf)).unwrap_or(root);
    let mut text = String::new();
    for line in lines(&report, &shown, options.dry_run) {
        text.push_str(&line);
        text.push('\n');
    }
    if std::io::stdout().write_all(text.as_bytes()).is_err() {
        return Exit::Failure;
    }
    for problem in &report.problems {
        crate::print_error(problem);
    }
    if report.problems.is_empty() {
        Exit::Clean
    } else {
        Exit::Problems
    }
}

/// How often the workspace's service collects (and once at its start).
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// The service's collection: at once, then every [`SWEEP_EVERY`], each file deleted and each
/// problem given to `say` (a sweep that deletes nothing says nothing). Runs until aborted.
pub fn sweep(root: PathBuf, say: fn(&str)) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(SWEEP_EVERY);
        loop {
            ticks.tick().await;
            let swept = root.clone();
            match tokio::task::spawn_blocking(move || retention::collect(&swept, SystemTime::now(), false)).await {
                Ok(Ok(report)) => {
                    if !report.collected.is_empty() || !report.problems.is_empty() {
                        lines(&report, Path::new(""), false).iter().chain(&report.problems).for_each(|line| say(&format!("gc: {line}")));
                    }
                }
                Ok(Err(why)) => say(&format!("gc: {why}")),
                Err(e) => say(&format!("gc: {e}")),
            }
        }
    })
}

/// One line per file collected, under `root` as it is to be shown, then the summary: what `gc`
/// prints and the service logs.
pub fn lines(report: &GcReport, root: &Path, dry_run: bool) -> Vec<String> {
    let verb = if dry_run { "would delete" } else { "deleted" };
    let mut lines: Vec<String> = report
        .collected
        .iter()
        .map(|c| {
            let bytes = plural(c.bytes as usize, "byte");
            format!("{verb} {} (agent {}, {bytes}, expired {})", root.join(&c.path).display(), c.agent, time(c.expired))
        })
        .collect();
    let bytes: u64 = report.collected.iter().map(|c| c.bytes).sum();
    let collected = plural(report.collected.len(), "file");
    let next = report.next.map_or(String::new(), |next| format!(", the next at {}", time(next)));
    lines.push(format!(
        "{collected} {} ({}); {} kept until {} retention ends{next}; {} without retention, never deleted",
        if dry_run { "would be deleted" } else { "deleted" },
        plural(bytes as usize, "byte"),
        report.kept,
        if report.kept == 1 { "its" } else { "their" },
        report.unmarked,
    ));
    lines
}

fn plural(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

fn time(at: SystemTime) -> String {
    let micros = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros().min(i64::MAX as u128) as i64);
    symbiont_audit::backup::s3_time(micros)
}

/// The nearest directory with a `symbiont.toml` at or above `dir`, else `dir`; absolute.
fn workspace_root(dir: &Path) -> Result<PathBuf, String> {
    let cwd = std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    let dir = cwd.join(dir).canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    if !dir.is_dir() {
        return Err(format!("{}: not a directory (gc collects a workspace directory)", dir.display()));
    }
    Ok(crate::walk::find_config(&dir, &cwd).and_then(|c| cwd.join(c).parent().map(Path::to_path_buf)).unwrap_or(dir))
}
