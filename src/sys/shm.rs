//! Memory shared between the master and its workers: one anonymous
//! MAP_SHARED mapping, made before the first fork and inherited by every
//! worker, seen as a slice of `AtomicU64`.
//!
//! Atomics are the only way the two sides touch it: no lock is ever held,
//! so a worker killed at any instant cannot leave the master blocked.

use std::io;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

use nix::sys::mman::{MapFlags, ProtFlags};

/// A shared, zero-filled array of 64-bit atomic words.
#[derive(Debug)]
pub struct SharedWords {
    ptr: NonNull<AtomicU64>,
    len: usize,
}

impl SharedWords {
    /// Maps `len` words, all zero.
    pub fn new(len: usize) -> io::Result<SharedWords> {
        let bytes = len
            .checked_mul(std::mem::size_of::<AtomicU64>())
            .and_then(NonZeroUsize::new)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let ptr = map_shared(bytes)?;
        Ok(SharedWords {
            ptr: ptr.cast(),
            len,
        })
    }

    /// The words. Shared with every process forked after [`SharedWords::new`].
    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is `len` words long, page-aligned (so aligned
        // for AtomicU64), zero-filled by the kernel (a valid AtomicU64), and
        // lives until `self` is dropped. AtomicU64 has interior mutability,
        // so shared references are the right way to hand it out, also to
        // other processes writing the same pages.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        let bytes = self.len * std::mem::size_of::<AtomicU64>();
        // SAFETY: unmaps exactly the mapping made in `new`; `self` is going
        // away, so no reference from `words` outlives it.
        let _ = unsafe { nix::sys::mman::munmap(self.ptr.cast(), bytes) };
    }
}

/// A new anonymous MAP_SHARED mapping of `bytes`, readable and writable,
/// zero-filled, page-aligned: shared with every process forked after it.
pub(super) fn map_shared(bytes: NonZeroUsize) -> io::Result<NonNull<std::ffi::c_void>> {
    // SAFETY: an anonymous mapping at an address of the kernel's choice
    // aliases no existing Rust object.
    let ptr = unsafe {
        nix::sys::mman::mmap_anonymous(
            None,
            bytes,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
        )
    }?;
    Ok(ptr)
}

/// Microseconds on CLOCK_MONOTONIC (see [`monotonic_ms`]).
pub fn monotonic_us() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
        .unwrap_or(0)
}

/// Milliseconds on CLOCK_MONOTONIC: the same clock in every process, so a
/// worker's "busy since" can be compared with the master's "now".
pub fn monotonic_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000)
        .unwrap_or(0)
}
