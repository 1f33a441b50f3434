//! Lock-free handoff of table snapshots from the control thread to the workers.
//!
//! glb-director's scheme in safe Rust: the control thread builds an immutable
//! snapshot (`Arc<Tables>`), [`Publisher::publish`] queues it to every worker, and
//! each worker adopts it at its next batch boundary with [`Subscriber::refresh`].
//! The old snapshot goes back to the control thread, which frees it in
//! [`Publisher::collect_garbage`]: a worker never runs a destructor of a table
//! (which can mean freeing megabytes of Maglev slots and hash maps mid-poll).
//!
//! # Cost on the worker
//!
//! [`Subscriber::refresh`] is one `Acquire` load of a word that only the control
//! thread writes, plus a compare: nothing else when nothing was published. Packet
//! lookups go through the returned `&T`, with no atomic and no lock. When a new
//! snapshot is waiting, `refresh` takes it from a one-slot queue and hands the old
//! one back over a bounded queue (no allocation: both are crossbeam array channels,
//! lock-free for `try_send`/`try_recv`).
//!
//! # Acknowledgements
//!
//! [`Publisher::publish`] returns a [`Ticket`]; [`Ticket::wait`] blocks the *control*
//! thread until every live worker forwards with that version or newer. A worker
//! acknowledges inside `refresh`, at a batch boundary, after it has dropped its
//! reference to the old snapshot: once `wait` returns, no worker will touch an
//! older snapshot again. A [`Subscriber`] that is dropped (its worker stopped)
//! deregisters and no longer holds acknowledgements back.
//!
//! Idle workers must acknowledge too, so **the worker loop calls `refresh` on every
//! poll iteration, including the ones that received no packet**:
//!
//! ```ignore
//! loop {
//!     let tables = subscriber.refresh(); // every iteration, even with an empty batch
//!     let n = port.receive(&mut frames);
//!     if n > 0 {
//!         pipeline.process(now, tables, &mut frames[..n], &mut verdicts[..n]);
//!     }
//! }
//! ```
//!
//! Control side (a complete example is on [`channel`]):
//!
//! ```ignore
//! let (mut publisher, subscribers) = swap::channel(Arc::new(initial), workers);
//! // ... move one subscriber into each worker thread ...
//! let ticket = publisher.publish(Arc::new(next))?;
//! ticket.wait(Duration::from_millis(500))?;
//! publisher.collect_garbage();
//! ```
//!
//! # Memory ordering
//!
//! `publish` pushes the snapshot into every worker's queue and *then* stores the
//! version with `Release`; `refresh` loads it with `Acquire`, so a worker that sees
//! the new version also sees the queued snapshot (the channel itself also
//! synchronizes the `Arc`'s contents). A worker stores its acknowledgement with
//! `Release` *before* it sends the old snapshot back; the control thread wakes on
//! that message, so the acknowledgement is visible when it looks.
//!
//! # Bounds
//!
//! Each worker queue holds one snapshot: publishing twice before a worker picks up
//! replaces the queued one (the worker skips straight to the newest; the skipped one
//! is freed by the control thread). The return queue holds
//! [`RETURNS_PER_WORKER`] snapshots per worker, which the protocol never exceeds
//! because `publish` collects garbage before it queues anything (see
//! [`RETURNS_PER_WORKER`]). If the [`Publisher`] is gone (shutdown), a worker drops
//! old snapshots itself: nothing is waiting for them then.

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender, TrySendError};
use crossbeam::utils::CachePadded;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A snapshot that carries its own version. Versions a [`Publisher`] publishes
/// must strictly increase.
pub trait Versioned {
    /// The snapshot's version.
    fn version(&self) -> u64;
}

impl Versioned for crate::tables::Tables {
    #[inline]
    fn version(&self) -> u64 {
        self.version
    }
}

