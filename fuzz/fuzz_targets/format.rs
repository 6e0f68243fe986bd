//! Any input that parses: formatting is idempotent and preserves the significant structure.
#![no_main]

use libfuzzer_sys::fuzz_target;
use symbiont_syntax::format::{format, significant_structure};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(formatted) = format(text) else { return };
    let reparsed = symbiont_syntax::parse(&formatted);
    assert!(reparsed.errors().is_empty(), "formatted output does not parse: {formatted:?}");
    assert_eq!(
        significant_structure(&symbiont_syntax::parse(text).syntax()),
        significant_structure(&reparsed.syntax()),
        "formatting changed the meaning"
    );
    assert_eq!(format(&formatted).as_deref(), Ok(formatted.as_str()), "formatting is not idempotent");
});
