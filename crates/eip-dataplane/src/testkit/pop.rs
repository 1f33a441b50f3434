//! POP descriptions for tests and benchmarks: one addressing plan and a builder, so
//! a test states what its POP has (regions, paths, EIPs, services) and not the
//! dozen fields every port and path needs.
//!
//! ```
//! use eip_dataplane::testkit::pop::{self, PopBuilder};
//!
//! // One region over two backbone paths, 1,000 1:1 EIPs.
//! let tables = PopBuilder::new("bench")
//!     .region(pop::region("bj", pop::VNI, pop::REGION_VTEP))
//!     .paths("bj", "backbone", 2, 1550)
//!     .one_to_one_eips(1000, "bj")
//!     .tables();
//! assert_eq!((tables.paths.len(), tables.eips.len()), (2, 1000));
//! ```

use crate::tables::spec::{
    BackendSpec, EipSpec, MacAddr, PathSpec, PathState, PopSection, PopSpec, PortRole, PortSpec,
    Protocol, RegionSpec, ServiceSpec,
};
use crate::tables::Tables;
use std::net::{IpAddr, Ipv4Addr};

/// Our VTEP.
pub const POP_VTEP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The VTEP of the first region.
pub const REGION_VTEP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// VNI of the first region.
pub const VNI: u32 = 100;
/// Our MAC on the Internet-facing port.
pub const INTERNET_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
/// The Internet gateway's MAC: source of client frames, destination of returns.
pub const GATEWAY_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
/// Our MAC on the backbone port.
pub const BACKBONE_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
/// Source MAC of the inner frames we put into tunnels.
pub const POP_INNER_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
/// Inner destination MAC: the regions' VXLAN devices.
pub const REGION_INNER_MAC: [u8; 6] = [2, 0, 0, 0, 0x10, 1];

/// MAC of the next hop of path `i` (as [`PopBuilder::paths`] numbers them).
pub const fn next_hop_mac(i: u8) -> [u8; 6] {
    [2, 0, 0, 0, 2, i]
}

/// EIP `i` of [`PopBuilder::one_to_one_eips`]: 198.18.0.0/15 (RFC 2544
/// benchmarking) for the first 131,072, then 100.64.0.0/10.
pub const fn eip_addr(i: u32) -> Ipv4Addr {
    if i < 131_072 {
        Ipv4Addr::from_bits(0xC612_0000 + i)
    } else {
        Ipv4Addr::from_bits(0x6440_0000 + i)
    }
}

/// Backend of EIP `i` of [`PopBuilder::one_to_one_eips`]: in 10.0.0.0/8.
pub const fn backend_addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::from_bits(0x0A00_0000 + i)
}

/// The Internet-facing port, `internet`.
pub fn internet_port(mac: [u8; 6], gateway_mac: [u8; 6]) -> PortSpec {
    PortSpec {
        name: "internet".into(),
        role: PortRole::Internet,
        interface: None,
        mac: MacAddr(mac),
        gateway_mac: Some(MacAddr(gateway_mac)),
        gateway: None,
    }
}

/// A backbone port.
pub fn backbone_port(name: &str, mac: [u8; 6]) -> PortSpec {
    PortSpec {
        name: name.into(),
        role: PortRole::Backbone,
        interface: None,
        mac: MacAddr(mac),
        gateway_mac: None,
        gateway: None,
    }
}

/// A region with inner MAC [`REGION_INNER_MAC`] and no probe target (set
/// `probe_target` with struct update syntax to probe its paths).
pub fn region(name: &str, vni: u32, vtep: Ipv4Addr) -> RegionSpec {
    RegionSpec {
        name: name.into(),
        vni,
        vtep,
        inner_mac: MacAddr(REGION_INNER_MAC),
        probe_target: None,
    }
}

/// A path that is up, weight 1, between the default outer addresses.
pub fn path(name: &str, region: &str, port: &str, next_hop_mac: [u8; 6], mtu: u16) -> PathSpec {
    PathSpec {
        name: name.into(),
        region: region.into(),
        port: port.into(),
        next_hop_mac: Some(MacAddr(next_hop_mac)),
        next_hop: None,
        source: None,
        destination: None,
        mtu,
        weight: 1,
        state: PathState::Up,
    }
}

/// A 1:1 EIP: all its traffic to `backend`.
pub fn one_to_one(address: impl Into<IpAddr>, region: &str, backend: impl Into<IpAddr>) -> EipSpec {
    EipSpec::new(address.into(), region, Some(backend.into()))
}

/// An EIP with services and no 1:1 backend.
pub fn service_eip(
    address: impl Into<IpAddr>,
    region: &str,
    services: impl IntoIterator<Item = ServiceSpec>,
) -> EipSpec {
    EipSpec {
        address: address.into(),
        region: region.into(),
        backend: None,
        services: services.into_iter().collect(),
        extras: None,
    }
}

