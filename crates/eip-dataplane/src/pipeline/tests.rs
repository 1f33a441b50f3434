//! Pipeline scenarios in Katran's style: an input packet, the tables, the expected
//! verdict and checks on the output packet. Inputs are built and outputs are parsed
//! with `etherparse`, an implementation independent of our wire layer, so these
//! tests do not just check our parser against our emitter.

use super::*;
use crate::frame::PortId;
use crate::tables::spec::*;
use etherparse::{NetHeaders, PacketBuilder, PacketHeaders, TransportHeader};
use std::net::{Ipv4Addr, Ipv6Addr};

const CLIENT: [u8; 4] = [203, 0, 113, 2];
const EIP_1TO1: [u8; 4] = [192, 0, 2, 10];
const EIP_SERVICE: [u8; 4] = [192, 0, 2, 20];
const BACKEND: [u8; 4] = [10, 1, 0, 10];
const POP_VTEP: [u8; 4] = [198, 51, 100, 1];
const REGION_VTEP: [u8; 4] = [198, 51, 100, 2];
const GATEWAY_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const INET_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const BB_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const NEXT_HOP_MAC: [u8; 6] = [2, 0, 0, 0, 2, 2];
const REGION_INNER_MAC: [u8; 6] = [2, 0, 0, 0, 0x10, 1];
const POP_INNER_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const EIP_V6: &str = "2001:db8:e1::10";
const BACKEND_V6: &str = "fd00:1::10";
const CLIENT_V6: &str = "2001:db8:c::2";
const INET: PortId = 0;
const BACKBONE: PortId = 1;

fn spec() -> PopSpec {
    let mac = MacAddr;
    PopSpec {
        pop: PopSection {
            name: "test".into(),
            vtep: Ipv4Addr::from(POP_VTEP),
            extra_vteps: vec![],
            vxlan_port: 4789,
            inner_mac: mac(POP_INNER_MAC),
            outer_ttl: 64,
            probe_source: None,
        },
        ports: vec![
            PortSpec {
                name: "internet".into(),
                role: PortRole::Internet,
                interface: None,
                mac: mac(INET_MAC),
                gateway_mac: Some(mac(GATEWAY_MAC)),
                gateway: None,
            },
            PortSpec {
                name: "backbone".into(),
                role: PortRole::Backbone,
                interface: None,
                mac: mac(BB_MAC),
                gateway_mac: None,
                gateway: None,
            },
        ],
        regions: vec![RegionSpec {
            name: "bj".into(),
            vni: 100,
            vtep: Ipv4Addr::from(REGION_VTEP),
            inner_mac: mac(REGION_INNER_MAC),
            probe_target: None,
        }],
        paths: vec![PathSpec {
            name: "p1".into(),
            region: "bj".into(),
            port: "backbone".into(),
            next_hop_mac: Some(mac(NEXT_HOP_MAC)),
            next_hop: None,
            source: None,
            destination: None,
            mtu: 1400,
            weight: 1,
            state: PathState::Up,
        }],
        eips: vec![
            EipSpec {
                address: Ipv4Addr::from(EIP_1TO1).into(),
                region: "bj".into(),
                backend: Some(Ipv4Addr::from(BACKEND).into()),
                services: vec![],
            },
            EipSpec {
                address: Ipv4Addr::from(EIP_SERVICE).into(),
                region: "bj".into(),
                backend: None,
                services: vec![ServiceSpec {
                    protocol: Protocol::Udp,
                    port: 53,
                    backends: vec![BackendSpec {
                        address: Ipv4Addr::new(10, 1, 0, 21).into(),
                        port: Some(5353),
                        weight: 1,
                    }],
                }],
            },
            EipSpec {
                address: EIP_V6.parse().unwrap(),
                region: "bj".into(),
                backend: Some(BACKEND_V6.parse().unwrap()),
                services: vec![],
            },
        ],
    }
}

fn tables() -> Tables {
    Tables::build(&spec(), 1).unwrap()
}

/// Runs one frame through a fresh pipeline; returns the verdict, the output bytes
/// and the counters.
fn run(t: &Tables, input: &[u8], port: PortId) -> (Verdict, Vec<u8>, Counters) {
    let mut buf = vec![0u8; 2048];
    buf[256..256 + input.len()].copy_from_slice(input);
    let mut frames = [Frame::new(&mut buf, 256, input.len(), port)];
    let mut verdicts = [Verdict::ToKernel];
    let mut p = Pipeline::default();
    p.process(Timestamp(1_000_000_000), t, &mut frames, &mut verdicts);
    (verdicts[0], frames[0].data().to_vec(), p.counters().clone())
}

