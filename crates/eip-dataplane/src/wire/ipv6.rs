//! IPv6 headers (RFC 8200) and the walk over extension headers to the transport.
//!
//! Why one file: about half of it is the smoltcp-style tests
//! (byte literals, etherparse, malformed lengths), kept beside the view they check.

use super::{array, be16, be32, ip_proto, Malformed, Result};

mod field {
    use core::ops::Range;

    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;

    /// Inside an extension header, relative to its start.
    pub const EXT_NEXT_HEADER: usize = 0;
    pub const EXT_LEN: usize = 1;
    pub const FRAG_OFF_M: Range<usize> = 2..4;
    pub const FRAG_IDENT: Range<usize> = 4..8;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// More extension headers than this is an attack or a bug; either way, drop.
pub const MAX_EXT_HEADERS: usize = 8;

/// Every extension header the walk understands is a multiple of 8 bytes long.
const EXT_UNIT: usize = 8;

const FLOW_LABEL_MASK: u32 = 0x000f_ffff;

/// A view of an IPv6 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic on a buffer that
    /// [`Self::new_checked`] would reject. For headers the caller has just emitted.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps a buffer holding a whole IPv6 packet, possibly followed by padding:
    /// version 6 and `40 + payload_len <= buffer length`.
    ///
    /// Jumbograms (payload length 0 plus a Hop-by-Hop option) are not supported:
    /// their payload reads as empty.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_checked_truncated(buffer)?;
        if HEADER_LEN + usize::from(packet.payload_len()) > packet.buffer.as_ref().len() {
            return Err(Malformed);
        }
        Ok(packet)
    }

    /// Like [`Self::new_checked`], but the payload may be cut short, as in the copy
    /// of the offending packet quoted by an ICMPv6 error: only the 40-byte header
    /// must be there. [`Self::payload`] then returns what is there.
    #[inline]
    pub fn new_checked_truncated(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Malformed);
        }
        let packet = Ipv6Packet { buffer };
        if packet.version() != 6 {
            return Err(Malformed);
        }
        Ok(packet)
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn ver_tc_flow(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::VER_TC_FLOW])
    }

    /// IP version; 6 once checked.
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW.start] >> 4
    }

    /// Traffic class (DSCP and ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & FLOW_LABEL_MASK
    }

    /// Length of everything after the fixed header, extension headers included.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::PAYLOAD_LEN])
    }

    /// Type of the first extension header or of the transport, see
    /// [`super::ip_proto`] and [`find_transport`].
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> [u8; 16] {
        array(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> [u8; 16] {
        array(&self.buffer.as_ref()[field::DST_ADDR])
    }

    /// `40..40 + payload_len`: extension headers and transport, without padding.
    /// Clamped to the buffer, so it cannot panic after `set_payload_len`.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let range = self.payload_range();
        &self.buffer.as_ref()[range]
    }

    #[inline]
    fn payload_range(&self) -> core::ops::Range<usize> {
        let len = self.buffer.as_ref().len();
        let end = (HEADER_LEN + usize::from(self.payload_len())).min(len);
        HEADER_LEN.min(end)..end
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    #[inline]
    fn set_ver_tc_flow(&mut self, value: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the traffic class.
    #[inline]
    pub fn set_traffic_class(&mut self, value: u8) {
        let v = self.ver_tc_flow() & !(0xff << 20);
        self.set_ver_tc_flow(v | (u32::from(value) << 20));
    }

    /// Sets the flow label; bits above the 20th are ignored.
    #[inline]
    pub fn set_flow_label(&mut self, value: u32) {
        let v = self.ver_tc_flow() & !FLOW_LABEL_MASK;
        self.set_ver_tc_flow(v | (value & FLOW_LABEL_MASK));
    }

    /// Sets the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::PAYLOAD_LEN].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, value: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = value;
    }

    /// Sets the hop limit (IPv6 has no header checksum to update).
    #[inline]
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: [u8; 16]) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr);
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: [u8; 16]) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr);
    }

    /// The payload (see [`Ipv6Packet::payload`]), writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.payload_range();
        &mut self.buffer.as_mut()[range]
    }
}

