//! Edge protection, table-driven: every martian class on the source side (to an
//! EIP) and the destination side (returns), IPv4 and IPv6. Each IPv4 case runs
//! untagged (the fast path's shape) and VLAN-tagged (only the general path takes
//! it): both must give the same verdict, and the fast path must leave every
//! refused frame to the general path, which counts it.

use super::*;
use crate::protect::Prefix;
use crate::DropReason::{
    BogonSource, EipOnBackbone, MartianDestination, SpoofedEipSource, SpoofedPopSource, TunnelPort,
};
use std::net::IpAddr;

const PROBE_SOURCE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 9);

fn protected() -> PopBuilder {
    pop().probe_source(PROBE_SOURCE)
}

/// `frame` with an 802.1Q tag after the MACs.
fn tagged(frame: &[u8]) -> Vec<u8> {
    let mut v = frame[..12].to_vec();
    v.extend([0x81, 0x00, 0x00, 0x07]);
    v.extend(&frame[12..]);
    v
}

/// Expected verdict of a case: forwarded, or dropped for this reason.
type Expect = Option<DropReason>;

fn check(t: &Tables, name: &str, frame: &[u8], port: PortId, expect: Expect) {
    let (verdict, _, counters) = run(t, frame, port);
    match expect {
        None => assert!(matches!(verdict, Verdict::Tx(_)), "{name}: {verdict:?}"),
        Some(r) => {
            assert_eq!(verdict, Verdict::Drop(r), "{name}");
            assert_eq!(counters.dropped(r), 1, "{name}: counted");
        }
    }
}

/// The fast path's own answer: `None` (general path) for every refused frame.
fn fast(t: &Tables, frame: &[u8], port: PortId, ingress: bool) -> Option<Verdict> {
    let mut buf = vec![0u8; crate::testkit::BUFFER_LEN];
    let head = crate::testkit::HEADROOM;
    buf[head..head + frame.len()].copy_from_slice(frame);
    let mut f = Frame::new(&mut buf, head, frame.len(), port);
    let mut p = Pipeline::default();
    p.adopt(t);
    if ingress {
        p.fast_ingress(t, &mut f, None)
    } else {
        p.fast_return(t, &mut f)
    }
}

fn v4(s: &str) -> [u8; 4] {
    s.parse::<Ipv4Addr>().unwrap().octets()
}

/// (address, expected verdict when it is a client's source).
fn v4_sources() -> Vec<(&'static str, Expect)> {
    vec![
        ("0.0.0.0", Some(BogonSource)),
        ("0.255.1.2", Some(BogonSource)),
        ("10.1.2.3", Some(BogonSource)),
        ("100.64.0.1", Some(BogonSource)),
        ("100.127.255.255", Some(BogonSource)),
        ("127.0.0.1", Some(BogonSource)),
        ("169.254.1.1", Some(BogonSource)),
        ("172.16.0.1", Some(BogonSource)),
        ("172.31.255.255", Some(BogonSource)),
        ("192.0.0.9", Some(BogonSource)),
        ("192.168.1.1", Some(BogonSource)),
        ("198.18.0.1", Some(BogonSource)),
        ("198.19.255.255", Some(BogonSource)),
        ("224.0.0.1", Some(BogonSource)),
        ("239.255.255.255", Some(BogonSource)),
        ("240.0.0.1", Some(BogonSource)),
        ("255.255.255.255", Some(BogonSource)),
        ("192.0.2.10", Some(SpoofedEipSource)),
        ("192.0.2.20", Some(SpoofedEipSource)),
        ("198.51.100.1", Some(SpoofedPopSource)),
        ("198.51.100.2", Some(SpoofedPopSource)),
        ("198.51.100.9", Some(SpoofedPopSource)),
        // Next to the classes, and documentation space (not bogons: see
        // `protect::martian`).
        ("203.0.113.2", None),
        ("8.8.8.8", None),
        ("1.0.0.1", None),
        ("11.0.0.1", None),
        ("100.63.255.255", None),
        ("100.128.0.0", None),
        ("172.15.255.255", None),
        ("172.32.0.0", None),
        ("192.0.1.255", None),
        ("192.0.2.11", None),
        ("192.169.0.1", None),
        ("198.17.255.255", None),
        ("198.20.0.0", None),
        ("198.51.100.3", None),
        ("223.255.255.255", None),
    ]
}

