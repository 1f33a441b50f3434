//! The control thread's end: [`Publisher`] queues snapshots to the workers, frees
//! what they hand back, and waits for their acknowledgements ([`Ticket`]).

use super::slot::{slot_acked, Shared};
use super::{SwapError, Versioned};
use crossbeam::channel::{Receiver, Sender, TrySendError};
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long [`Publisher::wait_for`] spins before it sleeps between looks: a
/// few batches, within which a running worker acknowledges.
pub const SPIN: Duration = Duration::from_micros(100);

/// First pause of [`Publisher::wait_for`] between two looks after [`SPIN`].
pub const FIRST_PAUSE: Duration = Duration::from_micros(10);

/// Longest pause of [`Publisher::wait_for`]: what an acknowledgement from a
/// worker that was itself preempted may wait beyond it.
pub const MAX_PAUSE: Duration = Duration::from_micros(500);

/// The control thread's sending half of one worker's queue, plus a receiving half
/// so that it can take back a snapshot the worker has not picked up yet.
pub(super) struct Inbox<T> {
    pub(super) tx: Sender<Arc<T>>,
    pub(super) rx: Receiver<Arc<T>>,
}

/// The control thread's end: publishes snapshots, waits for acknowledgements and
/// frees the snapshots workers hand back.
///
/// There is exactly one publisher (it is not `Clone`), which is what lets
/// `publish` replace a worker's queued snapshot without racing another sender.
/// It is `Send` but not `Sync`: one thread drains the return queue and frees
/// what workers hand back.
pub struct Publisher<T> {
    pub(super) version: u64,
    pub(super) latest: Arc<T>,
    pub(super) inboxes: Vec<Inbox<T>>,
    pub(super) garbage: Receiver<Arc<T>>,
    pub(super) shared: Arc<Shared>,
    pub(super) _not_sync: PhantomData<Cell<()>>,
}

