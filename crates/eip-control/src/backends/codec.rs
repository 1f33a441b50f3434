//! A TCP check on the wire: the SYN, the RST that closes a half-open check,
//! both in a path's VXLAN encapsulation exactly as data, and the parse of the
//! backend's answer (SYN-ACK or RST). HTTP checks use the general forms
//! ([`TcpOut`] with flags, ACK number and payload; [`parse_tcp_segment`]).
//! ICMP checks reuse the path probe's codec (`crate::probe::codec`).
//!
//! The check names itself in its initial sequence number:
//! `(ident << 16 | seq) ^ nonce`, where `ident` names the backend and `seq`
//! counts its checks. Both SYN-ACK and RST answer with `ack = isn + 1`, which
//! gives both back; a forged or stale answer does not carry this process's
//! nonce and lands on no check in flight.

use crate::probe::codec::{parse_inner_ipv4, Ignored};
use eip_dataplane::pipeline::write_encap_header;
use eip_dataplane::tables::ENCAP_LEN;
use eip_dataplane::wire::ip_proto;
use eip_dataplane::wire::ipv4::Ipv4Repr;
use eip_dataplane::wire::tcp::TcpPacket;

/// Inner IPv4 packet of a TCP check: IPv4 20 + TCP 20 (no options).
pub const TCP_INNER_LEN: usize = 40;
/// A whole TCP check frame.
pub const TCP_FRAME_LEN: usize = ENCAP_LEN + TCP_INNER_LEN;
/// Longest TCP payload a check sends (an HTTP request): with the headers it
/// stays under a 1280-byte inner MTU.
pub const MAX_TCP_PAYLOAD: usize = 1200;
/// A whole TCP check frame with the longest payload.
pub const MAX_TCP_FRAME_LEN: usize = TCP_FRAME_LEN + MAX_TCP_PAYLOAD;
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
/// Receive window advertised in the SYN.
const WINDOW: u16 = 64_240;

/// Source ports of TCP checks: one per check sequence number modulo 16,384, so
/// that a check never reuses the 4-tuple of one still half-open at the backend.
pub fn source_port(seq: u16) -> u16 {
    0xC000 | (seq & 0x3FFF)
}

/// The initial sequence number of check `seq` of backend `ident`.
pub fn isn(ident: u16, seq: u16, nonce: u64) -> u32 {
    (u32::from(ident) << 16 | u32::from(seq)) ^ nonce as u32
}

/// One TCP segment of a check, as it goes on the wire.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub template: &'a [u8; ENCAP_LEN],
    /// Flow hash of the segment's inner flow (outer UDP source port).
    pub hash: u64,
    pub source: [u8; 4],
    pub target: [u8; 4],
    pub sport: u16,
    pub dport: u16,
    pub seq_number: u32,
    /// True: a SYN; false: a RST (sequence number `isn + 1`).
    pub syn: bool,
}

impl Segment<'_> {
    /// Builds the frame in `buf`: nothing is allocated per check.
    pub fn emit<'b>(&self, buf: &'b mut [u8]) -> &'b [u8] {
        TcpOut {
            template: self.template,
            hash: self.hash,
            source: self.source,
            target: self.target,
            sport: self.sport,
            dport: self.dport,
            seq_number: self.seq_number,
            ack_number: 0,
            flags: if self.syn { SYN } else { RST },
            payload: &[],
        }
        .emit(buf)
    }
}

/// Any TCP segment of a check: flags, ACK number (sent with the ACK flag) and
/// payload (at most [`MAX_TCP_PAYLOAD`] bytes).
#[derive(Debug, Clone, Copy)]
pub struct TcpOut<'a> {
    pub template: &'a [u8; ENCAP_LEN],
    pub hash: u64,
    pub source: [u8; 4],
    pub target: [u8; 4],
    pub sport: u16,
    pub dport: u16,
    pub seq_number: u32,
    pub ack_number: u32,
    pub flags: u8,
    pub payload: &'a [u8],
}

