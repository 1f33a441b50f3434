//! Copy-on-write hash maps split into shards: a snapshot derived from another
//! shares every shard it does not change, and a change copies only the shards
//! it touches (one shard is about `len / SHARDS` entries).

use rustc_hash::FxHashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

/// Number of shards of every [`Sharded`] map: at 1M entries a shard holds ~1k.
pub const SHARDS: usize = 1024;

/// A hash map in [`SHARDS`] shards, each behind an `Arc`. Cloning the map clones
/// the `Arc`s (8 KiB), not the entries.
#[derive(Debug, Clone)]
pub struct Sharded<K, V> {
    shards: Box<[Arc<FxHashMap<K, V>>]>,
    len: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Default for Sharded<K, V> {
    fn default() -> Self {
        Sharded {
            shards: (0..SHARDS).map(|_| Arc::default()).collect(),
            len: 0,
        }
    }
}

#[inline(always)]
fn shard_of<K: Hash>(key: &K) -> usize {
    // Not bits of the map's own hash: hashbrown takes the bucket from its low bits
    // and the tag from its top 7, and a shard whose keys all share those would
    // probe like a list. A second mix of the hash gives independent bits.
    let h = rustc_hash::FxBuildHasher.hash_one(key);
    let mixed = (h ^ (h >> 31)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> (64 - SHARDS.trailing_zeros())) as usize
}

/// Entries for a new [`Sharded`] map, partitioned by shard as they come: each
/// push appends to its shard's list (1024 append points stay in cache), and
/// [`ShardedBuilder::build`] fills each shard from its list while the shard is
/// hot in cache, sized exactly, without copy-on-write checks or regrowth.
#[derive(Debug)]
pub struct ShardedBuilder<K, V> {
    parts: Vec<Vec<(K, V)>>,
}

impl<K: Hash + Eq + Copy, V: Copy + PartialEq> ShardedBuilder<K, V> {
    /// A builder for about `total` entries.
    pub fn with_capacity(total: usize) -> Self {
        let each = total.div_ceil(SHARDS);
        let each = if each == 0 { 0 } else { each + each / 4 + 4 };
        ShardedBuilder {
            parts: (0..SHARDS).map(|_| Vec::with_capacity(each)).collect(),
        }
    }

    #[inline]
    pub fn push(&mut self, key: K, value: V) {
        self.parts[shard_of(&key)].push((key, value));
    }

    /// The map. A key pushed twice with equal values is stored once.
    ///
    /// # Errors
    /// The first key (in shard order) pushed twice with different values.
    pub fn build(self) -> Result<Sharded<K, V>, K> {
        let mut len = 0;
        let mut shards = Vec::with_capacity(SHARDS);
        for part in self.parts {
            let mut map: FxHashMap<K, V> =
                FxHashMap::with_capacity_and_hasher(part.len(), Default::default());
            for (k, v) in part {
                match map.entry(k) {
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(v);
                    }
                    std::collections::hash_map::Entry::Occupied(e) => {
                        if *e.get() != v {
                            return Err(k);
                        }
                    }
                }
            }
            len += map.len();
            shards.push(Arc::new(map));
        }
        Ok(Sharded {
            shards: shards.into_boxed_slice(),
            len,
        })
    }
}

