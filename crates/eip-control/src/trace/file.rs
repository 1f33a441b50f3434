//! [`TraceFile`]: the pcapng a trace writes, one interface per point and port
//! (`rx:internet`, `tx:backbone`, `drop:backbone`, ...), a comment per frame.

use super::record::{Point, TraceRecord};
use crate::pcap::PcapNgWriter;
use std::io::{self, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Converts the workers' monotonic clock to wall-clock time for the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    /// Wall time (ns since the Unix epoch) at `mono_ns`.
    wall_ns: u64,
    mono_ns: u64,
}

impl WallClock {
    /// Pairs a wall time with a reading of the workers' clock taken at the same
    /// moment.
    pub fn new(wall_ns: u64, mono_ns: u64) -> WallClock {
        WallClock { wall_ns, mono_ns }
    }

    /// The pair for now, for workers whose clock is `epoch.elapsed()`.
    pub fn now(epoch: Instant) -> WallClock {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        WallClock::new(as_ns(wall), as_ns(epoch.elapsed()))
    }

    /// Wall time of the worker clock reading `mono_ns`.
    pub fn wall(&self, mono_ns: u64) -> u64 {
        if mono_ns >= self.mono_ns {
            self.wall_ns.saturating_add(mono_ns - self.mono_ns)
        } else {
            self.wall_ns.saturating_sub(self.mono_ns - mono_ns)
        }
    }
}

fn as_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A trace's pcapng output.
pub struct TraceFile<W: Write> {
    out: PcapNgWriter<W>,
    ports: Vec<String>,
    clock: WallClock,
}

impl<W: Write> TraceFile<W> {
    /// Writes the header and the interfaces: for each point (rx, tx, drop), one
    /// per port, named `point:port`.
    ///
    /// # Errors
    /// When `output` cannot be written.
    pub fn new(output: W, ports: Vec<String>, clock: WallClock) -> io::Result<Self> {
        let names: Vec<String> = Point::ALL
            .iter()
            .flat_map(|p| ports.iter().map(move |n| format!("{}:{n}", p.label())))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let out = PcapNgWriter::with_interfaces(output, "eipd trace", &names)?;
        Ok(TraceFile { out, ports, clock })
    }

    /// The interface of `point` on `port`.
    pub fn interface(&self, point: Point, port: u16) -> Option<u32> {
        let n = self.ports.len();
        let port = usize::from(port);
        (port < n).then(|| u32::try_from(point.index() * n + port).unwrap_or(u32::MAX))
    }

    /// Appends one record.
    ///
    /// # Errors
    /// When the output cannot be written; `InvalidInput` for a port the file has
    /// no interface for.
    pub fn write(&mut self, record: &TraceRecord) -> io::Result<()> {
        let interface = self.interface(record.point, record.port).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("port {} is not in the tables", record.port),
            )
        })?;
        let comment = record.comment(&self.ports);
        self.out.write_captured(
            interface,
            self.clock.wall(record.timestamp_ns),
            record.bytes(),
            record.original_len,
            &comment,
        )
    }

    /// Frames written so far.
    pub fn written(&self) -> u64 {
        self.out.written()
    }

    /// Flushes and returns the inner writer.
    ///
    /// # Errors
    /// When the buffered frames cannot be written.
    pub fn finish(self) -> io::Result<W> {
        self.out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eip_dataplane::{DropReason, Verdict};
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
    use pcap_file::pcapng::{Block, PcapNgReader};

    #[test]
    fn wall_clock_shifts_both_ways() {
        let c = WallClock::new(1_000_000, 500);
        assert_eq!(c.wall(500), 1_000_000);
        assert_eq!(c.wall(700), 1_000_200);
        assert_eq!(c.wall(0), 999_500);
        assert_eq!(WallClock::new(3, 10).wall(0), 0);
    }

    #[test]
    fn records_land_on_their_point_and_port_interface() {
        let ports = vec!["internet".to_string(), "backbone".to_string()];
        let mut f = TraceFile::new(Vec::new(), ports, WallClock::new(1_000, 0)).unwrap();
        assert_eq!(f.interface(Point::Rx, 0), Some(0));
        assert_eq!(f.interface(Point::Tx, 1), Some(3));
        assert_eq!(f.interface(Point::Drop, 1), Some(5));
        assert_eq!(f.interface(Point::Drop, 2), None);
        let mut r = TraceRecord::with_snap(64);
        r.fill(5, 0, Point::Rx, 0, Verdict::Tx(1), &[0xAA; 80], 80);
        f.write(&r).unwrap();
        r.fill(6, 0, Point::Tx, 1, Verdict::Tx(1), &[0xBB; 30], 30);
        f.write(&r).unwrap();
        let drop = Verdict::Drop(DropReason::UnknownVtep);
        r.fill(7, 0, Point::Drop, 1, drop, &[0xCC; 30], 30);
        f.write(&r).unwrap();
        r.port = 7;
        assert_eq!(f.write(&r).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(f.written(), 3);
        let bytes = f.finish().unwrap();

        let mut reader = PcapNgReader::new(&bytes[..]).unwrap();
        let mut seen = Vec::new();
        while let Some(block) = reader.next_block() {
            if let Block::EnhancedPacket(p) = block.unwrap() {
                let comment = p.options.iter().find_map(|o| match o {
                    EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                    _ => None,
                });
                seen.push((
                    p.interface_id,
                    p.timestamp.as_nanos() as u64,
                    p.original_len,
                    p.data.len(),
                    comment.unwrap(),
                ));
            }
        }
        assert_eq!(
            seen,
            [
                (
                    0,
                    1_005,
                    80,
                    64,
                    "rx port internet queue 0 verdict tx port backbone".to_string()
                ),
                (3, 1_006, 30, 30, "tx port backbone queue 0".to_string()),
                (
                    5,
                    1_007,
                    30,
                    30,
                    "drop unknown_vtep port backbone queue 0".to_string()
                ),
            ]
        );
        let names: Vec<String> = reader
            .interfaces()
            .iter()
            .map(|i| {
                i.options
                    .iter()
                    .find_map(|o| match o {
                        InterfaceDescriptionOption::IfName(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .unwrap()
            })
            .collect();
        assert_eq!(
            names,
            [
                "rx:internet",
                "rx:backbone",
                "tx:internet",
                "tx:backbone",
                "drop:internet",
                "drop:backbone"
            ]
        );
    }
}
