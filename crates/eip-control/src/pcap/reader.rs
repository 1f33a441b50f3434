//! Reading pcap and pcapng through one streaming reader.

use super::{CaptureError, Format, Record, LINKTYPE_ETHERNET, MAX_RECORD};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::Block;
use pcap_file::{pcap, pcapng, DataLink, PcapError};
use std::io::{self, Cursor, Read};

/// The input with its first four bytes (read to detect the format) put back.
type Prefixed<R> = io::Chain<Cursor<[u8; 4]>, R>;

enum Source<R: Read> {
    Pcap(pcap::PcapReader<Prefixed<R>>),
    PcapNg(pcapng::PcapNgReader<Prefixed<R>>),
}

/// Streaming reader of Ethernet frames from a classic pcap or a pcapng file, the
/// format told by the file's magic number. Timestamps come out in nanoseconds
/// whatever the file's resolution.
pub struct CaptureReader<R: Read> {
    source: Source<R>,
    /// Packet records returned so far: the index of the next one, for errors.
    index: u64,
}

impl<R: Read> CaptureReader<R> {
    /// Reads the magic number and the file header (for classic pcap, also checks
    /// that the link type is Ethernet; pcapng declares it per interface, checked per
    /// packet).
    ///
    /// # Errors
    /// [`CaptureError::TooShort`] or [`CaptureError::BadMagic`] when the input is no
    /// capture file, [`CaptureError::BadHeader`] when its header is damaged,
    /// [`CaptureError::LinkType`] for a classic pcap of another link type.
    pub fn new(mut input: R) -> Result<Self, CaptureError> {
        let mut magic = [0u8; 4];
        input.read_exact(&mut magic).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => CaptureError::TooShort,
            _ => CaptureError::Io(e),
        })?;
        let format = Format::detect(magic).ok_or(CaptureError::BadMagic { magic })?;
        let input = Cursor::new(magic).chain(input);
        let header_error = |e| header_error(format, e);
        let source = match format {
            Format::Pcap => {
                let reader = pcap::PcapReader::new(input).map_err(header_error)?;
                let link = reader.header().datalink;
                if link != DataLink::ETHERNET {
                    return Err(CaptureError::LinkType {
                        link: link.into(),
                        interface: None,
                    });
                }
                Source::Pcap(reader)
            }
            Format::PcapNg => {
                Source::PcapNg(pcapng::PcapNgReader::new(input).map_err(header_error)?)
            }
        };
        Ok(CaptureReader { source, index: 0 })
    }

    /// The format the file is in.
    pub fn format(&self) -> Format {
        match self.source {
            Source::Pcap(_) => Format::Pcap,
            Source::PcapNg(_) => Format::PcapNg,
        }
    }

    /// Reads the next frame into `data` (reusing its allocation); returns its
    /// timestamp in nanoseconds, or None at the end of the file. pcapng blocks
    /// that carry no packet (statistics, name resolution, new sections and
    /// interfaces...) are passed over.
    ///
    /// # Errors
    /// A [`CaptureError`] naming the record that could not be read.
    pub fn next_into(&mut self, data: &mut Vec<u8>) -> Result<Option<u64>, CaptureError> {
        let index = self.index;
        let timestamp_ns = match &mut self.source {
            Source::Pcap(reader) => {
                let Some(packet) = reader.next_packet() else {
                    return Ok(None);
                };
                let packet = packet.map_err(|e| record_error(index, e))?;
                data.clear();
                data.extend_from_slice(&packet.data);
                u64::try_from(packet.timestamp.as_nanos()).map_err(|_| CaptureError::BadRecord {
                    index,
                    what: "timestamp beyond the year 2554".to_string(),
                })?
            }
            Source::PcapNg(reader) => match next_pcapng_packet(reader, index, data)? {
                None => return Ok(None),
                Some(ns) => ns,
            },
        };
        if data.len() > MAX_RECORD as usize {
            return Err(CaptureError::Oversize {
                index,
                len: data.len(),
            });
        }
        self.index += 1;
        Ok(Some(timestamp_ns))
    }

    /// Reads every remaining frame.
    ///
    /// # Errors
    /// As [`CaptureReader::next_into`].
    pub fn read_all(mut self) -> Result<Vec<Record>, CaptureError> {
        let mut out = Vec::new();
        let mut data = Vec::new();
        while let Some(timestamp_ns) = self.next_into(&mut data)? {
            out.push(Record {
                timestamp_ns,
                data: std::mem::take(&mut data),
            });
        }
        Ok(out)
    }
}