fn tcp_to(dst: [u8; 4], ttl: u8, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(GATEWAY_MAC, INET_MAC)
        .ipv4(CLIENT, dst, ttl)
        .tcp(40000, 80, 1, 1000);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
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
    assert_eq!(u32::from_be_bytes([0, vx[4], vx[5], vx[6]]), 100, "VNI");
    let inner = &frame[50..];
    assert_eq!(&inner[0..6], &REGION_INNER_MAC);
    assert_eq!(&inner[6..12], &POP_INNER_MAC);
    inner
}

fn encapsulated(
    reply_from: [u8; 4],
    to: [u8; 4],
    inner_ip_and_up: &[u8],
    vtep: [u8; 4],
    vni: u32,
) -> Vec<u8> {
    // Inner frame built by etherparse, outer headers by hand (etherparse has no VXLAN).
    let _ = (reply_from, to);
    let mut inner = Vec::new();
    inner.extend_from_slice(&POP_INNER_MAC);
    inner.extend_from_slice(&REGION_INNER_MAC);
    inner.extend_from_slice(inner_ip_and_up);
    let mut vx = vec![0x08, 0, 0, 0];
    vx.extend_from_slice(&(vni << 8).to_be_bytes());
    vx.extend_from_slice(&inner);
    let b = PacketBuilder::ethernet2(NEXT_HOP_MAC, BB_MAC)
        .ipv4(vtep, POP_VTEP, 64)
        .udp(50000, 4789);
    let mut out = Vec::new();
    b.write(&mut out, &vx).unwrap();
    out
}

/// Bytes from the inner ethertype on of an etherparse-built frame.
fn without_macs(frame: Vec<u8>) -> Vec<u8> {
    frame[12..].to_vec()
}

fn return_tcp(from: [u8; 4], sport: u16, ttl: u8) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2([0; 6], [0; 6])
        .ipv4(from, CLIENT, ttl)
        .tcp(sport, 40000, 7, 1000)
        .write(&mut f, b"hello")
        .unwrap();
    without_macs(f)
}

/// Sets DF on an etherparse-built IPv4 frame and lets etherparse redo the checksum.
fn set_dont_fragment(frame: &mut [u8]) {
    let (mut ip, _) = etherparse::Ipv4Header::from_slice(&frame[14..]).unwrap();
    ip.dont_fragment = true;
    ip.header_checksum = ip.calc_header_checksum();
    frame[14..34].copy_from_slice(&ip.to_bytes());
}

struct Case {
    description: &'static str,
    input: Vec<u8>,
    port: PortId,
    verdict: Verdict,
    check: fn(&[u8], &Counters),
}

