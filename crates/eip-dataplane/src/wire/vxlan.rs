//! VXLAN headers (RFC 7348): the 8 bytes between the outer UDP header and the inner
//! Ethernet frame.

use super::{be32, Malformed, Result};

mod field {
    use core::ops::{Range, RangeFrom};

    pub const FLAGS: usize = 0;
    pub const RESERVED_1: Range<usize> = 1..4;
    /// The VNI (3 bytes) and the reserved byte after it, read as one word.
    pub const VNI_RESERVED: Range<usize> = 4..8;
    pub const RESERVED_2: usize = 7;
    pub const PAYLOAD: RangeFrom<usize> = 8..;
}

/// Length of the header.
pub const HEADER_LEN: usize = 8;

/// IANA-assigned UDP destination port.
pub const DEFAULT_PORT: u16 = 4789;

/// The I flag: the VNI is valid. The only flag RFC 7348 defines.
pub const FLAG_I: u8 = 0x08;

/// The VNI is 24 bits.
pub const VNI_MASK: u32 = 0x00ff_ffff;

/// A view of a VXLAN header and the inner frame after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanHeader<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than
    /// [`HEADER_LEN`]. For headers the caller has just emitted.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        VxlanHeader { buffer }
    }

    /// Wraps at least 8 bytes with the I flag set. The reserved bits are not checked:
    /// RFC 7348 says to ignore them on receipt.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Malformed);
        }
        let header = VxlanHeader { buffer };
        if header.flags() & FLAG_I == 0 {
            return Err(Malformed);
        }
        Ok(header)
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The flags byte.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The 24-bit VXLAN network identifier.
    #[inline]
    pub fn vni(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::VNI_RESERVED]) >> 8
    }

    /// The inner Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanHeader<T> {
    /// Sets the flags byte.
    #[inline]
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    /// Sets the VNI; bits above the 24th are ignored, the reserved byte after it is
    /// left alone.
    #[inline]
    pub fn set_vni(&mut self, vni: u32) {
        let b = &mut self.buffer.as_mut()[field::VNI_RESERVED];
        let reserved = b[3];
        b.copy_from_slice(&(((vni & VNI_MASK) << 8) | u32::from(reserved)).to_be_bytes());
    }

    /// Zeroes both reserved fields (RFC 7348: set to zero on transmission).
    #[inline]
    pub fn clear_reserved(&mut self) {
        let b = self.buffer.as_mut();
        b[field::RESERVED_1].fill(0);
        b[field::RESERVED_2] = 0;
    }

    /// The inner Ethernet frame, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// A VXLAN header: all RFC 7348 carries is the VNI (the I flag is implied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanRepr {
    /// 24 bits; [`Self::emit`] ignores higher bits.
    pub vni: u32,
}

impl VxlanRepr {
    /// Reads a checked header (which has the I flag, or `new_checked` would have
    /// refused it).
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(header: &VxlanHeader<T>) -> VxlanRepr {
        VxlanRepr { vni: header.vni() }
    }

