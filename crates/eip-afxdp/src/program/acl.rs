//! The XDP program's access-list tries (`acl_v4`, `acl_v6`: LPM tries keyed by
//! EIP and source prefix): the deny rules the program applies before the
//! redirect (`eip_dataplane::tables::acl::AclSpec::xdp_denies`), with a
//! user-space mirror so that a change issues syscalls only for the entries
//! that differ, like the EIP maps.
//!
//! Each entry's value is its index in the per-CPU array `acl_hits`, where the
//! program counts its drops: the v4 trie's entries take indices from 0, the
//! v6 trie's from its capacity. An index is zeroed when handed out, and on
//! [`Trie::reset`] when the EIP's list changes but keeps the entry.

use std::net::IpAddr;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{MapData, MapError, PerCpuArray, PerCpuValues};
use eip_dataplane::protect::Prefix;
use rustc_hash::FxHashMap;

use super::super::error::{errno_of, SetupError};

/// `filter_config.acl` bits in the C program: which trie holds entries.
pub(super) const ACL_V4: u16 = 1;
pub(super) const ACL_V6: u16 = 2;

/// One (EIP, source prefix) pair to drop in XDP.
pub type AclEntry = (IpAddr, Prefix);

/// The program's per-entry drop counters.
pub(super) type Hits = PerCpuArray<MapData, u64>;

/// One trie and what this process installed in it: per key, its counter
/// index and the entry it stands for.
pub(super) struct Trie<const N: usize> {
    name: &'static str,
    map: LpmTrie<MapData, [u8; N], u32>,
    installed: FxHashMap<(u32, [u8; N]), (u32, AclEntry)>,
    capacity: u32,
    /// The next counter index never handed out (this trie's indices are
    /// `base..base + capacity`, from [`Trie::new`]).
    next: u32,
    free: Vec<u32>,
}

/// The key of `(eip, source)` in a trie of `N` bytes (EIP then source, in
/// network byte order); `None` for the other family's.
fn key<const N: usize>(eip: IpAddr, source: &Prefix) -> Option<(u32, [u8; N])> {
    let mut data = [0u8; N];
    let half = N / 2;
    match (eip, source.address) {
        (IpAddr::V4(e), IpAddr::V4(s)) if N == 8 => {
            data[..half].copy_from_slice(&e.octets());
            data[half..].copy_from_slice(&s.octets());
        }
        (IpAddr::V6(e), IpAddr::V6(s)) if N == 32 => {
            data[..half].copy_from_slice(&e.octets());
            data[half..].copy_from_slice(&s.octets());
        }
        _ => return None,
    }
    Some((half as u32 * 8 + u32::from(source.len), data))
}

impl<const N: usize> Trie<N> {
    pub(super) fn new(
        name: &'static str,
        map: LpmTrie<MapData, [u8; N], u32>,
        capacity: u32,
        base: u32,
    ) -> Self {
        Trie {
            name,
            map,
            installed: FxHashMap::default(),
            capacity,
            next: base,
            free: Vec::new(),
        }
    }

    /// Whether it holds any entry.
    pub(super) fn is_empty(&self) -> bool {
        self.installed.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.installed.len()
    }

    /// Inserts the entries of this family (those already there skipped);
    /// refuses, before inserting any, entries that would not fit.
    pub(super) fn insert_all(
        &mut self,
        entries: &[AclEntry],
        hits: &mut Hits,
    ) -> Result<usize, SetupError> {
        let keys: Vec<((u32, [u8; N]), AclEntry)> = entries
            .iter()
            .filter_map(|e| Some((key::<N>(e.0, &e.1)?, *e)))
            .filter(|(k, _)| !self.installed.contains_key(k))
            .collect();
        if self.installed.len() + keys.len() > self.capacity as usize {
            return Err(SetupError::Map {
                map: self.name,
                what: format!(
                    "{} access-list prefixes wanted but the map holds {}",
                    self.installed.len() + keys.len(),
                    self.capacity
                ),
                source: None,
            });
        }
        let mut added = 0;
        for (k, entry) in keys {
            if self.installed.contains_key(&k) {
                continue;
            }
            let index = self.free.pop().unwrap_or_else(|| {
                self.next += 1;
                self.next - 1
            });
            let inserted = zero(hits, index).and_then(|()| {
                self.map
                    .insert(&Key::new(k.0, k.1), index, 0)
                    .map_err(|e| self.error("inserting a prefix", e))
            });
            if let Err(e) = inserted {
                self.free.push(index);
                return Err(e);
            }
            self.installed.insert(k, (index, entry));
            added += 1;
        }
        Ok(added)
    }

