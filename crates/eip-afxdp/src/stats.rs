//! Worker counters, and how another thread reads them without slowing the worker.
//!
//! The worker increments plain `u64`s in its own [`WorkerCounters`] (no atomics on
//! the per-packet path) and every [`PUBLISH_EVERY`] loop iterations copies them
//! into its [`WorkerStats`] with `Relaxed` stores. Readers use `Relaxed` loads.
//! `Relaxed` is enough: each counter is a monotonic value with a single writer, and
//! no other memory is published through it. The price is that a snapshot is
//! consistent per counter, not across counters, and lags by at most one publish
//! interval (a few milliseconds under load).
//!
//! `WorkerStats` is 64-byte aligned and each worker has its own, so the worker's
//! stores never share a cache line with another worker's.

use std::sync::atomic::{AtomicU64, Ordering};

use super::frames::{FrameCounts, MAX_DEVICES};

/// Loop iterations between two publications (a power of two: checked with a mask).
pub const PUBLISH_EVERY: u64 = 1024;

macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $name:ident, )*) => {
        /// What one worker counted. One counter per cause, so an operator can see
        /// why a packet did not go where expected.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct WorkerCounters {
            $( $(#[doc = $doc])* pub $name: u64, )*
        }

        impl WorkerCounters {
            /// Counter names, in [`Self::values`] order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name),)*];
            const LEN: usize = Self::NAMES.len();

            /// Counter values, in [`Self::NAMES`] order.
            pub fn values(&self) -> [u64; Self::LEN] {
                [$(self.$name,)*]
            }

            fn from_values(v: &[u64; Self::LEN]) -> Self {
                let mut it = v.iter().copied();
                WorkerCounters { $( $name: it.next().unwrap_or(0), )* }
            }

            /// Adds `other` into `self` (to total several workers).
            pub fn merge(&mut self, other: &WorkerCounters) {
                $( self.$name += other.$name; )*
            }
        }
    };
}

counters! {
    /// Poll-loop iterations that received at least one frame.
    batches,
    /// Poll-loop iterations that received nothing: `idle_polls / (batches +
    /// idle_polls)` is a rough gauge of the worker's spare capacity.
    idle_polls,
    /// Frames received from all RX rings.
    rx_packets,
    /// Bytes received.
    rx_bytes,
    /// Frames written to a TX ring.
    tx_packets,
    /// Bytes written to a TX ring.
    tx_bytes,
    /// `Tx` verdicts dropped because the port's TX ring was full.
    tx_ring_full,
    /// `Tx` verdicts naming a port this queue set does not serve.
    tx_no_port,
    /// `Tx` verdicts with an empty frame (the kernel would reject and leak it).
    tx_invalid,
    /// `Drop` verdicts (reasons are counted by the pipeline).
    dropped,
    /// `ToKernel` verdicts. AF_XDP cannot re-inject a frame into the stack
    /// cheaply, so these are counted and recycled; the XDP program already passes
    /// everything not addressed to an EIP/VTEP, so a non-zero value means the
    /// pipeline disagrees with the XDP filter.
    to_kernel,
    /// `ToControl` verdicts copied to the control queue.
    to_control,
    /// `ToControl` verdicts dropped because the control queue was full.
    to_control_dropped,
    /// Frames from the control thread's inject queue (path probes) written to a
    /// TX ring. Not in `tx_packets`, which counts forwarded frames only.
    injected,
    /// Injected frames dropped because no UMEM frame was free.
    inject_no_frame,
    /// Injected frames dropped because the port's TX ring was full.
    inject_ring_full,
    /// Injected frames naming a port this queue set does not serve.
    inject_no_port,
    /// RX descriptors refused: address outside the UMEM, not a frame posted to
    /// that device's fill ring, or length beyond the frame.
    rx_invalid,
    /// Completion descriptors refused (not a frame in that device's TX ring).
    completion_invalid,
    /// Refill attempts that found the free list empty (all frames in flight).
    free_list_empty,
    /// Nanoseconds spent in iterations that received frames (stalls excluded):
    /// `busy_ns / elapsed` is the worker's load, `rx_packets / busy_ns` its
    /// throughput when saturated.
    busy_ns,
    /// Loop iterations that took over 1 ms: the thread was preempted or
    /// interrupted. Non-zero on a core that is not isolated; each stall lets the
    /// fill ring run dry at high rates (kernel `rx_fill_ring_empty_descs`).
    stalls,
    /// `poll()` calls to wake the kernel for the fill ring.
    fill_wakeups,
    /// `sendto()` calls to wake the kernel for a TX ring.
    tx_wakeups,
}