fn v6_addresses(eip: &'static str) -> Vec<(&'static str, Expect)> {
    vec![
        ("::", Some(BogonSource)),
        ("::1", Some(BogonSource)),
        ("::ffff:203.0.113.2", Some(BogonSource)),
        ("100::1", Some(BogonSource)),
        ("64:ff9b:1::1", Some(BogonSource)),
        ("fe80::1", Some(BogonSource)),
        ("fc00::1", Some(BogonSource)),
        ("fd00:1::99", Some(BogonSource)),
        ("ff02::1", Some(BogonSource)),
        ("4000::1", Some(BogonSource)),
        (eip, Some(SpoofedEipSource)),
        (CLIENT_V6, None),
        ("2600::1", None),
        ("64:ff9b::808:808", None),
        ("3fff:ffff::1", None),
    ]
}

#[test]
fn sources_to_an_eip_by_class_both_paths_agree() {
    let t = protected().tables();
    for (src, expect) in v4_sources() {
        for frame in [
            from_client()
                .ipv4(v4(src), EIP_1TO1, 64)
                .tcp(40000, 80)
                .seq(1)
                .build(b"x"),
            from_client()
                .ipv4(v4(src), EIP_1TO1, 64)
                .udp(40000, 53)
                .build(b"x"),
        ] {
            check(&t, &format!("{src} untagged"), &frame, INET, expect);
            check(&t, &format!("{src} tagged"), &tagged(&frame), INET, expect);
            let fast = fast(&t, &frame, INET, true);
            match expect {
                Some(_) => assert_eq!(fast, None, "{src}: fast path leaves it"),
                None => assert!(
                    matches!(fast, Some(Verdict::Tx(_))),
                    "{src}: fast path takes it"
                ),
            }
        }
    }
}

#[test]
fn ipv6_sources_to_an_eip_by_class() {
    let t = protected().tables();
    let eip: [u8; 16] = EIP_V6.parse::<Ipv6Addr>().unwrap().octets();
    for (src, expect) in v6_addresses(EIP_V6) {
        let src = src.parse::<Ipv6Addr>().unwrap().octets();
        let frame = from_client()
            .ipv6(src, eip, 64)
            .tcp(40000, 80)
            .seq(1)
            .build(b"x");
        check(&t, &format!("{src:?}"), &frame, INET, expect);
    }
}

/// A backend's reply toward `dst` (v4), in the tunnel.
fn return_to(dst: [u8; 4]) -> Vec<u8> {
    let inner = in_tunnel()
        .ipv4(BACKEND, dst, 64)
        .tcp(80, 40000)
        .seq(7)
        .build(b"hi");
    encapsulated(&inner, REGION_VTEP, VNI)
}

#[test]
fn returns_toward_martians_by_class_both_paths_agree() {
    let t = protected().tables();
    for (dst, expect) in v4_sources() {
        // To the probe source: a backend check's answer, the control
        // thread's (`tests::returns`), not a return.
        if v4(dst) == PROBE_SOURCE.octets() {
            continue;
        }
        let expect = expect.map(|_| MartianDestination);
        let frame = return_to(v4(dst));
        check(&t, &format!("{dst} untagged"), &frame, BACKBONE, expect);
        check(
            &t,
            &format!("{dst} tagged"),
            &tagged(&frame),
            BACKBONE,
            expect,
        );
        let fast = fast(&t, &frame, BACKBONE, false);
        match expect {
            Some(_) => assert_eq!(fast, None, "{dst}: fast path leaves it"),
            None => assert!(
                matches!(fast, Some(Verdict::Tx(_))),
                "{dst}: fast path takes it"
            ),
        }
    }
    let backend: [u8; 16] = BACKEND_V6.parse::<Ipv6Addr>().unwrap().octets();
    for (dst, expect) in v6_addresses(EIP_V6) {
        let expect = expect.map(|_| MartianDestination);
        let d = dst.parse::<Ipv6Addr>().unwrap().octets();
        let inner = in_tunnel()
            .ipv6(backend, d, 64)
            .tcp(80, 40000)
            .seq(7)
            .build(b"hi");
        check(
            &t,
            dst,
            &encapsulated(&inner, REGION_VTEP, VNI),
            BACKBONE,
            expect,
        );
    }
}

