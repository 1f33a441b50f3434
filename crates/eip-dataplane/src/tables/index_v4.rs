//! The IPv4 indexes: EIP address -> slot and what ingress needs of the EIP in
//! 16-byte entries, and (region, backend address) -> slot and, for a plain
//! 1:1 EIP, its address ([`OwnerEntry`], what a return needs) in 16-byte
//! entries, in copy-on-write shards.
//!
//! Every ingress packet looks its destination up in the first and every return
//! its source in the second, so the index is made for that one lookup: one multiplication gives the shard (top bits) and the home
//! entry in the shard (the bits below them, scaled to the shard's length, which
//! need not be a power of two); entries are `(address, slot)` pairs probed
//! linearly, no control bytes and no SIMD group. A hit at build-time load
//! (0.8) reads about three entries, most often in one line. The EIP index's
//! entries carry the EIP's 1:1 backend, region and flags ([`EipEntry`]) beside
//! its slot: at 1M EIPs, where every lookup misses the caches, ingress then
//! reads no slot record (one cache miss, and one TLB miss, less a packet) for
//! 10 more bytes an EIP (20 where 8-byte `(address, slot)` entries took 10).
//!
//! Like [`super::sharded::Sharded`], a snapshot derived from another shares
//! every shard it does not change: a change copies one shard (about
//! `len / SHARDS` entries). Removal shifts the entries behind back (no
//! tombstones), so a long-lived index never degrades.

use super::sharded::SHARDS;
use super::slab::{EipEntry, OwnerEntry};
use super::{EipId, RegionId};
use std::sync::Arc;

/// A key of an [`Index`]: small, compared by value, hashed by one multiplication.
pub trait IndexKey: Copy + Eq + Default + std::fmt::Debug {
    /// The key as a number of at most 64 bits, for Fibonacci hashing.
    fn as_u64(self) -> u64;
}

impl IndexKey for u32 {
    #[inline(always)]
    fn as_u64(self) -> u64 {
        u64::from(self)
    }
}

impl IndexKey for (RegionId, u32) {
    #[inline(always)]
    fn as_u64(self) -> u64 {
        (u64::from(self.0) << 32) | u64::from(self.1)
    }
}

impl IndexKey for u64 {
    #[inline(always)]
    fn as_u64(self) -> u64 {
        self
    }
}

/// What an index maps a key to: a slot, perhaps with more (the EIP index's
/// [`EipEntry`]). A value whose slot is `u32::MAX` marks a free entry.
pub trait IndexValue: Copy + PartialEq + std::fmt::Debug {
    /// The value of a free entry.
    const FREE: Self;
    /// The slot this value points at.
    fn slot(self) -> EipId;
}

impl IndexValue for EipId {
    const FREE: Self = FREE;
    #[inline(always)]
    fn slot(self) -> EipId {
        self
    }
}

/// IPv4 EIP address (host order) -> EIP slot, with what ingress needs of it.
pub type IndexV4 = Index<u32, EipEntry>;
/// Builder of an [`IndexV4`].
pub type IndexV4Builder = IndexBuilder<u32, EipEntry>;
/// (region, IPv4 backend address in host order) -> the EIP that owns it there.
pub type OwnerIndexV4 = Index<(RegionId, u32), OwnerEntry>;
/// Builder of an [`OwnerIndexV4`].
pub type OwnerIndexV4Builder = IndexBuilder<(RegionId, u32), OwnerEntry>;

/// A free entry: no slot is `u32::MAX` (slots are handed out from 0).
const FREE: EipId = EipId::MAX;

/// Bits of the hash that choose the shard.
const SHARD_BITS: u32 = SHARDS.trailing_zeros();

/// Entries per key a shard is built with (load 0.8), and the load at which an
/// insert makes it larger (0.9: a miss then probes about 50 entries, a hit 5.5).
const BUILD_LOAD: (usize, usize) = (4, 5);
const MAX_LOAD: (usize, usize) = (9, 10);

