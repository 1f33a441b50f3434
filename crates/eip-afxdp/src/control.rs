//! Frames the pipeline hands to the control thread (`Verdict::ToControl`, e.g.
//! path-probe replies).
//!
//! UMEM frames cannot leave the worker (they must go back to the fill ring), so the
//! bytes are copied into one of a fixed pool of buffers allocated at start-up. Two
//! bounded lock-free queues circulate the buffers: `free` (empty ones) and `ready`
//! (filled ones). When the control thread falls behind, `free` runs dry and the
//! worker drops and counts instead of blocking or allocating.

use std::ops::Deref;

use crossbeam::queue::ArrayQueue;

use eip_dataplane::frame::PortId;

/// A frame copied for the control thread.
#[derive(Debug)]
pub struct ControlPacket {
    /// Port it arrived on.
    pub port: PortId,
    /// Device queue it arrived on.
    pub queue: u32,
    /// When the worker received it: the worker's batch clock, nanoseconds since
    /// [`super::AfXdpRuntime::epoch`]. The control thread drains the queue every
    /// few milliseconds; a prober measuring RTTs must use this, not the time it
    /// pops the packet.
    pub rx_ns: u64,
    len: usize,
    buf: Box<[u8]>,
}

impl ControlPacket {
    /// The packet bytes as the pipeline left them.
    pub fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The pool and the queue of copied frames. Shared by all workers (producers)
/// and the control thread (consumer).
#[derive(Debug)]
pub struct ControlQueue {
    free: ArrayQueue<Box<ControlPacket>>,
    ready: ArrayQueue<Box<ControlPacket>>,
}

impl ControlQueue {
    /// `depth` buffers of `buf_size` bytes each, allocated now.
    pub fn new(depth: usize, buf_size: usize) -> Self {
        let free = ArrayQueue::new(depth);
        for _ in 0..depth {
            let packet = ControlPacket {
                port: 0,
                queue: 0,
                rx_ns: 0,
                len: 0,
                buf: vec![0; buf_size].into_boxed_slice(),
            };
            // Cannot fail: exactly `depth` pushes into a queue of capacity `depth`.
            let _ = free.push(Box::new(packet));
        }
        ControlQueue {
            free,
            ready: ArrayQueue::new(depth),
        }
    }

    /// Worker side: copies `data` (truncated to the buffer size). Returns false,
    /// changing nothing, when no buffer is free.
    #[inline]
    pub(crate) fn push(&self, data: &[u8], port: PortId, queue: u32, rx_ns: u64) -> bool {
        let Some(mut packet) = self.free.pop() else {
            return false;
        };
        let len = data.len().min(packet.buf.len());
        packet.buf[..len].copy_from_slice(&data[..len]);
        packet.len = len;
        packet.port = port;
        packet.queue = queue;
        packet.rx_ns = rx_ns;
        // Cannot fail: the number of buffers equals the capacity of `ready`.
        let pushed = self.ready.push(packet);
        debug_assert!(pushed.is_ok());
        true
    }

    /// Control side: the oldest waiting packet. Dropping the returned guard gives
    /// the buffer back to the pool.
    pub fn pop(&self) -> Option<ControlGuard<'_>> {
        self.ready.pop().map(|packet| ControlGuard {
            pool: self,
            packet: Some(packet),
        })
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.ready.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }
}

/// A packet borrowed from the [`ControlQueue`]; returns its buffer on drop.
#[derive(Debug)]
pub struct ControlGuard<'q> {
    pool: &'q ControlQueue,
    packet: Option<Box<ControlPacket>>,
}

impl Deref for ControlGuard<'_> {
    type Target = ControlPacket;
    fn deref(&self) -> &ControlPacket {
        self.packet.as_ref().expect("present until drop")
    }
}

impl Drop for ControlGuard<'_> {
    fn drop(&mut self) {
        if let Some(packet) = self.packet.take() {
            // Cannot fail: there are never more buffers than the pool's capacity.
            let _ = self.pool.free.push(packet);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_copy_and_recycle() {
        let q = ControlQueue::new(2, 8);
        assert!(q.push(b"abc", 1, 0, 7));
        assert!(q.push(b"0123456789", 2, 1, 8));
        assert!(!q.push(b"x", 3, 0, 9), "pool exhausted: drop, do not grow");
        {
            let p = q.pop().unwrap();
            assert_eq!((p.data(), p.port, p.queue, p.rx_ns), (&b"abc"[..], 1, 0, 7));
        }
        assert!(q.push(b"y", 4, 0, 10), "buffer returned by the guard");
        assert_eq!(
            q.pop().unwrap().data(),
            b"01234567",
            "truncated to the buffer"
        );
        assert_eq!(q.pop().unwrap().data(), b"y");
        assert!(q.pop().is_none());
    }
}
