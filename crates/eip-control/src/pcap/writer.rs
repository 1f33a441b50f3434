//! Writing replay outputs: classic pcap per port, pcapng with comments for drops.

use super::MAX_RECORD;
use pcap_file::pcap::{PcapHeader, PcapPacket};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::{pcap, pcapng, DataLink, Endianness, PcapError, TsResolution};
use std::borrow::Cow;
use std::io::{self, BufWriter, Write};
use std::time::Duration;

/// if_tsresol of the pcapng interface written: 10^-9 s.
const NANOSECONDS: u8 = 9;

/// Classic pcap writer with a fixed header: little-endian, nanosecond timestamps,
/// version 2.4, snaplen 65535, Ethernet. It is the header the fixture generator
/// writes, so replay outputs are byte-identical to the expected files.
pub struct PcapWriter<W: Write> {
    output: pcap::PcapWriter<BufWriter<W>>,
    written: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header.
    ///
    /// # Errors
    /// When `output` cannot be written.
    pub fn new(output: W) -> io::Result<Self> {
        let header = PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen: MAX_RECORD,
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            endianness: Endianness::Little,
        };
        let output =
            pcap::PcapWriter::with_header(BufWriter::new(output), header).map_err(into_io)?;
        Ok(PcapWriter { output, written: 0 })
    }

    /// Appends one frame, whole (captured length = original length).
    ///
    /// # Errors
    /// When the output cannot be written, or the frame does not fit a classic pcap
    /// record (timestamp after 2106, more than 65535 bytes).
    pub fn write(&mut self, timestamp_ns: u64, data: &[u8]) -> io::Result<()> {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let packet = PcapPacket::new(Duration::from_nanos(timestamp_ns), len, data);
        self.output.write_packet(&packet).map_err(into_io)?;
        self.written += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes and returns the inner writer.
    ///
    /// # Errors
    /// When the buffered frames cannot be written.
    pub fn finish(self) -> io::Result<W> {
        self.output
            .into_writer()
            .into_inner()
            .map_err(|e| e.into_error())
    }
}

/// pcapng writer of frames with a comment each (opt_comment, shown by Wireshark and
/// by tshark as `frame.comment`): one little-endian section and one or more
/// Ethernet interfaces with nanosecond timestamps.
pub struct PcapNgWriter<W: Write> {
    output: pcapng::PcapNgWriter<BufWriter<W>>,
    interfaces: u32,
    written: u64,
}

impl<W: Write> PcapNgWriter<W> {
    /// Writes the Section Header Block and the Interface Description Block, the
    /// interface named `interface_name` (if_name).
    ///
    /// # Errors
    /// When `output` cannot be written.
    pub fn new(output: W, interface_name: &str) -> io::Result<Self> {
        Self::with_interfaces(output, "eipd replay", &[interface_name])
    }

    /// Writes the Section Header Block (its shb_userappl is `application`), then
    /// one Interface Description Block per name: interface `i` is `names[i]`.
    ///
    /// # Errors
    /// When `output` cannot be written.
    pub fn with_interfaces(output: W, application: &str, names: &[&str]) -> io::Result<Self> {
        let section = SectionHeaderBlock {
            endianness: Endianness::Little,
            major_version: 1,
            minor_version: 0,
            section_length: -1,
            options: vec![SectionHeaderOption::UserApplication(Cow::Owned(
                application.to_string(),
            ))],
        };
        let mut output = pcapng::PcapNgWriter::with_section_header(BufWriter::new(output), section)
            .map_err(into_io)?;
        for name in names {
            output
                .write_pcapng_block(InterfaceDescriptionBlock {
                    linktype: DataLink::ETHERNET,
                    snaplen: MAX_RECORD,
                    options: vec![
                        InterfaceDescriptionOption::IfName(Cow::Borrowed(name)),
                        InterfaceDescriptionOption::IfTsResol(NANOSECONDS),
                    ],
                })
                .map_err(into_io)?;
        }
        Ok(PcapNgWriter {
            output,
            interfaces: u32::try_from(names.len()).unwrap_or(u32::MAX),
            written: 0,
        })
    }

    /// Appends one whole frame with its comment, on interface 0.
    ///
    /// # Errors
    /// When the output cannot be written.
    pub fn write(&mut self, timestamp_ns: u64, data: &[u8], comment: &str) -> io::Result<()> {
        let original_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        self.write_captured(0, timestamp_ns, data, original_len, comment)
    }