impl<K: Hash + Eq + Copy, V: Copy> ShardedBuilder<K, V> {
    /// The map; of a key pushed more than once, the first value is kept.
    pub fn build_keep_first(self) -> Sharded<K, V> {
        let mut len = 0;
        let shards: Box<[_]> = self
            .parts
            .into_iter()
            .map(|part| {
                let mut map: FxHashMap<K, V> =
                    FxHashMap::with_capacity_and_hasher(part.len(), Default::default());
                for (k, v) in part {
                    map.entry(k).or_insert(v);
                }
                len += map.len();
                Arc::new(map)
            })
            .collect();
        Sharded { shards, len }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Sharded<K, V> {
    /// An empty map whose shards have room for `total` entries overall.
    pub fn with_capacity(total: usize) -> Self {
        let each = total.div_ceil(SHARDS);
        Sharded {
            shards: (0..SHARDS)
                .map(|_| {
                    Arc::new(FxHashMap::with_capacity_and_hasher(
                        each + each / 8,
                        Default::default(),
                    ))
                })
                .collect(),
            len: 0,
        }
    }

    #[inline(always)]
    pub fn get(&self, key: &K) -> Option<&V> {
        self.shards[shard_of(key)].get(key)
    }

    /// The shard of `key`, copied first if another snapshot shares it.
    #[inline]
    fn shard_mut(&mut self, key: &K) -> &mut FxHashMap<K, V> {
        Arc::make_mut(&mut self.shards[shard_of(key)])
    }

    /// Marks the shard of `key` as changed (copies it if another snapshot
    /// shares it), for [`Self::unshared_keys`] to see a change made beside
    /// the map: the value `key` stands for changed elsewhere.
    pub fn touch(&mut self, key: &K) {
        self.shard_mut(key);
    }

    /// Marks every shard as changed (see [`Self::touch`]).
    pub fn touch_all(&mut self) {
        for shard in self.shards.iter_mut() {
            Arc::make_mut(shard);
        }
    }

    /// The keys of both maps in the shards they do not share, each once;
    /// `None` when there are more than `limit` of them. Keys whose entries
    /// differ are among them.
    pub fn unshared_keys(&self, other: &Self, limit: usize) -> Option<Vec<K>> {
        let mut keys = rustc_hash::FxHashSet::default();
        for (a, b) in self.shards.iter().zip(other.shards.iter()) {
            if Arc::ptr_eq(a, b) {
                continue;
            }
            keys.extend(a.keys().cloned());
            keys.extend(b.keys().cloned());
            if keys.len() > limit {
                return None;
            }
        }
        Some(keys.into_iter().collect())
    }

    /// Inserts; returns the previous value.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = self.shard_mut(&key).insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Inserts unless present; returns the present value (map unchanged) if any.
    pub fn claim(&mut self, key: K, value: V) -> Option<V> {
        if let Some(v) = self.get(&key) {
            return Some(v.clone());
        }
        self.insert(key, value);
        None
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.get(key)?;
        let old = self.shard_mut(key).remove(key);
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

    pub fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.shards.iter().flat_map(|s| s.keys())
    }

    /// Heap bytes of the entries (hashbrown: a control byte plus one `(K, V)` per
    /// bucket) and of the shard pointers. Shards shared with other snapshots count
    /// in full here.
    pub fn heap_bytes(&self) -> usize {
        let per_bucket = std::mem::size_of::<(K, V)>() + 1;
        let shard = std::mem::size_of::<FxHashMap<K, V>>() + 16;
        self.shards.len() * (8 + shard)
            + self
                .shards
                .iter()
                .map(|s| s.capacity() * per_bucket)
                .sum::<usize>()
    }

    /// The keys `self` has and `old` has not (added), and those `old` has and
    /// `self` has not (gone). Compares only the shards the two maps do not
    /// share: after a change of a few keys, a few shards.
    pub fn key_changes(&self, old: &Self) -> (Vec<K>, Vec<K>) {
        let (mut added, mut gone) = (Vec::new(), Vec::new());
        for (new, old) in self.shards.iter().zip(old.shards.iter()) {
            if Arc::ptr_eq(new, old) {
                continue;
            }
            added.extend(new.keys().filter(|k| !old.contains_key(k)).cloned());
            gone.extend(old.keys().filter(|k| !new.contains_key(k)).cloned());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_copies_one_shard() {
        let mut a: Sharded<u32, u32> = Sharded::default();
        for i in 0..10_000 {
            assert_eq!(a.insert(i, i), None);
        }
        let mut b = a.clone();
        assert_eq!(b.insert(5, 50), Some(5));
        assert_eq!(b.remove(&7), Some(7));
        assert_eq!(b.claim(8, 1), Some(8));
        assert_eq!((a.get(&5), b.get(&5)), (Some(&5), Some(&50)));
        assert_eq!((a.len(), b.len()), (10_000, 9_999));
        assert!(b.shared_shards(&a) >= SHARDS - 2);
        assert_eq!(b.keys().count(), 9_999);
        assert_eq!(b.key_changes(&a), (vec![], vec![7]));
        b.insert(20_000, 1);
        assert_eq!(b.key_changes(&a), (vec![20_000], vec![7]));
        assert_eq!(a.key_changes(&a.clone()), (vec![], vec![]));
    }

    #[test]
    fn builder_equals_inserts() {
        let pairs: Vec<(u32, u32)> = (0..5_000).map(|i| (i * 7, i)).collect();
        let builder = |pairs: &[(u32, u32)]| {
            let mut b = ShardedBuilder::with_capacity(pairs.len());
            for &(k, v) in pairs {
                b.push(k, v);
            }
            b.build()
        };
        let mut dup = pairs.clone();
        dup.push((14, 2));
        let m = builder(&dup).unwrap();
        assert_eq!(m.len(), 5_000);
        for &(k, v) in &pairs {
            assert_eq!(m.get(&k), Some(&v));
        }
        assert_eq!(m.get(&1), None);
        dup.push((21, 9));
        assert_eq!(builder(&dup).err(), Some(21));
        let empty = builder(&[]).unwrap();
        assert!(empty.is_empty());
    }
}
