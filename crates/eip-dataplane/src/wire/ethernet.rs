//! Ethernet II frames (IEEE 802.3 with an EtherType), and the VLAN tags in front of
//! the network header.

use super::{array, be16, ethertype, Malformed, Result};

mod field {
    use core::ops::{Range, RangeFrom};

    pub const DST_ADDR: Range<usize> = 0..6;
    pub const SRC_ADDR: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: RangeFrom<usize> = 14..;

    /// Inside an 802.1Q / 802.1ad tag, relative to the tag.
    pub const VLAN_TCI: Range<usize> = 0..2;
    pub const VLAN_ETHERTYPE: Range<usize> = 2..4;
}

/// Length of the untagged Ethernet header.
pub const HEADER_LEN: usize = 14;

/// Length of one 802.1Q / 802.1ad tag.
pub const VLAN_TAG_LEN: usize = 4;

/// The 12-bit VLAN identifier inside a tag control word (PCP and DEI dropped).
const VID_MASK: u16 = 0x0fff;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than
    /// [`HEADER_LEN`]. For buffers whose length is already proven.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer of at least [`HEADER_LEN`] bytes.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Malformed);
        }
        Ok(EthernetFrame { buffer })
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC address.
    #[inline]
    pub fn dst_addr(&self) -> [u8; 6] {
        array(&self.buffer.as_ref()[field::DST_ADDR])
    }

    /// Source MAC address.
    #[inline]
    pub fn src_addr(&self) -> [u8; 6] {
        array(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// EtherType of the payload; a VLAN TPID if the frame is tagged (see [`parse_l2`]).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ETHERTYPE])
    }

    /// Everything after the 14-byte header (including any VLAN tags).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: [u8; 6]) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr);
    }

    /// Sets the source MAC address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: [u8; 6]) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr);
    }

    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, value: u16) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&value.to_be_bytes());
    }

    /// Everything after the 14-byte header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// An untagged Ethernet II header the data plane builds itself (the outer and inner
/// headers of a VXLAN packet, ICMP errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    pub dst_addr: [u8; 6],
    pub src_addr: [u8; 6],
    pub ethertype: u16,
}

impl EthernetRepr {
    /// Reads the header of a checked frame (the EtherType as it is, a VLAN TPID
    /// included).
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> EthernetRepr {
        EthernetRepr {
            dst_addr: frame.dst_addr(),
            src_addr: frame.src_addr(),
            ethertype: frame.ethertype(),
        }
    }

    /// Length of the header [`Self::emit`] writes.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 14-byte header to `buf[..14]`.
    ///
    /// # Panics
    /// If `buf` is shorter than 14 bytes: a bug in the caller, which owns the buffer.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        let mut f = EthernetFrame::new_unchecked(&mut buf[..HEADER_LEN]);
        f.set_dst_addr(self.dst_addr);
        f.set_src_addr(self.src_addr);
        f.set_ethertype(self.ethertype);
    }
}

/// Where the network header of a possibly VLAN-tagged frame starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2 {
    /// EtherType after the tags that were skipped.
    pub ethertype: u16,
    /// Offset of the network header from the start of the frame.
    pub l3_offset: usize,
    /// VLAN IDs (12 bits) of the skipped tags, outermost first.
    pub vlan_ids: [Option<u16>; 2],
}

/// Skips up to two 802.1Q (0x8100) / 802.1ad (0x88A8) tags.
///
/// A third tag is not skipped: the result then carries the tag's TPID as
/// `ethertype`, which the caller treats as an unknown protocol.
/// Malformed if the frame is shorter than its header and tags.
#[inline]
pub fn parse_l2(frame: &[u8]) -> Result<L2> {
    let frame_hdr = EthernetFrame::new_checked(frame)?;
    let mut l2 = L2 {
        ethertype: frame_hdr.ethertype(),
        l3_offset: HEADER_LEN,
        vlan_ids: [None; 2],
    };
    for vid in &mut l2.vlan_ids {
        if l2.ethertype != ethertype::VLAN && l2.ethertype != ethertype::QINQ {
            break;
        }
        let tag = frame
            .get(l2.l3_offset..l2.l3_offset + VLAN_TAG_LEN)
            .ok_or(Malformed)?;
        *vid = Some(be16(&tag[field::VLAN_TCI]) & VID_MASK);
        l2.ethertype = be16(&tag[field::VLAN_ETHERTYPE]);
        l2.l3_offset += VLAN_TAG_LEN;
    }
    Ok(l2)
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    )
}

