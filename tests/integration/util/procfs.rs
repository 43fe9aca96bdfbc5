//! Looking at processes from outside, through /proc: their state, their
//! children, what they wait in, the sockets and descriptors they hold,
//! their ids and memory; and signalling them. Nothing here starts a
//! process (that is [`run`](super::run) and [`Daemon`](super::Daemon)).

use std::collections::BTreeSet;
use std::path::Path;

pub fn kill(pid: u32, sig: libc::c_int) {
    // A test may signal a process that is already gone; that is fine.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::try_from(sig).unwrap(),
    );
}

/// The fields of /proc/PID/stat after the command name.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// The process state letter (R, S, Z, ...), `None` if the process is gone.
pub fn proc_state(pid: u32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// True when `pid` no longer exists or is a zombie.
pub fn is_gone(pid: u32) -> bool {
    matches!(proc_state(pid), None | Some('Z') | Some('X'))
}

/// CPU time (user and system, in clock ticks) that `pid` has used so far;
/// 0 once it is gone.
pub fn cpu_ticks(pid: u32) -> u64 {
    let fields = stat_fields(pid).unwrap_or_default();
    // utime and stime, fields 14 and 15 of proc_pid_stat(5), 12 and 13
    // after the name.
    [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum()
}

pub fn wchan(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/wchan")).ok()
}

/// Whether `pid` is blocked in accept(2) on a TCP socket.
pub fn in_accept(pid: u32) -> bool {
    wchan(pid).as_deref() == Some("inet_csk_accept")
}

/// Live (non-zombie) children of `parent`, from every /proc/PID/stat.
pub fn children_of(parent: u32) -> Vec<u32> {
    all_children_of(parent)
        .into_iter()
        .filter(|&p| !is_gone(p))
        .collect()
}

/// Every child of `parent`, zombies included.
pub fn all_children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid| stat_fields(pid).and_then(|f| f.get(1)?.parse::<u32>().ok()) == Some(parent))
        .collect();
    pids.sort_unstable();
    pids
}

/// Zombie children of `parent`.
pub fn zombies_of(parent: u32) -> Vec<u32> {
    all_children_of(parent)
        .into_iter()
        .filter(|&p| proc_state(p) == Some('Z'))
        .collect()
}

/// Distinct set helper for reports.
pub fn set(v: &[u32]) -> BTreeSet<u32> {
    v.iter().copied().collect()
}

/// Processes whose environment holds PREFORKD_TEST_TAG=tag.
pub fn processes_tagged(tag: &str) -> Vec<u32> {
    let needle = format!("PREFORKD_TEST_TAG={tag}\0");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| String::from_utf8_lossy(&env).contains(&needle))
        })
        .filter(|&pid| !is_gone(pid))
        .collect()
}

/// Pids of the processes that hold a descriptor for socket inode `inode`.
pub fn socket_owners(inode: u64, among: &[u32]) -> Vec<u32> {
    let target = format!("socket:[{inode}]");
    among
        .iter()
        .copied()
        .filter(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|d| {
                d.filter_map(|e| e.ok()).any(|e| {
                    std::fs::read_link(e.path()).is_ok_and(|l| l.to_str() == Some(&target))
                })
            })
        })
        .collect()
}

/// The inode of the server's end of a TCP connection over IPv4 loopback:
/// the /proc/net/tcp row whose local port is `server_port` and remote port
/// is `client_port`.
pub fn server_socket_inode(server_port: u16, client_port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|row| {
        let cols: Vec<&str> = row.split_whitespace().collect();
        let port = |col: &str| u16::from_str_radix(col.rsplit(':').next()?, 16).ok();
        (port(cols.get(1)?) == Some(server_port) && port(cols.get(2)?) == Some(client_port))
            .then(|| cols.get(9)?.parse().ok())
            .flatten()
    })
}

/// The Uid:, Gid: and Groups: lines of /proc/PID/status.
pub fn ids_of(pid: u32) -> (String, String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    (field("Uid:"), field("Gid:"), field("Groups:"))
}

/// How many descriptors process `pid` has open.
pub fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Resident memory of process `pid`, in KiB (VmRSS).
pub fn resident_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The pid a pidfile names.
pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The CPU time process `pid` has used, user and system (utime and stime
/// of /proc/PID/stat, in clock ticks), `None` if it is gone.
pub fn cpu_time(pid: u32) -> Option<std::time::Duration> {
    let fields = stat_fields(pid)?;
    // Fields 14 and 15 of proc(5); the state, field 3, is index 0 here.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    Some(std::time::Duration::from_millis(ticks * 1000 / per_second))
}