/// A service: `protocol`/`port` spread over `backends`.
pub fn service(
    protocol: Protocol,
    port: u16,
    backends: impl IntoIterator<Item = BackendSpec>,
) -> ServiceSpec {
    ServiceSpec {
        check: None,
        protocol,
        port,
        backends: backends.into_iter().collect(),
    }
}

/// A service backend; `port` `None` keeps the service's port.
pub fn backend(address: impl Into<IpAddr>, port: Option<u16>, weight: u32) -> BackendSpec {
    BackendSpec {
        address: address.into(),
        port,
        weight,
    }
}

/// A [`PopSpec`] under construction.
#[derive(Debug, Clone)]
pub struct PopBuilder {
    spec: PopSpec,
}

impl PopBuilder {
    /// A POP named `name`: VTEP [`POP_VTEP`], VXLAN port 4789, outer TTL 64, inner
    /// MAC [`POP_INNER_MAC`], no probe source; ports `internet` ([`INTERNET_MAC`],
    /// gateway [`GATEWAY_MAC`]) and `backbone` ([`BACKBONE_MAC`]); no region, path
    /// or EIP yet.
    pub fn new(name: &str) -> Self {
        PopBuilder {
            spec: PopSpec {
                bgp: None,
                protection: Default::default(),
                pop: PopSection {
                    max_eips: None,
                    eips_file: None,
                    backend_check: None,
                    name: name.into(),
                    vtep: POP_VTEP,
                    extra_vteps: vec![],
                    vxlan_port: 4789,
                    inner_mac: MacAddr(POP_INNER_MAC),
                    outer_ttl: 64,
                    probe_source: None,
                },
                ports: vec![
                    internet_port(INTERNET_MAC, GATEWAY_MAC),
                    backbone_port("backbone", BACKBONE_MAC),
                ],
                regions: vec![],
                paths: vec![],
                eips: Default::default(),
                limits: None,
            },
        }
    }

    /// The inner source address of path probes.
    pub fn probe_source(mut self, address: Ipv4Addr) -> Self {
        self.spec.pop.probe_source = Some(address);
        self
    }

    /// Replaces the ports.
    pub fn ports(mut self, ports: impl IntoIterator<Item = PortSpec>) -> Self {
        self.spec.ports = ports.into_iter().collect();
        self
    }

    /// Adds a port.
    pub fn port(mut self, port: PortSpec) -> Self {
        self.spec.ports.push(port);
        self
    }

    /// Adds a region (see [`region`]).
    pub fn region(mut self, region: RegionSpec) -> Self {
        self.spec.regions.push(region);
        self
    }

    /// Adds a path (see [`path`]).
    pub fn path(mut self, path: PathSpec) -> Self {
        self.spec.paths.push(path);
        self
    }

    /// Adds `n` paths `path0`, `path1`... to `region`, all leaving on `port`, path
    /// `i` through next hop [`next_hop_mac`]`(i)`.
    pub fn paths(mut self, region: &str, port: &str, n: u8, mtu: u16) -> Self {
        for i in 0..n {
            let p = path(&format!("path{i}"), region, port, next_hop_mac(i), mtu);
            self.spec.paths.push(p);
        }
        self
    }

    /// Adds an EIP (see [`one_to_one`], [`service_eip`]).
    pub fn eip(mut self, eip: EipSpec) -> Self {
        self.spec.eips.push(eip);
        self
    }

    /// Adds `n` 1:1 EIPs in `region`: [`eip_addr`]`(i)` to [`backend_addr`]`(i)`.
    pub fn one_to_one_eips(mut self, n: u32, region: &str) -> Self {
        for i in 0..n {
            self.spec
                .eips
                .push(one_to_one(eip_addr(i), region, backend_addr(i)));
        }
        self
    }

    /// Changes anything else the builder has no method for.
    pub fn edit(mut self, f: impl FnOnce(&mut PopSpec)) -> Self {
        f(&mut self.spec);
        self
    }

    /// The description.
    pub fn spec(self) -> PopSpec {
        self.spec
    }

