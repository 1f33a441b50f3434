//! The IPv4 indexes: EIP address -> slot and what ingress needs of the EIP in
//! 16-byte entries, and, per region, backend address -> slot and, for a plain
//! 1:1 EIP, its address ([`super::OwnerEntry`], what a return needs) in
//! 12-byte entries (`super::owner_index`), in copy-on-write shards. The
//! description's address index uses it too (`super::address_index`: IPv4
//! address -> place in the EIP list).
//!
//! Every ingress packet looks its destination up in the first and every return
//! its source in the second, so the index is made for that one lookup: one multiplication gives the shard (top bits) and the home
//! entry in the shard (the bits below them, scaled to the shard's length, which
//! need not be a power of two); entries are `(address, slot)` pairs probed
//! linearly, no control bytes and no SIMD group. A hit at build-time load
//! (0.8) reads about three entries, most often in one line. The EIP index's
//! entries carry the EIP's 1:1 backend, region and flags ([`EipEntry`]) beside
//! its slot: at 1M EIPs, where every lookup misses the caches, ingress then
//! reads no slot record (one cache miss less a packet) for
//! 10 more bytes an EIP (20 where 8-byte `(address, slot)` entries took 10).
//!
//! Like [`super::sharded::Sharded`], a snapshot derived from another shares
//! every shard it does not change: a change copies one shard (about
//! `len / SHARDS` entries). Removal shifts the entries behind back (no
//! tombstones), so a long-lived index never degrades.

use super::entries::EipEntry;
use super::sharded::SHARDS;
use super::EipId;
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
        find_from(&self.entries, key, home(h, self.entries.len()))
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

/// The entry of `entries` (a shard's, not empty) holding `key`, or the free
/// entry where it would go, probing linearly from `i`, the key's home.
#[inline(always)]
fn find_from<K: IndexKey, V: IndexValue>(
    entries: &[(K, V)],
    key: K,
    mut i: usize,
) -> Result<usize, usize> {
    let n = entries.len();
    // A shard is never full (`MAX_LOAD` < 1), so the probe meets a free entry.
    loop {
        let (k, value) = entries[i];
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

/// A lookup begun by [`Index::start`]: the key's shard and home entry found
/// and their line asked for. The pipeline's prefetching loop starts a
/// frame's lookup frames before it [finishes](Probe::finish) it, and the
/// hash, the shard and the home entry are not worked out twice.
#[derive(Debug, Clone, Copy)]
pub struct Probe<'a, K, V = EipId> {
    /// The shard's entries (never empty).
    entries: &'a [(K, V)],
    home: usize,
    key: K,
}

impl<K: IndexKey, V: IndexValue> Probe<'_, K, V> {
    /// The value of the key: [`Index::get`]'s answer, read from the line
    /// [`Index::start`] asked for.
    #[inline(always)]
    pub fn finish(self) -> Option<V> {
        find_from(self.entries, self.key, self.home)
            .ok()
            .map(|i| self.entries[i].1)
    }
}

/// [`SHARDS`] shards in their fixed-size array.
fn all_shards<T>(shards: impl IntoIterator<Item = T>) -> Box<[T; SHARDS]> {
    let all: Box<[T]> = shards.into_iter().collect();
    match all.try_into() {
        Ok(all) => all,
        Err(_) => unreachable!("an index has exactly SHARDS shards"),
    }
}

/// Key -> EIP slot (and what comes with it), in [`SHARDS`] copy-on-write shards.
#[derive(Debug, Clone)]
pub struct Index<K, V = EipId> {
    /// A fixed-size array: `shard_of`'s top bits index it without a bounds
    /// check.
    shards: Box<[Arc<Shard<K, V>>; SHARDS]>,
    len: usize,
}

impl<K: IndexKey, V: IndexValue> Default for Index<K, V> {
    fn default() -> Self {
        Index {
            shards: all_shards((0..SHARDS).map(|_| Arc::default())),
            len: 0,
        }
    }
}