const FRAME_FIELDS: usize = 2 + 2 * MAX_DEVICES;

/// The lock-free published copy of one worker's counters and frame counts.
#[repr(align(64))]
#[derive(Debug)]
pub struct WorkerStats {
    counters: [AtomicU64; WorkerCounters::LEN],
    frames: [AtomicU64; FRAME_FIELDS],
    total_frames: AtomicU64,
}

/// A reader's copy of [`WorkerStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerSnapshot {
    /// Event counters.
    pub counters: WorkerCounters,
    /// Where the UMEM frames were at the last publication.
    pub frames: FrameCounts,
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            frames: std::array::from_fn(|_| AtomicU64::new(0)),
            total_frames: AtomicU64::new(0),
        }
    }
}

impl WorkerStats {
    /// Worker side: publish the current values (a few dozen `Relaxed` stores).
    pub fn publish(&self, counters: &WorkerCounters, frames: &FrameCounts) {
        for (slot, v) in self.counters.iter().zip(counters.values()) {
            slot.store(v, Ordering::Relaxed);
        }
        let f = frame_values(frames);
        for (slot, v) in self.frames.iter().zip(f) {
            slot.store(v, Ordering::Relaxed);
        }
        self.total_frames
            .store(u64::from(frames.total), Ordering::Relaxed);
    }

    /// Reader side: the last published values.
    pub fn snapshot(&self) -> WorkerSnapshot {
        let c: [u64; WorkerCounters::LEN] =
            std::array::from_fn(|i| self.counters[i].load(Ordering::Relaxed));
        let f: [u64; FRAME_FIELDS] =
            std::array::from_fn(|i| self.frames[i].load(Ordering::Relaxed));
        let mut frames = FrameCounts {
            total: self.total_frames.load(Ordering::Relaxed) as u32,
            free: f[0] as u32,
            held: f[1] as u32,
            ..FrameCounts::default()
        };
        for d in 0..MAX_DEVICES {
            frames.fill[d] = f[2 + d] as u32;
            frames.tx[d] = f[2 + MAX_DEVICES + d] as u32;
        }
        WorkerSnapshot {
            counters: WorkerCounters::from_values(&c),
            frames,
        }
    }
}

fn frame_values(f: &FrameCounts) -> [u64; FRAME_FIELDS] {
    let mut v = [0u64; FRAME_FIELDS];
    v[0] = u64::from(f.free);
    v[1] = u64::from(f.held);
    for d in 0..MAX_DEVICES {
        v[2 + d] = u64::from(f.fill[d]);
        v[2 + MAX_DEVICES + d] = u64::from(f.tx[d]);
    }
    v
}

/// Kernel-side statistics of one AF_XDP socket (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Dropped by the kernel for reasons other than the two below.
    pub rx_dropped: u64,
    /// Invalid descriptors on the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors on the TX ring.
    pub tx_invalid_descs: u64,
    /// Dropped because the RX ring was full (the worker is too slow).
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a packet arrived (the worker refills too
    /// slowly, or all frames are in flight).
    pub rx_fill_ring_empty_descs: u64,
    /// Times the TX ring was found empty.
    pub tx_ring_empty_descs: u64,
}

impl From<xdpilone::xdp::XdpStatisticsV2> for SocketStats {
    fn from(s: xdpilone::xdp::XdpStatisticsV2) -> Self {
        SocketStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_then_snapshot_round_trips() {
        let stats = WorkerStats::default();
        let counters = WorkerCounters {
            rx_packets: 7,
            tx_wakeups: 3,
            ..Default::default()
        };
        let mut frames = FrameCounts {
            total: 10,
            free: 4,
            held: 0,
            ..Default::default()
        };
        frames.fill[1] = 5;
        frames.tx[0] = 1;
        stats.publish(&counters, &frames);
        let snap = stats.snapshot();
        assert_eq!(snap.counters, counters);
        assert_eq!(snap.frames, frames);
        assert_eq!(snap.frames.accounted(), 10);
        assert_eq!(std::mem::align_of::<WorkerStats>(), 64);
        assert_eq!(WorkerCounters::NAMES[2], "rx_packets");
        assert_eq!(WorkerCounters::NAMES.len(), counters.values().len());
    }

    #[test]
    fn merge_adds_fieldwise() {
        let mut a = WorkerCounters {
            rx_packets: 1,
            dropped: 2,
            ..Default::default()
        };
        a.merge(&WorkerCounters {
            rx_packets: 10,
            to_kernel: 1,
            ..Default::default()
        });
        assert_eq!((a.rx_packets, a.dropped, a.to_kernel), (11, 2, 1));
    }
}
