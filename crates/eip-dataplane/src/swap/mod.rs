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
//! `wait` polls (spins briefly, then sleeps between looks) rather than blocking
//! on the return queue: a blocked receiver would have to be woken by the worker,
//! a system call under the channel's mutex inside `refresh`.
//!
//! Idle workers must acknowledge too, so **the worker loop calls `refresh` on every
//! poll iteration, including the ones that received no packet**:
//!
//! ```text
//! loop {
//!     let tables = subscriber.refresh(); // every iteration, even with an empty batch
//!     let n = port.receive(&mut frames);
//!     if n > 0 {
//!         pipeline.process(now, tables, &mut frames[..n], &mut verdicts[..n]);
//!     }
//! }
//! ```
//!
//! Control side (a complete example is on [`channel()`]):
//!
//! ```text
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
//! `Release` *before* it sends the old snapshot back; the control thread loads it
//! with `Acquire` each time it looks.
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

mod publisher;
mod slot;
mod subscriber;
#[cfg(test)]
mod tests;

pub use publisher::{Publisher, Ticket};
pub use subscriber::Subscriber;

use crossbeam::channel;
use crossbeam::utils::CachePadded;
use publisher::Inbox;
use slot::{Shared, WorkerSlot};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

/// A snapshot that carries its own sequence number. Numbers a [`Publisher`]
/// publishes must strictly increase; they are what workers acknowledge.
pub trait Versioned {
    /// The snapshot's sequence number.
    fn version(&self) -> u64;
}

/// Tables are published by [`Tables::generation`](crate::tables::Tables::generation),
/// which every snapshot bumps (health-only ones too), not by the operator's
/// description version.
impl Versioned for crate::tables::Tables {
    // The swap's order is the snapshot sequence, on purpose (see above).
    #[allow(clippy::misnamed_getters)]
    #[inline]
    fn version(&self) -> u64 {
        self.generation
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
