//! Validation and construction of a [`Tables`] snapshot, in one pass that finds
//! every problem of a description. Runs on the control side.

use super::error::Entry;
use super::sharded::Sharded;
use super::slab::EipSlab;
use super::spec::{PathState, PopSpec, PortRole};
use super::{eips, Path, Port, Region, RegionId, TableError, Tables, ENCAP_IP_OVERHEAD, ENCAP_LEN};
use crate::flow::{fmix64, FastMod};
use crate::frame::PortId;
use crate::maglev;
use crate::pipeline::EncapRepr;
use rustc_hash::FxHashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::net::{IpAddr, Ipv4Addr};

/// Smallest path MTU accepted: leaves the IPv4 minimum of 576 for the inner packet.
pub const MIN_PATH_MTU: u16 = 576 + ENCAP_IP_OVERHEAD;
/// Largest path MTU accepted (jumbo frames).
pub const MAX_PATH_MTU: u16 = 9216;
/// IPv6 links must carry 1280-byte packets (RFC 8200 §5).
const IPV6_MIN_MTU: u16 = 1280;

/// The problems found so far. Checks record a problem and go on, so one pass
/// finds every problem of a description; construction that only matters for a
/// description that builds (Maglev tables, encapsulation templates) is skipped
/// once there is one.
#[derive(Default)]
pub(super) struct Problems(Vec<TableError>);

impl Problems {
    pub(super) fn into_result<T>(self, value: T) -> Result<T, Vec<TableError>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }

    pub(super) fn push(&mut self, e: TableError) {
        self.0.push(e);
    }

    pub(super) fn invalid(&mut self, entry: Entry, field: &'static str, reason: impl Into<String>) {
        self.push(TableError::InvalidValue {
            entry,
            field,
            reason: reason.into(),
        });
    }

    pub(super) fn unknown(
        &mut self,
        entry: Entry,
        field: &'static str,
        kind: &'static str,
        name: &str,
    ) {
        self.push(TableError::UnknownReference {
            entry,
            field,
            kind,
            name: name.to_string(),
        });
    }

    pub(super) fn count(&self) -> usize {
        self.0.len()
    }

    pub(super) fn none(&self) -> bool {
        self.0.is_empty()
    }
}

/// Validates `spec` and builds the snapshot, or returns every problem found, in
/// the order of the description (the first is what [`Tables::build`] reports).
pub(super) fn build(
    spec: &PopSpec,
    version: u64,
    previous: Option<&Tables>,
) -> Result<Tables, Vec<TableError>> {
    let mut problems = Problems::default();
    check_eip_count(spec, &mut problems);
    let mut tables = build_small(spec, version, &mut problems);
    eips::add_all(spec, previous, &mut tables, &mut problems);
    problems.into_result(tables)
}

/// `[pop] max_eips`: at least 1 and no fewer than the description's EIPs. Checked
/// by every build and every delta (it costs nothing: the list knows its length),
/// so a change that would leave more EIPs is refused before anything is applied.
pub(super) fn check_eip_count(spec: &PopSpec, problems: &mut Problems) {
    let Some(max) = spec.pop.max_eips else {
        return;
    };
    if max == 0 {
        problems.invalid(Entry::section("pop"), "max_eips", "must be at least 1");
    } else if spec.eips.len() > max as usize {
        problems.invalid(
            Entry::section("pop"),
            "max_eips",
            format!(
                "the description has {} EIPs, more than max_eips = {max}; raise max_eips \
                 (the XDP filter maps are sized to it when eipd starts) or remove EIPs",
                spec.eips.len()
            ),
        );
    }
}

