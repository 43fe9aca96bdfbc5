//! Programs that exec services run to report what they were given: the
//! UCSPI variables and the descriptors left open, and how a test reads
//! and checks that report.

use std::collections::BTreeMap;

/// A script that prints its UCSPI variables, then lists its descriptors
/// with ls, which it execs (so the shell's own script descriptor is gone).
pub const REPORT_SCRIPT: &str = "#!/bin/sh\n\
    for v in PROTO TCPREMOTEIP TCPREMOTEPORT TCPLOCALIP TCPLOCALPORT IPCLOCALPATH; do\n\
      eval \"printf '%s=%s\\n' $v \\\"\\${$v-unset}\\\"\"\n\
    done\n\
    exec ls -l /proc/self/fd\n";

/// What [`REPORT_SCRIPT`] printed: its variables by name, and its
/// descriptors with what each points to.
pub fn parse_report(out: &str) -> (BTreeMap<String, String>, Vec<(u32, String)>) {
    let mut env = BTreeMap::new();
    let mut fds = Vec::new();
    for line in out.lines() {
        if let Some((k, v)) = line.split_once('=') {
            if !line.contains(" -> ") {
                env.insert(k.to_string(), v.to_string());
                continue;
            }
        }
        // ls -l: "lrwx------ 1 root root 64 ... 0 -> socket:[123]"
        if let Some((left, target)) = line.split_once(" -> ") {
            if let Some(fd) = left.split_whitespace().last().and_then(|f| f.parse().ok()) {
                fds.push((fd, target.to_string()));
            }
        }
    }
    (env, fds)
}

/// Checks the descriptors [`parse_report`] read: the connection on 0 and
/// 1, and nothing else open but 2 and ls's own.
pub fn check_fds(fds: &[(u32, String)], report: &str) {
    let numbers: Vec<u32> = fds.iter().map(|(n, _)| *n).collect();
    assert!(numbers.starts_with(&[0, 1]), "fds {fds:?}\n{report}");
    for (n, target) in fds {
        match n {
            0 | 1 => assert!(
                target.starts_with("socket:"),
                "fd {n} is {target}\n{report}"
            ),
            2 => {}
            // ls's own descriptor for the directory it lists.
            _ => assert!(
                target.starts_with("/proc/") && target.ends_with("/fd"),
                "descriptor {n} -> {target} leaked into the program\n{report}"
            ),
        }
    }
    assert!(
        numbers.iter().filter(|&&n| n > 2).count() <= 1,
        "fds {fds:?}\n{report}"
    );
}
