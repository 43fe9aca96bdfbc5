//! The tests of `preforkd compare`, in a test target of their own: cargo
//! runs one test target at a time, so these measure a machine that is not
//! also running the other targets' hundreds of tests, and [`compare`]
//! runs one compare at a time within this one. What they check is what a
//! teacher checks: every model measured and every column filled, figures
//! that hold from one run to the next, the herd made visible, the book's
//! order of chapter 30, and charts that render.

// The harness of the integration tests, shared: not all of it is used here.
#[allow(dead_code, unused_imports)]
#[path = "../integration/util/mod.rs"]
mod util;

mod charts;
mod columns;
mod table;
mod teach;

use std::time::Duration;

use util::*;

/// Runs `preforkd compare ARGS --json` and returns its report's rows.
///
/// One at a time: two compares at once would each measure the other as
/// noise.
pub(crate) fn compare(args: &[&str]) -> Vec<serde_json::Value> {
    compare_report(args)["rows"]
        .as_array()
        .expect("rows in the report")
        .clone()
}

/// The same, the whole report.
pub(crate) fn compare_report(args: &[&str]) -> serde_json::Value {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut all = vec!["compare"];
    all.extend_from_slice(args);
    all.push("--json");
    // Servers started and stopped by the dozen: minutes, not seconds,
    // before calling it stuck.
    let out = run_command_within(
        std::process::Command::new(BIN).args(&all),
        Duration::from_secs(300),
    );
    assert!(
        out.status.success(),
        "compare failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}
