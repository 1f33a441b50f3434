//! One packet buffer as the pipeline sees it, whatever port driver owns the memory.
//!
//! A frame is a window `[head, head + len)` into a larger buffer. The bytes before
//! `head` are headroom: encapsulation grows the packet into it instead of moving the
//! payload. The AF_XDP driver hands out windows into UMEM chunks, the pcap driver and
//! the tests hand out windows into plain `Vec`s; the pipeline cannot tell them apart.

/// Index of a port in [`crate::tables::Tables::ports`].
pub type PortId = u16;

/// A packet in a buffer with headroom, plus the port it arrived on.
#[derive(Debug)]
pub struct Frame<'a> {
    buf: &'a mut [u8],
    head: usize,
    len: usize,
    port: PortId,
}

impl<'a> Frame<'a> {
    /// Wraps `buf[head..head + len]`.
    ///
    /// # Panics
    /// If the window does not fit in `buf`: that is a driver bug, not bad input.
    pub fn new(buf: &'a mut [u8], head: usize, len: usize, port: PortId) -> Self {
        assert!(
            head <= buf.len() && len <= buf.len() - head,
            "frame window outside its buffer"
        );
        Frame {
            buf,
            head,
            len,
            port,
        }
    }

    /// The packet bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.head..self.head + self.len]
    }

    /// The packet bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.head..self.head + self.len]
    }

    /// Port the frame arrived on.
    #[inline]
    pub fn port(&self) -> PortId {
        self.port
    }

    /// Offset of the packet's first byte in the underlying buffer.
    #[inline]
    pub fn head(&self) -> usize {
        self.head
    }

    /// Packet length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length packet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes free in front of the packet.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.head
    }

    /// Bytes free behind the packet.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.head - self.len
    }

    /// Grows the packet by `n` bytes at the front. Returns false (and changes nothing)
    /// when the headroom is too small.
    #[inline]
    #[must_use]
    pub fn push_head(&mut self, n: usize) -> bool {
        if n > self.head {
            return false;
        }
        self.head -= n;
        self.len += n;
        true
    }

    /// Drops `n` bytes from the front. Returns false (and changes nothing) when the
    /// packet is shorter than `n`.
    #[inline]
    #[must_use]
    pub fn pull_head(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.head += n;
        self.len -= n;
        true
    }

    /// Sets the packet length, keeping the head. Returns false (and changes nothing)
    /// when the buffer cannot hold it.
    #[inline]
    #[must_use]
    pub fn set_len(&mut self, len: usize) -> bool {
        if len > self.buf.len() - self.head {
            return false;
        }
        self.len = len;
        true
    }

    /// Moves the window to `[head, head + len)` of the buffer and returns the
    /// packet's bytes there, or `None` (changing nothing) when the buffer
    /// cannot hold it: one bounds check where `push_head` or `pull_head`,
    /// `set_len` and `data_mut` make three (the fast paths' encapsulation and
    /// decapsulation).
    #[inline]
    pub fn reframe(&mut self, head: usize, len: usize) -> Option<&mut [u8]> {
        let data = self.buf.get_mut(head..head.checked_add(len)?)?;
        self.head = head;
        self.len = len;
        Some(data)
    }

    /// The whole buffer with the packet's current offset, for in-place rewrites that
    /// move bytes (building an ICMP error around a quoted packet).
    #[inline]
    pub fn buffer_mut(&mut self) -> (&mut [u8], usize) {
        (self.buf, self.head)
    }
}

/// What happens to one frame after the pipeline has seen it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the (rewritten) frame on this port.
    Tx(PortId),
    /// Drop it; the reason has been counted.
    Drop(crate::counters::DropReason),
    /// Not ours: give it to the host's network stack unchanged (ARP, BGP, SSH...).
    ToKernel,
    /// Ours, but for the control thread (path probe replies).
    ToControl,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_and_pull_stay_inside_the_buffer() {
        let mut buf = [0u8; 32];
        let mut f = Frame::new(&mut buf, 8, 10, 3);
        assert_eq!((f.headroom(), f.tailroom(), f.port()), (8, 14, 3));
        assert!(!f.push_head(9));
        assert!(f.push_head(8));
        assert_eq!((f.head(), f.len()), (0, 18));
        assert!(!f.pull_head(19));
        assert!(f.pull_head(18));
        assert!(f.is_empty());
        assert!(!f.set_len(33));
        assert!(f.set_len(14));
    }

    #[test]
    #[should_panic]
    fn window_outside_buffer_is_a_driver_bug() {
        let mut buf = [0u8; 4];
        let _ = Frame::new(&mut buf, 2, 3, 0);
    }
}
