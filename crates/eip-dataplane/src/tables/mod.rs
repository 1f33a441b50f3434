//! Forwarding tables: one immutable snapshot that workers read without locks.
//!
//! The control side builds a [`Tables`] from a [`spec::PopSpec`] (validating it and
//! precomputing everything a packet needs: Maglev tables, per-path encapsulation
//! templates, reverse maps for return traffic) and hands `Arc<Tables>` to workers.
//! Lookups are hash-map probes and array indexing; nothing here allocates after
//! [`Tables::build`].
//!
//! # Snapshots share what did not change
//!
//! The EIP records ([`EipSlab`], chunks of 1024 slots) and the EIP and return
//! indexes ([`Sharded`] maps, 1024 shards) sit behind `Arc`s. A snapshot derived
//! with [`Tables::apply`] (a [`TableDelta`] of EIPs), [`Tables::with_path_states`]
//! (observed path health) or [`Tables::with_backend_health`] copies only the
//! chunks and shards the change touches; ports, regions and paths are small and
//! rebuilt whole.
//!
//! # Two numbers
//!
//! [`Tables::version`] is the version of the operator's description the snapshot
//! was built from: only an operator change bumps it. [`Tables::generation`]
//! numbers snapshots: every new one (health-only ones too) has a larger one, and
//! the [`crate::swap`] handoff orders snapshots by it.
//!
//! # Stable slots
//!
//! An EIP's [`EipId`] is its slot: it stays the same in every later snapshot for as
//! long as the EIP exists, so per-EIP counters indexed by it survive table
//! changes. A removed EIP's slot is reused by a later one.

pub mod acl;
mod address_index;
mod build;
mod delta;
#[cfg(test)]
mod delta_tests;
pub mod eip_list;
mod eips;
mod entries;
mod error;
pub mod index_v4;
pub mod limits;
mod owner_index;
pub mod region_name;
mod service;
pub mod sharded;
pub mod slab;
pub mod spec;
#[cfg(test)]
mod tests;

pub use delta::{BackendRef, TableDelta};
pub use eip_list::{EipList, EipMut};
pub use entries::{EipEntry, OwnerEntry};
pub use error::{Entry, EntryStep, TableError};
pub use service::{Backend, Service};
pub use slab::{Eip, EipSlab};
pub use spec::{MacAddr, PathState, PopSpec, PortRole, Protocol};

use crate::frame::PortId;
use index_v4::IndexV4;
use sharded::Sharded;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Slot of an EIP in [`Tables::eips`]: stable while the EIP exists.
pub type EipId = u32;
/// Index of a region in [`Tables::regions`].
pub type RegionId = u16;
/// An IPv4 EIP lookup begun ([`Tables::start_eip_v4`]), to finish frames later.
pub type EipProbe<'a> = index_v4::Probe<'a, u32, EipEntry>;
/// Index of a path in [`Tables::paths`].
pub type PathId = u16;

/// Bytes a VXLAN encapsulation adds in front of the inner IP packet:
/// outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14.
pub const ENCAP_LEN: usize = 64;
/// Of [`ENCAP_LEN`], the bytes counted against the path MTU (outer IPv4 header
/// onward, up to the inner IP packet): IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14.
pub const ENCAP_IP_OVERHEAD: u16 = 50;

/// A port of the POP.
#[derive(Debug, Clone)]
pub struct Port {
    pub name: String,
    pub role: PortRole,
    pub interface: Option<String>,
    pub mac: [u8; 6],
    pub gateway_mac: Option<[u8; 6]>,
}

/// A backend region.
#[derive(Debug, Clone)]
pub struct Region {
    pub name: String,
    pub vni: u32,
    pub vtep: Ipv4Addr,
    pub inner_mac: [u8; 6],
    /// Inner address probes of this region's paths are sent to.
    pub probe_target: Option<Ipv4Addr>,
    /// All paths of the region, usable or not.
    pub paths: Vec<PathId>,
    /// Flow-hash slot -> path, a Maglev table over the usable paths (empty: none).
    pub path_table: Box<[PathId]>,
    /// Remainder by `path_table.len()` without a division, for [`crate::flow::path_slot`].
    pub path_mod: crate::flow::FastMod,
    /// True when no path is up and the table holds the fallback (down, not disabled) set.
    pub panic: bool,
}

