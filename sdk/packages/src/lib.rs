//! `symbiont-sdk-packages`: the files of the three SDK packages, compiled in, each list exactly
//! what the package's own packager ships — the one place that says so. `symbiont image build`
//! installs the Python and npm packages into the sandbox images (`symbiont-runtime`'s
//! `image/sdk.rs`); `symbiont init` vendors all three into a new workspace (`symbiont-codegen`),
//! where generated agents build and test against them offline.
//!
//! It never reads the files at run time: a stale list is a compile error or a failing test
//! (`tests/it/runtime/image.rs` holds each list to the package on disk).

/// A file of a package: its path inside the package, and its text.
pub type File = (&'static str, &'static str);

/// The Python module as its wheel holds it (`flit_core`: the module's directory).
pub const PYTHON_MODULE: &[File] = &[
    ("symbiont/__init__.py", include_str!("../../../runtime/sdk/python/symbiont/__init__.py")),
    ("symbiont/testing.py", include_str!("../../../runtime/sdk/python/symbiont/testing.py")),
    ("symbiont/py.typed", include_str!("../../../runtime/sdk/python/symbiont/py.typed")),
];

/// The Python project around the module: what a source distribution adds to it.
pub const PYTHON_PROJECT: &[File] = &[
    ("pyproject.toml", include_str!("../../../runtime/sdk/python/pyproject.toml")),
    ("README.md", include_str!("../../../runtime/sdk/python/README.md")),
];

/// The npm package as `npm pack` puts it in its tarball.
pub const NODE_PACKAGE: &[File] = &[
    ("package.json", include_str!("../../../runtime/sdk/node/symbiont/package.json")),
    ("index.js", include_str!("../../../runtime/sdk/node/symbiont/index.js")),
    ("index.d.ts", include_str!("../../../runtime/sdk/node/symbiont/index.d.ts")),
    ("testing.js", include_str!("../../../runtime/sdk/node/symbiont/testing.js")),
    ("testing.d.ts", include_str!("../../../runtime/sdk/node/symbiont/testing.d.ts")),
    ("README.md", include_str!("../../../runtime/sdk/node/symbiont/README.md")),
];

/// The Rust crate's sources as `cargo package` ships them, but its own tests and its manifest,
/// which inherits from this repository's workspace: [`rust_manifest`] writes a standalone one.
pub const RUST_CRATE: &[File] = &[
    ("src/lib.rs", include_str!("../../rust/src/lib.rs")),
    ("src/client.rs", include_str!("../../rust/src/client.rs")),
    ("src/error.rs", include_str!("../../rust/src/error.rs")),
    ("src/testing.rs", include_str!("../../rust/src/testing.rs")),
    ("README.md", include_str!("../../rust/README.md")),
];

const RUST_MANIFEST: &str = include_str!("../../rust/Cargo.toml");

/// The Rust crate's version, as its manifest says.
pub fn rust_version() -> &'static str {
    RUST_MANIFEST
        .lines()
        .find_map(|line| line.strip_prefix("version = \"")?.strip_suffix('"'))
        .expect("sdk/rust/Cargo.toml says its version")
}

/// A manifest for the crate outside this repository's workspace: the same package, library and
/// dependency, with nothing inherited.
pub fn rust_manifest() -> String {
    format!(
        "[package]\nname = \"symbiont-sdk\"\nversion = \"{}\"\nedition = \"2021\"\nlicense = \"Apache-2.0\"\n\
         description = \"Symbiont's SDK for Rust agents (vendored by `symbiont init`)\"\nreadme = \"README.md\"\n\n\
         [lib]\nname = \"symbiont\"\n\n[dependencies]\nserde_json = \"1\"\n",
        rust_version()
    )
}
