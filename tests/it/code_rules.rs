//! The built-in code rules held to real code: every rule of `symbiont_code::rules::RULES` has,
//! for each language of its family, a positive fixture (the call shapes agents really write:
//! aliased imports, destructured requires, method chains, nested calls, calls in classes,
//! closures and async code) and a negative one (look-alikes: `my.requests.get`, a local `fetch`,
//! `open` for reading, a `get` method on another object, the callee in strings and comments,
//! shadowed imports) in `tests/it/code/`.
//!
//! Fixtures are named `CODE-kind.ext` (`SYM0301-positive.py`, `SYM0311-alias.ts`,
//! `SYM0302-negative-local-open.py`); the rule a fixture targets is its name's prefix, and it is a
//! negative fixture when the name says `negative`. In a fixture, a line whose comment says `HIT`
//! is where the targeted rule must report (`HIT HIT` for two findings); every other line must not
//! report it. The findings of every rule are snapshotted per fixture (`code/snapshots/`), and so
//! are the fixes of each finding: the suppression comment and the SDK rewrite, each checked to
//! re-parse and to do what it says.

use std::path::{Path, PathBuf};

use symbiont_code::{
    fix::{self, Edit},
    lang::Family,
    rules::{self, RULES},
    scan::{self, Finding},
    Lang, RuleSet,
};
use symbiont_syntax::{LineIndex, TextSize};

pub(crate) struct Fixture {
    pub(crate) name: String,
    pub(crate) lang: Lang,
    /// The rule the fixture targets (its name's prefix).
    pub(crate) rule: &'static rules::Rule,
    pub(crate) negative: bool,
    pub(crate) text: String,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("it/code")
}

pub(crate) fn fixtures() -> Vec<Fixture> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixture_dir()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let lang = Lang::from_path(&path).unwrap_or_else(|| panic!("{name}: not a code file"));
            let code = name.split('-').next().unwrap();
            let rule = rules::lookup(code).unwrap_or_else(|| panic!("{name}: no rule {code}"));
            assert_eq!(rule.family, lang.family(), "{name}: {code} is not a rule of this language");
            let text = std::fs::read_to_string(&path).unwrap();
            Fixture { negative: name.contains("negative"), name, lang, rule, text }
        })
        .collect()
}

/// 1-based `line:col` (columns in chars) of a byte offset.
pub(crate) fn position(text: &str, offset: usize) -> (u32, u32) {
    let at = LineIndex::new(text).line_col(text, TextSize::from(offset as u32));
    (at.line + 1, at.col + 1)
}

/// `line:col rule operation qualified`, one finding a line.
pub(crate) fn render(text: &str, findings: &[Finding]) -> String {
    let index = LineIndex::new(text);
    let mut out = String::new();
    for f in findings {
        let at = index.line_col(text, TextSize::from(f.start as u32));
        let (line, col) = (at.line + 1, at.col + 1);
        out.push_str(&format!("{line}:{col} {} {} {}", f.rule, f.operation, f.qualified));
        if let Some(s) = &f.suppression {
            out.push_str(&format!(" (suppressed: {})", s.reason));
        }
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str("(no findings)\n");
    }
    out
}

fn has_error(lang: Lang, text: &str) -> bool {
    scan::parse(lang, text).expect("parses").root_node().has_error()
}

/// How many findings of the targeted rule each line must have: the `HIT`s in its comment.
fn expected_hits(fixture: &Fixture) -> Vec<(u32, usize)> {
    let comment = fixture.lang.line_comment();
    fixture
        .text
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            // `//` and `#` comments, and JSX's `{/* … */}`.
            let at = line.find(comment).or_else(|| line.find("/*"))?;
            let hits = line[at..].matches("HIT").count();
            (hits > 0).then_some((i as u32 + 1, hits))
        })
        .collect()
}

pub(crate) fn snapshot(name: &str, contents: String) {
    insta::with_settings!({ snapshot_path => "code/snapshots", prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!(name, contents);
    });
}

