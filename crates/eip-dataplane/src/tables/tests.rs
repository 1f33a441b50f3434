//! Validation: every problem of a description is found in one pass, each with
//! its place, and the first is what [`Tables::build`] reports.

use super::spec::*;
use super::{TableError, Tables};
use std::net::{IpAddr, Ipv4Addr};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn v4(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}

fn path(name: &str, port: &str, mtu: u16) -> PathSpec {
    PathSpec {
        name: name.into(),
        region: "bj".into(),
        port: port.into(),
        next_hop_mac: Some(MacAddr([2, 0, 0, 0, 2, 2])),
        next_hop: None,
        source: None,
        destination: None,
        mtu,
        weight: 1,
        state: PathState::Up,
    }
}

fn eip(address: &str, backend: Option<&str>) -> EipSpec {
    EipSpec::new(ip(address), "bj", backend.map(ip))
}

fn service(port: u16, backends: &[&str]) -> ServiceSpec {
    ServiceSpec {
        check: None,
        protocol: Protocol::Tcp,
        port,
        backends: backends
            .iter()
            .map(|a| BackendSpec {
                address: ip(a),
                port: None,
                weight: 1,
            })
            .collect(),
    }
}

/// One Internet port, one backbone port, region "bj" with one path, one EIP.
fn valid() -> PopSpec {
    let port = |name: &str, role, gateway_mac| PortSpec {
        name: String::from(name),
        role,
        interface: None,
        mac: MacAddr([2, 0, 0, 0, 0, 1]),
        gateway_mac,
        gateway: None,
    };
    PopSpec {
        bgp: None,
        protection: Default::default(),
        pop: PopSection {
            max_eips: None,
            eips_file: None,
            backend_check: None,
            name: "t".into(),
            vtep: v4("198.51.100.1"),
            extra_vteps: vec![],
            vxlan_port: 4789,
            inner_mac: MacAddr([2, 0, 0, 0, 1, 1]),
            outer_ttl: 64,
            probe_source: None,
        },
        ports: vec![
            port(
                "internet",
                PortRole::Internet,
                Some(MacAddr([2, 0, 0, 0, 0, 0xfe])),
            ),
            port("backbone", PortRole::Backbone, None),
        ],
        regions: vec![RegionSpec {
            name: "bj".into(),
            vni: 100,
            vtep: v4("198.51.100.2"),
            inner_mac: MacAddr([2, 0, 0, 0, 0x10, 1]),
            probe_target: None,
        }],
        paths: vec![path("p0", "backbone", 1500)],
        eips: vec![eip("192.0.2.10", Some("10.1.0.10"))].into(),
        limits: None,
    }
}

fn places(errors: &[TableError]) -> Vec<String> {
    errors.iter().map(TableError::key_path).collect()
}

#[test]
fn the_valid_description_builds_either_way() {
    let spec = valid();
    let one = Tables::build(&spec, 3).unwrap();
    let all = Tables::build_all(&spec, 3).unwrap();
    assert_eq!((one.version, all.version), (3, 3));
    assert_eq!(one.paths[0].template, all.paths[0].template);
    assert_eq!(one.regions[0].path_table, all.regions[0].path_table);
}

#[test]
fn every_problem_is_reported_in_order_with_its_place() {
    let mut spec = valid();
    spec.pop.outer_ttl = 0;
    spec.regions.push(spec.regions[0].clone());
    spec.regions[1].vni = 1 << 24;
    spec.paths.push(path("p1", "nowhere", 100));
    spec.paths.push(path("p0", "internet", 1500));
    spec.eips.push(eip("192.0.2.10", Some("10.1.0.11")));
    spec.eips.push(eip("192.0.2.11", Some("10.1.0.10")));
    spec.eips.push(eip("192.0.2.12", Some("2001:db8::1")));
    let mut with_services = eip("192.0.2.13", None);
    with_services.services = thin_vec::thin_vec![service(80, &["10.1.0.20"]), service(80, &[])];
    spec.eips.push(with_services);
    spec.eips.push(eip("192.0.2.14", None));

    let errors = Tables::build_all(&spec, 1).unwrap_err();
    assert_eq!(
        places(&errors),
        [
            "pop.outer_ttl",
            "regions[1].name",
            "regions[1].vni",
            "paths[1].port",
            "paths[1].mtu",
            "paths[2].name",
            "paths[2].port",
            "eips[1].address",
            "eips[2].backend",
            "eips[3].backend",
            "eips[4].services[1].port",
            "eips[4].services[1].backends",
            "eips[5].backend",
        ]
    );
    assert_eq!(Tables::build(&spec, 1).unwrap_err(), errors[0]);
    let conflict = &errors[8];
    assert_eq!(
        conflict.reason(),
        "10.1.0.10 is already the 1:1 backend of eips[0] (192.0.2.10); in one region a \
         backend address belongs to one EIP (returns are told apart by it)"
    );
    // The text of each error alone still names its entry, as it always did.
    assert_eq!(
        errors[4].to_string(),
        "paths[1] (\"p1\"): field `mtu`: 100 is outside 626..=9216"
    );
}

