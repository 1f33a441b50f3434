//! [`TraceRecord`]: one frame seen at one point, as a worker hands it to the
//! collector. Records are allocated when a trace starts, each with room for the
//! trace's snap length, and recycled: a worker only fills them.

use eip_dataplane::{PortId, Verdict};
use std::fmt;

/// Most bytes a trace keeps of a frame (a 1500-byte packet in VXLAN fits).
pub const MAX_SNAP: usize = 2048;

/// Where in the worker a frame was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Point {
    /// As received, before the pipeline.
    Rx,
    /// As transmitted, after the pipeline rewrote it.
    Tx,
    /// As the pipeline left it when it dropped it.
    Drop,
}

impl Point {
    /// Every point, in interface order.
    pub const ALL: [Point; 3] = [Point::Rx, Point::Tx, Point::Drop];

    pub const fn label(self) -> &'static str {
        match self {
            Point::Rx => "rx",
            Point::Tx => "tx",
            Point::Drop => "drop",
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }
}

/// One captured frame. `data` has the trace's snap length; `len` of it are used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRecord {
    /// The worker's clock (nanoseconds since the runtime's epoch), per batch.
    pub timestamp_ns: u64,
    /// The device queue the worker serves.
    pub queue: u32,
    pub point: Point,
    /// Rx and drop: the port the frame arrived on; tx: the port it leaves by.
    pub port: PortId,
    /// What the pipeline decided for the frame.
    pub verdict: Verdict,
    /// Length of the frame at this point.
    pub original_len: u32,
    /// Bytes of `data` captured.
    pub len: u32,
    pub data: Box<[u8]>,
}

impl TraceRecord {
    /// An empty record with room for `snap` bytes (at most [`MAX_SNAP`]).
    pub fn with_snap(snap: usize) -> TraceRecord {
        TraceRecord {
            timestamp_ns: 0,
            queue: 0,
            point: Point::Rx,
            port: 0,
            verdict: Verdict::ToKernel,
            original_len: 0,
            len: 0,
            data: vec![0u8; snap.min(MAX_SNAP)].into_boxed_slice(),
        }
    }

    /// Overwrites the record with `frame` (cut to the record's room). No allocation.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn fill(
        &mut self,
        timestamp_ns: u64,
        queue: u32,
        point: Point,
        port: PortId,
        verdict: Verdict,
        frame: &[u8],
        original_len: usize,
    ) {
        let n = frame.len().min(self.data.len());
        self.data[..n].copy_from_slice(&frame[..n]);
        self.len = n as u32;
        self.original_len = u32::try_from(original_len).unwrap_or(u32::MAX);
        self.timestamp_ns = timestamp_ns;
        self.queue = queue;
        self.point = point;
        self.port = port;
        self.verdict = verdict;
    }

    /// The captured bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data[..self.len as usize]
    }

    /// The packet comment: point, port, queue and verdict, e.g.
    /// `rx port internet queue 0 verdict tx port backbone`,
    /// `tx port backbone queue 0`, `drop unknown_vtep port backbone queue 1`.
    pub fn comment<S: AsRef<str>>(&self, ports: &[S]) -> String {
        let port = PortName(ports, self.port);
        match self.point {
            Point::Rx => {
                let verdict = match self.verdict {
                    Verdict::Tx(p) => format!("tx port {}", PortName(ports, p)),
                    Verdict::Drop(r) => format!("drop {}", r.label()),
                    Verdict::ToKernel => "to_kernel".into(),
                    Verdict::ToControl => "to_control".into(),
                };
                format!("rx port {port} queue {} verdict {verdict}", self.queue)
            }
            Point::Tx => format!("tx port {port} queue {}", self.queue),
            Point::Drop => {
                let reason = match self.verdict {
                    Verdict::Drop(r) => r.label(),
                    _ => "unknown",
                };
                format!("drop {reason} port {port} queue {}", self.queue)
            }
        }
    }
}

/// A port's name from the tables, or its number if it has none.
struct PortName<'a, S>(&'a [S], PortId);

impl<S: AsRef<str>> fmt::Display for PortName<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.get(usize::from(self.1)) {
            Some(name) => f.write_str(name.as_ref()),
            None => write!(f, "{}", self.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eip_dataplane::DropReason;

    #[test]
    fn fill_cuts_to_the_snap_and_keeps_the_length() {
        let mut r = TraceRecord::with_snap(4);
        r.fill(7, 1, Point::Tx, 1, Verdict::Tx(1), &[1, 2, 3, 4, 5, 6], 6);
        assert_eq!(r.bytes(), &[1, 2, 3, 4]);
        assert_eq!((r.original_len, r.len, r.timestamp_ns), (6, 4, 7));
        r.fill(8, 1, Point::Rx, 0, Verdict::ToKernel, &[9], 1);
        assert_eq!(r.bytes(), &[9]);
        assert_eq!(TraceRecord::with_snap(1 << 20).data.len(), MAX_SNAP);
    }

    #[test]
    fn comments_name_point_port_queue_and_verdict() {
        let ports = ["internet", "backbone"];
        let mut r = TraceRecord::with_snap(64);
        r.fill(0, 0, Point::Rx, 0, Verdict::Tx(1), &[], 0);
        assert_eq!(
            r.comment(&ports),
            "rx port internet queue 0 verdict tx port backbone"
        );
        r.fill(0, 0, Point::Tx, 1, Verdict::Tx(1), &[], 0);
        assert_eq!(r.comment(&ports), "tx port backbone queue 0");
        let drop = Verdict::Drop(DropReason::UnknownVtep);
        r.fill(0, 3, Point::Drop, 1, drop, &[], 0);
        assert_eq!(r.comment(&ports), "drop unknown_vtep port backbone queue 3");
        r.fill(0, 3, Point::Rx, 1, drop, &[], 0);
        assert_eq!(
            r.comment(&ports),
            "rx port backbone queue 3 verdict drop unknown_vtep"
        );
        r.fill(0, 0, Point::Rx, 9, Verdict::ToKernel, &[], 0);
        assert_eq!(r.comment(&ports), "rx port 9 queue 0 verdict to_kernel");
    }
}
