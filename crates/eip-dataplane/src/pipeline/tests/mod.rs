//! Pipeline scenarios in Katran's style: an input packet, the tables, the expected
//! verdict and checks on the output packet. Inputs are built (by
//! [`crate::testkit::frames`]) and outputs are parsed with `etherparse`, an
//! implementation independent of our wire layer, so these tests do not just check
//! our parser against our emitter.
//!
//! One file per job of the pipeline: [`ingress`] (client -> EIP), [`returns`]
//! (region -> client), [`classify`] (what is not ours), and [`fuzz`] over all
//! their inputs.

mod acl;
mod adopt;
mod classify;
mod flood;
mod fuzz;
mod ingress;
mod lengths;
mod police;
mod prefetch;
mod protect;
mod returns;
mod services;

use super::*;
use crate::frame::PortId;
use crate::tables::spec::Protocol;
use crate::testkit::frames::FrameBuilder;
use crate::testkit::pop::{self, PopBuilder};
use crate::testkit::run_one as run;
use etherparse::{NetHeaders, PacketHeaders, TransportHeader};
use std::net::{Ipv4Addr, Ipv6Addr};

const CLIENT: [u8; 4] = [203, 0, 113, 2];
const EIP_1TO1: [u8; 4] = [192, 0, 2, 10];
const EIP_SERVICE: [u8; 4] = [192, 0, 2, 20];
const BACKEND: [u8; 4] = [10, 1, 0, 10];
const SERVICE_BACKEND: [u8; 4] = [10, 1, 0, 21];
const POP_VTEP: [u8; 4] = pop::POP_VTEP.octets();
const REGION_VTEP: [u8; 4] = pop::REGION_VTEP.octets();
const GATEWAY_MAC: [u8; 6] = pop::GATEWAY_MAC;
const INET_MAC: [u8; 6] = pop::INTERNET_MAC;
const BB_MAC: [u8; 6] = pop::BACKBONE_MAC;
const NEXT_HOP_MAC: [u8; 6] = [2, 0, 0, 0, 2, 2];
const REGION_INNER_MAC: [u8; 6] = pop::REGION_INNER_MAC;
const POP_INNER_MAC: [u8; 6] = pop::POP_INNER_MAC;
const VNI: u32 = pop::VNI;
const EIP_V6: &str = "2001:db8:e1::10";
const BACKEND_V6: &str = "fd00:1::10";
const CLIENT_V6: &str = "2001:db8:c::2";
const INET: PortId = 0;
const BACKBONE: PortId = 1;

/// One region `bj` over one path `p1` (MTU 1400); a 1:1 EIP, an EIP with a UDP/53
/// service on port 5353 of one backend, and an IPv6 1:1 EIP.
fn pop() -> PopBuilder {
    let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
    PopBuilder::new("test")
        .region(pop::region("bj", VNI, pop::REGION_VTEP))
        .path(pop::path("p1", "bj", "backbone", NEXT_HOP_MAC, 1400))
        .eip(pop::one_to_one(
            Ipv4Addr::from(EIP_1TO1),
            "bj",
            Ipv4Addr::from(BACKEND),
        ))
        .eip(pop::service_eip(
            Ipv4Addr::from(EIP_SERVICE),
            "bj",
            [pop::service(
                Protocol::Udp,
                53,
                [pop::backend(Ipv4Addr::from(SERVICE_BACKEND), Some(5353), 1)],
            )],
        ))
        .eip(pop::one_to_one(v6(EIP_V6), "bj", v6(BACKEND_V6)))
}

fn tables() -> Tables {
    pop().tables()
}

/// One path alone over a copy of `input` arriving on the Internet port: the
/// fast ingress path's verdict (`None`: left to the general path) with
/// `fast`, else the general path's; the frame as it was left, and the
/// pipeline's counters.
fn one_path(t: &Tables, input: &[u8], fast: bool) -> (Option<Verdict>, Vec<u8>, Counters) {
    one_path_with_headroom(t, input, fast, crate::testkit::HEADROOM)
}

/// [`one_path`] with `h` bytes in front of the frame.
fn one_path_with_headroom(
    t: &Tables,
    input: &[u8],
    fast: bool,
    h: usize,
) -> (Option<Verdict>, Vec<u8>, Counters) {
    let mut buf = vec![0u8; h + crate::testkit::BUFFER_LEN];
    buf[h..h + input.len()].copy_from_slice(input);
    let mut frame = Frame::new(&mut buf, h, input.len(), INET);
    let mut p = Pipeline::default();
    p.adopt(t);
    let v = if fast {
        p.fast_ingress(t, &mut frame, None)
    } else {
        Some(
            p.classify(Timestamp(1), t, &mut frame)
                .unwrap_or_else(Verdict::Drop),
        )
    };
    (v, frame.data().to_vec(), p.counters().clone())
}

/// A frame from the Internet gateway to our Internet port.
fn from_client() -> FrameBuilder {
    FrameBuilder::ethernet(GATEWAY_MAC, INET_MAC)
}

fn tcp_to(dst: [u8; 4], ttl: u8, payload: &[u8]) -> Vec<u8> {
    from_client()
        .ipv4(CLIENT, dst, ttl)
        .tcp(40000, 80)
        .seq(1)
        .build(payload)
}

