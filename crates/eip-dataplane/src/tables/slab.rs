//! EIP records by stable slot, in copy-on-write chunks.
//!
//! An EIP keeps its slot ([`EipId`]) for as long as it exists, across versions:
//! per-EIP counters are indexed by it and survive a table change. A removed EIP's
//! slot goes on a free list and is given to a later EIP, with a larger
//! [`Eip::epoch`], so that counts kept for the slot's previous EIP can be told
//! apart.
//!
//! # Record layout
//!
//! A slot holds a 16-byte [`Record`]: the IPv4 address and 1:1 IPv4 backend
//! inline, region, flags and epoch. An EIP that is IPv6 or has services keeps
//! those parts in a side table by slot ([`Extra`], allocated per chunk); a 1:1 IPv4 EIP, the
//! common case, is the record alone. Lookups return an [`Eip`] view assembled
//! from the record (and its extra part, if flagged). What the fast paths read
//! of a record is copied into the IPv4 index entries too ([`EipEntry`],
//! [`super::OwnerEntry`]): the lookup's cache line then holds it.

use super::acl::Acl;
use super::entries::EipEntry;
use super::limits::Limits;
use super::{EipId, RegionId, Service};
use rustc_hash::FxHashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Slots per chunk: a change copies one chunk of this many records.
pub const CHUNK: usize = 1024;

/// A slot holds a live EIP.
pub(super) const LIVE: u16 = 1;
/// `backend` holds the EIP's 1:1 IPv4 backend.
pub(super) const V4_BACKEND: u16 = 2;
/// The address, backend and services are in [`EipSlab::extras`].
pub(super) const EXTRA: u16 = 4;
/// The EIP has caps of its own in [`EipSlab::limits`].
const LIMITED: u16 = 8;
/// The EIP has an access list in [`EipSlab::acls`].
pub(super) const FILTERED: u16 = 16;

/// One slot: 16 bytes, no `Option` (a free slot has `LIVE` clear and keeps its
/// epoch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Record {
    /// IPv4 address (host order), unless `EXTRA`.
    address: u32,
    /// IPv4 1:1 backend (host order) when `V4_BACKEND`.
    backend: u32,
    region: RegionId,
    flags: u16,
    epoch: u32,
}

/// What a slot's record cannot hold: an IPv6 address or backend, services.
#[derive(Debug, Clone)]
pub(super) struct Extra {
    address: IpAddr,
    backend: Option<IpAddr>,
    services: Arc<[Service]>,
}

/// The extra parts of one chunk's slots, by slot: 8 bytes a slot (8 KB for a
/// chunk with any), the parts themselves behind their own `Arc`, shared by
/// the copies a change makes of the chunk. (Parts held in place would cost
/// 56 KB for every chunk holding one service EIP.)
type ChunkExtras = Vec<Option<Arc<Extra>>>;

/// An EIP and its targets, as looked up in a snapshot (a view of its record).
#[derive(Debug, Clone, Copy)]
pub struct Eip<'a> {
    pub address: IpAddr,
    pub region: RegionId,
    /// Target of traffic that no service matches.
    pub backend: Option<IpAddr>,
    /// The EIP's services (empty for a 1:1 EIP).
    pub services: &'a [Service],
    /// Incarnation of the slot: larger for each EIP that takes the slot after
    /// another left it; counts kept for a slot with another epoch are not this
    /// EIP's.
    pub epoch: u32,
}

/// An EIP to store with [`EipSlab::put`].
#[derive(Debug, Clone)]
pub(super) struct NewEip {
    pub address: IpAddr,
    pub region: RegionId,
    pub backend: Option<IpAddr>,
    pub services: Arc<[Service]>,
    /// Its own caps ([`Limits::INHERIT`] when it has none).
    pub limits: Limits,
    /// Its compiled access list, if it has one.
    pub acl: Option<Arc<Acl>>,
}

/// Chunk generations ([`EipSlab`]): from 1, unique in the process, so that no
/// two versions of a chunk ever share one (0 stands for "never seen").
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// The EIP records of a snapshot, indexed by slot; chunks are shared between
/// snapshots until one changes them.
#[derive(Debug, Clone, Default)]
pub struct EipSlab {
    chunks: Vec<Arc<Vec<Record>>>,
    /// Per chunk, a generation drawn from [`GENERATIONS`] whenever the chunk
    /// changes: equal generations mean equal records, in any two snapshots
    /// (a worker finds what changed since it last adopted:
    /// [`EipSlab::for_each_changed`]).
    generations: Vec<u64>,
    /// Parts of EIPs that are IPv6 or have services: per chunk of records,
    /// the chunk's extras by slot, allocated for chunks that hold some (a
    /// POP of 1:1 IPv4 EIPs allocates none). Indexing, not hashing: ingress
    /// of a service finds its services in four loads.
    extras: Vec<Option<Arc<ChunkExtras>>>,
    /// Caps of EIPs that have their own (few, usually), by slot.
    limits: Arc<FxHashMap<EipId, Limits>>,
    /// Access lists of EIPs that have one, by slot.
    acls: Arc<FxHashMap<EipId, Arc<Acl>>>,
    /// Slots below `next` that are free, reused last-freed first.
    free: Arc<Vec<EipId>>,
    /// Slots at or above `next` have never been used.
    next: u32,
    len: usize,
}

