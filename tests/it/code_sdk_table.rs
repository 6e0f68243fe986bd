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
        # The rewritten code reads only these of the result: the SDK's response has each.
        response = symbiont.Response(200, "{}")
        for member in row["result"]:
            getattr(response, member)
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
        .map(|r| {
            serde_json::json!({
                "callee": r.callee, "sdk_call": r.sdk_call, "positional": r.positional, "keywords": r.keywords, "result": r.result
            })
        })
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
        // The result's members the rewritten code may read, as fetch's Response has them.
        let members: Vec<String> = row.result.iter().map(|m| format!("r.{m}")).collect();
        source.push_str(&format!("export function result{i}(r: symbiont.Response): unknown[] {{ return [{}]; }}\n", members.join(", ")));
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
        // `Response::text`, called as reqwest's is: the only member the rewritten code may use.
        let _text: fn(symbiont::Response) -> symbiont::Result<String> = symbiont::Response::text;
        assert_eq!(row.result, ["text"], "{}: a new result member needs its line here", row.callee);
    }
}

/// One SDK rewrite as `check --fix` writes it: a fixture with the one rewrite applied.
struct Rewrite {
    /// `FIXTURE line:col callee`.
    what: String,
    lang: symbiont_code::Lang,
    before: String,
    after: String,
}

/// Every SDK rewrite the fixtures of `family` get, each applied alone.
fn rewrites(family: Family) -> Vec<Rewrite> {
    use symbiont_code::{fix, rules, RuleSet};
    let mut out = Vec::new();
    for fixture in crate::code_rules::fixtures().into_iter().filter(|f| f.lang.family() == family) {
        for finding in RuleSet::default().scan(fixture.lang, &fixture.text).findings {
            let row = rules::lookup(&finding.rule).and_then(|rule| rule.sdk.iter().find(|row| row.callee == finding.qualified));
            let Some(edits) = row.and_then(|row| fix::sdk_rewrite(fixture.lang, &fixture.text, &finding, row)) else { continue };
            let (line, col) = crate::code_rules::position(&fixture.text, finding.start);
            out.push(Rewrite {
                what: format!("{} {line}:{col} {}", fixture.name, finding.qualified),
                lang: fixture.lang,
                after: fix::apply(&fixture.text, &edits),
                before: fixture.text.clone(),
            });
        }
    }
    out
}

/// The compiler's errors (code and message, without places) that `after` has and `before` has
/// not, counting repeats: a rewrite may leave a fixture's own errors (crates and modules the
/// fixtures name but no test installs) but must add none.
fn new_errors(before: &[(String, String)], after: &[(String, String)]) -> Vec<(String, String)> {
    let mut left = before.to_vec();
    let mut new = Vec::new();
    for error in after {
        match left.iter().position(|e| e == error) {
            Some(i) => drop(left.swap_remove(i)),
            None => new.push(error.clone()),
        }
    }
    new
}

/// Fails with every rewrite whose file has errors its fixture has not.
fn assert_no_new_errors(tool: &str, rewrites: &[Rewrite], errors: impl Fn(usize, &str) -> Vec<(String, String)>) {
    let mut wrong = String::new();
    for (i, rewrite) in rewrites.iter().enumerate() {
        let new = new_errors(&errors(i, "before"), &errors(i, "after"));
        if !new.is_empty() {
            let listed: Vec<String> = new.iter().map(|(code, message)| format!("  {code}: {message}")).collect();
            wrong.push_str(&format!("{}: the rewritten file has new {tool} errors:\n{}\n", rewrite.what, listed.join("\n")));
        }
    }
    assert!(wrong.is_empty(), "{wrong}");
}

fn tsc() -> Option<PathBuf> {
    let tsc = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv-test/npm/node_modules/.bin/tsc");
    if tsc.exists() {
        return Some(tsc);
    }
    let why = "TypeScript is not installed in .venv-test/npm (runtime/sdk/node/check installs it)";
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("SKIPPED: {why}");
    None
}

