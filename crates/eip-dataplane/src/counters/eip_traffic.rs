//! Per-EIP traffic counters that their worker writes and readers read in
//! place: no published copy of them (36 bytes an EIP and a worker at 1M EIPs).
//!
//! One writer, the worker that owns the [`EipTraffic`], adds with a relaxed
//! load and a relaxed store: no locked instruction (an `add` on memory on
//! x86_64, as cheap as a plain field). Readers hold the same chunks
//! ([`EipTraffic::share`]) and only load. Counts only grow while a slot holds
//! the same EIP, so a relaxed read is at worst a little old. A slot that
//! changes hands is marked [`RESETTING`], zeroed, then given its new epoch
//! with release order: a reader that sees one epoch before and after its
//! loads has counts of that EIP (a seqlock whose sequence is the epoch).
//!
//! Slots are in chunks of [`CHUNK_SLOTS`] that never move: growth appends
//! chunks, so a new slot copies no other (no stall on the worker, no
//! headroom to reserve); a reader sees the new chunks from the worker's next
//! publication ([`EipTraffic::share`]; chunks are only ever appended, so the
//! first chunk and the count tell whether two hold the same).

use super::Traffic;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering::*};
use std::sync::Arc;

/// Slots per chunk: 4,096 x 36 bytes, about 147 KB in three arrays; 256
/// chunks at 1M EIPs.
pub const CHUNK_SLOTS: usize = 4096;

/// The epoch of a slot while its worker resets it for another EIP. Tables
/// never hand it out (`tables::slab` skips it when an epoch wraps).
pub const RESETTING: u32 = u32::MAX;

/// Packets and bytes written by one thread and read by any.
#[derive(Debug, Default)]
pub struct AtomicTraffic {
    packets: AtomicU64,
    bytes: AtomicU64,
}

impl AtomicTraffic {
    /// One packet of `bytes` more. Only the owning worker calls this (one
    /// writer: a load and a store, not a read-modify-write).
    #[inline(always)]
    pub fn add(&self, bytes: usize) {
        self.packets
            .store(self.packets.load(Relaxed).wrapping_add(1), Relaxed);
        self.bytes
            .store(self.bytes.load(Relaxed).wrapping_add(bytes as u64), Relaxed);
    }

    /// The counts now.
    pub fn get(&self) -> Traffic {
        Traffic {
            packets: self.packets.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
        }
    }

    fn set(&self, t: Traffic) {
        self.packets.store(t.packets, Relaxed);
        self.bytes.store(t.bytes, Relaxed);
    }
}

/// What a reader saw of one slot: the EIP's epoch and its counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotCounts {
    pub epoch: u32,
    pub inbound: Traffic,
    pub outbound: Traffic,
}

/// Per-EIP traffic and epochs by stable slot, in shared chunks. Each way in
/// its own array (16 bytes a slot): ingress at 1M EIPs misses in 16 MB, not
/// in 32 (a line of both ways was 12-18% slower there, the TLB covering half
/// as many slots).
#[derive(Debug, Default)]
pub struct EipTraffic {
    /// Client -> backend, counted before encapsulation.
    inbound: Vec<Arc<[AtomicTraffic; CHUNK_SLOTS]>>,
    /// Backend -> client, counted after decapsulation.
    outbound: Vec<Arc<[AtomicTraffic; CHUNK_SLOTS]>>,
    epochs: Vec<Arc<[AtomicU32; CHUNK_SLOTS]>>,
}

fn chunk<T: Default>() -> Arc<[T; CHUNK_SLOTS]> {
    let slots: Arc<[T]> = (0..CHUNK_SLOTS).map(|_| T::default()).collect();
    match slots.try_into() {
        Ok(chunk) => chunk,
        Err(_) => unreachable!("collected CHUNK_SLOTS slots"),
    }
}

impl EipTraffic {
    /// Zeroed counters for at least `slots` slots.
    pub fn new(slots: usize) -> Self {
        let mut t = EipTraffic::default();
        t.grow(slots);
        t
    }

    /// Slots these counters hold (a whole number of chunks).
    pub fn slots(&self) -> usize {
        self.inbound.len() * CHUNK_SLOTS
    }

    /// Makes room for `slots` slots, appending zeroed chunks: the slots there
    /// do not move.
    pub fn grow(&mut self, slots: usize) {
        while self.slots() < slots {
            self.inbound.push(chunk());
            self.outbound.push(chunk());
            self.epochs.push(chunk());
        }
    }

    /// The same chunks, for a reader: what the worker adds, it sees.
    pub fn share(&self) -> EipTraffic {
        EipTraffic {
            inbound: self.inbound.clone(),
            outbound: self.outbound.clone(),
            epochs: self.epochs.clone(),
        }
    }

    /// Whether `other` holds these same chunks (one may hold more).
    pub fn shares_with(&self, other: &EipTraffic) -> bool {
        self.inbound.len() == other.inbound.len()
            && match (self.inbound.first(), other.inbound.first()) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }

    /// The client -> backend counters of `slot`. Panics beyond
    /// [`Self::slots`] (the worker sizes them for its tables when it adopts
    /// them).
    #[inline(always)]
    pub fn inbound(&self, slot: usize) -> &AtomicTraffic {
        &self.inbound[slot / CHUNK_SLOTS][slot % CHUNK_SLOTS]
    }

    /// The backend -> client counters of `slot`: see [`Self::inbound`].
    #[inline(always)]
    pub fn outbound(&self, slot: usize) -> &AtomicTraffic {
        &self.outbound[slot / CHUNK_SLOTS][slot % CHUNK_SLOTS]
    }

    /// Starts loading `slot`'s inbound line (no effect beyond the counters).
    #[inline(always)]
    pub fn prefetch_inbound(&self, slot: usize) {
        if let Some(c) = self.inbound.get(slot / CHUNK_SLOTS) {
            prefetch_index::prefetch_index(&c[..], slot % CHUNK_SLOTS);
        }
    }

    /// The epoch of the EIP whose counts `slot` holds (0 beyond the slots;
    /// [`RESETTING`] while its worker resets it).
    pub fn epoch(&self, slot: usize) -> u32 {
        self.epochs
            .get(slot / CHUNK_SLOTS)
            .map_or(0, |c| c[slot % CHUNK_SLOTS].load(Acquire))
    }

    /// Makes `slot`'s counts those of the EIP with `epoch`: zero if they were
    /// another's. The writer's side of the protocol in the module doc.
    #[inline]
    pub fn claim(&self, slot: usize, epoch: u32) -> bool {
        let Some(e) = self.epochs.get(slot / CHUNK_SLOTS) else {
            return false;
        };
        let e = &e[slot % CHUNK_SLOTS];
        if e.load(Relaxed) == epoch {
            return false;
        }
        e.store(RESETTING, Relaxed);
        fence(Release);
        self.inbound(slot).set(Traffic::default());
        self.outbound(slot).set(Traffic::default());
        e.store(epoch, Release);
        true
    }

    /// `slot`'s epoch and counts as of one moment, or `None` beyond the slots
    /// or while its worker resets it (a few nanoseconds: tried three times).
    pub fn read(&self, slot: usize) -> Option<SlotCounts> {
        let e = &self.epochs.get(slot / CHUNK_SLOTS)?[slot % CHUNK_SLOTS];
        let (i, o) = (self.inbound(slot), self.outbound(slot));
        for _ in 0..3 {
            let epoch = e.load(Acquire);
            let inbound = i.get();
            let outbound = o.get();
            fence(Acquire);
            if epoch != RESETTING && e.load(Relaxed) == epoch {
                return Some(SlotCounts {
                    epoch,
                    inbound,
                    outbound,
                });
            }
            std::hint::spin_loop();
        }
        None
    }

    /// Sets `slot` of counters no worker writes (a sum, a snapshot), growing.
    /// A chunk shared with others is copied first: these never write into a
    /// worker's counters.
    pub fn set(&mut self, slot: usize, c: SlotCounts) {
        self.grow(slot + 1);
        let at = slot / CHUNK_SLOTS;
        if Arc::strong_count(&self.inbound[at]) > 1
            || Arc::strong_count(&self.outbound[at]) > 1
            || Arc::strong_count(&self.epochs[at]) > 1
        {
            let inbound: Arc<[AtomicTraffic; CHUNK_SLOTS]> = chunk();
            let outbound: Arc<[AtomicTraffic; CHUNK_SLOTS]> = chunk();
            let epochs: Arc<[AtomicU32; CHUNK_SLOTS]> = chunk();
            for i in 0..CHUNK_SLOTS {
                // Each slot as one consistent read (a worker may be claiming it).
                let c = self.read(at * CHUNK_SLOTS + i).unwrap_or_default();
                inbound[i].set(c.inbound);
                outbound[i].set(c.outbound);
                epochs[i].store(c.epoch, Relaxed);
            }
            self.inbound[at] = inbound;
            self.outbound[at] = outbound;
            self.epochs[at] = epochs;
        }
        self.epochs[at][slot % CHUNK_SLOTS].store(c.epoch, Relaxed);
        self.inbound(slot).set(c.inbound);
        self.outbound(slot).set(c.outbound);
    }

    /// Adds `other` into these (an accumulator), slot by slot: the newer
    /// EIP's counts win where the two hold different EIPs of a slot (epochs
    /// compare wrapping; another worker may not have claimed it yet). A slot
    /// `other`'s worker is resetting at that moment adds nothing this time
    /// (it is changing hands: its old EIP is gone from the tables).
    pub fn merge(&mut self, other: &EipTraffic) {
        self.grow(other.slots());
        for slot in 0..other.slots() {
            let Some(theirs) = other.read(slot) else {
                continue;
            };
            if theirs == SlotCounts::default() {
                continue;
            }
            let mine = self.read(slot).unwrap_or_default();
            let sum = if theirs.epoch == mine.epoch {
                let mut sum = mine;
                sum.inbound += theirs.inbound;
                sum.outbound += theirs.outbound;
                sum
            } else if (theirs.epoch.wrapping_sub(mine.epoch) as i32) > 0 {
                theirs
            } else {
                continue;
            };
            self.set(slot, sum);
        }
    }
}