/// Parses `aa:bb:cc:dd:ee:ff` (hex digits in either case, exactly two per octet).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for octet in &mut mac {
        let part = parts.next()?;
        // from_str_radix alone would also take "+a".
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *octet = u8::from_str_radix(part, 16).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Ethernet2Header, PacketBuilder, SlicedPacket, VlanId};

    const FRAME: [u8; 18] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x08, 0x00, // IPv4
        0x45, 0x00, 0x00, 0x14, // payload
    ];

    #[test]
    fn parse() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(f.src_addr(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(f.ethertype(), ethertype::IPV4);
        assert_eq!(f.payload(), &[0x45, 0x00, 0x00, 0x14]);
        assert_eq!(f.into_inner(), &FRAME[..]);

        let (eth, rest) = Ethernet2Header::from_slice(&FRAME).unwrap();
        assert_eq!(eth.destination, [2, 0, 0, 0, 0, 2]);
        assert_eq!(eth.source, [2, 0, 0, 0, 0, 1]);
        assert_eq!(rest, &FRAME[14..]);
    }

    #[test]
    fn emit_matches_etherparse() {
        let mut buf = [0u8; 14];
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_dst_addr([0xff; 6]);
        f.set_src_addr([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
        f.set_ethertype(ethertype::IPV6);
        assert!(f.payload_mut().is_empty());
        let expected = Ethernet2Header {
            source: [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff],
            destination: [0xff; 6],
            ether_type: etherparse::EtherType::IPV6,
        }
        .to_bytes();
        assert_eq!(buf, expected);
    }

    #[test]
    fn repr_parse_and_emit() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        let repr = EthernetRepr::parse(&f);
        assert_eq!(
            repr,
            EthernetRepr {
                dst_addr: [2, 0, 0, 0, 0, 2],
                src_addr: [2, 0, 0, 0, 0, 1],
                ethertype: ethertype::IPV4,
            }
        );
        assert_eq!(repr.buffer_len(), 14);
        let mut buf = [0xffu8; 16];
        repr.emit(&mut buf);
        assert_eq!(&buf[..14], &FRAME[..14]);
        assert_eq!(&buf[14..], &[0xff, 0xff], "nothing written past the header");
    }

    #[test]
    #[should_panic]
    fn repr_emit_short_buffer_panics() {
        let repr = EthernetRepr {
            dst_addr: [0; 6],
            src_addr: [0; 6],
            ethertype: 0,
        };
        repr.emit(&mut [0u8; 13]);
    }

    #[test]
    fn too_short() {
        assert_eq!(EthernetFrame::new_checked(&FRAME[..13]), Err(Malformed));
        assert_eq!(EthernetFrame::new_checked(&[][..]), Err(Malformed));
        assert!(EthernetFrame::new_checked(&FRAME[..14])
            .unwrap()
            .payload()
            .is_empty());
        assert_eq!(parse_l2(&FRAME[..13]), Err(Malformed));
    }

    #[test]
    fn l2_untagged() {
        let l2 = parse_l2(&FRAME).unwrap();
        assert_eq!(
            l2,
            L2 {
                ethertype: ethertype::IPV4,
                l3_offset: 14,
                vlan_ids: [None, None]
            }
        );
    }

    fn udp_frame(builder: etherparse::PacketBuilderStep<etherparse::VlanHeader>) -> Vec<u8> {
        let mut v = Vec::new();
        builder
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1, 2)
            .write(&mut v, &[1, 2, 3])
            .unwrap();
        v
    }

    #[test]
    fn l2_single_tag_matches_etherparse() {
        let v = udp_frame(
            PacketBuilder::ethernet2([1; 6], [2; 6]).single_vlan(VlanId::try_new(0x123).unwrap()),
        );
        let l2 = parse_l2(&v).unwrap();
        assert_eq!(l2.ethertype, ethertype::IPV4);
        assert_eq!(l2.l3_offset, 18);
        assert_eq!(l2.vlan_ids, [Some(0x123), None]);
        let sliced = SlicedPacket::from_ethernet(&v).unwrap();
        let ip = sliced.net.unwrap();
        let etherparse::NetSlice::Ipv4(ip) = ip else {
            panic!("not ipv4")
        };
        assert_eq!(ip.header().slice(), &v[l2.l3_offset..l2.l3_offset + 20]);
    }

    #[test]
    fn l2_double_tag_matches_etherparse() {
        let v = udp_frame(PacketBuilder::ethernet2([1; 6], [2; 6]).double_vlan(
            VlanId::try_new(100).unwrap(),
            VlanId::try_new(4095).unwrap(),
        ));
        // etherparse writes 0x88A8 outside, 0x8100 inside.
        assert_eq!(&v[12..14], &[0x88, 0xa8]);
        let l2 = parse_l2(&v).unwrap();
        assert_eq!(l2.ethertype, ethertype::IPV4);
        assert_eq!(l2.l3_offset, 22);
        assert_eq!(l2.vlan_ids, [Some(100), Some(4095)]);
    }

    #[test]
    fn l2_tag_bytes() {
        // 802.1Q, PCP 5, DEI 1, VID 0x0ab, then IPv6; the PCP/DEI bits are dropped.
        let mut f = FRAME[..12].to_vec();
        f.extend_from_slice(&[0x81, 0x00, 0xb0, 0xab, 0x86, 0xdd]);
        let l2 = parse_l2(&f).unwrap();
        assert_eq!(l2.ethertype, ethertype::IPV6);
        assert_eq!(l2.l3_offset, 18);
        assert_eq!(l2.vlan_ids, [Some(0x0ab), None]);
        // Truncated tags.
        for cut in 14..18 {
            assert_eq!(parse_l2(&f[..cut]), Err(Malformed), "cut {cut}");
        }
    }

    #[test]
    fn l2_third_tag_not_skipped() {
        let mut f = FRAME[..12].to_vec();
        f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x01]);
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x02]);
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x03]);
        f.extend_from_slice(&[0x08, 0x00]);
        let l2 = parse_l2(&f).unwrap();
        assert_eq!(l2.ethertype, ethertype::VLAN);
        assert_eq!(l2.l3_offset, 22);
        assert_eq!(l2.vlan_ids, [Some(1), Some(2)]);
        // Second tag truncated.
        assert_eq!(parse_l2(&f[..20]), Err(Malformed));
    }

    #[test]
    fn mac_text() {
        let mac = [0x02, 0xab, 0xcd, 0x00, 0x1f, 0xff];
        assert_eq!(format_mac(&mac), "02:ab:cd:00:1f:ff");
        assert_eq!(parse_mac("02:ab:cd:00:1f:ff"), Some(mac));
        assert_eq!(parse_mac("02:AB:Cd:00:1F:FF"), Some(mac));
        for bad in [
            "",
            "02:ab:cd:00:1f",
            "02:ab:cd:00:1f:ff:00",
            "02:ab:cd:00:1f:",
            "2:ab:cd:00:1f:ff",
            "002:ab:cd:00:1f:ff",
            "02-ab-cd-00-1f-ff",
            "02:ab:cd:00:1f:fg",
            "+2:ab:cd:00:1f:ff",
            "02:ab:cd:00:1f:ff ",
            "02:ab:cd:00:1f:é",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad:?}");
        }
        for b in 0..=255u8 {
            let m = [b, 255 - b, 0, 1, b, b];
            assert_eq!(parse_mac(&format_mac(&m)), Some(m));
        }
    }
}
