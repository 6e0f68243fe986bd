//! Any input: the parser and the analysis never panic, and the tree holds the input byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parse = symbiont_syntax::parse(text);
    assert_eq!(parse.syntax().text().to_string(), text);
    let mut host = symbiont_analysis::AnalysisHost::new();
    host.set_file("fuzz.sym", text);
    for (_, diagnostics) in host.all_diagnostics() {
        for d in diagnostics {
            assert!(usize::from(d.range.end()) <= text.len());
        }
    }
});
