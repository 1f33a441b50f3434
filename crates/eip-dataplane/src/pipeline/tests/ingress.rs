//! Client -> EIP: DNAT, path choice, MSS clamping, encapsulation, and the ICMP
//! errors the POP sends back instead.

use super::*;

pub(super) fn cases() -> Vec<Case> {
    let syn = from_client()
        .ipv4(CLIENT, EIP_1TO1, 64)
        .tcp(40000, 80)
        .seq(1)
        .syn()
        .mss(1460)
        .build(&[]);
    let big_df = from_client()
        .ipv4(CLIENT, EIP_1TO1, 64)
        .dont_fragment(true)
        .udp(1, 2)
        .build(&[0u8; 1400]);
    let udp53 = from_client()
        .ipv4(CLIENT, EIP_SERVICE, 64)
        .udp(33333, 53)
        .build(b"query");
    let v6 = from_client()
        .ipv6(
            CLIENT_V6.parse::<Ipv6Addr>().unwrap().octets(),
            EIP_V6.parse::<Ipv6Addr>().unwrap().octets(),
            9,
        )
        .tcp(40000, 443)
        .seq(1)
        .build(b"v6");

    let sent_by_the_backend = FrameBuilder::ethernet(INET_MAC, GATEWAY_MAC)
        .ipv4(EIP_1TO1, CLIENT, 63)
        .tcp(80, 40000)
        .build(&[0u8; 1300]);
    let frag_needed = from_client()
        .ipv4([203, 0, 113, 254], EIP_1TO1, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1200 },
        ))
        .build(&quote(&sent_by_the_backend));

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
                assert_eq!(c.eip_in(0).packets, 1);
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
                assert_eq!(ip.destination, SERVICE_BACKEND);
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
            description:
                "an ICMP error about what the EIP sent goes to the backend, quote translated",
            input: frag_needed,
            port: INET,
            verdict: Verdict::Tx(BACKBONE),
            check: |out, c| {
                let inner = verify(decapsulate(out));
                let Some(NetHeaders::Ipv4(ip, _)) = &inner.net else {
                    panic!()
                };
                assert_eq!(ip.destination, BACKEND);
                let quoted = inner.payload.slice();
                let (q, _) = etherparse::Ipv4Header::from_slice(quoted).unwrap();
                assert_eq!((q.source, q.destination), (BACKEND, CLIENT));
                assert_eq!(q.header_checksum, q.calc_header_checksum());
                assert_eq!(c.happened(Event::IcmpErrorTranslated), 1);
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
    ]
}

#[test]
fn scenarios() {
    check_all(cases());
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

/// A SYN whose MSS the path would clamp, in a frame with less headroom than the
/// encapsulation takes: both paths drop it as `no_room` before rewriting or
/// counting anything (no clamp counted), and leave the frame as it came.
#[test]
fn no_headroom_drops_before_any_rewrite_on_both_paths() {
    let t = tables();
    let syn = from_client()
        .ipv4(CLIENT, EIP_1TO1, 64)
        .tcp(40000, 80)
        .seq(1)
        .syn()
        .mss(1460)
        .build(&[]);
    for fast in [true, false] {
        // 49 bytes in front of the frame: one short of the outer headers.
        let headroom = crate::tables::ENCAP_LEN - 14 - 1;
        let (v, out, c) = one_path_with_headroom(&t, &syn, fast, headroom);
        assert_eq!(v, Some(Verdict::Drop(DropReason::NoRoom)), "fast: {fast}");
        assert_eq!(out, syn, "fast: {fast}");
        assert_eq!(c.happened(Event::MssClamped), 0, "fast: {fast}");
        assert_eq!(c.happened(Event::Encapsulated), 0, "fast: {fast}");
    }
}
