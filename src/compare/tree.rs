//! What a server's whole process tree holds at one moment, read from /proc
//! (Linux): proportional set size, processes and threads. (Its CPU time
//! comes from the rusage of its exit: see the parent module.)
//!
//! Memory: PSS (smaps_rollup), in which a page shared by N processes counts
//! 1/N in each: the sum over the tree is what the tree really costs, where
//! RSS would count each pre-forked copy of the binary again.

use std::collections::HashMap;

/// One reading of a tree.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    /// Sum of the processes' PSS, bytes (0 where /proc does not tell).
    pub pss_bytes: u64,
    /// Processes in the tree.
    pub processes: usize,
    /// Threads in the tree.
    pub threads: usize,
}

/// What /proc/PID/stat says that matters here.
struct Stat {
    ppid: i32,
    threads: usize,
}

fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields are
    // counted after its closing parenthesis (field 3, state, comes first).
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        ppid: fields.get(1)?.parse().ok()?,
        threads: fields.get(17)?.parse().ok()?,
    })
}

fn pss_bytes(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Pss:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The pids of `root` and all its descendants.
pub fn members(root: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(s) = stat(pid) {
            children.entry(s.ppid).or_default().push(pid);
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        if let Some(kids) = children.get(&tree[i]) {
            tree.extend(kids);
        }
        i += 1;
    }
    tree
}

/// Reads the tree rooted at `root`; with `memory`, its PSS too (which
/// costs the kernel a walk of every mapping: only for the sampler).
pub fn read(root: i32, memory: bool) -> Reading {
    let mut reading = Reading::default();
    for pid in members(root) {
        // A process may end between the listing and this read.
        let Some(s) = stat(pid) else { continue };
        reading.processes += 1;
        reading.threads += s.threads;
        if memory {
            reading.pss_bytes += pss_bytes(pid).unwrap_or(0);
        }
    }
    reading
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_as_a_tree_of_one_with_memory() {
        let me = std::process::id() as i32;
        let r = read(me, true);
        assert!(r.processes >= 1, "{r:?}");
        assert!(r.threads >= 1, "{r:?}");
        assert!(r.pss_bytes > 0, "{r:?}");
    }
}
