//! What a worker becomes before it accepts: which user and group, which
//! root directory, which resource limits.
//!
//! The master stays root (it must bind new low ports on reload); each
//! worker drops to its service's account right after the fork, before its
//! first accept, so neither the handler nor an exec'd program ever runs
//! with the master's privileges. A worker that is not root also empties its
//! capability bounding set (before it leaves root) and sets no_new_privs,
//! so no set-uid program or file capability can raise what its programs
//! run with, unless the service says `allow_new_privileges = true`. The
//! system calls are in `sys::privs`.
//!
//! Switching is Unix only; on Windows, where every service runs as the
//! user who started preforkd, looking an account up is an error.

#[cfg(unix)]
use std::io;
use std::path::PathBuf;

use crate::sys;
#[cfg(unix)]
use crate::sys::privs::Limit;

/// An account to run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The user's name, for logs.
    pub user: String,
    /// The user id.
    pub uid: u32,
    /// The group id: the user's primary group, or the one asked for.
    pub gid: u32,
}

impl Account {
    /// Looks up `user` (and `group`, instead of the user's primary group).
    pub fn lookup(user: &str, group: Option<&str>) -> Result<Account, String> {
        let (uid, primary) = sys::privs::lookup_user(user)
            .map_err(|e| format!("cannot look up user '{user}': {}", sys::fd::describe(&e)))?
            .ok_or_else(|| format!("unknown user '{user}'"))?;
        let gid = match group {
            None => primary,
            Some(g) => sys::privs::lookup_group(g)
                .map_err(|e| format!("cannot look up group '{g}': {}", sys::fd::describe(&e)))?
                .ok_or_else(|| format!("unknown group '{g}'"))?,
        };
        Ok(Account {
            user: user.to_string(),
            uid,
            gid,
        })
    }
}

/// Whether this process can become `account`: as root, always; otherwise
/// only if it already is that user and group.
#[cfg(unix)]
pub fn can_become(account: &Account) -> Result<(), String> {
    let (uid, gid) = sys::privs::current_ids();
    if uid == 0 || (uid == account.uid && gid == account.gid) {
        Ok(())
    } else {
        Err(format!(
            "cannot switch to user {} (uid {}, gid {}): the master is not running as root",
            account.user, account.uid, account.gid
        ))
    }
}

/// Resource limits (soft and hard) for a worker and what it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// RLIMIT_NOFILE.
    pub open_files: Option<u64>,
    /// RLIMIT_AS, in bytes.
    pub address_space: Option<u64>,
    /// RLIMIT_CPU, in seconds.
    pub cpu_seconds: Option<u64>,
    /// RLIMIT_NPROC.
    pub processes: Option<u64>,
}

/// Everything a worker drops to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Privileges {
    /// Run as this account (None: stay as the master is).
    pub account: Option<Account>,
    /// chroot(2) here first.
    pub chroot: Option<PathBuf>,
    /// setrlimit(2) these.
    pub limits: Limits,
    /// Set PR_SET_NO_NEW_PRIVS, even for a worker that stays root.
    pub no_new_privs: bool,
    /// Let the programs of a worker that is not root gain privileges by
    /// execve (set-uid programs, file capabilities): without it such a
    /// worker empties its capability bounding set and sets no_new_privs.
    pub allow_new_privileges: bool,
}

#[cfg(unix)]
impl Privileges {
    /// Applies everything, in the safe order; the first failure is the
    /// error, and the worker must not serve after it.
    pub fn apply(&self) -> io::Result<()> {
        let limits = [
            (Limit::OpenFiles, self.limits.open_files),
            (Limit::AddressSpace, self.limits.address_space),
            (Limit::CpuSeconds, self.limits.cpu_seconds),
            (Limit::Processes, self.limits.processes),
        ];
        for (limit, value) in limits {
            if let Some(v) = value {
                sys::privs::set_limit(limit, v).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("setrlimit {limit:?} {v}: {}", sys::fd::describe(&e)),
                    )
                })?;
            }
        }
        if let Some(dir) = &self.chroot {
            sys::privs::chroot(dir).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("chroot {}: {}", dir.display(), sys::fd::describe(&e)),
                )
            })?;
        }
        let (uid, _) = sys::privs::current_ids();
        let unprivileged = self.account.as_ref().map_or(uid != 0, |a| a.uid != 0);
        let confined = !self.allow_new_privileges && unprivileged;
        // Capabilities, before changing user: emptying the bounding set
        // needs CAP_SETPCAP, which setuid takes away. Root has it unless a
        // unit withheld it; a non-root master only if it was given it.
        // Without it the set stays as it was made, and no_new_privs alone
        // keeps the programs from gaining what is left in it. Whatever the
        // user, no capability is left inheritable or ambient: a non-root
        // master started with ambient capabilities (systemd's `User=` with
        // `AmbientCapabilities=`) would hand them to every program, and
        // no_new_privs does not stop that.
        if confined {
            let emptied = sys::privs::drop_bounding_set().map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot empty the capability bounding set: {}",
                        sys::fd::describe(&e)
                    ),
                )
            })?;
            if !emptied && cfg!(target_os = "linux") {
                log::debug!("no CAP_SETPCAP: the capability bounding set is left as it is");
            }
            sys::privs::clear_inherited_capabilities().map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot clear the inheritable and ambient capabilities: {}",
                        sys::fd::describe(&e)
                    ),
                )
            })?;
        }
        if let Some(a) = &self.account {
            sys::privs::become_user(a.uid, a.gid).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot switch to user {} (uid {}, gid {}): {}",
                        a.user,
                        a.uid,
                        a.gid,
                        sys::fd::describe(&e)
                    ),
                )
            })?;
        }
        // The worker may hold what its programs must not reach: the
        // daemon's terminal, as its stdin, stdout or stderr. Then programs
        // of its user must not take it through /proc/PID/fd or ptrace.
        // Otherwise the worker stays dumpable, so that its own user (a
        // non-root master's, or an admin's tools) can read its /proc.
        if unprivileged && holds_a_terminal() {
            sys::privs::not_dumpable().map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("PR_SET_DUMPABLE: {}", sys::fd::describe(&e)),
                )
            })?;
        }
        if self.no_new_privs || (confined && sys::privs::HAS_NO_NEW_PRIVS) {
            sys::privs::no_new_privs().map_err(|e| {
                io::Error::new(e.kind(), format!("no_new_privs: {}", sys::fd::describe(&e)))
            })?;
        }
        Ok(())
    }
}

/// Whether this process's descriptor 0, 1 or 2 is a terminal.
#[cfg(unix)]
fn holds_a_terminal() -> bool {
    use std::io::IsTerminal;
    io::stdin().is_terminal() || io::stdout().is_terminal() || io::stderr().is_terminal()
}
