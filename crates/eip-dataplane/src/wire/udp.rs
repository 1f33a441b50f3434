//! UDP datagrams (RFC 768): NATed traffic and the outer header of VXLAN.

use super::{be16, checksum, ip_proto, Malformed, Result};

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// Length of the header.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic on a buffer that
    /// [`Self::new_checked`] would reject. For headers the caller has just emitted.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps a datagram: at least 8 bytes, `8 <= length field <= buffer length`.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Malformed);
        }
        let packet = UdpPacket { buffer };
        let len = usize::from(packet.len());
        if len < HEADER_LEN || len > packet.buffer.as_ref().len() {
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

    /// Length field: header and payload in bytes.
    #[inline]
    #[allow(clippy::len_without_is_empty)] // a header field, not a container length
    pub fn len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Checksum field; 0 means "none" (IPv4 only).
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// The bytes the length field covers, clamped to the buffer (so no panic after
    /// `set_len`).
    #[inline]
    fn datagram(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = usize::from(self.len()).min(b.len());
        &b[..end]
    }

    /// `8..len`: the payload, without anything the buffer holds past the length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.datagram().get(HEADER_LEN..).unwrap_or(&[])
    }

    #[inline]
    fn sum_v4(&self, src: [u8; 4], dst: [u8; 4]) -> u64 {
        let d = self.datagram();
        checksum::pseudo_header_v4(src, dst, ip_proto::UDP, self.len()) + checksum::sum(d)
    }

    #[inline]
    fn sum_v6(&self, src: [u8; 16], dst: [u8; 16]) -> u64 {
        let d = self.datagram();
        checksum::pseudo_header_v6(&src, &dst, ip_proto::UDP, u32::from(self.len()))
            + checksum::sum(d)
    }

    /// True if the checksum is correct or absent (0): over IPv4 the checksum is
    /// optional.
    #[inline]
    pub fn verify_checksum_v4(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        self.checksum() == 0 || checksum::finish(self.sum_v4(src, dst)) == 0
    }

    /// True if the checksum is correct; over IPv6 an absent (0) checksum is invalid
    /// (RFC 8200 §8.1).
    #[inline]
    pub fn verify_checksum_v6(&self, src: [u8; 16], dst: [u8; 16]) -> bool {
        self.checksum() != 0 && checksum::finish(self.sum_v6(src, dst)) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
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

    /// Sets the length field.
    #[inline]
    pub fn set_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the checksum field (0 for none).
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Computes the checksum over the IPv4 pseudo-header and the datagram; a computed
    /// 0 is written as 0xFFFF, since 0 would mean "no checksum".
    #[inline]
    pub fn fill_checksum_v4(&mut self, src: [u8; 4], dst: [u8; 4]) {
        self.set_checksum(0);
        let c = checksum::finish(self.sum_v4(src, dst));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// Computes the checksum over the IPv6 pseudo-header and the datagram; a computed
    /// 0 is written as 0xFFFF.
    #[inline]
    pub fn fill_checksum_v6(&mut self, src: [u8; 16], dst: [u8; 16]) {
        self.set_checksum(0);
        let c = checksum::finish(self.sum_v6(src, dst));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// The payload (see [`UdpPacket::payload`]), writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        let b = self.buffer.as_mut();
        let end = end.min(b.len());
        b.get_mut(HEADER_LEN..end).unwrap_or(&mut [])
    }
}

/// A UDP header the data plane builds itself (the outer header of VXLAN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    /// Bytes after the header; the length field is `8 + payload_len`.
    pub payload_len: u16,
}

impl UdpRepr {
    /// Length of the header [`Self::emit`] writes.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 8-byte header to `buf[..8]` with a zero checksum, which RFC 7348
    /// recommends for VXLAN over IPv4 (and RFC 6935 allows for tunnels over IPv6).
    ///
    /// # Panics
    /// If `buf` is shorter than 8 bytes or `payload_len > 65527`: bugs in the caller.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        let len = self
            .payload_len
            .checked_add(HEADER_LEN as u16)
            .expect("UDP payload too long");
        let mut p = UdpPacket::new_unchecked(&mut buf[..HEADER_LEN]);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(len);
        p.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{UdpHeader, UdpHeaderSlice};
    use proptest::prelude::*;

