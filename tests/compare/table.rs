//! What `compare` prints for a person rather than for a program: the
//! brief table that fits a projector, the footer, programs given as a
//! shell would split them or after `--`, and why connections failed.

use std::time::Duration;

use crate::util::*;

/// Runs `preforkd compare ARGS` and returns its exit status, stdout and
/// stderr.
fn compare_text(args: &[&str]) -> (bool, String, String) {
    let out = run_command_within(
        std::process::Command::new(BIN).arg("compare").args(args),
        Duration::from_secs(120),
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SMALL: [&str; 6] = ["--clients", "1", "--connections", "100", "--repeat", "2"];

#[test]
fn the_brief_table_fits_a_projector_and_the_footer_states_the_noise() {
    let mut args = vec![
        "--brief",
        "--models",
        "iterative,fork,prefork-epoll-exclusive,pool-lock",
    ];
    args.extend(SMALL);
    args.extend(["--", "/bin/cat"]);
    let (ok, out, err) = compare_text(&args);
    assert!(ok, "{err}");
    let (table, footer) = out.split_once("\n\n").expect("a table, then a footer");
    assert!(
        table.lines().count() == 5,
        "a header and four rows: {table}"
    );
    for line in table.lines() {
        assert!(
            line.chars().count() < 100,
            "{} columns: {line}",
            line.chars().count()
        );
    }
    assert!(
        table.lines().next().unwrap().contains("wake/conn"),
        "{table}"
    );
    assert!(
        footer.contains("median of 2 rounds of 100 connections"),
        "{footer}"
    );
    assert!(footer.contains("Noise here"), "{footer}");
}

#[test]
fn a_program_is_split_as_a_shell_would_and_failures_say_why() {
    // Quoted: one argument with blanks, which /bin/sh runs.
    let mut args = vec![
        "--models",
        "prefork",
        "--service",
        "exec:/bin/sh -c 'exec cat'",
    ];
    args.extend(SMALL);
    let (ok, _, err) = compare_text(&args);
    assert!(ok, "{err}");
    // A program that answers nothing: every connection fails, and the
    // first failure is named.
    let mut args = vec![
        "--models",
        "prefork",
        "--service",
        "exec:/bin/sh -c 'exec true'",
    ];
    args.extend(SMALL);
    let (ok, _, err) = compare_text(&args);
    assert!(!ok, "{err}");
    assert!(
        err.contains("prefork at 1 client: 200 connections failed; the first: "),
        "{err}"
    );
    // An unclosed quote is a usage error, on one line.
    let (ok, _, err) = compare_text(&["--service", "exec:/bin/sh -c 'exec cat"]);
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("is not closed"), "{err}");
}