/// The next packet of a pcapng file, copied into `data`, with its timestamp in
/// nanoseconds.
fn next_pcapng_packet<R: Read>(
    reader: &mut pcapng::PcapNgReader<R>,
    index: u64,
    data: &mut Vec<u8>,
) -> Result<Option<u64>, CaptureError> {
    loop {
        let Some(block) = reader.next_block() else {
            return Ok(None);
        };
        // pcap-file 2.0 hands an Enhanced Packet Block's timestamp back as
        // `Duration::from_nanos(ticks)` whatever the interface's resolution, so
        // `as_nanos()` is the raw tick count; `timestamp_ns` scales it.
        let (interface, ticks) = match block.map_err(|e| record_error(index, e))? {
            Block::EnhancedPacket(packet) => {
                data.clear();
                data.extend_from_slice(&packet.data);
                (packet.interface_id, packet.timestamp.as_nanos() as u64)
            }
            Block::Packet(packet) => {
                data.clear();
                data.extend_from_slice(&packet.data);
                (u32::from(packet.interface_id), packet.timestamp)
            }
            Block::SimplePacket(_) => return Err(CaptureError::SimplePacket { index }),
            _ => continue,
        };
        let description = reader
            .interfaces()
            .get(interface as usize)
            .ok_or(CaptureError::UnknownInterface { index, interface })?;
        let link = u32::from(description.linktype);
        if link != LINKTYPE_ETHERNET {
            return Err(CaptureError::LinkType {
                link,
                interface: Some(interface),
            });
        }
        return timestamp_ns(ticks, description)
            .map(Some)
            .ok_or(CaptureError::BadRecord {
                index,
                what: "timestamp out of range for its interface's resolution and offset"
                    .to_string(),
            });
    }
}

/// Nanoseconds since the epoch of `ticks` on an interface: one tick is
/// 10^-n seconds (if_tsresol n with bit 7 clear; microseconds when the option is
/// absent) or 2^-n seconds (bit 7 set), and if_tsoffset seconds are added. None
/// when the result does not fit.
fn timestamp_ns(ticks: u64, description: &InterfaceDescriptionBlock<'_>) -> Option<u64> {
    let mut resolution = 6u8;
    let mut offset_s = 0i64;
    for option in &description.options {
        match option {
            InterfaceDescriptionOption::IfTsResol(r) => resolution = *r,
            // The specification makes it signed; pcap-file 2.0 reads it unsigned.
            InterfaceDescriptionOption::IfTsOffset(o) => offset_s = *o as i64,
            _ => {}
        }
    }
    let ticks = u128::from(ticks);
    let exponent = u32::from(resolution & 0x7F);
    let ns = if resolution & 0x80 != 0 {
        (ticks * 1_000_000_000) >> exponent
    } else if exponent <= 9 {
        ticks * 10u128.pow(9 - exponent)
    } else {
        10u128
            .checked_pow(exponent - 9)
            .map_or(0, |divisor| ticks / divisor)
    };
    let ns = i128::try_from(ns).ok()? + i128::from(offset_s) * 1_000_000_000;
    u64::try_from(ns).ok()
}

fn header_error(format: Format, e: PcapError) -> CaptureError {
    match e {
        PcapError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            CaptureError::BadHeader {
                format,
                what: "the file ends inside it".to_string(),
            }
        }
        PcapError::IncompleteBuffer => CaptureError::BadHeader {
            format,
            what: "the file ends inside it".to_string(),
        },
        PcapError::IoError(e) => CaptureError::Io(e),
        other => CaptureError::BadHeader {
            format,
            what: other.to_string(),
        },
    }
}