/// A backbone path with its precomputed encapsulation.
#[derive(Debug, Clone)]
pub struct Path {
    pub name: String,
    pub region: RegionId,
    pub port: PortId,
    pub mtu: u16,
    pub weight: u32,
    pub state: PathState,
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
    /// Outer Ethernet, IPv4, UDP (checksum 0), VXLAN and inner Ethernet, as
    /// [`crate::pipeline::EncapRepr::emit`] writes them for an empty inner packet;
    /// [`crate::pipeline::write_encap_header`] completes a copy per packet.
    pub template: [u8; ENCAP_LEN],
    /// Largest inner IP packet that fits: `mtu - ENCAP_IP_OVERHEAD`.
    pub inner_mtu: u16,
}

/// Where traffic from a backend goes back to: the EIP and, for a service backend,
/// the service port to restore as source port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReturnMapping {
    pub eip: EipId,
    pub service_port: Option<u16>,
}

/// An immutable forwarding-table snapshot.
#[derive(Debug, Clone)]
pub struct Tables {
    /// Version of the operator's description this snapshot was built from.
    pub version: u64,
    /// Sequence number of the snapshot: larger in every newer one (health-only
    /// ones too). [`crate::swap`] orders snapshots by it.
    pub generation: u64,
    pub pop_name: String,
    pub vxlan_port: u16,
    pub inner_mac: [u8; 6],
    pub outer_ttl: u8,
    /// Inner source address of path probes; tunnel returns to it are probe replies.
    pub probe_source: Option<[u8; 4]>,
    /// Addresses on which returns are accepted (the first is `pop.vtep`).
    pub local_vteps: Vec<Ipv4Addr>,
    pub ports: Vec<Port>,
    /// The port that faces the Internet.
    pub internet_port: PortId,
    pub regions: Vec<Region>,
    pub paths: Vec<Path>,
    /// EIP records by slot.
    pub eips: EipSlab,
    eip_v4: IndexV4,
    eip_v6: Sharded<u128, EipId>,
    /// (remote VTEP, VNI) -> region ([`tunnel_key`]).
    tunnels: index_v4::FlatIndex<u64>,
    /// (region, IPv4 backend) -> EIP: an index per region, 12 bytes an entry.
    owner_v4: owner_index::OwnerIndexV4,
    /// (region, IPv6 backend) -> EIP.
    owner_v6: Sharded<(RegionId, u128), EipId>,
    /// (region, backend address, protocol, backend port) -> service port.
    service_return: Sharded<(RegionId, u128, u8, u16), u16>,
    /// IPv6 EIPs per region (their paths must carry IPv6's minimum MTU).
    ipv6_eips: Vec<u32>,
    /// The POP's default caps (`[limits]`); [`limits::Limits::INHERIT`] when none.
    pub default_limits: limits::Limits,
    /// Edge protection compiled from `[protection]` and the POP's addresses.
    pub protection: crate::protect::Protection,
}

/// The key of a tunnel: remote VTEP (host order) and VNI.
#[inline(always)]
fn tunnel_key(vtep: u32, vni: u32) -> u64 {
    (u64::from(vtep) << 32) | u64::from(vni)
}

/// The last tunnel (key, region) [`Tables::tunnel_region_via`] found, valid
/// for one snapshot of the tables.
#[derive(Debug, Clone, Copy, Default)]
pub struct LastTunnel(Option<(u64, RegionId)>);

impl LastTunnel {
    /// Forgets the tunnel (the tables may have changed).
    #[inline(always)]
    pub fn clear(&mut self) {
        self.0 = None;
    }
}

