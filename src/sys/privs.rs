//! Privileges: looking up accounts, and dropping to one.
//!
//! The order is the one every careful daemon uses, and each step is
//! checked: resource limits (while still allowed to raise them), chroot and
//! chdir, the capability bounding set (while still allowed to drop from
//! it), the ambient and inheritable sets, setgroups, setgid, setuid; then a proof that root cannot be
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

/// Empties the capability bounding set (PR_CAPBSET_DROP of every
/// capability the kernel knows), then checks that none is left: no later
/// execve, of a set-uid-root program or of a file with capabilities, can
/// give one back. Needs CAP_SETPCAP in the effective set (root, or a
/// non-root master given it), so call it before leaving root. Returns
/// false, having changed nothing, when CAP_SETPCAP is not effective (a
/// service manager withheld it, or a non-root master without it): the
/// set can then not be emptied, and only what was left is in it.
#[cfg(target_os = "linux")]
pub fn drop_bounding_set() -> io::Result<bool> {
    let prctl = |option: libc::c_int, arg: libc::c_ulong| -> io::Result<libc::c_int> {
        // SAFETY: PR_CAPBSET_READ, PR_CAPBSET_DROP and PR_CAP_AMBIENT take
        // integers only (unused arguments must be 0); no memory is passed.
        let r = unsafe {
            libc::prctl(
                option,
                arg,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    };
    const CAP_SETPCAP: u32 = 8;
    let (_, data) = capabilities()?;
    if data[0].effective & (1 << CAP_SETPCAP) == 0 {
        return Ok(false);
    }
    // EINVAL from PR_CAPBSET_READ: past the last capability of this kernel.
    let mut known = 0;
    while prctl(libc::PR_CAPBSET_READ, known).is_ok() {
        prctl(libc::PR_CAPBSET_DROP, known)?;
        known += 1;
    }
    if known == 0 {
        return Err(io::Error::other("cannot read the capability bounding set"));
    }
    if (0..known).any(|cap| prctl(libc::PR_CAPBSET_READ, cap).ok() != Some(0)) {
        return Err(io::Error::other(
            "a capability is still in the bounding set",
        ));
    }
    Ok(true)
}

/// capget(2)'s header, version 3 (64 capabilities, in two words).
#[cfg(target_os = "linux")]
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// capget(2)'s data: one of the two words of each set.
#[cfg(target_os = "linux")]
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

#[cfg(target_os = "linux")]
const CAP_VERSION_3: u32 = 0x2008_0522;

/// The caller's capability sets (capget of itself).
#[cfg(target_os = "linux")]
fn capabilities() -> io::Result<(CapHeader, [CapData; 2])> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and data are live, writable, and of the layout
    // capget(2) version 3 expects (one header, two data words).
    let r = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((header, data))
}

/// Empties the inheritable and the ambient capability sets, keeping the
/// permitted and effective ones (the caller may still need them until it
/// changes user): no program it runs then inherits a capability, as one
/// would from a non-root master started with ambient capabilities
/// (systemd's `AmbientCapabilities=`), which no_new_privs does not stop.
/// Needs no privilege.
#[cfg(target_os = "linux")]
pub fn clear_inherited_capabilities() -> io::Result<()> {
    // EINVAL: a kernel older than 4.3 has no ambient set, so nothing to clear.
    // SAFETY: PR_CAP_AMBIENT takes integers only (unused ones 0).
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
    }
    let (mut header, mut data) = capabilities()?;
    if data.iter().any(|d| d.inheritable != 0) {
        for d in &mut data {
            d.inheritable = 0;
        }
        // SAFETY: as in capabilities(): a live header and two data words;
        // capset only reads them.
        let r = unsafe {
            libc::syscall(
                libc::SYS_capset,
                &mut header as *mut CapHeader,
                data.as_ptr(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let (_, after) = capabilities()?;
    if after.iter().any(|d| d.inheritable != 0) {
        return Err(io::Error::other("a capability is still inheritable"));
    }
    Ok(())
}

/// No capability sets on this system: nothing to clear.
#[cfg(not(target_os = "linux"))]
pub fn clear_inherited_capabilities() -> io::Result<()> {
    Ok(())
}

/// No capability bounding set on this system: nothing to drop.
#[cfg(not(target_os = "linux"))]
pub fn drop_bounding_set() -> io::Result<bool> {
    Ok(false)
}

/// PR_SET_DUMPABLE 0: processes of the same user can neither ptrace the
/// caller nor open its descriptors through /proc/PID/fd, whatever
/// fs.suid_dumpable says (Linux; elsewhere nothing to do).
pub fn not_dumpable() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    nix::sys::prctl::set_dumpable(false)?;
    Ok(())
}

/// Whether [`no_new_privs`] exists here (Linux only).
pub const HAS_NO_NEW_PRIVS: bool = cfg!(target_os = "linux");

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
