//! Validation and construction of a [`Tables`] snapshot. Runs on the control side.

use super::spec::{PathState, PopSpec, PortRole};
use super::{
    addr_key, Backend, Eip, EipId, Path, Port, Region, RegionId, Service, TableError, Tables,
    ENCAP_IP_OVERHEAD,
};
use crate::flow::{fmix64, FastMod};
use crate::frame::PortId;
use crate::maglev;
use crate::pipeline::EncapRepr;
use rustc_hash::FxHashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;

/// Smallest path MTU accepted: leaves the IPv4 minimum of 576 for the inner packet.
pub const MIN_PATH_MTU: u16 = 576 + ENCAP_IP_OVERHEAD;
/// Largest path MTU accepted (jumbo frames).
pub const MAX_PATH_MTU: u16 = 9216;
/// IPv6 links must carry 1280-byte packets (RFC 8200 §5).
const IPV6_MIN_MTU: u16 = 1280;

pub(super) fn build(spec: &PopSpec, version: u64) -> Result<Tables, TableError> {
    let pop = &spec.pop;
    if pop.vxlan_port == 0 {
        return invalid("pop", "vxlan_port", "must not be 0");
    }
    if pop.outer_ttl == 0 {
        return invalid("pop", "outer_ttl", "must be at least 1");
    }

    let ports = build_ports(spec)?;
    let internet: Vec<usize> = (0..ports.len())
        .filter(|&i| matches!(ports[i].role, PortRole::Internet | PortRole::Both))
        .collect();
    if internet.len() != 1 {
        return Err(TableError::InternetPort {
            found: internet.len(),
        });
    }
    let internet_port = internet[0] as PortId;
    if ports[internet[0]].gateway_mac.is_none() {
        return invalid(
            &format!("ports[{}] ({:?})", internet[0], ports[internet[0]].name),
            "gateway_mac",
            "the Internet-facing port needs the MAC of its next hop: set gateway_mac, or \
             gateway (an address `eipd run` looks up in the kernel's neighbour table)",
        );
    }

    let mut regions = Vec::with_capacity(spec.regions.len());
    let mut region_index: FxHashMap<&str, RegionId> = FxHashMap::default();
    let mut tunnels = FxHashMap::default();
    for (i, r) in spec.regions.iter().enumerate() {
        let entry = format!("regions[{i}] ({:?})", r.name);
        unique_name("region", &r.name, i, &mut region_index)?;
        if r.vni >= 1 << 24 {
            return invalid(&entry, "vni", "must fit in 24 bits (0..=16777215)");
        }
        if tunnels
            .insert((u32::from(r.vtep), r.vni), i as RegionId)
            .is_some()
        {
            return invalid(
                &entry,
                "vni",
                "another region already uses this VTEP and VNI",
            );
        }
        regions.push(Region {
            name: r.name.clone(),
            vni: r.vni,
            vtep: r.vtep,
            inner_mac: r.inner_mac.0,
            probe_target: r.probe_target,
            paths: Vec::new(),
            path_table: Box::default(),
            path_mod: FastMod::new(1),
            panic: false,
        });
    }
    if regions.len() > RegionId::MAX as usize {
        return invalid("regions", "", "too many regions");
    }

    let mut paths = Vec::with_capacity(spec.paths.len());
    let mut path_index: FxHashMap<&str, RegionId> = FxHashMap::default();
    for (i, p) in spec.paths.iter().enumerate() {
        let entry = format!("paths[{i}] ({:?})", p.name);
        unique_name("path", &p.name, i, &mut path_index)?;
        let region = lookup(&region_index, &p.region, &entry, "region", "region")?;
        let port = ports
            .iter()
            .position(|x| x.name == p.port)
            .ok_or_else(|| unknown(&entry, "port", "port", &p.port))?;
        if ports[port].role == PortRole::Internet {
            return invalid(
                &entry,
                "port",
                "must be a port with role \"backbone\" or \"both\"",
            );
        }
        if !(MIN_PATH_MTU..=MAX_PATH_MTU).contains(&p.mtu) {
            return invalid(
                &entry,
                "mtu",
                &format!("{} is outside {MIN_PATH_MTU}..={MAX_PATH_MTU}", p.mtu),
            );
        }
        let Some(next_hop_mac) = p.next_hop_mac else {
            return invalid(
                &entry,
                "next_hop_mac",
                &match p.next_hop {
                    Some(ip) => format!("the MAC of next hop {ip} is not known (not in the neighbour table yet)"),
                    None => "set next_hop_mac, or next_hop (an address `eipd run` looks up in the kernel's neighbour table)".to_string(),
                },
            );
        };
        let r = &spec.regions[region as usize];
        let source = p.source.unwrap_or(pop.vtep);
        let destination = p.destination.unwrap_or(r.vtep);
        if destination != r.vtep {
            tunnels
                .entry((u32::from(destination), r.vni))
                .or_insert(region);
        }
        let template = EncapRepr {
            next_hop_mac: next_hop_mac.0,
            port_mac: ports[port].mac,
            src: source.octets(),
            dst: destination.octets(),
            ttl: pop.outer_ttl,
            vxlan_port: pop.vxlan_port,
            vni: r.vni,
            inner_dst_mac: r.inner_mac.0,
            inner_src_mac: pop.inner_mac.0,
        }
        .emit();
        regions[region as usize].paths.push(i as u16);
        paths.push(Path {
            name: p.name.clone(),
            region,
            port: port as PortId,
            mtu: p.mtu,
            weight: p.weight,
            state: p.state,
            source,
            destination,
            template,
            inner_mtu: p.mtu - ENCAP_IP_OVERHEAD,
        });
    }
    if paths.len() > u16::MAX as usize {
        return invalid("paths", "", "too many paths");
    }
    for region in &mut regions {
        fill_path_table(region, &paths);
    }

    let mut local_vteps = vec![pop.vtep];
    local_vteps.extend(spec.paths.iter().filter_map(|p| p.source));
    local_vteps.extend(pop.extra_vteps.iter().copied());
    local_vteps.sort();
    local_vteps.dedup();
    if let Some(pos) = local_vteps.iter().position(|&v| v == pop.vtep) {
        local_vteps.swap(0, pos);
    }

    let mut tables = Tables {
        version,
        pop_name: pop.name.clone(),
        vxlan_port: pop.vxlan_port,
        inner_mac: pop.inner_mac.0,
        outer_ttl: pop.outer_ttl,
        probe_source: pop.probe_source.map(|a| a.octets()),
        local_vteps,
        ports,
        internet_port,
        regions,
        paths,
        eips: Vec::with_capacity(spec.eips.len()),
        services: Vec::new(),
        eip_v4: FxHashMap::default(),
        eip_v6: FxHashMap::default(),
        tunnels,
        backend_owner: FxHashMap::default(),
        service_return: FxHashMap::default(),
    };
    add_eips(spec, &region_index, &mut tables)?;
    Ok(tables)
}

