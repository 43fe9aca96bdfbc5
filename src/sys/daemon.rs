//! Becoming a system daemon: detaching from the terminal, the pidfile,
//! and telling systemd how we are doing (sd_notify).
//!
//! Nothing here decides *when*: `commands::serve` detaches after every
//! check that can fail has passed, so its errors still reach the terminal.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};

use super::path::{FileId, Kind, OpenError, Parent, Removal};

use super::process::{exit_now, fork, Fork};

/// Detaches from the terminal: fork (the caller's parent gets its exit
/// status 0 at once), setsid, fork again (never to reacquire a terminal),
/// chdir /, and stdin, stdout, stderr on /dev/null. Returns in the
/// daemon; the two intermediate processes exit.
pub fn detach() -> io::Result<()> {
    if let Fork::Parent(_) = fork(&[]).map_err(|e| io::Error::other(e.to_string()))? {
        exit_now(0);
    }
    nix::unistd::setsid()?;
    if let Fork::Parent(_) = fork(&[]).map_err(|e| io::Error::other(e.to_string()))? {
        exit_now(0);
    }
    nix::unistd::chdir("/")?;
    let null = File::options().read(true).write(true).open("/dev/null")?;
    for fd in 0..3 {
        nix::unistd::dup2(null.as_raw_fd(), fd)?;
    }
    Ok(())
}

/// Why a pidfile could not be taken.
#[derive(Debug)]
pub enum PidfileError {
    /// Another process holds its lock: that daemon runs, with this pid.
    Running(Option<u32>),
    /// It cannot be opened or locked.
    Io(io::Error),
    /// It, or its directory, could be changed by someone else than root
    /// and the daemon's user (a link, another owner, writable by others):
    /// refused, and why.
    Unsafe(String),
}

/// A pidfile, locked (flock, exclusive) for as long as this process (or a
/// child that kept the descriptor) lives. A stale file, whose lock nobody
/// holds, is taken over.
///
/// It is opened without following a link, in a directory that only root
/// and the daemon's user can change (see [`super::path`]); it is removed
/// by [`Pidfile::remove`] (or when dropped) only while its path still
/// names the file that was locked.
#[derive(Debug)]
pub struct Pidfile {
    file: Flock<File>,
    path: PathBuf,
    /// The directory's identity and the file's, when locked.
    dir: FileId,
    id: FileId,
}