/// Every JavaScript and TypeScript fixture's SDK rewrites type-check against the package's
/// `index.d.ts` (`tsc --strict`, JavaScript with `checkJs`) with no error the fixture lacks: a
/// rewritten call that does not exist, takes other arguments, or answers a type its code does not
/// accept fails here.
#[test]
fn rewritten_javascript_fixtures_type_check_against_the_declarations() {
    let Some(tsc) = tsc() else { return };
    let rewrites = rewrites(Family::Js);
    assert!(rewrites.len() >= 5, "the fixtures have JavaScript and TypeScript rewrites to check");
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, rewrite) in rewrites.iter().enumerate() {
        let extension = match rewrite.lang {
            symbiont_code::Lang::JavaScript => "js",
            symbiont_code::Lang::Tsx => "tsx",
            _ => "ts",
        };
        for (side, text) in [("before", &rewrite.before), ("after", &rewrite.after)] {
            let name = format!("{i}-{side}.{extension}");
            std::fs::write(dir.path().join(&name), text).unwrap();
            files.push(name);
        }
    }
    let declarations = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../runtime/sdk/node/symbiont/index.d.ts");
    let config = serde_json::json!({
        "compilerOptions": {
            "strict": true, "noEmit": true, "allowJs": true, "checkJs": true, "jsx": "preserve",
            "target": "es2022", "lib": ["es2022", "dom"], "module": "commonjs", "moduleResolution": "node10",
            // Each file is its own module, so the fixtures' names do not collide.
            "moduleDetection": "force", "types": [], "baseUrl": ".", "paths": { "symbiont": [declarations] }
        },
        "files": files
    });
    std::fs::write(dir.path().join("tsconfig.json"), config.to_string()).unwrap();
    let out = Command::new(&tsc).arg("-p").arg(dir.path()).arg("--pretty").arg("false").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // `FILE(LINE,COL): error TSNNNN: MESSAGE`, continuation lines indented.
    let mut errors: std::collections::HashMap<String, Vec<(String, String)>> = Default::default();
    for line in stdout.lines().filter(|l| !l.starts_with(' ')) {
        let (Some((file, _)), Some((_, rest))) = (line.split_once('('), line.split_once("): error ")) else {
            panic!("tsc printed a line this test does not read: {line}\n{stdout}")
        };
        let (code, message) = rest.split_once(": ").unwrap_or((rest, ""));
        errors
            .entry(file.rsplit('/').next().unwrap().split('.').next().unwrap().to_string())
            .or_default()
            .push((code.into(), message.into()));
    }
    assert_no_new_errors("tsc", &rewrites, |i, side| errors.get(&format!("{i}-{side}")).cloned().unwrap_or_default());
}

/// Every Rust fixture's SDK rewrites compile against the crate (`cargo check`, offline, of a
/// throw-away package depending on `sdk/rust`) with no error the fixture lacks.
#[test]
fn rewritten_rust_fixtures_compile_against_the_crate() {
    let rewrites = rewrites(Family::Rust);
    assert!(!rewrites.is_empty(), "the fixtures have Rust rewrites to check");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = format!(
        "[package]\nname = \"rewrites\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\nsymbiont-sdk = {{ path = {:?} }}\n\n[workspace]\n",
        root.join("sdk/rust")
    );
    std::fs::create_dir(dir.path().join("src")).unwrap();
    for (i, rewrite) in rewrites.iter().enumerate() {
        for (side, text) in [("before", &rewrite.before), ("after", &rewrite.after)] {
            // Fixtures are items without a `main`; each compiles as a library of its own.
            std::fs::write(dir.path().join(format!("src/r{i}_{side}.rs")), text).unwrap();
            manifest.push_str(&format!("\n[[example]]\nname = \"r{i}_{side}\"\npath = \"src/r{i}_{side}.rs\"\ncrate-type = [\"lib\"]\n"));
        }
    }
    std::fs::write(dir.path().join("Cargo.toml"), manifest).unwrap();
    // The workspace's versions of serde_json and the rest, so nothing is fetched.
    std::fs::copy(root.join("Cargo.lock"), dir.path().join("Cargo.lock")).unwrap();
    let out = Command::new(env!("CARGO"))
        .args(["check", "--offline", "--examples", "--keep-going", "--message-format=json", "--quiet"])
        .current_dir(dir.path())
        .env("CARGO_TARGET_DIR", root.join("target/sdk-rewrites"))
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    let mut errors: std::collections::HashMap<String, Vec<(String, String)>> = Default::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let message: serde_json::Value = serde_json::from_str(line).unwrap();
        let diagnostic = &message["message"];
        if message["reason"] != "compiler-message" || diagnostic["level"] != "error" {
            continue;
        }
        let code = diagnostic["code"]["code"].as_str().unwrap_or("error").to_string();
        let target = message["target"]["name"].as_str().unwrap().to_string();
        errors.entry(target).or_default().push((code, diagnostic["message"].as_str().unwrap().to_string()));
    }
    assert!(
        !errors.is_empty(),
        "the fixtures name crates no test installs: their files must have errors\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_new_errors("rustc", &rewrites, |i, side| errors.get(&format!("r{i}_{side}")).cloned().unwrap_or_default());
}
