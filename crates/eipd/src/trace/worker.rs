//! The worker's side of a trace: adopt the session at a poll, stage the frames
//! before the pipeline, record after it. See the [module docs](super) for the
//! costs.

use super::{Lane, Session, TraceHub};
use eip_control::trace::Point;
use eip_dataplane::{Frame, PortId, Verdict};
use std::sync::atomic::Ordering;
use std::sync::{Arc, TryLockError};

/// One worker's tracing state.
#[derive(Debug)]
pub struct WorkerTrace {
    hub: Arc<TraceHub>,
    /// This worker's lane in a session (its index among the workers).
    lane: usize,
    /// The device queue it serves, written into each record.
    queue: u32,
    /// The hub generation last adopted.
    seen: u64,
    /// The trace in force; `None` is "off".
    session: Option<Arc<Session>>,
    /// The current batch as received, `session.snap` bytes per frame. Grown when
    /// a session is adopted, then kept: never allocated per batch.
    stage: Vec<u8>,
    /// Per staged frame: bytes staged, length as received, headers matched.
    staged_len: Vec<u32>,
    rx_len: Vec<u32>,
    rx_match: Vec<bool>,
    /// Frames of the current batch staged.
    staged: usize,
}

impl WorkerTrace {
    /// The trace state of worker `lane` (serving device queue `queue`), off.
    pub fn new(hub: Arc<TraceHub>, lane: usize, queue: u32) -> WorkerTrace {
        WorkerTrace {
            hub,
            lane,
            queue,
            seen: 0,
            session: None,
            stage: Vec::new(),
            staged_len: Vec::new(),
            rx_len: Vec::new(),
            rx_match: Vec::new(),
            staged: 0,
        }
    }

    /// Is a trace in force? A plain field, refreshed by [`Self::refresh`].
    #[inline(always)]
    pub fn is_on(&self) -> bool {
        self.session.is_some()
    }

    /// Bytes of staging this worker holds (0 until a trace first runs on it).
    #[cfg(test)]
    pub fn staging_capacity(&self) -> usize {
        self.stage.capacity()
    }

    /// At a poll (batch boundary): adopts the hub's session if it changed. One
    /// atomic load when nothing changed.
    #[inline]
    pub fn refresh(&mut self) {
        let generation = self.hub.generation.load(Ordering::Acquire);
        if generation != self.seen {
            self.adopt(generation);
        }
    }

    #[cold]
    #[inline(never)]
    fn adopt(&mut self, generation: u64) {
        // Never wait for the control thread: if it holds the lock, next poll.
        let session = match self.hub.session.try_lock() {
            Ok(slot) => slot.clone(),
            Err(TryLockError::Poisoned(slot)) => slot.into_inner().clone(),
            Err(TryLockError::WouldBlock) => return,
        };
        if let Some(s) = &session {
            // Once per trace start, off the per-batch path; kept afterwards.
            grow(&mut self.stage, s.batch * s.snap, 0);
            grow(&mut self.staged_len, s.batch, 0);
            grow(&mut self.rx_len, s.batch, 0);
            grow(&mut self.rx_match, s.batch, false);
        }
        // The collector keeps its own reference until every worker has
        // acknowledged, so dropping ours here frees nothing.
        self.session = session;
        self.staged = 0;
        self.seen = generation;
        if let Some(ack) = self.hub.acks.get(self.lane) {
            ack.store(generation, Ordering::Release);
        }
    }

    /// Before the pipeline: matches each frame as received and stages its bytes.
    /// Call only when [`Self::is_on`].
    #[inline(never)]
    pub fn before(&mut self, frames: &[Frame<'_>], vxlan_port: u16) {
        self.staged = 0;
        let Some(s) = self.session.as_deref() else {
            return;
        };
        if s.matcher.drop_filter().is_some() {
            // Only drops are recorded, as the pipeline leaves them.
            return;
        }
        let n = frames.len().min(s.batch);
        for (i, frame) in frames[..n].iter().enumerate() {
            let data = frame.data();
            self.rx_match[i] = s.matcher.frame_matches(data, vxlan_port);
            // Every frame: one that does not match now may once rewritten (the
            // return of an EIP's flow is SNATed to the EIP by the pipeline).
            let k = data.len().min(s.snap);
            let at = i * s.snap;
            self.stage[at..at + k].copy_from_slice(&data[..k]);
            self.staged_len[i] = k as u32;
            self.rx_len[i] = data.len() as u32;
        }
        self.staged = n;
    }

    /// After the pipeline: records the traced frames at rx (as staged) and at tx
    /// or drop (as they are now). Call only when [`Self::is_on`].
    #[inline(never)]
    pub fn after(
        &mut self,
        now_ns: u64,
        frames: &[Frame<'_>],
        verdicts: &[Verdict],
        vxlan_port: u16,
    ) {
        let Some(s) = self.session.as_deref() else {
            return;
        };
        let Some(lane) = s.lanes.get(self.lane) else {
            return;
        };
        let m = &s.matcher;
        let out = Out {
            lane,
            now_ns,
            queue: self.queue,
        };
        for (i, (frame, &verdict)) in frames.iter().zip(verdicts).enumerate() {
            let data = frame.data();
            if let Some(drop) = m.drop_filter() {
                if drop.matches(verdict) && m.frame_matches(data, vxlan_port) {
                    out.emit(Point::Drop, frame.port(), verdict, data);
                }
                continue;
            }
            let staged = i < self.staged;
            let traced = (staged && self.rx_match[i])
                || (matches!(verdict, Verdict::Tx(_)) && m.frame_matches(data, vxlan_port));
            if !traced {
                continue;
            }
            if staged {
                let at = i * s.snap;
                let bytes = &self.stage[at..at + self.staged_len[i] as usize];
                out.emit_cut(Point::Rx, frame.port(), verdict, bytes, self.rx_len[i]);
            } else {
                // Beyond the staging area (a batch larger than announced).
                lane.lost.fetch_add(1, Ordering::Relaxed);
            }
            match verdict {
                Verdict::Tx(port) => out.emit(Point::Tx, port, verdict, data),
                Verdict::Drop(_) => out.emit(Point::Drop, frame.port(), verdict, data),
                Verdict::ToKernel | Verdict::ToControl => {}
            }
        }
        self.staged = 0;
    }
}

/// Where one batch's records go.
struct Out<'a> {
    lane: &'a Lane,
    now_ns: u64,
    queue: u32,
}

impl Out<'_> {
    #[inline]
    fn emit(&self, point: Point, port: PortId, verdict: Verdict, data: &[u8]) {
        self.emit_cut(point, port, verdict, data, data.len() as u32);
    }

    /// Fills a free record and queues it; without a free record, counts it lost.
    #[inline]
    fn emit_cut(&self, point: Point, port: PortId, verdict: Verdict, data: &[u8], len: u32) {
        let Some(mut record) = self.lane.free.pop() else {
            self.lane.lost.fetch_add(1, Ordering::Relaxed);
            return;
        };
        record.fill(
            self.now_ns,
            self.queue,
            point,
            port,
            verdict,
            data,
            len as usize,
        );
        if let Err(record) = self.lane.full.push(record) {
            // Cannot happen: both queues hold the same records.
            self.lane.lost.fetch_add(1, Ordering::Relaxed);
            let back = self.lane.free.push(record);
            debug_assert!(back.is_ok(), "a trace record has no queue to go to");
        }
    }
}

/// Grows `v` to `len` (never shrinks, so a later smaller trace reuses it).
fn grow<T: Clone>(v: &mut Vec<T>, len: usize, value: T) {
    if v.len() < len {
        v.resize(len, value);
    }
}
