//! A user-space mirror of one of the filter's key sets (`eip_v4`, `eip_v6`,
//! `vtep_v4`), so that a sync only issues syscalls for the difference (1M EIPs,
//! a handful of changes), and a large difference (the start, a restart) goes to
//! the kernel in batches.

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

pub(super) struct KeySet<K> {
    name: &'static str,
    map: HashMap<MapData, K, u32>,
    /// The map's fd again, for the batch calls aya does not make.
    fd: OwnedFd,
    /// False once the kernel said it has no batch operations.
    batches: bool,
    installed: FxHashSet<K>,
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
            installed: FxHashSet::default(),
            capacity,
        })
    }

    /// Makes the map hold exactly `desired`.
    pub(super) fn sync(&mut self, desired: impl Iterator<Item = K>) -> Result<MapDiff, SetupError> {
        let desired: FxHashSet<K> = desired.collect();
        if desired.len() > self.capacity as usize {
            return Err(self.too_many(desired.len()));
        }
        // Remove first so that a table that swaps many keys never overflows the map.
        let stale: Vec<K> = self.installed.difference(&desired).copied().collect();
        self.remove_keys(&stale)?;
        let new: Vec<K> = desired
            .iter()
            .filter(|k| !self.installed.contains(k))
            .copied()
            .collect();
        self.insert_keys(&new)?;
        Ok(MapDiff {
            added: new.len(),
            removed: stale.len(),
            total: self.installed.len(),
        })
    }

    /// Inserts `keys` (those already there are skipped). Refuses, before
    /// inserting any, keys that would not fit.
    pub(super) fn insert_all(
        &mut self,
        keys: impl Iterator<Item = K>,
    ) -> Result<usize, SetupError> {
        let new = self.distinct(keys, false);
        if self.installed.len() + new.len() > self.capacity as usize {
            return Err(self.too_many(self.installed.len() + new.len()));
        }
        self.insert_keys(&new)?;
        Ok(new.len())
    }

    /// Removes `keys` (those not there are skipped).
    pub(super) fn remove_all(
        &mut self,
        keys: impl Iterator<Item = K>,
    ) -> Result<usize, SetupError> {
        let gone = self.distinct(keys, true);
        self.remove_keys(&gone)?;
        Ok(gone.len())
    }

    /// `keys` without repeats, keeping those that are (`installed`) or are not
    /// in the map.
    fn distinct(&self, keys: impl Iterator<Item = K>, installed: bool) -> Vec<K> {
        let mut seen = FxHashSet::default();
        keys.filter(|k| self.installed.contains(k) == installed && seen.insert(*k))
            .collect()
    }

    /// Keys in the map.
    pub(super) fn len(&self) -> usize {
        self.installed.len()
    }

    /// Keys the kernel's map holds, read back one by one (tests).
    #[cfg(test)]
    pub(super) fn kernel_len(&self) -> usize {
        self.map.keys().filter(Result::is_ok).count()
    }

    /// Deletes `key` in the kernel only, as someone else would (tests).
    #[cfg(test)]
    pub(super) fn delete_behind_the_mirror(&mut self, key: &K) {
        self.map
            .remove(key)
            .expect("the key is in the kernel's map");
    }

    pub(super) fn diff(&self, added: usize, removed: usize) -> MapDiff {
        MapDiff {
            added,
            removed,
            total: self.installed.len(),
        }
    }

    /// Inserts keys known to be absent, recording each one the kernel took.
    /// A large set goes in batches from one thread per core: the kernel's
    /// inserts (about 0.45 us each in a VM, 1M at a restart) take per-bucket
    /// locks and scale.
    fn insert_keys(&mut self, new: &[K]) -> Result<(), SetupError> {
        let mut rest: Vec<&[K]> = vec![new];
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
                    Ok(()) => self.installed.extend(part.iter().copied()),
                    Err((0, e)) if batch::unsupported(&e) => {
                        self.batches = false;
                        rest.push(part);
                    }
                    Err((done, e)) => {
                        self.installed.extend(part[..done].iter().copied());
                        failed.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = failed {
                return Err(self.batch_error("BPF_MAP_UPDATE_BATCH", "inserting keys", e));
            }
        }
        for key in rest.into_iter().flatten() {
            self.map
                .insert(key, 1u32, 0)
                .map_err(|e| self.error("inserting a key", e))?;
            self.installed.insert(*key);
        }
        Ok(())
    }

    /// Deletes keys known to be present; a key already gone (someone else
    /// cleaned it) counts as deleted.
    fn remove_keys(&mut self, gone: &[K]) -> Result<(), SetupError> {
        let mut rest = gone;
        while self.batches && rest.len() >= BATCH_FROM {
            match batch::delete(self.fd.as_fd(), rest) {
                Ok(()) => {
                    self.forget(rest);
                    return Ok(());
                }
                Err((done, e)) => {
                    self.forget(&rest[..done]);
                    rest = &rest[done..];
                    if done == 0 && batch::unsupported(&e) {
                        self.batches = false;
                    } else if e.raw_os_error() == Some(libc::ENOENT) {
                        // The batch stopped at a key already gone: go past it.
                        self.forget(&rest[..1]);
                        rest = &rest[1..];
                    } else {
                        return Err(self.batch_error("BPF_MAP_DELETE_BATCH", "removing keys", e));
                    }
                }
            }
        }
        for key in rest {
            match self.map.remove(key) {
                Ok(()) => {}
                Err(e) if errno_of(&e) == Some(libc::ENOENT) => {}
                Err(e) => return Err(self.error("removing a key", e)),
            }
            self.installed.remove(key);
        }
        Ok(())
    }

    fn forget(&mut self, keys: &[K]) {
        for key in keys {
            self.installed.remove(key);
        }
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
