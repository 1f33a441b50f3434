//! TCP segments (RFC 9293): the fields NAT rewrites, the flags connection tracking
//! reads, and the MSS option the tunnel clamps.
//!
//! Why one file: about half of it is the smoltcp-style tests
//! (byte literals, etherparse, malformed lengths), kept beside the view they check.

use super::{be16, be32, checksum, ip_proto, Malformed, Result};

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUMBER: Range<usize> = 4..8;
    pub const ACK_NUMBER: Range<usize> = 8..12;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// Flag bits of byte 13.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// Option kinds (RFC 9293 §3.2).
mod option {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const MSS_LEN: usize = 4;
}

/// A view of a TCP segment: header, options and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic on a buffer that
    /// [`Self::new_checked`] would reject. For headers the caller has just emitted.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps a segment (exactly the IP payload, so the checksum covers the right
    /// bytes): at least 20 bytes, data offset at least 5 and within the buffer.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < MIN_HEADER_LEN {
            return Err(Malformed);
        }
        let packet = TcpPacket { buffer };
        let header_len = packet.header_len();
        if header_len < MIN_HEADER_LEN || header_len > packet.buffer.as_ref().len() {
            return Err(Malformed);
        }
        Ok(packet)
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::DST_PORT])
    }

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SEQ_NUMBER])
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::ACK_NUMBER])
    }

    /// Header length in bytes (data offset * 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFFSET] >> 4) * 4
    }

    /// All eight flag bits, see [`flags`].
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// FIN flag.
    #[inline]
    pub fn fin(&self) -> bool {
        self.flags() & flags::FIN != 0
    }

    /// SYN flag.
    #[inline]
    pub fn syn(&self) -> bool {
        self.flags() & flags::SYN != 0
    }

    /// RST flag.
    #[inline]
    pub fn rst(&self) -> bool {
        self.flags() & flags::RST != 0
    }

    /// PSH flag.
    #[inline]
    pub fn psh(&self) -> bool {
        self.flags() & flags::PSH != 0
    }

    /// ACK flag.
    #[inline]
    pub fn ack(&self) -> bool {
        self.flags() & flags::ACK != 0
    }

    /// URG flag.
    #[inline]
    pub fn urg(&self) -> bool {
        self.flags() & flags::URG != 0
    }

    /// ECE flag.
    #[inline]
    pub fn ece(&self) -> bool {
        self.flags() & flags::ECE != 0
    }

    /// CWR flag.
    #[inline]
    pub fn cwr(&self) -> bool {
        self.flags() & flags::CWR != 0
    }

    /// Receive window.
    #[inline]
    pub fn window(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::WINDOW])
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent_ptr(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::URGENT])
    }

    /// The options: `20..header_len`.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// Everything after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// The MSS option, as (offset of its 2-byte value inside the segment, value).
    ///
    /// Walks the options without trusting them: End of Option List ends the walk, NOP
    /// is skipped, and any option whose length is below 2 or runs past the header
    /// gives `None`, as does an MSS option whose length is not 4 (a segment we cannot
    /// clamp safely is left alone).
    #[inline]
    pub fn mss_option(&self) -> Option<(usize, u16)> {
        let opts = self.options();
        let mut i = 0;
        while let Some(&kind) = opts.get(i) {
            match kind {
                option::END => return None,
                option::NOP => i += 1,
                _ => {
                    let len = usize::from(*opts.get(i + 1)?);
                    if len < 2 || i + len > opts.len() {
                        return None;
                    }
                    if kind == option::MSS {
                        if len != option::MSS_LEN {
                            return None;
                        }
                        let value = be16(&opts[i + 2..i + 4]);
                        return Some((MIN_HEADER_LEN + i + 2, value));
                    }
                    i += len;
                }
            }
        }
        None
    }

    #[inline]
    fn pseudo_v4(&self, src: [u8; 4], dst: [u8; 4]) -> u64 {
        // A view longer than 65535 bytes cannot be an IPv4 payload; its checksum is
        // simply wrong rather than a panic.
        let len = self.buffer.as_ref().len() as u16;
        checksum::pseudo_header_v4(src, dst, ip_proto::TCP, len)
    }

    #[inline]
    fn pseudo_v6(&self, src: [u8; 16], dst: [u8; 16]) -> u64 {
        let len = self.buffer.as_ref().len() as u32;
        checksum::pseudo_header_v6(&src, &dst, ip_proto::TCP, len)
    }

    /// True if the checksum over the pseudo-header and the whole view is correct.
    #[inline]
    pub fn verify_checksum_v4(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        let s = self.pseudo_v4(src, dst) + checksum::sum(self.buffer.as_ref());
        checksum::finish(s) == 0
    }

    /// True if the checksum over the IPv6 pseudo-header and the whole view is correct.
    #[inline]
    pub fn verify_checksum_v6(&self, src: [u8; 16], dst: [u8; 16]) -> bool {
        let s = self.pseudo_v6(src, dst) + checksum::sum(self.buffer.as_ref());
        checksum::finish(s) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port (the checksum is not updated).
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        self.buffer.as_mut()[field::SRC_PORT].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the destination port (the checksum is not updated).
    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        self.buffer.as_mut()[field::DST_PORT].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Writes an MSS value at `offset` (as returned by [`Self::mss_option`]); the
    /// checksum is not updated (see [`Self::clamp_mss`]).
    ///
    /// # Panics
    /// If `offset + 2` exceeds the segment: `offset` must come from `mss_option`.
    #[inline]
    pub fn set_mss_at(&mut self, offset: usize, value: u16) {
        self.buffer.as_mut()[offset..offset + 2].copy_from_slice(&value.to_be_bytes());
    }

    /// Lowers the MSS option to `max` if it is larger, updating the checksum
    /// incrementally. Returns true if the segment changed.
    ///
    /// The MSS value may sit at an odd offset (after a single NOP); its bytes then
    /// straddle two checksum words and count byte-swapped.
    #[inline]
    pub fn clamp_mss(&mut self, max: u16) -> bool {
        let Some((offset, mss)) = self.mss_option() else {
            return false;
        };
        if mss <= max {
            return false;
        }
        self.set_mss_at(offset, max);
        let c = if offset % 2 == 0 {
            checksum::update16(self.checksum(), mss, max)
        } else {
            checksum::update16(self.checksum(), mss.swap_bytes(), max.swap_bytes())
        };
        self.set_checksum(c);
        true
    }

    /// Computes the checksum over the IPv4 pseudo-header and the whole view.
    #[inline]
    pub fn fill_checksum_v4(&mut self, src: [u8; 4], dst: [u8; 4]) {
        self.set_checksum(0);
        let s = self.pseudo_v4(src, dst) + checksum::sum(self.buffer.as_ref());
        self.set_checksum(checksum::finish(s));
    }

    /// Computes the checksum over the IPv6 pseudo-header and the whole view.
    #[inline]
    pub fn fill_checksum_v6(&mut self, src: [u8; 16], dst: [u8; 16]) {
        self.set_checksum(0);
        let s = self.pseudo_v6(src, dst) + checksum::sum(self.buffer.as_ref());
        self.set_checksum(checksum::finish(s));
    }

    /// Everything after the header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{TcpHeader, TcpHeaderSlice};
    use proptest::prelude::*;

    const SRC4: [u8; 4] = [192, 0, 2, 1];
    const DST4: [u8; 4] = [198, 51, 100, 2];
    const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    /// A SYN with MSS 1460, SACK permitted, timestamps, NOP, window scale 7.
    const SYN: [u8; 40] = [
        0xc3, 0x50, 0x00, 0x50, // ports 50000 -> 80
        0x01, 0x02, 0x03, 0x04, // seq
        0x00, 0x00, 0x00, 0x00, // ack
        0xa0, 0x02, 0xfa, 0xf0, // data offset 10, SYN, window 64240
        0x00, 0x00, 0x00, 0x00, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
        0x04, 0x02, // SACK permitted
        0x08, 0x0a, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // timestamps
        0x01, // NOP
        0x03, 0x03, 0x07, // window scale
    ];

    /// etherparse writes a computed 0 as 0xFFFF (-0) for TCP too; both are valid.
    fn same_checksum(ours: u16, theirs: u16) -> bool {
        ours == theirs || (ours == 0 && theirs == 0xffff)
    }

    fn etherparse_v4(segment: &[u8]) -> u16 {
        let h = TcpHeaderSlice::from_slice(segment).unwrap().to_header();
        h.calc_checksum_ipv4_raw(SRC4, DST4, &segment[h.header_len()..])
            .unwrap()
    }

    fn etherparse_v6(segment: &[u8]) -> u16 {
        let h = TcpHeaderSlice::from_slice(segment).unwrap().to_header();
        h.calc_checksum_ipv6_raw(SRC6, DST6, &segment[h.header_len()..])
            .unwrap()
    }

    #[test]
    fn parse_syn() {
        let p = TcpPacket::new_checked(&SYN[..]).unwrap();
        assert_eq!(p.src_port(), 50000);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 0x0102_0304);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 40);
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst() && !p.psh() && !p.urg());
        assert!(!p.ece() && !p.cwr());
        assert_eq!(p.flags(), flags::SYN);
        assert_eq!(p.window(), 64240);
        assert_eq!(p.urgent_ptr(), 0);
        assert_eq!(p.options(), &SYN[20..]);
        assert!(p.payload().is_empty());
        assert_eq!(p.mss_option(), Some((22, 1460)));

        let e = TcpHeaderSlice::from_slice(&SYN).unwrap();
        assert_eq!(e.options(), p.options());
        assert_eq!(e.window_size(), p.window());
        assert!(e.syn());
    }

    #[test]
    fn flags_match_etherparse() {
        for bits in 0..=255u8 {
            let mut v = SYN;
            v[13] = bits;
            let p = TcpPacket::new_checked(&v[..]).unwrap();
            let e = TcpHeaderSlice::from_slice(&v).unwrap();
            assert_eq!(
                (
                    p.fin(),
                    p.syn(),
                    p.rst(),
                    p.psh(),
                    p.ack(),
                    p.urg(),
                    p.ece(),
                    p.cwr()
                ),
                (
                    e.fin(),
                    e.syn(),
                    e.rst(),
                    e.psh(),
                    e.ack(),
                    e.urg(),
                    e.ece(),
                    e.cwr()
                )
            );
        }
    }

    #[test]
    fn malformed() {
        let check = |b: &[u8]| TcpPacket::new_checked(b).map(|_| ());
        assert_eq!(check(&SYN[..19]), Err(Malformed));
        assert_eq!(check(&[]), Err(Malformed));
        assert_eq!(check(&SYN[..39]), Err(Malformed), "options past buffer");
        assert_eq!(check(&SYN), Ok(()));
        let mut v = SYN;
        v[12] = 0x40;
        assert_eq!(check(&v), Err(Malformed), "data offset 4");
        v[12] = 0x00;
        assert_eq!(check(&v), Err(Malformed), "data offset 0");
        v[12] = 0x50;
        let p = TcpPacket::new_checked(&v[..]).unwrap();
        assert!(p.options().is_empty());
        assert_eq!(p.payload(), &SYN[20..]);
        assert_eq!(p.mss_option(), None);
    }

    #[test]
    fn checksums_match_etherparse() {
        let mut v = SYN.to_vec();
        v.extend_from_slice(b"hello, odd!");
        let mut p = TcpPacket::new_checked(&mut v[..]).unwrap();
        p.fill_checksum_v4(SRC4, DST4);
        assert!(p.verify_checksum_v4(SRC4, DST4));
        assert!(!p.verify_checksum_v4(SRC4, SRC4));
        assert!(!p.verify_checksum_v6(SRC6, DST6));
        let c4 = p.checksum();
        assert!(same_checksum(c4, etherparse_v4(&v)));

        let mut p = TcpPacket::new_checked(&mut v[..]).unwrap();
        p.fill_checksum_v6(SRC6, DST6);
        assert!(p.verify_checksum_v6(SRC6, DST6));
        assert!(!p.verify_checksum_v4(SRC4, DST4));
        assert!(same_checksum(p.checksum(), etherparse_v6(&v)));

        // A segment etherparse built verifies with ours.
        let mut h = TcpHeader::new(1234, 443, 99, 512);
        h.ack = true;
        h.acknowledgment_number = 7;
        h.checksum = h.calc_checksum_ipv4_raw(SRC4, DST4, b"abc").unwrap();
        let mut seg = h.to_bytes().to_vec();
        seg.extend_from_slice(b"abc");
        let p = TcpPacket::new_checked(&seg[..]).unwrap();
        assert!(p.verify_checksum_v4(SRC4, DST4));
        assert_eq!(p.ack_number(), 7);
        assert_eq!(p.payload(), b"abc");
    }

    #[test]
    fn nat_rewrite_with_incremental_update() {
        let mut v = SYN.to_vec();
        v.extend_from_slice(&[1, 2, 3]);
        let mut p = TcpPacket::new_checked(&mut v[..]).unwrap();
        p.fill_checksum_v4(SRC4, DST4);
        // DNAT: new destination address and port, checksum updated incrementally.
        let new_dst = [10, 1, 2, 3];
        let mut c = checksum::update32(
            p.checksum(),
            u32::from_be_bytes(DST4),
            u32::from_be_bytes(new_dst),
        );
        c = checksum::update16(c, p.dst_port(), 8080);
        p.set_dst_port(8080);
        p.set_checksum(c);
        assert!(p.verify_checksum_v4(SRC4, new_dst));
        p.set_src_port(1);
        assert!(!p.verify_checksum_v4(SRC4, new_dst));
    }

    fn with_options(opts: &[u8]) -> Vec<u8> {
        assert_eq!(opts.len() % 4, 0);
        let mut v = SYN[..20].to_vec();
        v[12] = (((20 + opts.len()) / 4) << 4) as u8;
        v.extend_from_slice(opts);
        v
    }

    fn mss_of(opts: &[u8]) -> Option<(usize, u16)> {
        TcpPacket::new_checked(with_options(opts))
            .unwrap()
            .mss_option()
    }

    #[test]
    fn mss_option_walk() {
        assert_eq!(mss_of(&[]), None);
        assert_eq!(mss_of(&[2, 4, 0x23, 0x28]), Some((22, 9000)));
        // NOPs before: odd offset.
        assert_eq!(mss_of(&[1, 2, 4, 5, 0xb4, 1, 1, 1]), Some((23, 1460)));
        // After window scale and SACK permitted.
        assert_eq!(
            mss_of(&[3, 3, 7, 4, 2, 2, 4, 1, 0, 0, 0, 0]),
            Some((27, 256))
        );
        // End of option list hides what follows.
        assert_eq!(mss_of(&[0, 2, 4, 5, 0xb4, 0, 0, 0]), None);
        // Length 0 or 1 would loop or step backwards.
        assert_eq!(mss_of(&[3, 0, 2, 4, 5, 0xb4, 0, 0]), None);
        assert_eq!(mss_of(&[3, 1, 2, 4, 5, 0xb4, 0, 0]), None);
        // Option running past the header.
        assert_eq!(mss_of(&[1, 1, 3, 3]), None);
        assert_eq!(mss_of(&[1, 1, 8, 10]), None);
        // Kind in the last byte, no room for the length.
        assert_eq!(mss_of(&[1, 1, 1, 2]), None);
        // MSS with a bad length, or cut short.
        assert_eq!(mss_of(&[2, 3, 5, 1]), None);
        assert_eq!(mss_of(&[2, 6, 5, 0xb4, 0, 0, 0, 0]), None);
        assert_eq!(mss_of(&[1, 1, 2, 4]), None);
        // Options padded with NOPs to the end.
        assert_eq!(mss_of(&[1, 1, 1, 1]), None);
    }

    #[test]
    fn clamp_mss_even_and_odd_offsets() {
        for opts in [
            &[2u8, 4, 0x23, 0x28][..],
            &[1, 2, 4, 0x23, 0x28, 1, 1, 0][..],
            &[1, 1, 1, 2, 4, 0x23, 0x28, 0][..],
        ] {
            let mut v = with_options(opts);
            v.extend_from_slice(&[0xde, 0xad, 0xbe]);
            let mut p = TcpPacket::new_checked(&mut v[..]).unwrap();
            p.fill_checksum_v4(SRC4, DST4);
            assert!(!p.clamp_mss(9000), "not above the limit");
            assert!(p.clamp_mss(1360));
            assert_eq!(p.mss_option().map(|(_, m)| m), Some(1360));
            assert!(p.verify_checksum_v4(SRC4, DST4));
            let incremental = p.checksum();
            assert!(same_checksum(incremental, etherparse_v4(&v)));
        }
        let mut v = with_options(&[]);
        assert!(!TcpPacket::new_checked(&mut v[..]).unwrap().clamp_mss(1000));
    }

    #[test]
    #[should_panic]
    fn set_mss_at_out_of_range_panics() {
        let mut v = SYN;
        TcpPacket::new_checked(&mut v[..])
            .unwrap()
            .set_mss_at(39, 1);
    }

    proptest! {
        #[test]
        fn accessors_never_panic(data in prop::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = TcpPacket::new_checked(&data[..]) {
                let _ = (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number(), p.flags());
                let _ = (p.window(), p.checksum(), p.urgent_ptr(), p.options(), p.payload());
                if let Some((at, _)) = p.mss_option() {
                    prop_assert!(at >= MIN_HEADER_LEN && at + 2 <= p.header_len());
                }
                let mut copy = data.clone();
                let mut q = TcpPacket::new_checked(&mut copy[..]).unwrap();
                q.clamp_mss(536);
            }
        }

        #[test]
        fn mss_matches_etherparse(opts in prop::collection::vec(
            prop::sample::select(vec![0u8, 1, 2, 3, 4, 8, 5, 10, 0x05, 0xb4]), 0..10)
        ) {
            let mut opts = opts;
            opts.resize(opts.len().div_ceil(4) * 4, 1);
            let v = with_options(&opts);
            let ours = TcpPacket::new_checked(&v[..]).unwrap().mss_option();
            let e = TcpHeaderSlice::from_slice(&v).unwrap();
            let mut theirs = None;
            let mut clean = true;
            for o in e.options_iterator() {
                match o {
                    Ok(etherparse::TcpOptionElement::MaximumSegmentSize(m)) => {
                        theirs = Some(m);
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        clean = false;
                        break;
                    }
                }
            }
            // etherparse rejects unknown kinds and unusual lengths of other options,
            // which we skip by their length.
            if clean {
                prop_assert_eq!(ours.map(|(_, m)| m), theirs);
            }
        }

        #[test]
        fn clamp_equals_recompute(
            lead in 0usize..4,
            mss in any::<u16>(),
            max in any::<u16>(),
            payload in prop::collection::vec(any::<u8>(), 0..30),
        ) {
            let mut opts = vec![1u8; lead];
            opts.extend_from_slice(&[2, 4]);
            opts.extend_from_slice(&mss.to_be_bytes());
            opts.resize(opts.len().div_ceil(4) * 4, 0);
            let mut v = with_options(&opts);
            v.extend_from_slice(&payload);
            let mut p = TcpPacket::new_checked(&mut v[..]).unwrap();
            p.fill_checksum_v6(SRC6, DST6);
            prop_assert_eq!(p.clamp_mss(max), mss > max);
            prop_assert_eq!(p.mss_option(), Some((22 + lead, mss.min(max))));
            let incremental = p.checksum();
            p.fill_checksum_v6(SRC6, DST6);
            prop_assert_eq!(incremental, p.checksum());
        }
    }
}
