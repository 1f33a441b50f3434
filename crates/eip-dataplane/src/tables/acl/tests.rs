//! The compiled ACL against a naive first-match reference.

use super::*;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The reference: the first rule that matches, in order.
fn naive(spec: &AclSpec, src: IpAddr, protocol: u8, dport: Option<u16>) -> AclVerdict {
    for (i, r) in spec.rules.iter().enumerate() {
        let source = r.source.is_none_or(|p| p.contains(src));
        let proto = match r.protocol {
            None => true,
            Some(AclProtocol::Icmp) => protocol == 1 || protocol == 58,
            Some(p) => u16::from(protocol) == p.code(),
        };
        let ports = match r.ports {
            None => true,
            Some(p) => dport.is_some_and(|d| p.lo <= d && d <= p.hi),
        };
        if source && proto && ports {
            return AclVerdict {
                rule: i as u32,
                deny: r.action == AclAction::Deny,
            };
        }
    }
    AclVerdict {
        rule: spec.rules.len() as u32,
        deny: spec.default == AclAction::Deny,
    }
}

fn check(acl: &Acl, src: IpAddr, protocol: u8, dport: Option<u16>) -> AclVerdict {
    match src {
        IpAddr::V4(a) => acl.check(false, u128::from(u32::from(a)), protocol, dport),
        IpAddr::V6(a) => acl.check(true, u128::from(a), protocol, dport),
    }
}

/// The top `len` bits of a `width`-bit number.
fn mask(width: u8, len: u8) -> u128 {
    let all = u128::MAX >> (128 - u32::from(width));
    all & !(all.checked_shr(u32::from(len)).unwrap_or(0))
}

fn parse(toml_text: &str) -> Result<AclSpec, String> {
    toml::from_str(toml_text).map_err(|e| e.to_string())
}

