//! `docs/code-rules.md` is generated from the rule table (`code/src/rules.rs`): this test
//! regenerates it and fails when the committed page differs. `UPDATE_DOCS=1` rewrites it.
//! Each rule's example is checked to trigger the rule and its negative example not to.

use symbiont_code::{rules::RULES, Lang, RuleSet};
use symbiont_tests::repo_root;

fn lang_of(rule: &symbiont_code::rules::Rule) -> (Lang, &'static str) {
    match rule.family {
        symbiont_code::lang::Family::Python => (Lang::Python, "python"),
        symbiont_code::lang::Family::Js => (Lang::TypeScript, "typescript"),
        symbiont_code::lang::Family::Rust => (Lang::Rust, "rust"),
    }
}

/// Rust examples are statements: they run inside a function.
fn as_file(lang: Lang, code: &str) -> String {
    match lang {
        Lang::Rust => format!("fn main() -> Result<(), Box<dyn std::error::Error>> {{\n{code}\nOk(())\n}}\n"),
        _ => format!("{code}\n"),
    }
}

fn why(operation: &str) -> &'static str {
    match operation {
        "network_access" | "socket_connect" => "Network access is how data leaves an agent. A policy that denies it must see every call that performs it, or the denial is decoration.",
        "file_system_write" => "Writing, deleting or renaming files changes state outside the agent; in a regulated environment that must be allowed explicitly and audited.",
        "file_read" => "Reading files reaches data the agent was not handed; policies that restrict it need to see where it happens.",
        "spawn_process" => "A child process runs with the agent's authority but outside the runtime's broker: nothing it does is decided or audited.",
        "env_access" => "Environment variables often carry credentials; reading them is secret access by another name.",
        "secret_access" => "Secrets must come from the runtime's broker, which audits each access, not from a client library inside the agent.",
        _ => "Code built at run time cannot be checked before it runs: whatever it does escapes every static check.",
    }
}