    /// Length of the header [`Self::emit`] writes.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 8-byte header to `buf[..8]`: the I flag, the VNI and zero
    /// reserved fields.
    ///
    /// # Panics
    /// If `buf` is shorter than 8 bytes: a bug in the caller, which owns the buffer.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        let mut h = VxlanHeader::new_unchecked(&mut buf[..HEADER_LEN]);
        h.set_flags(FLAG_I);
        h.clear_reserved();
        h.set_vni(self.vni);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ethernet, udp::UdpPacket};
    use proptest::prelude::*;

    /// VXLAN VNI 0x123456, then a 14-byte inner Ethernet header.
    const PACKET: [u8; 22] = [
        0x08, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x00, // VXLAN
        0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00, // inner Ethernet
    ];

    #[test]
    fn parse() {
        let h = VxlanHeader::new_checked(&PACKET[..]).unwrap();
        assert_eq!(h.flags(), FLAG_I);
        assert_eq!(h.vni(), 0x12_3456);
        let inner = ethernet::EthernetFrame::new_checked(h.payload()).unwrap();
        assert_eq!(inner.ethertype(), crate::wire::ethertype::IPV4);
    }

    #[test]
    fn reserved_bits_ignored() {
        let mut v = PACKET;
        v[0] = 0xff;
        v[1..4].copy_from_slice(&[0xff; 3]);
        v[7] = 0xff;
        let h = VxlanHeader::new_checked(&v[..]).unwrap();
        assert_eq!(h.vni(), 0x12_3456);
        assert_eq!(h.flags(), 0xff);
    }

    #[test]
    fn malformed() {
        assert_eq!(VxlanHeader::new_checked(&PACKET[..7]), Err(Malformed));
        assert_eq!(VxlanHeader::new_checked(&[][..]), Err(Malformed));
        let mut v = PACKET;
        v[0] = 0xf7;
        assert_eq!(
            VxlanHeader::new_checked(&v[..]),
            Err(Malformed),
            "no I flag"
        );
        assert!(VxlanHeader::new_checked(&PACKET[..8])
            .unwrap()
            .payload()
            .is_empty());
    }

    #[test]
    fn emit_and_set() {
        let mut buf = [0xffu8; 10];
        let repr = VxlanRepr { vni: 0xab12_3456 };
        assert_eq!(repr.buffer_len(), 8);
        repr.emit(&mut buf);
        assert_eq!(buf, [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0, 0xff, 0xff]);
        VxlanRepr { vni: VNI_MASK }.emit(&mut buf);
        let mut h = VxlanHeader::new_checked(&mut buf[..]).unwrap();
        assert_eq!(h.vni(), VNI_MASK);
        h.set_vni(0);
        assert_eq!(h.vni(), 0);
        h.set_vni(0x0100_0001);
        assert_eq!(h.vni(), 1);
        h.set_flags(0);
        h.payload_mut().copy_from_slice(&[1, 2]);
        assert_eq!(buf, [0, 0, 0, 0, 0, 0, 1, 0, 1, 2]);
        assert_eq!(VxlanHeader::new_checked(&buf[..]), Err(Malformed));
    }

    #[test]
    fn parse_repr_and_clear_reserved() {
        let mut v = PACKET;
        v[1..4].copy_from_slice(&[0xaa; 3]);
        v[7] = 0xbb;
        let mut h = VxlanHeader::new_checked(&mut v[..]).unwrap();
        assert_eq!(VxlanRepr::parse(&h), VxlanRepr { vni: 0x12_3456 });
        h.clear_reserved();
        assert_eq!(&v[..8], &PACKET[..8]);
    }

    #[test]
    #[should_panic]
    fn repr_emit_short_buffer_panics() {
        VxlanRepr { vni: 1 }.emit(&mut [0u8; 7]);
    }

    #[test]
    fn set_vni_keeps_reserved_byte() {
        let mut v = PACKET;
        v[7] = 0x5a;
        let mut h = VxlanHeader::new_checked(&mut v[..]).unwrap();
        h.set_vni(0xfe_dcba);
        assert_eq!(&v[4..8], &[0xfe, 0xdc, 0xba, 0x5a]);
    }

    #[test]
    fn matches_etherparse_in_a_tunnel() {
        // etherparse has no VXLAN type; check the encapsulation it parses around
        // ours: IPv4/UDP to port 4789 carrying our header and an inner frame.
        let mut inner = [0u8; 8 + 14];
        VxlanRepr { vni: 42 }.emit(&mut inner);
        inner[8..].copy_from_slice(&PACKET[8..]);
        let mut v = Vec::new();
        etherparse::PacketBuilder::ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
            .udp(49152, DEFAULT_PORT)
            .write(&mut v, &inner)
            .unwrap();
        let sliced = etherparse::SlicedPacket::from_ip(&v).unwrap();
        let Some(etherparse::TransportSlice::Udp(udp)) = sliced.transport else {
            panic!("no udp")
        };
        assert_eq!(udp.destination_port(), DEFAULT_PORT);
        let ours = UdpPacket::new_checked(&v[20..]).unwrap();
        assert!(ours.verify_checksum_v4([192, 0, 2, 1], [192, 0, 2, 2]));
        let h = VxlanHeader::new_checked(udp.payload()).unwrap();
        assert_eq!(h.vni(), 42);
        assert_eq!(h.payload(), &PACKET[8..]);
    }

    proptest! {
        #[test]
        fn emit_roundtrip(vni in 0u32..=VNI_MASK) {
            let mut buf = [0xffu8; 8];
            VxlanRepr { vni }.emit(&mut buf);
            let h = VxlanHeader::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(VxlanRepr::parse(&h), VxlanRepr { vni });
            prop_assert_eq!(h.flags(), FLAG_I);
            prop_assert_eq!(&buf[1..4], &[0, 0, 0]);
            prop_assert_eq!(buf[7], 0);
        }

        #[test]
        fn accessors_never_panic(data in prop::collection::vec(any::<u8>(), 0..16)) {
            if let Ok(h) = VxlanHeader::new_checked(&data[..]) {
                prop_assert!(h.vni() <= VNI_MASK);
                prop_assert_eq!(h.payload().len(), data.len() - 8);
            }
        }
    }
}