#[test]
fn parses_the_documented_form_and_refuses_bad_input() {
    let spec = parse(
        r#"default = "deny"
rules = [
  { action = "deny", source = "203.0.113.0/25", protocol = "udp", ports = "1000-2000" },
  { action = "allow", source = "2001:db8::/32", protocol = "tcp", ports = 443 },
  { action = "allow", protocol = "icmp" },
]"#,
    )
    .unwrap();
    assert_eq!(spec.default, AclAction::Deny);
    assert_eq!(spec.rules.len(), 3);
    assert_eq!(spec.rules[0].ports, Some(PortRange { lo: 1000, hi: 2000 }));
    for (bad, says) in [
        (
            r#"rules = [{ action = "deny", source = "203.0.113.1/25" }]"#,
            "bits set past /25",
        ),
        (
            r#"rules = [{ action = "deny", source = "203.0.113.0/33" }]"#,
            "length must be 0..=32",
        ),
        (
            r#"rules = [{ action = "deny", source = "nowhere" }]"#,
            "is not an IP address",
        ),
        (
            r#"rules = [{ action = "deny", ports = "2000-1000" }]"#,
            "lo <= hi",
        ),
        (
            r#"rules = [{ action = "deny", protocol = "sctpp" }]"#,
            "invalid protocol",
        ),
        (
            r#"rules = [{ action = "deny", protocol = "icmp", ports = "1" }]"#,
            "no ports",
        ),
        (r#"rules = [{ action = "drop" }]"#, "unknown variant"),
        (
            r#"rules = [{ action = "deny", port = "1" }]"#,
            "unknown field",
        ),
    ] {
        let e = parse(bad).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn boundaries_and_families() {
    let spec = parse(
        r#"rules = [
  { action = "deny", source = "10.0.0.0/31", protocol = "udp", ports = "1000-2000" },
  { action = "allow", source = "10.0.0.2/32" },
  { action = "deny", source = "10.0.0.0/24" },
  { action = "deny", source = "::/0", protocol = "tcp" },
  { action = "allow", source = "0.0.0.0/0", protocol = 17 },
]
default = "deny""#,
    )
    .unwrap();
    let acl = spec.compile();
    let v4 = |s: &str| IpAddr::V4(s.parse::<Ipv4Addr>().unwrap());
    let cases = [
        (v4("10.0.0.1"), 17, Some(999), 2),
        (v4("10.0.0.1"), 17, Some(1000), 0),
        (v4("10.0.0.1"), 17, Some(2000), 0),
        (v4("10.0.0.1"), 17, Some(2001), 2),
        (v4("10.0.0.2"), 17, Some(1500), 1),
        (v4("10.0.0.255"), 6, Some(1500), 2),
        (v4("10.0.1.0"), 17, None, 4),
        (v4("10.0.1.0"), 6, Some(80), 5),
        (IpAddr::V6(Ipv6Addr::LOCALHOST), 6, Some(80), 3),
        // An IPv4-mapped IPv6 source is IPv6: no IPv4 rule applies.
        (
            IpAddr::V6(
                v4("10.0.0.1")
                    .to_string()
                    .parse::<Ipv4Addr>()
                    .unwrap()
                    .to_ipv6_mapped(),
            ),
            17,
            Some(1500),
            5,
        ),
    ];
    for (src, proto, port, rule) in cases {
        let got = check(&acl, src, proto, port);
        assert_eq!(got.rule, rule, "{src} {proto} {port:?}");
        assert_eq!(got, naive(&spec, src, proto, port));
    }
}

fn rule_strategy(v6: bool) -> impl Strategy<Value = AclRule> {
    let width: u8 = if v6 { 128 } else { 32 };
    (
        any::<bool>(),
        proptest::option::weighted(0.9, (any::<u128>(), 0..=width)),
        proptest::option::of(prop_oneof![
            Just(AclProtocol::Tcp),
            Just(AclProtocol::Udp),
            Just(AclProtocol::Icmp)
        ]),
        proptest::option::of((0u16..8, 0u16..8)),
    )
        .prop_map(move |(deny, source, protocol, ports)| {
            let source = source.map(|(bits, len)| {
                // Few distinct high bits, so that prefixes nest and collide.
                let bits = bits & mask(width, len.min(6)) | (bits & 0xff) << (width - 8).min(24);
                let bits = bits & mask(width, len);
                let address = if v6 {
                    IpAddr::V6(Ipv6Addr::from(bits))
                } else {
                    IpAddr::V4(Ipv4Addr::from(bits as u32))
                };
                Prefix { address, len }
            });
            let protocol = if ports.is_some() {
                protocol.filter(|p| *p != AclProtocol::Icmp)
            } else {
                protocol
            };
            AclRule {
                action: if deny {
                    AclAction::Deny
                } else {
                    AclAction::Allow
                },
                source,
                protocol,
                ports: ports.map(|(a, b)| PortRange {
                    lo: a.min(b),
                    hi: a.max(b),
                }),
            }
        })
}

proptest! {
    #[test]
    fn the_trie_agrees_with_first_match(
        v4_rules in proptest::collection::vec(rule_strategy(false), 0..40),
        v6_rules in proptest::collection::vec(rule_strategy(true), 0..20),
        deny in any::<bool>(),
        packets in proptest::collection::vec(
            (any::<bool>(), any::<u128>(), prop_oneof![Just(1u8), Just(6), Just(17), Just(58), Just(47)], proptest::option::of(0u16..9)),
            1..60),
    ) {
        let mut rules = v4_rules;
        rules.extend(v6_rules);
        // Interleave the families by a fixed permutation.
        rules.sort_by_key(|r| r.ports.map_or(0, |p| p.lo));
        let spec = AclSpec { default: if deny { AclAction::Deny } else { AclAction::Allow }, rules };
        let acl = spec.compile();
        // Sources drawn near the rules' prefixes.
        let mut sources: Vec<IpAddr> = spec.rules.iter().filter_map(|r| r.source).map(|p| p.address).collect();
        for (v6, bits, _, _) in &packets {
            sources.push(if *v6 { IpAddr::V6(Ipv6Addr::from(*bits)) } else { IpAddr::V4(Ipv4Addr::from(*bits as u32)) });
        }
        for (i, src) in sources.iter().enumerate() {
            let (_, bits, proto, port) = packets[i % packets.len()];
            // Flip one low bit sometimes: the neighbour just outside a prefix.
            let src = match (*src, bits % 3) {
                (IpAddr::V4(a), 0) => IpAddr::V4(Ipv4Addr::from(u32::from(a) ^ (1 << (bits % 32)))),
                (IpAddr::V6(a), 0) => IpAddr::V6(Ipv6Addr::from(u128::from(a) ^ (1 << (bits % 128)))),
                (s, _) => s,
            };
            let dport = if matches!(proto, 6 | 17) { port } else { None };
            prop_assert_eq!(check(&acl, src, proto, dport), naive(&spec, src, proto, dport));
        }
    }
}

#[test]
fn thousands_of_rules_compile_and_answer() {
    let rules = (0..4000u32)
        .map(|i| AclRule {
            action: AclAction::Deny,
            source: Some(Prefix {
                address: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i << 8)),
                len: 24,
            }),
            protocol: Some(AclProtocol::Udp),
            ports: Some(PortRange { lo: 53, hi: 53 }),
        })
        .collect();
    let spec = AclSpec {
        default: AclAction::Allow,
        rules,
    };
    let acl = spec.compile();
    let src = IpAddr::V4(Ipv4Addr::new(10, 0, 15, 9));
    assert_eq!(check(&acl, src, 17, Some(53)).rule, 15);
    assert_eq!(check(&acl, src, 17, Some(54)).rule, 4000);
}

