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
//! ([`Stored::Plain`]; 24 in the list, whose `Option` finds no spare niche in
//! them) and the others as a whole [`EipSpec`] behind a box.
//! Readers get an [`EipSpec`] either way (a `Cow`: borrowed when boxed,
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
    /// Any other EIP.
    Full(Box<EipSpec>),
}

impl Stored {
    fn new(e: EipSpec) -> Stored {
        Stored::plain(&e).unwrap_or_else(|| Stored::Full(Box::new(e)))
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
            Stored::Full(e) => *e,
            plain => plain.spec().into_owned(),
        }
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
            *entry = Stored::Full(Box::new(entry.spec().into_owned()));
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
            Stored::Full(e) => e,
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
    /// Entries in order; `None` where one was removed.
    entries: Vector<Option<Stored>>,
    /// Address -> place in `entries` of its first entry: in shards shared
    /// between versions (a change copies one shard of about n / 1024
    /// entries), built at a few tens of ns per entry where a persistent
    /// HAMT took 600 ns (most of a restart's load at 1M EIPs).
    index: AddressIndex,
    len: usize,
}

impl EipList {
    /// What the list keeps of a plain 1:1 IPv4 EIP (besides its index
    /// entry): 16 bytes, 24 with the `Option` that marks removed entries
    /// (`Stored` has no niche left for it).
    pub const PLAIN_ENTRY_BYTES: usize = std::mem::size_of::<Option<Stored>>();

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
        Iter(self.entries.iter().flatten())
    }

    /// Each entry's address and region, in order, read where they are (no
    /// `EipSpec` assembled for a plain EIP): for the scans of every EIP that
    /// need no more (the table build's passes, the BGP gate's).
    pub fn addresses_and_regions(&self) -> impl Iterator<Item = (IpAddr, &RegionName)> + '_ {
        self.entries.iter().flatten().map(|e| match e {
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
        self.entries.iter_mut().flatten().map(EipMut::new)
    }

    /// The first entry.
    pub fn first(&self) -> Option<Cow<'_, EipSpec>> {
        self.iter().next()
    }

    /// The entry of `address` (its first). O(log n).
    pub fn by_address(&self, address: IpAddr) -> Option<Cow<'_, EipSpec>> {
        let at = self.index.get(address)?;
        self.entries.get(at as usize)?.as_ref().map(Stored::spec)
    }

    /// The entry of `address`, to change (not its address). O(log n); copies
    /// only the path to it, and its index shard (so that
    /// [`changed_since`](Self::changed_since) sees it), when another version
    /// shares them.
    pub fn by_address_mut(&mut self, address: IpAddr) -> Option<EipMut<'_>> {
        let at = self.index.get(address)?;
        self.index.touch(address);
        self.entries.get_mut(at as usize)?.as_mut().map(EipMut::new)
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
        Some(self.entries.iter().take(at as usize).flatten().count())
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
        self.entries.push_back(Some(Stored::new(eip)));
        self.len += 1;
    }

    /// Removes the entry of `address` (its first). O(log n), plus now and then
    /// a squeeze of the holes (amortised O(1)).
    pub fn remove(&mut self, address: IpAddr) -> Option<EipSpec> {
        let at = self.index.remove(address)? as usize;
        let gone = self.entries.set(at, None);
        self.len -= 1;
        if gone.is_some() {
            self.reindex_duplicate(address, at);
        }
        if self.entries.len() > 2 * self.len + 64 {
            *self = EipList::from_stored(self.entries.iter().flatten().cloned().collect());
        }
        gone.map(Stored::into_spec)
    }

    /// Keeps the entries `keep` says to keep.
    pub fn retain(&mut self, mut keep: impl FnMut(&EipSpec) -> bool) {
        let kept = self.entries.iter().flatten().filter(|e| keep(&e.spec()));
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
            .find(|(_, e)| e.as_ref().is_some_and(|e| e.address() == address));
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
            entries: entries.into_iter().map(Some).collect(),
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
pub struct Iter<'a>(
    std::iter::Flatten<imbl::vector::Iter<'a, Option<Stored>, imbl::shared_ptr::DefaultSharedPtr>>,
);

