//! The poll-mode worker: one thread, one queue set, one UMEM, no locks.
//!
//! One loop iteration:
//! 1. reclaim TX completions of every port into the free list;
//! 2. top up every port's fill ring from the free list;
//! 3. send up to [`INJECT_BURST`] frames the control thread queued (path probes,
//!    [`super::inject`]): each is copied into a frame off the free list and
//!    written to its port's TX ring exactly like a forwarded frame;
//! 4. receive up to one batch across the ports' RX rings (round-robin start, so a
//!    busy port cannot starve the other);
//! 5. wrap the frames in [`Frame`]s over their UMEM chunks and call the processor
//!    once for the whole batch;
//! 6. act on the verdicts: stage `Tx` frames per port (bounded by the batch size),
//!    recycle everything else;
//! 7. write staged frames to the TX rings; what does not fit is dropped and
//!    counted (`tx_ring_full`), never queued: a growing staging queue only adds
//!    latency and cache misses when the link is saturated;
//! 8. wake the kernel only where `needs_wakeup()` says so.
//!
//! Nothing is allocated after the worker is built. The stop flag is read once per
//! iteration with `Relaxed`: it publishes no data, and the thread is joined after
//! it stops, which orders everything else.
//!
//! Why one file: the loop is one state machine over the rings and the ledger it
//! owns; its steps stay together, in the order above, so that the argument that
//! every frame is in exactly one place can be read in one sitting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xdpilone::xdp::XdpDesc;

use eip_dataplane::frame::{Frame, PortId, Verdict};

use super::config::IdlePolicy;
use super::control::ControlQueue;
use super::frames::{AuditError, DeviceIdx, FrameCounts, FrameIdx, FrameLedger, MAX_DEVICES};
use super::inject::{InjectQueue, INJECT_BURST};
use super::socket::{DeviceRings, QueueSet};
use super::stats::{WorkerCounters, WorkerStats, PUBLISH_EVERY};
use super::umem::{UmemArea, UmemLayout};

