//! ICMP for IPv4 (RFC 792, RFC 1191): echo for NAT by identifier, and the error
//! messages the data plane forwards (NATing the quoted datagram) or generates.

use super::{be16, be32, checksum, Malformed, Result};

mod field {
    use core::ops::{Range, RangeFrom};

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const REST_OF_HEADER: Range<usize> = 4..8;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQ: Range<usize> = 6..8;
    pub const NEXT_HOP_MTU: Range<usize> = 6..8;
    pub const PAYLOAD: RangeFrom<usize> = 8..;
}

/// Length of the header (type, code, checksum, rest of header).
pub const HEADER_LEN: usize = 8;

/// Type: echo reply.
pub const ECHO_REPLY: u8 = 0;
/// Type: destination unreachable.
pub const DEST_UNREACHABLE: u8 = 3;
/// Type: echo request.
pub const ECHO_REQUEST: u8 = 8;
/// Type: time exceeded.
pub const TIME_EXCEEDED: u8 = 11;
/// Type: parameter problem.
pub const PARAMETER_PROBLEM: u8 = 12;

/// Code of [`DEST_UNREACHABLE`]: fragmentation needed and DF set (path MTU
/// discovery, RFC 1191).
pub const FRAG_NEEDED: u8 = 4;
/// Code of [`TIME_EXCEEDED`]: TTL exceeded in transit.
pub const TTL_EXCEEDED_IN_TRANSIT: u8 = 0;

/// Deprecated error types that still quote a datagram.
const SOURCE_QUENCH: u8 = 4;
const REDIRECT: u8 = 5;

