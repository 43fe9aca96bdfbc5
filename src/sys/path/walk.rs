//! The walk of [`Parent::open`](super::Parent::open): a directory's path
//! from `/`, one directory at a time, following only the links root or
//! the daemon's user made where nobody else can change them, and judging
//! each directory on the way.
//!
//! Nothing here opens or changes the file at the end of the path.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;

use super::{entry_of, take, Entry, Kind, OpenError, DIR_FLAGS};

/// Links followed in one path at most, as the kernel's limit (ELOOP).
const MAX_LINKS: usize = 40;

/// One directory of a walk: open, its path, and why someone else than
/// root and the daemon's user can change what it holds, if they can.
pub(super) struct Step {
    pub(super) fd: OwnedFd,
    pub(super) shown: PathBuf,
    pub(super) untrusted: Option<String>,
}

/// Why someone else than root and the daemon's user can change what the
/// directory `e` (at `shown`) holds: another owns it, or its group or
/// others may write it and it has no sticky bit. `None`: nobody can.
fn judge_dir(e: &Entry, shown: &Path) -> Option<String> {
    if !e.owned_by_us() {
        return Some(format!(
            "the directory {} is owned by uid {}, neither root nor the daemon's user",
            shown.display(),
            e.uid
        ));
    }
    if e.mode & 0o022 != 0 && e.mode & 0o1000 == 0 {
        return Some(format!(
            "the directory {} is writable by {} (mode {:04o}) and has no sticky bit",
            shown.display(),
            if e.mode & 0o002 != 0 {
                "others"
            } else {
                "its group"
            },
            e.mode
        ));
    }
    None
}

/// Opens the directory `name` in `at`, never through a link.
fn open_dir_at(at: &OwnedFd, name: &std::ffi::OsStr) -> nix::Result<OwnedFd> {
    nix::fcntl::openat(
        Some(at.as_raw_fd()),
        name,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | DIR_FLAGS,
        Mode::empty(),
    )
    .map(take)
}

/// Walks `dir` one component at a time from `/`, never following a link
/// that someone else than root and the daemon's user made or could
/// replace (one of theirs, or one in a directory they can change), and
/// judges each directory on the way: the directory reached, and the steps
/// that led to it (the last one is the directory's own).
pub(super) fn walk(dir: &Path) -> Result<Vec<Step>, OpenError> {
    use std::collections::VecDeque;
    use std::ffi::{OsStr, OsString};
    use std::path::Component;
    let root = nix::fcntl::open(
        "/",
        OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | DIR_FLAGS,
        Mode::empty(),
    )
    .map(take)?;
    let shown = PathBuf::from("/");
    let untrusted = judge_dir(
        &entry_of(std::os::fd::AsFd::as_fd(&root)).map_err(OpenError::Io)?,
        &shown,
    );
    let mut steps = vec![Step {
        fd: root,
        shown,
        untrusted,
    }];
    let components = |p: &Path| -> Vec<OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some(OsString::from("..")),
                _ => None,
            })
            .collect()
    };
    let mut todo: VecDeque<OsString> = components(dir).into();
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            // The directory above this one on the walk is the one `..`
            // names (a link's target was walked as the link's directory).
            if steps.len() > 1 {
                steps.pop();
            }
            continue;
        }
        let here = steps.last().expect("the walk starts at /");
        let shown = here.shown.join(&name);
        match open_dir_at(&here.fd, &name) {
            Ok(fd) => {
                let e = entry_of(std::os::fd::AsFd::as_fd(&fd)).map_err(OpenError::Io)?;
                let untrusted = here.untrusted.clone().or_else(|| judge_dir(&e, &shown));
                steps.push(Step {
                    fd,
                    shown,
                    untrusted,
                });
            }
            Err(err) => {
                // A link (ELOOP; ENOTDIR for Linux's O_PATH; EMLINK on
                // FreeBSD), or really an error.
                let link = match nix::sys::stat::fstatat(
                    Some(here.fd.as_raw_fd()),
                    name.as_os_str(),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                ) {
                    Ok(st) if Entry::of(&st).kind == Kind::Symlink => Entry::of(&st),
                    _ => return Err(err.into()),
                };
                if let Some(why) = &here.untrusted {
                    return Err(OpenError::Unsafe(format!(
                        "{} is a symbolic link, and {why}; not followed",
                        shown.display()
                    )));
                }
                if !link.owned_by_us() {
                    return Err(OpenError::Unsafe(format!(
                        "{} is a symbolic link owned by uid {}, neither root nor the daemon's user; not followed",
                        shown.display(),
                        link.uid
                    )));
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(Errno::ELOOP.into());
                }
                // Nobody else can replace the link meanwhile: it is root's
                // or ours, in a directory only root and we can change.
                let target = nix::fcntl::readlinkat(Some(here.fd.as_raw_fd()), name.as_os_str())?;
                let target = Path::new(OsStr::new(&target));
                if target.is_absolute() {
                    steps.truncate(1);
                }
                for c in components(target).into_iter().rev() {
                    todo.push_front(c);
                }
            }
        }
    }
    Ok(steps)
}