fn cases() -> Vec<Case> {
    let mut syn = Vec::new();
    PacketBuilder::ethernet2(GATEWAY_MAC, INET_MAC)
        .ipv4(CLIENT, EIP_1TO1, 64)
        .tcp(40000, 80, 1, 1000)
        .syn()
        .options(&[etherparse::TcpOptionElement::MaximumSegmentSize(1460)])
        .unwrap()
        .write(&mut syn, &[])
        .unwrap();
    let mut big_df = Vec::new();
    PacketBuilder::ethernet2(GATEWAY_MAC, INET_MAC)
        .ipv4(CLIENT, EIP_1TO1, 64)
        .udp(1, 2)
        .write(&mut big_df, &[0u8; 1400])
        .unwrap();
    set_dont_fragment(&mut big_df);
    let mut udp53 = Vec::new();
    PacketBuilder::ethernet2(GATEWAY_MAC, INET_MAC)
        .ipv4(CLIENT, EIP_SERVICE, 64)
        .udp(33333, 53)
        .write(&mut udp53, b"query")
        .unwrap();
    let mut v6 = Vec::new();
    PacketBuilder::ethernet2(GATEWAY_MAC, INET_MAC)
        .ipv6(
            CLIENT_V6.parse::<Ipv6Addr>().unwrap().octets(),
            EIP_V6.parse::<Ipv6Addr>().unwrap().octets(),
            9,
        )
        .tcp(40000, 443, 1, 1000)
        .write(&mut v6, b"v6")
        .unwrap();
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&GATEWAY_MAC);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);

    vec![
        Case {
            description:
                "TCP to a 1:1 EIP is DNATed, TTL decremented, VXLAN-encapsulated to the region",
            input: tcp_to(EIP_1TO1, 64, b"GET / HTTP/1.1\r\n\r\n"),
            port: INET,
            verdict: Verdict::Tx(BACKBONE),
            check: |out, c| {
                let inner = verify(decapsulate(out));
                let Some(NetHeaders::Ipv4(ip, _)) = inner.net else {
                    panic!()
                };
                assert_eq!(
                    (ip.source, ip.destination, ip.time_to_live),
                    (CLIENT, BACKEND, 63)
                );
                assert_eq!(inner.payload.slice(), b"GET / HTTP/1.1\r\n\r\n");
                assert_eq!(c.happened(Event::Encapsulated), 1);
                assert_eq!(c.eip_in[0].packets, 1);
            },
        },
        Case {
            description: "UDP to a service is sent to its backend with the backend's port",
            input: udp53,
            port: INET,
            verdict: Verdict::Tx(BACKBONE),
            check: |out, _| {
                let inner = verify(decapsulate(out));
                let Some(NetHeaders::Ipv4(ip, _)) = inner.net else {
                    panic!()
                };
                assert_eq!(ip.destination, [10, 1, 0, 21]);
                let Some(TransportHeader::Udp(udp)) = inner.transport else {
                    panic!()
                };
                assert_eq!((udp.source_port, udp.destination_port), (33333, 5353));
            },
        },
        Case {
            description: "a TCP SYN's MSS is clamped to the path MTU (1400 - 50 - 40)",
            input: syn,
            port: INET,
            verdict: Verdict::Tx(BACKBONE),
            check: |out, c| {
                let inner = verify(decapsulate(out));
                let Some(TransportHeader::Tcp(tcp)) = inner.transport else {
                    panic!()
                };
                let mss = tcp.options_iterator().find_map(|o| match o {
                    Ok(etherparse::TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
                    _ => None,
                });
                assert_eq!(mss, Some(1310));
                assert_eq!(c.happened(Event::MssClamped), 1);
            },
        },
        Case {
            description:
                "a DF packet too big for the path gets ICMP fragmentation-needed from the EIP",
            input: big_df,
            port: INET,
            verdict: Verdict::Tx(INET),
            check: |out, c| {
                let h = verify(out);
                let Some(NetHeaders::Ipv4(ip, _)) = &h.net else {
                    panic!()
                };
                assert_eq!((ip.source, ip.destination), (EIP_1TO1, CLIENT));
                assert_eq!(&out[0..6], &GATEWAY_MAC);
                let Some(TransportHeader::Icmpv4(icmp)) = &h.transport else {
                    panic!()
                };
                assert_eq!(
                    icmp.icmp_type,
                    etherparse::Icmpv4Type::DestinationUnreachable(
                        etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                            next_hop_mtu: 1350
                        }
                    )
                );
                assert!(out.len() <= 14 + 576);
                assert_eq!(c.dropped(DropReason::TooBig), 1);
                assert_eq!(c.happened(Event::IcmpTooBigSent), 1);
            },
        },
        Case {
            description: "TTL 1 to an EIP gets ICMP time exceeded, quoting the packet as received",
            input: tcp_to(EIP_1TO1, 1, b"x"),
            port: INET,
            verdict: Verdict::Tx(INET),
            check: |out, c| {
                let h = verify(out);
                let Some(TransportHeader::Icmpv4(icmp)) = &h.transport else {
                    panic!()
                };
                assert!(matches!(
                    icmp.icmp_type,
                    etherparse::Icmpv4Type::TimeExceeded(_)
                ));
                let quoted = h.payload.slice();
                assert_eq!(&quoted[12..16], &CLIENT);
                assert_eq!(&quoted[16..20], &EIP_1TO1);
                assert_eq!(c.dropped(DropReason::TtlExpired), 1);
            },
        },
        Case {
            description: "IPv6 TCP to a v6 EIP is NAT66ed and encapsulated in IPv4 VXLAN",
            input: v6,
            port: INET,
            verdict: Verdict::Tx(BACKBONE),
            check: |out, _| {
                let inner = verify(decapsulate(out));
                let Some(NetHeaders::Ipv6(ip, _)) = inner.net else {
                    panic!()
                };
                assert_eq!(
                    Ipv6Addr::from(ip.destination),
                    BACKEND_V6.parse::<Ipv6Addr>().unwrap()
                );
                assert_eq!(ip.hop_limit, 8);
            },
        },
        Case {
            description: "a return from the backend is decapsulated and SNATed to the EIP",
            input: encapsulated(
                BACKEND,
                CLIENT,
                &return_tcp(BACKEND, 80, 64),
                REGION_VTEP,
                100,
            ),
            port: BACKBONE,
            verdict: Verdict::Tx(INET),
            check: |out, c| {
                let h = verify(out);
                assert_eq!(&out[0..6], &GATEWAY_MAC);
                assert_eq!(&out[6..12], &INET_MAC);
                let Some(NetHeaders::Ipv4(ip, _)) = &h.net else {
                    panic!()
                };
                assert_eq!(
                    (ip.source, ip.destination, ip.time_to_live),
                    (EIP_1TO1, CLIENT, 63)
                );
                assert_eq!(h.payload.slice(), b"hello");
                assert_eq!(c.eip_out[0].packets, 1);
            },
        },
        Case {
            description: "a service backend's return gets the EIP and the service port back",
            input: {
                let mut f = Vec::new();
                PacketBuilder::ethernet2([0; 6], [0; 6])
                    .ipv4([10, 1, 0, 21], CLIENT, 64)
                    .udp(5353, 33333)
                    .write(&mut f, b"answer")
                    .unwrap();
                encapsulated([10, 1, 0, 21], CLIENT, &without_macs(f), REGION_VTEP, 100)
            },
            port: BACKBONE,
            verdict: Verdict::Tx(INET),
            check: |out, _| {
                let h = verify(out);
                let Some(NetHeaders::Ipv4(ip, _)) = &h.net else {
                    panic!()
                };
                assert_eq!(ip.source, EIP_SERVICE);
                let Some(TransportHeader::Udp(udp)) = &h.transport else {
                    panic!()
                };
                assert_eq!(udp.source_port, 53);
            },
        },
        Case {
            description: "VXLAN from an unknown VTEP is dropped",
            input: encapsulated(
                BACKEND,
                CLIENT,
                &return_tcp(BACKEND, 80, 64),
                [198, 51, 100, 99],
                100,
            ),
            port: BACKBONE,
            verdict: Verdict::Drop(DropReason::UnknownVtep),
            check: |_, _| {},
        },
        Case {
            description: "VXLAN with another VNI is dropped",
            input: encapsulated(
                BACKEND,
                CLIENT,
                &return_tcp(BACKEND, 80, 64),
                REGION_VTEP,
                101,
            ),
            port: BACKBONE,
            verdict: Verdict::Drop(DropReason::WrongVni),
            check: |_, _| {},
        },
        Case {
            description: "a return from an address that is no backend is dropped, not forwarded",
            input: encapsulated(
                BACKEND,
                CLIENT,
                &return_tcp([10, 1, 0, 99], 80, 64),
                REGION_VTEP,
                100,
            ),
            port: BACKBONE,
            verdict: Verdict::Drop(DropReason::UnknownBackend),
            check: |_, _| {},
        },
        Case {
            description: "a return whose TTL would expire is dropped",
            input: encapsulated(
                BACKEND,
                CLIENT,
                &return_tcp(BACKEND, 80, 1),
                REGION_VTEP,
                100,
            ),
            port: BACKBONE,
            verdict: Verdict::Drop(DropReason::TtlExpired),
            check: |_, _| {},
        },
        Case {
            description: "ARP goes to the kernel",
            input: arp,
            port: INET,
            verdict: Verdict::ToKernel,
            check: |_, c| assert_eq!(c.happened(Event::ToKernel), 1),
        },
        Case {
            description: "traffic to an address that is no EIP goes to the kernel",
            input: tcp_to([203, 0, 113, 1], 64, b"ssh"),
            port: INET,
            verdict: Verdict::ToKernel,
            check: |_, _| {},
        },
        Case {
            description: "a truncated IPv4 header is dropped as truncated",
            input: tcp_to(EIP_1TO1, 64, b"")[..14 + 12].to_vec(),
            port: INET,
            verdict: Verdict::Drop(DropReason::Truncated),
            check: |_, _| {},
        },
        Case {
            description: "an IPv4 total length beyond the frame is a bad header",
            input: {
                let mut f = tcp_to(EIP_1TO1, 64, b"abc");
                f[16..18].copy_from_slice(&2000u16.to_be_bytes());
                f
            },
            port: INET,
            verdict: Verdict::Drop(DropReason::BadIpHeader),
            check: |_, _| {},
        },
    ]
}

