//! Starting a program on given descriptors: the exec path of every
//! connection of an exec service, and of every wait service's program.
//!
//! A [`Program`] is prepared once, when the config is read: its path,
//! argv and the fixed part of its environment as C strings. [`spawn`]
//! then adds the variables of one connection and starts it with the
//! descriptors given as 0, 1 and 2, every signal at its default action
//! (of those this process ever gave a handler through `signal`, std's
//! own SIGSEGV and SIGBUS handlers, and `SIGPIPE`, which std ignores) and
//! an empty signal mask. A handler installed some other way is reset by
//! execve(2) itself, but a signal that arrived just before it would run
//! that handler on the parent's memory: install handlers through
//! `signal`. With no stderr given, the program gets the caller's fd 2 as
//! it is (daemon mode puts /dev/null there).
//!
//! On Linux it is `clone(CLONE_VM | CLONE_VFORK)`, as glibc's
//! posix_spawn(3) is, without what posix_spawn does on each call and a
//! worker has no need of: its child reads and resets the disposition of
//! all 64 signals (121 `rt_sigaction` calls, strace of one /bin/cat
//! connection; here, two or three), and each of its `dup2` file actions
//! reads `RLIMIT_NOFILE` (four `prlimit64`; here none). std's `Command`
//! adds an environment map built for each call. Elsewhere, std's
//! `Command` does the work.
//!
//! What does not live here: which environment a program gets, and what
//! its descriptors are (`service::exec`).

use std::borrow::Cow;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
#[cfg(target_os = "linux")]
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;

/// A program ready to be started many times: everything that does not
/// change from one start to the next, as the C strings execve(2) takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    path: CString,
    /// `argv[0]` first.
    argv: Vec<CString>,
    /// `NAME=value`, one for each name, with the length of `NAME`.
    env: Vec<(CString, usize)>,
    directory: Option<CString>,
}

/// A C string of `bytes`, or what is wrong with it: `what` names it.
fn c_string(bytes: &[u8], what: &str) -> Result<CString, String> {
    CString::new(bytes)
        .map_err(|_| format!("{what} holds a NUL byte, which no program can be given"))
}

impl Program {
    /// Prepares `path`, run as `argv0` with `args`, in `directory` (or the
    /// caller's), with `env` (a later entry of the same name replacing an
    /// earlier one). Refuses a NUL byte anywhere, and a `=` in a name.
    pub fn new(
        path: &Path,
        argv0: &OsStr,
        args: &[OsString],
        env: &[(OsString, OsString)],
        directory: Option<&Path>,
    ) -> Result<Program, String> {
        let path = c_string(path.as_os_str().as_bytes(), "the program's path")?;
        let mut argv = vec![c_string(argv0.as_bytes(), "argv[0]")?];
        for arg in args {
            argv.push(c_string(arg.as_bytes(), "an argument")?);
        }
        let mut entries: Vec<(CString, usize)> = Vec::with_capacity(env.len());
        for (name, value) in env {
            let name = name.as_bytes();
            if name.is_empty() || name.contains(&b'=') {
                return Err(format!(
                    "the variable name {:?} is empty or holds '='",
                    String::from_utf8_lossy(name)
                ));
            }
            let entry = c_string(&[name, b"=", value.as_bytes()].concat(), "a variable")?;
            entries.retain(|(e, len)| &e.as_bytes()[..*len] != name);
            entries.push((entry, name.len()));
        }
        let directory = directory
            .map(|d| c_string(d.as_os_str().as_bytes(), "the directory"))
            .transpose()?;
        Ok(Program {
            path,
            argv,
            env: entries,
            directory,
        })
    }

    /// The environment of one start: the fixed variables (borrowed, not
    /// copied) but those `extra` names, then `extra`, which wins.
    fn environment(&self, extra: &[(&str, String)]) -> io::Result<Vec<Cow<'_, CStr>>> {
        let mut env = Vec::with_capacity(self.env.len() + extra.len());
        for (entry, len) in &self.env {
            let name = &entry.as_bytes()[..*len];
            if !extra.iter().any(|(n, _)| n.as_bytes() == name) {
                env.push(Cow::Borrowed(entry.as_c_str()));
            }
        }
        for (name, value) in extra {
            let entry = CString::new([name.as_bytes(), b"=", value.as_bytes()].concat())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte"))?;
            env.push(Cow::Owned(entry));
        }
        Ok(env)
    }
}