/// Fibonacci hashing: the top bits of `key * 2^64/phi` are well spread for any
/// key pattern (consecutive addresses, strides of a subnet).
#[inline(always)]
fn hash<K: IndexKey>(key: K) -> u64 {
    key.as_u64().wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[inline(always)]
fn shard_of(h: u64) -> usize {
    (h >> (64 - SHARD_BITS)) as usize
}

/// The home entry of hash `h` in a shard of `len` entries: the 32 bits below
/// the shard's, scaled to `len` (Lemire's multiply-shift range reduction).
#[inline(always)]
fn home(h: u64, len: usize) -> usize {
    let bits = (h >> (32 - SHARD_BITS)) as u32;
    ((u64::from(bits) * len as u64) >> 32) as usize
}

/// One shard: open addressing with linear probing over `(key, value)`.
#[derive(Debug, Clone)]
struct Shard<K, V = EipId> {
    entries: Box<[(K, V)]>,
    len: usize,
}

impl<K, V> Default for Shard<K, V> {
    fn default() -> Self {
        Shard {
            entries: Box::default(),
            len: 0,
        }
    }
}

impl<K: IndexKey, V: IndexValue> Shard<K, V> {
    /// A shard for `n` keys at build-time load.
    fn for_keys(n: usize) -> Self {
        let len = if n == 0 {
            0
        } else {
            (n * BUILD_LOAD.1).div_ceil(BUILD_LOAD.0) + 1
        };
        Shard {
            entries: vec![(K::default(), V::FREE); len].into_boxed_slice(),
            len: 0,
        }
    }

    /// The entry holding `key`, or the free entry where it would go.
    #[inline(always)]
    fn find(&self, key: K, h: u64) -> Result<usize, usize> {
        let n = self.entries.len();
        let mut i = home(h, n);
        // A shard is never full (`MAX_LOAD` < 1), so the probe meets a free entry.
        loop {
            let (k, value) = self.entries[i];
            if value.slot() == FREE {
                return Err(i);
            }
            if k == key {
                return Ok(i);
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }

    #[inline(always)]
    fn get(&self, key: K, h: u64) -> Option<V> {
        if self.entries.is_empty() {
            return None;
        }
        self.find(key, h).ok().map(|i| self.entries[i].1)
    }

    /// Inserts or replaces; returns the previous value.
    fn insert(&mut self, key: K, h: u64, value: V) -> Option<V> {
        assert_ne!(value.slot(), FREE, "slot u32::MAX marks a free entry");
        if (self.len + 1) * MAX_LOAD.1 > self.entries.len() * MAX_LOAD.0 {
            self.grow();
        }
        match self.find(key, h) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries[i] = (key, value);
                self.len += 1;
                None
            }
        }
    }

    /// Rebuilds at build-time load for one more key than it holds.
    fn grow(&mut self) {
        let mut larger = Shard::for_keys(self.len + 1 + self.len / 4);
        for &(k, value) in self.entries.iter().filter(|e| e.1.slot() != FREE) {
            let h = hash(k);
            if let Err(i) = larger.find(k, h) {
                larger.entries[i] = (k, value);
                larger.len += 1;
            }
        }
        *self = larger;
    }

    /// Removes `key`, shifting back the entries of its probe run that may move.
    fn remove(&mut self, key: K, h: u64) -> Option<V> {
        if self.entries.is_empty() {
            return None;
        }
        let mut hole = self.find(key, h).ok()?;
        let removed = self.entries[hole].1;
        let n = self.entries.len();
        let mut j = hole;
        loop {
            j = if j + 1 == n { 0 } else { j + 1 };
            let (k, value) = self.entries[j];
            if value.slot() == FREE {
                break;
            }
            // The entry at `j` may fill the hole unless its home lies
            // (cyclically) after the hole and at or before `j`.
            let at = home(hash(k), n);
            let stays = if hole <= j {
                hole < at && at <= j
            } else {
                hole < at || at <= j
            };
            if !stays {
                self.entries[hole] = self.entries[j];
                hole = j;
            }
        }
        self.entries[hole] = (K::default(), V::FREE);
        self.len -= 1;
        Some(removed)
    }

    fn iter(&self) -> impl Iterator<Item = (K, V)> + '_ {
        self.entries.iter().copied().filter(|e| e.1.slot() != FREE)
    }
}

/// Key -> EIP slot (and what comes with it), in [`SHARDS`] copy-on-write shards.
#[derive(Debug, Clone)]
pub struct Index<K, V = EipId> {
    shards: Box<[Arc<Shard<K, V>>]>,
    len: usize,
}

