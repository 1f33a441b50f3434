//! One of the filter's key sets (`eip_v4`, `eip_v6`, `vtep_v4`), changed by
//! differences: the tables say what changed ([`super::FilterDelta`]: an update
//! issues syscalls for what it changes, not for 1M EIPs), and a large
//! difference (the start, a restart) goes to the kernel in batches.
//!
//! No copy of the keys is kept beside the map, only their count: the kernel's
//! map is what holds them, read back when a whole set is synced (at start,
//! where it is empty). A user-space mirror (a hash set of the addresses) cost
//! 10 bytes an EIP at 1M EIPs, a fourth copy of every address.

use std::hash::Hash;
use std::os::fd::{AsFd, OwnedFd};

use aya::maps::{HashMap, Map, MapData, MapError};
use aya::sys::SyscallError;
use aya::{Ebpf, Pod};
use rustc_hash::FxHashSet;

use super::batch;
use super::MapDiff;
use crate::error::{errno_of, SetupError};

/// Differences at least this large go in batches; smaller ones key by key
/// (the batch would only add a copy).
const BATCH_FROM: usize = 64;
/// Differences at least this large are inserted from several threads.
const PARALLEL_FROM: usize = 100_000;
/// At most this many inserting threads.
const MAX_THREADS: usize = 4;
/// `BPF_NOEXIST`: an insert of one key never overwrites, so a key found
/// present is not counted twice.
const BPF_NOEXIST: u64 = 1;

pub(super) struct KeySet<K> {
    name: &'static str,
    map: HashMap<MapData, K, u32>,
    /// The map's fd again, for the batch calls aya does not make.
    fd: OwnedFd,
    /// False once the kernel said it has no batch operations.
    batches: bool,
    /// Keys in the map: those inserted, less those removed (or found gone).
    len: usize,
    capacity: u32,
}

impl<K: Pod + Eq + Hash + Sync> KeySet<K> {
    /// Takes map `name` out of the loaded object.
    pub(super) fn take(
        ebpf: &mut Ebpf,
        name: &'static str,
        capacity: u32,
    ) -> Result<KeySet<K>, SetupError> {
        let (map, fd) = super::take_map(ebpf, name, |map| {
            let fd = match &map {
                Map::HashMap(data) | Map::LruHashMap(data) => {
                    Some(data.fd().as_fd().try_clone_to_owned().map_err(|io_error| {
                        MapError::SyscallError(SyscallError {
                            call: "dup",
                            io_error,
                        })
                    })?)
                }
                _ => None,
            };
            // Refuses every other kind of map.
            let typed = HashMap::try_from(map)?;
            Ok((typed, fd.expect("a hash map has a file descriptor")))
        })?;
        Ok(KeySet {
            name,
            map,
            fd,
            batches: true,
            len: 0,
            capacity,
        })
    }

    /// Makes the map hold exactly `desired`: reads back what it holds (one
    /// syscall a key; nothing at start, where the map is new), then removes the
    /// keys not desired and inserts the missing ones.
    pub(super) fn sync(&mut self, desired: impl Iterator<Item = K>) -> Result<MapDiff, SetupError> {
        let desired: FxHashSet<K> = desired.collect();
        if desired.len() > self.capacity as usize {
            return Err(self.too_many(desired.len()));
        }
        let present: FxHashSet<K> = self
            .map
            .keys()
            .collect::<Result<_, _>>()
            .map_err(|e| self.error("reading its keys", e))?;
        self.len = present.len();
        // Remove first so that a table that swaps many keys never overflows the map.
        let stale: Vec<K> = present.difference(&desired).copied().collect();
        let removed = self.remove_keys(&stale)?;
        let new: Vec<K> = desired
            .iter()
            .filter(|k| !present.contains(k))
            .copied()
            .collect();
        let added = self.insert_keys(&new)?;
        Ok(self.diff(added, removed))
    }

    /// Inserts `keys`, which the map does not hold (the tables' difference).
    /// Refuses, before inserting any, more keys than the map has room for.
    pub(super) fn insert_all(
        &mut self,
        keys: impl Iterator<Item = K>,
    ) -> Result<usize, SetupError> {
        let new = distinct(keys);
        if self.len + new.len() > self.capacity as usize {
            return Err(self.too_many(self.len + new.len()));
        }
        self.insert_keys(&new)
    }

    /// Removes `keys` (a key already gone counts as removed: someone else
    /// removed it).
    pub(super) fn remove_all(
        &mut self,
        keys: impl Iterator<Item = K>,
    ) -> Result<usize, SetupError> {
        self.remove_keys(&distinct(keys))
    }

    /// Keys in the map.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Keys the kernel's map holds, read back one by one (tests).
    #[cfg(test)]
    pub(super) fn kernel_len(&self) -> usize {
        self.map.keys().filter(Result::is_ok).count()
    }

    /// Whether the kernel still takes batch calls (tests: one refused falls
    /// back to a syscall a key, a second more at 1M EIPs).
    #[cfg(test)]
    pub(super) fn batches(&self) -> bool {
        self.batches
    }

