//! `docs/diagnostics.md` documents every rule, and its examples are true: each example triggers its
//! code and each fix silences it.

use symbiont_analysis::{AnalysisHost, RULES};
use symbiont_tests::repo_root;

struct Entry {
    code: String,
    name: String,
    sections: Vec<(String, String)>,
}

fn entries(doc: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for chunk in doc.split("\n## ").skip(1) {
        let (heading, body) = chunk.split_once('\n').unwrap_or((chunk, ""));
        let (code, name) = heading.split_once(": ").unwrap_or((heading, ""));
        let sections = body
            .split("\n### ")
            .skip(1)
            .map(|s| {
                let (title, text) = s.split_once('\n').unwrap_or((s, ""));
                (title.trim().to_string(), text.trim().to_string())
            })
            .collect();
        entries.push(Entry { code: code.trim().to_string(), name: name.trim().to_string(), sections });
    }
    entries
}

/// The language and content of the first fenced code block of a section.
fn code_block(text: &str) -> Option<(&str, &str)> {
    let start = text.find("```")?;
    let rest = &text[start + 3..];
    let (lang, rest) = rest.split_once('\n')?;
    let end = rest.find("```")?;
    Some((lang.trim(), &rest[..end]))
}

/// The codes reported for an example, analysed as a one-file workspace (or as `symbiont.toml`).
fn codes_for(lang: &str, text: &str) -> Vec<String> {
    let mut host = AnalysisHost::new();
    match lang {
        "sym" => host.set_file("example.sym", text),
        "toml" => host.set_config(Some(("symbiont.toml".into(), text.to_string()))),
        // `//- path` starts each file of a multi-file example.
        "workspace" => host = crate::fixture::Fixture::parse(text, "example.sym").host(),
        other => panic!("unexpected example language {other}"),
    }
    host.all_diagnostics().into_iter().flat_map(|(_, ds)| ds.into_iter().map(|d| d.code().to_string())).collect()
}

#[test]
fn every_rule_is_documented_and_its_examples_hold() {
    let doc = std::fs::read_to_string(repo_root().join("docs/diagnostics.md")).unwrap();
    let entries = entries(&doc);
    for rule in RULES.iter().filter(|r| r.page == "docs/diagnostics.md") {
        let entry =
            entries.iter().find(|e| e.code == rule.code).unwrap_or_else(|| panic!("{} has no entry in docs/diagnostics.md", rule.code));
        assert_eq!(entry.name, rule.name, "{}: the documented name differs from the registry", rule.code);
        assert!(
            doc.contains(&format!("| {} | {} | {} | {} |", rule.code, rule.name, rule.severity, rule.summary)),
            "{}: the summary table row is out of date",
            rule.code
        );
        for title in ["What it catches", "Why it matters", "Example", "Fix"] {
            let text = entry.sections.iter().find(|(t, _)| t == title).map(|(_, text)| text.as_str()).unwrap_or("");
            assert!(!text.is_empty(), "{}: section `{title}` is missing or empty", rule.code);
        }
        let example = entry.sections.iter().find(|(t, _)| t == "Example").and_then(|(_, t)| code_block(t));
        let fix = entry.sections.iter().find(|(t, _)| t == "Fix").and_then(|(_, t)| code_block(t));
        let (Some((lang, example)), Some((fix_lang, fix))) = (example, fix) else {
            panic!("{}: Example and Fix need a code block each", rule.code);
        };
        if lang == "text" {
            // Not expressible as source text (an unreadable file): the CLI tests cover it.
            continue;
        }
        let codes = codes_for(lang, example);
        assert!(codes.iter().any(|c| c == rule.code), "{}: the example does not trigger it (got {codes:?})", rule.code);
        let codes = codes_for(fix_lang, fix);
        assert!(!codes.iter().any(|c| c == rule.code), "{}: the fix still triggers it", rule.code);
        let errors: Vec<&String> = codes.iter().filter(|c| *c == "SYM0001").collect();
        assert!(errors.is_empty(), "{}: the fix does not parse", rule.code);
    }
    for entry in &entries {
        assert!(RULES.iter().any(|r| r.code == entry.code), "docs/diagnostics.md documents {}, which is not in the registry", entry.code);
    }
}