/// A deep copy: new chunks holding the same counts (a snapshot; [`share`]
/// hands out the same chunks instead).
///
/// [`share`]: EipTraffic::share
impl Clone for EipTraffic {
    fn clone(&self) -> Self {
        let mut copy = EipTraffic::new(self.slots());
        for slot in 0..self.slots() {
            if let Some(c) = self.read(slot) {
                if c != SlotCounts::default() {
                    copy.set(slot, c);
                }
            }
        }
        copy
    }
}

/// Equal when every slot reads the same (for tests).
impl PartialEq for EipTraffic {
    fn eq(&self, o: &Self) -> bool {
        (0..self.slots().max(o.slots()))
            .all(|s| self.read(s).unwrap_or_default() == o.read(s).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_sees_the_workers_counts_in_place() {
        let worker = EipTraffic::new(10);
        let reader = worker.share();
        worker.inbound(3).add(100);
        worker.outbound(3).add(40);
        let seen = reader.read(3).unwrap();
        assert_eq!((seen.inbound.packets, seen.inbound.bytes), (1, 100));
        assert_eq!((seen.outbound.packets, seen.outbound.bytes), (1, 40));
        assert!(reader.shares_with(&worker));
        // A snapshot does not follow.
        let snapshot = worker.clone();
        worker.inbound(3).add(100);
        assert_eq!(snapshot.read(3).unwrap().inbound.bytes, 100);
        assert_eq!(reader.read(3).unwrap().inbound.bytes, 200);
        assert!(!snapshot.shares_with(&worker));
        // Setting a slot of a reader's counters never writes the worker's.
        let mut sum = reader;
        sum.set(3, SlotCounts::default());
        assert_eq!(worker.read(3).unwrap().inbound.bytes, 200);
        assert!(!sum.shares_with(&worker));
    }

    #[test]
    fn growth_appends_chunks_and_moves_no_slot() {
        let mut worker = EipTraffic::new(1);
        assert_eq!(worker.slots(), CHUNK_SLOTS);
        let before = worker.inbound(5) as *const AtomicTraffic;
        worker.grow(CHUNK_SLOTS + 1);
        assert_eq!(worker.slots(), 2 * CHUNK_SLOTS);
        assert_eq!(worker.inbound(5) as *const AtomicTraffic, before);
        assert_eq!(worker.read(2 * CHUNK_SLOTS), None, "beyond the slots");
        assert_eq!(worker.epoch(2 * CHUNK_SLOTS), 0);
    }

    #[test]
    fn a_claimed_slot_restarts_and_merge_keeps_the_newer_eip() {
        let a = EipTraffic::new(4);
        a.inbound(1).add(100);
        let old = a.clone();
        assert!(a.claim(1, 1));
        assert!(!a.claim(1, 1), "already this EIP's");
        a.inbound(1).add(60);
        assert_eq!(
            a.read(1),
            Some(SlotCounts {
                epoch: 1,
                inbound: Traffic {
                    packets: 1,
                    bytes: 60
                },
                outbound: Traffic::default(),
            })
        );
        let mut sum = EipTraffic::default();
        sum.merge(&old);
        sum.merge(&a);
        sum.merge(&old);
        assert_eq!(
            sum.read(1).map(|c| (c.epoch, c.inbound.bytes)),
            Some((1, 60))
        );
        sum.merge(&a);
        assert_eq!(sum.read(1).map(|c| c.inbound.bytes), Some(120));
    }

    #[test]
    fn a_reader_never_sees_a_slot_half_reset() {
        // The worker claims slot 0 for ever newer EIPs, counting one packet
        // of `epoch` bytes after each claim: a consistent read has bytes 0 or
        // equal to its epoch (never the previous EIP's count under the new
        // epoch, nor the other way round).
        let worker = EipTraffic::new(1);
        let reader = worker.share();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for epoch in 1..200_000u32 {
                    worker.claim(0, epoch);
                    worker.inbound(0).add(epoch as usize);
                }
                done.store(true, Relaxed);
            });
            let mut reads = 0u64;
            while !done.load(Relaxed) || reads == 0 {
                if let Some(c) = reader.read(0) {
                    reads += 1;
                    assert!(
                        c.inbound.bytes == 0 || c.inbound.bytes == u64::from(c.epoch),
                        "{c:?}"
                    );
                    assert!(c.inbound.packets <= 1, "{c:?}");
                }
            }
        });
    }
}