impl<T: Versioned + Send + Sync> Publisher<T> {
    /// Queues `snapshot` to every live worker; each adopts it at its next
    /// [`Subscriber::refresh`](super::Subscriber::refresh). A snapshot still queued for a worker that has not
    /// picked it up is replaced (and freed here).
    ///
    /// Garbage handed back so far is freed first (this is what bounds the return
    /// queue).
    ///
    /// # Errors
    /// [`SwapError::Stale`] if `snapshot.version()` is not greater than the last
    /// published version; nothing is queued then.
    pub fn publish(&mut self, snapshot: Arc<T>) -> Result<Ticket<'_, T>, SwapError> {
        let version = snapshot.version();
        if version <= self.version {
            return Err(SwapError::Stale {
                version,
                current: self.version,
            });
        }
        self.collect_garbage();
        for (slot, inbox) in self.shared.workers.iter().zip(&self.inboxes) {
            if slot.gone.load(Ordering::Acquire) {
                // Free whatever was queued after the worker's last drain.
                while inbox.rx.try_recv().is_ok() {}
                continue;
            }
            let mut item = Arc::clone(&snapshot);
            // Only this thread sends, so after taking the queued snapshot back the
            // slot stays free for us: the loop runs at most twice.
            loop {
                match inbox.tx.try_send(item) {
                    Ok(()) => break,
                    Err(TrySendError::Full(back)) => {
                        item = back;
                        // Empty if the worker took it meanwhile: it is then the
                        // worker's to return, and the slot is free anyway.
                        let _stale = inbox.rx.try_recv();
                    }
                    // Unreachable: `inbox.rx` keeps the channel connected.
                    Err(TrySendError::Disconnected(_)) => break,
                }
            }
        }
        self.version = version;
        self.latest = snapshot;
        self.shared.published.store(version, Ordering::Release);
        Ok(Ticket {
            publisher: self,
            version,
        })
    }

    /// Frees the snapshots workers have handed back; returns how many it received.
    /// Call it after [`Ticket::wait`], or periodically: the return queue is
    /// bounded, so snapshots wait there (still allocated) until collected.
    pub fn collect_garbage(&self) -> usize {
        let mut n = 0;
        while let Ok(old) = self.garbage.try_recv() {
            drop(old);
            n += 1;
        }
        n
    }

    /// Version of the last published snapshot (the initial one before any publish).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The last published snapshot, e.g. as the base of the next build.
    pub fn latest(&self) -> &Arc<T> {
        &self.latest
    }

    /// Number of workers the channel was created for (live or not).
    pub fn workers(&self) -> usize {
        self.inboxes.len()
    }

    /// The version worker `worker` forwards with; `None` if its subscriber was
    /// dropped or there is no such worker.
    pub fn worker_version(&self, worker: usize) -> Option<u64> {
        let slot = self.shared.workers.get(worker)?;
        if slot.gone.load(Ordering::Acquire) {
            return None;
        }
        Some(slot.acked.load(Ordering::Acquire))
    }

    /// Indices of the live workers still forwarding with a version older than
    /// `version`.
    pub fn lagging(&self, version: u64) -> Vec<usize> {
        self.shared
            .workers
            .iter()
            .enumerate()
            .filter(|(_, slot)| !slot_acked(slot, version))
            .map(|(i, _)| i)
            .collect()
    }

    /// Whether every live worker forwards with `version` or newer.
    pub fn is_acknowledged(&self, version: u64) -> bool {
        self.shared
            .workers
            .iter()
            .all(|slot| slot_acked(slot, version))
    }

    /// Blocks until every live worker forwards with `version` or newer, or until
    /// `timeout` passes. Snapshots handed back meanwhile are freed here.
    ///
    /// Polls: spins for [`SPIN`], then sleeps between looks, for pauses that
    /// grow from [`FIRST_PAUSE`] to [`MAX_PAUSE`]. It never blocks on the
    /// return queue, so a worker that hands a snapshot back finds no receiver
    /// to wake: its refresh makes no system call and takes no lock. (Blocked
    /// here, this thread was woken by every adoption, from the worker, under
    /// the channel's mutex: `eip-bench --publish-versions` measured adopting
    /// refreshes of 3 us at the median and up to 4 ms, against 0.6 us and
    /// 17 us polled.)
    ///
    /// # Errors
    /// [`SwapError::Timeout`] naming the workers that lag.
    pub fn wait_for(&self, version: u64, timeout: Duration) -> Result<(), SwapError> {
        let start = Instant::now();
        let deadline = start.checked_add(timeout);
        let mut pause = FIRST_PAUSE;
        loop {
            self.collect_garbage();
            if self.is_acknowledged(version) {
                return Ok(());
            }
            let now = Instant::now();
            if now - start < SPIN.min(timeout) {
                std::hint::spin_loop();
                continue;
            }
            if deadline.is_some_and(|d| now >= d) {
                return Err(SwapError::Timeout {
                    version,
                    lagging: self.lagging(version),
                });
            }
            let left = deadline.map_or(pause, |d| d - now);
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }
}

impl<T> fmt::Debug for Publisher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("version", &self.version)
            .field("workers", &self.inboxes.len())
            .finish_non_exhaustive()
    }
}

/// A published version whose acknowledgement the control thread can wait for.
///
/// Borrows the [`Publisher`] (so no publish happens while a ticket is alive) and
/// stays on its thread.
pub struct Ticket<'a, T> {
    publisher: &'a Publisher<T>,
    version: u64,
}

impl<T: Versioned + Send + Sync> Ticket<'_, T> {
    /// The published version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether every live worker forwards with this version or newer. Does not
    /// block.
    pub fn is_acknowledged(&self) -> bool {
        self.publisher.is_acknowledged(self.version)
    }

    /// Blocks the calling (control) thread until every live worker forwards with
    /// this version or newer. May be called again after a timeout.
    ///
    /// # Errors
    /// [`SwapError::Timeout`] with the workers that have not picked it up: a
    /// worker that does not call [`Subscriber::refresh`](super::Subscriber::refresh) on every poll iteration,
    /// or that is stuck.
    pub fn wait(&self, timeout: Duration) -> Result<(), SwapError> {
        self.publisher.wait_for(self.version, timeout)
    }
}

impl<T> fmt::Debug for Ticket<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}
