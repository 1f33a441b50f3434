//! Per-EIP access lists through the pipeline: the fast and the general path
//! decide alike, first match wins, the default, boundary prefixes and port
//! edges, IPv6, fragments (no ports), per-rule counters, and nothing is
//! answered to a refused source.

use super::*;
use crate::tables::acl::AclSpec;

/// The POP with `acl` (TOML) on the 1:1 IPv4 and the IPv6 EIP.
fn listed(acl: &str) -> Tables {
    let spec: AclSpec = toml::from_str(acl).unwrap();
    pop()
        .edit(|s| {
            s.eips.nth_mut(0).unwrap().set_acl(Some(spec.clone()));
            s.eips.nth_mut(2).unwrap().set_acl(Some(spec));
        })
        .tables()
}

/// The verdict of the fast path (`None`: left to the general path) and of the
/// general path alone, each on its own copy of `input`, with the counters of
/// the general path's pipeline.
fn both_paths(t: &Tables, input: &[u8]) -> (Option<Verdict>, Verdict, Counters) {
    let (fast, _, _) = one_path(t, input, true);
    let (general, _, c) = one_path(t, input, false);
    (fast, general.unwrap(), c)
}

/// Runs `input` through the whole pipeline and both paths apart: all must
/// agree (the fast path may leave the frame to the general path).
fn verdict(t: &Tables, input: &[u8]) -> Verdict {
    let (v, _, _) = run(t, input, INET);
    let (fast, general, _) = both_paths(t, input);
    assert_eq!(v, general, "pipeline and general path");
    if let Some(f) = fast {
        assert_eq!(f, general, "fast and general path");
    }
    v
}

fn udp_from(src: [u8; 4], dport: u16) -> Vec<u8> {
    from_client()
        .ipv4(src, EIP_1TO1, 64)
        .udp(40000, dport)
        .build(b"x")
}

fn tcp_from(src: [u8; 4], dport: u16) -> Vec<u8> {
    from_client()
        .ipv4(src, EIP_1TO1, 64)
        .tcp(40000, dport)
        .seq(1)
        .build(b"x")
}

const DENIED: Verdict = Verdict::Drop(DropReason::AclDenied);

fn slot(t: &Tables, a: impl Into<std::net::IpAddr>) -> usize {
    t.eip_slot(a.into()).unwrap() as usize
}

#[test]
fn allowed_and_denied_with_per_rule_counts() {
    let t = listed(
        r#"rules = [
  { action = "deny", source = "198.51.100.0/24", protocol = "udp", ports = "1000-2000" },
  { action = "allow", source = "198.51.100.7" },
  { action = "deny", source = "198.51.100.0/24" },
]"#,
    );
    let src = [198, 51, 100, 9];
    assert_eq!(verdict(&t, &udp_from(src, 1500)), DENIED);
    assert!(matches!(verdict(&t, &udp_from(src, 999)), DENIED));
    assert!(matches!(verdict(&t, &tcp_from(src, 1500)), DENIED));
    // First match wins: the allow for .7 comes before the /24 deny, but after
    // the UDP port rule.
    assert!(matches!(
        verdict(&t, &tcp_from([198, 51, 100, 7], 80)),
        Verdict::Tx(_)
    ));
    assert_eq!(verdict(&t, &udp_from([198, 51, 100, 7], 1000)), DENIED);
    // Outside every rule: the default (allow).
    assert!(matches!(verdict(&t, &tcp_from(CLIENT, 80)), Verdict::Tx(_)));

    // Counts per rule, the default last, through one pipeline.
    let mut p = Pipeline::default();
    let inputs = [
        udp_from(src, 1500),
        udp_from(src, 2000),
        tcp_from([198, 51, 100, 7], 80),
        tcp_from(src, 80),
        tcp_from(CLIENT, 80),
        tcp_from(CLIENT, 81),
    ];
    let mut bufs: Vec<Vec<u8>> = inputs
        .iter()
        .map(|i| {
            let mut b = vec![0u8; crate::testkit::BUFFER_LEN];
            b[crate::testkit::HEADROOM..crate::testkit::HEADROOM + i.len()].copy_from_slice(i);
            b
        })
        .collect();
    let mut frames: Vec<Frame<'_>> = bufs
        .iter_mut()
        .zip(&inputs)
        .map(|(b, i)| Frame::new(b, crate::testkit::HEADROOM, i.len(), INET))
        .collect();
    let mut verdicts = vec![Verdict::ToKernel; frames.len()];
    p.process(Timestamp(1), &t, &mut frames, &mut verdicts);
    let c = p.counters();
    assert_eq!(
        c.eip_acl[slot(&t, Ipv4Addr::from(EIP_1TO1))].hits,
        [2, 1, 1, 2]
    );
    assert_eq!(c.dropped(DropReason::AclDenied), 3);
    assert_eq!(c.happened(Event::Encapsulated), 3);
    // The other EIPs have no list: no counters, nothing refused.
    assert!(c
        .eip_acl
        .get(slot(&t, Ipv4Addr::from(EIP_SERVICE)))
        .is_none_or(|h| h.hits.is_empty()));
}

