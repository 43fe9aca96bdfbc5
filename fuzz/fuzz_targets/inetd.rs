//! The inetd.conf importer on arbitrary text: it must never panic, and
//! what it writes must always be TOML (names, paths and arguments from
//! the file are quoted, whatever they hold).
#![no_main]

use libfuzzer_sys::fuzz_target;
use preforkd::config::inetd::{import, Services};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let services = Services::parse("echo 7/tcp\necho 7/udp\ndaytime 13/tcp\nftp 21/tcp\n");
    let toml_text = import("inetd.conf", text, &services).toml;
    if let Err(e) = toml_text.parse::<toml::Table>() {
        panic!("import wrote invalid TOML: {e}\n--- input\n{text}\n--- output\n{toml_text}");
    }
});
