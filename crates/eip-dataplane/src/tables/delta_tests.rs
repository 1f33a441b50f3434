//! Deltas and overlays agree with full builds: random sequences of EIP changes
//! give tables that look up like [`Tables::build`] of the final description, and
//! reject exactly the changes whose description a build rejects.

use super::spec::*;
use super::{addr_key, PathState, TableDelta, Tables};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

fn mac(last: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, last])
}

fn region(name: &str, vni: u32, last: u8) -> RegionSpec {
    RegionSpec {
        name: name.into(),
        vni,
        vtep: Ipv4Addr::new(198, 51, 100, last),
        inner_mac: mac(last),
        probe_target: None,
    }
}

fn path(name: &str, region: &str) -> PathSpec {
    PathSpec {
        name: name.into(),
        region: region.into(),
        port: "backbone".into(),
        next_hop_mac: Some(mac(9)),
        next_hop: None,
        source: None,
        destination: None,
        mtu: 1500,
        weight: 1,
        state: PathState::Up,
    }
}

/// Two regions ("bj", "sh") with two paths each, no EIPs.
fn pop() -> PopSpec {
    let port = |name: &str, role, gateway_mac| PortSpec {
        name: name.into(),
        role,
        interface: None,
        mac: mac(1),
        gateway_mac,
        gateway: None,
    };
    PopSpec {
        pop: PopSection {
            max_eips: None,
            eips_file: None,
            backend_check: None,
            name: "t".into(),
            vtep: Ipv4Addr::new(198, 51, 100, 1),
            extra_vteps: vec![],
            vxlan_port: 4789,
            inner_mac: mac(2),
            outer_ttl: 64,
            probe_source: None,
        },
        bgp: None,
        protection: Default::default(),
        ports: vec![
            port("internet", PortRole::Internet, Some(mac(3))),
            port("backbone", PortRole::Backbone, None),
        ],
        regions: vec![region("bj", 100, 10), region("sh", 200, 20)],
        paths: vec![
            path("bj-a", "bj"),
            path("bj-b", "bj"),
            path("sh-a", "sh"),
            path("sh-b", "sh"),
        ],
        eips: Default::default(),
        limits: None,
    }
}

fn one_to_one(i: u32, region: &str) -> EipSpec {
    EipSpec::new(
        IpAddr::V4(Ipv4Addr::from(0x0A80_0000 + i)),
        region,
        Some(IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i))),
    )
}

/// `n` 1:1 IPv4 EIPs over the two regions.
fn big(n: u32) -> PopSpec {
    let mut spec = pop();
    spec.eips = (0..n)
        .map(|i| one_to_one(i, if i % 2 == 0 { "bj" } else { "sh" }))
        .collect();
    spec
}

/// Asserts that `a` and `b` look up alike for every EIP of `spec` and their
/// backends, and that they have no other EIPs.
fn assert_same_lookups(a: &Tables, b: &Tables, spec: &PopSpec) {
    assert_eq!(a.eips.len(), b.eips.len());
    let mut v4a: Vec<_> = a.eip_v4_addresses().collect();
    let mut v4b: Vec<_> = b.eip_v4_addresses().collect();
    v4a.sort();
    v4b.sort();
    assert_eq!(v4a, v4b);
    assert_eq!(a.eip_v6_addresses().count(), b.eip_v6_addresses().count());
    for e in &spec.eips {
        let (x, y) = (
            a.eip_by_address(e.address).expect("EIP in a"),
            b.eip_by_address(e.address).expect("EIP in b"),
        );
        assert_eq!(
            (x.address, x.region, x.backend),
            (y.address, y.region, y.backend)
        );
        assert_eq!(x.services.len(), y.services.len());
        for (s, t) in x.services.iter().zip(y.services.iter()) {
            assert_eq!((s.protocol, s.port), (t.protocol, t.port));
            assert_eq!(s.backends, t.backends);
            assert_eq!(s.maglev, t.maglev);
        }
        let owner = |t: &Tables, addr: IpAddr, proto: u8, port: Option<u16>| {
            t.return_mapping(x.region, addr_key(addr), proto, port)
                .map(|m| (t.eips.at(m.eip).address, m.service_port))
        };
        if let Some(addr) = e.backend {
            assert_eq!(owner(a, addr, 6, None), owner(b, addr, 6, None));
        }
        for s in x.services.iter() {
            for bk in s.backends.iter() {
                for port in [Some(bk.port), Some(bk.port ^ 1), None] {
                    assert_eq!(
                        owner(a, bk.address, s.protocol, port),
                        owner(b, bk.address, s.protocol, port)
                    );
                }
            }
        }
    }
    for (r, s) in a.regions.iter().zip(&b.regions) {
        assert_eq!(
            (&r.name, &r.path_table, r.panic),
            (&s.name, &s.path_table, s.panic)
        );
    }
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(Box<EipSpec>),
    Remove(IpAddr),
    /// Flip the weight of path `sh-b` (a change to the small parts).
    Paths,
}