#[test]
fn default_deny_and_boundary_prefixes() {
    let t = listed(
        r#"default = "deny"
rules = [
  { action = "allow", source = "203.0.113.2/32" },
  { action = "allow", source = "198.51.100.128/25", protocol = "tcp" },
]"#,
    );
    assert!(matches!(verdict(&t, &tcp_from(CLIENT, 80)), Verdict::Tx(_)));
    assert_eq!(verdict(&t, &tcp_from([203, 0, 113, 3], 80)), DENIED);
    assert_eq!(verdict(&t, &tcp_from([203, 0, 113, 1], 80)), DENIED);
    // The edges of the /25 and just outside it.
    for (last, out) in [(128, true), (255, true), (127, false)] {
        let v = verdict(&t, &tcp_from([198, 51, 100, last], 80));
        assert_eq!(matches!(v, Verdict::Tx(_)), out, ".{last}: {v:?}");
    }
    assert_eq!(verdict(&t, &udp_from([198, 51, 100, 200], 80)), DENIED);

    // /0 matches every IPv4 source and no IPv6 one.
    let t = listed(r#"rules = [{ action = "deny", source = "0.0.0.0/0" }]"#);
    assert_eq!(verdict(&t, &tcp_from([1, 2, 3, 4], 80)), DENIED);
    assert_eq!(verdict(&t, &tcp_from([223, 255, 255, 254], 80)), DENIED);
    let v6 = from_client()
        .ipv6(
            CLIENT_V6.parse::<Ipv6Addr>().unwrap().octets(),
            EIP_V6.parse::<Ipv6Addr>().unwrap().octets(),
            64,
        )
        .tcp(40000, 80)
        .build(b"x");
    assert!(matches!(verdict(&t, &v6), Verdict::Tx(_)));
}

#[test]
fn port_range_edges_and_protocols() {
    let t = listed(
        r#"rules = [
  { action = "deny", protocol = "udp", ports = "1000-2000" },
  { action = "deny", protocol = "tcp", ports = 22 },
  { action = "deny", protocol = "icmp" },
]"#,
    );
    for (port, denied) in [
        (999, false),
        (1000, true),
        (1001, true),
        (2000, true),
        (2001, false),
    ] {
        let v = verdict(&t, &udp_from(CLIENT, port));
        assert_eq!(v == DENIED, denied, "udp {port}: {v:?}");
        // The UDP rule does not apply to TCP.
        assert!(matches!(
            verdict(&t, &tcp_from(CLIENT, port)),
            Verdict::Tx(_)
        ));
    }
    assert_eq!(verdict(&t, &tcp_from(CLIENT, 22)), DENIED);
    assert!(matches!(verdict(&t, &tcp_from(CLIENT, 21)), Verdict::Tx(_)));
    assert!(matches!(verdict(&t, &tcp_from(CLIENT, 23)), Verdict::Tx(_)));
    let ping = from_client()
        .ipv4(CLIENT, EIP_1TO1, 64)
        .icmpv4_echo_request(1, 1)
        .build(b"ping");
    assert_eq!(verdict(&t, &ping), DENIED);
}

#[test]
fn ipv6_sources_and_the_128_boundary() {
    let t = listed(
        r#"rules = [
  { action = "allow", source = "2001:db8:c::2/128" },
  { action = "deny", source = "2001:db8:c::/48", protocol = "tcp", ports = "80-80" },
  { action = "deny", source = "::/0", protocol = "icmp" },
]"#,
    );
    let frame = |src: &str, dport: u16| {
        from_client()
            .ipv6(
                src.parse::<Ipv6Addr>().unwrap().octets(),
                EIP_V6.parse::<Ipv6Addr>().unwrap().octets(),
                64,
            )
            .tcp(40000, dport)
            .build(b"x")
    };
    assert!(matches!(verdict(&t, &frame(CLIENT_V6, 80)), Verdict::Tx(_)));
    assert_eq!(verdict(&t, &frame("2001:db8:c::3", 80)), DENIED);
    assert!(matches!(
        verdict(&t, &frame("2001:db8:c::3", 81)),
        Verdict::Tx(_)
    ));
    assert!(matches!(
        verdict(&t, &frame("2001:db8:d::3", 80)),
        Verdict::Tx(_)
    ));
    let ping = from_client()
        .ipv6(
            "2001:db8:d::3".parse::<Ipv6Addr>().unwrap().octets(),
            EIP_V6.parse::<Ipv6Addr>().unwrap().octets(),
            64,
        )
        .icmpv6_echo_request(1, 1)
        .build(b"ping");
    assert_eq!(verdict(&t, &ping), DENIED);
    let (_, _, c) = both_paths(&t, &ping);
    let hits = &c.eip_acl[slot(&t, EIP_V6.parse::<Ipv6Addr>().unwrap())].hits;
    assert_eq!(hits.as_slice(), [0, 0, 1, 0]);
}

