//! `symbiont check`: read the files, hand them to the analysis, render its diagnostics.

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
};

use symbiont_analysis::{
    diagnostics::{safe_fixes, INVALID_FILE},
    AnalysisHost, Diagnostic,
};
use symbiont_syntax::{TextRange, TextSize};

use crate::{
    args::{CheckOptions, ColorChoice, ReportFormat},
    fsutil, report, workspace, Exit,
};

pub fn run(options: &CheckOptions) -> Exit {
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => return Exit::failure(format!("cannot read the current directory: {e}")),
    };
    let sources = match workspace::read(&options.paths, &cwd) {
        Ok(sources) => sources,
        Err(message) => return Exit::failure(message),
    };

    let mut host = AnalysisHost::new();
    host.set_config(sources.config);
    for (path, text) in sources.files {
        host.set_file(path, text);
    }
    // Files the analysis cannot take (unreadable, not UTF-8) are reported here.
    let unreadable = sources.unreadable.into_iter().map(|(path, e)| (path, vec![invalid_file(e)]));

    let mut diagnostics = analyse(&host);
    if options.fix {
        match apply_safe_fixes(&mut host, &diagnostics) {
            Ok(0) => {}
            Ok(applied) => {
                eprintln!("applied {applied} safe fix{}", if applied == 1 { "" } else { "es" });
                diagnostics = analyse(&host);
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

/// Every file's diagnostics, on every core; a progress line on a terminal for long runs.
fn analyse(host: &AnalysisHost) -> Vec<(PathBuf, Vec<Diagnostic>)> {
    let show = std::io::stderr().is_terminal() && host.files().count() >= 500;
    let progress = |done: usize, total: usize| {
        if show && (done.is_multiple_of(100) || done == total) {
            let _ = write!(std::io::stderr(), "\rchecking {done}/{total} files{}", if done == total { "\n" } else { "" });
        }
    };
    host.all_diagnostics_parallel(&progress)
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
