//! A service of an EIP: a protocol/port spread over a pool of backends by a
//! Maglev table, with what the fast path needs of it precomputed (the
//! division-free slot and the IPv4 targets).

use crate::flow::FastMod;
use std::net::IpAddr;

/// One member of a service pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    pub address: IpAddr,
    pub port: u16,
    /// The operator's weight; 0 drains the backend.
    pub weight: u32,
    /// Observed health ([`Tables::with_backend_health`]); an unhealthy backend
    /// gets no new flows, as if drained. True in a build.
    pub healthy: bool,
}

/// A protocol/port of an EIP and its Maglev table.
#[derive(Debug, Clone)]
pub struct Service {
    pub protocol: u8,
    pub port: u16,
    pub backends: Box<[Backend]>,
    /// Slot -> index into `backends`. Empty when every backend is drained.
    pub maglev: Box<[u16]>,
    /// The hash's low half modulo `maglev.len()` without a division, set with
    /// the table.
    slot_mod: FastMod,
    /// The backends' IPv4 addresses and ports, in `backends`' order, when
    /// every backend is IPv4 (empty otherwise): the fast path's pick reads
    /// 6 bytes and matches no `IpAddr`.
    targets_v4: Box<[([u8; 4], u16)]>,
}

impl Service {
    /// A service over `backends`, without a Maglev table yet
    /// ([`Self::fill_maglev`] makes it).
    pub(super) fn new(protocol: u8, port: u16, backends: Box<[Backend]>) -> Self {
        let targets_v4 = backends
            .iter()
            .map(|b| match b.address {
                IpAddr::V4(a) => Some((a.octets(), b.port)),
                IpAddr::V6(_) => None,
            })
            .collect::<Option<Box<[_]>>>()
            .unwrap_or_default();
        Service {
            protocol,
            port,
            backends,
            maglev: Box::default(),
            slot_mod: FastMod::new(1),
            targets_v4,
        }
    }

    /// Builds the Maglev table over the backends that are healthy and not drained.
    pub(super) fn fill_maglev(&mut self) {
        let keyed: Vec<(u64, u32)> = self
            .backends
            .iter()
            .map(|b| {
                let weight = if b.healthy { b.weight } else { 0 };
                (crate::maglev::backend_key(b.address, b.port), weight)
            })
            .collect();
        self.maglev =
            crate::maglev::build(&keyed, crate::maglev::table_size_for(self.backends.len()))
                .into_boxed_slice();
        self.slot_mod = FastMod::new(self.maglev.len().max(1) as u32);
    }

    /// The slot of `maglev` a flow with this hash takes: the hash's low half
    /// modulo `maglev.len()` (as [`crate::flow::backend_slot`]). Meaningless for an
    /// empty table.
    #[inline(always)]
    pub fn slot_for(&self, hash: u64) -> usize {
        self.slot_mod.remainder(hash as u32) as usize
    }

    /// The IPv4 backend (address, port) a flow with this hash goes to; `None`
    /// when every backend is drained or some backend is not IPv4 (the
    /// general path then decides).
    #[inline(always)]
    pub fn pick_v4(&self, hash: u64) -> Option<([u8; 4], u16)> {
        let backend = *self.maglev.get(self.slot_for(hash))?;
        self.targets_v4.get(backend as usize).copied()
    }
}