fn generate() -> String {
    let mut out = String::from(
        "# Code rules\n\n\
         <!-- Generated from code/src/rules.rs by tests/it/code_docs.rs; run `UPDATE_DOCS=1 cargo test -p symbiont-tests code_docs` after changing the table. -->\n\n\
         The code analysis reads agent code in Rust, Python, JavaScript and TypeScript and reports where it\n\
         performs an operation of the policy catalogue (`docs/operations.md`). Each call's callee is resolved\n\
         through the file's imports and aliases (`import requests as r; r.get(u)` is `requests.get`;\n\
         `const { get } = require(\"axios\")` makes `get` `axios.get`; `use std::fs::write;` makes `write`\n\
         `std::fs::write`), and names defined in the file shadow imports and globals. A finding is an error when\n\
         the governing policy (the agent whose `implementation` names the file, or the workspace base\n\
         policy) denies the operation, and a warning (SYM0402) when it allows it but the agent does not declare\n\
         it in `capabilities`.\n\n\
         **Suppressing.** A comment `symbiont: allow OPERATION -- reason` on the line of the finding or the\n\
         line above suppresses it; `check` reports it as suppressed, and a suppression without a reason is an\n\
         error (SYM0403).\n\n\
         **Custom rules** go in `symbiont.toml`; `builtin_rules = false` turns the rules below off:\n\n\
         ```toml\n[code]\nbuiltin_rules = true\n\n[[code.rules]]\nid = \"py-requests-get\"\nlanguage = \"python\"\noperation = \"network_access\"\nmessage = \"network call requests.get denied by policy\"\npattern = [\"requests.get\"]            # qualified callees, resolved through imports; `*` matches anything\n# or: query = '(call function: (attribute) @callee) @match'   # a tree-sitter query; `@match` is reported\n```\n\n\
         A query runs only on the files that contain the words its `(#eq? @capture \"word\")` predicates\n\
         compare with (captures that every match has), and there only at the nodes that contain them; with\n\
         the built-in rules off, a file that no rule can match is not even parsed.\n\n\
         **Limits.** What the rules cannot see, so that reviewers know where to look:\n\
         - Names are resolved per file, by name. A call through a variable whose value is known only at run\n  \
           time is not seen (`s = requests.Session(); s.get(u)`: the constructor is reported, `s.get` is\n  \
           not). A parameter named like an imported module is read as the module.\n\
         - Functions passed as values are not calls: `map(requests.get, urls)`, `cb = fetch`.\n\
         - Dynamic access is not seen: `getattr(os, \"system\")`, `globals()[\"eval\"]`, `obj[\"fetch\"](u)`,\n  \
           `require(name)` with a computed name.\n\
         - Rust: inside macros only `path::f(…)` calls are found; glob imports are not followed; a method on a\n  \
           value is resolved only on a chained call.\n\
         - Scale: files over 16 MiB are not scanned (SYM0405 says so), files over 256 KiB get no fixes, names\n  \
           longer than 64 segments are not resolved. After a syntax error tree-sitter may skip the code that\n  \
           follows: the first error is reported (SYM0404).\n\
         - Suppressions are matched per line; a `symbiont: allow` inside a string on that line also counts.\n\n\
         | Code | Name | Operation | Summary |\n|------|------|-----------|---------|\n",
    );
    for rule in RULES {
        out.push_str(&format!("| {} | {} | `{}` | {} |\n", rule.code, rule.name, rule.operation, rule.summary));
    }
    for rule in RULES {
        let (_, fence) = lang_of(rule);
        out.push_str(&format!(
            "\n## {}: {}\n\n### What it catches\n{} It matches these callees (`*` matches anything):\n",
            rule.code, rule.name, rule.summary
        ));
        let mut names: Vec<String> = rule.patterns.iter().map(|p| format!("`{p}`")).collect();
        names.dedup();
        out.push_str(&format!("{}.\n", names.join(", ")));
        if let symbiont_code::rules::ArgCheck::OpenModeWrites = rule.args {
            out.push_str("\n`open` counts only with a mode that writes (`w`, `a`, `x` or `+`), or a mode that is not a literal.\n");
        }
        if let symbiont_code::rules::ArgCheck::OpenModeReads = rule.args {
            out.push_str("\n`open` counts only without a mode, or with a literal mode that only reads.\n");
        }
        out.push_str(&format!("\n### Why it matters\n{}\n", why(rule.operation)));
        out.push_str(&format!("\n### Example\n```{fence}\n{}\n```\n", rule.example));
        out.push_str(&format!("\n### Fix\nAllow `{}` in the agent's policy if it is intended, route the call through the Symbiont SDK so the runtime's broker performs it, or do without:\n\n```{fence}\n{}\n```\n", rule.operation, rule.negative));
        if !rule.sdk.is_empty() {
            out.push_str("\nThe quick fix rewrites these calls to the Symbiont SDK with the same arguments, when the call passes at most the positional arguments and only the keywords listed (no `*args`, `**kwargs` or spread) and the code uses its result only through the members listed (the result discarded, read by member, or bound to a name with no declared type that is only read by member; in Rust, a `?` only in a function whose error a `symbiont::Error` converts into), imports the SDK, and removes the import the call was the last use of (`check --fix` applies it). Any other callee or call of this rule gets no SDK rewrite, since the SDK has no call that takes its arguments and returns what the code uses:\n\n| Callee | SDK call | Positional | Keywords | Result used through |\n|--------|----------|------------|----------|---------------------|\n");
            let listed = |names: &[&str]| {
                let names: Vec<String> = names.iter().map(|k| format!("`{k}`")).collect();
                if names.is_empty() {
                    "—".to_string()
                } else {
                    names.join(", ")
                }
            };
            for row in rule.sdk {
                let (keywords, result) = (listed(row.keywords), listed(row.result));
                out.push_str(&format!("| `{}` | `{}` | {} | {keywords} | {result} |\n", row.callee, row.sdk_call, row.positional));
            }
        }
    }
    out
}

#[test]
fn code_rules_doc_is_generated_from_the_table() {
    let path = repo_root().join("docs/code-rules.md");
    let expected = generate();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(actual == expected, "docs/code-rules.md is out of date: run `UPDATE_DOCS=1 cargo test -p symbiont-tests code_docs`");
}

#[test]
fn every_rule_example_triggers_it_and_its_negative_does_not() {
    let rules = RuleSet::default();
    let mut codes = std::collections::HashSet::new();
    for rule in RULES {
        assert!(codes.insert(rule.code), "{} is used twice", rule.code);
        let (lang, _) = lang_of(rule);
        let positive = rules.scan(lang, &as_file(lang, rule.example)).findings;
        assert!(positive.iter().any(|f| f.rule == rule.code), "{}: its example is not flagged: {positive:?}", rule.code);
        let negative = rules.scan(lang, &as_file(lang, rule.negative)).findings;
        assert!(!negative.iter().any(|f| f.rule == rule.code), "{}: its negative example is flagged: {negative:?}", rule.code);
    }
}
