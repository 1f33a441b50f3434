//! Edge protection: anti-spoofing and martian filtering, as the hot path asks.
//!
//! The control side compiles the `[protection]` table and the POP's own
//! addresses into a [`Protection`] that lives in each table snapshot; workers
//! only read it. The checks are cheap in the common case: one load from a
//! per-first-octet table says whether an IPv4 address is clean, a bogon, or
//! needs the short rule list; a 64 Ki-bit filter of the /24s that hold an EIP
//! says whether an EIP lookup is needed at all (a stale bit only costs that
//! lookup). IPv6 walks a rule list of a handful of entries.
//!
//! What is dropped and why (each its own [`DropReason`]):
//! - a frame to an EIP that arrives on a backbone-only port (`eip_on_backbone`);
//! - an Internet-side frame to an EIP from a bogon (`bogon_source`), one of our
//!   EIPs (`spoofed_eip_source`: the loop) or one of our addresses
//!   (`spoofed_pop_source`: reflection);
//! - a return toward any of those (`martian_destination`);
//! - client UDP to the VXLAN port (`tunnel_port`), unless opted out.

mod martian;
pub mod spec;
#[cfg(test)]
mod tests;

pub use martian::{is_bogon, unusable, BOGONS_V4, GLOBAL_V6, NAT64_V6};
pub use spec::{Prefix, ProtectionSpec};

use crate::counters::DropReason;
use crate::frame::PortId;
use crate::tables::{addr_key, Port, PortRole, Tables};
use std::net::IpAddr;
use std::sync::Arc;

/// What an address is to the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Class {
    /// Any other address.
    Clean = 0,
    /// In a bogon prefix and not in `allow_sources`.
    Bogon = 1,
    /// One of the POP's own addresses.
    Pop = 2,
    /// One of our EIPs.
    Eip = 3,
}

/// Octet-table entry: scan the IPv4 rules.
const CHECK: u8 = 255;
/// Words of the EIP /24 filter: 65,536 bits, 8 KiB.
const FILTER_WORDS: usize = 1024;

/// Compiled edge protection of one snapshot.
#[derive(Debug, Clone)]
pub struct Protection {
    enabled: bool,
    /// Per first octet of an IPv4 address: its [`Class`] as u8, or [`CHECK`].
    octet: [u8; 256],
    /// (network, mask, class), first match wins; no match is clean.
    v4: Box<[(u32, u32, Class)]>,
    v6: Box<[(u128, u128, Class)]>,
    /// Bit per hashed /24: set when an IPv4 EIP may be in it.
    eip_filter: Arc<[u64; FILTER_WORDS]>,
    /// Bit per port that is backbone-only.
    backbone_ports: u64,
    tunnel_port_open: bool,
    /// Keys ([`addr_key`]) of EIPs open to the VXLAN port, sorted.
    tunnel_port_eips: Box<[u128]>,
    /// The POP's own addresses, sorted.
    own: Box<[IpAddr]>,
}

impl Default for Protection {
    /// Nothing filtered.
    fn default() -> Self {
        Protection {
            enabled: false,
            octet: [Class::Clean as u8; 256],
            v4: Box::default(),
            v6: Box::default(),
            eip_filter: Arc::new([0; FILTER_WORDS]),
            backbone_ports: 0,
            tunnel_port_open: true,
            tunnel_port_eips: Box::default(),
            own: Box::default(),
        }
    }
}

impl Protection {
    /// Compiles `spec` for a POP whose own addresses are `own` (VTEPs, probe
    /// source, region VTEPs, ...; `spec.own_addresses` are added) and ports `ports`.
    pub fn new(
        spec: &ProtectionSpec,
        own: impl IntoIterator<Item = IpAddr>,
        ports: &[Port],
    ) -> Self {
        let mut own: Vec<IpAddr> = own
            .into_iter()
            .chain(spec.own_addresses.iter().copied())
            .collect();
        own.sort();
        own.dedup();
        let mut tunnel_port_eips: Vec<u128> =
            spec.tunnel_port_eips.iter().map(|&a| addr_key(a)).collect();
        tunnel_port_eips.sort_unstable();
        let mut p = Protection {
            tunnel_port_open: spec.allow_tunnel_port,
            tunnel_port_eips: tunnel_port_eips.into(),
            own: own.clone().into(),
            ..Protection::default()
        };
        if !spec.enabled {
            return p;
        }
        p.enabled = true;
        p.backbone_ports = ports
            .iter()
            .enumerate()
            .filter(|(i, port)| *i < 64 && port.role == PortRole::Backbone)
            .fold(0, |m, (i, _)| m | 1 << i);
        // First match wins: our own addresses (never exempt), the operator's
        // exemptions, then the bogons.
        let v4_mask = |len: u8| u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for a in &own {
            match a {
                IpAddr::V4(a) => v4.push((u32::from(*a), u32::MAX, Class::Pop)),
                IpAddr::V6(a) => v6.push((u128::from(*a), u128::MAX, Class::Pop)),
            }
        }
        for prefix in &spec.allow_sources {
            match prefix.address {
                IpAddr::V4(a) => v4.push((u32::from(a), v4_mask(prefix.len), Class::Clean)),
                IpAddr::V6(_) => v6.push((prefix.key(), prefix.mask(), Class::Clean)),
            }
        }
        for &(net, len, _) in BOGONS_V4 {
            v4.push((u32::from(net), v4_mask(len), Class::Bogon));
        }
        for (net, len) in [NAT64_V6, GLOBAL_V6] {
            let p = Prefix {
                address: IpAddr::V6(net),
                len,
            };
            v6.push((p.key(), p.mask(), Class::Clean));
        }
        v6.push((0, 0, Class::Bogon));
        for (o, entry) in p.octet.iter_mut().enumerate() {
            let base = (o as u32) << 24;
            *entry = match v4
                .iter()
                .find(|&&(net, mask, _)| (base ^ net) & mask & 0xFF00_0000 == 0)
            {
                None => Class::Clean as u8,
                Some(&(_, mask, class)) if mask & 0x00FF_FFFF == 0 => class as u8,
                Some(_) => CHECK,
            };
        }
        p.v4 = v4.into();
        p.v6 = v6.into();
        p
    }

