//! ICMP for IPv6 (RFC 4443): echo for NAT by identifier, and the error messages
//! the data plane forwards or generates (Packet Too Big above all).

use super::{be16, be32, checksum, ip_proto, Malformed, Result};

mod field {
    use core::ops::{Range, RangeFrom};

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const REST_OF_HEADER: Range<usize> = 4..8;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQ: Range<usize> = 6..8;
    pub const PAYLOAD: RangeFrom<usize> = 8..;
}

/// Length of the header (type, code, checksum, 4 type-specific bytes).
pub const HEADER_LEN: usize = 8;

/// Type: destination unreachable.
pub const DEST_UNREACHABLE: u8 = 1;
/// Type: packet too big (carries the MTU).
pub const PACKET_TOO_BIG: u8 = 2;
/// Type: time exceeded.
pub const TIME_EXCEEDED: u8 = 3;
/// Type: parameter problem.
pub const PARAMETER_PROBLEM: u8 = 4;
/// Type: echo request.
pub const ECHO_REQUEST: u8 = 128;
/// Type: echo reply.
pub const ECHO_REPLY: u8 = 129;

/// Types below this are errors (RFC 4443 §2.1).
const FIRST_INFORMATIONAL: u8 = 128;

/// A view of an ICMPv6 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than
    /// [`HEADER_LEN`]. For messages the caller has just emitted.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    /// Wraps a message of at least 8 bytes (the checksum covers the whole view: pass
    /// exactly the upper-layer payload).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Malformed);
        }
        Ok(Icmpv6Packet { buffer })
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

    /// MTU of a Packet Too Big message (bytes 4..8; the pointer of a parameter
    /// problem message is in the same place).
    #[inline]
    pub fn mtu(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::REST_OF_HEADER])
    }

    /// Identifier of an echo request or reply.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ECHO_IDENT])
    }

    /// Sequence number of an echo request or reply.
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ECHO_SEQ])
    }

    /// True for error messages (types 0..=127), which quote the offending packet.
    #[inline]
    pub fn is_error(&self) -> bool {
        self.msg_type() < FIRST_INFORMATIONAL
    }

    /// Everything after the 8-byte header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }

    #[inline]
    fn sum_with_pseudo(&self, src: [u8; 16], dst: [u8; 16]) -> u64 {
        let b = self.buffer.as_ref();
        checksum::pseudo_header_v6(&src, &dst, ip_proto::ICMPV6, b.len() as u32) + checksum::sum(b)
    }

    /// True if the checksum over the IPv6 pseudo-header and the view is correct.
    #[inline]
    pub fn verify_checksum(&self, src: [u8; 16], dst: [u8; 16]) -> bool {
        checksum::finish(self.sum_with_pseudo(src, dst)) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
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

    /// Sets the MTU of a Packet Too Big message (bytes 4..8).
    #[inline]
    pub fn set_mtu(&mut self, value: u32) {
        self.set_rest_of_header(value);
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

    /// Sets bytes 4..8.
    #[inline]
    pub fn set_rest_of_header(&mut self, value: u32) {
        self.buffer.as_mut()[field::REST_OF_HEADER].copy_from_slice(&value.to_be_bytes());
    }

    /// Computes the checksum over the IPv6 pseudo-header and the view.
    #[inline]
    pub fn fill_checksum(&mut self, src: [u8; 16], dst: [u8; 16]) {
        self.set_checksum(0);
        let c = checksum::finish(self.sum_with_pseudo(src, dst));
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
    use crate::wire::ipv6::Ipv6Repr;
    use etherparse::{Icmpv6Slice, Icmpv6Type, PacketBuilder};
    use proptest::prelude::*;

    const SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    fn echo_request() -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv6(SRC, DST, 64)
            .icmpv6_echo_request(0x4242, 7)
            .write(&mut v, b"ping6")
            .unwrap();
        v.split_off(40)
    }

    #[test]
    fn parse_echo() {
        let v = echo_request();
        let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.msg_type(), ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.echo_ident(), 0x4242);
        assert_eq!(p.echo_seq(), 7);
        assert!(!p.is_error());
        assert_eq!(p.payload(), b"ping6");
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(SRC, SRC));
    }

    #[test]
    fn echo_nat_and_reply() {
        let mut v = echo_request();
        let new_src = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
        let mut p = Icmpv6Packet::new_checked(&mut v[..]).unwrap();
        // The pseudo-header address changes too: ICMPv6 NAT must update for it.
        let c = checksum::update_bytes(p.checksum(), &SRC, &new_src);
        let c = checksum::update16(c, p.echo_ident(), 0x0001);
        let c = checksum::update16(
            c,
            u16::from_be_bytes([ECHO_REQUEST, 0]),
            u16::from_be_bytes([ECHO_REPLY, 0]),
        );
        p.set_echo_ident(1);
        p.set_msg_type(ECHO_REPLY);
        p.set_checksum(c);
        assert!(p.verify_checksum(new_src, DST));
        assert!(Icmpv6Slice::from_slice(&v)
            .unwrap()
            .is_checksum_valid(new_src, DST));
        let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.echo_seq(), 7);
    }

    #[test]
    fn build_packet_too_big() {
        // Quote an IPv6 header, as the tunnel ingress does when a packet does not fit.
        let mut msg = [0u8; 8 + 48];
        Ipv6Repr {
            src: DST,
            dst: SRC,
            next_header: ip_proto::UDP,
            hop_limit: 63,
            payload_len: 1452,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut msg[8..]);
        let mut p = Icmpv6Packet::new_checked(&mut msg[..]).unwrap();
        p.set_msg_type(PACKET_TOO_BIG);
        p.set_code(0);
        p.set_mtu(1450);
        p.fill_checksum(SRC, DST);
        assert!(p.is_error());
        assert_eq!(p.mtu(), 1450);
        assert!(p.verify_checksum(SRC, DST));
        let ours = p.checksum();

        let s = Icmpv6Slice::from_slice(&msg).unwrap();
        assert!(s.is_checksum_valid(SRC, DST));
        assert_eq!(s.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1450 });
        let h = s.header();
        assert_eq!(
            h.icmp_type.calc_checksum(SRC, DST, s.payload()).unwrap(),
            ours
        );
    }

    #[test]
    fn error_types() {
        let mut msg = [0u8; 8];
        for t in 0..=255u8 {
            let mut p = Icmpv6Packet::new_checked(&mut msg[..]).unwrap();
            p.set_msg_type(t);
            assert_eq!(p.is_error(), t < 128);
        }
        for t in [
            DEST_UNREACHABLE,
            PACKET_TOO_BIG,
            TIME_EXCEEDED,
            PARAMETER_PROBLEM,
        ] {
            let mut p = Icmpv6Packet::new_checked(&mut msg[..]).unwrap();
            p.set_msg_type(t);
            assert!(p.is_error());
        }
    }

    #[test]
    fn malformed() {
        let v = echo_request();
        assert_eq!(Icmpv6Packet::new_checked(&v[..7]), Err(Malformed));
        assert_eq!(Icmpv6Packet::new_checked(&[][..]), Err(Malformed));
        assert!(Icmpv6Packet::new_checked(&v[..8])
            .unwrap()
            .payload()
            .is_empty());
    }

    proptest! {
        #[test]
        fn fill_agrees_with_etherparse(
            t: u8,
            code: u8,
            rest: u32,
            payload in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut v = vec![0u8; 8];
            v.extend_from_slice(&payload);
            let mut p = Icmpv6Packet::new_checked(&mut v[..]).unwrap();
            p.set_msg_type(t);
            p.set_code(code);
            p.set_rest_of_header(rest);
            p.fill_checksum(SRC, DST);
            prop_assert!(p.verify_checksum(SRC, DST));
            prop_assert!(Icmpv6Slice::from_slice(&v).unwrap().is_checksum_valid(SRC, DST));
        }

        #[test]
        fn accessors_never_panic(data in prop::collection::vec(any::<u8>(), 0..24)) {
            if let Ok(p) = Icmpv6Packet::new_checked(&data[..]) {
                let _ = (p.msg_type(), p.code(), p.checksum(), p.mtu(), p.echo_ident());
                let _ = (p.echo_seq(), p.is_error(), p.verify_checksum(SRC, DST));
                prop_assert_eq!(p.payload().len(), data.len() - 8);
            }
        }
    }
}