    /// The tables built from the description, version 1.
    ///
    /// # Panics
    /// If the description is invalid, with the [`crate::tables::TableError`].
    pub fn tables(self) -> Tables {
        Tables::build(&self.spec, 1).unwrap_or_else(|e| panic!("test POP is invalid: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_plan() {
        assert_eq!(eip_addr(0), Ipv4Addr::new(198, 18, 0, 0));
        assert_eq!(eip_addr(131_071), Ipv4Addr::new(198, 19, 255, 255));
        assert_eq!(eip_addr(131_072), Ipv4Addr::new(100, 66, 0, 0));
        assert_eq!(backend_addr(1_000_000), Ipv4Addr::new(10, 15, 66, 64));
    }

    #[test]
    fn builds_services_and_several_paths() {
        let t = PopBuilder::new("t")
            .region(region("bj", VNI, REGION_VTEP))
            .paths("bj", "backbone", 3, 1500)
            .eip(service_eip(
                Ipv4Addr::new(192, 0, 2, 20),
                "bj",
                [service(
                    Protocol::Udp,
                    53,
                    [backend(Ipv4Addr::new(10, 1, 0, 21), Some(5353), 1)],
                )],
            ))
            .one_to_one_eips(2, "bj")
            .tables();
        assert_eq!(t.regions[0].paths, vec![0, 1, 2]);
        assert_eq!(t.paths[2].name, "path2");
        let services: usize = t.eips.iter().map(|(_, e)| e.services.len()).sum();
        assert_eq!(services, 1);
        assert_eq!(t.eips.len(), 3);
        assert!(t.eip_v4(eip_addr(1).octets()).is_some());
    }

    /// What the prober's tests build: probing configured, one backbone port per
    /// path, two paths to one region. Written out in full as the prober has it.
    #[test]
    fn expresses_the_prober_fixture() {
        let mac = MacAddr;
        let bb = |i: u8| [2, 0, 0, 0, 1, 0x20 + i];
        let hop = |i: u8| [2, 0, 0, 0, 0x10, 0x20 + i];
        let built = PopBuilder::new("test")
            .probe_source(Ipv4Addr::new(10, 255, 0, 1))
            .ports([
                internet_port([2, 0, 0, 0, 1, 0x10], [2, 0, 0, 0, 2, 0x10]),
                backbone_port("backbone0", bb(0)),
                backbone_port("backbone1", bb(1)),
            ])
            .region(RegionSpec {
                probe_target: Some(Ipv4Addr::new(10, 255, 0, 2)),
                ..region("beijing", VNI, REGION_VTEP)
            })
            .path(path("bb0", "beijing", "backbone0", hop(0), 1550))
            .path(path("bb1", "beijing", "backbone1", hop(1), 1550))
            .eip(one_to_one(
                Ipv4Addr::new(192, 0, 2, 10),
                "beijing",
                Ipv4Addr::new(10, 1, 0, 10),
            ))
            .spec();
        let backbone = |i: u8| PortSpec {
            name: format!("backbone{i}"),
            role: PortRole::Backbone,
            interface: None,
            mac: mac(bb(i)),
            gateway_mac: None,
            gateway: None,
        };
        let path = |i: u8| PathSpec {
            name: format!("bb{i}"),
            region: "beijing".into(),
            port: format!("backbone{i}"),
            next_hop_mac: Some(mac(hop(i))),
            next_hop: None,
            source: None,
            destination: None,
            mtu: 1550,
            weight: 1,
            state: PathState::Up,
        };
        let expected = PopSpec {
            bgp: None,
            protection: Default::default(),
            pop: PopSection {
                max_eips: None,
                eips_file: None,
                backend_check: None,
                name: "test".into(),
                vtep: POP_VTEP,
                extra_vteps: vec![],
                vxlan_port: 4789,
                inner_mac: mac(POP_INNER_MAC),
                outer_ttl: 64,
                probe_source: Some(Ipv4Addr::new(10, 255, 0, 1)),
            },
            ports: vec![
                PortSpec {
                    name: "internet".into(),
                    role: PortRole::Internet,
                    interface: None,
                    mac: mac([2, 0, 0, 0, 1, 0x10]),
                    gateway_mac: Some(mac([2, 0, 0, 0, 2, 0x10])),
                    gateway: None,
                },
                backbone(0),
                backbone(1),
            ],
            regions: vec![RegionSpec {
                name: "beijing".into(),
                vni: 100,
                vtep: REGION_VTEP,
                inner_mac: mac(REGION_INNER_MAC),
                probe_target: Some(Ipv4Addr::new(10, 255, 0, 2)),
            }],
            paths: vec![path(0), path(1)],
            eips: vec![EipSpec::new(
                Ipv4Addr::new(192, 0, 2, 10).into(),
                "beijing",
                Some(Ipv4Addr::new(10, 1, 0, 10).into()),
            )]
            .into(),
            limits: None,
        };
        assert_eq!(built, expected);
        Tables::build(&built, 1).unwrap();
    }

    #[test]
    #[should_panic(expected = "test POP is invalid")]
    fn invalid_pops_panic_with_the_reason() {
        PopBuilder::new("t")
            .paths("nowhere", "backbone", 1, 1500)
            .tables();
    }
}