/// Capacity of the return queue per worker.
///
/// Every `publish` drains the return queue before it queues anything. Between two
/// drains a worker can hand back at most three snapshots: one it was already
/// sending when the drain looked, the one it forwards with, and the one `publish`
/// queues next (taken and then returned, or returned when the worker stops). A
/// fourth slot is slack.
pub const RETURNS_PER_WORKER: usize = 4;

/// Why a publish or a wait failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwapError {
    /// The snapshot's version is not newer than the last one published.
    #[error("snapshot version {version} is not newer than the published version {current}")]
    Stale {
        /// Version of the rejected snapshot.
        version: u64,
        /// Version of the last published snapshot.
        current: u64,
    },
    /// Not every worker acknowledged `version` within the timeout.
    #[error("workers {lagging:?} did not acknowledge snapshot version {version} in time")]
    Timeout {
        /// Version waited for.
        version: u64,
        /// Indices of the live workers still forwarding with an older version.
        lagging: Vec<usize>,
    },
}

/// What the control thread and each worker share about one worker.
struct WorkerSlot {
    /// Version the worker forwards with (written by the worker only, on swap).
    acked: AtomicU64,
    /// Set once when the worker's [`Subscriber`] is dropped.
    gone: AtomicBool,
}

struct Shared {
    /// Newest published version; the one word every worker reads per batch.
    published: CachePadded<AtomicU64>,
    /// One slot per worker, padded so one worker's acknowledgement does not evict
    /// another worker's cache line.
    workers: Box<[CachePadded<WorkerSlot>]>,
}

/// Creates the handoff for `workers` workers, all starting with `initial`.
///
/// Returns the control thread's [`Publisher`] and one [`Subscriber`] per worker
/// (index `i` of the vector is worker `i`, as reported in [`SwapError::Timeout`]).
/// Zero workers is allowed: every ticket is then acknowledged at once.
///
/// # Examples
///
/// ```
/// use eip_dataplane::swap::{self, Versioned};
/// use std::{sync::Arc, thread, time::Duration};
///
/// struct Table(u64);
/// impl Versioned for Table {
///     fn version(&self) -> u64 {
///         self.0
///     }
/// }
///
/// let (mut publisher, subscribers) = swap::channel(Arc::new(Table(1)), 2);
/// let workers: Vec<_> = subscribers
///     .into_iter()
///     .map(|mut sub| {
///         thread::spawn(move || {
///             // The poll loop: refresh every iteration, even with no packet.
///             while sub.refresh().0 < 2 {
///                 thread::yield_now();
///             }
///         })
///     })
///     .collect();
/// let ticket = publisher.publish(Arc::new(Table(2))).unwrap();
/// ticket.wait(Duration::from_secs(10)).unwrap();
/// publisher.collect_garbage();
/// for w in workers {
///     w.join().unwrap();
/// }
/// ```
pub fn channel<T>(initial: Arc<T>, workers: usize) -> (Publisher<T>, Vec<Subscriber<T>>)
where
    T: Versioned + Send + Sync,
{
    let version = initial.version();
    let shared = Arc::new(Shared {
        published: CachePadded::new(AtomicU64::new(version)),
        workers: (0..workers)
            .map(|_| {
                CachePadded::new(WorkerSlot {
                    acked: AtomicU64::new(version),
                    gone: AtomicBool::new(false),
                })
            })
            .collect(),
    });
    let (garbage_tx, garbage_rx) =
        channel::bounded(workers.saturating_mul(RETURNS_PER_WORKER).max(1));
    let mut inboxes = Vec::with_capacity(workers);
    let mut subscribers = Vec::with_capacity(workers);
    for index in 0..workers {
        let (tx, rx) = channel::bounded(1);
        subscribers.push(Subscriber {
            index,
            version,
            current: Some(Arc::clone(&initial)),
            inbox: rx.clone(),
            garbage: garbage_tx.clone(),
            shared: Arc::clone(&shared),
        });
        inboxes.push(Inbox { tx, rx });
    }
    let publisher = Publisher {
        version,
        latest: initial,
        inboxes,
        garbage: garbage_rx,
        shared,
        _not_sync: PhantomData,
    };
    (publisher, subscribers)
}