/// The descriptors a program gets as 0, 1 and 2; `None` for 2 leaves
/// the caller's standard error.
#[derive(Debug, Clone, Copy)]
pub struct Stdio<'a> {
    /// Its standard input.
    pub stdin: BorrowedFd<'a>,
    /// Its standard output.
    pub stdout: BorrowedFd<'a>,
    /// Its standard error, or the caller's.
    pub stderr: Option<BorrowedFd<'a>>,
}

/// A program started by `sys::spawn::spawn`, to wait for. Dropping it
/// does not wait (the program is reaped by whoever reaps every child), as
/// std's `Child`.
#[derive(Debug)]
pub struct Child {
    #[cfg(target_os = "linux")]
    pid: u32,
    #[cfg(target_os = "linux")]
    status: Option<ExitStatus>,
    #[cfg(not(target_os = "linux"))]
    inner: std::process::Child,
}

/// Starts `program` on `stdio`, with `extra` added to its environment.
/// An error is the errno of what failed: clone(2), or in the child
/// chdir(2) or execve(2) (ENOENT for a program removed since, EACCES),
/// whose child is then reaped.
pub fn spawn(program: &Program, extra: &[(&str, String)], stdio: Stdio<'_>) -> io::Result<Child> {
    let env = program.environment(extra)?;
    start(program, &env, stdio)
}

#[cfg(target_os = "linux")]
mod linux {
    use std::borrow::Cow;
    use std::ffi::CStr;
    use std::io;
    use std::os::fd::AsRawFd;

    use libc::{c_char, c_int, c_void};

    use super::{Program, Stdio};

    /// The child's stack: what the child runs (the few calls below, and
    /// libc's wrappers of them) needs well under a page; execve(2) then
    /// gives the program its own.
    const STACK: usize = 32 * 1024;

    /// What the child reads, on memory it shares with its parent, which
    /// is suspended until the child has called execve(2) or exited.
    #[repr(C)]
    struct Plan {
        path: *const c_char,
        argv: *const *const c_char,
        envp: *const *const c_char,
        /// Null for the caller's.
        directory: *const c_char,
        /// The descriptors for 0, 1 and 2; -1 leaves one as it is.
        fds: [c_int; 3],
        /// Bit `n` set: signal `n` goes back to its default action.
        reset: u64,
        /// The errno of what failed in the child, 0 if it exec'd.
        error: c_int,
    }

