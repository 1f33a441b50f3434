//! Region -> client through the tunnel: tunnel checks, decapsulation, SNAT back to
//! the EIP, and path-probe replies for the control thread.

use super::*;

pub(super) fn cases() -> Vec<Case> {
    let service_reply = in_tunnel()
        .ipv4(SERVICE_BACKEND, CLIENT, 64)
        .udp(5353, 33333)
        .build(b"answer");

    let sent_to_the_backend = in_tunnel()
        .ipv4(CLIENT, SERVICE_BACKEND, 63)
        .udp(33333, 5353)
        .build(b"query");
    let port_unreachable = in_tunnel()
        .ipv4(SERVICE_BACKEND, CLIENT, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ))
        .build(&quote(&sent_to_the_backend));

    vec![
        Case {
            description:
                "a backend's ICMP error about a service flow comes from the EIP, quoting it",
            input: encapsulated(&port_unreachable, REGION_VTEP, VNI),
            port: BACKBONE,
            verdict: Verdict::Tx(INET),
            check: |out, c| {
                let h = verify(out);
                let Some(NetHeaders::Ipv4(ip, _)) = &h.net else {
                    panic!()
                };
                assert_eq!((ip.source, ip.destination), (EIP_SERVICE, CLIENT));
                let (q, rest) = etherparse::Ipv4Header::from_slice(h.payload.slice()).unwrap();
                assert_eq!((q.source, q.destination), (CLIENT, EIP_SERVICE));
                assert_eq!(q.header_checksum, q.calc_header_checksum());
                assert_eq!(u16::from_be_bytes([rest[2], rest[3]]), 53, "service port");
                assert_eq!(c.happened(Event::IcmpErrorTranslated), 1);
            },
        },
        Case {
            description: "a return from the backend is decapsulated and SNATed to the EIP",
            input: encapsulated(&return_tcp(BACKEND, 80, 64), REGION_VTEP, VNI),
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
                assert_eq!(c.eip_out(0).packets, 1);
            },
        },
        Case {
            description: "a service backend's return gets the EIP and the service port back",
            input: encapsulated(&service_reply, REGION_VTEP, VNI),
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
            input: encapsulated(&return_tcp(BACKEND, 80, 64), [198, 51, 100, 99], VNI),
            port: BACKBONE,
            verdict: Verdict::Drop(DropReason::UnknownVtep),
            check: |_, _| {},
        },
        Case {
            description: "VXLAN with another VNI is dropped",
            input: encapsulated(&return_tcp(BACKEND, 80, 64), REGION_VTEP, VNI + 1),
            port: BACKBONE,
            verdict: Verdict::Drop(DropReason::WrongVni),
            check: |_, _| {},
        },
        Case {
            description: "VXLAN without the I flag is dropped",
            input: {
                let mut f = encapsulated(&return_tcp(BACKEND, 80, 64), REGION_VTEP, VNI);
                f[42] = 0;
                f
            },
            port: BACKBONE,
            verdict: Verdict::Drop(DropReason::BadVxlan),
            check: |_, _| {},
        },
        Case {
            description: "a return from an address that is no backend is dropped, not forwarded",
            input: encapsulated(&return_tcp([10, 1, 0, 99], 80, 64), REGION_VTEP, VNI),
            port: BACKBONE,
            verdict: Verdict::Drop(DropReason::UnknownBackend),
            check: |_, _| {},
        },
        Case {
            description: "a return whose TTL would expire is dropped",
            input: encapsulated(&return_tcp(BACKEND, 80, 1), REGION_VTEP, VNI),
            port: BACKBONE,
            verdict: Verdict::Drop(DropReason::TtlExpired),
            check: |_, _| {},
        },
    ]
}

#[test]
fn scenarios() {
    check_all(cases());
}

#[test]
fn probe_replies_go_to_the_control_thread() {
    let t = pop().probe_source(Ipv4Addr::new(10, 255, 0, 1)).tables();
    let reply = in_tunnel()
        .ipv4([10, 255, 0, 2], [10, 255, 0, 1], 64)
        .icmpv4_echo_reply(0, 7)
        .build(b"probe");
    let input = encapsulated(&reply, REGION_VTEP, VNI);
    let (verdict, _, c) = run(&t, &input, BACKBONE);
    assert_eq!(verdict, Verdict::ToControl);
    assert_eq!(c.happened(Event::ToControl), 1);
    // From an unknown VTEP it is dropped like any other tunnel traffic.
    let mut bad = input.clone();
    bad[26..30].copy_from_slice(&[198, 51, 100, 99]);
    let (verdict, _, _) = run(&t, &bad, BACKBONE);
    assert_eq!(verdict, Verdict::Drop(DropReason::UnknownVtep));
}

/// Runs `frames` (all from the backbone) as one batch; their verdicts.
fn one_batch(p: &mut Pipeline, t: &Tables, frames: &[Vec<u8>]) -> Vec<Verdict> {
    let from_backbone: Vec<(Vec<u8>, PortId)> =
        frames.iter().map(|f| (f.clone(), BACKBONE)).collect();
    super::prefetch::run_batches(p, t, &from_backbone, frames.len())
        .into_iter()
        .map(|(verdict, _)| verdict)
        .collect()
}

/// The fast path remembers the tunnel of the batch's last return: a return
/// through another tunnel, or through the same one after the tables changed,
/// is looked up again.
#[test]
fn the_remembered_tunnel_is_only_the_last_one_and_only_for_its_tables() {
    let good = encapsulated(&return_tcp(BACKEND, 80, 64), REGION_VTEP, VNI);
    let wrong_vni = encapsulated(&return_tcp(BACKEND, 80, 64), REGION_VTEP, VNI + 1);
    let unknown_vtep = encapsulated(&return_tcp(BACKEND, 80, 64), [198, 51, 100, 99], VNI);
    let before = tables();
    let mut p = Pipeline::default();
    let verdicts = one_batch(
        &mut p,
        &before,
        &[
            good.clone(),
            wrong_vni.clone(),
            good.clone(),
            unknown_vtep,
            good.clone(),
        ],
    );
    assert_eq!(verdicts[0], Verdict::Tx(INET));
    assert!(!matches!(verdicts[1], Verdict::Tx(_)), "{:?}", verdicts[1]);
    assert_eq!(verdicts[2], Verdict::Tx(INET));
    assert!(!matches!(verdicts[3], Verdict::Tx(_)), "{:?}", verdicts[3]);
    assert_eq!(verdicts[4], Verdict::Tx(INET));

    // The region moves to another VNI: the old tunnel no longer leads there,
    // though the same pipeline took it in its previous batch.
    let moved = PopBuilder::new("test")
        .region(pop::region("bj", VNI + 1, pop::REGION_VTEP))
        .path(pop::path("p1", "bj", "backbone", NEXT_HOP_MAC, 1400))
        .eip(pop::one_to_one(
            Ipv4Addr::from(EIP_1TO1),
            "bj",
            Ipv4Addr::from(BACKEND),
        ))
        .tables();
    let verdicts = one_batch(&mut p, &moved, &[good, wrong_vni]);
    assert!(!matches!(verdicts[0], Verdict::Tx(_)), "{:?}", verdicts[0]);
    assert_eq!(verdicts[1], Verdict::Tx(INET));
}