#[test]
fn xdp_denies_are_the_deny_rules_no_earlier_allow_overlaps() {
    let spec = parse(
        r#"rules = [
  { action = "allow", source = "198.51.100.128/26" },
  { action = "deny", source = "198.51.100.0/24" },
  { action = "deny", source = "203.0.113.0/24" },
  { action = "deny", source = "192.0.2.0/24", protocol = "udp" },
  { action = "deny", source = "2001:db8::/32", protocol = "tcp", ports = "80" },
  { action = "allow", source = "2001:db8:1::/48", protocol = "tcp" },
  { action = "deny", source = "2001:db8::/32" },
  { action = "deny", source = "2001:db9::/32" },
  { action = "deny" },
]"#,
    )
    .unwrap();
    let shown: Vec<String> = spec.xdp_denies().iter().map(|p| p.to_string()).collect();
    // .0/24 overlaps the earlier allow of .128/26; the qualified rules never;
    // 2001:db8::/32 overlaps the allow of 2001:db8:1::/48 (whatever its
    // protocol); the last rule: both families, each overlapping an allow.
    assert_eq!(shown, ["203.0.113.0/24", "2001:db9::/32"]);
    let all = parse(r#"rules = [{ action = "deny" }]"#).unwrap();
    let shown: Vec<String> = all.xdp_denies().iter().map(|p| p.to_string()).collect();
    assert_eq!(shown, ["0.0.0.0/0", "::/0"]);
}

#[test]
fn xdp_denies_know_their_rule() {
    let spec = parse(
        r#"rules = [
  { action = "allow", source = "198.51.100.130" },
  { action = "deny", source = "203.0.113.0/24" },
  { action = "deny", source = "2001:db8:bad::/48" },
  { action = "deny", source = "203.0.113.0/24", protocol = "udp" },
  { action = "deny" },
]"#,
    )
    .unwrap();
    let acl = spec.compile();
    let rule = |p: &str| acl.xdp_rule(&Prefix::parse(p).unwrap());
    assert_eq!(rule("203.0.113.0/24"), Some(1));
    assert_eq!(rule("2001:db8:bad::/48"), Some(2));
    // The catch-all's IPv4 half overlaps the earlier allow: workers' only.
    assert_eq!(rule("0.0.0.0/0"), None);
    assert_eq!(rule("::/0"), Some(4));
    assert_eq!(rule("198.51.100.0/24"), None);
}

proptest! {
    /// Every packet from an XDP deny prefix is denied by the list.
    #[test]
    fn xdp_denies_only_what_the_list_denies(
        v4_rules in proptest::collection::vec(rule_strategy(false), 0..30),
        packets in proptest::collection::vec((any::<u32>(), prop_oneof![Just(1u8), Just(6), Just(17), Just(47)], proptest::option::of(0u16..9)), 1..40),
    ) {
        let spec = AclSpec { default: AclAction::Allow, rules: v4_rules };
        let acl = spec.compile();
        for p in acl.xdp_deny.iter().filter(|p| p.address.is_ipv4()) {
            let IpAddr::V4(net) = p.address else { continue };
            for (bits, proto, port) in &packets {
                let host = if p.len == 32 { 0 } else { bits & (u32::MAX >> p.len) };
                let src = IpAddr::V4(Ipv4Addr::from(u32::from(net) | host));
                let dport = if matches!(proto, 6 | 17) { *port } else { None };
                prop_assert!(check(&acl, src, *proto, dport).deny, "{} from {}", p, src);
            }
        }
    }
}