impl Pidfile {
    /// Opens (creating it, mode 0644) and locks `path`.
    pub fn lock(path: &Path) -> Result<Pidfile, PidfileError> {
        let (parent, dir) = trusted_parent(path)?;
        let fd = parent
            .open_file(OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NONBLOCK, 0o644)
            .map_err(|e| match parent.entry() {
                Ok(Some(entry)) if entry.kind != Kind::File => {
                    PidfileError::Unsafe(format!("it is {}", entry.kind.name()))
                }
                _ => PidfileError::Io(e),
            })?;
        let id = check_file(fd.as_fd())?;
        match Flock::lock(File::from(fd), FlockArg::LockExclusiveNonblock) {
            Ok(file) => Ok(Pidfile {
                file,
                path: path.to_path_buf(),
                dir,
                id,
            }),
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                Err(PidfileError::Running(text.trim().parse().ok()))
            }
            Err((_, e)) => Err(PidfileError::Io(e.into())),
        }
    }

    /// Takes over the pidfile a previous master passed on descriptor `fd`
    /// (binary upgrade): its lock is on the open file, so it is ours too.
    pub fn inherit(fd: std::os::fd::OwnedFd, path: &Path) -> Result<Pidfile, PidfileError> {
        let (_, dir) = trusted_parent(path)?;
        let id = check_file(fd.as_fd())?;
        match Flock::lock(File::from(fd), FlockArg::LockExclusiveNonblock) {
            Ok(file) => Ok(Pidfile {
                file,
                path: path.to_path_buf(),
                dir,
                id,
            }),
            Err((_, e)) => Err(PidfileError::Io(e.into())),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The descriptor, to pass to a new master.
    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }

    /// Leaves the file in place when dropped (a new master owns it now).
    pub fn keep(self) {
        std::mem::forget(self);
    }

    /// Writes the calling process's pid (after detaching, the daemon's).
    pub fn write_pid(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        writeln!(&*self.file, "{}", std::process::id())?;
        self.file.sync_data()
    }

    /// The pid the file holds now (read from the open file, not the path).
    pub fn read_pid(&self) -> Option<u32> {
        let mut buf = [0u8; 32];
        let n = nix::sys::uio::pread(&*self.file, &mut buf, 0).ok()?;
        std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
    }

    /// Removes the file, if its path still names it: unlinkat(2) in its
    /// directory, never through a link. What was found instead, if
    /// anything (the file, or its directory, was replaced: left alone).
    pub fn remove(self) -> Result<(), String> {
        let result = self.remove_file();
        std::mem::forget(self);
        result
    }

    fn remove_file(&self) -> Result<(), String> {
        let parent = match Parent::open(&self.path).map_err(io::Error::from) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        if parent.dir_id().ok() != Some(self.dir) {
            return Err(format!(
                "its directory {} was replaced",
                parent.dir_path().display()
            ));
        }
        match parent.remove_if(self.id) {
            Ok(Removal::Removed | Removal::Gone) => Ok(()),
            Ok(Removal::Replaced(e)) => Err(format!(
                "it was replaced by {} owned by uid {}",
                e.kind.name(),
                e.uid
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        let _ = self.remove_file();
    }
}

/// The directory of a pidfile, if only root and the daemon's user can
/// change it, and its identity.
fn trusted_parent(path: &Path) -> Result<(Parent, FileId), PidfileError> {
    let parent = Parent::open(path).map_err(|e| match e {
        OpenError::Io(e) => PidfileError::Io(e),
        OpenError::Unsafe(why) => PidfileError::Unsafe(why),
    })?;
    parent.check_trusted().map_err(PidfileError::Unsafe)?;
    let dir = parent.dir_id().map_err(PidfileError::Io)?;
    Ok((parent, dir))
}

/// The pidfile open on `fd` must be a regular file with one name, owned by
/// root or the daemon's user, writable by nobody else.
fn check_file(fd: std::os::fd::BorrowedFd<'_>) -> Result<FileId, PidfileError> {
    let e = super::path::entry_of(fd).map_err(PidfileError::Io)?;
    let refuse = |why: String| Err(PidfileError::Unsafe(why));
    if e.kind != Kind::File {
        return refuse(format!("it is {}", e.kind.name()));
    }
    if !e.owned_by_us() {
        return refuse(format!(
            "it is owned by uid {}, neither root nor the daemon's user",
            e.uid
        ));
    }
    if e.mode & 0o022 != 0 {
        return refuse(format!(
            "it is writable by its group or others (mode {:04o})",
            e.mode
        ));
    }
    if e.nlink != 1 {
        return refuse(format!("it has {} hard links", e.nlink));
    }
    Ok(e.id)
}

/// Whether standard error is the journal's stream ($JOURNAL_STREAM names
/// its device and inode, as systemd sets it): a line may then begin with
/// `<N>`, its syslog priority, which journald reads (sd-daemon(3)).
pub fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(st) = nix::sys::stat::fstat(2) else {
        return false;
    };
    // Not u64 on every system (i32 on macOS).
    #[allow(clippy::unnecessary_cast)]
    let (st_dev, st_ino) = (st.st_dev as u64, st.st_ino as u64);
    dev.parse() == Ok(st_dev) && ino.parse() == Ok(st_ino)
}

/// The service manager's notification socket ($NOTIFY_SOCKET), if any.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
}

impl Notifier {
    /// Connects to $NOTIFY_SOCKET (a path, or `@name` in the abstract
    /// namespace); `None` when not run by a service manager.
    pub fn from_env() -> Option<Notifier> {
        let target = std::env::var_os("NOTIFY_SOCKET")?;
        let socket = UnixDatagram::unbound().ok()?;
        let text = target.to_string_lossy();
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(name) = text.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name).ok()?;
            socket.connect_addr(&addr).ok()?;
            return Some(Notifier { socket });
        }
        socket.connect(text.as_ref()).ok()?;
        Some(Notifier { socket })
    }

    /// Sends one notification (`READY=1`, `STATUS=...`, several lines).
    pub fn send(&self, state: &str) {
        let _ = self.socket.send(state.as_bytes());
    }
}

