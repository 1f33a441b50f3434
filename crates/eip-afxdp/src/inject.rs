//! Frames the control thread sends out of a port (path probes), through a worker.
//!
//! A probe must leave exactly as data does: same socket, same TX ring, same link,
//! same next hop, so that its fate is the data's fate. Only the worker may touch
//! its UMEM and rings, so the control thread hands it complete Ethernet frames
//! through an [`InjectQueue`]; once per poll iteration the worker takes up to
//! [`INJECT_BURST`] of them, copies each into a free UMEM frame and writes it to
//! the port's TX ring (counted `injected`; when no UMEM frame is free or the TX
//! ring is full the frame is dropped and counted `inject_no_frame` /
//! `inject_ring_full`, never retried: a probe that cannot leave is a probe lost,
//! which is what the prober should measure on a saturated worker).
//!
//! The mirror image of [`super::control::ControlQueue`]: a fixed pool of buffers
//! allocated at start-up circulates between two bounded lock-free queues, `free`
//! and `ready`, so neither side allocates per frame and neither ever blocks. When
//! the worker stops (or stalls), `free` runs dry and [`InjectQueue::push`] fails
//! with [`InjectError::Full`] instead of queueing without bound.

use std::fmt;
use std::ops::Deref;

use crossbeam::queue::ArrayQueue;

use eip_dataplane::frame::PortId;

/// Frames a worker copies out of its inject queue per poll iteration, at most
/// (also capped by the batch size). Bounds the time injection takes from
/// forwarding: a few hundred nanoseconds per frame.
pub const INJECT_BURST: usize = 16;

/// Default number of frames that may wait in an inject queue: a prober with a few
/// hundred paths can queue one probe each before the worker's next iteration.
pub const DEFAULT_INJECT_DEPTH: usize = 256;

/// Shortest frame accepted: an Ethernet header.
pub const MIN_INJECT_LEN: usize = 14;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InjectError {
    /// Every buffer is waiting for the worker: it is stopped, stalled, or the
    /// caller sends faster than one [`INJECT_BURST`] per worker iteration.
    #[error("inject queue full ({depth} frames wait for the worker)")]
    Full { depth: usize },
    /// The frame is shorter than an Ethernet header or longer than a UMEM frame.
    #[error("frame of {len} bytes cannot be injected (must be {MIN_INJECT_LEN}..={max} bytes)")]
    BadLength { len: usize, max: usize },
    /// The runtime does not serve this port.
    #[error("port {port} is not served by the AF_XDP runtime")]
    UnknownPort { port: PortId },
}

/// One queued frame.
struct Slot {
    port: PortId,
    len: usize,
    buf: Box<[u8]>,
}

/// Frames from the control thread to one worker. Any thread may push; only that
/// worker pops.
pub struct InjectQueue {
    free: ArrayQueue<Box<Slot>>,
    ready: ArrayQueue<Box<Slot>>,
    /// Ports the worker serves (checked on push, so a typo fails at the caller).
    ports: Box<[PortId]>,
    max_len: usize,
}

impl InjectQueue {
    /// `depth` buffers of `max_len` bytes each, allocated now, for frames to
    /// `ports`. `max_len` is the UMEM frame size: a frame is copied to offset 0 of
    /// one UMEM frame, and a TX descriptor may not cross a frame.
    ///
    /// # Panics
    /// If `depth` is 0 (crossbeam's queues need a capacity).
    pub fn new(depth: usize, max_len: usize, ports: &[PortId]) -> Self {
        let free = ArrayQueue::new(depth);
        for _ in 0..depth {
            let slot = Slot {
                port: 0,
                len: 0,
                buf: vec![0; max_len].into_boxed_slice(),
            };
            // Cannot fail: exactly `depth` pushes into a queue of capacity `depth`.
            let _ = free.push(Box::new(slot));
        }
        InjectQueue {
            free,
            ready: ArrayQueue::new(depth),
            ports: ports.into(),
            max_len,
        }
    }

