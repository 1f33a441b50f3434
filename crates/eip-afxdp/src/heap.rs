//! Memory freed by the daemon's start, handed back to the kernel.
//!
//! Loading a large description frees much of what it allocated (parsed text,
//! the state file's bytes, the entries as parsed before they were packed), but
//! glibc keeps freed pages that lie below live ones, so they stay resident:
//! about 14 MB at 1M EIPs (`malloc_trim(0)` called with gdb on an eipd started
//! by `scripts/scale.sh 1000000`). Here, not in `eipd`, because it
//! is a call into the C library (the one crate with `unsafe`).

/// Returns the heap's free pages to the kernel (glibc's `malloc_trim(0)`,
/// which also releases free pages in the middle of the heap, not only at its
/// top). Whether any was released; elsewhere than glibc, nothing to do.
/// Takes the allocator's locks: call it off the packet path (workers do not
/// allocate), after a large load.
pub fn release_free_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` takes no pointer and touches only the
        // allocator's own free lists, under its own locks.
        unsafe { libc::malloc_trim(0) != 0 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
