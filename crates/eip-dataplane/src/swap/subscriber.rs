//! A worker's end: [`Subscriber::refresh`] adopts the newest snapshot at a batch
//! boundary, acknowledges it and hands the old one back.

use super::slot::Shared;
use super::Versioned;
use crossbeam::channel::{Receiver, Sender, TrySendError};
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A worker's end. Owned by exactly one worker thread (it is `Send`, not `Clone`).
pub struct Subscriber<T> {
    pub(super) index: usize,
    /// `current.version()`, kept here so the per-batch check touches no pointer.
    pub(super) version: u64,
    /// `Some` from construction until `Drop` takes it to hand it back: an `Option`
    /// so that the last reference can leave this thread (a clone would race the
    /// control thread for the final free).
    pub(super) current: Option<Arc<T>>,
    pub(super) inbox: Receiver<Arc<T>>,
    pub(super) garbage: Sender<Arc<T>>,
    pub(super) shared: Arc<Shared>,
}

impl<T: Versioned + Send + Sync> Subscriber<T> {
    /// Adopts the newest published snapshot, if there is one, acknowledges it, and
    /// returns the snapshot to forward this batch with.
    ///
    /// Call it once per poll iteration, *including iterations with no packet*:
    /// an idle worker acknowledges only here. When nothing was published it is one
    /// atomic load and a compare. Never blocks, never allocates, never frees a
    /// snapshot.
    #[inline]
    pub fn refresh(&mut self) -> &T {
        if self.shared.published.load(Ordering::Acquire) > self.version {
            self.adopt();
        }
        self.current()
    }

    #[cold]
    fn adopt(&mut self) {
        // The queue holds at most one snapshot, the newest published. It can be
        // empty here for a moment, while `publish` replaces a queued snapshot:
        // the version check then fires again at the next `refresh`. One snapshot
        // per call, so a caller sees every version it was made to wait for.
        let Ok(next) = self.inbox.try_recv() else {
            return;
        };
        self.version = next.version();
        let old = self.current.replace(next);
        // Acknowledge, then hand back: nothing waits on the return queue (the
        // control thread polls), so neither wakes anyone.
        self.shared.workers[self.index]
            .acked
            .store(self.version, Ordering::Release);
        if let Some(old) = old {
            self.hand_back(old);
        }
    }

    /// The snapshot adopted by the last [`refresh`](Self::refresh), without looking
    /// for a newer one (and so without acknowledging anything).
    #[inline]
    pub fn current(&self) -> &T {
        match &self.current {
            Some(current) => current,
            None => unreachable!("only Drop takes the snapshot"),
        }
    }

    /// Version of [`current`](Self::current).
    #[inline]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// This worker's index, as in [`SwapError::Timeout`](super::SwapError::Timeout).
    pub fn index(&self) -> usize {
        self.index
    }
}

impl<T> Subscriber<T> {
    /// Sends `old` to the control thread to free. Dropped here only if the
    /// publisher is gone (shutdown) or, against the protocol's bound, the queue is
    /// full.
    fn hand_back(&self, old: Arc<T>) {
        match self.garbage.try_send(old) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                debug_assert!(false, "return queue over its bound");
            }
        }
    }
}

impl<T> fmt::Debug for Subscriber<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("index", &self.index)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl<T> Drop for Subscriber<T> {
    /// Deregisters the worker, then hands every snapshot it holds (its current one
    /// and one still queued) back to the control thread. Marking it gone first
    /// means a waiting publisher no longer counts it when it next looks.
    fn drop(&mut self) {
        self.shared.workers[self.index]
            .gone
            .store(true, Ordering::Release);
        while let Ok(queued) = self.inbox.try_recv() {
            self.hand_back(queued);
        }
        if let Some(current) = self.current.take() {
            self.hand_back(current);
        }
    }
}