/// Everything but the EIPs: POP settings, ports, regions with their path tables,
/// paths, tunnels. Cheap (proportional to ports, regions and paths).
pub(super) fn build_small(spec: &PopSpec, version: u64, problems: &mut Problems) -> Tables {
    let pop = &spec.pop;
    if pop.vxlan_port == 0 {
        problems.invalid(Entry::section("pop"), "vxlan_port", "must not be 0");
    }
    if pop.outer_ttl == 0 {
        problems.invalid(Entry::section("pop"), "outer_ttl", "must be at least 1");
    }

    let ports = build_ports(spec, problems);
    let internet: Vec<usize> = (0..ports.len())
        .filter(|&i| matches!(ports[i].role, PortRole::Internet | PortRole::Both))
        .collect();
    if let [i] = internet[..] {
        if ports[i].gateway_mac.is_none() {
            let (field, reason) = match spec.ports[i].gateway {
                Some(ip) => (
                    "gateway",
                    format!(
                        "the MAC of gateway {ip} is not known (not in the neighbour table yet)"
                    ),
                ),
                None => (
                    "gateway_mac",
                    "the Internet-facing port needs the MAC of its next hop: set gateway_mac, or \
                     gateway (an address `eipd run` looks up in the kernel's neighbour table)"
                        .to_string(),
                ),
            };
            problems.invalid(port_entry(spec, i), field, reason);
        }
    } else {
        problems.push(TableError::InternetPort {
            found: internet.len(),
        });
    }
    let internet_port = internet.first().copied().unwrap_or(0) as PortId;

    let mut regions = Vec::with_capacity(spec.regions.len());
    let mut region_index: FxHashMap<&str, RegionId> = FxHashMap::default();
    let mut tunnels = FxHashMap::default();
    for (i, r) in spec.regions.iter().enumerate() {
        let entry = || Entry::item("regions", i).label(format_args!("{:?}", r.name));
        unique_name("region", "regions", &r.name, i, &mut region_index, problems);
        if r.vni >= 1 << 24 {
            problems.invalid(entry(), "vni", "must fit in 24 bits (0..=16777215)");
        } else if let MapEntry::Occupied(first) = tunnels.entry((u32::from(r.vtep), r.vni)) {
            problems.invalid(
                entry(),
                "vni",
                format!("regions[{}] already uses this VTEP and VNI", first.get()),
            );
        } else {
            tunnels.insert((u32::from(r.vtep), r.vni), i as RegionId);
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
        problems.invalid(Entry::section("regions"), "", "too many regions");
    }

    let mut paths = Vec::with_capacity(spec.paths.len());
    let mut path_index: FxHashMap<&str, RegionId> = FxHashMap::default();
    for (i, p) in spec.paths.iter().enumerate() {
        let entry = || Entry::item("paths", i).label(format_args!("{:?}", p.name));
        let before = problems.count();
        unique_name("path", "paths", &p.name, i, &mut path_index, problems);
        let region = region_index.get(p.region.as_str()).copied();
        if region.is_none() {
            problems.unknown(entry(), "region", "region", &p.region);
        }
        let port = ports.iter().position(|x| x.name == p.port);
        match port {
            None => problems.unknown(entry(), "port", "port", &p.port),
            Some(port) if ports[port].role == PortRole::Internet => problems.invalid(
                entry(),
                "port",
                "must be a port with role \"backbone\" or \"both\"",
            ),
            Some(_) => {}
        }
        if !(MIN_PATH_MTU..=MAX_PATH_MTU).contains(&p.mtu) {
            problems.invalid(
                entry(),
                "mtu",
                format!("{} is outside {MIN_PATH_MTU}..={MAX_PATH_MTU}", p.mtu),
            );
        }
        if p.next_hop_mac.is_none() {
            match p.next_hop {
                Some(ip) => problems.invalid(
                    entry(),
                    "next_hop",
                    format!("the MAC of next hop {ip} is not known (not in the neighbour table yet)"),
                ),
                None => problems.invalid(
                    entry(),
                    "next_hop_mac",
                    "set next_hop_mac, or next_hop (an address `eipd run` looks up in the kernel's neighbour table)",
                ),
            }
        }
        let source = p.source.unwrap_or(pop.vtep);
        let mut destination = p.destination.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let mut template = [0; ENCAP_LEN];
        // Only a path without problems joins its region: the checks that follow
        // (IPv6 MTU) then report each problem once.
        if let (true, Some(region), Some(port), Some(next_hop_mac)) =
            (problems.count() == before, region, port, p.next_hop_mac)
        {
            let r = &spec.regions[region as usize];
            destination = p.destination.unwrap_or(r.vtep);
            if destination != r.vtep {
                tunnels
                    .entry((u32::from(destination), r.vni))
                    .or_insert(region);
            }
            template = EncapRepr {
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
        }
        paths.push(Path {
            name: p.name.clone(),
            region: region.unwrap_or(RegionId::MAX),
            port: port.unwrap_or(0) as PortId,
            mtu: p.mtu,
            weight: p.weight,
            state: p.state,
            source,
            destination,
            template,
            inner_mtu: p.mtu.saturating_sub(ENCAP_IP_OVERHEAD),
        });
    }
    if paths.len() > u16::MAX as usize {
        problems.invalid(Entry::section("paths"), "", "too many paths");
    }
    if problems.none() {
        for region in &mut regions {
            fill_path_table(region, &paths);
        }
    }

    let mut local_vteps = vec![pop.vtep];
    local_vteps.extend(spec.paths.iter().filter_map(|p| p.source));
    local_vteps.extend(pop.extra_vteps.iter().copied());
    local_vteps.sort();
    local_vteps.dedup();
    if let Some(pos) = local_vteps.iter().position(|&v| v == pop.vtep) {
        local_vteps.swap(0, pos);
    }

    let ipv6_eips = vec![0; regions.len()];
    let protection = crate::protect::Protection::new(
        &spec.protection,
        own_addresses(spec, &paths, &regions),
        &ports,
    );
    Tables {
        version,
        generation: version,
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
        eips: EipSlab::default(),
        eip_v4: super::index_v4::IndexV4::default(),
        eip_v6: Sharded::default(),
        tunnels: tunnels
            .into_iter()
            .map(|((vtep, vni), region)| (super::tunnel_key(vtep, vni), u32::from(region)))
            .collect(),
        owner_v4: super::owner_index::OwnerIndexV4::default(),
        owner_v6: Sharded::default(),
        service_return: Sharded::default(),
        ipv6_eips,
        default_limits: default_limits(spec),
        protection,
    }
}

/// The POP's default caps, compiled.
pub(super) fn default_limits(spec: &PopSpec) -> super::limits::Limits {
    spec.limits
        .map_or(super::limits::Limits::INHERIT, |l| l.compile())
}

/// Every address of this POP in its description: VTEPs, path sources and
/// destinations, the probe source, the regions' VTEPs and probe targets. None of
/// them may be a client source, a return destination, an EIP or a backend.
fn own_addresses<'a>(
    spec: &'a PopSpec,
    paths: &'a [Path],
    regions: &'a [Region],
) -> impl Iterator<Item = IpAddr> + 'a {
    let pop = &spec.pop;
    std::iter::once(pop.vtep)
        .chain(pop.extra_vteps.iter().copied())
        .chain(pop.probe_source)
        .chain(paths.iter().flat_map(|p| [p.source, p.destination]))
        .chain(
            regions
                .iter()
                .flat_map(|r| std::iter::once(r.vtep).chain(r.probe_target)),
        )
        .filter(|a| !a.is_unspecified())
        .map(IpAddr::V4)
}