impl EipSlab {
    /// An empty slab with room for `n` EIPs before it reallocates its chunk list.
    pub fn with_capacity(n: usize) -> Self {
        EipSlab {
            chunks: Vec::with_capacity(n.div_ceil(CHUNK)),
            generations: Vec::with_capacity(n.div_ceil(CHUNK)),
            ..Default::default()
        }
    }

    /// Live EIPs.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One more than the largest slot ever handed out: the length per-EIP counter
    /// arrays need.
    pub fn slot_capacity(&self) -> usize {
        self.next as usize
    }

    #[inline(always)]
    fn record(&self, slot: EipId) -> Option<&Record> {
        let s = slot as usize;
        self.chunks.get(s / CHUNK)?.get(s % CHUNK)
    }

    /// Starts loading `slot`'s record without waiting for it (a hint).
    #[inline(always)]
    pub fn prefetch(&self, slot: EipId) {
        let s = slot as usize;
        if let Some(chunk) = self.chunks.get(s / CHUNK) {
            prefetch_index::prefetch_index(chunk.as_slice(), s % CHUNK);
        }
    }

    /// The record in `slot`, if an EIP lives there.
    #[inline(always)]
    pub fn get(&self, slot: EipId) -> Option<Eip<'_>> {
        let r = self.record(slot).filter(|r| r.flags & LIVE != 0)?;
        Some(self.view(slot, r))
    }

    /// The EIP in `slot`.
    ///
    /// # Panics
    /// If no EIP lives there (slots come from lookups of the same snapshot).
    #[inline(always)]
    pub fn at(&self, slot: EipId) -> Eip<'_> {
        match self.get(slot) {
            Some(e) => e,
            None => panic!("no EIP in slot {slot}"),
        }
    }

    /// The caps of the EIP in `slot` when it has its own (see
    /// [`super::limits`]); one flag test of its record otherwise.
    #[inline(always)]
    pub fn limits(&self, slot: EipId) -> Option<&Limits> {
        let r = self.record(slot)?;
        if r.flags & LIMITED == 0 {
            return None;
        }
        self.limits.get(&slot)
    }

    /// The access list of the EIP in `slot`, if it has one (see
    /// [`super::acl`]); one flag test of its record otherwise.
    #[inline(always)]
    pub fn acl(&self, slot: EipId) -> Option<&Arc<Acl>> {
        let r = self.record(slot)?;
        if r.flags & FILTERED == 0 {
            return None;
        }
        self.acls.get(&slot)
    }

    /// The EIPs that have an access list, by slot (any order).
    pub fn acls(&self) -> impl Iterator<Item = (EipId, &Arc<Acl>)> + '_ {
        self.acls.iter().map(|(&s, a)| (s, a))
    }

    /// Whether `self` and `other` hold the same access lists (one shared
    /// map: nothing changed between them).
    pub fn same_acls(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.acls, &other.acls)
    }

    /// How many EIPs have caps of their own.
    pub fn limited(&self) -> usize {
        self.limits.len()
    }

    /// The EIPs that have caps of their own, by slot (any order).
    pub fn own_limits(&self) -> impl Iterator<Item = (EipId, &Limits)> + '_ {
        self.limits.iter().map(|(&s, l)| (s, l))
    }

    /// Whether `self` and `other` hold the same caps (one shared map).
    pub fn same_limits(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.limits, &other.limits)
    }

    /// Epoch of `slot` (0 for a slot never used): see [`Eip::epoch`].
    pub fn epoch(&self, slot: EipId) -> u32 {
        self.record(slot).map_or(0, |r| r.epoch)
    }

    /// The index entry of the EIP in `slot` as its record stands (an empty
    /// slot's: no flags).
    pub fn entry(&self, slot: EipId) -> EipEntry {
        let r = self.record(slot).copied().unwrap_or_default();
        EipEntry::from_record(slot, r.backend, r.region, r.flags)
    }

    /// The access list of the EIP in `slot`, without the record's flag test:
    /// for a caller that found [`EipEntry::filtered`] true.
    #[inline]
    pub fn acl_of(&self, slot: EipId) -> Option<&Arc<Acl>> {
        self.acls.get(&slot)
    }

    /// The extra part of `slot`, if it has one.
    #[inline(always)]
    fn extra(&self, slot: EipId) -> Option<&Extra> {
        let s = slot as usize;
        self.extras
            .get(s / CHUNK)?
            .as_ref()?
            .get(s % CHUNK)?
            .as_deref()
    }

    /// Sets (or with `None` clears) the extra part of `slot`; a chunk left
    /// without any is freed.
    fn set_extra(&mut self, slot: EipId, extra: Option<Extra>) {
        let (c, i) = (slot as usize / CHUNK, slot as usize % CHUNK);
        if self.extras.len() <= c {
            if extra.is_none() {
                return;
            }
            self.extras.resize(c + 1, None);
        }
        let chunk = &mut self.extras[c];
        if chunk.is_none() && extra.is_none() {
            return;
        }
        let parts = Arc::make_mut(chunk.get_or_insert_with(|| Arc::new(vec![None; CHUNK])));
        parts[i] = extra.map(Arc::new);
        if parts.iter().all(Option::is_none) {
            *chunk = None;
        }
    }

    /// The services of the EIP in `slot` (empty for one without): for the
    /// fast path, which knows from the index entry that the EIP is not a
    /// plain 1:1 one and needs no [`Eip`] view.
    #[inline(always)]
    pub fn services(&self, slot: EipId) -> &[Service] {
        self.extra(slot).map_or(&[], |x| &x.services)
    }

    #[inline(always)]
    fn view(&self, slot: EipId, r: &Record) -> Eip<'_> {
        if r.flags & EXTRA != 0 {
            if let Some(x) = self.extra(slot) {
                return Eip {
                    address: x.address,
                    region: r.region,
                    backend: x.backend,
                    services: &x.services,
                    epoch: r.epoch,
                };
            }
        }
        Eip {
            address: IpAddr::V4(Ipv4Addr::from(r.address)),
            region: r.region,
            backend: (r.flags & V4_BACKEND != 0).then(|| IpAddr::V4(Ipv4Addr::from(r.backend))),
            services: &[],
            epoch: r.epoch,
        }
    }

    /// Live EIPs with their slots, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (EipId, Eip<'_>)> + '_ {
        self.chunks.iter().enumerate().flat_map(move |(c, chunk)| {
            chunk.iter().enumerate().filter_map(move |(i, r)| {
                let slot = (c * CHUNK + i) as EipId;
                (r.flags & LIVE != 0).then(|| (slot, self.view(slot, r)))
            })
        })
    }

    /// A free slot (the last freed, else a new one), now taken.
    pub(super) fn allocate(&mut self) -> EipId {
        if !self.free.is_empty() {
            if let Some(slot) = Arc::make_mut(&mut self.free).pop() {
                return slot;
            }
        }
        let slot = self.next;
        self.next += 1;
        slot
    }

    /// Takes a specific never-used or free slot (rebuilds that keep slots).
    pub(super) fn reserve(&mut self, slot: EipId) {
        if slot >= self.next {
            let free = Arc::make_mut(&mut self.free);
            free.extend(self.next..slot);
            self.next = slot + 1;
        } else if let Some(pos) = self.free.iter().position(|&s| s == slot) {
            Arc::make_mut(&mut self.free).swap_remove(pos);
        }
    }

    /// Counts slots below `next` as used (free ones go on the free list): a
    /// rebuild keeps the slot capacity of the snapshot before it.
    pub(super) fn grow_to(&mut self, next: u32) {
        if next > self.next {
            Arc::make_mut(&mut self.free).extend((self.next..next).rev());
            self.next = next;
        }
    }

    /// Sets the epoch of `slot` (a rebuild carrying epochs over).
    pub(super) fn set_epoch(&mut self, slot: EipId, epoch: u32) {
        self.record_mut(slot).epoch = epoch;
    }

    fn record_mut(&mut self, slot: EipId) -> &mut Record {
        let s = slot as usize;
        while self.chunks.len() <= s / CHUNK {
            self.chunks.push(Arc::new(vec![Record::default(); CHUNK]));
            self.generations.push(0);
        }
        self.generations[s / CHUNK] = GENERATIONS.fetch_add(1, Ordering::Relaxed);
        &mut Arc::make_mut(&mut self.chunks[s / CHUNK])[s % CHUNK]
    }

    /// Calls `f(slot, epoch)` for every slot of every chunk whose generation
    /// is not the one in `seen` (the caller's record of the snapshot it saw
    /// last; 0: never seen), and brings `seen` up to date. A worker adopting a
    /// snapshot pays for the chunks that changed, not for the table.
    pub fn for_each_changed(&self, seen: &mut Vec<u64>, mut f: impl FnMut(EipId, u32)) {
        seen.resize(self.chunks.len(), 0);
        let chunks = self.chunks.iter().zip(&self.generations);
        for (c, ((chunk, &generation), seen)) in chunks.zip(seen.iter_mut()).enumerate() {
            if *seen != generation {
                *seen = generation;
                for (i, r) in chunk.iter().enumerate() {
                    f((c * CHUNK + i) as EipId, r.epoch);
                }
            }
        }
    }

    /// Stores `eip` in `slot` (taken by [`allocate`](Self::allocate)); the slot
    /// keeps its epoch.
    pub(super) fn put(&mut self, slot: EipId, eip: NewEip) {
        let inline = match (eip.address, eip.backend) {
            (IpAddr::V4(a), None) if eip.services.is_empty() => Some((a, None)),
            (IpAddr::V4(a), Some(IpAddr::V4(b))) if eip.services.is_empty() => Some((a, Some(b))),
            _ => None,
        };
        let r = self.record_mut(slot);
        let was_live = r.flags & LIVE != 0;
        let had_extra = r.flags & EXTRA != 0;
        let had_limits = r.flags & LIMITED != 0;
        let limited = eip.limits != Limits::INHERIT;
        let had_acl = r.flags & FILTERED != 0;
        r.region = eip.region;
        match inline {
            Some((a, b)) => {
                r.address = u32::from(a);
                r.backend = b.map_or(0, u32::from);
                r.flags = LIVE | if b.is_some() { V4_BACKEND } else { 0 };
            }
            None => {
                r.address = 0;
                r.backend = 0;
                r.flags = LIVE | EXTRA;
            }
        }
        if limited {
            r.flags |= LIMITED;
        }
        if eip.acl.is_some() {
            r.flags |= FILTERED;
        }
        if limited {
            Arc::make_mut(&mut self.limits).insert(slot, eip.limits);
        } else if had_limits {
            Arc::make_mut(&mut self.limits).remove(&slot);
        }
        match eip.acl {
            Some(acl) => {
                Arc::make_mut(&mut self.acls).insert(slot, acl);
            }
            None if had_acl => {
                Arc::make_mut(&mut self.acls).remove(&slot);
            }
            None => {}
        }
        if inline.is_none() {
            let extra = Extra {
                address: eip.address,
                backend: eip.backend,
                services: eip.services,
            };
            self.set_extra(slot, Some(extra));
        } else if had_extra {
            self.set_extra(slot, None);
        }
        if !was_live {
            self.len += 1;
        }
    }

    /// Empties `slot`; with `free` its slot can be handed out again, with the
    /// next epoch.
    pub(super) fn take(&mut self, slot: EipId, free: bool) -> Option<()> {
        self.get(slot)?;
        let r = self.record_mut(slot);
        let had_extra = r.flags & EXTRA != 0;
        let had_limits = r.flags & LIMITED != 0;
        let had_acl = r.flags & FILTERED != 0;
        r.flags = 0;
        if free {
            r.epoch = next_epoch(r.epoch);
        }
        if had_limits {
            Arc::make_mut(&mut self.limits).remove(&slot);
        }
        if had_acl {
            Arc::make_mut(&mut self.acls).remove(&slot);
        }
        if had_extra {
            self.set_extra(slot, None);
        }
        self.len -= 1;
        if free {
            Arc::make_mut(&mut self.free).push(slot);
        }
        Some(())
    }

    /// The services of the EIP in `slot`, to change them (shared with other
    /// snapshots until changed).
    pub(super) fn services_arc(&self, slot: EipId) -> Option<Arc<[Service]>> {
        Some(self.extra(slot)?.services.clone())
    }

    /// Heap bytes of the records, their side map and chunk pointers (shared
    /// chunks count in full).
    pub fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * 8
            + self.generations.capacity() * 8
            + self.chunks.len() * (CHUNK * std::mem::size_of::<Record>() + 40)
            + self.free.capacity() * 4
            + self.extras.capacity() * 8
            + self
                .extras
                .iter()
                .flatten()
                .map(|c| CHUNK * 8 + 40 + c.iter().flatten().count() * (size_of::<Extra>() + 16))
                .sum::<usize>()
    }

    /// How many chunks `self` and `other` share.
    pub fn shared_chunks(&self, other: &Self) -> usize {
        self.chunks
            .iter()
            .zip(&other.chunks)
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count()
    }
}

/// The epoch after `epoch` for a slot handed to another EIP. Never the
/// counters' mark of a slot being reset
/// ([`crate::counters::eip_traffic::RESETTING`]).
pub(super) fn next_epoch(epoch: u32) -> u32 {
    match epoch.wrapping_add(1) {
        crate::counters::eip_traffic::RESETTING => 0,
        next => next,
    }
}

#[cfg(test)]
mod tests;