fn address() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        4 => (1u8..=12).prop_map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i))),
        1 => (1u16..=3).prop_map(|i| IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i))),
    ]
}

fn backend_address() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        6 => (1u8..=8).prop_map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 0, i))),
        1 => (1u16..=3).prop_map(|i| IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i))),
    ]
}

fn service() -> impl Strategy<Value = ServiceSpec> {
    (
        prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)],
        prop_oneof![Just(80u16), Just(443), Just(0)],
        prop::collection::vec(
            (
                backend_address(),
                prop_oneof![Just(None), Just(Some(8080u16))],
                0u32..3,
            ),
            0..4,
        ),
    )
        .prop_map(|(protocol, port, backends)| ServiceSpec {
            check: None,
            protocol,
            port,
            backends: backends
                .into_iter()
                .map(|(address, port, weight)| BackendSpec {
                    address,
                    port,
                    weight,
                })
                .collect(),
        })
}

fn eip_spec() -> impl Strategy<Value = EipSpec> {
    (
        address(),
        prop_oneof![8 => Just("bj"), 8 => Just("sh"), 1 => Just("nope")],
        prop::option::of(backend_address()),
        prop::collection::vec(service(), 0..3),
        // A list and caps now and then: flags the IPv4 index entry carries.
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(address, region, backend, services, acl, limits)| {
            let mut e = EipSpec::new(address, region, backend);
            e.services = services.into();
            e.set_limits(limits.then(|| super::limits::LimitsSpec {
                in_pps: Some(1000),
                ..Default::default()
            }));
            e.set_acl(acl.then(|| super::acl::AclSpec {
                default: super::acl::AclAction::Deny,
                rules: Vec::new(),
            }));
            e
        })
}