fn build_ports(spec: &PopSpec) -> Result<Vec<Port>, TableError> {
    let mut names: FxHashMap<&str, u16> = FxHashMap::default();
    let mut ports = Vec::with_capacity(spec.ports.len());
    for (i, p) in spec.ports.iter().enumerate() {
        unique_name("port", &p.name, i, &mut names)?;
        ports.push(Port {
            name: p.name.clone(),
            role: p.role,
            interface: p.interface.clone(),
            mac: p.mac.0,
            gateway_mac: p.gateway_mac.map(|m| m.0),
        });
    }
    if ports.len() > 64 {
        return invalid("ports", "", "at most 64 ports");
    }
    Ok(ports)
}

fn add_eips(
    spec: &PopSpec,
    region_index: &FxHashMap<&str, RegionId>,
    t: &mut Tables,
) -> Result<(), TableError> {
    t.eip_v4.reserve(spec.eips.len());
    t.backend_owner.reserve(spec.eips.len());
    for (i, e) in spec.eips.iter().enumerate() {
        let id = i as EipId;
        let entry = || format!("eips[{i}] ({})", e.address);
        let region = match region_index.get(e.region.as_str()) {
            Some(&r) => r,
            None => return Err(unknown(&entry(), "region", "region", &e.region)),
        };
        let first = match e.address {
            IpAddr::V4(a) => t.eip_v4.insert(u32::from(a), id),
            IpAddr::V6(a) => t.eip_v6.insert(u128::from(a), id),
        };
        if let Some(first) = first {
            return Err(TableError::DuplicateEip {
                address: e.address,
                first: first as usize,
                second: i,
            });
        }
        if e.backend.is_none() && e.services.is_empty() {
            return invalid(
                &entry(),
                "backend",
                "an EIP needs a backend, services, or both",
            );
        }
        if e.address.is_ipv6() {
            for &p in &t.regions[region as usize].paths {
                let path = &t.paths[p as usize];
                if path.inner_mtu < IPV6_MIN_MTU {
                    return invalid(
                        &format!("paths[{p}] ({:?})", path.name),
                        "mtu",
                        &format!(
                            "region {:?} carries IPv6 EIP {}; IPv6 needs an inner MTU of {IPV6_MIN_MTU}, so the path MTU must be at least {}",
                            t.regions[region as usize].name,
                            e.address,
                            IPV6_MIN_MTU + ENCAP_IP_OVERHEAD
                        ),
                    );
                }
            }
        }
        let claim = |addr: IpAddr, field: &'static str, t: &mut Tables| {
            if addr.is_ipv4() != e.address.is_ipv4() {
                return invalid(
                    &entry(),
                    field,
                    &format!(
                        "backend {addr} is not of the EIP's address family (NAT between IPv4 and IPv6 is not supported)"
                    ),
                );
            }
            match t.backend_owner.entry((region, addr_key(addr))) {
                Entry::Vacant(v) => {
                    v.insert(id);
                    Ok(())
                }
                Entry::Occupied(o) if *o.get() == id => Ok(()),
                Entry::Occupied(o) => {
                    // EIP ids are indexes into spec.eips.
                    let other = *o.get() as usize;
                    Err(TableError::BackendConflict {
                        entry: entry(),
                        backend: addr,
                        other: format!("eips[{other}] ({})", spec.eips[other].address),
                    })
                }
            }
        };
        if let Some(b) = e.backend {
            claim(b, "backend", t)?;
        }
        let services_start = t.services.len() as u32;
        for (s_index, s) in e.services.iter().enumerate() {
            let s_entry = format!(
                "{}: services[{s_index}] ({:?}/{})",
                entry(),
                s.protocol,
                s.port
            );
            if s.port == 0 {
                return invalid(&s_entry, "port", "must not be 0");
            }
            if e.services[..s_index]
                .iter()
                .any(|o| o.protocol == s.protocol && o.port == s.port)
            {
                return invalid(&s_entry, "port", "this protocol and port is defined twice");
            }
            if s.backends.is_empty() {
                return invalid(&s_entry, "backends", "a service needs at least one backend");
            }
            if s.backends.len() > maglev::MAX_BACKENDS {
                return invalid(
                    &s_entry,
                    "backends",
                    &format!("at most {} backends per service", maglev::MAX_BACKENDS),
                );
            }
            let mut backends = Vec::with_capacity(s.backends.len());
            for (b_index, b) in s.backends.iter().enumerate() {
                let port = b.port.unwrap_or(s.port);
                if port == 0 {
                    return invalid(
                        &format!("{s_entry}: backends[{b_index}]"),
                        "port",
                        "must not be 0",
                    );
                }
                if backends
                    .iter()
                    .any(|x: &Backend| x.address == b.address && x.port == port)
                {
                    return invalid(
                        &format!("{s_entry}: backends[{b_index}]"),
                        "address",
                        &format!("{}:{port} is listed twice", b.address),
                    );
                }
                claim(b.address, "services.backends.address", t)?;
                let key = (region, addr_key(b.address), s.protocol.number(), port);
                if let Some(previous) = t.service_return.insert(key, s.port) {
                    if previous != s.port {
                        return invalid(
                            &format!("{s_entry}: backends[{b_index}]"),
                            "port",
                            &format!(
                                "{}:{port} already serves port {previous}; returns from it could not be told apart",
                                b.address
                            ),
                        );
                    }
                }
                backends.push(Backend {
                    address: b.address,
                    port,
                    weight: b.weight,
                });
            }
            let keyed: Vec<(u64, u32)> = backends
                .iter()
                .map(|b| (maglev::backend_key(b.address, b.port), b.weight))
                .collect();
            let table = maglev::build(&keyed, maglev::table_size_for(backends.len()));
            t.services.push(Service {
                protocol: s.protocol.number(),
                port: s.port,
                backends: backends.into_boxed_slice(),
                maglev: table.into_boxed_slice(),
            });
        }
        t.eips.push(Eip {
            address: e.address,
            region,
            backend: e.backend,
            services_start,
            services_len: e.services.len() as u16,
        });
    }
    Ok(())
}

