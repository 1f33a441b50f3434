//! IPv4 headers (RFC 791).
//!
//! Why one file: about half of it is the smoltcp-style tests
//! (byte literals, etherparse, malformed lengths), kept beside the view they check.

use super::{array, be16, checksum, Malformed, Result};

mod field {
    use core::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const TOTAL_LEN: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic on a buffer that
    /// [`Self::new_checked`] would reject. For headers the caller has just emitted.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer holding a whole IPv4 packet, possibly followed by padding
    /// (Ethernet pads short frames): version 4, a header length of at least 20 bytes
    /// within the buffer and `header_len <= total_len <= buffer length`.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_checked_truncated(buffer)?;
        let total_len = usize::from(packet.total_len());
        if total_len < packet.header_len() || total_len > packet.buffer.as_ref().len() {
            return Err(Malformed);
        }
        Ok(packet)
    }

    /// Like [`Self::new_checked`], but the payload may be cut short, as in the copy of
    /// the offending datagram quoted by an ICMP error: only the header must be
    /// complete. [`Self::payload`] then returns what is there.
    #[inline]
    pub fn new_checked_truncated(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Malformed);
        }
        let packet = Ipv4Packet { buffer };
        if packet.version() != 4
            || packet.header_len() < MIN_HEADER_LEN
            || packet.header_len() > packet.buffer.as_ref().len()
        {
            return Err(Malformed);
        }
        Ok(packet)
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// IP version; 4 once checked.
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes, options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// DSCP (upper 6 bits) and ECN (lower 2 bits), as one byte: the data plane only
    /// copies them.
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Length of header and payload in bytes.
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::TOTAL_LEN])
    }

    /// Identification, for reassembly.
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::IDENT])
    }

    #[inline]
    fn flags_offset(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::FLG_OFF])
    }

    /// The Don't Fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & FLAG_DF != 0
    }

    /// The More Fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_offset() & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & OFFSET_MASK) * 8
    }

    /// True for any fragment, first or not: MF set or a non-zero offset.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_offset() & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload, see [`super::ip_proto`].
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Header checksum field's bytes as they lie (for sums in memory order).
    #[inline]
    pub fn checksum_bytes(&self) -> [u8; 2] {
        array(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> [u8; 4] {
        array(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> [u8; 4] {
        array(&self.buffer.as_ref()[field::DST_ADDR])
    }

    /// The header, options included.
    #[inline]
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// The options (empty for a 20-byte header).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// `header_len..total_len`: the payload without Ethernet padding.
    ///
    /// Clamped to the buffer, so it cannot panic even after `set_total_len` grew the
    /// length field past the buffer, or on a truncated view.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let range = self.payload_range();
        &self.buffer.as_ref()[range]
    }

    #[inline]
    fn payload_range(&self) -> core::ops::Range<usize> {
        let len = self.buffer.as_ref().len();
        let end = usize::from(self.total_len()).min(len);
        let start = self.header_len().min(end);
        start..end
    }

    /// True if the header checksum is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::finish(checksum::sum(self.header())) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the TTL (the checksum is not updated).
    #[inline]
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets the protocol (the checksum is not updated).
    #[inline]
    pub fn set_protocol(&mut self, value: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = value;
    }

    /// Sets DSCP and ECN as one byte.
    #[inline]
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the total length field.
    #[inline]
    pub fn set_total_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::TOTAL_LEN].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, value: u16) {
        self.buffer.as_mut()[field::IDENT].copy_from_slice(&value.to_be_bytes());
    }

    #[inline]
    fn set_flags_offset(&mut self, value: u16) {
        self.buffer.as_mut()[field::FLG_OFF].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets or clears Don't Fragment.
    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        let v = self.flags_offset() & !FLAG_DF;
        self.set_flags_offset(if value { v | FLAG_DF } else { v });
    }

    /// Sets or clears More Fragments.
    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        let v = self.flags_offset() & !FLAG_MF;
        self.set_flags_offset(if value { v | FLAG_MF } else { v });
    }

    /// Sets the fragment offset in bytes; the low 3 bits are dropped (offsets are
    /// multiples of 8).
    #[inline]
    pub fn set_frag_offset(&mut self, bytes: u16) {
        let v = self.flags_offset() & !OFFSET_MASK;
        self.set_flags_offset(v | (bytes / 8));
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the checksum field's bytes as they lie.
    #[inline]
    pub fn set_checksum_bytes(&mut self, value: [u8; 2]) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value);
    }

    /// Sets the source address (the checksum is not updated).
    #[inline]
    pub fn set_src_addr(&mut self, addr: [u8; 4]) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr);
    }

    /// Sets the destination address (the checksum is not updated).
    #[inline]
    pub fn set_dst_addr(&mut self, addr: [u8; 4]) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr);
    }

    /// Recomputes the header checksum from scratch.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::sum(self.header()));
        self.set_checksum(c);
    }

    /// Decrements the TTL and patches the checksum incrementally (RFC 1624) instead
    /// of summing the header again: the forwarding fast path.
    ///
    /// The caller checks `ttl() > 1` first (and sends Time Exceeded otherwise); a TTL
    /// of 0 wraps to 255 rather than panicking.
    #[inline]
    pub fn decrement_ttl_incremental(&mut self) {
        let b = self.buffer.as_mut();
        // Both words are built in registers: re-reading the word just written would
        // stall on store forwarding.
        let (ttl, protocol) = (b[field::TTL], b[field::PROTOCOL]);
        let new_ttl = ttl.wrapping_sub(1);
        let c = checksum::update16(
            be16(&b[field::CHECKSUM]),
            u16::from_be_bytes([ttl, protocol]),
            u16::from_be_bytes([new_ttl, protocol]),
        );
        b[field::TTL] = new_ttl;
        b[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }

    /// The payload (see [`Ipv4Packet::payload`]), writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.payload_range();
        &mut self.buffer.as_mut()[range]
    }
}

