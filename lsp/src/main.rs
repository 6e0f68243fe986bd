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

/// tree-sitter, which parses agent code, allocates through C's `malloc` unless told otherwise;
/// its trees are many small, short-lived allocations too, so they go to mimalloc as well. Both are
/// C functions of libraries linked into this binary (tree-sitter's `ts_set_allocator`, mimalloc's
/// `mi_*`).
fn tree_sitter_uses_mimalloc() {
    use std::ffi::c_void;
    extern "C" {
        fn mi_malloc(size: usize) -> *mut c_void;
        fn mi_calloc(count: usize, size: usize) -> *mut c_void;
        fn mi_realloc(p: *mut c_void, size: usize) -> *mut c_void;
        fn mi_free(p: *mut c_void);
        fn ts_set_allocator(
            malloc: Option<unsafe extern "C" fn(usize) -> *mut c_void>,
            calloc: Option<unsafe extern "C" fn(usize, usize) -> *mut c_void>,
            realloc: Option<unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void>,
            free: Option<unsafe extern "C" fn(*mut c_void)>,
        );
    }
    // SAFETY: called first thing in `main`, before any tree-sitter object exists and while one
    // thread runs; the four functions are one allocator's, with C's semantics and alignment.
    unsafe { ts_set_allocator(Some(mi_malloc), Some(mi_calloc), Some(mi_realloc), Some(mi_free)) }
}

fn main() -> ExitCode {
    tree_sitter_uses_mimalloc();
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
