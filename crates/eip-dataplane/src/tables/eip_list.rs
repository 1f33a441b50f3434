//! The operator's EIPs as a persistent list: cloning it (each new version of
//! the description starts as a clone of the last) shares every entry, and
//! finding, changing, adding or removing one EIP by address costs O(log n),
//! so a change at 1M EIPs costs what it changes. Serialised as a plain list
//! (the configuration's `[[eips]]`, the state file's `eips`), in order.
//!
//! Entries keep their order: the configuration's, then additions at the end.
//! A removed entry leaves a hole (so the places of the others, and the index,
//! stay), and the holes are squeezed out once they outnumber the entries.

use super::address_index::{AddressIndex, Place};
use super::spec::EipSpec;
use imbl::Vector;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;

/// The EIPs of a [`PopSpec`](super::PopSpec), in order, indexed by address.
///
/// A list read from a file may name an address twice (the table builder
/// reports it); lookups by address find the first entry.
#[derive(Clone, Default)]
pub struct EipList {
    /// Entries in order; `None` where one was removed.
    entries: Vector<Option<EipSpec>>,
    /// Address -> place in `entries` of its first entry: in shards shared
    /// between versions (a change copies one shard of about n / 1024
    /// entries), built at a few tens of ns per entry where a persistent
    /// HAMT took 600 ns (most of a restart's load at 1M EIPs).
    index: AddressIndex,
    len: usize,
}

impl EipList {
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
    pub fn iter(&self) -> impl Iterator<Item = &EipSpec> + '_ {
        self.entries.iter().flatten()
    }

    /// The entries in order, to change in place (an entry's address must not
    /// change: the index would not follow).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut EipSpec> + '_ {
        self.index.touch_all();
        self.entries.iter_mut().flatten()
    }

    /// The first entry.
    pub fn first(&self) -> Option<&EipSpec> {
        self.iter().next()
    }

    /// The entry of `address` (its first). O(log n).
    pub fn by_address(&self, address: IpAddr) -> Option<&EipSpec> {
        let at = self.index.get(address)?;
        self.entries.get(at as usize)?.as_ref()
    }

    /// The entry of `address`, to change (not its address). O(log n); copies
    /// only the path to it, and its index shard (so that
    /// [`changed_since`](Self::changed_since) sees it), when another version
    /// shares them.
    pub fn by_address_mut(&mut self, address: IpAddr) -> Option<&mut EipSpec> {
        let at = self.index.get(address)?;
        self.index.touch(address);
        self.entries.get_mut(at as usize)?.as_mut()
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
    pub fn nth(&self, i: usize) -> Option<&EipSpec> {
        self.iter().nth(i)
    }

    /// Appends `eip` (after an entry of the same address, if any: the table
    /// builder reports the duplicate). O(log n).
    pub fn push(&mut self, eip: EipSpec) {
        let at = place(self.entries.len());
        self.index.claim(eip.address, at);
        self.entries.push_back(Some(eip));
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
            *self = self.iter().cloned().collect();
        }
        gone
    }

    /// Keeps the entries `keep` says to keep.
    pub fn retain(&mut self, mut keep: impl FnMut(&EipSpec) -> bool) {
        *self = self.iter().filter(|e| keep(e)).cloned().collect();
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
            .find(|(_, e)| e.as_ref().is_some_and(|e| e.address == address));
        if let Some((i, _)) = later {
            self.index.insert(address, place(i));
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
        EipList::from(iter.into_iter().collect::<Vec<_>>())
    }
}

impl Extend<EipSpec> for EipList {
    fn extend<I: IntoIterator<Item = EipSpec>>(&mut self, iter: I) {
        for e in iter {
            self.push(e);
        }
    }
}

/// In bulk (a state file or a configuration read at start): the index built
/// shard by shard, keeping the first entry of a duplicated address, as
/// [`EipList::push`] keeps it.
impl From<Vec<EipSpec>> for EipList {
    fn from(eips: Vec<EipSpec>) -> Self {
        let index = AddressIndex::build_keep_first(
            eips.len(),
            eips.iter()
                .enumerate()
                .map(|(at, e)| (e.address, place(at))),
        );
        EipList {
            len: eips.len(),
            entries: eips.into_iter().map(Some).collect(),
            index,
        }
    }
}

impl<'a> IntoIterator for &'a EipList {
    type Item = &'a EipSpec;
    type IntoIter = std::iter::Flatten<
        imbl::vector::Iter<'a, Option<EipSpec>, imbl::shared_ptr::DefaultSharedPtr>,
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().flatten()
    }
}

/// The `i`-th entry. O(n): for tests; code uses [`EipList::by_address`].
impl std::ops::Index<usize> for EipList {
    type Output = EipSpec;
    fn index(&self, i: usize) -> &EipSpec {
        self.nth(i).expect("EipList index out of range")
    }
}

/// The `i`-th entry, to change its fields, never its address (the index
/// would not follow: remove and push instead). O(n): for tests.
impl std::ops::IndexMut<usize> for EipList {
    fn index_mut(&mut self, i: usize) -> &mut EipSpec {
        self.iter_mut().nth(i).expect("EipList index out of range")
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

    fn eip(a: &str) -> EipSpec {
        EipSpec::new(a.parse().unwrap(), "r", None)
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
        assert_eq!(l[1].region, "s");
        assert!(l.by_address("192.0.2.2".parse().unwrap()).is_none());
        // The clone taken before is untouched.
        assert_eq!(addrs(&shared), ["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
        assert_eq!(shared[2].region, "r");
        assert_ne!(l, shared);
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
        let rebuilt: EipList = next.iter().cloned().collect();
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
}