    /// Appends the first `data.len()` bytes of a frame of `original_len` bytes
    /// with its comment, on interface `interface`.
    ///
    /// # Errors
    /// When the output cannot be written; `InvalidInput` for an interface that
    /// was not declared or `original_len` shorter than `data`.
    pub fn write_captured(
        &mut self,
        interface: u32,
        timestamp_ns: u64,
        data: &[u8],
        original_len: u32,
        comment: &str,
    ) -> io::Result<()> {
        if interface >= self.interfaces || (original_len as usize) < data.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "interface {interface} of {}, or {} bytes captured of {original_len}",
                    self.interfaces,
                    data.len()
                ),
            ));
        }
        // pcap-file 2.0 writes `timestamp.as_nanos()` as the tick count, which is
        // right for the if_tsresol of 9 declared above.
        self.output
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: interface,
                timestamp: Duration::from_nanos(timestamp_ns),
                original_len,
                data: Cow::Borrowed(data),
                options: vec![EnhancedPacketOption::Comment(Cow::Borrowed(comment))],
            })
            .map_err(into_io)?;
        self.written += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes and returns the inner writer.
    ///
    /// # Errors
    /// When the buffered frames cannot be written.
    pub fn finish(self) -> io::Result<W> {
        self.output
            .into_inner()
            .into_inner()
            .map_err(|e| e.into_error())
    }
}

/// Writers report plain I/O errors; a record the format cannot hold is invalid input.
fn into_io(e: PcapError) -> io::Error {
    match e {
        PcapError::IoError(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_header_and_record_bytes() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write(1_700_000_000_000_000_123, &[0xAA, 0xBB]).unwrap();
        assert_eq!(w.written(), 1);
        let bytes = w.finish().unwrap();
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x4D, 0x3C, 0xB2, 0xA1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0xFF, 0xFF, 0, 0, 1, 0, 0, 0,
            // 1,700,000,000 s, 123 ns, 2 bytes captured of 2.
            0x00, 0xF1, 0x53, 0x65, 123, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0,
            0xAA, 0xBB,
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn classic_refuses_what_it_cannot_hold() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        let e = w.write(0, &vec![0; 65_536]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = w
            .write(u64::from(u32::MAX) * 2_000_000_000, &[1])
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(w.written(), 0);
    }

    #[test]
    fn pcapng_packet_carries_its_comment() {
        let mut w = PcapNgWriter::new(Vec::new(), "internet").unwrap();
        w.write(1, &[1, 2, 3], "bad_vxlan").unwrap();
        let bytes = w.finish().unwrap();
        let mut reader = pcapng::PcapNgReader::new(&bytes[..]).unwrap();
        let mut comments = Vec::new();
        while let Some(block) = reader.next_block() {
            if let pcapng::Block::EnhancedPacket(p) = block.unwrap() {
                for o in &p.options {
                    if let EnhancedPacketOption::Comment(c) = o {
                        comments.push(c.to_string());
                    }
                }
            }
        }
        assert_eq!(comments, ["bad_vxlan"]);
        let idb = &reader.interfaces()[0];
        assert!(idb
            .options
            .contains(&InterfaceDescriptionOption::IfTsResol(NANOSECONDS)));
    }

    #[test]
    fn pcapng_several_interfaces_and_snapped_frames() {
        let mut w = PcapNgWriter::with_interfaces(
            Vec::new(),
            "eipd trace",
            &["rx:internet", "tx:backbone"],
        )
        .unwrap();
        w.write_captured(1, 5, &[1, 2], 100, "tx port backbone")
            .unwrap();
        assert_eq!(
            w.write_captured(2, 5, &[1], 1, "x").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            w.write_captured(0, 5, &[1, 2], 1, "x").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(w.written(), 1);
        let bytes = w.finish().unwrap();
        let mut reader = pcapng::PcapNgReader::new(&bytes[..]).unwrap();
        let mut packets = Vec::new();
        while let Some(block) = reader.next_block() {
            if let pcapng::Block::EnhancedPacket(p) = block.unwrap() {
                packets.push((p.interface_id, p.original_len, p.data.len()));
            }
        }
        assert_eq!(packets, [(1, 100, 2)]);
        assert_eq!(reader.interfaces().len(), 2);
    }
}