    /// Queues a copy of `frame` (a complete Ethernet frame, FCS excluded) to be
    /// sent out of `port`. Never blocks, never allocates.
    ///
    /// # Errors
    /// [`InjectError`]; nothing is queued then.
    pub fn push(&self, port: PortId, frame: &[u8]) -> Result<(), InjectError> {
        if !self.ports.contains(&port) {
            return Err(InjectError::UnknownPort { port });
        }
        if !(MIN_INJECT_LEN..=self.max_len).contains(&frame.len()) {
            return Err(InjectError::BadLength {
                len: frame.len(),
                max: self.max_len,
            });
        }
        let Some(mut slot) = self.free.pop() else {
            return Err(InjectError::Full {
                depth: self.free.capacity(),
            });
        };
        slot.buf[..frame.len()].copy_from_slice(frame);
        slot.len = frame.len();
        slot.port = port;
        // Cannot fail: the number of buffers equals the capacity of `ready`.
        let pushed = self.ready.push(slot);
        debug_assert!(pushed.is_ok());
        Ok(())
    }

    /// Worker side: the oldest queued frame. Dropping the guard returns the
    /// buffer to the pool.
    #[inline]
    pub(crate) fn pop(&self) -> Option<InjectGuard<'_>> {
        self.ready.pop().map(|slot| InjectGuard {
            pool: self,
            slot: Some(slot),
        })
    }

    /// Frames waiting for the worker.
    pub fn len(&self) -> usize {
        self.ready.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }

    /// Longest frame accepted.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

impl fmt::Debug for InjectQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InjectQueue")
            .field("waiting", &self.ready.len())
            .field("depth", &self.free.capacity())
            .field("ports", &self.ports)
            .field("max_len", &self.max_len)
            .finish()
    }
}

/// A frame taken off the queue by the worker; gives its buffer back on drop.
pub(crate) struct InjectGuard<'q> {
    pool: &'q InjectQueue,
    slot: Option<Box<Slot>>,
}

impl InjectGuard<'_> {
    /// Port to send it on.
    #[inline]
    pub fn port(&self) -> PortId {
        self.slot().port
    }

    /// The frame.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let s = self.slot();
        &s.buf[..s.len]
    }

    #[inline]
    fn slot(&self) -> &Slot {
        self.slot.as_ref().expect("present until drop")
    }
}

impl Deref for InjectGuard<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.data()
    }
}

impl Drop for InjectGuard<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            // Cannot fail: there are never more buffers than the pool's capacity.
            let _ = self.pool.free.push(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_copy_in_order_and_recycle() {
        let q = InjectQueue::new(2, 64, &[0, 3]);
        let a = [0xaa; 14];
        let b = [0xbb; 64];
        q.push(3, &a).unwrap();
        q.push(0, &b).unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(
            q.push(0, &a),
            Err(InjectError::Full { depth: 2 }),
            "pool exhausted: refuse, do not grow"
        );
        {
            let f = q.pop().unwrap();
            assert_eq!((f.port(), f.data()), (3, &a[..]));
        }
        q.push(0, &a[..]).expect("buffer returned by the guard");
        let f = q.pop().unwrap();
        assert_eq!((f.port(), &*f), (0, &b[..]));
        drop(f);
        assert_eq!(q.pop().unwrap().data(), &a[..]);
        assert!(q.pop().is_none() && q.is_empty());
    }

    #[test]
    fn refuses_what_the_worker_could_not_send() {
        let q = InjectQueue::new(4, 64, &[1]);
        assert_eq!(
            q.push(2, &[0; 20]),
            Err(InjectError::UnknownPort { port: 2 })
        );
        assert_eq!(
            q.push(1, &[0; 13]),
            Err(InjectError::BadLength { len: 13, max: 64 })
        );
        assert_eq!(
            q.push(1, &[0; 65]),
            Err(InjectError::BadLength { len: 65, max: 64 })
        );
        assert!(q.is_empty(), "nothing queued after an error");
        assert_eq!(
            InjectError::Full { depth: 4 }.to_string(),
            "inject queue full (4 frames wait for the worker)"
        );
    }

    #[test]
    fn many_producers_one_consumer_lose_nothing() {
        let q = std::sync::Arc::new(InjectQueue::new(8, 32, &[0]));
        let producers: Vec<_> = (0..4u8)
            .map(|t| {
                let q = q.clone();
                std::thread::spawn(move || {
                    let mut sent = 0;
                    while sent < 1000 {
                        let mut f = [t; 16];
                        f[1..3].copy_from_slice(&(sent as u16).to_be_bytes());
                        if q.push(0, &f).is_ok() {
                            sent += 1;
                        } else {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut next = [0u16; 4];
        let mut got = 0;
        while got < 4000 {
            match q.pop() {
                Some(f) => {
                    let t = usize::from(f[0]);
                    assert_eq!(u16::from_be_bytes([f[1], f[2]]), next[t], "in order");
                    next[t] += 1;
                    got += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(next, [1000; 4]);
    }
}
