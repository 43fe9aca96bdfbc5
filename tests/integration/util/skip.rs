//! Skipping a test that cannot run here, and the STRICT rule: under
//! `PREFORKD_TEST_STRICT=1`, which CI sets, a skip fails the test instead.
//! Only the checks more than one file makes; a file's own prerequisite
//! stays in that file.

use std::io::Write;

/// Whether a test can run here: false, after printing `skipped: needs
/// WHAT (HOW)`, when `available` is false, so the test returns and passes
/// on a machine without it. Under `PREFORKD_TEST_STRICT=1`, which CI sets,
/// a skip fails the test instead.
pub fn needs(available: bool, what: &str, how: &str) -> bool {
    if available {
        return true;
    }
    let strict = std::env::var_os("PREFORKD_TEST_STRICT").is_some_and(|v| v == "1");
    assert!(
        !strict,
        "needs {what} ({how}), and PREFORKD_TEST_STRICT=1 forbids skipping"
    );
    // Straight to descriptor 2: the test harness captures what eprintln!
    // prints and shows it only for a test that fails, and a skip passes.
    let _ = writeln!(std::io::stderr(), "skipped: needs {what} ({how})");
    false
}

/// [`needs`] root: the tests that play an unprivileged attacker against a
/// root master start the master as root and the attacker as `nobody`.
pub fn needs_root() -> bool {
    needs(
        nix::unistd::geteuid().is_root(),
        "root",
        "run the tests with sudo, as CI does",
    )
}

/// The Python every Python attacker runs with.
pub const PYTHON: &str = "/usr/bin/python3";

/// Whether the test can run Python as `nobody` (root, python3).
pub fn can_play_nobody() -> bool {
    needs_root()
        && needs(
            std::path::Path::new(PYTHON).exists(),
            "python3",
            "apt-get install python3",
        )
}