/// A view of an ICMPv4 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than
    /// [`HEADER_LEN`]. For messages the caller has just emitted.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }

    /// Wraps a message of at least 8 bytes (the checksum covers the whole view: pass
    /// exactly the IP payload).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Malformed);
        }
        Ok(Icmpv4Packet { buffer })
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Identifier of an echo request or reply: what NAT translates like a port.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ECHO_IDENT])
    }

    /// Sequence number of an echo request or reply.
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ECHO_SEQ])
    }

    /// Next-hop MTU of a "fragmentation needed" message (RFC 1191).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::NEXT_HOP_MTU])
    }

    /// Bytes 4..8, whatever the type.
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::REST_OF_HEADER])
    }

    /// True for error messages, whose payload quotes the offending datagram's IP
    /// header and first 8 payload bytes: destination unreachable, source quench,
    /// redirect, time exceeded, parameter problem.
    #[inline]
    pub fn is_error(&self) -> bool {
        matches!(
            self.msg_type(),
            DEST_UNREACHABLE | SOURCE_QUENCH | REDIRECT | TIME_EXCEEDED | PARAMETER_PROBLEM
        )
    }

    /// Everything after the 8-byte header: echo data, or the quoted datagram.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }

    /// True if the checksum over the whole view is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::finish(checksum::sum(self.buffer.as_ref())) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    /// Sets the message code.
    #[inline]
    pub fn set_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the echo identifier (the checksum is not updated).
    #[inline]
    pub fn set_echo_ident(&mut self, value: u16) {
        self.buffer.as_mut()[field::ECHO_IDENT].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the echo sequence number (the checksum is not updated).
    #[inline]
    pub fn set_echo_seq(&mut self, value: u16) {
        self.buffer.as_mut()[field::ECHO_SEQ].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the next-hop MTU; bytes 4..6 are left alone (zero them with
    /// [`Self::set_rest_of_header`] when building a message).
    #[inline]
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        self.buffer.as_mut()[field::NEXT_HOP_MTU].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets bytes 4..8.
    #[inline]
    pub fn set_rest_of_header(&mut self, value: u32) {
        self.buffer.as_mut()[field::REST_OF_HEADER].copy_from_slice(&value.to_be_bytes());
    }

    /// Computes the checksum over the whole view (ICMPv4 has no pseudo-header).
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::sum(self.buffer.as_ref()));
        self.set_checksum(c);
    }

    /// Everything after the header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::{Ipv4Packet, Ipv4Repr};
    use crate::wire::{ip_proto, udp::UdpRepr};
    use etherparse::{Icmpv4Slice, Icmpv4Type, PacketBuilder};
    use proptest::prelude::*;

    /// Echo request id 0x1234, seq 1, payload "ping", as etherparse builds it.
    fn echo_request() -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .icmpv4_echo_request(0x1234, 1)
            .write(&mut v, b"ping")
            .unwrap();
        v.split_off(20)
    }

    fn etherparse_checksum(msg: &[u8]) -> u16 {
        let s = Icmpv4Slice::from_slice(msg).unwrap();
        s.icmp_type().calc_checksum(s.payload())
    }

    #[test]
    fn parse_echo() {
        let v = echo_request();
        let p = Icmpv4Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.msg_type(), ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq(), 1);
        assert_eq!(p.rest_of_header(), 0x1234_0001);
        assert!(!p.is_error());
        assert_eq!(p.payload(), b"ping");
        assert!(p.verify_checksum());
    }

    #[test]
    fn echo_reply_by_nat() {
        // Turn the request into a reply with a translated identifier.
        let mut v = echo_request();
        let mut p = Icmpv4Packet::new_checked(&mut v[..]).unwrap();
        p.set_msg_type(ECHO_REPLY);
        let c = checksum::update16(p.checksum(), 0x0800, 0x0000);
        let c = checksum::update16(c, p.echo_ident(), 0xabcd);
        p.set_echo_ident(0xabcd);
        p.set_checksum(c);
        assert!(p.verify_checksum());
        let incremental = p.checksum();
        p.fill_checksum();
        assert_eq!(incremental, p.checksum());
        assert_eq!(p.checksum(), etherparse_checksum(&v));
        let s = Icmpv4Slice::from_slice(&v).unwrap();
        match s.icmp_type() {
            Icmpv4Type::EchoReply(h) => assert_eq!((h.id, h.seq), (0xabcd, 1)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn build_frag_needed() {
        // Fragmentation needed, quoting an IPv4/UDP header, as the tunnel ingress
        // sends it when the encapsulated packet would exceed the underlay MTU.
        let mut quoted = [0u8; 28];
        Ipv4Repr {
            src: [198, 51, 100, 9],
            dst: [192, 0, 2, 10],
            protocol: ip_proto::UDP,
            ttl: 63,
            payload_len: 1472,
            dont_frag: true,
            ident: 1,
            dscp_ecn: 0,
        }
        .emit(&mut quoted);
        UdpRepr {
            src_port: 1000,
            dst_port: 2000,
            payload_len: 1464,
        }
        .emit(&mut quoted[20..]);

        let mut msg = [0u8; 36];
        let mut p = Icmpv4Packet::new_checked(&mut msg[..]).unwrap();
        p.set_msg_type(DEST_UNREACHABLE);
        p.set_code(FRAG_NEEDED);
        p.set_rest_of_header(0);
        p.set_next_hop_mtu(1450);
        p.payload_mut().copy_from_slice(&quoted);
        p.fill_checksum();
        assert!(p.is_error());
        assert!(p.verify_checksum());
        assert_eq!(p.next_hop_mtu(), 1450);
        let ours = p.checksum();

        let s = Icmpv4Slice::from_slice(&msg).unwrap();
        match s.icmp_type() {
            Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu },
            ) => assert_eq!(next_hop_mtu, 1450),
            other => panic!("{other:?}"),
        }
        assert_eq!(ours, etherparse_checksum(&msg));

        // The quoted datagram is truncated: only the lenient IPv4 view accepts it.
        let p = Icmpv4Packet::new_checked(&msg[..]).unwrap();
        assert!(Ipv4Packet::new_checked(p.payload()).is_err());
        let inner = Ipv4Packet::new_checked_truncated(p.payload()).unwrap();
        assert_eq!(inner.dst_addr(), [192, 0, 2, 10]);
        assert_eq!(inner.payload().len(), 8);
    }

    #[test]
    fn error_types() {
        let mut msg = [0u8; 8];
        for t in 0..=255u8 {
            let mut p = Icmpv4Packet::new_checked(&mut msg[..]).unwrap();
            p.set_msg_type(t);
            assert_eq!(p.is_error(), matches!(t, 3 | 4 | 5 | 11 | 12), "type {t}");
        }
        let mut p = Icmpv4Packet::new_checked(&mut msg[..]).unwrap();
        p.set_msg_type(TIME_EXCEEDED);
        p.set_code(TTL_EXCEEDED_IN_TRANSIT);
        p.fill_checksum();
        let ours = p.checksum();
        let s = Icmpv4Slice::from_slice(&msg).unwrap();
        assert!(matches!(
            s.icmp_type(),
            Icmpv4Type::TimeExceeded(etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit)
        ));
        assert_eq!(ours, etherparse_checksum(&msg));
    }

    #[test]
    fn malformed() {
        let v = echo_request();
        assert_eq!(Icmpv4Packet::new_checked(&v[..7]), Err(Malformed));
        assert_eq!(Icmpv4Packet::new_checked(&[][..]), Err(Malformed));
        let p = Icmpv4Packet::new_checked(&v[..8]).unwrap();
        assert!(p.payload().is_empty());
        assert!(!p.verify_checksum(), "checksum covered the payload");
    }

    proptest! {
        #[test]
        fn fill_matches_etherparse(
            t: u8,
            code: u8,
            rest: u32,
            payload in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut v = vec![0u8; 8];
            v.extend_from_slice(&payload);
            let mut p = Icmpv4Packet::new_checked(&mut v[..]).unwrap();
            p.set_msg_type(t);
            p.set_code(code);
            p.set_rest_of_header(rest);
            p.fill_checksum();
            prop_assert!(p.verify_checksum());
            let ours = p.checksum();
            // etherparse decodes by type and re-encodes the fields it understands;
            // compare where the decoding is lossless.
            if let Ok(s) = Icmpv4Slice::from_slice(&v) {
                let reencoded = s.header().to_bytes();
                if reencoded[..] == v[..reencoded.len()] {
                    prop_assert_eq!(ours, etherparse_checksum(&v));
                }
            }
        }

        #[test]
        fn accessors_never_panic(data in prop::collection::vec(any::<u8>(), 0..24)) {
            if let Ok(p) = Icmpv4Packet::new_checked(&data[..]) {
                let _ = (p.msg_type(), p.code(), p.checksum(), p.echo_ident(), p.echo_seq());
                let _ = (p.next_hop_mtu(), p.rest_of_header(), p.is_error(), p.verify_checksum());
                prop_assert_eq!(p.payload().len(), data.len() - 8);
            }
        }
    }
}
