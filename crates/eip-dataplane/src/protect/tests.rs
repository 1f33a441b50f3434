use super::*;
use crate::testkit::pop::{self, PopBuilder};
use std::net::{Ipv4Addr, Ipv6Addr};

fn tables(edit: impl FnOnce(&mut crate::tables::PopSpec)) -> Tables {
    PopBuilder::new("t")
        .region(pop::region("bj", pop::VNI, pop::REGION_VTEP))
        .paths("bj", "backbone", 1, 1550)
        .eip(pop::one_to_one(
            Ipv4Addr::new(192, 0, 2, 10),
            "bj",
            Ipv4Addr::new(10, 1, 0, 10),
        ))
        .edit(edit)
        .tables()
}

/// The octet table and rule list say what a plain scan of the bogon list says,
/// at both ends of every prefix, one past them, and over a sweep of addresses.
#[test]
fn ipv4_classes_match_the_bogon_list() {
    let t = tables(|_| {});
    let p = &t.protection;
    let own: Vec<IpAddr> = p.own_addresses().to_vec();
    let expected = |a: Ipv4Addr| {
        if own.contains(&IpAddr::V4(a)) {
            Class::Pop
        } else if is_bogon(IpAddr::V4(a)) {
            Class::Bogon
        } else if t.eip_v4(a.octets()).is_some() {
            Class::Eip
        } else {
            Class::Clean
        }
    };
    let mut probes: Vec<u32> = Vec::new();
    for &(net, len, _) in BOGONS_V4 {
        let first = u32::from(net);
        let last = first | (u32::MAX >> len);
        probes.extend([first, last, first.wrapping_sub(1), last.wrapping_add(1)]);
    }
    probes.extend((0..200_000u32).map(|i| i.wrapping_mul(0x9E37_79B9)));
    probes.extend(own.iter().filter_map(|a| match a {
        IpAddr::V4(a) => Some(u32::from(*a)),
        _ => None,
    }));
    probes.push(u32::from(Ipv4Addr::new(192, 0, 2, 10)));
    for a in probes.into_iter().map(Ipv4Addr::from) {
        assert_eq!(p.class_v4(&t, a.octets()), expected(a), "{a}");
    }
}

#[test]
fn own_addresses_come_from_the_description() {
    let t = tables(|s| {
        s.pop.probe_source = Some(Ipv4Addr::new(198, 51, 100, 9));
        s.pop.extra_vteps = vec![Ipv4Addr::new(198, 51, 100, 5)];
        s.protection.own_addresses = vec!["2001:db8:f::1".parse().unwrap()];
    });
    let own = t.protection.own_addresses();
    for a in [
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.5",
        "198.51.100.9",
        "2001:db8:f::1",
    ] {
        assert!(own.contains(&a.parse().unwrap()), "{a} in {own:?}");
    }
    let v6: [u8; 16] = "2001:db8:f::1".parse::<Ipv6Addr>().unwrap().octets();
    assert_eq!(t.protection.class_v6(&t, &v6), Class::Pop);
}

/// The narrower set no EIP or backend may be, per class.
#[test]
fn unusable_addresses_by_class() {
    for (a, bad) in [
        ("0.0.0.0", true),
        ("0.1.2.3", true),
        ("127.0.0.1", true),
        ("169.254.0.1", true),
        ("224.0.0.1", true),
        ("239.1.1.1", true),
        ("240.0.0.1", true),
        ("255.255.255.255", true),
        ("::", true),
        ("::1", true),
        ("fe80::1", true),
        ("ff02::1", true),
        ("::ffff:192.0.2.1", true),
        ("10.1.0.10", false),
        ("100.64.0.1", false),
        ("192.0.2.10", false),
        ("223.255.255.255", false),
        ("fd00::1", false),
        ("2001:db8::1", false),
    ] {
        assert_eq!(unusable(a.parse().unwrap()).is_some(), bad, "{a}");
    }
}

#[test]
fn a_backbone_port_is_not_internet() {
    let t = tables(|_| {});
    let bb = t.port_by_name("backbone").unwrap();
    assert!(t.protection.from_backbone(bb));
    assert!(!t.protection.from_backbone(t.internet_port));
    assert!(!t.protection.from_backbone(200));
}