fn record_error(index: u64, e: PcapError) -> CaptureError {
    match e {
        PcapError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            CaptureError::Truncated { index }
        }
        PcapError::IncompleteBuffer => CaptureError::Truncated { index },
        PcapError::IoError(e) => CaptureError::Io(e),
        PcapError::InvalidInterfaceId(interface) => {
            CaptureError::UnknownInterface { index, interface }
        }
        other => CaptureError::BadRecord {
            index,
            what: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::{PcapNgWriter, PcapWriter};
    use super::*;

    fn read(bytes: &[u8]) -> Result<Vec<Record>, CaptureError> {
        CaptureReader::new(bytes)?.read_all()
    }

    /// A little-endian pcapng block: type, total length, body padded to 32 bits,
    /// total length.
    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let padded = body.len().div_ceil(4) * 4;
        let total = (12 + padded) as u32;
        let mut b = Vec::new();
        b.extend_from_slice(&kind.to_le_bytes());
        b.extend_from_slice(&total.to_le_bytes());
        b.extend_from_slice(body);
        b.resize(8 + padded, 0);
        b.extend_from_slice(&total.to_le_bytes());
        b
    }

    fn section_header() -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&(-1i64).to_le_bytes());
        block(0x0A0D_0D0A, &body)
    }

    /// pcapng options as (code, value) pairs.
    type Options<'a> = &'a [(u16, &'a [u8])];

    /// Interface Description Block.
    fn interface(link: u16, options: Options<'_>) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&link.to_le_bytes());
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&65535u32.to_le_bytes());
        if !options.is_empty() {
            for (code, value) in options {
                body.extend_from_slice(&code.to_le_bytes());
                body.extend_from_slice(&(value.len() as u16).to_le_bytes());
                body.extend_from_slice(value);
                body.resize(body.len().div_ceil(4) * 4, 0);
            }
            body.extend_from_slice(&[0, 0, 0, 0]);
        }
        block(1, &body)
    }

    fn enhanced_packet(interface: u32, ticks: u64, data: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&interface.to_le_bytes());
        body.extend_from_slice(&((ticks >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(ticks as u32).to_le_bytes());
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        block(6, &body)
    }

    fn pcapng(blocks: &[Vec<u8>]) -> Vec<u8> {
        blocks.concat()
    }

    #[test]
    fn classic_round_trip_keeps_bytes_and_time() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write(1_700_000_000_123_456_789, &[1, 2, 3]).unwrap();
        w.write(5, &[]).unwrap();
        let bytes = w.finish().unwrap();
        let reader = CaptureReader::new(&bytes[..]).unwrap();
        assert_eq!(reader.format(), Format::Pcap);
        let records = reader.read_all().unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].timestamp_ns, 1_700_000_000_123_456_789);
        assert_eq!(records[0].data, vec![1, 2, 3]);
        assert_eq!(records[1].data, Vec::<u8>::new());
    }

    #[test]
    fn classic_big_endian_microseconds() {
        let mut f = Vec::new();
        f.extend_from_slice(&0xA1B2_C3D4u32.to_be_bytes());
        f.extend_from_slice(&[
            0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 1,
        ]);
        f.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0xAB]);
        let records = read(&f).unwrap();
        assert_eq!(records[0].timestamp_ns, 2_000_003_000);
        assert_eq!(records[0].data, vec![0xAB]);
    }

    #[test]
    fn classic_of_another_link_type_is_refused() {
        let mut f = PcapWriter::new(Vec::new()).unwrap().finish().unwrap();
        f[20] = 113; // LINKTYPE_LINUX_SLL
        let e = CaptureReader::new(&f[..]).err().unwrap();
        assert_eq!(e.to_string(), "link type 113 is not Ethernet (1)");
    }

    #[test]
    fn refuses_garbage_empty_and_cut_files() {
        assert!(matches!(
            CaptureReader::new(&[0u8; 24][..]),
            Err(CaptureError::BadMagic {
                magic: [0, 0, 0, 0]
            })
        ));
        assert!(matches!(
            CaptureReader::new(&[0xD4, 0xC3][..]),
            Err(CaptureError::TooShort)
        ));
        let header_cut = PcapWriter::new(Vec::new()).unwrap().finish().unwrap();
        let e = CaptureReader::new(&header_cut[..10]).err().unwrap();
        assert_eq!(
            e.to_string(),
            "bad pcap file header: the file ends inside it"
        );
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write(0, &[1, 2, 3, 4]).unwrap();
        w.write(0, &[1, 2, 3, 4]).unwrap();
        let bytes = w.finish().unwrap();
        let cut = &bytes[..bytes.len() - 1];
        assert!(matches!(
            read(cut),
            Err(CaptureError::Truncated { index: 1 })
        ));
    }

    #[test]
    fn pcapng_without_resolution_is_in_microseconds() {
        let f = pcapng(&[
            section_header(),
            interface(1, &[]),
            enhanced_packet(0, 1_700_000_000_123_456, &[1, 2, 3, 4, 5]),
        ]);
        let reader = CaptureReader::new(&f[..]).unwrap();
        assert_eq!(reader.format(), Format::PcapNg);
        let records = reader.read_all().unwrap();
        assert_eq!(
            records,
            vec![Record {
                timestamp_ns: 1_700_000_000_123_456_000,
                data: vec![1, 2, 3, 4, 5],
            }]
        );
    }

    #[test]
    fn pcapng_resolutions_and_offset() {
        let cases: &[(Options<'_>, u64, u64)] = &[
            // if_tsresol 9: nanoseconds.
            (
                &[(9, &[9])],
                1_700_000_000_123_456_789,
                1_700_000_000_123_456_789,
            ),
            // if_tsresol 3: milliseconds.
            (&[(9, &[3])], 1_500, 1_500_000_000),
            // if_tsresol 2^-10: 5.5 s in 1/1024 s ticks.
            (&[(9, &[0x80 | 10])], 5 * 1024 + 512, 5_500_000_000),
            // if_tsresol 12: picoseconds, rounded down.
            (&[(9, &[12])], 1_234_567, 1_234),
            // if_tsoffset 100 s on top of microseconds.
            (&[(14, &100u64.to_le_bytes())], 7, 100_000_007_000),
        ];
        for (options, ticks, ns) in cases {
            let f = pcapng(&[
                section_header(),
                interface(1, options),
                enhanced_packet(0, *ticks, &[0xEE]),
            ]);
            let records = read(&f).unwrap();
            assert_eq!(records[0].timestamp_ns, *ns, "options {options:?}");
        }
    }

    #[test]
    fn pcapng_skips_blocks_without_packets_and_follows_interfaces() {
        let statistics = block(5, &[0; 12]);
        let unknown = block(0x0000_1234, &[1, 2, 3, 4]);
        let f = pcapng(&[
            section_header(),
            interface(1, &[]),
            unknown,
            interface(1, &[(9, &[9])]),
            enhanced_packet(1, 42, &[7]),
            statistics,
            enhanced_packet(0, 42, &[8]),
        ]);
        let records = read(&f).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!((records[0].timestamp_ns, records[0].data[0]), (42, 7));
        assert_eq!((records[1].timestamp_ns, records[1].data[0]), (42_000, 8));
    }

    #[test]
    fn pcapng_errors_name_the_record() {
        let undeclared = pcapng(&[
            section_header(),
            interface(1, &[]),
            enhanced_packet(0, 1, &[1]),
            enhanced_packet(3, 1, &[1]),
        ]);
        let e = read(&undeclared).unwrap_err();
        assert!(
            matches!(
                e,
                CaptureError::UnknownInterface {
                    index: 1,
                    interface: 3
                }
            ),
            "{e}"
        );

        let raw_ip = pcapng(&[
            section_header(),
            interface(101, &[]),
            enhanced_packet(0, 1, &[1]),
        ]);
        let e = read(&raw_ip).unwrap_err();
        assert_eq!(
            e.to_string(),
            "link type 101 is not Ethernet (1) on pcapng interface 0"
        );

        let simple = pcapng(&[
            section_header(),
            interface(1, &[]),
            block(3, &[1, 0, 0, 0, 9]),
        ]);
        assert!(matches!(
            read(&simple),
            Err(CaptureError::SimplePacket { index: 0 })
        ));

        let whole = pcapng(&[
            section_header(),
            interface(1, &[]),
            enhanced_packet(0, 1, &[1, 2, 3]),
            enhanced_packet(0, 2, &[4, 5, 6]),
        ]);
        assert!(matches!(
            read(&whole[..whole.len() - 3]),
            Err(CaptureError::Truncated { index: 1 })
        ));
        assert!(matches!(
            CaptureReader::new(&whole[..20]),
            Err(CaptureError::BadHeader {
                format: Format::PcapNg,
                ..
            })
        ));
    }

    #[test]
    fn pcapng_writer_output_reads_back() {
        let mut w = PcapNgWriter::new(Vec::new(), "backbone").unwrap();
        w.write(1_700_000_000_123_456_789, &[1, 2, 3], "unknown_vtep")
            .unwrap();
        w.write(1_700_000_001_000_000_001, &[4; 61], "truncated")
            .unwrap();
        assert_eq!(w.written(), 2);
        let bytes = w.finish().unwrap();
        let records = read(&bytes).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].timestamp_ns, 1_700_000_000_123_456_789);
        assert_eq!(records[0].data, vec![1, 2, 3]);
        assert_eq!(records[1].timestamp_ns, 1_700_000_001_000_000_001);
        assert_eq!(records[1].data, vec![4; 61]);
    }
}
