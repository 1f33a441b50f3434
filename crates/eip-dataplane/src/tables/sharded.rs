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
        if self.get(key).is_none() {
            return None;
        }
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
    }
}