    /// Is protection on?
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The POP's own addresses (no EIP or backend may be one).
    pub fn own_addresses(&self) -> &[IpAddr] {
        &self.own
    }

    /// Records that an IPv4 EIP exists (its /24's filter bit). Bits are never
    /// cleared for a removed EIP: a stale bit only costs an EIP lookup.
    pub(crate) fn note_eip(&mut self, addr: IpAddr) {
        if let (true, IpAddr::V4(a)) = (self.enabled, addr) {
            let bit = filter_bit(u32::from(a));
            Arc::make_mut(&mut self.eip_filter)[bit / 64] |= 1 << (bit % 64);
        }
    }

    /// Class of an IPv4 address. The common case (a clean first octet, no EIP
    /// in its /24) costs one table load and one filter bit; the rest is out of line.
    #[inline(always)]
    pub fn class_v4(&self, t: &Tables, addr: [u8; 4]) -> Class {
        let a = u32::from_be_bytes(addr);
        if self.octet[addr[0] as usize] != Class::Clean as u8 {
            return self.class_v4_rules(t, a);
        }
        let bit = filter_bit(a);
        if self.eip_filter[bit / 64] >> (bit % 64) & 1 != 0 {
            return self.eip_or_clean(t, a);
        }
        Class::Clean
    }

    /// [`Self::class_v4`] of an address whose first octet needs the rules.
    #[cold]
    #[inline(never)]
    fn class_v4_rules(&self, t: &Tables, a: u32) -> Class {
        let class = match self.octet[(a >> 24) as usize] {
            1 => Class::Bogon,
            2 => Class::Pop,
            _ => self
                .v4
                .iter()
                .find(|&&(net, mask, _)| a & mask == net)
                .map_or(Class::Clean, |&(_, _, c)| c),
        };
        match class {
            Class::Clean => self.eip_or_clean(t, a),
            c => c,
        }
    }

    /// `Eip` if `a` is one of our IPv4 EIPs (its filter bit may be stale).
    #[inline(never)]
    fn eip_or_clean(&self, t: &Tables, a: u32) -> Class {
        match t.eip_v4(a.to_be_bytes()) {
            Some(_) => Class::Eip,
            None => Class::Clean,
        }
    }

    /// Class of an IPv6 address.
    #[inline]
    pub fn class_v6(&self, t: &Tables, addr: &[u8; 16]) -> Class {
        let a = u128::from_be_bytes(*addr);
        match self.v6.iter().find(|&&(net, mask, _)| a & mask == net) {
            Some(&(_, _, c)) if c != Class::Clean => c,
            _ if self.enabled && t.eip_v6(addr).is_some() => Class::Eip,
            _ => Class::Clean,
        }
    }

    /// Class of the address at `at` in `data` (4 or 16 bytes as `v6` says).
    #[inline(always)]
    pub fn class_at(&self, t: &Tables, data: &[u8], at: usize, v6: bool) -> Class {
        if v6 {
            self.class_v6(t, data[at..at + 16].try_into().unwrap())
        } else {
            self.class_v4(t, data[at..at + 4].try_into().unwrap())
        }
    }

    /// May a frame with this source class arriving on `port` go to an EIP?
    #[inline(always)]
    pub fn ingress(&self, port: PortId, source: Class) -> Result<(), DropReason> {
        if self.from_backbone(port) {
            return Err(DropReason::EipOnBackbone);
        }
        match source {
            Class::Clean => Ok(()),
            Class::Bogon => Err(DropReason::BogonSource),
            Class::Pop => Err(DropReason::SpoofedPopSource),
            Class::Eip => Err(DropReason::SpoofedEipSource),
        }
    }

    /// May a return go to a destination of this class?
    #[inline(always)]
    pub fn destination(class: Class) -> Result<(), DropReason> {
        match class {
            Class::Clean => Ok(()),
            _ => Err(DropReason::MartianDestination),
        }
    }

    /// Did the frame arrive on a backbone-only port?
    #[inline(always)]
    pub fn from_backbone(&self, port: PortId) -> bool {
        self.backbone_ports
            .checked_shr(u32::from(port))
            .unwrap_or(0)
            & 1
            != 0
    }

    /// May client UDP to the VXLAN port reach the backends of the EIP `eip`?
    #[inline]
    pub fn tunnel_port_open(&self, eip: IpAddr) -> bool {
        self.tunnel_port_open || self.tunnel_port_eips.binary_search(&addr_key(eip)).is_ok()
    }
}

/// Filter bit of the /24 of `addr`: a multiplicative hash, top 16 bits.
#[inline(always)]
fn filter_bit(addr: u32) -> usize {
    ((addr >> 8).wrapping_mul(0x9E37_79B1) >> 16) as usize
}