#[test]
fn scenarios() {
    let t = tables();
    for case in cases() {
        let (verdict, out, counters) = run(&t, &case.input, case.port);
        assert_eq!(verdict, case.verdict, "{}", case.description);
        (case.check)(&out, &counters);
    }
}

#[test]
fn ethernet_padding_is_not_forwarded() {
    let t = tables();
    let mut input = tcp_to(EIP_1TO1, 64, b"");
    let ip_len = input.len() - 14;
    input.resize(60, 0xEE);
    let (verdict, out, _) = run(&t, &input, INET);
    assert_eq!(verdict, Verdict::Tx(BACKBONE));
    assert_eq!(out.len(), 64 + ip_len);
}

#[test]
fn a_flow_always_takes_the_same_backend_and_outer_port() {
    let t = tables();
    let (_, a, _) = run(&t, &tcp_to(EIP_1TO1, 64, b"1"), INET);
    let (_, b, _) = run(&t, &tcp_to(EIP_1TO1, 64, b"22"), INET);
    assert_eq!(
        a[34..36],
        b[34..36],
        "outer UDP source port follows the flow"
    );
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn cases() -> u32 {
        std::env::var("EIP_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000)
    }

    /// Valid packets of every kind the pipeline handles, to mutate.
    fn seeds() -> Vec<Vec<u8>> {
        let mut s: Vec<Vec<u8>> = super::cases().into_iter().map(|c| c.input).collect();
        s.push(tcp_to(EIP_1TO1, 64, &[7u8; 200]));
        s
    }

    fn run_all(t: &Tables, frame: &[u8]) {
        for port in [INET, BACKBONE] {
            let (verdict, out, c) = run(t, frame, port);
            assert_eq!(c.happened(Event::Rx), 1);
            if let Verdict::Tx(p) = verdict {
                assert!((p as usize) < t.ports.len());
                assert!(out.len() >= 14);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        #[test]
        fn arbitrary_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..200)) {
            run_all(&tables(), &frame);
        }

        #[test]
        fn mutated_packets_never_panic(
            seed in 0usize..64,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let seeds = seeds();
            let mut frame = seeds[seed % seeds.len()].clone();
            for (at, value) in edits {
                let i = at % frame.len();
                frame[i] = value;
            }
            let keep = cut % (frame.len() + 1);
            if keep > 0 && cut % 3 == 0 {
                frame.truncate(keep);
            }
            run_all(&tables(), &frame);
        }
    }
}

#[test]
fn probe_replies_go_to_the_control_thread() {
    let mut s = spec();
    s.pop.probe_source = Some(Ipv4Addr::new(10, 255, 0, 1));
    let t = Tables::build(&s, 1).unwrap();
    let mut reply = Vec::new();
    PacketBuilder::ethernet2([0; 6], [0; 6])
        .ipv4([10, 255, 0, 2], [10, 255, 0, 1], 64)
        .icmpv4_echo_reply(0, 7)
        .write(&mut reply, b"probe")
        .unwrap();
    let input = encapsulated(
        [10, 255, 0, 2],
        [10, 255, 0, 1],
        &without_macs(reply),
        REGION_VTEP,
        100,
    );
    let (verdict, _, c) = run(&t, &input, BACKBONE);
    assert_eq!(verdict, Verdict::ToControl);
    assert_eq!(c.happened(Event::ToControl), 1);
    // From an unknown VTEP it is dropped like any other tunnel traffic.
    let mut bad = input.clone();
    bad[26..30].copy_from_slice(&[198, 51, 100, 99]);
    let (verdict, _, _) = run(&t, &bad, BACKBONE);
    assert_eq!(verdict, Verdict::Drop(DropReason::UnknownVtep));
}
