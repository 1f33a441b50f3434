//! The operator's EIPs as a persistent list: cloning it (each new version of
//! the description starts as a clone of the last) shares every entry, and
//! finding, changing, adding or removing one EIP by address costs O(log n),
//! so a change at 1M EIPs costs what it changes. Serialised as a plain list
//! (the configuration's `[[eips]]`, the state file's `eips`), in order.
//!
//! Entries keep their order: the configuration's, then additions at the end.
//! A removed entry leaves a hole (so the places of the others, and the index,
//! stay), and the holes are squeezed out once they outnumber the entries.
//!
//! Nearly every EIP of a large POP is a plain 1:1 IPv4 EIP (an IPv4 address,
//! an IPv4 backend, a region, nothing else): the list keeps those in 16 bytes
//! ([`Stored::Plain`]) and the others as a whole [`EipSpec`] behind a shared
//! pointer. A removed entry's hole is a pointer to one process-wide spec
//! ([`hole`]): an `Option` would make every entry 24 bytes (`Stored` has no
//! niche left for it).
//! Readers get an [`EipSpec`] either way (a `Cow`: borrowed when whole,
//! assembled when plain), writers an [`EipMut`] that keeps an EIP that became
//! plain in 16 bytes again.

use super::address_index::{AddressIndex, Place};
use super::region_name::RegionName;
use super::spec::EipSpec;
use imbl::Vector;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, OnceLock};
use thin_vec::ThinVec;

/// One entry as the list keeps it.
#[derive(Clone)]
enum Stored {
    /// A plain 1:1 IPv4 EIP: no services, no limits, check or access list.
    /// 16 bytes where an `EipSpec` takes 64.
    Plain {
        address: Ipv4Addr,
        backend: Ipv4Addr,
        region: RegionName,
    },
    /// Any other EIP (shared, so copying a chunk of the list when a version
    /// changes it copies no EIP); or the hole of a removed one ([`hole`]).
    Full(Arc<EipSpec>),
}

/// What a removed entry holds until the holes are squeezed out: one spec for
/// all, told apart by its address in memory (no EIP is it).
fn hole() -> &'static Arc<EipSpec> {
    static HOLE: OnceLock<Arc<EipSpec>> = OnceLock::new();
    HOLE.get_or_init(|| Arc::new(EipSpec::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), "", None)))
}

impl Stored {
    fn new(e: EipSpec) -> Stored {
        Stored::plain(&e).unwrap_or_else(|| Stored::Full(Arc::new(e)))
    }

    /// `e` in 16 bytes, when it is a plain 1:1 IPv4 EIP.
    fn plain(e: &EipSpec) -> Option<Stored> {
        let extras = e.limits().is_some() || e.check().is_some() || e.acl().is_some();
        match (e.address, e.backend) {
            (IpAddr::V4(address), Some(IpAddr::V4(backend)))
                if e.services.is_empty() && !extras =>
            {
                Some(Stored::Plain {
                    address,
                    backend,
                    region: e.region.clone(),
                })
            }
            _ => None,
        }
    }

    fn spec(&self) -> Cow<'_, EipSpec> {
        match self {
            Stored::Plain {
                address,
                backend,
                region,
            } => Cow::Owned(EipSpec {
                address: IpAddr::V4(*address),
                region: region.clone(),
                backend: Some(IpAddr::V4(*backend)),
                services: ThinVec::new(),
                extras: None,
            }),
            Stored::Full(e) => Cow::Borrowed(e),
        }
    }

    fn into_spec(self) -> EipSpec {
        match self {
            Stored::Full(e) => Arc::unwrap_or_clone(e),
            plain => plain.spec().into_owned(),
        }
    }

    fn is_hole(&self) -> bool {
        matches!(self, Stored::Full(e) if Arc::ptr_eq(e, hole()))
    }

    /// `Some` unless a hole.
    fn entry(&self) -> Option<&Stored> {
        (!self.is_hole()).then_some(self)
    }

    fn address(&self) -> IpAddr {
        match self {
            Stored::Plain { address, .. } => IpAddr::V4(*address),
            Stored::Full(e) => e.address,
        }
    }
}

/// An entry of an [`EipList`] to change in place (its fields, never its
/// address: the index would not follow; remove and push instead). A plain
/// entry is unpacked into a whole [`EipSpec`] for the change and packed again
/// when the guard drops, if it is still plain.
pub struct EipMut<'a> {
    /// Always [`Stored::Full`] while the guard lives.
    entry: &'a mut Stored,
}

impl<'a> EipMut<'a> {
    fn new(entry: &'a mut Stored) -> Self {
        if let Stored::Plain { .. } = entry {
            *entry = Stored::Full(Arc::new(entry.spec().into_owned()));
        }
        EipMut { entry }
    }
}

