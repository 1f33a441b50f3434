//! The description's index of EIP addresses: address -> place in the list.
//!
//! IPv4 addresses (nearly all EIPs) sit in the tables' own open-addressed
//! index of 8-byte entries at a load of at most 0.9 (about 10 bytes an EIP
//! after a build); the few IPv6 ones in a sharded hash map, made at the
//! first IPv6 EIP (so that a POP without any copies no shards per version).
//! A hash map of `IpAddr` keys cost 25 bytes a bucket, and at 1M EIPs its
//! shards of about 1,000 entries sat just over a power of two's 7/8 and so
//! at half load: about 50 bytes an EIP.
//! Both parts are copy-on-write per shard, shared between versions.

use super::index_v4::{Index, IndexBuilder};
use super::sharded::{Sharded, ShardedBuilder};
use std::net::{IpAddr, Ipv6Addr};

/// A place in the description's list of EIPs.
pub type Place = u32;

/// Address -> [`Place`], copy-on-write in shards.
#[derive(Debug, Clone, Default)]
pub struct AddressIndex {
    v4: Index<u32, Place>,
    v6: Option<Sharded<Ipv6Addr, Place>>,
}

impl AddressIndex {
    pub fn get(&self, address: IpAddr) -> Option<Place> {
        match address {
            IpAddr::V4(a) => self.v4.get(a.to_bits()),
            IpAddr::V6(a) => self.v6.as_ref()?.get(&a).copied(),
        }
    }

    /// Inserts or replaces; returns the previous place.
    pub fn insert(&mut self, address: IpAddr, at: Place) -> Option<Place> {
        match address {
            IpAddr::V4(a) => self.v4.insert(a.to_bits(), at),
            IpAddr::V6(a) => self.v6.get_or_insert_with(Sharded::default).insert(a, at),
        }
    }

    /// Inserts unless present; returns the present place (index unchanged).
    pub fn claim(&mut self, address: IpAddr, at: Place) -> Option<Place> {
        match address {
            IpAddr::V4(a) => self.v4.claim(a.to_bits(), at),
            IpAddr::V6(a) => self.v6.get_or_insert_with(Sharded::default).claim(a, at),
        }
    }

    pub fn remove(&mut self, address: IpAddr) -> Option<Place> {
        match address {
            IpAddr::V4(a) => self.v4.remove(a.to_bits()),
            IpAddr::V6(a) => self.v6.as_mut()?.remove(&a),
        }
    }

    /// Marks the shard of `address` as changed, so that
    /// [`Self::unshared_keys`] reports it: its entry changed beside the index.
    pub fn touch(&mut self, address: IpAddr) {
        match address {
            IpAddr::V4(a) => self.v4.touch(a.to_bits()),
            IpAddr::V6(a) => {
                if let Some(v6) = &mut self.v6 {
                    v6.touch(&a)
                }
            }
        }
    }

    /// Marks every shard as changed (see [`Self::touch`]).
    pub fn touch_all(&mut self) {
        self.v4.touch_all();
        if let Some(v6) = &mut self.v6 {
            v6.touch_all();
        }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.as_ref().map_or(0, |v6| v6.len())
    }

    /// The addresses of both indexes in the shards they do not share;
    /// `None` when there are more than `limit`.
    pub fn unshared_keys(&self, other: &Self, limit: usize) -> Option<Vec<IpAddr>> {
        let v4 = self.v4.unshared_keys(&other.v4, limit)?;
        let limit = limit.saturating_sub(v4.len());
        let v6 = match (&self.v6, &other.v6) {
            (None, None) => Vec::new(),
            (Some(mine), Some(theirs)) => mine.unshared_keys(theirs, limit)?,
            (Some(mine), None) => mine.unshared_keys(&Sharded::default(), limit)?,
            (None, Some(theirs)) => Sharded::default().unshared_keys(theirs, limit)?,
        };
        Some(
            v4.into_iter()
                .map(|a| IpAddr::from(std::net::Ipv4Addr::from_bits(a)))
                .chain(v6.into_iter().map(IpAddr::from))
                .collect(),
        )
    }

    /// The index of `addresses` in bulk, built shard by shard; an address
    /// that comes twice keeps its first place.
    pub fn build_keep_first(
        count: usize,
        addresses: impl Iterator<Item = (IpAddr, Place)>,
    ) -> Self {
        let mut v4 = IndexBuilder::with_capacity(count);
        let mut v6 = ShardedBuilder::with_capacity(0);
        let mut any_v6 = false;
        for (address, at) in addresses {
            match address {
                IpAddr::V4(a) => v4.push(a.to_bits(), at),
                IpAddr::V6(a) => {
                    v6.push(a, at);
                    any_v6 = true;
                }
            }
        }
        AddressIndex {
            v4: v4.build_keep_first(),
            v6: any_v6.then(|| v6.build_keep_first()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_families_find_claim_and_remove() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let mut index = AddressIndex::build_keep_first(3, [(a, 0), (b, 1), (a, 2)].into_iter());
        assert_eq!(
            (index.get(a), index.get(b), index.len()),
            (Some(0), Some(1), 2)
        );
        assert_eq!(index.claim(b, 5), Some(1));
        assert_eq!(index.insert(a, 7), Some(0));
        assert_eq!(index.remove(b), Some(1));
        assert_eq!(
            (index.get(a), index.get(b), index.len()),
            (Some(7), None, 1)
        );
    }

    #[test]
    fn unshared_keys_are_what_changed_or_was_touched() {
        let addr = |i: u32| IpAddr::from(std::net::Ipv4Addr::from_bits(0x0a00_0000 + i));
        let base = AddressIndex::build_keep_first(5000, (0..5000).map(|i| (addr(i), i)));
        let mut next = base.clone();
        assert_eq!(next.unshared_keys(&base, 10), Some(vec![]));
        next.remove(addr(7));
        next.touch(addr(42));
        let v6: IpAddr = "2001:db8::9".parse().unwrap();
        next.insert(v6, 9000);
        let keys = next.unshared_keys(&base, 100).unwrap();
        for k in [addr(7), addr(42), v6] {
            assert!(keys.contains(&k), "{k} not in {keys:?}");
        }
        // Each key once, and only those of the three shards.
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len());
        assert!(keys.len() < 30, "{}", keys.len());
        assert_eq!(next.unshared_keys(&base, 1), None);
    }
}
