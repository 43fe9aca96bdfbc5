//! Processes: fork, reap, signal, exit, die with the parent.
//!
//! `fork` here is a safe function because it checks the one condition that
//! makes running ordinary Rust in the child sound: the caller has exactly one
//! thread. It also blocks every signal across the fork so that no handler of
//! the parent can run in the child before the child has reset it.

use std::io;
#[cfg(not(target_os = "linux"))]
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
pub use nix::unistd::Pid;

/// The two sides of a successful [`fork`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    /// In the parent, with the child's pid.
    Parent(Pid),
    /// In the child.
    Child,
}

/// Why [`fork`] did not fork.
#[derive(Debug)]
pub enum ForkError {
    /// The caller has this many threads; a forked child could deadlock on a
    /// lock another thread held, so fork is refused.
    Threaded(usize),
    /// The thread count could not be read (no /proc?), so fork is refused
    /// rather than risked.
    Unverifiable(io::Error),
    /// fork(2) itself failed (EAGAIN: process limit, ENOMEM).
    Os(io::Error),
}

impl std::fmt::Display for ForkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForkError::Threaded(n) => {
                write!(f, "refusing to fork: the process has {n} threads")
            }
            ForkError::Unverifiable(e) => write!(
                f,
                "refusing to fork: cannot count the threads of this process (/proc/self/stat: {})",
                super::fd::describe(e)
            ),
            ForkError::Os(e) => write!(f, "fork: {}", super::fd::describe_errno(e)),
        }
    }
}

/// Number of threads of the calling process.
#[cfg(target_os = "linux")]
pub fn thread_count() -> io::Result<usize> {
    // /proc/self/stat: "pid (comm) state ppid ..."; num_threads is the 20th
    // field, the 18th after the closing parenthesis of comm (which may itself
    // contain spaces and parentheses, hence rsplit).
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after_comm = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("malformed /proc/self/stat"))?;
    after_comm
        .split_whitespace()
        .nth(17)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| io::Error::other("malformed /proc/self/stat"))
}

/// Number of threads of the calling process. Without /proc there is no
/// cheap portable query; the crate itself starts no thread in a process that
/// forks, which is what this check guards (see BUGS in preforkd.8).
#[cfg(not(target_os = "linux"))]
pub fn thread_count() -> io::Result<usize> {
    Ok(1)
}

/// Forks the calling process.
///
/// Refuses with [`ForkError::Threaded`] when the process has more than one
/// thread. All signals are blocked across the call; in the child, the
/// dispositions of `reset_in_child` are set back to the default *before* the
/// signal mask is cleared, so a signal that arrives in that window is held
/// and then acted on by default, never by a handler the parent installed.
/// The parent's mask is restored as it was.
pub fn fork(reset_in_child: &[Signal]) -> Result<Fork, ForkError> {
    let threads = thread_count().map_err(ForkError::Unverifiable)?;
    if threads != 1 {
        return Err(ForkError::Threaded(threads));
    }
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    )
    .map_err(|e| ForkError::Os(e.into()))?;
    // SAFETY: the process has exactly one thread (checked above, and this
    // crate starts none in between), so the child is a complete copy of the
    // parent: no lock can be held by a thread that does not exist in the
    // child, and the child may allocate, log and run ordinary Rust.
    let forked = unsafe { nix::unistd::fork() };
    match forked {
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            restore_mask(&old);
            Ok(Fork::Parent(child))
        }
        Ok(nix::unistd::ForkResult::Child) => {
            for &signal in reset_in_child {
                super::signal::set_default(signal);
            }
            // The child starts with nothing blocked, whatever the parent had.
            restore_mask(&SigSet::empty());
            Ok(Fork::Child)
        }
        Err(e) => {
            restore_mask(&old);
            Err(ForkError::Os(e.into()))
        }
    }
}

fn restore_mask(mask: &SigSet) {
    // sigprocmask fails only for an invalid `how`, which this is not.
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(mask), None);
}

/// How a child ended, from waitpid(2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// exit(2) with this status.
    Exited(i32),
    /// Killed by this signal.
    Signaled(Signal),
}

impl std::fmt::Display for ChildExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildExit::Exited(code) => write!(f, "exit status {code}"),
            ChildExit::Signaled(sig) => write!(f, "signal {}", sig.as_str()),
        }
    }
}