/// The regions of `t` by name (the first of a name, as a build resolves them).
pub(super) fn region_index(t: &Tables) -> FxHashMap<String, RegionId> {
    let mut index = FxHashMap::default();
    for (i, r) in t.regions.iter().enumerate() {
        index.entry(r.name.clone()).or_insert(i as RegionId);
    }
    index
}

fn port_entry(spec: &PopSpec, i: usize) -> Entry {
    Entry::item("ports", i).label(format_args!("{:?}", spec.ports[i].name))
}

fn build_ports(spec: &PopSpec, problems: &mut Problems) -> Vec<Port> {
    let mut names: FxHashMap<&str, u16> = FxHashMap::default();
    let mut ports = Vec::with_capacity(spec.ports.len());
    for (i, p) in spec.ports.iter().enumerate() {
        unique_name("port", "ports", &p.name, i, &mut names, problems);
        ports.push(Port {
            name: p.name.clone(),
            role: p.role,
            interface: p.interface.clone(),
            mac: p.mac.0,
            gateway_mac: p.gateway_mac.map(|m| m.0),
        });
    }
    if ports.len() > 64 {
        problems.invalid(Entry::section("ports"), "", "at most 64 ports");
    }
    ports
}

/// IPv6 needs an inner MTU of 1280 on every path of a region with an IPv6 EIP.
pub(super) fn check_ipv6_paths(
    t: &Tables,
    region: RegionId,
    address: IpAddr,
    problems: &mut Problems,
) {
    let r = &t.regions[region as usize];
    for &p in &r.paths {
        let path = &t.paths[p as usize];
        if path.inner_mtu < IPV6_MIN_MTU {
            problems.invalid(
                Entry::item("paths", p as usize).label(format_args!("{:?}", path.name)),
                "mtu",
                format!(
                    "region {:?} carries IPv6 EIP {address}; IPv6 needs an inner MTU of {IPV6_MIN_MTU}, so the path MTU must be at least {}",
                    r.name,
                    IPV6_MIN_MTU + ENCAP_IP_OVERHEAD
                ),
            );
        }
    }
}

/// Flow-hash slots of a region's path choice: Maglev over the paths that are up; if
/// none is, over those that are down but not disabled (better to try than to drop
/// for sure: the prober may be wrong); if none is, empty (traffic dropped, `no_path`).
pub(super) fn fill_path_table(region: &mut Region, paths: &[Path]) {
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
    list: &'static str,
    name: &'a str,
    index: usize,
    seen: &mut FxHashMap<&'a str, u16>,
    problems: &mut Problems,
) {
    if name.is_empty() {
        problems.invalid(Entry::item(list, index), "name", "must not be empty");
        return;
    }
    match seen.entry(name) {
        MapEntry::Occupied(first) => problems.push(TableError::DuplicateName {
            kind,
            list,
            name: name.to_string(),
            first: *first.get() as usize,
            second: index,
        }),
        MapEntry::Vacant(v) => {
            v.insert(index as u16);
        }
    }
}
