//! The config parser on arbitrary text: it must never panic, and every
//! error it reports must point into the text it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(diagnostics) = preforkd::config::parse("fuzz.toml", text) {
        assert!(!diagnostics.is_empty(), "an error without a diagnostic");
        for d in diagnostics {
            // Display renders the offending line: it must exist.
            let shown = d.to_string();
            assert!(shown.starts_with("fuzz.toml:"), "{shown}");
        }
    }
});