/// The watchdog interval systemd asked for ($WATCHDOG_USEC, when
/// $WATCHDOG_PID is unset or names us), in microseconds.
pub fn watchdog_usec() -> Option<u64> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        if pid.to_string_lossy().parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    std::env::var("WATCHDOG_USEC")
        .ok()?
        .parse()
        .ok()
        .filter(|&u| u > 0)
}

/// The sockets a service manager passed (systemd's socket activation):
/// `$LISTEN_FDS` descriptors from 3 on, named by `$LISTEN_FDNAMES`, meant
/// for us only if `$LISTEN_PID` is our pid. The variables are removed, so
/// that programs the workers run do not take the sockets for theirs, and
/// the descriptors become close-on-exec.
pub fn listen_fds() -> Vec<(Option<String>, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count: i32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // The master is single-threaded: nothing reads the environment
        // concurrently.
        std::env::remove_var(var);
    }
    if !ours {
        return Vec::new();
    }
    (0..count.clamp(0, 1024))
        .filter_map(|i| {
            let fd = 3 + i;
            // Only descriptors that are open are taken.
            nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .ok()?;
            // SAFETY: the service manager passed descriptors 3 ..
            // 3 + LISTEN_FDS to this process (LISTEN_PID is ours, checked
            // above); each is taken once, here, and nothing else in the
            // process owns them.
            let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
            Some((
                names.get(i as usize).filter(|n| !n.is_empty()).cloned(),
                owned,
            ))
        })
        .collect()
}

/// Takes descriptor `fd`, named in the environment by a previous master
/// (binary upgrade), if it is open.
pub fn inherited_fd(var: &str) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let fd: i32 = std::env::var(var).ok()?.parse().ok()?;
    // The master is single-threaded: nothing reads the environment
    // concurrently.
    std::env::remove_var(var);
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .ok()?;
    // SAFETY: the previous master put this descriptor there for us and
    // named it in `var`; it is taken once, here, and owned by nothing else.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// In a freshly forked child that is about to exec: puts `fds` on 3, 4,
/// ... in order (through copies above 3 + len first, so that none is
/// overwritten before it is moved), without close-on-exec, and returns
/// their new numbers.
pub fn move_fds_from_3(fds: &[std::os::fd::RawFd]) -> io::Result<Vec<std::os::fd::RawFd>> {
    use nix::fcntl::{fcntl, FcntlArg};
    let high: Vec<i32> = fds
        .iter()
        .map(|&fd| fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(3 + fds.len() as i32)))
        .collect::<Result<_, _>>()?;
    let mut placed = Vec::new();
    for (i, fd) in high.into_iter().enumerate() {
        let target = 3 + i as i32;
        nix::unistd::dup2(fd, target)?;
        placed.push(target);
    }
    Ok(placed)
}

/// Replaces the process image: `program` with `args` and `env`. An argument
/// or variable with a NUL byte inside is refused (EINVAL), not cut short.
pub fn exec(
    program: &Path,
    args: &[std::ffi::OsString],
    env: &[(std::ffi::OsString, std::ffi::OsString)],
) -> io::Error {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let cstr = |b: &[u8]| CString::new(b).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL));
    let build = || -> io::Result<(CString, Vec<CString>, Vec<CString>)> {
        let path = cstr(program.as_os_str().as_bytes())?;
        let mut argv = vec![path.clone()];
        for a in args {
            argv.push(cstr(a.as_bytes())?);
        }
        let mut envp = Vec::new();
        for (k, v) in env {
            envp.push(cstr(&[k.as_bytes(), b"=", v.as_bytes()].concat())?);
        }
        Ok((path, argv, envp))
    };
    match build() {
        Err(e) => e,
        Ok((path, argv, envp)) => match nix::unistd::execve(&path, &argv, &envp) {
            Err(e) => e.into(),
            Ok(never) => match never {},
        },
    }
}

/// Writes the caller's pid into the pidfile open on `fd` (a master started
/// by a binary upgrade, once it is ready). `fd` must stay open meanwhile:
/// the caller's `Pidfile` holds it.
pub fn rewrite_pid(fd: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: the descriptor is the pidfile's, owned by a `Pidfile` that
    // lives as long as the master; it is only borrowed for these calls.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    nix::unistd::ftruncate(fd, 0)?;
    let line = format!("{}\n", std::process::id());
    nix::sys::uio::pwrite(fd, line.as_bytes(), 0)?;
    Ok(())
}