    /// A null-terminated array of pointers into `strings`.
    fn pointers<S: AsRef<CStr>>(strings: &[S]) -> Vec<*const c_char> {
        strings
            .iter()
            .map(|s| s.as_ref().as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    }

    /// The child, on its own stack: descriptors, signals, directory,
    /// execve(2). Only system calls, no allocation or lock: it shares the
    /// parent's memory, and the parent may have had other threads.
    extern "C" fn child(plan: *mut c_void) -> c_int {
        // SAFETY: `plan` is the `Plan` the parent passed to clone(2); the
        // parent is suspended (CLONE_VFORK) and keeps it alive meanwhile,
        // and nothing else writes to it.
        let plan = unsafe { &mut *plan.cast::<Plan>() };
        let fail = |plan: &mut Plan| -> c_int {
            // SAFETY: reading errno, this task's (the parent's TLS, whose
            // thread is suspended), right after the call that failed;
            // _exit(2) runs no atexit handler and flushes nothing.
            unsafe {
                plan.error = *libc::__errno_location();
                libc::_exit(127)
            }
        };
        // A source below 3 could be overwritten by an earlier dup2: move
        // it above first (close-on-exec, as every other descriptor is).
        let mut fds = plan.fds;
        for fd in fds.iter_mut() {
            if (0..3).contains(fd) {
                // SAFETY: fcntl(2) on a descriptor of this task's own
                // table (clone without CLONE_FILES copies it).
                *fd = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 3) };
                if *fd < 0 {
                    return fail(plan);
                }
            }
        }
        for (target, &fd) in (0..).zip(fds.iter()) {
            // SAFETY: dup2(2) on this task's own descriptor table; the
            // copy it makes is not close-on-exec.
            if fd >= 0 && unsafe { libc::dup2(fd, target) } < 0 {
                return fail(plan);
            }
        }
        // SAFETY: a zeroed sigaction is SIG_DFL, no flags, an empty mask:
        // installing it runs none of our code.
        let default: libc::sigaction = unsafe { std::mem::zeroed() };
        for signal in 1..64 {
            if plan.reset & (1 << signal) != 0 {
                // SAFETY: as above; EINVAL for a signal that cannot be
                // caught is harmless.
                unsafe { libc::sigaction(signal, &default, std::ptr::null_mut()) };
            }
        }
        // Every handler this process installed is now the default, so a
        // signal held until here is acted on by default, never by a
        // handler running on the parent's memory.
        // SAFETY: an empty set, made by sigemptyset, is a valid argument.
        unsafe {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        }
        // SAFETY: a NUL-terminated path the parent keeps alive.
        if !plan.directory.is_null() && unsafe { libc::chdir(plan.directory) } < 0 {
            return fail(plan);
        }
        // SAFETY: NUL-terminated strings and null-terminated arrays of
        // them, which the parent keeps alive until execve returns or the
        // child exits.
        unsafe { libc::execve(plan.path, plan.argv, plan.envp) };
        fail(plan)
    }

    /// clone(2)s a child that runs [`child`]; its pid, or the errno of
    /// what failed.
    pub(super) fn start(
        program: &Program,
        env: &[Cow<'_, CStr>],
        stdio: Stdio<'_>,
    ) -> io::Result<u32> {
        let argv = pointers(&program.argv);
        let envp = pointers(env);
        let mut plan = Plan {
            path: program.path.as_ptr(),
            argv: argv.as_ptr(),
            envp: envp.as_ptr(),
            directory: program
                .directory
                .as_ref()
                .map_or(std::ptr::null(), |d| d.as_ptr()),
            fds: [
                stdio.stdin.as_raw_fd(),
                stdio.stdout.as_raw_fd(),
                stdio.stderr.map_or(-1, |fd| fd.as_raw_fd()),
            ],
            // And std's own handlers, installed in every Rust program for
            // stack overflows.
            reset: crate::sys::signal::handled()
                | 1 << libc::SIGPIPE
                | 1 << libc::SIGSEGV
                | 1 << libc::SIGBUS,
            error: 0,
        };
        // u128 keeps the stack 16-byte aligned, as the ABI wants.
        let mut stack = vec![0u128; STACK / 16];
        // SAFETY: a zeroed sigset_t is a valid (empty) set to write into.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: every signal is blocked across clone(2), so none runs a
        // handler in the child before it has set them to their default
        // (but glibc's internal 32 and 33, which its sigfillset leaves out
        // and nothing sends to the child); the mask is restored below in
        // the parent.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        }
        // SAFETY: the stack is ours and outlives the child's use of it: with
        // CLONE_VFORK this thread is suspended until the child has called
        // execve(2) or _exit(2), so `stack`, `plan`, `argv`, `envp` and the
        // strings they point to stay alive and untouched meanwhile. The
        // child only makes system calls (see `child`).
        let pid = unsafe {
            let top = stack.as_mut_ptr().add(stack.len()).cast::<c_void>();
            libc::clone(
                child,
                top,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                std::ptr::addr_of_mut!(plan).cast::<c_void>(),
            )
        };
        let cloned = io::Error::last_os_error();
        // SAFETY: restoring the mask saved above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
        if pid < 0 {
            return Err(cloned);
        }
        // SAFETY: the child wrote `error` (or not) before it exec'd or
        // exited, and clone returned after that (CLONE_VFORK).
        let error = unsafe { std::ptr::read_volatile(&plan.error) };
        if error != 0 {
            let mut status = 0;
            // SAFETY: waitpid(2) on our own child, which has exited.
            while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
                && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
            {}
            return Err(io::Error::from_raw_os_error(error));
        }
        Ok(pid as u32)
    }

    /// waitpid(2) for `pid`: its raw status, `None` if it runs on (with
    /// `hang` false). EINTR is retried.
    pub(super) fn wait(pid: u32, hang: bool) -> io::Result<Option<c_int>> {
        let mut status = 0;
        let flags = if hang { 0 } else { libc::WNOHANG };
        loop {
            // SAFETY: waitpid(2) on a child of ours, into a local.
            match unsafe { libc::waitpid(pid as libc::pid_t, &mut status, flags) } {
                0 => return Ok(None),
                n if n > 0 => return Ok(Some(status)),
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn start(program: &Program, env: &[Cow<'_, CStr>], stdio: Stdio<'_>) -> io::Result<Child> {
    let pid = linux::start(program, env, stdio)?;
    Ok(Child { pid, status: None })
}

#[cfg(target_os = "linux")]
impl Child {
    /// The program's pid.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// How it ended, if it has.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = linux::wait(self.pid, false)?.map(ExitStatus::from_raw);
        }
        Ok(self.status)
    }

    /// Waits for it to end.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = linux::wait(self.pid, true)?
            .map(ExitStatus::from_raw)
            .ok_or_else(|| io::Error::other("waitpid returned no status"))?;
        self.status = Some(status);
        Ok(status)
    }
}

/// Elsewhere: std's `Command` (posix_spawn or fork and exec).
#[cfg(not(target_os = "linux"))]
fn start(program: &Program, env: &[Cow<'_, CStr>], stdio: Stdio<'_>) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let owned = |fd: BorrowedFd<'_>| fd.try_clone_to_owned().map(std::process::Stdio::from);
    let mut command = std::process::Command::new(OsStr::from_bytes(program.path.as_bytes()));
    command.arg0(OsStr::from_bytes(program.argv[0].as_bytes()));
    command.args(
        program.argv[1..]
            .iter()
            .map(|a| OsStr::from_bytes(a.as_bytes())),
    );
    command.env_clear();
    for entry in env {
        let bytes = entry.to_bytes();
        let at = bytes.iter().position(|&b| b == b'=').unwrap_or(bytes.len());
        let value = bytes.get(at + 1..).unwrap_or_default();
        command.env(OsStr::from_bytes(&bytes[..at]), OsStr::from_bytes(value));
    }
    if let Some(dir) = &program.directory {
        command.current_dir(OsStr::from_bytes(dir.as_bytes()));
    }
    command
        .stdin(owned(stdio.stdin)?)
        .stdout(owned(stdio.stdout)?);
    if let Some(fd) = stdio.stderr {
        command.stderr(owned(fd)?);
    }
    Ok(Child {
        inner: command.spawn()?,
    })
}

#[cfg(not(target_os = "linux"))]
impl Child {
    /// The program's pid.
    pub fn id(&self) -> u32 {
        self.inner.id()
    }

    /// How it ended, if it has.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.inner.try_wait()
    }

    /// Waits for it to end.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        self.inner.wait()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(env: &[(&str, &str)]) -> Result<Program, String> {
        let env: Vec<(OsString, OsString)> =
            env.iter().map(|(k, v)| (k.into(), v.into())).collect();
        Program::new(Path::new("/bin/sh"), OsStr::new("sh"), &[], &env, None)
    }

    #[test]
    fn a_later_variable_replaces_an_earlier_and_extra_ones_win() {
        let p = program(&[("A", "1"), ("B", "2"), ("A", "3")]).unwrap();
        let env = p
            .environment(&[("B", "x".into()), ("C", "y".into())])
            .unwrap();
        let env: Vec<&str> = env.iter().map(|e| e.to_str().unwrap()).collect();
        assert_eq!(env, ["A=3", "B=x", "C=y"]);
    }

    #[test]
    fn a_nul_byte_or_a_bad_name_is_refused_when_prepared() {
        assert!(program(&[("A", "x\0y")]).unwrap_err().contains("NUL"));
        assert!(program(&[("A=B", "x")]).is_err());
        assert!(program(&[("", "x")]).is_err());
        let args = [OsString::from("a\0")];
        assert!(Program::new(Path::new("/bin/sh"), OsStr::new("sh"), &args, &[], None).is_err());
    }
}
