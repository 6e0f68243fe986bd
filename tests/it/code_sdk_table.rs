//! The SDK rewrite table (`symbiont_code::rules::Rule::sdk`) against the real SDKs: every row's
//! target exists and takes what the row says the rewritten call passes. A wrong row fails here:
//! a quick fix must never write a call that does not run.
//! - Python: the SDK is imported and each row's arguments (its positional count, every keyword)
//!   are bound to the target's `inspect.signature` (as many positional arguments as the row
//!   allows; and the required ones with every keyword it allows).
//! - JavaScript: the SDK is loaded with Node.js and each target must be a function; and each
//!   row's call, with as many arguments as the row allows, type-checks against the package's
//!   `index.d.ts` under `tsc --strict` (the pinned TypeScript `runtime/sdk/node/check` installs).
//! - Rust: each target is named in `rust_target`, which the compiler checks against the crate.

use std::{path::PathBuf, process::Command};

use symbiont_code::{lang::Family, rules::RULES};

fn sdk_dir(language: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../runtime/sdk").join(language)
}

fn rows(family: Family) -> Vec<symbiont_code::rules::SdkRewrite> {
    RULES.iter().filter(|r| r.family == family).flat_map(|r| r.sdk.iter().copied()).collect()
}

/// Runs `program` with `script` and the rows as JSON on standard input, expecting `ok`.
fn run(program: &str, args: &[&str], env: (&str, PathBuf), rows: &serde_json::Value) {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .env(env.0, env.1)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is needed to check the SDK table: {e}"));
    child.stdin.take().unwrap().write_all(rows.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.trim() == "ok", "{program}: the SDK table is wrong:\n{stdout}{stderr}");
}

const PYTHON_CHECK: &str = r#"
import inspect, json, sys
import symbiont
wrong = []
for row in json.load(sys.stdin):
    target = symbiont
    try:
        for part in row["sdk_call"].split(".")[1:]:
            target = getattr(target, part)
        signature = inspect.signature(target)
        # As many arguments by position as the row allows...
        signature.bind(*["x"] * row["positional"])
        # ...and the required ones with every keyword the row allows.
        required = sum(1 for p in signature.parameters.values() if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD)
        signature.bind(*["x"] * required, **{k: None for k in row["keywords"]})
    except (AttributeError, TypeError) as e:
        wrong.append(f"{row['callee']} -> {row['sdk_call']}: {e}")
print("\n".join(wrong) if wrong else "ok")
"#;

const NODE_CHECK: &str = r#"
const symbiont = require("symbiont");
const rows = JSON.parse(require("fs").readFileSync(0, "utf8"));
const wrong = rows.filter((row) => typeof row.sdk_call.split(".").slice(1).reduce((o, k) => o && o[k], symbiont) !== "function");
console.log(wrong.length ? wrong.map((r) => `${r.callee} -> ${r.sdk_call}: not a function of the SDK`).join("\n") : "ok");
"#;

fn as_json(rows: &[symbiont_code::rules::SdkRewrite]) -> serde_json::Value {
    rows.iter()
        .map(|r| serde_json::json!({ "callee": r.callee, "sdk_call": r.sdk_call, "positional": r.positional, "keywords": r.keywords }))
        .collect()
}

#[test]
fn python_rows_bind_to_the_sdk() {
    let rows = rows(Family::Python);
    assert!(!rows.is_empty());
    run("python3", &["-c", PYTHON_CHECK], ("PYTHONPATH", sdk_dir("python")), &as_json(&rows));
}

#[test]
fn javascript_rows_name_functions_of_the_sdk() {
    let rows = rows(Family::Js);
    assert!(!rows.is_empty());
    run("node", &["-e", NODE_CHECK], ("NODE_PATH", sdk_dir("node")), &as_json(&rows));
}

/// Each JavaScript row's call, with its positional arguments (a URL, then an options object), in
/// a TypeScript file that `tsc --strict` checks against `index.d.ts`, as `test/tsconfig.json` does
/// for the package's own example agent.
#[test]
fn javascript_rows_type_check_against_the_declarations() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let tsc = root.join(".venv-test/npm/node_modules/.bin/tsc");
    if !tsc.exists() {
        let why = "TypeScript is not installed in .venv-test/npm (runtime/sdk/node/check installs it)";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("SKIPPED javascript_rows_type_check_against_the_declarations: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut source = String::from("import * as symbiont from \"symbiont\";\n");
    for (i, row) in rows(Family::Js).iter().enumerate() {
        let args: Vec<&str> = std::iter::once("\"https://example.com\"").chain(std::iter::repeat("{}")).take(row.positional).collect();
        source.push_str(&format!("export async function row{i}(): Promise<unknown> {{ return {}({}); }}\n", row.sdk_call, args.join(", ")));
    }
    std::fs::write(dir.path().join("rows.ts"), &source).unwrap();
    let declarations = root.join("runtime/sdk/node/symbiont/index.d.ts");
    let config = serde_json::json!({
        "compilerOptions": {
            "strict": true, "noEmit": true, "target": "es2022", "lib": ["es2022"], "module": "commonjs",
            "moduleResolution": "node10", "types": [], "baseUrl": ".", "paths": { "symbiont": [declarations] }
        },
        "files": ["rows.ts"]
    });
    std::fs::write(dir.path().join("tsconfig.json"), config.to_string()).unwrap();
    let out = Command::new(&tsc).arg("-p").arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "the SDK table's JavaScript rows do not type-check:\n{source}\n{}", String::from_utf8_lossy(&out.stdout));
}

/// The Rust SDK function a row names, called as the rewritten code calls it (the compiler checks
/// the name, the argument count and the types); `None` for a target this test does not know,
/// which fails the test: a new row needs its line here.
fn rust_target(sdk_call: &str) -> Option<fn(&str) -> symbiont::Result<symbiont::Response>> {
    match sdk_call {
        "symbiont::net::get" => Some(|url| symbiont::net::get(url)),
        _ => None,
    }
}

#[test]
fn rust_rows_name_functions_of_the_crate() {
    let rows = rows(Family::Rust);
    assert!(!rows.is_empty());
    for row in rows {
        assert!(rust_target(row.sdk_call).is_some(), "{} -> {}: not a function of symbiont-sdk", row.callee, row.sdk_call);
        assert_eq!(row.positional, 1, "{}: the crate's net::get takes the URL only", row.callee);
    }
}