/// Reaps one child that has ended, without blocking. `None` when no child
/// has ended (or there are no children at all).
pub fn reap_any() -> io::Result<Option<(Pid, ChildExit)>> {
    loop {
        match nix::sys::wait::waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => return Ok(Some((pid, ChildExit::Exited(code)))),
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                return Ok(Some((pid, ChildExit::Signaled(sig))))
            }
            // Stopped/continued are not reported without WUNTRACED/WCONTINUED.
            Ok(_) => return Ok(None),
            Err(Errno::ECHILD) => return Ok(None),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sends `signal` to `pid`. A process that is already gone (ESRCH) is not
/// an error: it is what the caller wanted.
pub fn kill(pid: Pid, signal: Signal) {
    let _ = nix::sys::signal::kill(pid, signal);
}

/// Whether `pid` still exists (a zombie does, until it is reaped): kill(2)
/// with no signal, which fails with ESRCH only for a process that is gone.
pub fn exists(pid: Pid) -> bool {
    nix::sys::signal::kill(pid, None) != Err(Errno::ESRCH)
}

/// Sends `signal` to the process group `pgid` (a worker and anything it
/// spawned). A worker makes its group itself (it calls [`new_session`]
/// first thing): until it has, there is no such group, and the signal goes
/// to the process `pgid` alone, which has spawned nothing yet. ESRCH is
/// ignored as in [`kill`].
pub fn kill_group(pgid: Pid, signal: Signal) {
    if nix::sys::signal::killpg(pgid, signal) == Err(Errno::ESRCH) {
        kill(pgid, signal);
    }
}

/// Makes the caller the leader of a new session and process group, with
/// no controlling terminal (setsid(2)): it can no longer open /dev/tty,
/// and the terminal's signals and hangup never reach it. Fails (EPERM)
/// only for a process group leader, which a freshly forked child is not.
pub fn new_session() -> io::Result<()> {
    nix::unistd::setsid()?;
    Ok(())
}

/// The calling process's pid.
pub fn current_pid() -> Pid {
    nix::unistd::getpid()
}

/// Ends the calling process at once with `code`: no destructors, no atexit
/// handlers, no flushing of buffers the parent may also hold. Used by forked
/// children, whose copies of the parent's objects must not be dropped.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) is always safe to call; it does not return and runs
    // no user code, so no Rust invariant can be observed broken afterwards.
    unsafe { libc::_exit(code) }
}

/// Arranges for the caller to be killed with SIGKILL when `parent` dies.
///
/// On Linux, PR_SET_PDEATHSIG, then a check that the parent did not die
/// before the request was made (the re-parented child would wait forever).
#[cfg(target_os = "linux")]
pub fn die_with_parent(parent: Pid) -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    if nix::unistd::getppid() != parent {
        exit_now(0);
    }
    Ok(())
}

/// Arranges for the caller to exit when `parent` dies: where the kernel has
/// no parent-death signal, a thread polls getppid(2) every 100 ms.
#[cfg(not(target_os = "linux"))]
pub fn die_with_parent(parent: Pid) -> io::Result<()> {
    std::thread::Builder::new()
        .name("parent-watch".into())
        .spawn(move || loop {
            if nix::unistd::getppid() != parent {
                exit_now(0);
            }
            std::thread::sleep(Duration::from_millis(100));
        })?;
    Ok(())
}

/// Makes the caller the reaper of its descendants' orphans
/// (PR_SET_CHILD_SUBREAPER): the children a program leaves when it exits
/// become the caller's, to wait for. Not inherited by a fork. Where the
/// kernel has no such thing (not Linux), nothing: orphans go to init.
#[cfg(target_os = "linux")]
pub fn adopt_orphans() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)?;
    Ok(())
}

/// See the Linux version: elsewhere orphans go to init.
#[cfg(not(target_os = "linux"))]
pub fn adopt_orphans() -> io::Result<()> {
    Ok(())
}

/// Waits for one child to end and reaps it; `None` when there are no
/// children left. Blocks: the caller must have made sure they are ending.
pub fn reap_blocking() -> io::Result<Option<(Pid, ChildExit)>> {
    loop {
        match nix::sys::wait::waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, code)) => return Ok(Some((pid, ChildExit::Exited(code)))),
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                return Ok(Some((pid, ChildExit::Signaled(sig))))
            }
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The file that runs for `path`: on Unix, the one it names (Windows adds
/// `.exe`; see `sys::windows`).
pub fn program_file(path: &std::path::Path) -> std::path::PathBuf {
    path.to_path_buf()
}

/// Whether the caller may execute `path` (access(2) with X_OK, which
/// accounts for the real user and group, as the kernel will at execve).
pub fn is_executable(path: &std::path::Path) -> io::Result<()> {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).map_err(io::Error::from)
}

/// Where a process is blocked, for a log line: its wchan and system call
/// from /proc ("inet_csk_accept, syscall 288"); "unknown" where /proc does
/// not tell.
pub fn where_blocked(pid: Pid) -> String {
    let read = |what: &str| std::fs::read_to_string(format!("/proc/{pid}/{what}")).ok();
    let wchan = read("wchan").filter(|w| !w.is_empty() && w != "0");
    let syscall = read("syscall").and_then(|s| s.split_whitespace().next().map(str::to_string));
    match (wchan, syscall) {
        (Some(w), Some(s)) => format!("{w}, syscall {s}"),
        (Some(w), None) => w,
        (None, Some(s)) => format!("syscall {s}"),
        (None, None) => "unknown".to_string(),
    }
}

/// The calling process's resident memory, in bytes (/proc/self/statm).
#[cfg(target_os = "linux")]
pub fn resident_bytes() -> io::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| io::Error::other("malformed /proc/self/statm"))?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)?.unwrap_or(4096) as u64;
    Ok(pages * page)
}

/// The calling process's resident memory, in bytes (getrusage's maximum,
/// the closest portable measure).
#[cfg(not(target_os = "linux"))]
pub fn resident_bytes() -> io::Result<u64> {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)?;
    // ru_maxrss is in bytes on macOS, in KiB on the BSDs.
    let scale = if cfg!(target_vendor = "apple") {
        1
    } else {
        1024
    };
    Ok(usage.max_rss() as u64 * scale)
}

/// Raises the soft limit on open descriptors to the hard limit (a process
/// that holds thousands of connections needs it; the hard limit is what
/// the administrator allows).
pub fn raise_descriptor_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}
