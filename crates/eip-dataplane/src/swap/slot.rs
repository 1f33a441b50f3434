//! What the control thread and the workers share: one slot per worker (its
//! acknowledged version, whether it is gone) and the published version.

use crossbeam::utils::CachePadded;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What the control thread and each worker share about one worker.
pub(super) struct WorkerSlot {
    /// Version the worker forwards with (written by the worker only, on swap).
    pub(super) acked: AtomicU64,
    /// Set once when the worker's [`super::Subscriber`] is dropped.
    pub(super) gone: AtomicBool,
}

pub(super) struct Shared {
    /// Newest published version; the one word every worker reads per batch.
    pub(super) published: CachePadded<AtomicU64>,
    /// One slot per worker, padded so one worker's acknowledgement does not evict
    /// another worker's cache line.
    pub(super) workers: Box<[CachePadded<WorkerSlot>]>,
}

/// Whether the worker of `slot` forwards with `version` or newer, or is gone.
pub(super) fn slot_acked(slot: &WorkerSlot, version: u64) -> bool {
    slot.gone.load(Ordering::Acquire) || slot.acked.load(Ordering::Acquire) >= version
}