/// Asserts that every IPv4 index entry of `t`, EIP and owner, holds what
/// its slot's record says (the fast paths read the entry instead of the
/// record).
fn assert_index_entries_follow_records(t: &Tables) {
    let mut n = 0;
    for (address, entry) in t.eip_v4.entries() {
        assert_eq!(
            entry,
            t.eips.entry(entry.slot()),
            "{}",
            Ipv4Addr::from(address)
        );
        n += 1;
    }
    assert_eq!(n, t.eip_v4.len());
    for (region, backend, owner) in t.owner_v4.entries() {
        // Plain: what the EIP's view says, not the record's flags.
        let plain = match t.eips.get(owner.slot()).expect("owner's EIP") {
            super::Eip {
                address: IpAddr::V4(a),
                backend: Some(IpAddr::V4(_)),
                services: [],
                ..
            } => Some(a.octets()),
            _ => None,
        };
        assert_eq!(
            owner.plain_eip(),
            plain,
            "owner of {} in region {region}",
            Ipv4Addr::from(backend)
        );
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => eip_spec().prop_map(|e| Op::Upsert(Box::new(e))),
        3 => address().prop_map(Op::Remove),
        1 => Just(Op::Paths),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn deltas_look_up_like_a_build_of_the_final_description(
        ops in prop::collection::vec(op(), 1..40)
    ) {
        let mut spec = pop();
        let mut t = Tables::build(&spec, 1).unwrap();
        let mut accepted = 0;
        for (n, op) in ops.into_iter().enumerate() {
            let mut next = spec.clone();
            let mut delta = TableDelta::default();
            match op {
                Op::Upsert(e) => {
                    let e = *e;
                    if next.eips.contains(e.address) {
                        *next.eips.by_address_mut(e.address).unwrap() = e.clone();
                    } else {
                        next.eips.push(e.clone());
                    }
                    delta.upsert.push(e);
                }
                Op::Remove(a) => {
                    next.eips.retain(|x| x.address != a);
                    delta.remove.push(a);
                }
                Op::Paths => {
                    next.paths[3].weight = 3 - next.paths[3].weight;
                    delta.small_parts = true;
                }
            }
            let version = 2 + n as u64;
            let applied = t.apply(&delta, &next, version, version);
            let built = Tables::build_all(&next, version);
            prop_assert_eq!(applied.is_ok(), built.is_ok(), "{:?}\n{:?}\n{:?}", delta, applied.as_ref().err(), built.as_ref().err());
            if let (Ok(applied), Ok(built)) = (applied, built) {
                assert_same_lookups(&applied, &built, &next);
                assert_index_entries_follow_records(&applied);
                assert_index_entries_follow_records(&built);
                // Slots of the EIPs that stayed did not move.
                for e in &spec.eips {
                    if let Some(now) = applied.eip_slot(e.address) {
                        prop_assert_eq!(Some(now), t.eip_slot(e.address));
                    }
                }
                prop_assert!(applied.slot_capacity() >= t.slot_capacity());
                prop_assert!(applied.slot_capacity() <= next.eips.len().max(t.slot_capacity()));
                t = applied;
                spec = next;
                accepted += 1;
            }
        }
        let _ = accepted;
    }
}

#[test]
fn a_rejected_delta_reports_what_a_build_reports() {
    let mut spec = pop();
    spec.eips = vec![one_to_one(1, "bj"), one_to_one(2, "bj")].into();
    let t = Tables::build(&spec, 1).unwrap();
    let mut next = spec.clone();
    let mut taker = one_to_one(3, "bj");
    taker.backend = one_to_one(1, "bj").backend;
    next.eips.push(taker.clone());
    let delta = TableDelta {
        upsert: vec![taker],
        ..Default::default()
    };
    let applied = t.apply(&delta, &next, 2, 2).unwrap_err();
    let built = Tables::build_all(&next, 2).unwrap_err();
    assert_eq!(applied, built);
    assert_eq!(applied[0].key_path(), "eips[2].backend");
    let mut bad = one_to_one(4, "nowhere");
    bad.backend = Some("2001:db8::1".parse().unwrap());
    let taken = next.eips.nth(2).unwrap().address;
    next.eips.remove(taken);
    next.eips.push(bad.clone());
    let delta = TableDelta {
        upsert: vec![bad],
        ..Default::default()
    };
    let applied = t.apply(&delta, &next, 2, 2).unwrap_err();
    let built = Tables::build_all(&next, 2).unwrap_err();
    assert_eq!(applied, built);
}

#[test]
fn max_eips_refuses_a_description_or_a_delta_with_more_eips() {
    let mut spec = big(2);
    spec.pop.max_eips = Some(2);
    let t = Tables::build(&spec, 1).unwrap();
    let mut next = spec.clone();
    let third = one_to_one(3, "bj");
    next.eips.push(third.clone());
    let delta = TableDelta {
        upsert: vec![third],
        ..Default::default()
    };
    let applied = t.apply(&delta, &next, 2, 2).unwrap_err();
    assert_eq!(applied, Tables::build_all(&next, 2).unwrap_err());
    assert_eq!(applied[0].key_path(), "pop.max_eips");
    assert!(applied[0]
        .reason()
        .contains("3 EIPs, more than max_eips = 2"));
    // Raised with the change: accepted.
    next.pop.max_eips = Some(3);
    let delta = TableDelta {
        small_parts: true,
        ..delta
    };
    assert_eq!(t.apply(&delta, &next, 2, 2).unwrap().eips.len(), 3);
    next.pop.max_eips = Some(0);
    let zero = Tables::build_all(&next, 2).unwrap_err();
    assert_eq!(zero[0].reason(), "must be at least 1");
}

#[test]
fn slots_stay_and_are_reused_and_changes_share_the_rest() {
    let spec = big(5000);
    let t = Tables::build(&spec, 1).unwrap();
    assert_eq!((t.slot_capacity(), t.generation), (5000, 1));
    let gone = spec.eips.nth(10).unwrap().address;
    let mut next = spec.clone();
    next.eips.remove(gone);
    let delta = TableDelta {
        remove: vec![gone],
        ..Default::default()
    };
    let u = t.apply(&delta, &next, 2, 2).unwrap();
    assert_eq!(u.eip_slot(gone), None);
    assert_eq!(u.eip_slot(spec.eips.nth(11).unwrap().address), Some(11));
    assert_eq!(u.slot_capacity(), 5000);
    assert_eq!(
        u.eips.shared_chunks(&t.eips),
        4,
        "one of five chunks copied"
    );
    assert!(u.eip_v4.shared_shards(&t.eip_v4) >= super::sharded::SHARDS - 1);
    // A new EIP takes the freed slot.
    let fresh = one_to_one(90_000, "sh");
    next.eips.push(fresh.clone());
    let delta = TableDelta {
        upsert: vec![fresh.clone()],
        ..Default::default()
    };
    let w = u.apply(&delta, &next, 3, 3).unwrap();
    assert_eq!(w.eip_slot(fresh.address), Some(10));
    assert_eq!(w.slot_capacity(), 5000);
    // A rebuild keeps slots too, even with the regions reordered.
    next.regions.swap(0, 1);
    let r = Tables::rebuild(&next, &w, 4, 4).unwrap();
    assert_eq!(r.eip_slot(fresh.address), Some(10));
    assert_eq!(r.eip_slot(spec.eips.nth(4999).unwrap().address), Some(4999));
    assert_eq!(r.regions[0].name, "sh");
    assert_same_lookups(&r, &Tables::build(&next, 4).unwrap(), &next);
}

#[test]
fn health_overlays_rebuild_only_what_they_change() {
    let mut spec = big(3000);
    spec.eips.nth_mut(0).unwrap().services = thin_vec::thin_vec![ServiceSpec {
        check: None,
        protocol: Protocol::Tcp,
        port: 80,
        backends: (1..=3)
            .map(|i| BackendSpec {
                address: IpAddr::V4(Ipv4Addr::new(10, 9, 0, i)),
                port: None,
                weight: 1,
            })
            .collect(),
    }];
    let t = Tables::build(&spec, 7).unwrap();
    // bj-a down: bj's table holds bj-b only; everything EIP is shared.
    let h = t.with_path_states(&[(0, PathState::Down)], 8);
    assert_eq!((h.version, h.generation), (7, 8));
    assert!(h.regions[0].path_table.iter().all(|&p| p == 1));
    assert!(!h.regions[0].panic);
    assert_eq!(h.regions[1].path_table, t.regions[1].path_table);
    assert_eq!(h.eips.shared_chunks(&t.eips), 3);
    assert_eq!(
        h.owner_v4.shared_shards(&t.owner_v4),
        t.owner_v4.shared_shards(&t.owner_v4)
    );
    // Both down: the fallback ("panic") set; disabled: nothing.
    let p = h.with_path_states(&[(1, PathState::Down)], 9);
    assert!(p.regions[0].panic && !p.regions[0].path_table.is_empty());
    let d = p.with_path_states(&[(0, PathState::Disabled), (1, PathState::Disabled)], 10);
    assert!(d.regions[0].path_table.is_empty());
    // Each matches a build of a description with those states.
    let mut down = spec.clone();
    down.paths[0].state = PathState::Down;
    down.paths[1].state = PathState::Down;
    assert_same_lookups(&p, &Tables::build(&down, 7).unwrap(), &down);

    let b = super::BackendRef {
        eip: spec.eips.nth(0).unwrap().address,
        protocol: Protocol::Tcp,
        port: 80,
        backend: IpAddr::V4(Ipv4Addr::new(10, 9, 0, 2)),
        backend_port: 80,
    };
    let sick = t.with_backend_health(&b, false, 11).unwrap();
    let service = &sick.eips.at(0).services[0];
    assert!(!service.backends[1].healthy);
    assert!(!service.maglev.is_empty() && !service.maglev.contains(&1));
    assert_eq!(sick.eips.shared_chunks(&t.eips), 2);
    // Unhealthy looks up like drained in the description.
    let mut drained = spec.clone();
    drained.eips.nth_mut(0).unwrap().services[0].backends[1].weight = 0;
    let want = Tables::build(&drained, 7).unwrap();
    assert_eq!(service.maglev, want.eips.at(0).services[0].maglev);
    let well = sick.with_backend_health(&b, true, 12).unwrap();
    assert_index_entries_follow_records(&sick);
    assert_index_entries_follow_records(&well);
    assert_eq!(
        well.eips.at(0).services[0].maglev,
        t.eips.at(0).services[0].maglev
    );
    let nobody = super::BackendRef { port: 81, ..b };
    assert!(t.with_backend_health(&nobody, false, 13).is_none());
}

/// Figures for the report: build and one-EIP apply times, heap bytes per 1:1 EIP.
/// `cargo test -p eip-dataplane --release --all-features measure_ -- --ignored --nocapture`
#[test]
#[ignore = "measurement, prints figures: run with --ignored --nocapture"]
fn measure_build_apply_and_bytes_per_eip() {
    for n in [1_000u32, 100_000, 1_000_000] {
        let spec = big(n);
        let mut builds = Vec::new();
        let mut t = None;
        for _ in 0..3 {
            let start = Instant::now();
            let built = Tables::build(&spec, 1).unwrap();
            builds.push(start.elapsed());
            // The previous snapshot is freed outside the timing (off the build,
            // as the control side frees old snapshots).
            t = Some(built);
        }
        builds.sort();
        let t = t.unwrap();
        let mut next = spec.clone();
        let mut applies = Vec::new();
        let mut cur = t.clone();
        for k in 0..21u32 {
            let e = one_to_one(n + 10 + k, "bj");
            next.eips.push(e.clone());
            let delta = TableDelta {
                upsert: vec![e],
                remove: vec![next.eips.nth(k as usize).unwrap().address],
                ..Default::default()
            };
            let start = Instant::now();
            let u = cur
                .apply(&delta, &next, 2 + k as u64, 2 + k as u64)
                .unwrap();
            applies.push(start.elapsed());
            cur = u;
        }
        applies.sort();
        let mut health = Vec::new();
        for k in 0..21 {
            let start = Instant::now();
            let h = t.with_path_states(&[(0, PathState::Down)], 100 + k);
            health.push(start.elapsed());
            drop(h);
        }
        health.sort();
        println!(
            "measure: {n} 1:1 EIPs: build median {:?}, apply (1 add + 1 remove) median {:?}, path health median {:?}, heap {} bytes = {:.1} bytes/EIP",
            builds[1],
            applies[10],
            health[10],
            t.heap_bytes(),
            t.heap_bytes() as f64 / n as f64
        );
    }
}
