//! The hot fields of a slot's record, copied into the entries of the IPv4
//! indexes (`index_v4`, `owner_index`) so that the fast paths find them in the cache line
//! their lookup reads, and read no record: at 1M EIPs, one cache miss less a
//! packet.

use super::slab::{EXTRA, FILTERED, LIVE, V4_BACKEND};
use super::{EipId, RegionId};
use std::net::Ipv4Addr;

/// What ingress needs of the EIP in a slot, copied from its record into the
/// EIP's entry of the IPv4 address index (`index_v4`): at 1M EIPs the
/// lookup's cache line then holds it, and the fast path reads no record.
/// [`super::EipSlab::entry`] makes it; the tables rewrite it whenever the record
/// changes ([`super::Tables`]'s `put_eip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EipEntry {
    slot: EipId,
    /// The record's backend (`slab.rs`), in network byte order: the NAT writes
    /// these bytes as they are.
    backend: [u8; 4],
    region: RegionId,
    flags: u16,
}

impl EipEntry {
    /// The entry of `slot` whose record holds these fields.
    pub(super) fn from_record(slot: EipId, backend: u32, region: RegionId, flags: u16) -> Self {
        EipEntry {
            slot,
            backend: backend.to_be_bytes(),
            region,
            flags,
        }
    }

    /// The slot of the EIP.
    #[inline(always)]
    pub fn slot(&self) -> EipId {
        self.slot
    }

    /// The 1:1 IPv4 backend and region when the slot holds a plain 1:1 IPv4
    /// EIP (no services, not IPv6): all the fast path needs, without
    /// assembling an [`super::Eip`] view.
    #[inline(always)]
    pub fn one_to_one_v4(&self) -> Option<([u8; 4], RegionId)> {
        (self.flags & (LIVE | V4_BACKEND | EXTRA) == LIVE | V4_BACKEND)
            .then_some((self.backend, self.region))
    }

    /// The EIP's region (of any EIP, plain or not).
    #[inline(always)]
    pub fn region(&self) -> RegionId {
        self.region
    }

    /// Whether the EIP has an access list.
    #[inline(always)]
    pub fn filtered(&self) -> bool {
        self.flags & FILTERED != 0
    }
}

impl super::index_v4::IndexValue for EipEntry {
    const FREE: Self = EipEntry {
        slot: EipId::MAX,
        backend: [0; 4],
        region: 0,
        flags: 0,
    };

    #[inline(always)]
    fn slot(self) -> EipId {
        self.slot
    }
}

/// The EIP that owns an IPv4 backend in a region, as the owner index holds
/// it (`owner_index`): its slot and, for a plain 1:1 IPv4 EIP, its address, so
/// that a return from a 1:1 backend reads no slot record. Made from the
/// description when the backend is claimed: whether an EIP is plain (no
/// services, an IPv4 address and 1:1 backend) changes only with the EIP,
/// which then releases and claims its backends again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerEntry {
    slot: EipId,
    /// The plain 1:1 EIP's address (host order); 0 (never an EIP) otherwise.
    plain_eip: u32,
}

impl OwnerEntry {
    /// The owner of a backend: `slot`, whose EIP is `plain_eip` when plain.
    pub fn new(slot: EipId, plain_eip: Option<Ipv4Addr>) -> Self {
        OwnerEntry {
            slot,
            plain_eip: plain_eip.map_or(0, u32::from),
        }
    }

    #[inline(always)]
    pub fn slot(&self) -> EipId {
        self.slot
    }

    /// The owner's address when it is a plain 1:1 IPv4 EIP.
    #[inline(always)]
    pub fn plain_eip(&self) -> Option<[u8; 4]> {
        (self.plain_eip != 0).then_some(self.plain_eip.to_be_bytes())
    }
}

impl super::index_v4::IndexValue for OwnerEntry {
    const FREE: Self = OwnerEntry {
        slot: EipId::MAX,
        plain_eip: 0,
    };

    #[inline(always)]
    fn slot(self) -> EipId {
        self.slot
    }
}