/// The fields of an IPv6 header the data plane builds itself (the outer header of a
/// VXLAN packet, ICMPv6 errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub next_header: u8,
    pub hop_limit: u8,
    /// Bytes after the fixed header.
    pub payload_len: u16,
    pub traffic_class: u8,
    /// 20 bits; higher bits are ignored.
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Length of the header [`Self::emit`] writes (the payload not included).
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 40-byte header to `buf[..40]`.
    ///
    /// # Panics
    /// If `buf` is shorter than 40 bytes: a bug in the caller, which owns the buffer.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        let mut p = Ipv6Packet::new_unchecked(&mut buf[..HEADER_LEN]);
        p.set_ver_tc_flow(
            (6 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & FLOW_LABEL_MASK),
        );
        p.set_payload_len(self.payload_len);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
    }
}

/// A Fragment header met on the way to the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Fragment {
    /// Offset of this fragment's data in the original payload, in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// Identification, for reassembly.
    pub ident: u32,
}

/// Where the transport of an IPv6 packet starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Transport {
    /// Protocol after the extension headers (may be [`ip_proto::NONE`], or any header
    /// the walk does not enter, such as ESP or AH).
    pub protocol: u8,
    /// Offset of the transport header from the start of the IPv6 header.
    pub offset: usize,
    /// The Fragment header, if any.
    pub fragment: Option<Ipv6Fragment>,
}