impl TcpOut<'_> {
    /// Builds the frame at the start of `buf` and returns it.
    ///
    /// # Panics
    /// When `buf` cannot hold it (the payload is longer than
    /// [`MAX_TCP_PAYLOAD`] and `buf` only [`MAX_TCP_FRAME_LEN`]): the caller
    /// bounds its payloads.
    pub fn emit<'b>(&self, buf: &'b mut [u8]) -> &'b [u8] {
        let len = TCP_FRAME_LEN + self.payload.len();
        let buf = &mut buf[..len];
        let (hdr, inner) = buf.split_at_mut(ENCAP_LEN);
        let hdr: &mut [u8; ENCAP_LEN] = hdr.try_into().expect("ENCAP_LEN bytes");
        let inner_len = TCP_INNER_LEN + self.payload.len();
        write_encap_header(hdr, self.template, inner_len as u16, false, self.hash);
        Ipv4Repr {
            src: self.source,
            dst: self.target,
            protocol: ip_proto::TCP,
            ttl: 64,
            payload_len: (20 + self.payload.len()) as u16,
            dont_frag: true,
            ident: self.sport,
            dscp_ecn: 0,
        }
        .emit(inner);
        let tcp = &mut inner[20..];
        tcp[0..2].copy_from_slice(&self.sport.to_be_bytes());
        tcp[2..4].copy_from_slice(&self.dport.to_be_bytes());
        tcp[4..8].copy_from_slice(&self.seq_number.to_be_bytes());
        let ack = if self.flags & ACK != 0 {
            self.ack_number
        } else {
            0
        };
        tcp[8..12].copy_from_slice(&ack.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = self.flags;
        let window = if self.flags & RST != 0 { 0 } else { WINDOW };
        tcp[14..16].copy_from_slice(&window.to_be_bytes());
        tcp[16..20].fill(0);
        tcp[20..].copy_from_slice(self.payload);
        TcpPacket::new_unchecked(&mut *tcp).fill_checksum_v4(self.source, self.target);
        &buf[..]
    }
}

/// Any TCP segment to the probe source, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    pub vni: u32,
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub payload: &'a [u8],
}

/// Outer headers as for path probes, then an inner IPv4 / TCP segment with a
/// valid checksum, whatever its flags.
///
/// # Errors
/// `NotEchoReply` for an inner packet that is not TCP (the caller then offers
/// the frame to the path prober), else why it is no segment.
pub fn parse_tcp_segment(frame: &[u8], vxlan_port: u16) -> Result<TcpSegment<'_>, Ignored> {
    let (vni, ip) = parse_inner_ipv4(frame, vxlan_port)?;
    if ip.protocol() != ip_proto::TCP || ip.is_fragment() {
        return Err(Ignored::NotEchoReply);
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let tcp = TcpPacket::new_checked(ip.payload()).map_err(|_| Ignored::Malformed("TCP"))?;
    if !tcp.verify_checksum_v4(src, dst) {
        return Err(Ignored::BadChecksum);
    }
    let flags = u8::from(tcp.fin())
        | u8::from(tcp.syn()) << 1
        | u8::from(tcp.rst()) << 2
        | u8::from(tcp.psh()) << 3
        | u8::from(tcp.ack()) << 4;
    let (sport, dport, seq, ack) = (
        tcp.src_port(),
        tcp.dst_port(),
        tcp.seq_number(),
        tcp.ack_number(),
    );
    // The payload's place in the packet, so it can outlive the views.
    let start = ip.header_len() + tcp.header_len();
    let end = ip.header_len() + ip.payload().len();
    let payload = ip.into_inner().get(start..end).unwrap_or_default();
    Ok(TcpSegment {
        vni,
        src,
        dst,
        sport,
        dport,
        seq,
        ack,
        flags,
        payload,
    })
}

/// What a backend answered to a SYN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// SYN-ACK: something listens.
    Accepted,
    /// RST: nothing listens (or a firewall refuses).
    Refused,
}

/// The fields of a TCP answer the checker matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpReply {
    pub vni: u32,
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub sport: u16,
    pub dport: u16,
    /// `ack - 1`: the ISN of the check answered.
    pub isn: u32,
    pub answer: Answer,
}

/// Outer headers as for path probes, then an inner IPv4 / TCP segment with
/// ACK and either SYN or RST, and a valid checksum.
///
/// # Errors
/// `NotEchoReply` for an inner packet that is no TCP answer (the caller then
/// offers the frame to the path prober), else why it is no answer.
pub fn parse_tcp_reply(frame: &[u8], vxlan_port: u16) -> Result<TcpReply, Ignored> {
    tcp_reply(&parse_tcp_segment(frame, vxlan_port)?)
}