impl<'a> Iterator for Iter<'a> {
    type Item = Cow<'a, EipSpec>;
    fn next(&mut self) -> Option<Cow<'a, EipSpec>> {
        self.0.next().map(Stored::spec)
    }

    /// Skips without assembling what it skips.
    fn nth(&mut self, n: usize) -> Option<Cow<'a, EipSpec>> {
        self.0.nth(n).map(Stored::spec)
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
mod tests {
    use super::*;
    use crate::tables::Protocol;
    use crate::testkit::pop;

    /// A plain EIP (kept packed) when `a` is IPv4.
    fn eip(a: &str) -> EipSpec {
        EipSpec::new(a.parse().unwrap(), "r", Some("10.0.0.1".parse().unwrap()))
    }

    fn addrs(l: &EipList) -> Vec<String> {
        l.iter().map(|e| e.address.to_string()).collect()
    }

    #[test]
    fn keeps_order_and_finds_by_address() {
        let mut l: EipList = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
            .map(eip)
            .into_iter()
            .collect();
        let shared = l.clone();
        assert_eq!(l.remove("192.0.2.2".parse().unwrap()).unwrap().region, "r");
        l.push(eip("192.0.2.9"));
        l.by_address_mut("192.0.2.3".parse().unwrap())
            .unwrap()
            .region = "s".into();
        assert_eq!(addrs(&l), ["192.0.2.1", "192.0.2.3", "192.0.2.9"]);
        assert_eq!(l.len(), 3);
        assert_eq!(l.position("192.0.2.9".parse().unwrap()), Some(2));
        assert_eq!(l.nth(1).unwrap().region, "s");
        assert!(l.by_address("192.0.2.2".parse().unwrap()).is_none());
        // The clone taken before is untouched.
        assert_eq!(addrs(&shared), ["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
        assert_eq!(shared.nth(2).unwrap().region, "r");
        assert_ne!(l, shared);
    }

    fn plain(a: &str, backend: &str) -> EipSpec {
        EipSpec::new(a.parse().unwrap(), "r", Some(backend.parse().unwrap()))
    }

    fn is_plain(l: &EipList, a: &str) -> bool {
        let at = l.index.get(a.parse().unwrap()).unwrap() as usize;
        matches!(l.entries[at], Some(Stored::Plain { .. }))
    }

    #[test]
    fn a_plain_eip_takes_16_bytes_and_reads_back_whole() {
        assert_eq!(std::mem::size_of::<Stored>(), 16);
        assert_eq!(std::mem::size_of::<Option<Stored>>(), 24);
        let one = plain("192.0.2.1", "10.0.0.1");
        let mut with_limits = plain("192.0.2.2", "10.0.0.2");
        with_limits.set_limits(Some(super::super::spec::LimitsSpec {
            in_pps: Some(5),
            ..Default::default()
        }));
        let given = vec![
            one.clone(),
            with_limits.clone(),
            EipSpec::new("192.0.2.3".parse().unwrap(), "r", None),
            plain("2001:db8::1", "10.0.0.4"),
        ];
        let list = EipList::from(given.clone());
        assert!(is_plain(&list, "192.0.2.1"));
        assert!(!is_plain(&list, "192.0.2.2"), "limits: kept whole");
        assert!(!is_plain(&list, "192.0.2.3"), "no backend: kept whole");
        assert!(!is_plain(&list, "2001:db8::1"), "IPv6: kept whole");
        assert_eq!(*list.by_address(one.address).unwrap(), one);
        assert_eq!(*list.nth(1).unwrap(), with_limits);
        let brief: Vec<(IpAddr, String)> = list
            .addresses_and_regions()
            .map(|(a, r)| (a, r.to_string()))
            .collect();
        let whole: Vec<(IpAddr, String)> = given
            .iter()
            .map(|e| (e.address, e.region.to_string()))
            .collect();
        assert_eq!(brief, whole);
        // The same text as the list of whole entries it was made from.
        let whole = Whole { eips: given };
        let text = toml::to_string(&Wrapper { eips: list }).unwrap();
        assert_eq!(text, toml::to_string(&whole).unwrap());
    }

    #[test]
    fn a_changed_eip_is_packed_again_when_still_plain() {
        let mut l = EipList::from(vec![plain("192.0.2.1", "10.0.0.1")]);
        let a = "192.0.2.1".parse().unwrap();
        l.by_address_mut(a).unwrap().backend = Some("10.0.0.9".parse().unwrap());
        assert!(is_plain(&l, "192.0.2.1"));
        assert_eq!(
            l.by_address(a).unwrap().backend,
            Some("10.0.0.9".parse().unwrap())
        );
        // Given a service it is kept whole; without it, plain again.
        let backend = pop::backend([10, 0, 0, 5], None, 1);
        let service = pop::service(Protocol::Tcp, 80, [backend]);
        l.by_address_mut(a).unwrap().services.push(service);
        assert!(!is_plain(&l, "192.0.2.1"));
        assert_eq!(l.by_address(a).unwrap().services.len(), 1);
        l.by_address_mut(a).unwrap().services.clear();
        assert!(is_plain(&l, "192.0.2.1"));
        for mut e in l.iter_mut() {
            e.region = "s".into();
        }
        assert!(is_plain(&l, "192.0.2.1"));
        assert_eq!(l.by_address(a).unwrap().region, "s");
    }

    #[test]
    fn a_duplicate_is_kept_and_found_after_the_first_goes() {
        let mut l = EipList::from(vec![eip("192.0.2.1"), eip("192.0.2.2"), eip("192.0.2.1")]);
        assert_eq!(l.len(), 3);
        assert_eq!(l.position("192.0.2.1".parse().unwrap()), Some(0));
        l.remove("192.0.2.1".parse().unwrap());
        assert_eq!(l.position("192.0.2.1".parse().unwrap()), Some(1));
        l.remove("192.0.2.1".parse().unwrap());
        assert!(!l.contains("192.0.2.1".parse().unwrap()));
        assert_eq!(addrs(&l), ["192.0.2.2"]);
    }

    #[test]
    fn changes_are_told_apart_by_what_the_versions_do_not_share() {
        let base: EipList = (0..5000u32)
            .map(|i| eip(&std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string()))
            .collect();
        let a = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        let mut next = base.clone();
        assert_eq!(next.changed_since(&base, 100), Some(vec![]));
        next.push(eip("192.0.2.9"));
        next.remove(a(7));
        next.by_address_mut(a(42)).unwrap().region = "other".into();
        // Looked at but unchanged: not reported.
        let _ = next.by_address_mut(a(43));
        let mut changed = next.changed_since(&base, 100).unwrap();
        changed.sort();
        let mut want = vec![a(7), a(42), "192.0.2.9".parse().unwrap()];
        want.sort();
        assert_eq!(changed, want);
        // A list rebuilt shares nothing: more than the limit.
        let rebuilt: EipList = next.iter().map(Cow::into_owned).collect();
        assert_eq!(rebuilt.changed_since(&base, 100), None);
        let everything = rebuilt.changed_since(&base, 1_000_000).unwrap();
        assert_eq!(everything.len(), 3, "{everything:?}");
    }

    #[test]
    fn holes_are_squeezed_out() {
        let mut l: EipList = (0..200u32)
            .map(|i| eip(&std::net::Ipv4Addr::from(0xc000_0200 + i).to_string()))
            .collect();
        for i in 0..190u32 {
            l.remove(std::net::Ipv4Addr::from(0xc000_0200 + i).into());
        }
        assert_eq!(l.len(), 10);
        assert!(l.entries.len() <= 2 * l.len() + 64);
        let a: IpAddr = std::net::Ipv4Addr::from(0xc000_0200 + 195).into();
        assert_eq!(l.by_address(a).unwrap().address, a);
        assert_eq!(l.position(a), Some(5));
    }

    #[test]
    fn serialises_as_a_plain_list() {
        let l = EipList::from(vec![eip("192.0.2.1"), eip("2001:db8::1")]);
        let text = toml::to_string(&Wrapper { eips: l.clone() }).unwrap();
        assert_eq!(text.matches("[[eips]]").count(), 2, "{text}");
        let back: Wrapper = toml::from_str(&text).unwrap();
        assert_eq!(back.eips, l);
    }

    #[derive(Serialize, Deserialize)]
    struct Wrapper {
        eips: EipList,
    }

    #[derive(Serialize)]
    struct Whole {
        eips: Vec<EipSpec>,
    }
}