/// Walks the Hop-by-Hop, Routing, Destination Options and Fragment headers of the
/// IPv6 packet at the start of `packet`, up to the transport.
///
/// Bounded by the payload length, not by the buffer, so Ethernet padding is never
/// taken for a header. Malformed if the fixed header is invalid, a header runs past
/// the payload, Hop-by-Hop is not first (RFC 8200 §4.3), or there are more than
/// [`MAX_EXT_HEADERS`]. A non-first fragment ends the walk: its data is not a header,
/// so `protocol` is the Fragment header's next header and `offset` is where the
/// fragment data starts. The returned `offset` may equal the end of the payload.
#[inline]
pub fn find_transport(packet: &[u8]) -> Result<Ipv6Transport> {
    let ip = Ipv6Packet::new_checked(packet)?;
    let data = packet
        .get(..HEADER_LEN + usize::from(ip.payload_len()))
        .ok_or(Malformed)?;
    let mut protocol = ip.next_header();
    let mut offset = HEADER_LEN;
    let mut fragment = None;
    let mut seen = 0;
    loop {
        let ext = match protocol {
            ip_proto::HOPOPT | ip_proto::ROUTING | ip_proto::DSTOPTS | ip_proto::FRAGMENT => {
                if seen == MAX_EXT_HEADERS || (protocol == ip_proto::HOPOPT && seen != 0) {
                    return Err(Malformed);
                }
                // The smallest extension header is 8 bytes.
                data.get(offset..offset + EXT_UNIT).ok_or(Malformed)?
            }
            _ => {
                return Ok(Ipv6Transport {
                    protocol,
                    offset,
                    fragment,
                })
            }
        };
        seen += 1;
        let next = ext[field::EXT_NEXT_HEADER];
        if protocol == ip_proto::FRAGMENT {
            let off_m = be16(&ext[field::FRAG_OFF_M]);
            let frag = Ipv6Fragment {
                offset: off_m & 0xfff8,
                more: off_m & 1 != 0,
                ident: be32(&ext[field::FRAG_IDENT]),
            };
            fragment = Some(frag);
            offset += EXT_UNIT;
            protocol = next;
            if frag.offset != 0 {
                return Ok(Ipv6Transport {
                    protocol,
                    offset,
                    fragment,
                });
            }
        } else {
            let len = (usize::from(ext[field::EXT_LEN]) + 1) * EXT_UNIT;
            if offset + len > data.len() {
                return Err(Malformed);
            }
            offset += len;
            protocol = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{
        IpFragOffset, IpNumber, Ipv6ExtensionsSlice, Ipv6FlowLabel, Ipv6FragmentHeader, Ipv6Header,
        Ipv6HeaderSlice, Ipv6RawExtHeader,
    };
    use proptest::prelude::*;

    const SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    /// 40-byte header (TC 0xb8, flow 0x12345, UDP, hop limit 64) + 4 bytes of
    /// payload + 2 bytes of padding.
    const PACKET: [u8; 46] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x04, 0x11, 0x40, // ver/tc/flow, len, nh, hl
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // src
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // dst
        1, 2, 3, 4, // payload
        0, 0, // padding
    ];

    #[test]
    fn parse() {
        let p = Ipv6Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 4);
        assert_eq!(p.next_header(), ip_proto::UDP);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), SRC);
        assert_eq!(p.dst_addr(), DST);
        assert_eq!(p.payload(), &[1, 2, 3, 4]);

        let e = Ipv6HeaderSlice::from_slice(&PACKET).unwrap().to_header();
        assert_eq!(e.traffic_class, p.traffic_class());
        assert_eq!(e.flow_label.value(), p.flow_label());
        assert_eq!(e.payload_length, p.payload_len());
        assert_eq!(e.source, p.src_addr());
        assert_eq!(e.destination, p.dst_addr());
    }

    #[test]
    fn malformed() {
        let check = |b: &[u8]| Ipv6Packet::new_checked(b).map(|_| ());
        assert_eq!(check(&PACKET[..39]), Err(Malformed));
        assert_eq!(check(&[]), Err(Malformed));
        assert_eq!(check(&PACKET[..43]), Err(Malformed), "payload past buffer");
        assert_eq!(check(&PACKET[..44]), Ok(()));
        let mut b = PACKET;
        b[0] = 0x4b;
        assert_eq!(check(&b), Err(Malformed), "version 4");
        assert_eq!(find_transport(&b), Err(Malformed));
        assert_eq!(find_transport(&PACKET[..43]), Err(Malformed));

        // Truncated view for ICMPv6 quotes.
        let t = Ipv6Packet::new_checked_truncated(&PACKET[..42]).unwrap();
        assert_eq!(t.payload(), &[1, 2]);
        assert_eq!(
            Ipv6Packet::new_checked_truncated(&PACKET[..39]),
            Err(Malformed)
        );
    }

    #[test]
    fn setters_and_repr_match_etherparse() {
        let repr = Ipv6Repr {
            src: SRC,
            dst: DST,
            next_header: ip_proto::UDP,
            hop_limit: 255,
            payload_len: 1200,
            traffic_class: 0x2e,
            flow_label: 0xfff0_abcd,
        };
        assert_eq!(repr.buffer_len(), 40);
        let mut buf = [0xffu8; 42];
        repr.emit(&mut buf);
        assert_eq!(&buf[40..], &[0xff, 0xff]);
        let e = Ipv6Header {
            traffic_class: 0x2e,
            flow_label: Ipv6FlowLabel::try_new(0xabcd).unwrap(),
            payload_length: 1200,
            next_header: IpNumber::UDP,
            hop_limit: 255,
            source: SRC,
            destination: DST,
        };
        assert_eq!(&buf[..40], &e.to_bytes()[..]);

        let mut v = PACKET;
        let mut p = Ipv6Packet::new_checked(&mut v[..]).unwrap();
        p.set_traffic_class(0x01);
        p.set_flow_label(0xf_ffff);
        p.set_hop_limit(1);
        p.set_next_header(ip_proto::TCP);
        p.set_src_addr(DST);
        p.set_dst_addr(SRC);
        p.set_payload_len(2);
        p.payload_mut().copy_from_slice(&[9, 9]);
        assert_eq!(p.version(), 6);
        let e = Ipv6HeaderSlice::from_slice(&v).unwrap().to_header();
        assert_eq!(e.traffic_class, 0x01);
        assert_eq!(e.flow_label.value(), 0xf_ffff);
        assert_eq!(e.hop_limit, 1);
        assert_eq!(e.next_header, IpNumber::TCP);
        assert_eq!(e.source, DST);
        assert_eq!(e.destination, SRC);
        assert_eq!(e.payload_length, 2);
        assert_eq!(&v[40..44], &[9, 9, 3, 4]);

        // Payload clamped if the length field outgrows the buffer.
        let mut p = Ipv6Packet::new_checked(&mut v[..]).unwrap();
        p.set_payload_len(60000);
        assert_eq!(p.payload().len(), 6);
        assert_eq!(p.payload_mut().len(), 6);
    }

    /// An IPv6 packet with `exts` (next header, raw bytes) in front of `transport`.
    fn with_exts(first: u8, exts: &[Vec<u8>], transport: &[u8]) -> Vec<u8> {
        let mut payload: Vec<u8> = exts.concat();
        payload.extend_from_slice(transport);
        let mut v = PACKET[..40].to_vec();
        v[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        v[6] = first;
        v.extend_from_slice(&payload);
        v
    }

    fn raw_ext(next: u8, units: u8) -> Vec<u8> {
        let payload = vec![0u8; 6 + 8 * usize::from(units)];
        Ipv6RawExtHeader::new_raw(IpNumber(next), &payload)
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    fn frag_ext(next: u8, offset_units: u16, more: bool, ident: u32) -> Vec<u8> {
        Ipv6FragmentHeader::new(
            IpNumber(next),
            IpFragOffset::try_new(offset_units).unwrap(),
            more,
            ident,
        )
        .to_bytes()
        .to_vec()
    }

    #[test]
    fn transport_without_extensions() {
        let t = find_transport(&PACKET).unwrap();
        assert_eq!(
            t,
            Ipv6Transport {
                protocol: ip_proto::UDP,
                offset: 40,
                fragment: None
            }
        );
    }

    #[test]
    fn transport_after_extensions() {
        let v = with_exts(
            ip_proto::HOPOPT,
            &[
                raw_ext(ip_proto::ROUTING, 0),
                raw_ext(ip_proto::DSTOPTS, 2),
                raw_ext(ip_proto::TCP, 1),
            ],
            &[0; 20],
        );
        let t = find_transport(&v).unwrap();
        assert_eq!(t.protocol, ip_proto::TCP);
        assert_eq!(t.offset, 40 + 8 + 24 + 16);
        assert_eq!(t.fragment, None);
        let (_, next, rest) = Ipv6ExtensionsSlice::from_slice(IpNumber(v[6]), &v[40..]).unwrap();
        assert_eq!(next.0, t.protocol);
        assert_eq!(rest.len(), v.len() - t.offset);
    }

    #[test]
    fn first_fragment_continues_to_transport() {
        let v = with_exts(
            ip_proto::FRAGMENT,
            &[
                frag_ext(ip_proto::DSTOPTS, 0, true, 0xdead_beef),
                raw_ext(ip_proto::UDP, 0),
            ],
            &[0; 8],
        );
        let t = find_transport(&v).unwrap();
        assert_eq!(t.protocol, ip_proto::UDP);
        assert_eq!(t.offset, 56);
        assert_eq!(
            t.fragment,
            Some(Ipv6Fragment {
                offset: 0,
                more: true,
                ident: 0xdead_beef
            })
        );
    }

    #[test]
    fn non_first_fragment_stops() {
        // The fragment data happens to look like a Destination Options header; it
        // must not be parsed.
        let v = with_exts(
            ip_proto::FRAGMENT,
            &[frag_ext(ip_proto::DSTOPTS, 185, false, 7)],
            &[0xff, 0xff, 0, 0, 0, 0, 0, 0],
        );
        let t = find_transport(&v).unwrap();
        assert_eq!(t.protocol, ip_proto::DSTOPTS);
        assert_eq!(t.offset, 48);
        assert_eq!(
            t.fragment,
            Some(Ipv6Fragment {
                offset: 1480,
                more: false,
                ident: 7
            })
        );
        // Raw bytes: offset field 0xfff8 is 8191 units, with M and reserved bits set.
        let mut raw = frag_ext(ip_proto::UDP, 0, false, 0);
        raw[2..4].copy_from_slice(&[0xff, 0xff]);
        let v = with_exts(ip_proto::FRAGMENT, &[raw], &[]);
        let f = find_transport(&v).unwrap().fragment.unwrap();
        assert_eq!((f.offset, f.more), (65528, true));
    }

    #[test]
    fn no_next_header_and_empty_transport() {
        let v = with_exts(ip_proto::DSTOPTS, &[raw_ext(ip_proto::NONE, 0)], &[]);
        let t = find_transport(&v).unwrap();
        assert_eq!((t.protocol, t.offset), (ip_proto::NONE, 48));
        assert_eq!(t.offset, v.len());
    }

    #[test]
    fn extension_walk_malformed() {
        // Header length runs past the payload.
        let mut ext = raw_ext(ip_proto::UDP, 0);
        ext[1] = 1;
        let v = with_exts(ip_proto::ROUTING, &[ext], &[0; 4]);
        assert_eq!(find_transport(&v), Err(Malformed));
        // Header shorter than 8 bytes.
        let v = with_exts(ip_proto::DSTOPTS, &[vec![ip_proto::UDP, 0, 0, 0]], &[]);
        assert_eq!(find_transport(&v), Err(Malformed));
        let v = with_exts(
            ip_proto::FRAGMENT,
            &[vec![ip_proto::UDP, 0, 0, 0, 0, 0, 0]],
            &[],
        );
        assert_eq!(find_transport(&v), Err(Malformed));
        // Headers bounded by payload_len, not by the buffer (padding).
        let mut v = with_exts(ip_proto::DSTOPTS, &[raw_ext(ip_proto::UDP, 0)], &[]);
        v[4..6].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(find_transport(&v), Err(Malformed));
        // Hop-by-Hop after another header.
        let v = with_exts(
            ip_proto::DSTOPTS,
            &[raw_ext(ip_proto::HOPOPT, 0), raw_ext(ip_proto::UDP, 0)],
            &[],
        );
        assert_eq!(find_transport(&v), Err(Malformed));
    }

    #[test]
    fn extension_header_limit() {
        let chain = |n: usize| {
            let mut exts: Vec<Vec<u8>> = (1..n).map(|_| raw_ext(ip_proto::DSTOPTS, 0)).collect();
            exts.push(raw_ext(ip_proto::TCP, 0));
            with_exts(ip_proto::DSTOPTS, &exts, &[])
        };
        let t = find_transport(&chain(MAX_EXT_HEADERS)).unwrap();
        assert_eq!(t.offset, 40 + 8 * MAX_EXT_HEADERS);
        assert_eq!(find_transport(&chain(MAX_EXT_HEADERS + 1)), Err(Malformed));
    }

    fn ext_chain() -> impl Strategy<Value = (bool, Vec<(u8, u8)>)> {
        // (Hop-by-Hop first?, [(kind, length units)]), kinds: 0 routing, 1 dstopts,
        // 2 first fragment.
        (
            any::<bool>(),
            prop::collection::vec((0u8..3, 0u8..4), 0..(MAX_EXT_HEADERS - 1)),
        )
    }

    proptest! {
        #[test]
        fn walk_agrees_with_etherparse(
            (hbh, chain) in ext_chain(),
            transport in prop::collection::vec(any::<u8>(), 0..24),
            proto in prop::sample::select(vec![ip_proto::TCP, ip_proto::UDP, ip_proto::ICMPV6]),
        ) {
            const KINDS: [u8; 3] = [ip_proto::ROUTING, ip_proto::DSTOPTS, ip_proto::FRAGMENT];
            let kinds: Vec<u8> = chain.iter().map(|&(k, _)| KINDS[usize::from(k)]).collect();
            let mut types = Vec::new();
            if hbh {
                types.push(ip_proto::HOPOPT);
            }
            types.extend(&kinds);
            let mut exts = Vec::new();
            // Hop-by-Hop, when present, is one unit (16 bytes) long.
            let units: Vec<u8> = hbh
                .then_some(1)
                .into_iter()
                .chain(chain.iter().map(|&(_, u)| u))
                .collect();
            for (i, &t) in types.iter().enumerate() {
                let next = types.get(i + 1).copied().unwrap_or(proto);
                exts.push(if t == ip_proto::FRAGMENT {
                    frag_ext(next, 0, true, i as u32)
                } else {
                    raw_ext(next, units[i])
                });
            }
            let first = types.first().copied().unwrap_or(proto);
            let v = with_exts(first, &exts, &transport);
            let t = find_transport(&v).unwrap();
            let (_, next, rest) =
                Ipv6ExtensionsSlice::from_slice(IpNumber(first), &v[40..]).unwrap();
            prop_assert_eq!(t.protocol, next.0);
            prop_assert_eq!(t.offset, v.len() - rest.len());
            prop_assert_eq!(&v[t.offset..], &transport[..]);
            prop_assert_eq!(t.fragment.is_some(), kinds.contains(&ip_proto::FRAGMENT));
        }

        #[test]
        fn walk_never_panics(data in prop::collection::vec(any::<u8>(), 0..160)) {
            let mut data = data;
            if data.len() >= 40 {
                // Make the fixed header plausible so the walk is exercised.
                data[0] = 0x60 | (data[0] & 0x0f);
                let plen = (data.len() - 40) as u16;
                data[4..6].copy_from_slice(&plen.to_be_bytes());
                data[6] = [0u8, 43, 44, 60, 6][usize::from(data[6]) % 5];
            }
            if let Ok(t) = find_transport(&data) {
                prop_assert!(t.offset <= data.len());
                prop_assert!(t.offset >= HEADER_LEN);
            }
            if let Ok(p) = Ipv6Packet::new_checked(&data[..]) {
                let _ = (p.traffic_class(), p.flow_label(), p.hop_limit());
                let _ = (p.src_addr(), p.dst_addr());
                prop_assert_eq!(p.payload().len(), data.len() - 40);
            }
        }
    }
}
