//! The returns' index: (region, IPv4 backend) -> the EIP that owns the backend
//! there ([`OwnerEntry`]), as one [`Index`] per region keyed by the backend
//! alone. A return knows its region (from its tunnel) before it looks up its
//! source, and the entries are 12 bytes: a key holding the region made them
//! 16 (20 bytes an EIP at build load, 15 now).
//!
//! A region's index is shared between snapshots until a change touches that
//! region, and then its shards are, as in any [`Index`].

use super::entries::OwnerEntry;
use super::index_v4::{Index, IndexBuilder};
use super::RegionId;
use std::sync::Arc;

type RegionIndex = Index<u32, OwnerEntry>;

/// (region, IPv4 backend address in host order) -> the EIP that owns it there.
#[derive(Debug, Clone, Default)]
pub struct OwnerIndexV4 {
    /// By region; `None` for a region where no EIP has an IPv4 backend.
    regions: Vec<Option<Arc<RegionIndex>>>,
}

impl OwnerIndexV4 {
    /// The owner of `backend` in `region`.
    #[inline(always)]
    pub fn get(&self, region: RegionId, backend: u32) -> Option<OwnerEntry> {
        self.regions
            .get(usize::from(region))?
            .as_ref()?
            .get(backend)
    }

    /// `region`'s index, made (empty) or copied (if a snapshot shares it) first.
    fn region_mut(&mut self, region: RegionId) -> &mut RegionIndex {
        let r = usize::from(region);
        if self.regions.len() <= r {
            self.regions.resize(r + 1, None);
        }
        Arc::make_mut(self.regions[r].get_or_insert_with(Default::default))
    }

    /// Makes `owner` the owner of `backend` in `region` unless some EIP is;
    /// returns the present owner if any (index unchanged).
    pub fn claim(
        &mut self,
        region: RegionId,
        backend: u32,
        owner: OwnerEntry,
    ) -> Option<OwnerEntry> {
        if let Some(present) = self.get(region, backend) {
            return Some(present);
        }
        self.region_mut(region).insert(backend, owner);
        None
    }

    pub fn remove(&mut self, region: RegionId, backend: u32) -> Option<OwnerEntry> {
        self.get(region, backend)?;
        self.region_mut(region).remove(backend)
    }

    /// Every (region, backend, owner), in no particular order (tests).
    #[cfg(test)]
    pub fn entries(&self) -> impl Iterator<Item = (RegionId, u32, OwnerEntry)> + '_ {
        self.regions.iter().enumerate().flat_map(|(r, index)| {
            index
                .iter()
                .flat_map(|i| i.entries())
                .map(move |(backend, owner)| (r as RegionId, backend, owner))
        })
    }

    /// Heap bytes of every region's index (shared ones count in full).
    pub fn heap_bytes(&self) -> usize {
        self.regions.len() * 8
            + self
                .regions
                .iter()
                .flatten()
                .map(|i| 16 + std::mem::size_of::<RegionIndex>() + i.heap_bytes())
                .sum::<usize>()
    }

    /// How many shards `self` and `other` share, over all regions (tests).
    #[cfg(test)]
    pub fn shared_shards(&self, other: &Self) -> usize {
        self.regions
            .iter()
            .zip(other.regions.iter())
            .map(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => a.shared_shards(b),
                _ => 0,
            })
            .sum()
    }
}

/// Entries for a new [`OwnerIndexV4`], partitioned by region and shard as they
/// come (see [`IndexBuilder`]).
#[derive(Debug)]
pub struct OwnerIndexV4Builder {
    /// Entries to expect in one region (all of them shared evenly).
    each: usize,
    regions: Vec<Option<IndexBuilder<u32, OwnerEntry>>>,
}

impl OwnerIndexV4Builder {
    /// A builder for about `total` entries over `regions` regions.
    pub fn with_capacity(total: usize, regions: usize) -> Self {
        OwnerIndexV4Builder {
            each: total.div_ceil(regions.max(1)),
            regions: Vec::new(),
        }
    }

    #[inline]
    pub fn push(&mut self, region: RegionId, backend: u32, owner: OwnerEntry) {
        let r = usize::from(region);
        if self.regions.len() <= r {
            self.regions.resize_with(r + 1, || None);
        }
        let each = self.each;
        self.regions[r]
            .get_or_insert_with(|| IndexBuilder::with_capacity(each))
            .push(backend, owner);
    }

    /// The index.
    ///
    /// # Errors
    /// The first (region, backend) pushed twice with different owners.
    pub fn build(self) -> Result<OwnerIndexV4, (RegionId, u32)> {
        let mut regions = Vec::with_capacity(self.regions.len());
        for (r, builder) in self.regions.into_iter().enumerate() {
            regions.push(match builder {
                Some(b) => Some(Arc::new(b.build().map_err(|k| (r as RegionId, k))?)),
                None => None,
            });
        }
        Ok(OwnerIndexV4 { regions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn owner(slot: u32) -> OwnerEntry {
        OwnerEntry::new(slot, Some(Ipv4Addr::from(0xC000_0200 + slot)))
    }

    #[test]
    fn an_entry_is_12_bytes() {
        assert_eq!(std::mem::size_of::<(u32, OwnerEntry)>(), 12);
    }

    #[test]
    fn a_backend_is_owned_per_region() {
        let mut o = OwnerIndexV4::default();
        assert_eq!(o.claim(1, 0x0A00_0001, owner(5)), None);
        // The same address in another region is another backend.
        assert_eq!(o.claim(0, 0x0A00_0001, owner(6)), None);
        assert_eq!(o.claim(1, 0x0A00_0001, owner(7)), Some(owner(5)));
        assert_eq!(o.get(1, 0x0A00_0001), Some(owner(5)));
        assert_eq!(o.get(0, 0x0A00_0001), Some(owner(6)));
        assert_eq!(o.get(2, 0x0A00_0001), None, "a region beyond the others");
        assert_eq!(o.remove(1, 0x0A00_0001), Some(owner(5)));
        assert_eq!(o.get(1, 0x0A00_0001), None);
        assert_eq!(o.remove(1, 0x0A00_0001), None);
        let mut all: Vec<_> = o.entries().collect();
        all.sort_by_key(|e| e.0);
        assert_eq!(all, vec![(0, 0x0A00_0001, owner(6))]);
    }

    #[test]
    fn a_change_copies_only_its_regions_index() {
        let mut b = OwnerIndexV4Builder::with_capacity(2000, 2);
        for i in 0..1000 {
            b.push(0, 0x0A00_0000 + i, owner(i));
            b.push(3, 0x0A00_0000 + i, owner(1000 + i));
        }
        let before = b.build().unwrap();
        assert_eq!(before.get(3, 0x0A00_0007), Some(owner(1007)));
        assert_eq!(
            before.get(1, 0x0A00_0007),
            None,
            "a region without backends"
        );
        let mut after = before.clone();
        after.claim(3, 0x0B00_0000, owner(9));
        let all = before.shared_shards(&before);
        assert_eq!(after.shared_shards(&before), all - 1, "one shard copied");
        assert!(Arc::ptr_eq(
            after.regions[0].as_ref().unwrap(),
            before.regions[0].as_ref().unwrap()
        ));
    }

    #[test]
    fn a_backend_pushed_twice_for_two_owners_is_refused() {
        let mut b = OwnerIndexV4Builder::with_capacity(2, 1);
        b.push(2, 0x0A00_0001, owner(1));
        b.push(2, 0x0A00_0001, owner(2));
        assert_eq!(b.build().err(), Some((2, 0x0A00_0001)));
    }
}