#[test]
fn a_conflict_names_where_the_other_eip_uses_the_backend() {
    let mut spec = valid();
    let mut first = eip("192.0.2.20", None);
    first.services = thin_vec::thin_vec![service(80, &["10.1.0.20", "10.1.0.21"])];
    spec.eips.push(first);
    let mut second = eip("192.0.2.21", None);
    second.services = thin_vec::thin_vec![service(443, &["10.1.0.21"])];
    spec.eips.push(second);
    let errors = Tables::build_all(&spec, 1).unwrap_err();
    assert_eq!(places(&errors), ["eips[2].services[0].backends[0].address"]);
    let reason = errors[0].reason();
    assert!(
        reason.starts_with(
            "10.1.0.21 is already a service backend of eips[1] (192.0.2.20): \
             services[0] (Tcp/80): backends[1];"
        ),
        "{reason}"
    );
}

#[test]
fn a_path_too_small_for_ipv6_is_reported_once() {
    let mut spec = valid();
    spec.paths[0].mtu = 1300;
    spec.paths.push(path("tiny", "backbone", 100));
    spec.eips.push(eip("2001:db8:e1::10", Some("fd00::10")));
    spec.eips.push(eip("2001:db8:e1::11", Some("fd00::11")));
    let errors = Tables::build_all(&spec, 1).unwrap_err();
    // `tiny` is refused for its MTU once; it does not join the region, so the
    // IPv6 check (made once per region) only names p0.
    assert_eq!(places(&errors), ["paths[1].mtu", "paths[0].mtu"]);
    assert!(errors[1].reason().contains("IPv6"), "{}", errors[1]);
}

#[test]
fn unresolved_next_hops_point_at_the_address_given() {
    let mut spec = valid();
    spec.ports[0].gateway_mac = None;
    spec.ports[0].gateway = Some(ip("203.0.113.2"));
    spec.paths[0].next_hop_mac = None;
    spec.paths[0].next_hop = Some(v4("198.51.100.14"));
    spec.paths.push(path("p1", "backbone", 1500));
    spec.paths[1].next_hop_mac = None;
    let errors = Tables::build_all(&spec, 1).unwrap_err();
    assert_eq!(
        places(&errors),
        [
            "ports[0].gateway",
            "paths[0].next_hop",
            "paths[1].next_hop_mac"
        ]
    );
    assert!(errors[1].reason().contains("198.51.100.14"));
}

#[test]
fn no_or_two_internet_ports() {
    let mut spec = valid();
    spec.ports[0].role = PortRole::Backbone;
    let errors = Tables::build_all(&spec, 1).unwrap_err();
    assert_eq!(places(&errors), ["ports"]);
    spec.ports[0].role = PortRole::Both;
    spec.ports[1].role = PortRole::Internet;
    let errors = Tables::build_all(&spec, 1).unwrap_err();
    // Two Internet ports; the path on the Internet-only one is refused too.
    assert_eq!(places(&errors), ["ports", "paths[0].port"]);
}

#[test]
fn too_many_backends_is_reported_without_building_maglev() {
    let mut spec = valid();
    let many: Vec<String> = (0..=crate::maglev::MAX_BACKENDS)
        .map(|i| format!("10.2.{}.{}", i / 250, i % 250 + 1))
        .collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let mut e = eip("192.0.2.30", None);
    e.services = thin_vec::thin_vec![service(80, &refs)];
    spec.eips.push(e);
    let errors = Tables::build_all(&spec, 1).unwrap_err();
    assert_eq!(places(&errors), ["eips[1].services[0].backends"]);
}
