//! Capture files: the replay driver's input (classic pcap or pcapng, told apart by
//! their first four bytes) and its outputs (classic pcap per port, pcapng with a
//! comment per frame for dropped frames).
//!
//! Parsing and encoding are the `pcap-file` crate's; this module adds what replay
//! needs on top: format detection, Ethernet-only input, errors that say which record
//! is wrong and why, nanosecond timestamps whatever the file's resolution, and fixed
//! output headers (so outputs compare byte for byte with the fixtures).
//!
//! Not supported: link types other than Ethernet, pcapng Simple Packet Blocks (they
//! carry no timestamp), and the "modified" (Kuznetzov) pcap magic.

mod reader;
mod writer;

pub use reader::CaptureReader;
pub use writer::{PcapNgWriter, PcapWriter};

use std::fmt;
use std::io;

/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Largest record accepted (a jumbo frame plus margin), and the snaplen written.
pub const MAX_RECORD: u32 = 65_535;

/// The two capture file formats replay reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Classic libpcap (`.pcap`), either byte order, micro- or nanosecond timestamps.
    Pcap,
    /// pcapng (`.pcapng`), Wireshark's default.
    PcapNg,
}

impl Format {
    /// The format of a file that starts with `magic`, or None when it is neither.
    ///
    /// Classic pcap starts with `a1b2c3d4` (microseconds) or `a1b23c4d`
    /// (nanoseconds) in the writer's byte order; pcapng with the Section Header
    /// Block type `0a0d0d0a`, the same in both byte orders.
    pub fn detect(magic: [u8; 4]) -> Option<Format> {
        const PCAP_MICROS: u32 = 0xA1B2_C3D4;
        const PCAP_NANOS: u32 = 0xA1B2_3C4D;
        const PCAPNG_SECTION: u32 = 0x0A0D_0D0A;
        let word = u32::from_be_bytes(magic);
        match word {
            PCAPNG_SECTION => Some(Format::PcapNg),
            w if [PCAP_MICROS, PCAP_NANOS].contains(&w)
                || [PCAP_MICROS, PCAP_NANOS].contains(&w.swap_bytes()) =>
            {
                Some(Format::Pcap)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Pcap => "pcap",
            Format::PcapNg => "pcapng",
        })
    }
}

/// Why a capture file could not be read. The file's name is added by the caller
/// (see `replay::ReplayError::Input`).
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("I/O error: {0}")]
    Io(#[source] io::Error),
    #[error("the file is empty or shorter than any capture file header")]
    TooShort,
    #[error(
        "not a pcap or pcapng file: it starts with {:08x} (pcap starts with a1b2c3d4 or \
         a1b23c4d in either byte order, pcapng with 0a0d0d0a)",
        u32::from_be_bytes(*magic)
    )]
    BadMagic { magic: [u8; 4] },
    #[error("bad {format} file header: {what}")]
    BadHeader { format: Format, what: String },
    #[error("link type {link} is not Ethernet (1){}", interface_suffix(*interface))]
    LinkType { link: u32, interface: Option<u32> },
    #[error("record {index} claims {len} bytes, more than {MAX_RECORD}")]
    Oversize { index: u64, len: usize },
    #[error("file ends inside record {index}")]
    Truncated { index: u64 },
    #[error("record {index} is invalid: {what}")]
    BadRecord { index: u64, what: String },
    #[error("record {index} belongs to interface {interface}, which no Interface Description Block declares")]
    UnknownInterface { index: u64, interface: u32 },
    #[error("record {index} is a pcapng Simple Packet Block, which carries no timestamp; re-save the capture with Wireshark or `editcap -F pcapng`")]
    SimplePacket { index: u64 },
}

fn interface_suffix(interface: Option<u32>) -> String {
    interface.map_or(String::new(), |i| format!(" on pcapng interface {i}"))
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Capture time in nanoseconds since the epoch.
    pub timestamp_ns: u64,
    pub data: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_both_formats_in_both_byte_orders() {
        // Classic pcap as written on little- and big-endian machines.
        assert_eq!(Format::detect([0xD4, 0xC3, 0xB2, 0xA1]), Some(Format::Pcap));
        assert_eq!(Format::detect([0xA1, 0xB2, 0xC3, 0xD4]), Some(Format::Pcap));
        assert_eq!(Format::detect([0x4D, 0x3C, 0xB2, 0xA1]), Some(Format::Pcap));
        assert_eq!(Format::detect([0xA1, 0xB2, 0x3C, 0x4D]), Some(Format::Pcap));
        assert_eq!(
            Format::detect([0x0A, 0x0D, 0x0D, 0x0A]),
            Some(Format::PcapNg)
        );
    }

    #[test]
    fn detects_nothing_else() {
        for magic in [
            [0, 0, 0, 0],
            *b"GET ",
            [0x1F, 0x8B, 0x08, 0x00], // gzip
            [0x34, 0xCD, 0xB2, 0xA1], // "modified" pcap
            [0x0A, 0x0D, 0x0D, 0x0B],
        ] {
            assert_eq!(Format::detect(magic), None, "{magic:02x?}");
        }
    }

    #[test]
    fn bad_magic_says_what_was_found_and_what_is_expected() {
        let e = CaptureError::BadMagic {
            magic: [0x47, 0x45, 0x54, 0x20],
        };
        let text = e.to_string();
        assert!(text.contains("not a pcap or pcapng file"), "{text}");
        assert!(text.contains("starts with 47455420"), "{text}");
        assert!(text.contains("0a0d0d0a"), "{text}");
    }
}