    const SRC4: [u8; 4] = [192, 0, 2, 1];
    const DST4: [u8; 4] = [198, 51, 100, 2];
    const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    /// DNS-ish datagram: 5353 -> 53, length 13, no checksum, 5 payload bytes, then
    /// 2 bytes beyond the length field.
    const DATAGRAM: [u8; 15] = [
        0x14, 0xe9, 0x00, 0x35, 0x00, 0x0d, 0x00, 0x00, b'h', b'e', b'l', b'l', b'o', 0xee, 0xee,
    ];

    #[test]
    fn parse() {
        let p = UdpPacket::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 5353);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 13);
        assert_eq!(p.checksum(), 0);
        assert_eq!(p.payload(), b"hello");
        assert!(
            p.verify_checksum_v4(SRC4, DST4),
            "absent checksum is fine over IPv4"
        );
        assert!(!p.verify_checksum_v6(SRC6, DST6), "but not over IPv6");

        let e = UdpHeaderSlice::from_slice(&DATAGRAM).unwrap();
        assert_eq!(e.source_port(), p.src_port());
        assert_eq!(e.destination_port(), p.dst_port());
        assert_eq!(e.length(), p.len());
    }

    #[test]
    fn malformed() {
        let check = |b: &[u8]| UdpPacket::new_checked(b).map(|_| ());
        assert_eq!(check(&DATAGRAM[..7]), Err(Malformed));
        assert_eq!(check(&[]), Err(Malformed));
        assert_eq!(check(&DATAGRAM[..12]), Err(Malformed), "length past buffer");
        assert_eq!(check(&DATAGRAM[..13]), Ok(()));
        let mut v = DATAGRAM;
        v[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(check(&v), Err(Malformed), "length below 8");
        v[4..6].copy_from_slice(&8u16.to_be_bytes());
        assert!(UdpPacket::new_checked(&v[..]).unwrap().payload().is_empty());
    }

    #[test]
    fn checksums_match_etherparse() {
        let mut v = DATAGRAM;
        let mut p = UdpPacket::new_checked(&mut v[..]).unwrap();
        p.fill_checksum_v4(SRC4, DST4);
        assert!(p.verify_checksum_v4(SRC4, DST4));
        assert!(!p.verify_checksum_v4(DST4, [0; 4]));
        let e = UdpHeaderSlice::from_slice(&v).unwrap().to_header();
        assert_eq!(
            e.calc_checksum_ipv4_raw(SRC4, DST4, b"hello").unwrap(),
            e.checksum
        );

        let mut p = UdpPacket::new_checked(&mut v[..]).unwrap();
        p.fill_checksum_v6(SRC6, DST6);
        assert!(p.verify_checksum_v6(SRC6, DST6));
        let e = UdpHeaderSlice::from_slice(&v).unwrap().to_header();
        assert_eq!(
            e.calc_checksum_ipv6_raw(SRC6, DST6, b"hello").unwrap(),
            e.checksum
        );

        // And the other way round.
        let h = UdpHeader::with_ipv6_checksum(
            1,
            2,
            &etherparse::Ipv6Header {
                source: SRC6,
                destination: DST6,
                ..Default::default()
            },
            b"abc",
        )
        .unwrap();
        let mut d = h.to_bytes().to_vec();
        d.extend_from_slice(b"abc");
        assert!(UdpPacket::new_checked(&d[..])
            .unwrap()
            .verify_checksum_v6(SRC6, DST6));
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose the payload word so that the checksum computes to 0: the sum of
        // everything else must fold to 0xFFFF.
        let mut v = [0x00, 0x01, 0x00, 0x02, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00];
        let pseudo = checksum::pseudo_header_v4(SRC4, DST4, ip_proto::UDP, 10);
        let rest = checksum::fold(pseudo + checksum::sum(&v));
        let word = 0xffff - rest;
        v[8..10].copy_from_slice(&word.to_be_bytes());
        assert_eq!(checksum::finish(pseudo + checksum::sum(&v)), 0);

        let mut p = UdpPacket::new_checked(&mut v[..]).unwrap();
        p.fill_checksum_v4(SRC4, DST4);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum_v4(SRC4, DST4));
        let e = UdpHeaderSlice::from_slice(&v).unwrap().to_header();
        assert_eq!(
            e.calc_checksum_ipv4_raw(SRC4, DST4, &v[8..]).unwrap(),
            0xffff
        );

        // NAT of this datagram through the UDP update keeps -0 meaningful.
        let c = checksum::update_udp16(0xffff, 0x0001, 0x0001);
        assert_eq!(c, 0xffff);
    }

    #[test]
    fn nat_rewrite_keeps_absent_checksum() {
        let mut v = DATAGRAM;
        let mut p = UdpPacket::new_checked(&mut v[..]).unwrap();
        let c = checksum::update_udp16(p.checksum(), p.dst_port(), 5353);
        p.set_dst_port(5353);
        p.set_checksum(c);
        assert_eq!(p.checksum(), 0);

        p.fill_checksum_v4(SRC4, DST4);
        let new_src = [10, 9, 8, 7];
        let c = checksum::update_udp_bytes(p.checksum(), &SRC4, &new_src);
        let c = checksum::update_udp16(c, p.src_port(), 40000);
        p.set_src_port(40000);
        p.set_checksum(c);
        assert!(p.verify_checksum_v4(new_src, DST4));
    }

    #[test]
    fn setters_and_clamping() {
        let mut v = DATAGRAM;
        let mut p = UdpPacket::new_checked(&mut v[..]).unwrap();
        p.payload_mut().copy_from_slice(b"HELLO");
        p.set_len(60000);
        assert_eq!(p.payload().len(), 7);
        assert_eq!(p.payload_mut().len(), 7);
        p.fill_checksum_v4(SRC4, DST4); // no panic, just a checksum of what is there
        p.set_len(3);
        assert!(p.payload().is_empty());
        assert!(p.payload_mut().is_empty());
        assert_eq!(&v[8..13], b"HELLO");
    }

    #[test]
    fn repr_emit_matches_etherparse() {
        let repr = UdpRepr {
            src_port: 49152,
            dst_port: 4789,
            payload_len: 1400,
        };
        assert_eq!(repr.buffer_len(), 8);
        let mut buf = [0xffu8; 10];
        repr.emit(&mut buf);
        assert_eq!(&buf[8..], &[0xff, 0xff]);
        let e = UdpHeader::without_ipv4_checksum(49152, 4789, 1400).unwrap();
        assert_eq!(&buf[..8], &e.to_bytes()[..]);
    }

    #[test]
    #[should_panic]
    fn repr_emit_overlong_panics() {
        let repr = UdpRepr {
            src_port: 0,
            dst_port: 0,
            payload_len: 65528,
        };
        repr.emit(&mut [0u8; 8]);
    }

    proptest! {
        #[test]
        fn fill_matches_etherparse(
            sp: u16,
            dp: u16,
            payload in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut v = vec![0u8; 8 + payload.len()];
            UdpRepr { src_port: sp, dst_port: dp, payload_len: payload.len() as u16 }.emit(&mut v);
            v[8..].copy_from_slice(&payload);
            let mut p = UdpPacket::new_checked(&mut v[..]).unwrap();
            p.fill_checksum_v4(SRC4, DST4);
            let e = UdpHeader::without_ipv4_checksum(sp, dp, payload.len()).unwrap();
            prop_assert_eq!(p.checksum(), e.calc_checksum_ipv4_raw(SRC4, DST4, &payload).unwrap());
            p.fill_checksum_v6(SRC6, DST6);
            prop_assert_eq!(p.checksum(), e.calc_checksum_ipv6_raw(SRC6, DST6, &payload).unwrap());
        }

        #[test]
        fn accessors_never_panic(data in prop::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = UdpPacket::new_checked(&data[..]) {
                let _ = (p.src_port(), p.dst_port(), p.checksum());
                let _ = (p.verify_checksum_v4(SRC4, DST4), p.verify_checksum_v6(SRC6, DST6));
                prop_assert_eq!(p.payload().len() + 8, usize::from(p.len()));
            }
        }
    }
}