impl Deref for EipMut<'_> {
    type Target = EipSpec;
    fn deref(&self) -> &EipSpec {
        match &*self.entry {
            Stored::Full(e) => e,
            Stored::Plain { .. } => unreachable!("unpacked by EipMut::new"),
        }
    }
}

impl DerefMut for EipMut<'_> {
    fn deref_mut(&mut self) -> &mut EipSpec {
        match self.entry {
            // Copied first if another version of the list shares it.
            Stored::Full(e) => Arc::make_mut(e),
            Stored::Plain { .. } => unreachable!("unpacked by EipMut::new"),
        }
    }
}

impl Drop for EipMut<'_> {
    fn drop(&mut self) {
        if let Some(plain) = Stored::plain(self) {
            *self.entry = plain;
        }
    }
}

impl fmt::Debug for EipMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        EipSpec::fmt(self, f)
    }
}

/// The EIPs of a [`PopSpec`](super::PopSpec), in order, indexed by address.
///
/// A list read from a file may name an address twice (the table builder
/// reports it); lookups by address find the first entry.
#[derive(Clone, Default)]
pub struct EipList {
    /// Entries in order; a [`hole`] where one was removed.
    entries: Vector<Stored>,
    /// Address -> place in `entries` of its first entry: in shards shared
    /// between versions (a change copies one shard of about n / 1024
    /// entries), built at a few tens of ns per entry where a persistent
    /// HAMT took 600 ns (most of a restart's load at 1M EIPs).
    index: AddressIndex,
    len: usize,
}

impl EipList {
    /// What the list keeps of a plain 1:1 IPv4 EIP (besides its index
    /// entry): 16 bytes.
    pub const PLAIN_ENTRY_BYTES: usize = std::mem::size_of::<Stored>();

    pub fn new() -> Self {
        EipList::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.entries.iter())
    }

    /// Each entry's address and region, in order, read where they are (no
    /// `EipSpec` assembled for a plain EIP): for the scans of every EIP that
    /// need no more (the table build's passes, the BGP gate's).
    pub fn addresses_and_regions(&self) -> impl Iterator<Item = (IpAddr, &RegionName)> + '_ {
        self.entries
            .iter()
            .filter_map(Stored::entry)
            .map(|e| match e {
                Stored::Plain {
                    address, region, ..
                } => (IpAddr::V4(*address), region),
                Stored::Full(e) => (e.address, &e.region),
            })
    }

    /// The entries in order, to change in place (an entry's address must not
    /// change: the index would not follow).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = EipMut<'_>> + '_ {
        self.index.touch_all();
        let entries = self.entries.iter_mut().filter(|e| !e.is_hole());
        entries.map(EipMut::new)
    }

    /// The first entry.
    pub fn first(&self) -> Option<Cow<'_, EipSpec>> {
        self.iter().next()
    }

    /// The entry of `address` (its first). O(log n).
    pub fn by_address(&self, address: IpAddr) -> Option<Cow<'_, EipSpec>> {
        let at = self.index.get(address)?;
        self.entries.get(at as usize)?.entry().map(Stored::spec)
    }

    /// The entry of `address`, to change (not its address). O(log n); copies
    /// only the path to it, and its index shard (so that
    /// [`changed_since`](Self::changed_since) sees it), when another version
    /// shares them.
    pub fn by_address_mut(&mut self, address: IpAddr) -> Option<EipMut<'_>> {
        let at = self.index.get(address)?;
        self.index.touch(address);
        let entry = self.entries.get_mut(at as usize)?;
        (!entry.is_hole()).then(|| EipMut::new(entry))
    }

    /// The addresses whose entries may differ between this list and `old`, a
    /// version it was derived from (added, removed or changed): those in the
    /// index shards the two do not share, so the cost is what changed, not
    /// the list. `None` when there are more than `limit`.
    pub fn changed_since(&self, old: &EipList, limit: usize) -> Option<Vec<IpAddr>> {
        let keys = self.index.unshared_keys(&old.index, limit)?;
        Some(
            keys.into_iter()
                .filter(|&a| self.by_address(a) != old.by_address(a))
                .collect(),
        )
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        self.index.get(address).is_some()
    }

    /// Where `address` first is in the list (`eips[i]` in messages). O(n):
    /// for error messages only.
    pub fn position(&self, address: IpAddr) -> Option<usize> {
        let at = self.index.get(address)?;
        Some(
            self.entries
                .iter()
                .take(at as usize)
                .filter(|e| !e.is_hole())
                .count(),
        )
    }

    /// The `i`-th entry. O(n): for error messages and tests.
    pub fn nth(&self, i: usize) -> Option<Cow<'_, EipSpec>> {
        self.iter().nth(i)
    }

    /// The `i`-th entry, to change (not its address). O(n): for tests.
    pub fn nth_mut(&mut self, i: usize) -> Option<EipMut<'_>> {
        self.iter_mut().nth(i)
    }

    /// Appends `eip` (after an entry of the same address, if any: the table
    /// builder reports the duplicate). O(log n).
    pub fn push(&mut self, eip: EipSpec) {
        let at = place(self.entries.len());
        self.index.claim(eip.address, at);
        self.entries.push_back(Stored::new(eip));
        self.len += 1;
    }

    /// Removes the entry of `address` (its first). O(log n), plus now and then
    /// a squeeze of the holes (amortised O(1)).
    pub fn remove(&mut self, address: IpAddr) -> Option<EipSpec> {
        let at = self.index.remove(address)? as usize;
        let gone = self.entries.set(at, Stored::Full(hole().clone()));
        self.len -= 1;
        let gone = (!gone.is_hole()).then_some(gone);
        if gone.is_some() {
            self.reindex_duplicate(address, at);
        }
        if self.entries.len() > 2 * self.len + 64 {
            let kept = self.entries.iter().filter_map(Stored::entry);
            *self = EipList::from_stored(kept.cloned().collect());
        }
        gone.map(Stored::into_spec)
    }

    /// Keeps the entries `keep` says to keep.
    pub fn retain(&mut self, mut keep: impl FnMut(&EipSpec) -> bool) {
        let kept = self.entries.iter().filter_map(Stored::entry);
        let kept = kept.filter(|e| keep(&e.spec()));
        *self = EipList::from_stored(kept.cloned().collect());
    }

    /// After the first entry of `address` (at `at`) left: a later entry of the
    /// same address (a duplicate, only in a list read from a file) takes its
    /// place in the index. Costs nothing unless the address had a duplicate:
    /// the scan stops at once when the entry count says there is none.
    fn reindex_duplicate(&mut self, address: IpAddr, at: usize) {
        if self.index.len() == self.len {
            return;
        }
        let later = self
            .entries
            .iter()
            .enumerate()
            .skip(at + 1)
            .find(|(_, e)| !e.is_hole() && e.address() == address);
        if let Some((i, _)) = later {
            self.index.insert(address, place(i));
        }
    }

    /// In bulk: the index built shard by shard, keeping the first entry of a
    /// duplicated address, as [`EipList::push`] keeps it.
    fn from_stored(entries: Vec<Stored>) -> Self {
        let index = AddressIndex::build_keep_first(
            entries.len(),
            entries
                .iter()
                .enumerate()
                .map(|(at, e)| (e.address(), place(at))),
        );
        EipList {
            len: entries.len(),
            entries: entries.into_iter().collect(),
            index,
        }
    }
}

