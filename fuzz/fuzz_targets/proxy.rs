//! The PROXY protocol decoder on arbitrary bytes, as each version and
//! both: it must never panic, a whole header can never be longer than the
//! bytes given nor than the protocol's limits, and the decoder must agree
//! with itself on every prefix of a header it accepts (a prefix is the
//! start of a header, never an error), since the daemon decodes headers
//! as their bytes arrive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use preforkd::net::proxy::{decode, Decoded, ProxyVersion, MAX_V1, MAX_V2};

fuzz_target!(|data: &[u8]| {
    for version in [ProxyVersion::V1, ProxyVersion::V2, ProxyVersion::Any] {
        if let Decoded::Complete(_, len) = decode(data, version) {
            assert!(len > 0 && len <= data.len(), "length {len} of {}", data.len());
            assert!(len <= MAX_V1.max(MAX_V2));
            for end in 1..len {
                let prefix = decode(&data[..end], version);
                assert_eq!(prefix, Decoded::Incomplete, "prefix of {end} bytes");
            }
        }
    }
});