    /// Drops per entry since it was inserted or last reset.
    pub(super) fn hits(&self, hits: &Hits) -> Result<Vec<(AclEntry, u64)>, SetupError> {
        self.installed
            .values()
            .map(|(index, entry)| {
                let per_cpu = hits.get(index, 0).map_err(|e| hits_error("reading", e))?;
                Ok((*entry, per_cpu.iter().sum()))
            })
            .collect()
    }

    /// Zeroes the counters of `entries` (those of this family installed).
    pub(super) fn reset(&self, entries: &[AclEntry], hits: &mut Hits) -> Result<(), SetupError> {
        for k in entries.iter().filter_map(|(e, p)| key::<N>(*e, p)) {
            if let Some((index, _)) = self.installed.get(&k) {
                zero(hits, *index)?;
            }
        }
        Ok(())
    }

    /// Makes the trie hold exactly the entries of this family in `desired`:
    /// (added, removed).
    pub(super) fn sync(
        &mut self,
        desired: &[AclEntry],
        hits: &mut Hits,
    ) -> Result<(usize, usize), SetupError> {
        let want: rustc_hash::FxHashSet<(u32, [u8; N])> = desired
            .iter()
            .filter_map(|(e, p)| key::<N>(*e, p))
            .collect();
        let stale: Vec<AclEntry> = self
            .installed
            .iter()
            .filter(|(k, _)| !want.contains(*k))
            .map(|(_, (_, entry))| *entry)
            .collect();
        let removed = self.remove_all(&stale)?;
        Ok((self.insert_all(desired, hits)?, removed))
    }

    /// Removes the entries of this family (those not there skipped).
    pub(super) fn remove_all(&mut self, entries: &[AclEntry]) -> Result<usize, SetupError> {
        let mut removed = 0;
        for k in entries.iter().filter_map(|(e, p)| key::<N>(*e, p)) {
            let Some(held) = self.installed.remove(&k) else {
                continue;
            };
            match self.map.remove(&Key::new(k.0, k.1)) {
                Ok(()) => {}
                Err(e) if errno_of(&e) == Some(libc::ENOENT) => {}
                Err(e) => {
                    self.installed.insert(k, held);
                    return Err(self.error("removing a prefix", e));
                }
            }
            self.free.push(held.0);
            removed += 1;
        }
        Ok(removed)
    }

    fn error(&self, what: &str, source: MapError) -> SetupError {
        SetupError::Map {
            map: self.name,
            what: what.to_string(),
            source: Some(source),
        }
    }
}

/// Zeroes counter `index` on every CPU.
fn zero(hits: &mut Hits, index: u32) -> Result<(), SetupError> {
    let cpus = aya::util::nr_cpus().map_err(|(_, e)| SetupError::Map {
        map: "acl_hits",
        what: format!("counting the CPUs: {e}"),
        source: None,
    })?;
    let values = PerCpuValues::try_from(vec![0u64; cpus]).map_err(|e| SetupError::Map {
        map: "acl_hits",
        what: format!("zeroing entry {index}: {e}"),
        source: None,
    })?;
    hits.set(index, values, 0)
        .map_err(|e| hits_error("zeroing an entry", e))
}

fn hits_error(what: &str, source: MapError) -> SetupError {
    SetupError::Map {
        map: "acl_hits",
        what: what.to_string(),
        source: Some(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hold_the_eip_then_the_source_and_count_the_eip_bits() {
        let p = Prefix::parse("198.51.100.128/25").unwrap();
        let (len, data) = key::<8>("192.0.2.10".parse().unwrap(), &p).unwrap();
        assert_eq!(len, 32 + 25);
        assert_eq!(data, [192, 0, 2, 10, 198, 51, 100, 128]);
        assert!(key::<32>("192.0.2.10".parse().unwrap(), &p).is_none());
        let p6 = Prefix::parse("2001:db8::/32").unwrap();
        let (len, data) = key::<32>("2001:db8:e1::10".parse().unwrap(), &p6).unwrap();
        assert_eq!(len, 128 + 32);
        assert_eq!(&data[16..20], &[0x20, 0x01, 0x0d, 0xb8]);
        assert!(key::<8>("192.0.2.10".parse().unwrap(), &p6).is_none());
    }
}