/// The control thread's sending half of one worker's queue, plus a receiving half
/// so that it can take back a snapshot the worker has not picked up yet.
struct Inbox<T> {
    tx: Sender<Arc<T>>,
    rx: Receiver<Arc<T>>,
}

/// The control thread's end: publishes snapshots, waits for acknowledgements and
/// frees the snapshots workers hand back.
///
/// There is exactly one publisher (it is not `Clone`), which is what lets
/// `publish` replace a worker's queued snapshot without racing another sender.
/// It is `Send` but not `Sync`: one thread drains the return queue, so a waiter
/// can never miss the wakeup that another thread's drain would have taken.
pub struct Publisher<T> {
    version: u64,
    latest: Arc<T>,
    inboxes: Vec<Inbox<T>>,
    garbage: Receiver<Arc<T>>,
    shared: Arc<Shared>,
    _not_sync: PhantomData<Cell<()>>,
}

impl<T: Versioned + Send + Sync> Publisher<T> {
    /// Queues `snapshot` to every live worker; each adopts it at its next
    /// [`Subscriber::refresh`]. A snapshot still queued for a worker that has not
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
    /// # Errors
    /// [`SwapError::Timeout`] naming the workers that lag.
    pub fn wait_for(&self, version: u64, timeout: Duration) -> Result<(), SwapError> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if self.is_acknowledged(version) {
                return Ok(());
            }
            // Every acknowledgement and every deregistration is followed by a
            // returned snapshot, so this wakes up after each of them.
            let received = match deadline {
                Some(deadline) => self.garbage.recv_deadline(deadline),
                None => self
                    .garbage
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            match received {
                Ok(old) => drop(old),
                // Disconnected cannot happen while we hold live subscribers'
                // senders; without them `is_acknowledged` was already true.
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    return if self.is_acknowledged(version) {
                        Ok(())
                    } else {
                        Err(SwapError::Timeout {
                            version,
                            lagging: self.lagging(version),
                        })
                    };
                }
            }
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

fn slot_acked(slot: &WorkerSlot, version: u64) -> bool {
    slot.gone.load(Ordering::Acquire) || slot.acked.load(Ordering::Acquire) >= version
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
    /// worker that does not call [`Subscriber::refresh`] on every poll iteration,
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

/// A worker's end. Owned by exactly one worker thread (it is `Send`, not `Clone`).
pub struct Subscriber<T> {
    index: usize,
    /// `current.version()`, kept here so the per-batch check touches no pointer.
    version: u64,
    /// `Some` from construction until `Drop` takes it to hand it back: an `Option`
    /// so that the last reference can leave this thread (a clone would race the
    /// control thread for the final free).
    current: Option<Arc<T>>,
    inbox: Receiver<Arc<T>>,
    garbage: Sender<Arc<T>>,
    shared: Arc<Shared>,
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
        // Acknowledge before handing back: the control thread wakes on the
        // returned snapshot and must see the new version then.
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

    /// This worker's index, as in [`SwapError::Timeout`].
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
    /// means a waiting publisher, woken by these snapshots, no longer counts it.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::thread::{self, ThreadId};

    /// Records on which thread each snapshot was freed.
    #[derive(Default)]
    struct DropLog {
        drops: Mutex<Vec<(u64, ThreadId)>>,
    }

    impl DropLog {
        fn versions(&self) -> Vec<u64> {
            let mut v: Vec<u64> = self.drops.lock().unwrap().iter().map(|d| d.0).collect();
            v.sort_unstable();
            v
        }

        fn off_thread(&self, control: ThreadId) -> Vec<u64> {
            let drops = self.drops.lock().unwrap();
            drops
                .iter()
                .filter(|d| d.1 != control)
                .map(|d| d.0)
                .collect()
        }
    }

    struct Snap {
        version: u64,
        log: Arc<DropLog>,
    }

    impl Versioned for Snap {
        fn version(&self) -> u64 {
            self.version
        }
    }

    impl Drop for Snap {
        fn drop(&mut self) {
            let me = thread::current().id();
            self.log.drops.lock().unwrap().push((self.version, me));
        }
    }

    fn snap(version: u64, log: &Arc<DropLog>) -> Arc<Snap> {
        Arc::new(Snap {
            version,
            log: Arc::clone(log),
        })
    }

    fn setup(workers: usize) -> (Arc<DropLog>, Publisher<Snap>, Vec<Subscriber<Snap>>) {
        let log = Arc::new(DropLog::default());
        let (p, s) = channel(snap(1, &log), workers);
        (log, p, s)
    }

    #[test]
    fn ends_move_to_their_threads() {
        fn send<S: Send>() {}
        send::<Publisher<crate::tables::Tables>>();
        send::<Subscriber<crate::tables::Tables>>();
    }

    #[test]
    fn refresh_without_publish_keeps_the_snapshot() {
        let (_log, p, mut subs) = setup(1);
        let a: *const Snap = subs[0].refresh();
        let b: *const Snap = subs[0].refresh();
        assert_eq!(a, b);
        assert_eq!(subs[0].version(), 1);
        assert!(p.is_acknowledged(1));
        assert_eq!(p.worker_version(0), Some(1));
    }

    #[test]
    fn publish_is_adopted_and_acknowledged_at_refresh() {
        let (log, mut p, mut subs) = setup(2);
        let ticket = p.publish(snap(2, &log)).unwrap();
        assert_eq!(ticket.version(), 2);
        assert!(!ticket.is_acknowledged());
        // Nothing changes for a worker until it refreshes.
        assert_eq!(subs[0].current().version, 1);
        assert_eq!(subs[0].refresh().version, 2);
        assert!(!ticket.is_acknowledged());
        assert_eq!(
            ticket.wait(Duration::ZERO),
            Err(SwapError::Timeout {
                version: 2,
                lagging: vec![1]
            })
        );
        assert_eq!(subs[1].refresh().version, 2);
        assert!(ticket.is_acknowledged());
        ticket.wait(Duration::ZERO).unwrap();
        // Version 1 was held by both workers and the publisher: freed once all
        // three let go, by the garbage collection (wait drained what came back).
        p.collect_garbage();
        assert_eq!(log.versions(), vec![1]);
    }

    #[test]
    fn stale_and_equal_versions_are_rejected_without_effect() {
        let (log, mut p, mut subs) = setup(1);
        p.publish(snap(5, &log)).unwrap();
        assert_eq!(
            p.publish(snap(5, &log)).unwrap_err(),
            SwapError::Stale {
                version: 5,
                current: 5
            }
        );
        assert_eq!(
            p.publish(snap(3, &log)).unwrap_err(),
            SwapError::Stale {
                version: 3,
                current: 5
            }
        );
        assert_eq!(p.version(), 5);
        assert_eq!(subs[0].refresh().version, 5);
        // The rejected snapshots were dropped by the caller's thread right away.
        p.collect_garbage();
        assert_eq!(log.versions(), vec![1, 3, 5]);
    }

    #[test]
    fn a_slow_worker_skips_to_the_newest_snapshot() {
        let (log, mut p, mut subs) = setup(1);
        p.publish(snap(2, &log)).unwrap();
        p.publish(snap(3, &log)).unwrap();
        p.publish(snap(4, &log)).unwrap();
        // 2 and 3 were replaced in the queue and freed by publish.
        assert_eq!(log.versions(), vec![2, 3]);
        assert_eq!(subs[0].refresh().version, 4);
        assert!(p.is_acknowledged(4));
        assert_eq!(p.collect_garbage(), 1);
        assert_eq!(log.versions(), vec![1, 2, 3]);
    }

    #[test]
    fn ticket_wait_succeeds_once_acknowledged_and_can_be_retried() {
        let (log, mut p, mut subs) = setup(1);
        let ticket = p.publish(snap(2, &log)).unwrap();
        assert!(ticket.wait(Duration::ZERO).is_err());
        subs[0].refresh();
        assert!(ticket.wait(Duration::ZERO).is_ok());
        // An older version is acknowledged too.
        assert!(p.wait_for(1, Duration::ZERO).is_ok());
        assert!(p.wait_for(3, Duration::ZERO).is_err());
    }

    #[test]
    fn dropped_worker_stops_holding_acknowledgements_back() {
        let (log, mut p, mut subs) = setup(2);
        let ticket = p.publish(snap(2, &log)).unwrap();
        subs[0].refresh();
        assert_eq!(
            ticket.wait(Duration::ZERO).unwrap_err().to_string(),
            "workers [1] did not acknowledge snapshot version 2 in time"
        );
        let gone = subs.pop().unwrap();
        drop(gone);
        ticket.wait(Duration::ZERO).unwrap();
        assert_eq!(p.worker_version(1), None);
        assert_eq!(p.lagging(100), vec![0]);
        // Its queued snapshot and its current one came back: nothing leaked, and
        // later publishes skip it.
        p.publish(snap(3, &log)).unwrap();
        subs[0].refresh();
        assert!(p.is_acknowledged(3));
        p.collect_garbage();
        assert_eq!(log.versions(), vec![1, 2]);
    }

    #[test]
    fn zero_workers_acknowledge_immediately() {
        let (log, mut p, subs) = setup(0);
        assert!(subs.is_empty());
        p.publish(snap(2, &log))
            .unwrap()
            .wait(Duration::ZERO)
            .unwrap();
        assert_eq!(p.workers(), 0);
    }

    #[test]
    fn worker_outlives_publisher() {
        let (log, mut p, mut subs) = setup(1);
        p.publish(snap(2, &log)).unwrap();
        drop(p);
        // Shutdown order the other way round: the worker still gets what was
        // queued and frees the old snapshot itself.
        assert_eq!(subs[0].refresh().version, 2);
        assert_eq!(subs[0].refresh().version, 2);
        drop(subs);
        assert_eq!(log.versions(), vec![1, 2]);
    }

    #[test]
    fn every_snapshot_is_freed_exactly_once() {
        let (log, mut p, mut subs) = setup(3);
        for v in 2..=50 {
            p.publish(snap(v, &log)).unwrap();
            // Workers pick up at different rates.
            for (i, s) in subs.iter_mut().enumerate() {
                if v % (i as u64 + 1) == 0 {
                    s.refresh();
                }
            }
        }
        drop(subs);
        p.collect_garbage();
        drop(p);
        assert_eq!(log.versions(), (1..=50).collect::<Vec<_>>());
        assert!(log.off_thread(thread::current().id()).is_empty());
    }

    /// Several workers spin on `refresh` while the control thread publishes 1,000
    /// versions and waits for each acknowledgement.
    #[test]
    fn concurrent_publish_and_refresh() {
        const WORKERS: usize = 4;
        const VERSIONS: u64 = 1_000;
        use std::sync::atomic::AtomicBool;

        let control = thread::current().id();
        let (log, mut p, subs) = setup(WORKERS);
        // Highest version the control thread has seen acknowledged.
        let floor = Arc::new(AtomicU64::new(1));
        let stop = Arc::new(AtomicBool::new(false));

        let handles: Vec<_> = subs
            .into_iter()
            .map(|mut sub| {
                let floor = Arc::clone(&floor);
                let stop = Arc::clone(&stop);
                thread::spawn(move || {
                    let mut last = 0;
                    let mut seen = 0u64;
                    let mut iterations = 0u64;
                    while !stop.load(Ordering::Acquire) {
                        // Read the floor *before* refreshing: a version
                        // acknowledged before this load must be what refresh
                        // returns or older than it.
                        let acked = floor.load(Ordering::SeqCst);
                        let v = sub.refresh().version;
                        assert!(v >= last, "version went back from {last} to {v}");
                        assert!(v >= acked, "saw {v} after {acked} was acknowledged");
                        // Version 1 may be skipped if 2 came before the
                        // first refresh; every later one must be seen.
                        if v != last && v > 1 {
                            seen += 1;
                        }
                        last = v;
                        iterations += 1;
                        if iterations.is_multiple_of(64) {
                            thread::yield_now();
                        }
                    }
                    (last, seen)
                })
            })
            .collect();

        for v in 2..=VERSIONS + 1 {
            let ticket = p.publish(snap(v, &log)).unwrap();
            ticket.wait(Duration::from_secs(30)).unwrap();
            assert!((0..WORKERS).all(|w| p.worker_version(w).unwrap() >= v));
            floor.store(v, Ordering::SeqCst);
            p.collect_garbage();
        }
        stop.store(true, Ordering::Release);
        for h in handles {
            let (last, seen) = h.join().unwrap();
            assert_eq!(last, VERSIONS + 1);
            // Every version was waited for, so each worker saw each one.
            assert_eq!(seen, VERSIONS);
        }
        // The workers' subscribers were dropped on their threads, handing their
        // current snapshots back.
        p.collect_garbage();
        assert_eq!(log.versions(), (1..=VERSIONS).collect::<Vec<_>>());
        drop(p);
        assert_eq!(log.versions(), (1..=VERSIONS + 1).collect::<Vec<_>>());
        assert_eq!(log.off_thread(control), Vec::<u64>::new());
    }

    /// Publishing without waiting (workers skip versions), garbage collected only
    /// now and then, and one worker stopping halfway: versions stay monotonic, the
    /// return queue stays within its bound (a debug assertion would fire in the
    /// worker), a stopped worker does not block acknowledgements, and every
    /// snapshot is freed on the control thread.
    #[test]
    fn concurrent_publish_without_waiting() {
        const WORKERS: usize = 3;
        const VERSIONS: u64 = 1_000;
        use std::sync::atomic::AtomicBool;

        let control = thread::current().id();
        let (log, mut p, subs) = setup(WORKERS);
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = subs
            .into_iter()
            .map(|mut sub| {
                let stop = Arc::clone(&stop);
                thread::spawn(move || {
                    // Worker 0 stops once it has seen version 300.
                    let quit_at = if sub.index() == 0 { 300 } else { u64::MAX };
                    let mut last = 0;
                    while !stop.load(Ordering::Acquire) && last < quit_at {
                        let v = sub.refresh().version;
                        assert!(v >= last, "version went back from {last} to {v}");
                        last = v;
                        thread::yield_now();
                    }
                    last
                })
            })
            .collect();

        for v in 2..=VERSIONS + 1 {
            let ticket = p.publish(snap(v, &log)).unwrap();
            if v % 100 == 0 {
                ticket.wait(Duration::from_secs(30)).unwrap();
                p.collect_garbage();
            }
        }
        p.wait_for(VERSIONS + 1, Duration::from_secs(30)).unwrap();
        stop.store(true, Ordering::Release);
        let lasts: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(lasts[0] >= 300 && lasts[0] <= VERSIONS + 1);
        assert_eq!(&lasts[1..], &[VERSIONS + 1; WORKERS - 1]);
        assert_eq!(p.worker_version(0), None);
        p.collect_garbage();
        drop(p);
        assert_eq!(log.versions(), (1..=VERSIONS + 1).collect::<Vec<_>>());
        assert_eq!(log.off_thread(control), Vec::<u64>::new());
    }
}