/// The answer to a SYN that `seg` is.
///
/// # Errors
/// `Malformed` for a segment that is neither SYN-ACK nor RST-ACK.
pub fn tcp_reply(seg: &TcpSegment<'_>) -> Result<TcpReply, Ignored> {
    let answer = match seg.flags & (SYN | RST | ACK) {
        f if f == SYN | ACK => Answer::Accepted,
        f if f == RST | ACK => Answer::Refused,
        _ => return Err(Ignored::Malformed("TCP (neither SYN-ACK nor RST-ACK)")),
    };
    Ok(TcpReply {
        vni: seg.vni,
        src: seg.src,
        dst: seg.dst,
        sport: seg.sport,
        dport: seg.dport,
        isn: seg.ack.wrapping_sub(1),
        answer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetHeaders, PacketBuilder, PacketHeaders, TransportHeader};

    const SRC: [u8; 4] = [10, 255, 0, 1];
    const DST: [u8; 4] = [10, 1, 0, 20];

    fn template() -> [u8; ENCAP_LEN] {
        let mut t = [0u8; ENCAP_LEN];
        // Ethernet, IPv4 (version/IHL, TTL, UDP), UDP to 4789, VXLAN I flag,
        // inner Ethernet: enough for write_encap_header and etherparse.
        t[12..14].copy_from_slice(&[0x08, 0x00]);
        t[14] = 0x45;
        t[22] = 64;
        t[23] = 17;
        t[26..30].copy_from_slice(&[198, 51, 100, 1]);
        t[30..34].copy_from_slice(&[198, 51, 100, 2]);
        t[36..38].copy_from_slice(&4789u16.to_be_bytes());
        t[42] = 0x08;
        t[46..49].copy_from_slice(&[0, 0, 100]);
        t
    }

    #[test]
    fn syn_and_rst_are_valid_tcp_checked_by_etherparse() {
        let t = template();
        let mut buf = [0u8; TCP_FRAME_LEN];
        for syn in [true, false] {
            let isn = isn(0x8001, 7, 0xdead_beef_cafe_f00d);
            let frame = Segment {
                template: &t,
                hash: 99,
                source: SRC,
                target: DST,
                sport: source_port(7),
                dport: 80,
                seq_number: if syn { isn } else { isn.wrapping_add(1) },
                syn,
            }
            .emit(&mut buf)
            .to_vec();
            let inner = PacketHeaders::from_ethernet_slice(&frame[ENCAP_LEN - 14..]).unwrap();
            let Some(NetHeaders::Ipv4(ip, _)) = &inner.net else {
                panic!("not IPv4")
            };
            assert_eq!((ip.source, ip.destination), (SRC, DST));
            assert_eq!(ip.header_checksum, ip.calc_header_checksum());
            let Some(TransportHeader::Tcp(tcp)) = &inner.transport else {
                panic!("not TCP")
            };
            assert_eq!((tcp.source_port, tcp.destination_port), (0xC007, 80));
            assert_eq!((tcp.syn, tcp.rst, tcp.ack), (syn, !syn, false));
            assert_eq!(tcp.checksum, tcp.calc_checksum_ipv4(ip, &[]).unwrap());
            assert_eq!(tcp.sequence_number, if syn { isn } else { isn + 1 });
            // The outer header is the path's, completed.
            let outer = PacketHeaders::from_ethernet_slice(&frame).unwrap();
            let Some(NetHeaders::Ipv4(o, _)) = &outer.net else {
                panic!("outer not IPv4")
            };
            assert_eq!(usize::from(o.total_len), frame.len() - 14);
        }
    }

    /// A backend's answer in VXLAN, built by etherparse.
    pub(crate) fn answer(syn: bool, rst: bool, ack: u32, sport: u16, dport: u16) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0x10, 1], [2, 0, 0, 0, 1, 1])
            .ipv4(DST, SRC, 64)
            .tcp(sport, dport, 12345, 1000);
        if syn {
            b = b.syn();
        }
        if rst {
            b = b.rst();
        }
        let b = b.ack(ack);
        let mut vxlan = vec![0x08, 0, 0, 0, 0, 0, 100, 0];
        b.write(&mut vxlan, &[]).unwrap();
        let outer = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([198, 51, 100, 2], [198, 51, 100, 1], 64)
            .udp(50_000, 4789);
        let mut out = Vec::new();
        outer.write(&mut out, &vxlan).unwrap();
        out
    }

    #[test]
    fn answers_parse_and_odd_segments_do_not() {
        let r = parse_tcp_reply(&answer(true, false, 1001, 80, 0xC007), 4789).unwrap();
        assert_eq!(
            r,
            TcpReply {
                vni: 100,
                src: DST,
                dst: SRC,
                sport: 80,
                dport: 0xC007,
                isn: 1000,
                answer: Answer::Accepted
            }
        );
        let r = parse_tcp_reply(&answer(false, true, 1, 80, 0xC007), 4789).unwrap();
        assert_eq!((r.isn, r.answer), (0, Answer::Refused));
        // A bare ACK is no answer to a SYN.
        assert!(parse_tcp_reply(&answer(false, false, 1, 80, 1), 4789).is_err());
        // A corrupted checksum.
        let mut bad = answer(true, false, 1, 80, 1);
        let n = bad.len();
        bad[n - 4] ^= 0xff;
        assert_eq!(parse_tcp_reply(&bad, 4789), Err(Ignored::BadChecksum));
        // Truncated anywhere: refused, never a panic.
        let good = answer(true, false, 1, 80, 1);
        for len in 0..good.len() {
            assert!(parse_tcp_reply(&good[..len], 4789).is_err(), "{len}");
        }
    }
}