impl<K: IndexKey, V: IndexValue> Default for Index<K, V> {
    fn default() -> Self {
        Index {
            shards: (0..SHARDS).map(|_| Arc::default()).collect(),
            len: 0,
        }
    }
}

impl<K: IndexKey, V: IndexValue> Index<K, V> {
    /// An empty index whose shards have room for `total` entries overall.
    pub fn with_capacity(total: usize) -> Self {
        let each = total.div_ceil(SHARDS);
        Index {
            shards: (0..SHARDS)
                .map(|_| Arc::new(Shard::for_keys(each)))
                .collect(),
            len: 0,
        }
    }

    /// The value (slot) of `key`.
    #[inline(always)]
    pub fn get(&self, key: K) -> Option<V> {
        let h = hash(key);
        self.shards[shard_of(h)].get(key, h)
    }

    /// Starts loading the entry where a lookup of `key` begins, without waiting
    /// for it: a hint that changes no result (the pipeline's prefetching loop).
    #[inline(always)]
    pub fn prefetch(&self, key: K) {
        let h = hash(key);
        let entries = &self.shards[shard_of(h)].entries;
        if !entries.is_empty() {
            let i = home(h, entries.len());
            prefetch_index::prefetch_index(entries, i);
            // A probe runs on past its home entry (three entries for a hit
            // at build load): the next line too when it starts there.
            prefetch_index::prefetch_index(entries, (i + 3).min(entries.len() - 1));
        }
    }

    /// Inserts; returns the previous value.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let h = hash(key);
        let old = Arc::make_mut(&mut self.shards[shard_of(h)]).insert(key, h, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Inserts unless present; returns the present value (index unchanged) if any.
    pub fn claim(&mut self, key: K, value: V) -> Option<V> {
        if let Some(present) = self.get(key) {
            return Some(present);
        }
        self.insert(key, value);
        None
    }

    /// Replaces the value of `key` with `value` if `key` points at `value`'s
    /// slot (another slot's entry, a duplicate's first, stays); copies the
    /// shard only when the value changes.
    pub fn refresh(&mut self, key: K, value: V) {
        match self.get(key) {
            Some(old) if old.slot() == value.slot() && old != value => {
                self.insert(key, value);
            }
            _ => {}
        }
    }

    pub fn remove(&mut self, key: K) -> Option<V> {
        let h = hash(key);
        self.get(key)?;
        let old = Arc::make_mut(&mut self.shards[shard_of(h)]).remove(key, h);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every address, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = K> + '_ {
        self.shards.iter().flat_map(|s| s.iter().map(|(k, _)| k))
    }

    /// Every entry, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = (K, V)> + '_ {
        self.shards.iter().flat_map(|s| s.iter())
    }

    /// Heap bytes of the entries and of the shard pointers. Shards shared with
    /// other snapshots count in full here.
    pub fn heap_bytes(&self) -> usize {
        let shard = std::mem::size_of::<Shard<K, V>>() + 16;
        self.shards.len() * (8 + shard)
            + self
                .shards
                .iter()
                .map(|s| s.entries.len() * std::mem::size_of::<(K, V)>())
                .sum::<usize>()
    }

    /// The addresses `self` has and `old` has not (added), and those `old` has
    /// and `self` has not (gone). Compares only the shards the two do not share.
    pub fn key_changes(&self, old: &Self) -> (Vec<K>, Vec<K>) {
        let (mut added, mut gone) = (Vec::new(), Vec::new());
        for (new, old) in self.shards.iter().zip(old.shards.iter()) {
            if Arc::ptr_eq(new, old) {
                continue;
            }
            added.extend(
                new.iter()
                    .map(|(k, _)| k)
                    .filter(|&k| old.get(k, hash(k)).is_none()),
            );
            gone.extend(
                old.iter()
                    .map(|(k, _)| k)
                    .filter(|&k| new.get(k, hash(k)).is_none()),
            );
        }
        (added, gone)
    }

    /// How many shards `self` and `other` share (same allocation).
    pub fn shared_shards(&self, other: &Self) -> usize {
        self.shards
            .iter()
            .zip(other.shards.iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count()
    }
}

/// A small index in one table, without shards or copy-on-write: for maps of a
/// few entries that every packet of a kind reads (a return's tunnel). Values
/// are below `u32::MAX`.
#[derive(Debug, Clone, Default)]
pub struct FlatIndex<K>(Shard<K, u32>);

impl<K: IndexKey> FlatIndex<K> {
    #[inline(always)]
    pub fn get(&self, key: K) -> Option<u32> {
        self.0.get(key, hash(key))
    }

