//! EIP records by stable slot, in copy-on-write chunks.
//!
//! An EIP keeps its slot ([`EipId`]) for as long as it exists, across versions:
//! per-EIP counters are indexed by it and survive a table change. A removed EIP's
//! slot goes on a free list and is given to a later EIP.

use super::{Eip, EipId};
use std::ops::Index;
use std::sync::Arc;

/// Slots per chunk: a change copies one chunk of this many records.
pub const CHUNK: usize = 1024;

/// The EIP records of a snapshot, indexed by slot; chunks are shared between
/// snapshots until one changes them.
#[derive(Debug, Clone, Default)]
pub struct EipSlab {
    chunks: Vec<Arc<Vec<Option<Eip>>>>,
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

    /// The record in `slot`, if an EIP lives there.
    #[inline(always)]
    pub fn get(&self, slot: EipId) -> Option<&Eip> {
        let s = slot as usize;
        self.chunks.get(s / CHUNK)?.get(s % CHUNK)?.as_ref()
    }

    /// Live EIPs with their slots, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (EipId, &Eip)> + '_ {
        self.chunks.iter().enumerate().flat_map(|(c, chunk)| {
            chunk
                .iter()
                .enumerate()
                .filter_map(move |(i, e)| Some(((c * CHUNK + i) as EipId, e.as_ref()?)))
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

    /// Stores `eip` in `slot` (taken by [`allocate`](Self::allocate)).
    pub(super) fn put(&mut self, slot: EipId, eip: Eip) {
        let s = slot as usize;
        while self.chunks.len() <= s / CHUNK {
            self.chunks.push(Arc::new(vec![None; CHUNK]));
        }
        let cell = &mut Arc::make_mut(&mut self.chunks[s / CHUNK])[s % CHUNK];
        if cell.replace(eip).is_none() {
            self.len += 1;
        }
    }

    /// Empties `slot`; with `free` its slot can be handed out again.
    pub(super) fn take(&mut self, slot: EipId, free: bool) -> Option<Eip> {
        let s = slot as usize;
        self.get(slot)?;
        let old = Arc::make_mut(&mut self.chunks[s / CHUNK])[s % CHUNK].take();
        self.len -= 1;
        if free {
            Arc::make_mut(&mut self.free).push(slot);
        }
        old
    }

    /// Heap bytes of the records and chunk pointers (shared chunks count in full).
    pub fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * 8
            + self.chunks.len() * (CHUNK * std::mem::size_of::<Option<Eip>>() + 40)
            + self.free.capacity() * 4
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

impl Index<usize> for EipSlab {
    type Output = Eip;

    /// The EIP in slot `index`.
    ///
    /// # Panics
    /// If no EIP lives there (slots come from lookups of the same snapshot).
    #[inline(always)]
    fn index(&self, index: usize) -> &Eip {
        match self.get(index as EipId) {
            Some(e) => e,
            None => panic!("no EIP in slot {index}"),
        }
    }
}
