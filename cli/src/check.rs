//! `symbiont check`: read the files, hand them to the analysis, render its diagnostics.

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
};

use symbiont_analysis::{
    diagnostics::{safe_fixes, INVALID_FILE},
    is_code_path, AnalysisHost, Diagnostic,
};
use symbiont_syntax::{TextRange, TextSize};

use crate::{
    args::{CheckOptions, ColorChoice, ReportFormat},
    fsutil, report, workspace, Exit,
};

pub fn run(options: &CheckOptions) -> Exit {
    without_huge_pages();
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => return Exit::failure(format!("cannot read the current directory: {e}")),
    };
    let (mut sources, files) = match workspace::find(&options.paths, &cwd) {
        Ok(found) => found,
        Err(message) => return Exit::failure(message),
    };
    // The language's files are analysed together, so they are read at once; agent code is read,
    // checked and let go of a batch at a time (`check_code`).
    let (code, language): (Vec<PathBuf>, Vec<PathBuf>) = files.into_iter().partition(|path| is_code_path(path));
    workspace::read_files(&mut sources, language);

    let mut host = AnalysisHost::new();
    // `symbiont.toml` has diagnostics of its own.
    let mut language: Vec<PathBuf> = sources.config.iter().map(|(path, _)| path.clone()).collect();
    host.set_config(sources.config.take());
    for (path, text) in std::mem::take(&mut sources.files) {
        language.push(path.clone());
        host.set_file(path, text);
    }
    let progress = Progress::new(code.len() + language.len());
    // `--fix` analyses everything again after its fixes, and a fix of a `.sym` file (a policy
    // name's typo) can give a clean code file findings: then every text is kept.
    let mut diagnostics = check_code(&mut host, &mut sources, code, &progress, options.fix);
    diagnostics.extend(analyse(&host, &language, &progress));
    // Files the analysis cannot take (unreadable, not UTF-8) are reported here.
    let unreadable = sources.unreadable.into_iter().map(|(path, e)| (path, vec![invalid_file(e)]));

    if options.fix {
        match apply_safe_fixes(&mut host, &diagnostics) {
            Ok(0) => {}
            Ok(applied) => {
                eprintln!("applied {applied} safe fix{}", if applied == 1 { "" } else { "es" });
                let progress = Progress::new(host.files().count());
                diagnostics = host.all_diagnostics_parallel(&|done, total| progress.show(done, total));
            }
            Err(message) => return Exit::failure(message),
        }
    }
    diagnostics.extend(unreadable);
    diagnostics.sort_by(|a, b| a.0.cmp(&b.0));
    let report = report::Report::build(&host, sources.files_found, diagnostics);

    let color = match options.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            options.output.is_none() && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    let rendered = match options.format {
        ReportFormat::Human => report::human::render(&report, color),
        ReportFormat::Json => report::json::render(&report),
        ReportFormat::Sarif => report::sarif::render(&report, &cwd),
        ReportFormat::Github => report::github::render(&report),
    };

    let written = match &options.output {
        Some(path) => fsutil::write_atomic(path, rendered.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => match std::io::stdout().lock().write_all(rendered.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("cannot write the report: {e}")),
            _ => Ok(()),
        },
    };
    if let Err(message) = written {
        return Exit::failure(message);
    }
    if !sources.walk_errors.is_empty() {
        for error in &sources.walk_errors {
            crate::print_error(error);
        }
        return Exit::Failure;
    }
    if report.summary.errors > 0 {
        Exit::Problems
    } else {
        Exit::Clean
    }
}

