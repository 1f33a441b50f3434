//! Forwarding tables: one immutable snapshot that workers read without locks.
//!
//! The control side builds a [`Tables`] from a [`spec::PopSpec`] (validating it and
//! precomputing everything a packet needs: Maglev tables, per-path encapsulation
//! templates, reverse maps for return traffic) and hands `Arc<Tables>` to workers.
//! Lookups are hash-map probes and array indexing; nothing here allocates after
//! [`Tables::build`].

mod build;
mod error;
pub mod spec;
#[cfg(test)]
mod tests;

pub use error::{Entry, EntryStep, TableError};
pub use spec::{MacAddr, PathState, PopSpec, PortRole, Protocol};

use crate::frame::PortId;
use rustc_hash::FxHashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Index of an EIP in [`Tables::eips`].
pub type EipId = u32;
/// Index of a region in [`Tables::regions`].
pub type RegionId = u16;
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

/// One member of a service pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    pub address: IpAddr,
    pub port: u16,
    pub weight: u32,
}

/// A protocol/port of an EIP and its Maglev table.
#[derive(Debug, Clone)]
pub struct Service {
    pub protocol: u8,
    pub port: u16,
    pub backends: Box<[Backend]>,
    /// Slot -> index into `backends`. Empty when every backend is drained.
    pub maglev: Box<[u16]>,
}

/// An EIP and its targets.
#[derive(Debug, Clone)]
pub struct Eip {
    pub address: IpAddr,
    pub region: RegionId,
    /// Target of traffic that no service matches.
    pub backend: Option<IpAddr>,
    /// Range into [`Tables::services`].
    pub services_start: u32,
    pub services_len: u16,
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
    /// Increases with every snapshot the control side builds.
    pub version: u64,
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
    pub eips: Vec<Eip>,
    pub services: Vec<Service>,
    eip_v4: FxHashMap<u32, EipId>,
    eip_v6: FxHashMap<u128, EipId>,
    /// (remote VTEP, VNI) -> region.
    tunnels: FxHashMap<(u32, u32), RegionId>,
    /// (region, backend address as IPv6 or IPv4-mapped) -> EIP.
    backend_owner: FxHashMap<(RegionId, u128), EipId>,
    /// (region, backend address, protocol, backend port) -> service port.
    service_return: FxHashMap<(RegionId, u128, u8, u16), u16>,
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
    /// Validates `spec` and builds the snapshot with version `version`.
    ///
    /// # Errors
    /// A [`TableError`] naming the first entry and field that is wrong.
    pub fn build(spec: &PopSpec, version: u64) -> Result<Tables, TableError> {
        build::build(spec, version).map_err(|mut all| all.swap_remove(0))
    }

    /// [`Tables::build`], reporting every problem of `spec` instead of the first:
    /// for checking a configuration, where an operator wants them all at once.
    ///
    /// # Errors
    /// Every [`TableError`] found (at least one), in the order of the description;
    /// the first is the one [`Tables::build`] returns.
    pub fn build_all(spec: &PopSpec, version: u64) -> Result<Tables, Vec<TableError>> {
        build::build(spec, version)
    }

    /// The EIP with IPv4 address `addr`.
    #[inline(always)]
    pub fn eip_v4(&self, addr: [u8; 4]) -> Option<EipId> {
        self.eip_v4.get(&u32::from_be_bytes(addr)).copied()
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
        match self.tunnels.get(&(v, vni)) {
            Some(&r) => Ok(r),
            None => Err(self.tunnels.keys().any(|&(t, _)| t == v)),
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
        let eip = *self.backend_owner.get(&(region, backend))?;
        let service_port = match port {
            Some(p) if self.eips[eip as usize].services_len > 0 => self
                .service_return
                .get(&(region, backend, protocol, p))
                .copied(),
            _ => None,
        };
        Some(ReturnMapping { eip, service_port })
    }

    /// The services of an EIP.
    #[inline(always)]
    pub fn services_of(&self, eip: &Eip) -> &[Service] {
        let start = eip.services_start as usize;
        &self.services[start..start + eip.services_len as usize]
    }

    /// All IPv4 EIP addresses (for the XDP program's filter map).
    pub fn eip_v4_addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.eip_v4.keys().map(|&a| Ipv4Addr::from(a))
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

    /// Approximate heap bytes held by this snapshot (for sizing reports).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        fn map<K, V>(m: &FxHashMap<K, V>) -> usize {
            // hashbrown: one control byte plus one (K, V) per bucket.
            m.capacity() * (size_of::<(K, V)>() + 1)
        }
        let services: usize = self
            .services
            .iter()
            .map(|s| s.backends.len() * size_of::<Backend>() + s.maglev.len() * 2)
            .sum();
        self.eips.capacity() * size_of::<Eip>()
            + self.services.capacity() * size_of::<Service>()
            + services
            + map(&self.eip_v4)
            + map(&self.eip_v6)
            + map(&self.backend_owner)
            + map(&self.service_return)
            + self.paths.len() * size_of::<Path>()
    }
}