/// A UDP fragment of the client to the 1:1 EIP: the first (with ports) or a
/// later one (offset in 8-byte units, no ports).
fn fragment(offset: u16, dport: u16) -> Vec<u8> {
    let b = from_client().ipv4(CLIENT, EIP_1TO1, 64);
    let mut f = if offset == 0 {
        b.udp(40000, dport).build(&[0x55; 64])
    } else {
        b.ip_payload(17).build(&[0x55; 64])
    };
    let ip = &mut f[14..34];
    let more = if offset == 0 { 0x2000 } else { 0 };
    ip[6..8].copy_from_slice(&(more | offset).to_be_bytes());
    ip[10..12].copy_from_slice(&[0, 0]);
    let sum = crate::wire::checksum::finish(crate::wire::checksum::sum(ip));
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f
}

#[test]
fn later_fragments_match_only_rules_without_ports() {
    let ports = listed(r#"rules = [{ action = "deny", protocol = "udp", ports = "53" }]"#);
    assert_eq!(verdict(&ports, &fragment(0, 53)), DENIED);
    // No ports in a later fragment: the port rule cannot match, the default
    // (allow) decides.
    assert!(matches!(verdict(&ports, &fragment(8, 53)), Verdict::Tx(_)));
    let any_port = listed(r#"rules = [{ action = "deny", protocol = "udp" }]"#);
    assert_eq!(verdict(&any_port, &fragment(8, 53)), DENIED);
    let source = listed(r#"rules = [{ action = "deny", source = "203.0.113.0/24" }]"#);
    assert_eq!(verdict(&source, &fragment(8, 53)), DENIED);
}

#[test]
fn a_refused_source_gets_no_icmp_error() {
    let t = listed(r#"rules = [{ action = "deny", source = "203.0.113.2" }]"#);
    // TTL 1 would get "time exceeded" from an allowed source.
    assert_eq!(verdict(&t, &tcp_to(EIP_1TO1, 1, b"x")), DENIED);
    let open = listed(r#"rules = [{ action = "deny", source = "203.0.113.3" }]"#);
    assert!(matches!(
        verdict(&open, &tcp_to(EIP_1TO1, 1, b"x")),
        Verdict::Tx(_)
    ));
}

#[test]
fn a_changed_list_applies_at_once_and_counts_from_zero() {
    let t = listed(r#"rules = [{ action = "deny", source = "203.0.113.2" }]"#);
    let mut p = Pipeline::default();
    let input = tcp_from(CLIENT, 80);
    let go = |p: &mut Pipeline, t: &Tables| {
        let mut buf = vec![0u8; crate::testkit::BUFFER_LEN];
        let h = crate::testkit::HEADROOM;
        buf[h..h + input.len()].copy_from_slice(&input);
        let mut frames = [Frame::new(&mut buf, h, input.len(), INET)];
        let mut v = [Verdict::ToKernel];
        p.process(Timestamp(1), t, &mut frames, &mut v);
        v[0]
    };
    assert_eq!(go(&mut p, &t), DENIED);
    let s = slot(&t, Ipv4Addr::from(EIP_1TO1));
    assert_eq!(p.counters().eip_acl[s].hits, [1, 0]);
    let t2 =
        listed(r#"rules = [{ action = "allow", source = "203.0.113.2" }, { action = "deny" }]"#);
    assert_eq!(slot(&t2, Ipv4Addr::from(EIP_1TO1)), s);
    let mut t2 = t2;
    t2.generation = t.generation + 1;
    assert!(matches!(go(&mut p, &t2), Verdict::Tx(_)));
    assert_eq!(p.counters().eip_acl[s].hits, [1, 0, 0]);
}

#[test]
fn too_many_rules_or_a_bad_rule_are_refused_naming_the_eip_and_rule() {
    let rule = crate::tables::acl::AclRule {
        action: crate::tables::acl::AclAction::Deny,
        source: None,
        protocol: None,
        ports: None,
    };
    let spec = AclSpec {
        default: Default::default(),
        rules: vec![rule; crate::tables::acl::MAX_RULES + 1],
    };
    let e = Tables::build(
        &pop()
            .edit(|s| s.eips.nth_mut(0).unwrap().set_acl(Some(spec)))
            .spec(),
        1,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("192.0.2.10") && e.contains("acl") && e.contains("4096"),
        "{e}"
    );
    let e = toml::from_str::<AclSpec>(
        r#"rules = [{ action = "deny" }, { action = "deny", source = "10.0.0.0/33" }]"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("rules[1]") && e.contains("0..=32"), "{e}");
}