/// An inner frame from the region's VXLAN device to us.
fn in_tunnel() -> FrameBuilder {
    FrameBuilder::ethernet(REGION_INNER_MAC, POP_INNER_MAC)
}

/// `inner` in VXLAN (`vni`) from `vtep` to our VTEP, over the backbone.
fn encapsulated(inner: &[u8], vtep: [u8; 4], vni: u32) -> Vec<u8> {
    FrameBuilder::ethernet(NEXT_HOP_MAC, BB_MAC)
        .ipv4(vtep, POP_VTEP, 64)
        .udp(50000, 4789)
        .vxlan(vni)
        .build(inner)
}

/// A backend's TCP reply to the client, as an inner frame.
fn return_tcp(from: [u8; 4], sport: u16, ttl: u8) -> Vec<u8> {
    in_tunnel()
        .ipv4(from, CLIENT, ttl)
        .tcp(sport, 40000)
        .seq(7)
        .build(b"hello")
}

/// What an ICMP error quotes of a frame: its IP header and 8 bytes.
fn quote(frame: &[u8]) -> Vec<u8> {
    let ip = &frame[14..];
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    ip[..header_len + 8].to_vec()
}

/// Checks every checksum of an IPv4/IPv6 packet (with TCP, UDP or ICMP) using
/// etherparse, and returns its parsed headers.
fn verify(frame: &[u8]) -> PacketHeaders<'_> {
    let h = PacketHeaders::from_ethernet_slice(frame).expect("etherparse must parse the output");
    let payload = h.payload.slice();
    match (&h.net, &h.transport) {
        (Some(NetHeaders::Ipv4(ip, _)), t) => {
            assert_eq!(
                ip.header_checksum,
                ip.calc_header_checksum(),
                "IPv4 header checksum"
            );
            match t {
                Some(TransportHeader::Tcp(tcp)) => assert_eq!(
                    tcp.checksum,
                    tcp.calc_checksum_ipv4(ip, payload).unwrap(),
                    "TCP checksum"
                ),
                Some(TransportHeader::Udp(udp)) if udp.checksum != 0 => assert_eq!(
                    udp.checksum,
                    udp.calc_checksum_ipv4(ip, payload).unwrap(),
                    "UDP checksum"
                ),
                Some(TransportHeader::Icmpv4(icmp)) => {
                    let mut again = icmp.clone();
                    again.update_checksum(payload);
                    assert_eq!(icmp.checksum, again.checksum, "ICMP checksum");
                }
                _ => {}
            }
        }
        (Some(NetHeaders::Ipv6(ip, _)), Some(TransportHeader::Tcp(tcp))) => {
            assert_eq!(
                tcp.checksum,
                tcp.calc_checksum_ipv6(ip, payload).unwrap(),
                "TCP checksum"
            )
        }
        (Some(NetHeaders::Ipv6(ip, _)), Some(TransportHeader::Icmpv6(icmp))) => {
            let again = etherparse::Icmpv6Header::with_checksum(
                icmp.icmp_type,
                ip.source,
                ip.destination,
                payload,
            )
            .unwrap();
            assert_eq!(icmp.checksum, again.checksum, "ICMPv6 checksum");
        }
        _ => {}
    }
    h
}

/// Splits a VXLAN frame into (outer headers checked, inner frame).
fn decapsulate(frame: &[u8]) -> &[u8] {
    let outer = verify(frame);
    let Some(NetHeaders::Ipv4(ip, _)) = &outer.net else {
        panic!("outer not IPv4")
    };
    assert_eq!(ip.source, POP_VTEP);
    assert_eq!(ip.destination, REGION_VTEP);
    assert!(ip.dont_fragment, "outer DF");
    assert_eq!(ip.total_len as usize, frame.len() - 14);
    let Some(TransportHeader::Udp(udp)) = &outer.transport else {
        panic!("outer not UDP")
    };
    assert_eq!(udp.destination_port, 4789);
    assert!(udp.source_port >= 49152);
    assert_eq!(udp.checksum, 0);
    assert_eq!(&frame[0..6], &NEXT_HOP_MAC);
    assert_eq!(&frame[6..12], &BB_MAC);
    let vx = &frame[42..50];
    assert_eq!(vx[0], 0x08, "VXLAN I flag");
    assert_eq!(u32::from_be_bytes([0, vx[4], vx[5], vx[6]]), VNI, "VNI");
    let inner = &frame[50..];
    assert_eq!(&inner[0..6], &REGION_INNER_MAC);
    assert_eq!(&inner[6..12], &POP_INNER_MAC);
    inner
}

/// One scenario: an input frame, the port it arrives on, the verdict it must get
/// and checks on the output frame and the counters.
struct Case {
    description: &'static str,
    input: Vec<u8>,
    port: PortId,
    verdict: Verdict,
    check: fn(&[u8], &Counters),
}

/// Runs each case through a fresh pipeline.
fn check_all(cases: Vec<Case>) {
    let t = tables();
    for case in cases {
        let (verdict, out, counters) = run(&t, &case.input, case.port);
        assert_eq!(verdict, case.verdict, "{}", case.description);
        (case.check)(&out, &counters);
    }
}

/// Every scenario's input.
fn all_inputs() -> Vec<Vec<u8>> {
    [ingress::cases(), returns::cases(), classify::cases()]
        .into_iter()
        .flatten()
        .map(|c| c.input)
        .collect()
}
