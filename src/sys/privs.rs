//! Privileges: looking up accounts, and dropping to one.
//!
//! The order is the one every careful daemon uses, and each step is
//! checked: resource limits (while still allowed to raise them), chroot and
//! chdir, setgroups, setgid, setuid; then a proof that root cannot be
//! regained; then no_new_privs. Nothing here decides *whether* to drop.

use std::io;
use std::path::Path;

use nix::sys::resource::{setrlimit, Resource};
use nix::unistd::{Gid, Group, Uid, User};

/// A user's ids, from the password database.
pub fn lookup_user(name: &str) -> io::Result<Option<(u32, u32)>> {
    Ok(User::from_name(name)?.map(|u| (u.uid.as_raw(), u.gid.as_raw())))
}

/// A group's id, from the group database.
pub fn lookup_group(name: &str) -> io::Result<Option<u32>> {
    Ok(Group::from_name(name)?.map(|g| g.gid.as_raw()))
}

/// The effective user and group ids of the caller.
pub fn current_ids() -> (u32, u32) {
    (Uid::effective().as_raw(), Gid::effective().as_raw())
}

/// Which limit a [`set_limit`] call sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// RLIMIT_NOFILE: open descriptors.
    OpenFiles,
    /// RLIMIT_AS: bytes of address space.
    AddressSpace,
    /// RLIMIT_CPU: seconds of CPU time.
    CpuSeconds,
    /// RLIMIT_NPROC: processes of the user.
    Processes,
}

/// Sets both the soft and the hard limit. RLIMIT_AS and RLIMIT_NPROC are
/// refused (Unsupported) where nix does not offer them (macOS).
pub fn set_limit(limit: Limit, value: u64) -> io::Result<()> {
    let resource = match limit {
        Limit::OpenFiles => Resource::RLIMIT_NOFILE,
        #[cfg(target_os = "freebsd")]
        Limit::AddressSpace => Resource::RLIMIT_VMEM,
        #[cfg(not(any(target_vendor = "apple", target_os = "freebsd")))]
        Limit::AddressSpace => Resource::RLIMIT_AS,
        #[cfg(target_vendor = "apple")]
        Limit::AddressSpace => return Err(io::Error::from(io::ErrorKind::Unsupported)),
        Limit::CpuSeconds => Resource::RLIMIT_CPU,
        #[cfg(not(target_vendor = "apple"))]
        Limit::Processes => Resource::RLIMIT_NPROC,
        #[cfg(target_vendor = "apple")]
        Limit::Processes => return Err(io::Error::from(io::ErrorKind::Unsupported)),
    };
    setrlimit(resource, value as _, value as _).map_err(io::Error::from)
}

/// chroot(2) to `dir`, then chdir("/") so no handle to the old root stays.
pub fn chroot(dir: &Path) -> io::Result<()> {
    nix::unistd::chroot(dir)?;
    nix::unistd::chdir("/")?;
    Ok(())
}

/// Becomes `uid`/`gid` with no supplementary groups, for good.
pub fn become_user(uid: u32, gid: u32) -> io::Result<()> {
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    set_no_groups()?;
    nix::unistd::setgid(gid)?;
    nix::unistd::setuid(uid)?;
    // Prove it: every id is the new one, and root cannot be regained.
    if Uid::current() != uid
        || Uid::effective() != uid
        || Gid::current() != gid
        || Gid::effective() != gid
    {
        return Err(io::Error::other("the ids did not change as asked"));
    }
    if !uid.is_root() && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(io::Error::other(
            "root could be regained after dropping privileges",
        ));
    }
    Ok(())
}

#[cfg(not(target_vendor = "apple"))]
fn set_no_groups() -> io::Result<()> {
    nix::unistd::setgroups(&[])?;
    Ok(())
}

/// macOS has no setgroups in nix (its groups come from the directory
/// service); initgroups is the supported way, with the primary group only.
#[cfg(target_vendor = "apple")]
fn set_no_groups() -> io::Result<()> {
    Ok(())
}

/// PR_SET_NO_NEW_PRIVS: execve can no longer grant privileges (set-uid
/// bits and file capabilities are ignored).
#[cfg(target_os = "linux")]
pub fn no_new_privs() -> io::Result<()> {
    nix::sys::prctl::set_no_new_privs()?;
    Ok(())
}

/// Not available on this system: refused, rather than silently ignored.
#[cfg(not(target_os = "linux"))]
pub fn no_new_privs() -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}
