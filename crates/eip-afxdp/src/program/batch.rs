//! Many keys per `bpf(2)` call: `BPF_MAP_UPDATE_BATCH` / `BPF_MAP_DELETE_BATCH`
//! (Linux 5.6+), which aya does not wrap.
//!
//! Why: filling the EIP filter one key per syscall took 1.2 s for a million
//! EIPs at start and restart (about 1.2 us a call in this VM), more than half of
//! a restart. The kernel still inserts key by key, but the crossing is paid once
//! per chunk.
//!
//! A kernel without batch operations answers `EINVAL` (unknown command) or
//! `ENOTSUPP`/`EOPNOTSUPP`; the callers then fall back to one call per key.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd};

const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;
/// `ENOTSUPP` is kernel-internal (524) but reaches user space from some maps.
const ENOTSUPP: i32 = 524;

/// Keys per call: bounds the kernel's work between two returns to us.
pub(super) const CHUNK: usize = 65_536;

/// The `batch` member of `union bpf_attr` (include/uapi/linux/bpf.h).
#[repr(C, align(8))]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Whether `e` says the kernel has no batch operation for this map.
pub(super) fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::EOPNOTSUPP | libc::ENOSYS | ENOTSUPP)
    )
}

/// What a batch call did: `Err((done, error))` when the kernel stopped after
/// `done` keys (a prefix of those asked).
pub(super) type Outcome = Result<(), (usize, io::Error)>;

/// Writes `value` under every key of `keys` (flags `BPF_ANY`). On an error,
/// returns how many keys (a prefix of `keys`) the kernel wrote, with the error.
pub(super) fn update<K: Copy, V: Copy>(map: BorrowedFd<'_>, keys: &[K], value: V) -> Outcome {
    let values = vec![value; keys.len().min(CHUNK)];
    in_chunks(BPF_MAP_UPDATE_BATCH, map, keys, Some(&values))
}

/// Deletes `keys`. A missing key ends the call with `ENOENT` after the keys
/// before it were deleted; returns how many were, with the error.
pub(super) fn delete<K: Copy>(map: BorrowedFd<'_>, keys: &[K]) -> Outcome {
    in_chunks::<K, u32>(BPF_MAP_DELETE_BATCH, map, keys, None)
}

/// `cmd` over `keys`, [`CHUNK`] keys a call; `values` (updates) holds at
/// least `CHUNK.min(keys.len())` values, the same for every chunk.
fn in_chunks<K: Copy, V: Copy>(
    cmd: libc::c_long,
    map: BorrowedFd<'_>,
    keys: &[K],
    values: Option<&[V]>,
) -> Outcome {
    let mut done = 0;
    for k in keys.chunks(CHUNK) {
        let values = values.map_or(0, |v| {
            assert!(v.len() >= k.len(), "a value for every key");
            v.as_ptr() as u64
        });
        let mut attr = BatchAttr {
            keys: k.as_ptr() as u64,
            values,
            count: k.len() as u32,
            map_fd: map.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` points at `k.len()` keys and, for an update, at
        // least as many values, alive and laid out as the map's key and value
        // types (the caller's `K`/`V` are the map's Pod types); the kernel
        // reads them and writes only `attr.count`.
        let rc = unsafe { call(cmd, &mut attr) };
        if rc < 0 {
            return Err((done + processed(&attr, k.len()), io::Error::last_os_error()));
        }
        done += k.len();
    }
    Ok(())
}

/// How many elements a failed call processed: the kernel writes the count
/// back when it stops at an element, and leaves it as it was when it refuses
/// the call before the first (unknown command, map without batches).
fn processed(attr: &BatchAttr, asked: usize) -> usize {
    let count = attr.count as usize;
    if count >= asked {
        0
    } else {
        count
    }
}

/// # Safety
/// `attr` must describe buffers valid for the command.
unsafe fn call(cmd: libc::c_long, attr: &mut BatchAttr) -> libc::c_long {
    libc::syscall(
        libc::SYS_bpf,
        cmd,
        attr as *mut BatchAttr,
        size_of::<BatchAttr>() as libc::c_uint,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_call_processed_nothing_a_stopped_one_its_count() {
        let attr = |count| BatchAttr {
            count,
            ..BatchAttr::default()
        };
        // Refused before the first key: the count is the one we wrote.
        assert_eq!(processed(&attr(100), 100), 0);
        // Stopped at key 42: the kernel wrote 42 back.
        assert_eq!(processed(&attr(42), 100), 42);
        assert_eq!(processed(&attr(0), 100), 0);
    }

    #[test]
    fn only_a_kernel_without_batches_is_unsupported() {
        for code in [libc::EINVAL, libc::EOPNOTSUPP, libc::ENOSYS, ENOTSUPP] {
            assert!(unsupported(&io::Error::from_raw_os_error(code)), "{code}");
        }
        for code in [libc::ENOENT, libc::E2BIG, libc::ENOMEM, libc::EPERM] {
            assert!(!unsupported(&io::Error::from_raw_os_error(code)), "{code}");
        }
    }

    #[test]
    fn the_attribute_is_the_kernels_batch_member() {
        // include/uapi/linux/bpf.h: 4 x u64, 2 x u32, 2 x u64.
        assert_eq!(size_of::<BatchAttr>(), 56);
    }

    #[test]
    fn a_bad_descriptor_is_an_error_that_inserted_nothing() {
        use std::os::fd::AsFd;
        let not_a_map = std::fs::File::open("/dev/null").expect("/dev/null");
        let keys = [1u32; 10];
        match update(not_a_map.as_fd(), &keys, 1u32) {
            Err((0, _)) => {}
            other => panic!("expected an error with nothing inserted, got {other:?}"),
        }
    }
}