impl<K: IndexKey, V: IndexValue> Index<K, V> {
    /// An empty index whose shards have room for `total` entries overall.
    pub fn with_capacity(total: usize) -> Self {
        let each = total.div_ceil(SHARDS);
        Index {
            shards: all_shards((0..SHARDS).map(|_| Arc::new(Shard::for_keys(each)))),
            len: 0,
        }
    }

    /// The value (slot) of `key`.
    #[inline(always)]
    pub fn get(&self, key: K) -> Option<V> {
        let h = hash(key);
        self.shards[shard_of(h)].get(key, h)
    }

    /// Begins a lookup of `key`: finds its shard and home entry and starts
    /// loading that entry's line without waiting for it (a hint that changes
    /// no result). `None` when the key's shard is empty (no such key).
    #[inline(always)]
    pub fn start(&self, key: K) -> Option<Probe<'_, K, V>> {
        let h = hash(key);
        let entries = &*self.shards[shard_of(h)].entries;
        if entries.is_empty() {
            return None;
        }
        let i = home(h, entries.len());
        prefetch_index::prefetch_index(entries, i);
        // A probe runs on past its home entry (three entries for a hit at
        // build load): the next line too when it starts there.
        prefetch_index::prefetch_index(entries, (i + 3).min(entries.len() - 1));
        Some(Probe {
            entries,
            home: i,
            key,
        })
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

    /// Marks the shard of `key` as changed (copies it if another snapshot
    /// shares it), for [`Self::unshared_keys`] to see a change made beside the
    /// index: the value `key` stands for changed elsewhere.
    pub fn touch(&mut self, key: K) {
        Arc::make_mut(&mut self.shards[shard_of(hash(key))]);
    }

    /// Marks every shard as changed (see [`Self::touch`]).
    pub fn touch_all(&mut self) {
        for shard in self.shards.iter_mut() {
            Arc::make_mut(shard);
        }
    }

    /// The keys of both indexes in the shards they do not share, each once;
    /// `None` when there are more than `limit` of them. Keys whose values
    /// differ, or were [touched](Self::touch), are among them.
    pub fn unshared_keys(&self, other: &Self, limit: usize) -> Option<Vec<K>> {
        let mut keys = Vec::new();
        for (a, b) in self.shards.iter().zip(other.shards.iter()) {
            if Arc::ptr_eq(a, b) {
                continue;
            }
            keys.extend(a.iter().map(|(k, _)| k));
            keys.extend(
                b.iter()
                    .map(|(k, _)| k)
                    .filter(|&k| a.get(k, hash(k)).is_none()),
            );
            if keys.len() > limit {
                return None;
            }
        }
        Some(keys)
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

    /// The index, keeping the first value of a key pushed more than once.
    pub fn build_keep_first(self) -> Index<K, V> {
        match self.fill(false) {
            Ok(index) => index,
            Err(_) => unreachable!("duplicates are kept out, not refused"),
        }
    }

    /// The index. A key pushed twice with the same slot is stored once (the
    /// first value).
    ///
    /// # Errors
    /// The first key (in shard order) pushed twice with different slots.
    pub fn build(self) -> Result<Index<K, V>, K> {
        self.fill(true)
    }

    /// Fills each shard from its part while it is hot in cache; a key pushed
    /// again keeps its first value, or is refused (`refuse_other_slots`) when
    /// the later value names another slot.
    fn fill(self, refuse_other_slots: bool) -> Result<Index<K, V>, K> {
        let mut len = 0;
        let mut shards = Vec::with_capacity(SHARDS);
        for part in self.parts {
            let mut shard = Shard::<K, V>::for_keys(part.len());
            for (k, value) in part {
                assert_ne!(value.slot(), FREE, "slot u32::MAX marks a free entry");
                match shard.find(k, hash(k)) {
                    Ok(i) if refuse_other_slots && shard.entries[i].1.slot() != value.slot() => {
                        return Err(k)
                    }
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
            shards: all_shards(shards),
            len,
        })
    }
}

#[cfg(test)]
mod tests;
