//! Packet trace in the daemon: the hub the control thread turns tracing on and
//! off through, the worker's side ([`WorkerTrace`]) and the collector
//! ([`Tracer`]) that drains the workers' rings into a pcapng file. What is
//! matched, recorded and written is `eip_control::trace`.
//!
//! # Cost when off
//!
//! A worker holds no session: `process_batch` tests one plain field (an
//! `Option`) per batch, and `on_poll` makes one `Acquire` load of the hub's
//! generation per poll (a plain load on x86). Nothing per packet.
//!
//! # When on
//!
//! The collector builds a [`Session`]: the compiled filter and, per worker, a
//! lane of two bounded queues over a pool of records allocated now, each with
//! room for the trace's snap length. It publishes the session and bumps the
//! generation; each worker adopts it at its next poll (a `try_lock` once per
//! trace start or stop, never per batch). Per batch the worker then matches
//! each frame, stages the first `snap` bytes of each as received (a buffer the
//! worker grows when it adopts a session and keeps), and after the pipeline
//! fills records from its lane's free queue and pushes them to its full queue:
//! rx (the staged bytes, with the verdict), then tx or drop (the bytes as
//! they are then). No free record: the record is counted lost, the worker never
//! waits. The collector drains, writes, and gives the records back.
//!
//! At the end the collector withdraws the session, waits until every worker
//! has let go of it, and drops it: the records are freed on the control thread.

mod collector;
mod worker;

pub use collector::Tracer;
pub use worker::WorkerTrace;

use crossbeam::queue::ArrayQueue;
use eip_control::trace::{Matcher, TraceRecord};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// What the control thread and the workers share: the session in force, if any.
#[derive(Debug)]
pub struct TraceHub {
    /// Bumped (Release) after every change of `session`.
    generation: AtomicU64,
    session: Mutex<Option<Arc<Session>>>,
    /// Per lane (worker): the generation it last adopted.
    acks: Box<[AtomicU64]>,
}

impl TraceHub {
    /// A hub for `lanes` workers, tracing off.
    pub fn new(lanes: usize) -> Arc<TraceHub> {
        Arc::new(TraceHub {
            generation: AtomicU64::new(0),
            session: Mutex::new(None),
            acks: (0..lanes).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    pub fn lanes(&self) -> usize {
        self.acks.len()
    }

    /// Puts `session` (or none) in force; returns the new generation.
    pub(crate) fn set(&self, session: Option<Arc<Session>>) -> u64 {
        *self.session.lock().unwrap_or_else(PoisonError::into_inner) = session;
        // Release: a worker that sees this generation finds the session set.
        self.generation.fetch_add(1, Ordering::Release) + 1
    }

    /// Has every worker adopted generation `generation` (or a later one)?
    pub(crate) fn all_adopted(&self, generation: u64) -> bool {
        self.acks
            .iter()
            .all(|a| a.load(Ordering::Acquire) >= generation)
    }
}

/// One trace in force.
#[derive(Debug)]
pub struct Session {
    pub(crate) matcher: Matcher,
    /// Frames per batch the workers stage at most (the driver's batch size).
    pub(crate) batch: usize,
    /// Bytes kept per frame.
    pub(crate) snap: usize,
    pub(crate) lanes: Box<[Lane]>,
}

/// One worker's two queues: records to fill, records filled. Single producer
/// (the worker) and single consumer (the collector) each way.
#[derive(Debug)]
pub struct Lane {
    pub(crate) free: ArrayQueue<TraceRecord>,
    pub(crate) full: ArrayQueue<TraceRecord>,
    /// Records the worker had no free record for.
    pub(crate) lost: AtomicU64,
}

impl Session {
    /// A session with `records` records of `snap` bytes per lane.
    pub fn new(matcher: Matcher, lanes: usize, records: usize, snap: usize, batch: usize) -> Self {
        let records = records.max(1);
        let lanes = (0..lanes)
            .map(|_| {
                let free = ArrayQueue::new(records);
                for _ in 0..records {
                    let _ = free.push(TraceRecord::with_snap(snap));
                }
                Lane {
                    free,
                    full: ArrayQueue::new(records),
                    lost: AtomicU64::new(0),
                }
            })
            .collect();
        Session {
            matcher,
            batch,
            snap,
            lanes,
        }
    }

    /// Records lost in all lanes.
    pub fn lost(&self) -> u64 {
        self.lanes
            .iter()
            .map(|l| l.lost.load(Ordering::Relaxed))
            .sum()
    }
}
