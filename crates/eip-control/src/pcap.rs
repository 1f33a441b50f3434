//! Classic pcap files (not pcapng): the replay driver's input and output.
//!
//! Reads both byte orders and both microsecond and nanosecond timestamps; writes
//! little-endian, nanosecond-resolution files with link type Ethernet.

use std::io::{self, BufReader, BufWriter, Read, Write};

const MAGIC_MICROS: u32 = 0xA1B2_C3D4;
const MAGIC_NANOS: u32 = 0xA1B2_3C4D;
/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Largest record accepted (a jumbo frame plus margin).
const MAX_RECORD: u32 = 65_535;

/// Why a pcap file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("not a pcap file (magic {0:#010x}); pcapng is not supported, convert with `editcap -F pcap`")]
    BadMagic(u32),
    #[error("link type {0} is not Ethernet (1)")]
    LinkType(u32),
    #[error("record {index} claims {len} bytes, more than {MAX_RECORD}")]
    Oversize { index: u64, len: u32 },
    #[error("file ends inside record {index}")]
    Truncated { index: u64 },
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Capture time in nanoseconds since the epoch.
    pub timestamp_ns: u64,
    pub data: Vec<u8>,
}

/// Streaming pcap reader.
pub struct PcapReader<R: Read> {
    input: BufReader<R>,
    swapped: bool,
    nanos: bool,
    index: u64,
}

impl<R: Read> PcapReader<R> {
    /// Reads and checks the global header.
    pub fn new(input: R) -> Result<Self, PcapError> {
        let mut input = BufReader::new(input);
        let mut header = [0u8; 24];
        input.read_exact(&mut header)?;
        let magic = u32::from_le_bytes(header[0..4].try_into().unwrap());
        let (swapped, nanos) = match magic {
            MAGIC_MICROS => (false, false),
            MAGIC_NANOS => (false, true),
            m if m.swap_bytes() == MAGIC_MICROS => (true, false),
            m if m.swap_bytes() == MAGIC_NANOS => (true, true),
            m => return Err(PcapError::BadMagic(m)),
        };
        let reader = PcapReader {
            input,
            swapped,
            nanos,
            index: 0,
        };
        let link = reader.u32_at(&header, 20);
        if link != LINKTYPE_ETHERNET {
            return Err(PcapError::LinkType(link));
        }
        Ok(reader)
    }

    fn u32_at(&self, b: &[u8], at: usize) -> u32 {
        let v = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        if self.swapped {
            v.swap_bytes()
        } else {
            v
        }
    }

    /// Reads the next record into `data` (reusing its allocation); returns the
    /// timestamp, or None at the end of the file.
    pub fn next_into(&mut self, data: &mut Vec<u8>) -> Result<Option<u64>, PcapError> {
        let mut header = [0u8; 16];
        match self.input.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let secs = self.u32_at(&header, 0) as u64;
        let frac = self.u32_at(&header, 4) as u64;
        let len = self.u32_at(&header, 8);
        if len > MAX_RECORD {
            return Err(PcapError::Oversize {
                index: self.index,
                len,
            });
        }
        data.resize(len as usize, 0);
        self.input
            .read_exact(data)
            .map_err(|_| PcapError::Truncated { index: self.index })?;
        self.index += 1;
        let ns = if self.nanos { frac } else { frac * 1000 };
        Ok(Some(secs * 1_000_000_000 + ns))
    }

    /// Reads every remaining record.
    pub fn read_all(mut self) -> Result<Vec<Record>, PcapError> {
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

/// Streaming pcap writer (nanosecond timestamps, Ethernet).
pub struct PcapWriter<W: Write> {
    output: BufWriter<W>,
    written: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header.
    pub fn new(output: W) -> io::Result<Self> {
        let mut output = BufWriter::new(output);
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&MAGIC_NANOS.to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes());
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        header[16..20].copy_from_slice(&MAX_RECORD.to_le_bytes());
        header[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        output.write_all(&header)?;
        Ok(PcapWriter { output, written: 0 })
    }

    /// Appends one frame.
    pub fn write(&mut self, timestamp_ns: u64, data: &[u8]) -> io::Result<()> {
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&((timestamp_ns / 1_000_000_000) as u32).to_le_bytes());
        header[4..8].copy_from_slice(&((timestamp_ns % 1_000_000_000) as u32).to_le_bytes());
        header[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        header[12..16].copy_from_slice(&(data.len() as u32).to_le_bytes());
        self.output.write_all(&header)?;
        self.output.write_all(data)?;
        self.written += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        self.output.into_inner().map_err(|e| e.into_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_bytes_and_time() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write(1_700_000_000_123_456_789, &[1, 2, 3]).unwrap();
        w.write(5, &[]).unwrap();
        let bytes = w.finish().unwrap();
        let records = PcapReader::new(&bytes[..]).unwrap().read_all().unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].timestamp_ns, 1_700_000_000_123_456_789);
        assert_eq!(records[0].data, vec![1, 2, 3]);
        assert_eq!(records[1].data, Vec::<u8>::new());
    }

    #[test]
    fn reads_big_endian_microseconds() {
        let mut f = Vec::new();
        f.extend_from_slice(&MAGIC_MICROS.to_be_bytes());
        f.extend_from_slice(&[
            0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 1,
        ]);
        f.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0xAB]);
        let records = PcapReader::new(&f[..]).unwrap().read_all().unwrap();
        assert_eq!(records[0].timestamp_ns, 2_000_003_000);
        assert_eq!(records[0].data, vec![0xAB]);
    }

    #[test]
    fn refuses_garbage_and_cut_files() {
        assert!(matches!(
            PcapReader::new(&[0u8; 24][..]),
            Err(PcapError::BadMagic(0))
        ));
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write(0, &[1, 2, 3, 4]).unwrap();
        let bytes = w.finish().unwrap();
        let cut = &bytes[..bytes.len() - 1];
        assert!(matches!(
            PcapReader::new(cut).unwrap().read_all(),
            Err(PcapError::Truncated { index: 0 })
        ));
    }
}