#[test]
fn frames_to_an_eip_on_the_backbone_are_not_ingress() {
    let t = protected().tables();
    let frame = tcp_to(EIP_1TO1, 64, b"x");
    check(&t, "untagged", &frame, BACKBONE, Some(EipOnBackbone));
    check(&t, "tagged", &tagged(&frame), BACKBONE, Some(EipOnBackbone));
    assert_eq!(fast(&t, &frame, BACKBONE, true), None);
}

#[test]
fn udp_to_the_tunnel_port_needs_an_opt_out() {
    let frame = from_client()
        .ipv4(CLIENT, EIP_1TO1, 64)
        .udp(40000, 4789)
        .build(&[8, 0, 0, 0, 0, 0, 1, 0]);
    check(
        &protected().tables(),
        "default",
        &frame,
        INET,
        Some(TunnelPort),
    );
    check(
        &protected().tables(),
        "tagged",
        &tagged(&frame),
        INET,
        Some(TunnelPort),
    );
    let open = protected()
        .edit(|s| s.protection.allow_tunnel_port = true)
        .tables();
    check(&open, "pop-wide opt-out", &frame, INET, None);
    let one = protected()
        .edit(|s| s.protection.tunnel_port_eips = vec![IpAddr::from(EIP_1TO1)])
        .tables();
    check(&one, "this EIP opted out", &frame, INET, None);
    let other = protected()
        .edit(|s| s.protection.tunnel_port_eips = vec![IpAddr::from(EIP_SERVICE)])
        .tables();
    check(
        &other,
        "another EIP opted out",
        &frame,
        INET,
        Some(TunnelPort),
    );
    // Other UDP ports and TCP to 4789 are not the tunnel.
    let tcp = from_client()
        .ipv4(CLIENT, EIP_1TO1, 64)
        .tcp(40000, 4789)
        .seq(1)
        .build(b"x");
    check(&protected().tables(), "tcp", &tcp, INET, None);
}

#[test]
fn allow_sources_exempts_bogons_but_never_our_addresses() {
    let t = protected()
        .edit(|s| {
            s.protection.allow_sources = ["10.0.0.0/8", "198.51.100.0/24", "fd00::/8"]
                .iter()
                .map(|p| Prefix::parse(p).unwrap())
                .collect();
        })
        .tables();
    let to_eip = |src: &str| {
        from_client()
            .ipv4(v4(src), EIP_1TO1, 64)
            .tcp(1, 80)
            .seq(1)
            .build(b"x")
    };
    check(&t, "allowed private", &to_eip("10.9.9.9"), INET, None);
    check(
        &t,
        "still bogon",
        &to_eip("192.168.0.1"),
        INET,
        Some(BogonSource),
    );
    check(
        &t,
        "our VTEP",
        &to_eip("198.51.100.1"),
        INET,
        Some(SpoofedPopSource),
    );
    check(&t, "allowed doc", &to_eip("198.51.100.77"), INET, None);
    check(
        &t,
        "our EIP",
        &to_eip("192.0.2.20"),
        INET,
        Some(SpoofedEipSource),
    );
    let eip: [u8; 16] = EIP_V6.parse::<Ipv6Addr>().unwrap().octets();
    let src: [u8; 16] = "fd00::5".parse::<Ipv6Addr>().unwrap().octets();
    let frame = from_client()
        .ipv6(src, eip, 64)
        .tcp(1, 80)
        .seq(1)
        .build(b"x");
    check(&t, "allowed ULA", &frame, INET, None);
    // The allowed prefix is a fine destination for returns too.
    check(
        &t,
        "return to allowed",
        &return_to(v4("10.9.9.9")),
        BACKBONE,
        None,
    );
}

#[test]
fn disabled_protection_forwards_what_it_would_drop() {
    let t = protected().edit(|s| s.protection.enabled = false).tables();
    let frame = from_client()
        .ipv4(v4("10.1.2.3"), EIP_1TO1, 64)
        .tcp(1, 80)
        .seq(1)
        .build(b"x");
    check(&t, "bogon", &frame, INET, None);
    check(
        &t,
        "return to bogon",
        &return_to(v4("127.0.0.1")),
        BACKBONE,
        None,
    );
}
