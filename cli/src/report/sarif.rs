//! The SARIF 2.1.0 report, for code-scanning services. One run; the driver lists every rule of
//! the analysis, and results point at them by id and index. Relative paths are URIs relative to
//! `%SRCROOT%`, the directory `symbiont check` ran in; columns are UTF-16 code units (SARIF's
//! default `columnKind`).

use std::path::Path;

use serde_json::{json, Value};
use symbiont_analysis::{diagnostics::all_rules, Rule, Severity};

use super::{Location, Report, ReportPath};

const SCHEMA: &str = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";
const SRCROOT: &str = "%SRCROOT%";

/// The repository the tool was built from, when its manifest names one: rules' `helpUri`s
/// point into its `docs/diagnostics.md`. SARIF wants absolute URIs there, so without it the
/// rules carry the documentation's relative path in their help text only.
const REPOSITORY: &str = env!("CARGO_PKG_REPOSITORY");

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info | Severity::Hint => "note",
    }
}

/// `docs/diagnostics.md#sym0101-duplicate-definition`: the rule's entry in the documentation
/// (the anchor GitHub and most Markdown renderers give its `## SYM0101: duplicate-definition`
/// heading).
pub fn docs_path(rule: &Rule) -> String {
    format!("{}#{}-{}", rule.page, rule.code.to_ascii_lowercase(), rule.name)
}

fn rule(rule: &Rule) -> Value {
    let docs = docs_path(rule);
    let mut descriptor = json!({
        "id": rule.code,
        "name": rule.name,
        "shortDescription": { "text": rule.summary },
        "fullDescription": {
            "text": format!("{} `{}` is reported as {} by default.", rule.summary, rule.name, rule.severity)
        },
        "help": { "text": format!("{} See {docs}.", rule.summary) },
        "defaultConfiguration": { "level": level(rule.severity) },
        "properties": { "documentation": docs },
    });
    if !REPOSITORY.is_empty() {
        descriptor["helpUri"] = json!(format!("{}/blob/main/{docs}", REPOSITORY.trim_end_matches('/')));
    }
    descriptor
}

fn artifact_location(path: &ReportPath) -> Value {
    if path.is_relative {
        json!({ "uri": path.uri, "uriBaseId": SRCROOT })
    } else {
        json!({ "uri": path.uri })
    }
}

fn region(location: &Location) -> Value {
    json!({
        "startLine": location.start.line,
        "startColumn": location.start.column_utf16,
        "endLine": location.end.line,
        "endColumn": location.end.column_utf16,
    })
}

fn physical_location(location: &Location) -> Value {
    json!({ "artifactLocation": artifact_location(&location.path), "region": region(location) })
}

/// Renders the report. `root` is the directory relative paths are relative to.
pub fn render(report: &Report, root: &Path) -> String {
    let results: Vec<Value> = report
        .diagnostics
        .iter()
        .map(|item| {
            let mut result = json!({
                "ruleId": item.rule.code,
                "level": level(item.severity),
                "message": { "text": item.message },
                "locations": [{ "physicalLocation": physical_location(&item.location) }],
            });
            if let Some(index) = all_rules().position(|r| r.code == item.rule.code) {
                result["ruleIndex"] = json!(index);
            }
            if !item.related.is_empty() {
                result["relatedLocations"] = item
                    .related
                    .iter()
                    .enumerate()
                    .map(|(id, related)| {
                        json!({
                            "id": id,
                            "physicalLocation": physical_location(&related.location),
                            "message": { "text": related.message },
                        })
                    })
                    .collect();
            }
            if let Some(fix) = &item.fix {
                // One artifactChange per file, in the order the files first appear.
                let mut changes: Vec<(&ReportPath, Vec<Value>)> = Vec::new();
                for edit in &fix.edits {
                    let replacement = json!({
                        "deletedRegion": region(&edit.location),
                        "insertedContent": { "text": edit.new_text },
                    });
                    match changes.iter_mut().find(|(path, _)| **path == edit.location.path) {
                        Some((_, replacements)) => replacements.push(replacement),
                        None => changes.push((&edit.location.path, vec![replacement])),
                    }
                }
                result["fixes"] = json!([{
                    "description": { "text": fix.title },
                    "artifactChanges": changes
                        .into_iter()
                        .map(|(path, replacements)| json!({ "artifactLocation": artifact_location(path), "replacements": replacements }))
                        .collect::<Vec<_>>(),
                }]);
            }
            result
        })
        .collect();

    let mut root_uri = ReportPath::new(root).uri;
    if !root_uri.ends_with('/') {
        root_uri.push('/');
    }
    let mut driver = json!({
        "name": "symbiont",
        "version": env!("CARGO_PKG_VERSION"),
        "semanticVersion": env!("CARGO_PKG_VERSION"),
        "rules": all_rules().map(rule).collect::<Vec<_>>(),
    });
    if !REPOSITORY.is_empty() {
        driver["informationUri"] = json!(REPOSITORY);
    }
    let mut run = json!({
        "tool": { "driver": driver },
        "columnKind": "utf16CodeUnits",
        "results": results,
    });
    if root.is_absolute() {
        run["originalUriBaseIds"] = json!({ SRCROOT: { "uri": root_uri } });
    }
    let log = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [run],
    });
    let mut out = serde_json::to_string_pretty(&log).expect("the report serializes");
    out.push('\n');
    out
}