/// Turns transparent huge pages off for this process, also on kernels set to `always`, which
/// give them without being asked (mimalloc is built never to ask: `no_thp` in the workspace's
/// Cargo.toml). Each 2 MiB region touched becomes resident whole: with them, about half of
/// `check`'s peak RSS on a corpus of ordinary files (94 MB against 37 MB without, on mypy's 1,300
/// files), for no measurable gain in time. The kernel reads the flag at each page fault, so
/// memory mapped before this call is covered too. A kernel without the call leaves things as
/// they were.
fn without_huge_pages() {
    // SAFETY: prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) reads no memory of ours; it sets a flag of
    // this process's address space.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

/// How much agent code [`check_code`] holds at once (or one file, when it is larger): the texts
/// of a batch, while their files are parsed and scanned.
const CODE_BATCH_BYTES: u64 = 4 << 20;

/// The diagnostics of agent code, read a batch at a time: each batch's texts are given to the
/// analysis, its files checked on every core, and the text of each file without diagnostics
/// replaced by an empty one, so that only the files with something to report (whose text the
/// report and `--fix` read) stay in memory. Every file is in the workspace before the first is
/// checked, each with an empty text until its batch: which agents a file implements is worked out
/// once, from the whole list. Unreadable files leave the workspace (they are reported as such).
/// With `keep_texts`, every text stays (for an analysis after fixes).
fn check_code(
    host: &mut AnalysisHost,
    sources: &mut workspace::Sources,
    code: Vec<PathBuf>,
    progress: &Progress,
    keep_texts: bool,
) -> Vec<(PathBuf, Vec<Diagnostic>)> {
    for path in &code {
        host.set_file(path.clone(), "");
    }
    let mut all = Vec::with_capacity(code.len());
    let mut rest = code.as_slice();
    while !rest.is_empty() {
        let mut bytes = 0;
        let take = rest
            .iter()
            .position(|path| {
                bytes += std::fs::metadata(path).map_or(0, |m| m.len());
                bytes > CODE_BATCH_BYTES
            })
            .map_or(rest.len(), |over| over.max(1));
        let (batch, after) = rest.split_at(take);
        rest = after;
        let unreadable = sources.unreadable.len();
        workspace::read_files(sources, batch.to_vec());
        for (path, _) in &sources.unreadable[unreadable..] {
            host.remove_file(path);
        }
        let read: Vec<PathBuf> = sources.files.iter().map(|(path, _)| path.clone()).collect();
        for (path, text) in std::mem::take(&mut sources.files) {
            host.set_file(path, text);
        }
        let checked = analyse(host, &read, progress);
        for (path, diagnostics) in &checked {
            if diagnostics.is_empty() && !keep_texts {
                host.set_file(path.clone(), "");
            }
        }
        all.extend(checked);
    }
    all
}

/// The diagnostics of `paths` (files of the workspace, or `symbiont.toml`), in their order, on
/// every core. Each worker reads through its own snapshot of the analysis.
fn analyse(host: &AnalysisHost, paths: &[PathBuf], progress: &Progress) -> Vec<(PathBuf, Vec<Diagnostic>)> {
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(paths.len().max(1));
    let mut all: Vec<(usize, Vec<Diagnostic>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let (analysis, next) = (host.snapshot(), &next);
                scope.spawn(move || {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = paths.get(i) else { break };
                        // Nothing changes the inputs while the snapshot is read: it is never cancelled.
                        let diagnostics = analysis.diagnostics(path).unwrap_or_else(|_| unreachable!("check's analysis was cancelled"));
                        out.push((i, diagnostics));
                        progress.tick();
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    });
    all.sort_by_key(|(i, _)| *i);
    paths.iter().cloned().zip(all.into_iter().map(|(_, d)| d)).collect()
}

/// A progress line on a terminal, for long runs.
struct Progress {
    show: bool,
    done: AtomicUsize,
    total: usize,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress { show: std::io::stderr().is_terminal() && total >= 500, done: AtomicUsize::new(0), total }
    }

    fn tick(&self) {
        self.show(self.done.fetch_add(1, Ordering::Relaxed) + 1, self.total);
    }

    fn show(&self, done: usize, total: usize) {
        if self.show && (done.is_multiple_of(100) || done == total) {
            let _ = write!(std::io::stderr(), "\rchecking {done}/{total} files{}", if done == total { "\n" } else { "" });
        }
    }
}

/// Applies every safe fix (those that need no review; `symbiont_analysis::diagnostics::safe_fixes`
/// says which edits), rewriting each file atomically and reloading it. Returns how many fixes applied.
fn apply_safe_fixes(host: &mut AnalysisHost, diagnostics: &[(PathBuf, Vec<Diagnostic>)]) -> Result<usize, String> {
    let fixes = safe_fixes(diagnostics.iter().flat_map(|(_, ds)| ds));
    for (path, edits) in fixes.edits {
        let Some(text) = host.file_text(&path) else { continue };
        let out = symbiont_code::fix::apply(&text, &edits);
        fsutil::write_atomic(&path, out.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        host.set_file(path, out);
    }
    Ok(fixes.fixes)
}

fn invalid_file(error: fsutil::ReadError) -> Diagnostic {
    Diagnostic::new(&INVALID_FILE, TextRange::empty(TextSize::from(0)), error.to_string())
}