/// Flow-hash slots of a region's path choice: Maglev over the paths that are up; if
/// none is, over those that are down but not disabled (better to try than to drop
/// for sure: the prober may be wrong); if none is, empty (traffic dropped, `no_path`).
fn fill_path_table(region: &mut Region, paths: &[Path]) {
    let pick = |state: PathState| -> Vec<u16> {
        region
            .paths
            .iter()
            .copied()
            .filter(|&p| paths[p as usize].state == state && paths[p as usize].weight > 0)
            .collect()
    };
    let mut usable = pick(PathState::Up);
    region.panic = false;
    if usable.is_empty() {
        usable = pick(PathState::Down);
        region.panic = !usable.is_empty();
    }
    if usable.is_empty() {
        region.path_table = Box::default();
        return;
    }
    let keyed: Vec<(u64, u32)> = usable
        .iter()
        .map(|&p| (path_key(&paths[p as usize].name), paths[p as usize].weight))
        .collect();
    let slots = maglev::build(&keyed, maglev::table_size_for(usable.len()));
    region.path_table = slots.into_iter().map(|i| usable[i as usize]).collect();
    region.path_mod = FastMod::new(region.path_table.len() as u32);
}

/// Identity of a path for Maglev: FNV-1a 64 of its name, mixed.
pub fn path_key(name: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01B3);
    }
    fmix64(h)
}