    /// Every key, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = K> + '_ {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn len(&self) -> usize {
        self.0.len
    }

    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }
}

impl<K: IndexKey> FromIterator<(K, u32)> for FlatIndex<K> {
    /// The index of these entries; a later entry for a key replaces an earlier.
    fn from_iter<I: IntoIterator<Item = (K, u32)>>(entries: I) -> Self {
        let entries: Vec<(K, u32)> = entries.into_iter().collect();
        let mut shard = Shard::for_keys(entries.len());
        for (k, v) in entries {
            shard.insert(k, hash(k), v);
        }
        FlatIndex(shard)
    }
}

/// Entries for a new [`Index`], partitioned by shard as they come, each shard
/// then filled once at its final size (no growth, no copy-on-write checks).
#[derive(Debug)]
pub struct IndexBuilder<K, V = EipId> {
    parts: Vec<Vec<(K, V)>>,
}

impl<K: IndexKey, V: IndexValue> IndexBuilder<K, V> {
    /// A builder for about `total` entries.
    pub fn with_capacity(total: usize) -> Self {
        let each = total.div_ceil(SHARDS);
        let each = if each == 0 { 0 } else { each + each / 4 + 4 };
        IndexBuilder {
            parts: (0..SHARDS).map(|_| Vec::with_capacity(each)).collect(),
        }
    }

    #[inline]
    pub fn push(&mut self, key: K, value: V) {
        self.parts[shard_of(hash(key))].push((key, value));
    }