    /// Deletes `key` in the kernel only, as someone else would (tests).
    #[cfg(test)]
    pub(super) fn delete_behind_our_back(&mut self, key: &K) {
        self.map
            .remove(key)
            .expect("the key is in the kernel's map");
    }

    pub(super) fn diff(&self, added: usize, removed: usize) -> MapDiff {
        MapDiff {
            added,
            removed,
            total: self.len,
        }
    }

    /// Inserts `new`, keys not in the map (a difference the tables worked out,
    /// or one against what a sync read back), and returns how many it
    /// inserted. A large set goes in batches from one thread per core: the
    /// kernel's inserts (about 0.45 us each in a VM, 1M at a restart) take
    /// per-bucket locks and scale. A batch writes every key it is given
    /// (`BPF_MAP_UPDATE_BATCH` takes no `BPF_NOEXIST`: refused with `EINVAL`),
    /// one key at a time skips a key found present.
    fn insert_keys(&mut self, new: &[K]) -> Result<usize, SetupError> {
        let mut rest: Vec<&[K]> = vec![new];
        let mut inserted = 0;
        if self.batches && new.len() >= BATCH_FROM {
            let threads = if new.len() >= PARALLEL_FROM {
                std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
            } else {
                1
            };
            let fd = self.fd.as_fd();
            let results: Vec<(&[K], batch::Outcome)> = std::thread::scope(|scope| {
                let running: Vec<_> = new
                    .chunks(new.len().div_ceil(threads))
                    .map(|part| scope.spawn(move || (part, batch::update(fd, part, 1u32))))
                    .collect();
                running
                    .into_iter()
                    .map(|t| t.join().expect("a batch insert thread panicked"))
                    .collect()
            });
            rest.clear();
            let mut failed = None;
            for (part, result) in results {
                match result {
                    Ok(()) => inserted += part.len(),
                    Err((0, e)) if batch::unsupported(&e) => {
                        self.batches = false;
                        rest.push(part);
                    }
                    Err((done, e)) => {
                        inserted += done;
                        failed.get_or_insert(e);
                    }
                }
            }
            self.len += inserted;
            if let Some(e) = failed {
                return Err(self.batch_error("BPF_MAP_UPDATE_BATCH", "inserting keys", e));
            }
        }
        for key in rest.into_iter().flatten() {
            match self.map.insert(key, 1u32, BPF_NOEXIST) {
                Ok(()) => {
                    inserted += 1;
                    self.len += 1;
                }
                Err(e) if errno_of(&e) == Some(libc::EEXIST) => {}
                Err(e) => return Err(self.error("inserting a key", e)),
            }
        }
        Ok(inserted)
    }

    /// Deletes keys known to be present, and returns how many; a key already
    /// gone (someone else removed it) counts as deleted.
    fn remove_keys(&mut self, gone: &[K]) -> Result<usize, SetupError> {
        let mut rest = gone;
        while self.batches && rest.len() >= BATCH_FROM {
            match batch::delete(self.fd.as_fd(), rest) {
                Ok(()) => {
                    rest = &[];
                }
                Err((done, e)) => {
                    rest = &rest[done..];
                    if done == 0 && batch::unsupported(&e) {
                        self.batches = false;
                    } else if e.raw_os_error() == Some(libc::ENOENT) {
                        // The batch stopped at a key already gone: go past it.
                        rest = &rest[1.min(rest.len())..];
                    } else {
                        self.forget(gone.len() - rest.len());
                        return Err(self.batch_error("BPF_MAP_DELETE_BATCH", "removing keys", e));
                    }
                }
            }
        }
        for (i, key) in rest.iter().enumerate() {
            match self.map.remove(key) {
                Ok(()) => {}
                Err(e) if errno_of(&e) == Some(libc::ENOENT) => {}
                Err(e) => {
                    self.forget(gone.len() - rest.len() + i);
                    return Err(self.error("removing a key", e));
                }
            }
        }
        self.forget(gone.len());
        Ok(gone.len())
    }

    /// `n` keys fewer in the map.
    fn forget(&mut self, n: usize) {
        self.len = self.len.saturating_sub(n);
    }

    fn too_many(&self, wanted: usize) -> SetupError {
        SetupError::Map {
            map: self.name,
            what: format!(
                "{wanted} keys wanted but the map holds {} (raise max_eips / max_vteps)",
                self.capacity
            ),
            source: None,
        }
    }

    fn batch_error(&self, call: &'static str, what: &str, io_error: std::io::Error) -> SetupError {
        self.error(
            what,
            MapError::SyscallError(SyscallError { call, io_error }),
        )
    }

    fn error(&self, what: &str, source: MapError) -> SetupError {
        SetupError::Map {
            map: self.name,
            what: what.to_string(),
            source: Some(source),
        }
    }
}

/// `keys` without repeats, in their order.
fn distinct<K: Copy + Eq + Hash>(keys: impl Iterator<Item = K>) -> Vec<K> {
    let mut seen = FxHashSet::default();
    keys.filter(|k| seen.insert(*k)).collect()
}