fn unique_name<'a>(
    kind: &'static str,
    name: &'a str,
    index: usize,
    seen: &mut FxHashMap<&'a str, u16>,
) -> Result<(), TableError> {
    if name.is_empty() {
        return invalid(&format!("{kind}s[{index}]"), "name", "must not be empty");
    }
    if let Some(&first) = seen.get(name) {
        return Err(TableError::DuplicateName {
            kind,
            name: name.to_string(),
            first: first as usize,
            second: index,
        });
    }
    seen.insert(name, index as u16);
    Ok(())
}

fn lookup(
    index: &FxHashMap<&str, u16>,
    name: &str,
    entry: &str,
    field: &'static str,
    kind: &'static str,
) -> Result<u16, TableError> {
    index
        .get(name)
        .copied()
        .ok_or_else(|| unknown(entry, field, kind, name))
}

fn unknown(entry: &str, field: &'static str, kind: &'static str, name: &str) -> TableError {
    TableError::UnknownReference {
        entry: entry.to_string(),
        field,
        kind,
        name: name.to_string(),
    }
}

fn invalid<T>(entry: &str, field: &'static str, reason: &str) -> Result<T, TableError> {
    Err(TableError::InvalidValue {
        entry: entry.to_string(),
        field,
        reason: reason.to_string(),
    })
}
