//! `symbiont fmt`: format files in place (only those that change, atomically), list those that
//! would change (`--check`), or filter standard input to standard output (`-`). A file with
//! syntax errors is reported and never touched.

use std::io::{Read, Write};

use symbiont_syntax::format::{format, FormatError};

use crate::{args::FmtOptions, fsutil, position::SourceText, report::plural, walk, Exit};

pub fn run(options: &FmtOptions) -> Exit {
    if options.stdin {
        return run_stdin(options.check);
    }
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => return Exit::failure(format!("cannot read the current directory: {e}")),
    };
    let collected = match walk::collect(&options.paths, &cwd, false) {
        Ok(collected) => collected,
        Err(message) => return Exit::failure(message),
    };
    let mut io_errors = collected.errors.clone();
    let (mut changed, mut unchanged, mut refused) = (0usize, 0usize, 0usize);
    let mut stdout = std::io::stdout().lock();
    for path in &collected.files {
        let display = path.display().to_string();
        let text = match fsutil::read_source(path) {
            Ok(text) => text,
            Err(e @ fsutil::ReadError::NotUtf8(_)) => {
                // Like a syntax error: the file is not one the formatter can take.
                let _ = writeln!(std::io::stderr(), "{display}: {e}; not formatted");
                refused += 1;
                continue;
            }
            Err(e) => {
                io_errors.push(format!("{display}: {e}"));
                continue;
            }
        };
        match format_text(&display, &text) {
            Ok(formatted) if formatted == text => unchanged += 1,
            Ok(formatted) => {
                if options.check {
                    changed += 1;
                    if let Err(e) = writeln!(stdout, "{display}") {
                        if e.kind() != std::io::ErrorKind::BrokenPipe {
                            io_errors.push(format!("cannot write to standard output: {e}"));
                        }
                    }
                } else {
                    match fsutil::write_atomic(path, formatted.as_bytes()) {
                        Ok(()) => changed += 1,
                        Err(e) => io_errors.push(format!("cannot write {display}: {e}")),
                    }
                }
            }
            Err(Refused) => refused += 1,
        }
    }
    drop(stdout);

    for error in &io_errors {
        crate::print_error(error);
    }
    if !options.check {
        let mut summary = vec![format!("{} reformatted", plural(changed, "file"))];
        if unchanged > 0 {
            summary.push(format!("{} left unchanged", plural(unchanged, "file")));
        }
        if refused > 0 {
            summary.push(format!("{} with syntax errors left untouched", plural(refused, "file")));
        }
        let _ = writeln!(std::io::stderr(), "{}.", summary.join(", "));
    }
    if !io_errors.is_empty() {
        Exit::Failure
    } else if refused > 0 || (options.check && changed > 0) {
        Exit::Problems
    } else {
        Exit::Clean
    }
}

fn run_stdin(check: bool) -> Exit {
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut bytes) {
        return Exit::failure(format!("cannot read standard input: {e}"));
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let offset = e.utf8_error().valid_up_to();
            let _ = writeln!(std::io::stderr(), "-: the input is not valid UTF-8 (invalid byte at offset {offset}); not formatted");
            return Exit::Problems;
        }
    };
    let formatted = match format_text("-", &text) {
        Ok(formatted) => formatted,
        Err(Refused) => return Exit::Problems,
    };
    let mut stdout = std::io::stdout().lock();
    let written = if check {
        if formatted == text {
            return Exit::Clean;
        }
        writeln!(stdout, "-").map(|()| Exit::Problems)
    } else {
        stdout.write_all(formatted.as_bytes()).and_then(|()| stdout.flush()).map(|()| Exit::Clean)
    };
    match written {
        Ok(exit) => exit,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Failure,
        Err(e) => Exit::failure(format!("cannot write to standard output: {e}")),
    }
}

/// A file was refused for its syntax errors, which have been reported on standard error.
struct Refused;

/// Formats `text`, or reports its syntax errors as `path:line:col: message` on standard error.
fn format_text(display: &str, text: &str) -> Result<String, Refused> {
    match format(text) {
        Ok(formatted) => Ok(formatted),
        Err(FormatError::Syntax { errors }) => {
            let source = SourceText::new(text);
            let mut stderr = std::io::stderr().lock();
            for error in &errors {
                let position = source.position(error.range.start());
                let _ = writeln!(stderr, "{display}:{}:{}: {}", position.line, position.column, error.message);
            }
            let _ = writeln!(stderr, "{display}: not formatted: it has syntax errors");
            Err(Refused)
        }
    }
}