/// IPv4 as IPv4-mapped IPv6, IPv6 as is: one key space for both families.
#[inline(always)]
pub fn addr_key(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// [`addr_key`] for raw IPv4 bytes.
#[inline(always)]
pub fn addr_key_v4(addr: [u8; 4]) -> u128 {
    0xFFFF_0000_0000 | u32::from_be_bytes(addr) as u128
}

impl Region {
    /// The path of a flow with this hash: `path_table[flow::path_slot(hash, len)]`.
    /// The caller checks that the table is not empty.
    #[inline(always)]
    pub fn path_for(&self, hash: u64) -> PathId {
        self.path_table[self.path_mod.remainder((hash >> 32) as u32) as usize]
    }
}

impl Tables {
    /// Whether any EIP may be rate limited: the POP has default caps or some
    /// EIP has its own. Workers read it once per snapshot.
    pub fn policing(&self) -> bool {
        self.default_limits != limits::Limits::INHERIT || self.eips.limited() > 0
    }

    /// (EIP, source prefix) pairs the XDP program may drop before any worker
    /// sees them: each EIP's [`acl::Acl::xdp_deny`].
    pub fn xdp_acl_denies(&self) -> impl Iterator<Item = (IpAddr, acl::Prefix)> + '_ {
        self.eips.acls().flat_map(move |(slot, acl)| {
            let eip = self.eips.get(slot).map(|e| e.address);
            acl.xdp_deny.iter().filter_map(move |p| Some((eip?, *p)))
        })
    }

    /// The slot of `eip` and the rule of its access list whose hits the XDP
    /// program's drops of `source` (one of [`Self::xdp_acl_denies`]) are.
    pub fn xdp_acl_rule(&self, eip: IpAddr, source: &acl::Prefix) -> Option<(EipId, u32)> {
        let slot = self.eip_slot(eip)?;
        Some((slot, self.eips.acl(slot)?.xdp_rule(source)?))
    }

    /// Inbound caps (`[bits/s, packets/s]`, [`limits::INHERIT`] for the POP
    /// default's, 0 for none) of the EIPs that have caps of their own and
    /// cap something inbound: what the XDP program may police before any
    /// worker sees the frames.
    pub fn inbound_caps(&self) -> impl Iterator<Item = (IpAddr, [u64; 2])> + '_ {
        self.eips.own_limits().filter_map(move |(slot, l)| {
            let caps = [l.caps[limits::cap::IN_BPS], l.caps[limits::cap::IN_PPS]];
            if caps == [limits::INHERIT; 2] {
                return None;
            }
            Some((self.eips.get(slot)?.address, caps))
        })
    }

    /// The POP default's inbound caps (`[bits/s, packets/s]`, 0 for none).
    pub fn default_inbound_caps(&self) -> [u64; 2] {
        let d = self.default_limits.over(&limits::Limits::NONE);
        [d.caps[limits::cap::IN_BPS], d.caps[limits::cap::IN_PPS]]
    }

    /// Validates `spec` and builds the snapshot with version `version`.
    ///
    /// # Errors
    /// A [`TableError`] naming the first entry and field that is wrong.
    pub fn build(spec: &PopSpec, version: u64) -> Result<Tables, TableError> {
        build::build(spec, version, None).map_err(|mut all| all.swap_remove(0))
    }

    /// [`Tables::build`] as the next snapshot after `previous`: EIPs that are in
    /// `previous` keep their slots; the generation is `generation`. For a change
    /// that [`Tables::apply`] cannot express (regions renamed or reordered).
    ///
    /// # Errors
    /// Every [`TableError`] found, as [`Tables::build_all`].
    pub fn rebuild(
        spec: &PopSpec,
        previous: &Tables,
        version: u64,
        generation: u64,
    ) -> Result<Tables, Vec<TableError>> {
        let mut t = build::build(spec, version, Some(previous))?;
        t.generation = generation;
        Ok(t)
    }

    /// [`Tables::build`], reporting every problem of `spec` instead of the first:
    /// for checking a configuration, where an operator wants them all at once.
    ///
    /// # Errors
    /// Every [`TableError`] found (at least one), in the order of the description;
    /// the first is the one [`Tables::build`] returns.
    pub fn build_all(spec: &PopSpec, version: u64) -> Result<Tables, Vec<TableError>> {
        build::build(spec, version, None)
    }

    /// The same snapshot numbered `generation` (for a first snapshot whose
    /// generation is not its version).
    pub fn with_generation(mut self, generation: u64) -> Tables {
        self.generation = generation;
        self
    }

    /// The slot of the EIP with address `addr`.
    pub fn eip_slot(&self, addr: IpAddr) -> Option<EipId> {
        match addr {
            IpAddr::V4(a) => self.eip_v4(a.octets()),
            IpAddr::V6(a) => self.eip_v6(&a.octets()),
        }
    }

    /// The EIP record with address `addr`.
    pub fn eip_by_address(&self, addr: IpAddr) -> Option<Eip<'_>> {
        self.eips.get(self.eip_slot(addr)?)
    }

    /// Length per-EIP counter arrays need: one more than the largest slot in use
    /// or ever used. Never shrinks from one snapshot to the next.
    pub fn slot_capacity(&self) -> usize {
        self.eips.slot_capacity()
    }

    /// The EIP with IPv4 address `addr`.
    #[inline(always)]
    pub fn eip_v4(&self, addr: [u8; 4]) -> Option<EipId> {
        self.eip_v4_entry(addr).map(|e| e.slot())
    }

    /// The index entry of the EIP with IPv4 address `addr`: its slot and what
    /// ingress needs of it, in the lookup's own cache line.
    #[inline(always)]
    pub fn eip_v4_entry(&self, addr: [u8; 4]) -> Option<EipEntry> {
        self.eip_v4.get(u32::from_be_bytes(addr))
    }

    /// Stores `eip` in `slot` and brings its IPv4 index entry, if it has one
    /// that points at `slot`, up to date with the record: every change of a
    /// record's fields goes through here, so the two never disagree.
    fn put_eip(&mut self, slot: EipId, eip: slab::NewEip) {
        let address = eip.address;
        self.eips.put(slot, eip);
        if let IpAddr::V4(a) = address {
            self.eip_v4.refresh(u32::from(a), self.eips.entry(slot));
        }
    }

    /// Begins [`Tables::eip_v4_entry`] of `addr`: starts loading where it
    /// will look, without waiting (the pipeline's prefetching loop finishes
    /// it frames later). `None` when no EIP can have that address.
    #[inline(always)]
    pub fn start_eip_v4(&self, addr: [u8; 4]) -> Option<EipProbe<'_>> {
        self.eip_v4.start(u32::from_be_bytes(addr))
    }

    /// The EIP that owns IPv4 backend `addr` in `region` (a return's first
    /// lookup; [`Self::return_mapping`] adds the service port).
    #[inline(always)]
    pub fn backend_owner_v4(&self, region: RegionId, addr: [u8; 4]) -> Option<OwnerEntry> {
        self.owner_v4.get(region, u32::from_be_bytes(addr))
    }

    /// The EIP with IPv6 address `addr`.
    #[inline(always)]
    pub fn eip_v6(&self, addr: &[u8; 16]) -> Option<EipId> {
        self.eip_v6.get(&u128::from_be_bytes(*addr)).copied()
    }

    /// Is `addr` one of our VTEP addresses?
    #[inline(always)]
    pub fn is_local_vtep(&self, addr: [u8; 4]) -> bool {
        self.local_vteps.iter().any(|v| v.octets() == addr)
    }

    /// The region whose tunnel is (`vtep`, `vni`); `Err(true)` when the VTEP is known
    /// but the VNI is not its, `Err(false)` when the VTEP is unknown.
    #[inline]
    pub fn tunnel_region(&self, vtep: [u8; 4], vni: u32) -> Result<RegionId, bool> {
        let v = u32::from_be_bytes(vtep);
        match self.tunnels.get(tunnel_key(v, vni)) {
            Some(r) => Ok(r as RegionId),
            None => Err(self.tunnels.keys().any(|k| (k >> 32) as u32 == v)),
        }
    }

    /// [`Self::tunnel_region`] through `last`, the tunnel the previous return
    /// of the batch came through: returns come from a few VTEPs, so most skip
    /// the index (about 20 instructions a return). `last` must be cleared when
    /// the tables change ([`LastTunnel::clear`]).
    #[inline(always)]
    pub fn tunnel_region_via(
        &self,
        last: &mut LastTunnel,
        vtep: [u8; 4],
        vni: u32,
    ) -> Option<RegionId> {
        let key = tunnel_key(u32::from_be_bytes(vtep), vni);
        match last.0 {
            Some((k, region)) if k == key => Some(region),
            _ => {
                let region = self.tunnel_region(vtep, vni).ok()?;
                last.0 = Some((key, region));
                Some(region)
            }
        }
    }

    /// Where return traffic from `backend` (in `region`) sent from `protocol`/`port` goes.
    #[inline]
    pub fn return_mapping(
        &self,
        region: RegionId,
        backend: u128,
        protocol: u8,
        port: Option<u16>,
    ) -> Option<ReturnMapping> {
        let eip = match backend >> 32 {
            0xFFFF => self.owner_v4.get(region, backend as u32)?.slot(),
            _ => *self.owner_v6.get(&(region, backend))?,
        };
        let service_port = match port {
            Some(p) if !self.eips.at(eip).services.is_empty() => self
                .service_return
                .get(&(region, backend, protocol, p))
                .copied(),
            _ => None,
        };
        Some(ReturnMapping { eip, service_port })
    }

    /// The EIP that owns `backend` in `region`.
    pub(crate) fn backend_owner(&self, region: RegionId, backend: IpAddr) -> Option<EipId> {
        match backend {
            IpAddr::V4(a) => self.owner_v4.get(region, u32::from(a)).map(|o| o.slot()),
            IpAddr::V6(a) => self.owner_v6.get(&(region, u128::from(a))).copied(),
        }
    }

    /// Makes `slot` the owner of `backend` in `region` unless another EIP is;
    /// returns the present owner if any (map unchanged). `plain_eip`: the
    /// EIP's address when it is a plain 1:1 IPv4 EIP ([`OwnerEntry`]).
    fn claim_backend(
        &mut self,
        region: RegionId,
        backend: IpAddr,
        slot: EipId,
        plain_eip: Option<Ipv4Addr>,
    ) -> Option<EipId> {
        match backend {
            IpAddr::V4(a) => self
                .owner_v4
                .claim(region, u32::from(a), OwnerEntry::new(slot, plain_eip))
                .map(|o| o.slot()),
            IpAddr::V6(a) => self.owner_v6.claim((region, u128::from(a)), slot),
        }
    }

    fn release_backend(&mut self, region: RegionId, backend: IpAddr) {
        match backend {
            IpAddr::V4(a) => self.owner_v4.remove(region, u32::from(a)).map(|o| o.slot()),
            IpAddr::V6(a) => self.owner_v6.remove(&(region, u128::from(a))),
        };
    }

    /// The services of an EIP.
    #[inline(always)]
    pub fn services_of<'a>(&'a self, eip: &Eip<'a>) -> &'a [Service] {
        eip.services
    }

    /// Every service of every EIP, in slot order.
    pub fn services(&self) -> impl Iterator<Item = &Service> + '_ {
        self.eips.iter().flat_map(|(_, e)| e.services.iter())
    }

    /// All IPv4 EIP addresses (for the XDP program's filter map).
    pub fn eip_v4_addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.eip_v4.keys().map(Ipv4Addr::from)
    }

    /// The IPv4 EIP addresses `self` has and `old` has not, and those `old`
    /// has and `self` has not (the XDP filter map's delta). Costs what
    /// differs: only index shards the snapshots do not share are compared.
    pub fn eip_v4_changes(&self, old: &Tables) -> (Vec<Ipv4Addr>, Vec<Ipv4Addr>) {
        let (added, gone) = self.eip_v4.key_changes(&old.eip_v4);
        let v4 = |keys: Vec<u32>| keys.into_iter().map(Ipv4Addr::from).collect();
        (v4(added), v4(gone))
    }

    /// As [`Tables::eip_v4_changes`], for IPv6.
    pub fn eip_v6_changes(&self, old: &Tables) -> (Vec<Ipv6Addr>, Vec<Ipv6Addr>) {
        let (added, gone) = self.eip_v6.key_changes(&old.eip_v6);
        let v6 = |keys: Vec<u128>| keys.into_iter().map(Ipv6Addr::from).collect();
        (v6(added), v6(gone))
    }

    /// All IPv6 EIP addresses (for the XDP program's filter map).
    pub fn eip_v6_addresses(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.eip_v6.keys().map(|&a| Ipv6Addr::from(a))
    }

    /// Port index by name.
    pub fn port_by_name(&self, name: &str) -> Option<PortId> {
        self.ports
            .iter()
            .position(|p| p.name == name)
            .map(|i| i as PortId)
    }

    /// Heap bytes held by this snapshot (for sizing reports): EIP records and
    /// their services, the EIP and return indexes, paths. Parts shared with other
    /// snapshots count in full. Counters are not part of the tables.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let services: usize = self
            .eips
            .iter()
            .filter(|(_, e)| !e.services.is_empty())
            .flat_map(|(_, e)| e.services.iter())
            .map(|s| {
                size_of::<Service>()
                    + s.backends.len() * (size_of::<Backend>() + size_of::<([u8; 4], u16)>())
                    + s.maglev.len() * 2
            })
            .sum();
        self.eips.heap_bytes()
            + services
            + self.eip_v4.heap_bytes()
            + self.eip_v6.heap_bytes()
            + self.owner_v4.heap_bytes()
            + self.owner_v6.heap_bytes()
            + self.service_return.heap_bytes()
            + self.paths.len() * size_of::<Path>()
            + self
                .regions
                .iter()
                .map(|r| r.paths.len() * 2 + r.path_table.len() * 2)
                .sum::<usize>()
    }
}