/// The packet pipeline as the worker sees it. The lead implements it for
/// `Pipeline` (passing `Timestamp(now_ns)` and the current tables snapshot).
pub trait PacketProcessor: Send {
    /// Processes one batch: `verdicts[i]` is the fate of `frames[i]`, and must be
    /// written for every `i` (the worker pre-fills `ToKernel`). Frames may be
    /// rewritten in place and their window moved (`push_head`/`pull_head`); a `Tx`
    /// frame is sent from its final `head()` for `len()` bytes. Frames must stay
    /// in their slots: the worker maps `frames[i]` back to its UMEM frame by
    /// position (checked in debug builds).
    ///
    /// `now_ns` is a monotonic clock in nanoseconds, read once per batch, shared
    /// by all workers of a runtime.
    fn process_batch(&mut self, now_ns: u64, frames: &mut [Frame<'_>], verdicts: &mut [Verdict]);

    /// Called when the worker publishes its own counters (every
    /// [`PUBLISH_EVERY`] loop iterations, and once more, `last`, when it
    /// stops), off the per-packet path: the place to copy the pipeline's
    /// counters to wherever the control thread reads them. Each call holds up
    /// the worker for what it copies, so a large copy should be spread over
    /// calls, and only the `last` one need be complete.
    fn on_publish(&mut self, _last: bool) {}

    /// Called once per poll-loop iteration, with or without traffic, before
    /// receiving: the place to pick up a new table snapshot at a batch boundary
    /// (an idle worker must still acknowledge new tables).
    fn on_poll(&mut self) {}
}

/// How many times to ask a ring before concluding it is empty (or full).
///
/// xdpilone serves `receive(n)`, `transmit(n)`, `fill(n)` and `complete(n)` from
/// its cached copy of the kernel's index whenever that cache shows at least one
/// entry, even if fewer than `n`; it re-reads the kernel's index only once the
/// cache is exhausted. So one call can return far fewer entries than the ring
/// really has (it made a TX ring look full after exactly `ring_size` packets).
/// A second call, made after consuming everything the first one gave, refreshes
/// the cache.
const CACHED_ROUNDS: usize = 2;

/// A loop iteration longer than this counts as a stall (`stalls`).
const STALL_NS: u64 = 1_000_000;

/// `sendto()` calls per TX ring and loop iteration, at most.
const MAX_KICKS: usize = 4;

/// What a worker hands back when it stops.
#[derive(Debug)]
pub struct WorkerExit {
    /// Device queue it served.
    pub queue: u32,
    /// Final counters.
    pub counters: WorkerCounters,
    /// Where the frames were after draining the TX rings. Frames in `fill` are
    /// with the kernel until the sockets close; everything else should be free.
    pub frames: FrameCounts,
    /// Result of the ledger's full recount.
    pub audit: Result<(), AuditError>,
}

/// One received descriptor, resolved.
#[derive(Debug, Clone, Copy)]
struct RxDesc {
    frame: FrameIdx,
    offset: u32,
    len: u32,
    dev: DeviceIdx,
}

/// The per-thread state of one queue set.
pub(crate) struct Worker<P> {
    queue: u32,
    devices: Vec<DeviceRings>,
    ports: [PortId; MAX_DEVICES],
    ledger: FrameLedger,
    layout: UmemLayout,
    processor: P,
    stop: Arc<AtomicBool>,
    stats: Arc<WorkerStats>,
    control: Arc<ControlQueue>,
    inject: Arc<InjectQueue>,
    counters: WorkerCounters,
    epoch: Instant,
    idle: IdlePolicy,
    batch: usize,
    /// Frames each port's fill+RX side may hold; the rest serve TX in flight.
    fill_target: u32,
    rr: usize,
    // Scratch, allocated once.
    rx: Vec<RxDesc>,
    frames: Vec<Frame<'static>>,
    verdicts: Vec<Verdict>,
    staged: Vec<Vec<XdpDesc>>,
    /// Declared last: dropped after the rings (see `UmemArea`).
    area: UmemArea,
}

/// Reuses the allocation of an empty `Vec<Frame>` for another lifetime.
///
/// The frames of a batch borrow the UMEM only for that batch, but the vector that
/// holds them should live as long as the worker. Collecting an emptied
/// `vec::IntoIter` through `map` into a `Vec` of a same-layout type reuses the
/// allocation (std's in-place collect); the unit test checks that it does.
fn relifetime<'a, 'b>(mut v: Vec<Frame<'a>>) -> Vec<Frame<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("vector is empty"))
        .collect()
}

/// Knobs of one worker.
pub(crate) struct WorkerParams {
    pub batch: usize,
    pub idle: IdlePolicy,
    pub epoch: Instant,
}

/// What [`write_staged`] did.
#[derive(Debug, Clone, Copy, Default)]
struct Written {
    packets: u64,
    bytes: u64,
    /// Staged frames that found no room in their TX ring (recycled).
    ring_full: u64,
}

impl<P: PacketProcessor> Worker<P> {
    /// Takes over the rings of `set` and fills its fill rings.
    pub(crate) fn new(
        set: QueueSet,
        processor: P,
        params: WorkerParams,
        stop: Arc<AtomicBool>,
        stats: Arc<WorkerStats>,
        control: Arc<ControlQueue>,
        inject: Arc<InjectQueue>,
    ) -> Self {
        let QueueSet {
            queue,
            devices,
            area,
            ..
        } = set;
        let layout = area.layout();
        let n = devices.len();
        let mut ports = [PortId::MAX; MAX_DEVICES];
        for (slot, d) in ports.iter_mut().zip(&devices) {
            *slot = d.port;
        }
        // Half the frames may sit in fill/RX rings, the other half carries TX.
        let fill_target = layout.frames() / (2 * n as u32);
        let batch = params.batch;
        let mut worker = Worker {
            queue,
            ports,
            ledger: FrameLedger::new(layout.frames(), n),
            layout,
            processor,
            stop,
            stats,
            control,
            inject,
            counters: WorkerCounters::default(),
            epoch: params.epoch,
            idle: params.idle,
            batch,
            fill_target,
            rr: 0,
            rx: Vec::with_capacity(batch),
            frames: Vec::with_capacity(batch),
            verdicts: vec![Verdict::ToKernel; batch],
            staged: (0..n).map(|_| Vec::with_capacity(batch)).collect(),
            devices,
            area,
        };
        worker.refill();
        worker
    }

    /// Runs until the stop flag is set, then drains the TX rings and reports.
    pub(crate) fn run(mut self) -> WorkerExit {
        let mut iteration: u64 = 0;
        let mut empty_polls: u32 = 0;
        let mut last_ns = self.now_ns();
        let mut last_busy = false;
        while !self.stop.load(Ordering::Relaxed) {
            // One clock read per iteration serves as the batch timestamp, the
            // stall detector (an iteration takes microseconds unless the thread
            // was preempted, which on a shared core lets the fill ring run dry)
            // and the busy-time account.
            let now_ns = self.now_ns();
            let took = now_ns - last_ns;
            if took > STALL_NS {
                self.counters.stalls += 1;
            } else if last_busy {
                self.counters.busy_ns += took;
            }
            last_ns = now_ns;
            self.reclaim_completions();
            self.refill();
            self.processor.on_poll();
            self.inject();
            let received = self.receive();
            last_busy = received > 0;
            if received > 0 {
                empty_polls = 0;
                self.process_batch(now_ns);
            } else {
                empty_polls = empty_polls.saturating_add(1);
                self.counters.idle_polls += 1;
                self.idle(empty_polls);
            }
            self.kick_tx();
            iteration += 1;
            if iteration & (PUBLISH_EVERY - 1) == 0 {
                self.publish(false);
            }
        }
        self.drain(Duration::from_millis(200));
        self.publish(true);
        WorkerExit {
            queue: self.queue,
            counters: self.counters,
            frames: self.ledger.counts(),
            audit: self.ledger.audit(),
        }
    }

    #[inline]
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn publish(&mut self, last: bool) {
        self.stats.publish(&self.counters, &self.ledger.counts());
        self.processor.on_publish(last);
    }

    fn idle(&mut self, empty_polls: u32) {
        match self.idle {
            IdlePolicy::BusyPoll => std::hint::spin_loop(),
            IdlePolicy::Backoff {
                after_empty_polls,
                sleep,
            } => {
                if empty_polls >= after_empty_polls {
                    std::thread::sleep(sleep);
                } else {
                    std::hint::spin_loop();
                }
            }
        }
    }

    /// Completion rings -> free list.
    fn reclaim_completions(&mut self) {
        let Worker {
            devices,
            ledger,
            layout,
            counters,
            ..
        } = self;
        for (dev, d) in devices.iter_mut().enumerate() {
            // Two rounds: see `CACHED_ROUNDS`.
            for _ in 0..CACHED_ROUNDS {
                let mut reader = d.comp.complete(u32::MAX);
                if reader.capacity() == 0 {
                    break;
                }
                while let Some(addr) = reader.read() {
                    let ok = layout.locate(addr).is_some_and(|(frame, _)| {
                        ledger.completed(frame, dev as DeviceIdx).is_ok()
                    });
                    if !ok {
                        counters.completion_invalid += 1;
                    }
                }
                reader.release();
            }
        }
    }

    /// Free list -> fill rings, up to each port's share; wakes the driver where
    /// it asks for it.
    fn refill(&mut self) {
        let Worker {
            devices,
            ledger,
            layout,
            counters,
            fill_target,
            ..
        } = self;
        for (dev, d) in devices.iter_mut().enumerate() {
            let dev = dev as DeviceIdx;
            let have = ledger.counts().fill[usize::from(dev)];
            let want = fill_target.saturating_sub(have).min(ledger.free_len());
            if have < *fill_target && want == 0 {
                counters.free_list_empty += 1;
            }
            let mut left = want;
            for _ in 0..CACHED_ROUNDS {
                if left == 0 {
                    break;
                }
                let mut writer = d.fill.fill(left);
                let room = writer.capacity();
                // `insert` zips our iterator with the reserved slots and polls ours
                // first: yielding at most `room` items means none is taken from the
                // ledger without being written.
                let written = writer.insert(
                    (0..room)
                        .map_while(|_| ledger.post_fill(dev))
                        .map(|frame| layout.addr_of(frame)),
                );
                // Release store of the producer index: the kernel sees the
                // addresses only after this.
                writer.commit();
                left -= written;
                if written < room || room == 0 {
                    break;
                }
            }
            // A zero-copy driver with need-wakeup stops taking fill buffers once
            // it ran dry; only a syscall restarts it. (Never set in copy mode.)
            if d.fill.needs_wakeup() {
                d.fill.wake();
                counters.fill_wakeups += 1;
            }
        }
    }

    /// RX rings -> `self.rx`; returns the number of frames received.
    fn receive(&mut self) -> usize {
        let Worker {
            devices,
            ledger,
            layout,
            counters,
            rx,
            batch,
            rr,
            ..
        } = self;
        rx.clear();
        let n = devices.len();
        let frame_size = layout.frame_size();
        for k in 0..n {
            let dev = (*rr + k) % n;
            let d = &mut devices[dev];
            let dev = dev as DeviceIdx;
            for _ in 0..CACHED_ROUNDS {
                let room = *batch - rx.len();
                if room == 0 {
                    break;
                }
                // The ring's acquire load of the kernel's producer index (inside
                // `receive`) orders our reads of the frames after the kernel's writes.
                let mut reader = d.rx.receive(room as u32);
                if reader.capacity() == 0 {
                    break;
                }
                while let Some(desc) = reader.read() {
                    let Some((frame, offset)) = layout.locate(desc.addr) else {
                        counters.rx_invalid += 1;
                        continue;
                    };
                    if ledger.received(frame, dev).is_err() {
                        counters.rx_invalid += 1;
                        continue;
                    }
                    let end = u64::from(offset) + u64::from(desc.len);
                    if end > u64::from(frame_size) || desc.len == 0 {
                        counters.rx_invalid += 1;
                        let recycled = ledger.recycle(frame);
                        debug_assert!(recycled.is_ok());
                        continue;
                    }
                    counters.rx_bytes += u64::from(desc.len);
                    rx.push(RxDesc {
                        frame,
                        offset,
                        len: desc.len,
                        dev,
                    });
                }
                // Returns the RX slots to the kernel (release store of our consumer index).
                reader.release();
            }
        }
        *rr = (*rr + 1) % n;
        counters.rx_packets += rx.len() as u64;
        rx.len()
    }

    /// Runs the processor over `self.rx` and dispatches the verdicts.
    fn process_batch(&mut self, now_ns: u64) {
        let Worker {
            queue,
            devices,
            ports,
            ledger,
            layout,
            processor,
            control,
            counters,
            rx,
            frames,
            verdicts,
            staged,
            area,
            ..
        } = self;
        let n = rx.len();
        counters.batches += 1;

        let mut batch: Vec<Frame<'_>> = relifetime(std::mem::take(frames));
        for d in rx.iter() {
            // SAFETY: the ledger moved `d.frame` from this device's fill ring to
            // `Held` in `receive`, so the kernel no longer writes it; a frame can be
            // `received` only once before it is recycled or transmitted, so no two
            // entries of `rx` name the same frame and the slices are disjoint; they
            // live only until the end of this function (`batch` is emptied below).
            let buf = unsafe { area.frame_mut(d.frame) };
            batch.push(Frame::new(
                buf,
                d.offset as usize,
                d.len as usize,
                ports[d.dev as usize],
            ));
        }
        let verdicts = &mut verdicts[..n];
        verdicts.fill(Verdict::ToKernel);
        processor.process_batch(now_ns, &mut batch, verdicts);

        for ((frame, verdict), d) in batch.iter_mut().zip(verdicts.iter()).zip(rx.iter()) {
            debug_assert!(
                std::ptr::eq(frame.buffer_mut().0.as_ptr(), area.frame_ptr(d.frame)),
                "the processor replaced or reordered frames"
            );
            let keep = match *verdict {
                Verdict::Tx(port) => match ports[..devices.len()].iter().position(|&p| p == port) {
                    Some(out) if !frame.is_empty() => {
                        // Bounded: at most one entry per frame of this batch.
                        staged[out].push(XdpDesc {
                            addr: layout.addr_of(d.frame) + frame.head() as u64,
                            len: frame.len() as u32,
                            options: 0,
                        });
                        true
                    }
                    Some(_) => {
                        counters.tx_invalid += 1;
                        false
                    }
                    None => {
                        counters.tx_no_port += 1;
                        false
                    }
                },
                Verdict::Drop(_) => {
                    counters.dropped += 1;
                    false
                }
                Verdict::ToKernel => {
                    counters.to_kernel += 1;
                    false
                }
                Verdict::ToControl => {
                    if control.push(frame.data(), frame.port(), *queue, now_ns) {
                        counters.to_control += 1;
                    } else {
                        counters.to_control_dropped += 1;
                    }
                    false
                }
            };
            if !keep {
                let recycled = ledger.recycle(d.frame);
                debug_assert!(recycled.is_ok(), "{recycled:?}");
            }
        }
        *frames = relifetime(batch);

        let w = write_staged(devices, staged, ledger, layout);
        counters.tx_packets += w.packets;
        counters.tx_bytes += w.bytes;
        counters.tx_ring_full += w.ring_full;
        debug_assert_eq!(
            ledger.counts().held,
            0,
            "every frame of the batch has a place"
        );
    }

    /// Inject queue -> TX rings: up to [`INJECT_BURST`] frames (and at most one
    /// batch), each copied into a frame taken off the free list. Called between
    /// batches, so `staged` is empty and `held` is 0 on entry and on exit.
    fn inject(&mut self) {
        let Worker {
            devices,
            ports,
            ledger,
            layout,
            inject,
            counters,
            staged,
            batch,
            area,
            ..
        } = self;
        let limit = INJECT_BURST.min(*batch);
        let mut taken = 0;
        while taken < limit {
            let Some(frame) = inject.pop() else {
                break;
            };
            taken += 1;
            let Some(dev) = ports[..devices.len()]
                .iter()
                .position(|&p| p == frame.port())
            else {
                counters.inject_no_port += 1;
                continue;
            };
            let Some(idx) = ledger.take_free() else {
                counters.inject_no_frame += 1;
                continue;
            };
            // SAFETY: `take_free` just moved `idx` from the free list to `Held`:
            // it is in no kernel ring, and no other slice of it is alive (the
            // batch's slices ended with `process_batch`).
            let buf = unsafe { area.frame_mut(idx) };
            // The queue only accepts frames of at most one UMEM frame.
            let len = frame.data().len().min(buf.len());
            buf[..len].copy_from_slice(&frame.data()[..len]);
            // Bounded: at most `batch` entries, the capacity reserved at start.
            staged[dev].push(XdpDesc {
                addr: layout.addr_of(idx),
                len: len as u32,
                options: 0,
            });
        }
        if taken == 0 {
            return;
        }
        let w = write_staged(devices, staged, ledger, layout);
        counters.injected += w.packets;
        counters.inject_ring_full += w.ring_full;
        debug_assert_eq!(ledger.counts().held, 0, "every injected frame has a place");
    }

    /// Wakes the kernel for TX rings that hold descriptors and asked for it. In
    /// copy mode that is every time: the kernel copies frames out only inside
    /// `sendto()`, at most its TX budget per call (32 unless raised, see
    /// `QueueReport::tx_budget`), so a backlog may take a few calls. Bounded, and
    /// stops as soon as a call makes no progress (queue stopped, link down).
    fn kick_tx(&mut self) {
        for d in self.devices.iter_mut() {
            let mut pending = d.tx.pending();
            for _ in 0..MAX_KICKS {
                if pending == 0 || !d.tx.needs_wakeup() {
                    break;
                }
                d.tx.wake();
                self.counters.tx_wakeups += 1;
                let left = d.tx.pending();
                if left >= pending {
                    break;
                }
                pending = left;
            }
        }
    }

    /// After stop: keeps kicking and reclaiming until every transmitted frame is
    /// back, or `limit` passes (a dead link may never complete).
    fn drain(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.ledger.counts().in_tx() > 0 && Instant::now() < deadline {
            self.kick_tx();
            self.reclaim_completions();
            std::hint::spin_loop();
        }
    }
}

/// Staged descriptors -> TX rings, per device; what does not fit is recycled.
/// The ledger moves every staged frame from `Held` to `Tx(dev)` or back to the
/// free list, and `staged` is left empty.
fn write_staged(
    devices: &mut [DeviceRings],
    staged: &mut [Vec<XdpDesc>],
    ledger: &mut FrameLedger,
    layout: &UmemLayout,
) -> Written {
    let mut out = Written::default();
    for (dev, (d, descs)) in devices.iter_mut().zip(staged.iter_mut()).enumerate() {
        if descs.is_empty() {
            continue;
        }
        let mut written = 0;
        for _ in 0..CACHED_ROUNDS {
            let mut writer = d.tx.transmit((descs.len() - written) as u32);
            let room = (writer.capacity() as usize).min(descs.len() - written);
            if room == 0 {
                break;
            }
            let n = writer.insert(descs[written..written + room].iter().copied()) as usize;
            debug_assert_eq!(n, room);
            // Release store of the producer index: the kernel sees the
            // descriptors (and the frame contents written before them) only
            // after this.
            writer.commit();
            written += n;
            if written == descs.len() {
                break;
            }
        }
        for (i, desc) in descs.iter().enumerate() {
            let frame = (desc.addr >> layout.frame_size().trailing_zeros()) as FrameIdx;
            let moved = if i < written {
                out.bytes += u64::from(desc.len);
                ledger.transmitted(frame, dev as DeviceIdx)
            } else {
                ledger.recycle(frame)
            };
            debug_assert!(moved.is_ok(), "{moved:?}");
        }
        out.packets += written as u64;
        out.ring_full += (descs.len() - written) as u64;
        descs.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relifetime_keeps_the_allocation() {
        let mut buf = [0u8; 16];
        let mut v: Vec<Frame<'_>> = Vec::with_capacity(64);
        let ptr = v.as_ptr() as usize;
        v.push(Frame::new(&mut buf, 0, 4, 0));
        let w: Vec<Frame<'static>> = relifetime(v);
        assert_eq!((w.len(), w.capacity(), w.as_ptr() as usize), (0, 64, ptr));
    }
}