/// A place in [`EipList::entries`]: 4 bytes, not a `usize` (`u32::MAX`
/// marks a free entry of the index).
fn place(at: usize) -> Place {
    Place::try_from(at)
        .ok()
        .filter(|&p| p != Place::MAX)
        .expect("an EIP list holds fewer than 2^32 - 1 entries")
}

impl FromIterator<EipSpec> for EipList {
    fn from_iter<I: IntoIterator<Item = EipSpec>>(iter: I) -> Self {
        EipList::from_stored(iter.into_iter().map(Stored::new).collect())
    }
}

impl Extend<EipSpec> for EipList {
    fn extend<I: IntoIterator<Item = EipSpec>>(&mut self, iter: I) {
        for e in iter {
            self.push(e);
        }
    }
}

/// In bulk (a state file or a configuration read at start).
impl From<Vec<EipSpec>> for EipList {
    fn from(eips: Vec<EipSpec>) -> Self {
        eips.into_iter().collect()
    }
}

/// The entries of an [`EipList`] in order ([`EipList::iter`]).
pub struct Iter<'a>(imbl::vector::Iter<'a, Stored, imbl::shared_ptr::DefaultSharedPtr>);

impl<'a> Iterator for Iter<'a> {
    type Item = Cow<'a, EipSpec>;
    fn next(&mut self) -> Option<Cow<'a, EipSpec>> {
        self.0.find(|e| !e.is_hole()).map(Stored::spec)
    }

    /// Skips without assembling what it skips.
    fn nth(&mut self, n: usize) -> Option<Cow<'a, EipSpec>> {
        self.0
            .by_ref()
            .filter(|e| !e.is_hole())
            .nth(n)
            .map(Stored::spec)
    }
}

impl<'a> IntoIterator for &'a EipList {
    type Item = Cow<'a, EipSpec>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl PartialEq for EipList {
    fn eq(&self, other: &Self) -> bool {
        self.entries.ptr_eq(&other.entries)
            || (self.len == other.len && self.iter().eq(other.iter()))
    }
}

impl fmt::Debug for EipList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for EipList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for EipList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<EipSpec>::deserialize(d).map(EipList::from)
    }
}

#[cfg(test)]
mod tests;
