//! `symbiont-lsp --stdio`: the Symbiont language server.

use std::process::ExitCode;

/// Parsing and analysis allocate many small, short-lived objects; mimalloc frees them far faster
/// than the system allocator (as in the `symbiont` binary).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
usage: symbiont-lsp [--stdio]

The Symbiont language server. It speaks the Language Server Protocol over stdin and stdout
(`--stdio`, the default); editors start it themselves. See docs/editors.md.

options:
  --stdio      serve over stdin/stdout
  --version    print the version
  -h, --help   print this help
";

fn main() -> ExitCode {
    // SAFETY: first thing in `main`: one thread runs and no tree-sitter object exists yet.
    unsafe { symbiont_code::tree_sitter_uses_mimalloc() };
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--stdio" => {}
            "--version" | "-V" => {
                println!("symbiont-lsp {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            "--help" | "-h" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprint!("symbiont-lsp: unknown argument `{other}`\n\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("symbiont-lsp: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let clean = runtime.block_on(symbiont_lsp::serve_stdio());
    // The server's threads block on channels that only close with the process.
    std::process::exit(if clean { 0 } else { 1 })
}