/// The fields of an option-less IPv4 header the data plane builds itself (the outer
/// header of a VXLAN packet, ICMP errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub protocol: u8,
    pub ttl: u8,
    /// Bytes after the header; `total_len = 20 + payload_len`.
    pub payload_len: u16,
    pub dont_frag: bool,
    pub ident: u16,
    pub dscp_ecn: u8,
}

impl Ipv4Repr {
    /// Length of the header [`Self::emit`] writes (the payload not included).
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        MIN_HEADER_LEN
    }

    /// Writes the 20-byte header, checksum included, to `buf[..20]`.
    ///
    /// # Panics
    /// If `buf` is shorter than 20 bytes or `payload_len > 65515`: both are bugs in
    /// the caller, which owns the buffer and sized the payload.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        let total_len = self
            .payload_len
            .checked_add(MIN_HEADER_LEN as u16)
            .expect("IPv4 payload too long");
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..MIN_HEADER_LEN]);
        p.buffer[field::VER_IHL] = 0x45;
        p.set_dscp_ecn(self.dscp_ecn);
        p.set_total_len(total_len);
        p.set_ident(self.ident);
        p.set_flags_offset(if self.dont_frag { FLAG_DF } else { 0 });
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ip_proto;
    use etherparse::{IpDscp, IpEcn, IpFragOffset, IpNumber, Ipv4Header, Ipv4HeaderSlice};
    use proptest::prelude::*;

    /// 20-byte header (checksum b861) + 3 bytes of payload + 2 bytes of padding.
    const PACKET: [u8; 25] = [
        0x45, 0x00, 0x00, 0x17, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7, 0xaa, 0xbb, 0xcc, 0x00, 0x00,
    ];

    fn packet() -> Vec<u8> {
        let mut v = PACKET.to_vec();
        let c = checksum::finish(checksum::sum(&v[..20]));
        v[10..12].copy_from_slice(&c.to_be_bytes());
        v
    }

    #[test]
    fn parse() {
        let v = packet();
        let p = Ipv4Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.dscp_ecn(), 0);
        assert_eq!(p.total_len(), 23);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), ip_proto::UDP);
        assert_eq!(p.src_addr(), [192, 168, 0, 1]);
        assert_eq!(p.dst_addr(), [192, 168, 0, 199]);
        assert!(p.options().is_empty());
        assert_eq!(p.header(), &v[..20]);
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc], "padding excluded");
        assert!(p.verify_checksum());

        // etherparse agrees on every field and on the checksum.
        let e = Ipv4HeaderSlice::from_slice(&v).unwrap().to_header();
        assert_eq!(e.header_checksum, p.checksum());
        assert_eq!(e.calc_header_checksum(), p.checksum());
        assert_eq!(e.total_len, p.total_len());
        assert_eq!(e.identification, p.ident());
        assert_eq!(e.source, p.src_addr());
        assert_eq!(e.destination, p.dst_addr());

        let mut bad = v.clone();
        bad[15] ^= 1;
        assert!(!Ipv4Packet::new_checked(&bad[..]).unwrap().verify_checksum());
    }

    #[test]
    fn options_and_fragments_match_etherparse() {
        let mut h = Ipv4Header::new(8, 3, IpNumber::TCP, [10, 0, 0, 1], [10, 0, 0, 2]).unwrap();
        h.options = [1, 1, 1, 0, 7, 3, 4, 0].into();
        h.total_len = h.header_len() as u16 + 8;
        h.dont_fragment = false;
        h.more_fragments = true;
        h.fragment_offset = IpFragOffset::try_new(185).unwrap();
        h.identification = 0xbeef;
        h.dscp = IpDscp::try_new(46).unwrap();
        h.ecn = IpEcn::try_new(1).unwrap();
        h.header_checksum = h.calc_header_checksum();
        let mut v = h.to_bytes().to_vec();
        v.extend_from_slice(&[9; 8]);

        let p = Ipv4Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.header_len(), 28);
        assert_eq!(p.options(), &[1, 1, 1, 0, 7, 3, 4, 0]);
        assert_eq!(p.payload(), &[9; 8]);
        assert_eq!(p.dscp_ecn(), (46 << 2) | 1);
        assert!(!p.dont_frag());
        assert!(p.more_frags());
        assert_eq!(p.frag_offset(), 185 * 8);
        assert!(p.is_fragment());
        assert_eq!(p.ident(), 0xbeef);
        assert!(p.verify_checksum());

        // Last fragment: MF clear but offset set is still a fragment.
        let mut v2 = v.clone();
        let mut q = Ipv4Packet::new_checked(&mut v2[..]).unwrap();
        q.set_more_frags(false);
        assert!(q.is_fragment());
        q.set_frag_offset(0);
        assert!(!q.is_fragment());
        q.set_frag_offset(65528);
        assert_eq!(q.frag_offset(), 65528);
        assert!(!q.more_frags());
        assert!(!q.dont_frag());
        q.set_dont_frag(true);
        q.fill_checksum();
        let e = Ipv4HeaderSlice::from_slice(&v2).unwrap().to_header();
        assert!(e.dont_fragment);
        assert!(!e.more_fragments);
        assert_eq!(e.fragment_offset.value(), 8191);
        assert_eq!(e.calc_header_checksum(), e.header_checksum);
    }

    #[test]
    fn malformed() {
        let v = packet();
        let check = |b: &[u8]| Ipv4Packet::new_checked(b).map(|_| ());
        assert_eq!(check(&v[..19]), Err(Malformed), "shorter than 20");
        assert_eq!(check(&[]), Err(Malformed));
        assert_eq!(check(&v[..22]), Err(Malformed), "total_len past buffer");
        assert_eq!(check(&v[..23]), Ok(()), "exact");

        let mut b = v.clone();
        b[0] = 0x65;
        assert_eq!(check(&b), Err(Malformed), "version 6");
        b[0] = 0x44;
        assert_eq!(check(&b), Err(Malformed), "ihl 4");
        b[0] = 0x46;
        b[2..4].copy_from_slice(&24u16.to_be_bytes());
        assert_eq!(check(&b[..23]), Err(Malformed), "options past buffer");
        assert_eq!(check(&b[..24]), Ok(()), "options just fit");
        b[0] = 0x4f;
        assert_eq!(check(&b), Err(Malformed), "60-byte header in 25 bytes");
        b[0] = 0x45;
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(check(&b), Err(Malformed), "total_len < header_len");
    }

    #[test]
    fn truncated_view_for_icmp_quotes() {
        let v = packet();
        assert_eq!(Ipv4Packet::new_checked(&v[..21]), Err(Malformed));
        let p = Ipv4Packet::new_checked_truncated(&v[..21]).unwrap();
        assert_eq!(p.total_len(), 23);
        assert_eq!(p.payload(), &[0xaa]);
        assert!(p.verify_checksum());
        assert_eq!(Ipv4Packet::new_checked_truncated(&v[..19]), Err(Malformed));
        let mut b = v.clone();
        b[0] = 0x46;
        assert_eq!(Ipv4Packet::new_checked_truncated(&b[..23]), Err(Malformed));
    }

    #[test]
    fn payload_clamped_after_set_total_len() {
        let mut v = packet();
        let mut p = Ipv4Packet::new_checked(&mut v[..]).unwrap();
        p.set_total_len(9000);
        assert_eq!(p.payload().len(), 5);
        assert_eq!(p.payload_mut().len(), 5);
        p.set_total_len(3);
        assert!(p.payload().is_empty());
        assert!(p.payload_mut().is_empty());
    }

    #[test]
    fn setters_and_fill_checksum_match_etherparse() {
        let mut v = packet();
        let mut p = Ipv4Packet::new_checked(&mut v[..]).unwrap();
        p.set_ttl(7);
        p.set_src_addr([203, 0, 113, 9]);
        p.set_dst_addr([198, 51, 100, 1]);
        p.set_ident(0xfffe);
        p.set_protocol(ip_proto::TCP);
        p.set_dscp_ecn(0xb8);
        p.set_total_len(22);
        p.payload_mut().copy_from_slice(&[1, 2]);
        p.fill_checksum();
        assert!(p.verify_checksum());

        let e = Ipv4HeaderSlice::from_slice(&v).unwrap().to_header();
        assert_eq!(e.time_to_live, 7);
        assert_eq!(e.source, [203, 0, 113, 9]);
        assert_eq!(e.destination, [198, 51, 100, 1]);
        assert_eq!(e.identification, 0xfffe);
        assert_eq!(e.protocol, IpNumber::TCP);
        assert_eq!(e.dscp.value(), 0xb8 >> 2);
        assert_eq!(e.total_len, 22);
        assert_eq!(e.calc_header_checksum(), e.header_checksum);
        assert_eq!(&v[20..22], &[1, 2]);
    }

    #[test]
    fn decrement_ttl() {
        let mut v = packet();
        let mut p = Ipv4Packet::new_checked(&mut v[..]).unwrap();
        p.decrement_ttl_incremental();
        assert_eq!(p.ttl(), 63);
        assert!(p.verify_checksum());
        let e = Ipv4HeaderSlice::from_slice(&v).unwrap().to_header();
        assert_eq!(e.calc_header_checksum(), e.header_checksum);
    }

    #[test]
    fn repr_emit_matches_etherparse() {
        let repr = Ipv4Repr {
            src: [192, 0, 2, 1],
            dst: [198, 51, 100, 7],
            protocol: ip_proto::UDP,
            ttl: 64,
            payload_len: 1450,
            dont_frag: true,
            ident: 0x0102,
            dscp_ecn: 0x2e,
        };
        assert_eq!(repr.buffer_len(), 20);
        let mut buf = [0xffu8; 24];
        repr.emit(&mut buf);
        assert_eq!(&buf[20..], &[0xff; 4], "only the header is written");

        let mut e = Ipv4Header::new(1450, 64, IpNumber::UDP, repr.src, repr.dst).unwrap();
        e.identification = 0x0102;
        e.dscp = IpDscp::try_new(0x2e >> 2).unwrap();
        e.ecn = IpEcn::try_new(0x2e & 3).unwrap();
        e.header_checksum = e.calc_header_checksum();
        assert_eq!(&buf[..20], &e.to_bytes()[..]);

        let p = Ipv4Packet::new_checked_truncated(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.total_len(), 1470);

        let no_df = Ipv4Repr {
            dont_frag: false,
            ..repr
        };
        no_df.emit(&mut buf);
        assert_eq!(&buf[6..8], &[0, 0]);
        assert!(Ipv4Packet::new_unchecked(&buf[..]).verify_checksum());
    }

    #[test]
    #[should_panic]
    fn repr_emit_short_buffer_panics() {
        let repr = Ipv4Repr {
            src: [0; 4],
            dst: [0; 4],
            protocol: 0,
            ttl: 0,
            payload_len: 0,
            dont_frag: false,
            ident: 0,
            dscp_ecn: 0,
        };
        repr.emit(&mut [0u8; 19]);
    }

    proptest! {
        #[test]
        fn decrement_ttl_equals_recompute(
            mut hdr in prop::collection::vec(any::<u8>(), 20..21),
            ttl in 1u8..=255,
        ) {
            hdr[0] = 0x45;
            hdr[2..4].copy_from_slice(&20u16.to_be_bytes());
            hdr[8] = ttl;
            let mut p = Ipv4Packet::new_checked(&mut hdr[..]).unwrap();
            p.fill_checksum();
            p.decrement_ttl_incremental();
            prop_assert_eq!(p.ttl(), ttl - 1);
            prop_assert!(p.verify_checksum());
            let incremental = p.checksum();
            p.fill_checksum();
            prop_assert_eq!(incremental, p.checksum());
        }

        #[test]
        fn accessors_never_panic(data in prop::collection::vec(any::<u8>(), 0..80)) {
            let views = [
                Ipv4Packet::new_checked(&data[..]),
                Ipv4Packet::new_checked_truncated(&data[..]),
            ];
            for p in views.into_iter().flatten() {
                let _ = (p.version(), p.dscp_ecn(), p.total_len(), p.ident(), p.dont_frag());
                let _ = (p.more_frags(), p.frag_offset(), p.is_fragment(), p.ttl());
                let _ = (p.protocol(), p.checksum(), p.src_addr(), p.dst_addr());
                let _ = (p.options(), p.payload(), p.header(), p.verify_checksum());
                prop_assert!(p.payload().len() <= data.len() - p.header_len());
            }
        }

        #[test]
        fn parse_agrees_with_etherparse(data in prop::collection::vec(any::<u8>(), 20..80)) {
            if let Ok(p) = Ipv4Packet::new_checked(&data[..]) {
                let e = Ipv4HeaderSlice::from_slice(&data).unwrap();
                prop_assert_eq!(p.header(), e.slice());
                prop_assert_eq!(p.protocol(), e.protocol().0);
                prop_assert_eq!(p.frag_offset(), e.fragments_offset().value() * 8);
                prop_assert_eq!(p.more_frags(), e.more_fragments());
                prop_assert_eq!(p.dont_frag(), e.dont_fragment());
                prop_assert_eq!(p.is_fragment(), e.is_fragmenting_payload());
                // A stored -0 (0xFFFF) verifies where the computed value is +0.
                let calc = e.to_header().calc_header_checksum();
                let stored = p.checksum();
                let same = calc == stored || (calc == 0 && stored == 0xffff);
                prop_assert_eq!(p.verify_checksum(), same);
            }
        }
    }
}