    /// The index. A key pushed twice with the same slot is stored once (the
    /// first value).
    ///
    /// # Errors
    /// The first key (in shard order) pushed twice with different slots.
    pub fn build(self) -> Result<Index<K, V>, K> {
        let mut len = 0;
        let mut shards = Vec::with_capacity(SHARDS);
        for part in self.parts {
            let mut shard = Shard::<K, V>::for_keys(part.len());
            for (k, value) in part {
                assert_ne!(value.slot(), FREE, "slot u32::MAX marks a free entry");
                match shard.find(k, hash(k)) {
                    Ok(i) if shard.entries[i].1.slot() != value.slot() => return Err(k),
                    Ok(_) => {}
                    Err(i) => {
                        shard.entries[i] = (k, value);
                        shard.len += 1;
                    }
                }
            }
            len += shard.len;
            shards.push(Arc::new(shard));
        }
        Ok(Index {
            shards: shards.into_boxed_slice(),
            len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn a_change_copies_one_shard() {
        let mut a = Index::<u32>::default();
        for i in 0..10_000 {
            assert_eq!(a.insert(i, i), None);
        }
        let mut b = a.clone();
        assert_eq!(b.insert(5, 50), Some(5));
        assert_eq!(b.remove(7), Some(7));
        assert_eq!(b.claim(8, 1), Some(8));
        assert_eq!((a.get(5), b.get(5)), (Some(5), Some(50)));
        assert_eq!((a.get(7), b.get(7)), (Some(7), None));
        assert_eq!((a.len(), b.len()), (10_000, 9_999));
        assert!(b.shared_shards(&a) >= SHARDS - 2);
        let (added, gone) = b.key_changes(&a);
        assert_eq!((added, gone), (vec![], vec![7]));
    }

    #[test]
    fn built_and_inserted_agree() {
        let keys: Vec<u32> = (0..50_000u32).map(|i| 0x0A00_0000 + i * 7).collect();
        let mut b = IndexBuilder::<u32>::with_capacity(keys.len());
        let mut inserted = Index::<u32>::default();
        for (slot, &k) in keys.iter().enumerate() {
            b.push(k, slot as u32);
            inserted.insert(k, slot as u32);
        }
        b.push(keys[3], 3);
        let built = b.build().unwrap();
        assert_eq!((built.len(), inserted.len()), (keys.len(), keys.len()));
        for (slot, &k) in keys.iter().enumerate() {
            assert_eq!(built.get(k), Some(slot as u32));
            assert_eq!(inserted.get(k), Some(slot as u32));
        }
        assert_eq!(built.get(0x0A00_0001), None);
        // 8 bytes an entry at load 0.8, plus the shard pointers (the EIP
        // index's 16-byte entries take twice that).
        let per_key = (built.heap_bytes() - SHARDS * (8 + 40)) / keys.len();
        assert!((10..=11).contains(&per_key), "{per_key} bytes a key");
    }

    #[test]
    fn a_key_with_two_slots_is_refused() {
        let mut b = IndexBuilder::<u32>::with_capacity(2);
        b.push(1, 1);
        b.push(1, 2);
        assert_eq!(b.build().unwrap_err(), 1);
    }

    #[test]
    fn owners_in_two_regions_are_two_keys() {
        let mut o = Index::<(RegionId, u32)>::default();
        assert_eq!(o.insert((1, 0x0A00_0001), 5), None);
        assert_eq!(o.insert((2, 0x0A00_0001), 6), None);
        assert_eq!(o.claim((1, 0x0A00_0001), 7), Some(5));
        let got = [1, 2, 3].map(|r| o.get((r, 0x0A00_0001)));
        assert_eq!(got, [Some(5), Some(6), None]);
        assert_eq!(o.remove((2, 0x0A00_0001)), Some(6));
        assert_eq!((o.get((2, 0x0A00_0001)), o.len()), (None, 1));
        assert_eq!(std::mem::size_of::<((RegionId, u32), EipId)>(), 12);
    }

    #[test]
    fn a_flat_index_finds_what_it_was_built_from() {
        let entries: Vec<(u64, u32)> = (0..300u64)
            .map(|i| ((i << 32) | (i * 3), i as u32))
            .collect();
        let flat: FlatIndex<u64> = entries.iter().copied().collect();
        assert_eq!(flat.len(), 300);
        for &(k, v) in &entries {
            assert_eq!(flat.get(k), Some(v));
        }
        assert_eq!(flat.get(1 << 32), None);
        assert_eq!(FlatIndex::<u64>::default().get(7), None);
        let mut keys: Vec<u64> = flat.keys().collect();
        keys.sort_unstable();
        assert_eq!(keys, entries.iter().map(|e| e.0).collect::<Vec<_>>());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32, u32),
        Remove(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few distinct keys, so that inserts, removes and probe runs collide.
        prop_oneof![
            (0u32..400, 0u32..1000).prop_map(|(k, v)| Op::Insert(k * 4099, v)),
            (0u32..400).prop_map(|k| Op::Remove(k * 4099)),
        ]
    }

    proptest! {
        /// Any sequence of inserts and removes gives the same answers as a
        /// `HashMap`: in one shard holding every key (long probe runs that
        /// wrap around, removal shifting entries back, growth), and in the
        /// index, where an older clone keeps its own answers.
        #[test]
        fn behaves_as_a_map(ops in proptest::collection::vec(op(), 0..3000)) {
            let mut index = Index::<u32>::default();
            let mut shard = Shard::default();
            let mut model = HashMap::new();
            let mut before = None;
            for (n, op) in ops.iter().enumerate() {
                if n == ops.len() / 2 {
                    before = Some((index.clone(), model.clone()));
                }
                match *op {
                    Op::Insert(k, v) => {
                        prop_assert_eq!(shard.insert(k, hash(k), v), model.get(&k).copied());
                        prop_assert_eq!(index.insert(k, v), model.insert(k, v));
                    }
                    Op::Remove(k) => {
                        prop_assert_eq!(shard.remove(k, hash(k)), model.get(&k).copied());
                        prop_assert_eq!(index.remove(k), model.remove(&k));
                    }
                }
            }
            prop_assert_eq!(index.len(), model.len());
            prop_assert_eq!(shard.len, model.len());
            for k in (0u32..400).map(|k| k * 4099) {
                prop_assert_eq!(index.get(k), model.get(&k).copied());
                prop_assert_eq!(shard.get(k, hash(k)), model.get(&k).copied());
            }
            let mut keys: Vec<u32> = index.keys().collect();
            keys.sort_unstable();
            let mut expected: Vec<u32> = model.keys().copied().collect();
            expected.sort_unstable();
            prop_assert_eq!(keys, expected);
            if let Some((old, old_model)) = before {
                for k in (0u32..400).map(|k| k * 4099) {
                    prop_assert_eq!(old.get(k), old_model.get(&k).copied());
                }
            }
        }
    }
}