#[test]
fn fixtures_report_what_their_hit_markers_say() {
    let rules = RuleSet::default();
    let mut failures = Vec::new();
    for fixture in fixtures() {
        assert!(!has_error(fixture.lang, &fixture.text), "{}: the fixture has a syntax error", fixture.name);
        let scan = rules.scan(fixture.lang, &fixture.text);
        assert_eq!(scan.syntax_errors, 0, "{}", fixture.name);
        snapshot(&fixture.name, render(&fixture.text, &scan.findings));

        let mut actual: Vec<(u32, usize)> = Vec::new();
        for f in scan.findings.iter().filter(|f| f.rule == fixture.rule.code) {
            let (line, _) = position(&fixture.text, f.start);
            match actual.last_mut() {
                Some((l, n)) if *l == line => *n += 1,
                _ => actual.push((line, 1)),
            }
        }
        let expected = expected_hits(&fixture);
        if fixture.negative {
            assert!(expected.is_empty(), "{}: a negative fixture marks no HIT", fixture.name);
        }
        if actual != expected {
            let lines: Vec<&str> = fixture.text.lines().collect();
            let show = |v: &[(u32, usize)]| {
                v.iter().map(|(l, n)| format!("  {l} ×{n}: {}", lines[*l as usize - 1].trim())).collect::<Vec<_>>().join("\n")
            };
            let missed: Vec<_> = expected.iter().filter(|e| !actual.contains(e)).copied().collect();
            let extra: Vec<_> = actual.iter().filter(|a| !expected.contains(a)).copied().collect();
            failures.push(format!(
                "{} ({}):\n missed (expected, not reported):\n{}\n unexpected (reported, not marked):\n{}",
                fixture.name,
                fixture.rule.code,
                show(&missed),
                show(&extra)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The languages a family's rules are written for, by extension.
fn extensions(family: Family) -> &'static [&'static str] {
    match family {
        Family::Python => &["py"],
        Family::Js => &["js", "ts"],
        Family::Rust => &["rs"],
    }
}

#[test]
fn every_rule_has_positive_and_negative_fixtures_per_language() {
    let rules = RuleSet::default();
    let fixtures = fixtures();
    for rule in RULES {
        for ext in extensions(rule.family) {
            let of = |negative: bool| {
                fixtures.iter().filter(move |f| f.rule.code == rule.code && f.negative == negative && f.name.ends_with(&format!(".{ext}")))
            };
            let positives: Vec<&Fixture> = of(false).collect();
            assert!(!positives.is_empty(), "{}: no positive .{ext} fixture", rule.code);
            for f in positives {
                let n = rules.scan(f.lang, &f.text).findings.iter().filter(|x| x.rule == rule.code).count();
                assert!(n >= 2, "{}: reports {} only {n} time(s); a positive fixture shows several call shapes", f.name, rule.code);
            }
            let negatives: Vec<&Fixture> = of(true).collect();
            assert!(!negatives.is_empty(), "{}: no negative .{ext} fixture", rule.code);
            for f in negatives {
                let findings = rules.scan(f.lang, &f.text).findings;
                let own: Vec<&Finding> = findings.iter().filter(|x| x.rule == rule.code).collect();
                assert!(own.is_empty(), "{}: a negative fixture of {} reports it: {own:?}", f.name, rule.code);
            }
        }
    }
    assert!(fixtures.iter().any(|f| f.lang == Lang::Tsx), "one TSX fixture at least");
    // Every fixture names a rule and a kind the test knows.
    for f in &fixtures {
        let kind = f.name.split_once('-').map(|(_, k)| k).unwrap_or("");
        assert!(["positive", "negative", "alias"].iter().any(|k| kind.starts_with(k)), "{}: unknown fixture kind", f.name);
    }
}

/// The lines one edit changes: `-N old` for the original's, `+N new` for the result's.
fn hunk(before: &str, edit: &Edit) -> String {
    let after = fix::apply(before, std::slice::from_ref(edit));
    let old: Vec<&str> = before.lines().collect();
    let new: Vec<&str> = after.lines().collect();
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..].iter().rev().zip(new[prefix..].iter().rev()).take_while(|(a, b)| a == b).count();
    let mut out = String::new();
    for (i, line) in old[prefix..old.len() - suffix].iter().enumerate() {
        out.push_str(&format!("  -{} {line}\n", prefix + i + 1));
    }
    for (i, line) in new[prefix..new.len() - suffix].iter().enumerate() {
        out.push_str(&format!("  +{} {line}\n", prefix + i + 1));
    }
    out
}

/// Where a finding is after `edits` shifted the text: edits before it move it by their length
/// change.
fn shifted(offset: usize, edits: &[Edit]) -> usize {
    let delta: isize = edits.iter().filter(|e| e.end <= offset).map(|e| e.new_text.len() as isize - (e.end - e.start) as isize).sum();
    (offset as isize + delta) as usize
}

/// The language's first lines that must stay first: a shebang, Python's encoding cookie and
/// `from __future__` imports, JavaScript's `"use strict"`.
fn must_stay_first(lang: Lang, text: &str) -> Vec<String> {
    text.lines()
        .take_while(|l| {
            l.starts_with("#!")
                || (lang == Lang::Python && (l.starts_with("# -*-") || l.starts_with("from __future__")))
                || (lang.family() == Family::Js && (l.trim() == "\"use strict\";" || l.trim() == "'use strict';"))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn fixes_reparse_and_do_what_they_say() {
    const REASON: &str = "reviewed: the broker proxies this call";
    let rules = RuleSet::default();
    for fixture in fixtures() {
        let (lang, text) = (fixture.lang, fixture.text.as_str());
        let findings = rules.scan(lang, text).findings;
        if findings.is_empty() {
            continue;
        }
        let errors_before = has_error(lang, text);
        let mut out = String::new();
        for finding in &findings {
            let (line, col) = position(text, finding.start);
            out.push_str(&format!("== {line}:{col} {} {}\n", finding.rule, finding.qualified));
            let who = format!("{} finding {line}:{col} {}", fixture.name, finding.qualified);
            if let Some(s) = &finding.suppression {
                // Already suppressed: `check` offers no fix.
                out.push_str(&format!("suppressed ({})\n", s.reason));
                continue;
            }

            // The suppression comment: parses, and with its reason written suppresses the finding.
            let edits = fix::suppression(lang, text, finding).unwrap_or_else(|| panic!("{who}: no suppression fix"));
            let fixed = fix::apply(text, &edits);
            assert!(!has_error(lang, &fixed) || errors_before, "{who}: the suppression breaks the parse:\n{fixed}");
            out.push_str("suppression:\n");
            for edit in &edits {
                out.push_str(&hunk(text, edit));
            }
            let placeholder = fixed;
            let rescanned = rules.scan(lang, &placeholder).findings;
            let at = shifted(finding.start, &edits);
            let still = rescanned
                .iter()
                .find(|f| f.start == at && f.rule == finding.rule)
                .unwrap_or_else(|| panic!("{who}: the finding moved after the suppression:\n{}", render(&placeholder, &rescanned)));
            assert_eq!(
                still.suppression.as_ref().map(|s| s.reason.as_str()),
                Some(fix::REASON_PLACEHOLDER),
                "{who}: the placeholder suppression is not seen"
            );
            let justified = placeholder.replacen(fix::REASON_PLACEHOLDER, REASON, 1);
            let rescanned = rules.scan(lang, &justified).findings;
            // The reason is written on a line before the finding, which moves by the difference.
            let shift = REASON.len() as isize - fix::REASON_PLACEHOLDER.len() as isize;
            let at = (at as isize + shift) as usize;
            let still = rescanned
                .iter()
                .find(|f| f.start == at && f.rule == finding.rule)
                .unwrap_or_else(|| panic!("{who}: the finding moved after writing the reason:\n{}", render(&justified, &rescanned)));
            assert_eq!(still.suppression.as_ref().map(|s| s.reason.as_str()), Some(REASON), "{who}: not suppressed");
            assert_eq!(rescanned.len(), findings.len(), "{who}: the suppression changed other findings");

            // The SDK rewrite, for rules that have an SDK: parses, keeps the lines that must stay
            // first, and the rewritten call is no longer a finding of the rule.
            let Some(rule) = rules::lookup(&finding.rule).filter(|r| !r.sdk.is_empty()) else { continue };
            let Some(row) = rule.sdk.iter().find(|row| row.callee == finding.qualified) else {
                out.push_str(&format!("sdk: none for `{}` (no SDK call takes its arguments)\n", finding.qualified));
                continue;
            };
            let sdk = row.sdk_call;
            let Some(edits) = fix::sdk_rewrite(lang, text, finding, row) else {
                out.push_str(&format!("sdk ({sdk}): none\n"));
                continue;
            };
            let fixed = fix::apply(text, &edits);
            assert!(!has_error(lang, &fixed) || errors_before, "{who}: the SDK rewrite breaks the parse:\n{fixed}");
            let first = must_stay_first(lang, text);
            assert_eq!(
                fixed.lines().take(first.len()).collect::<Vec<_>>(),
                first,
                "{who}: the SDK import displaced the file's first lines"
            );
            out.push_str(&format!("sdk ({sdk}):\n"));
            for edit in &edits {
                out.push_str(&hunk(text, edit));
            }
            let after = rules.scan(lang, &fixed).findings;
            let count = |fs: &[Finding]| fs.iter().filter(|f| f.rule == finding.rule).count();
            assert_eq!(
                count(&after),
                count(&findings) - 1,
                "{who}: the rewrite did not remove exactly this finding:\n{}",
                render(&fixed, &after)
            );
            assert!(
                !after.iter().any(|f| f.start == shifted(finding.start, &edits) && f.rule == finding.rule),
                "{who}: still reported after the rewrite"
            );
        }
        snapshot(&format!("{}.fixes", fixture.name), out);
    }
}
