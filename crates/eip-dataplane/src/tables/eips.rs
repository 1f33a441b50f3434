//! Adding and removing one EIP: the checks and index updates shared by the full
//! build ([`add_all`]) and by deltas ([`super::delta`]). A check reports the same
//! [`TableError`] in both, naming entries by their place in the description.

use super::build::{check_ipv6_paths, Problems};
use super::entries::OwnerEntry;
use super::error::Entry;
use super::index_v4::{IndexV4, IndexV4Builder};
use super::owner_index::{OwnerIndexV4, OwnerIndexV4Builder};
use super::sharded::{Sharded, ShardedBuilder};
use super::slab::EipSlab;
use super::slab::NewEip;
use super::spec::{EipSpec, PopSpec, ServiceSpec};
use super::{addr_key, Backend, EipId, RegionId, Service, TableError, Tables};
use crate::maglev;
use rustc_hash::FxHashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Where the EIPs of the table are in the description, for error messages.
pub(super) struct Places<'a> {
    pub spec: &'a PopSpec,
    /// Slot -> index into `spec.eips` during a full build; deltas find EIPs by
    /// address instead (only when reporting an error).
    pub slot_index: Option<Vec<u32>>,
    /// One empty service list that every EIP without services shares (no
    /// allocation per 1:1 EIP).
    pub no_services: std::sync::Arc<[Service]>,
}

impl Places<'_> {
    /// Index in the description of the EIP in `slot` of `t`.
    fn index_of_slot(&self, t: &Tables, slot: EipId) -> usize {
        if let Some(&i) = self.slot_index.as_ref().and_then(|v| v.get(slot as usize)) {
            return i as usize;
        }
        match t.eips.get(slot) {
            Some(e) => self.index_of(e.address),
            None => self.spec.eips.len(),
        }
    }

    /// Index in the description of the EIP with `address` (its first entry).
    pub fn index_of(&self, address: IpAddr) -> usize {
        self.spec
            .eips
            .position(address)
            .unwrap_or(self.spec.eips.len())
    }

    /// Where the EIP in `slot` first uses `addr` as a backend: the EIP (its 1:1
    /// backend) or the service backend.
    fn backend_use(&self, t: &Tables, slot: EipId, addr: IpAddr) -> Entry {
        let index = self.index_of_slot(t, slot);
        let Some(e) = self.spec.eips.nth(index) else {
            return Entry::item("eips", index);
        };
        let entry = Entry::item("eips", index).label(e.address);
        if e.backend == Some(addr) {
            return entry;
        }
        for (s_index, s) in e.services.iter().enumerate() {
            if let Some(b_index) = s.backends.iter().position(|b| b.address == addr) {
                return service_entry(entry, s_index, s).then("backends", b_index);
            }
        }
        entry
    }
}

fn service_entry(eip: Entry, index: usize, s: &ServiceSpec) -> Entry {
    eip.then("services", index)
        .label(format_args!("{:?}/{}", s.protocol, s.port))
}

/// Index entries of a full build, collected while the EIPs are checked and
/// built shard by shard at the end ([`ShardedBuilder`]): no copy-on-write
/// check and no random walk over a million-entry map per EIP.
pub(super) struct Bulk {
    v4: IndexV4Builder,
    v6: ShardedBuilder<u128, EipId>,
    owner_v4: OwnerIndexV4Builder,
    owner_v6: ShardedBuilder<(RegionId, u128), EipId>,
    service_return: ShardedBuilder<(RegionId, u128, u8, u16), u16>,
}

/// Adds every EIP of `spec` to `t` (whose small parts are built). With
/// `previous`, an EIP that is in it keeps its slot.
///
/// A description that builds (the common case) is built in bulk. One with a
/// problem is built again EIP by EIP, which finds every problem in the order of
/// the description and names both entries of a conflict.
pub(super) fn add_all(
    spec: &PopSpec,
    previous: Option<&Tables>,
    t: &mut Tables,
    problems: &mut Problems,
) {
    let mut bulk_problems = Problems::default();
    if add_all_with(spec, previous, t, &mut bulk_problems, true) {
        return;
    }
    add_all_with(spec, previous, t, problems, false);
}

/// [`add_all`] in bulk (`bulk`: false when a problem is found, `t` then
/// half-built) or EIP by EIP (always true).
fn add_all_with(
    spec: &PopSpec,
    previous: Option<&Tables>,
    t: &mut Tables,
    problems: &mut Problems,
    bulk: bool,
) -> bool {
    let n = spec.eips.len();
    let v6 = spec
        .eips
        .addresses_and_regions()
        .filter(|(a, _)| a.is_ipv6())
        .count();
    t.eips = EipSlab::with_capacity(n);
    t.ipv6_eips.iter_mut().for_each(|c| *c = 0);
    let mut pending = if bulk {
        t.eip_v4 = IndexV4::default();
        t.eip_v6 = Sharded::default();
        t.owner_v4 = OwnerIndexV4::default();
        t.owner_v6 = Sharded::default();
        t.service_return = Sharded::default();
        Some(Bulk {
            v4: IndexV4Builder::with_capacity(n - v6),
            v6: ShardedBuilder::with_capacity(v6),
            owner_v4: OwnerIndexV4Builder::with_capacity(n - v6, t.regions.len()),
            owner_v6: ShardedBuilder::with_capacity(v6),
            service_return: ShardedBuilder::with_capacity(0),
        })
    } else {
        t.eip_v4 = IndexV4::with_capacity(n - v6);
        t.eip_v6 = Sharded::with_capacity(v6);
        t.owner_v4 = OwnerIndexV4::default();
        t.owner_v6 = Sharded::with_capacity(v6);
        t.service_return = Sharded::default();
        None
    };
    let mut slots: Vec<Option<EipId>> = match previous {
        None => vec![None; n],
        Some(prev) => {
            // A slot goes to the first entry of an address only (a duplicate is
            // reported below, as a duplicate).
            let mut taken = rustc_hash::FxHashSet::default();
            spec.eips
                .addresses_and_regions()
                .map(|(a, _)| prev.eip_slot(a).filter(|&s| taken.insert(s)))
                .collect()
        }
    };
    for slot in slots.iter().flatten() {
        t.eips.reserve(*slot);
    }
    for slot in &mut slots {
        if slot.is_none() {
            *slot = Some(t.eips.allocate());
        }
    }
    if let Some(prev) = previous {
        carry_epochs(spec, prev, &slots, &mut t.eips);
    }
    // Slot -> entry only matters for naming a conflict: EIP by EIP.
    let slot_index = (!bulk).then(|| {
        let mut slot_index = vec![u32::MAX; t.eips.slot_capacity()];
        for (i, slot) in slots.iter().enumerate() {
            let s = slot.unwrap_or_default() as usize;
            if slot_index[s] == u32::MAX {
                slot_index[s] = i as u32;
            }
        }
        slot_index
    });
    let places = Places {
        spec,
        slot_index,
        no_services: std::sync::Arc::from(Vec::new()),
    };
    let regions = super::build::region_index(t);
    let mut ipv6_checked = vec![false; t.regions.len()];
    for (i, (e, slot)) in spec.eips.iter().zip(slots).enumerate() {
        let slot = slot.unwrap_or_default();
        insert(
            t,
            &regions,
            &places,
            &e,
            &|| i,
            slot,
            &mut ipv6_checked,
            problems,
            pending.as_mut(),
        );
        if bulk && !problems.none() {
            return false;
        }
    }
    if let Some(b) = pending {
        let built = (|| {
            t.eip_v4 = b.v4.build().ok()?;
            t.eip_v6 = b.v6.build().ok()?;
            t.owner_v4 = b.owner_v4.build().ok()?;
            t.owner_v6 = b.owner_v6.build().ok()?;
            t.service_return = b.service_return.build().ok()?;
            Some(())
        })();
        return built.is_some();
    }
    true
}

/// A rebuild after `prev`: every slot `prev` used keeps its epoch if the same EIP
/// is in it again, else gets the next one (its counts are another EIP's); slot
/// capacity does not shrink.
fn carry_epochs(spec: &PopSpec, prev: &Tables, slots: &[Option<EipId>], eips: &mut EipSlab) {
    let cap = prev.eips.slot_capacity() as EipId;
    eips.grow_to(cap);
    for s in 0..cap {
        let epoch = match prev.eips.get(s) {
            Some(_) => super::slab::next_epoch(prev.eips.epoch(s)),
            None => prev.eips.epoch(s),
        };
        if epoch != 0 {
            eips.set_epoch(s, epoch);
        }
    }
    for ((address, _), slot) in spec.eips.addresses_and_regions().zip(slots) {
        let Some(slot) = *slot else { continue };
        if let Some(old) = prev.eips.get(slot).filter(|o| o.address == address) {
            eips.set_epoch(slot, old.epoch);
        }
    }
}

/// Checks `e` and adds it to `t` in `slot` (taken), reporting problems as
/// `eips[index()]`. The EIP's address must not be in `t` yet (else
/// [`TableError::DuplicateEip`]). With `bulk`, index entries are collected there
/// instead of entered in `t` (conflicts between EIPs are then found when the
/// indexes are built).
#[allow(clippy::too_many_arguments)]
pub(super) fn insert(
    t: &mut Tables,
    region_index: &FxHashMap<String, RegionId>,
    places: &Places<'_>,
    e: &EipSpec,
    index: &dyn Fn() -> usize,
    slot: EipId,
    ipv6_checked: &mut [bool],
    problems: &mut Problems,
    mut bulk: Option<&mut Bulk>,
) {
    let entry = || Entry::item("eips", index()).label(e.address);
    let region = region_index.get(e.region.as_str()).copied();
    if region.is_none() {
        problems.unknown(entry(), "region", "region", &e.region);
    }
    // An IPv4 entry carries the record's hot fields: in bulk it is pushed
    // once the record is stored (below); here it is claimed now (to find a
    // duplicate) and brought up to date when the record is stored.
    let first = match (e.address, bulk.as_deref_mut()) {
        (IpAddr::V4(_), Some(_)) => None,
        (IpAddr::V6(a), Some(b)) => {
            b.v6.push(u128::from(a), slot);
            None
        }
        (IpAddr::V4(a), None) => t
            .eip_v4
            .claim(u32::from(a), t.eips.entry(slot))
            .map(|f| f.slot()),
        (IpAddr::V6(a), None) => t.eip_v6.claim(u128::from(a), slot),
    };
    if let Some(first) = first.filter(|&f| f != slot) {
        problems.push(TableError::DuplicateEip {
            address: e.address,
            first: places.index_of_slot(t, first),
            second: index(),
        });
    }
    if let Some(reason) = refused_address(t, e.address) {
        problems.invalid(
            entry(),
            "address",
            format!("{} {reason}: it cannot be an EIP", e.address),
        );
    }
    t.protection.note_eip(e.address);
    if e.backend.is_none() && e.services.is_empty() {
        problems.invalid(
            entry(),
            "backend",
            "an EIP needs a backend, services, or both",
        );
    }
    if let Some(region) = region.filter(|_| e.address.is_ipv6()) {
        if !std::mem::replace(&mut ipv6_checked[region as usize], true) {
            check_ipv6_paths(t, region, e.address, problems);
        }
    }
    // A plain 1:1 IPv4 EIP (what its slot record holds inline): returns from
    // its backend find its address in the owner index entry.
    let plain_eip = match (e.address, e.backend) {
        (IpAddr::V4(a), Some(IpAddr::V4(_))) if e.services.is_empty() => Some(a),
        _ => None,
    };
    // Makes `addr` a backend of this EIP in its region; `at` is where it is used.
    let claim = |addr: IpAddr,
                 at: &dyn Fn() -> Entry,
                 field: &'static str,
                 t: &mut Tables,
                 problems: &mut Problems,
                 bulk: Option<&mut Bulk>| {
        if let Some(reason) = refused_address(t, addr) {
            problems.invalid(
                at(),
                field,
                format!("{addr} {reason}: it cannot be a backend"),
            );
            return;
        }
        if addr.is_ipv4() != e.address.is_ipv4() {
            problems.invalid(
                at(),
                field,
                format!(
                    "backend {addr} is not of the EIP's address family (NAT between IPv4 and IPv6 is not supported)"
                ),
            );
            return;
        }
        let Some(region) = region else { return };
        if let Some(b) = bulk {
            match addr {
                IpAddr::V4(a) => {
                    b.owner_v4
                        .push(region, u32::from(a), OwnerEntry::new(slot, plain_eip))
                }
                IpAddr::V6(a) => b.owner_v6.push((region, u128::from(a)), slot),
            }
            return;
        }
        match t.claim_backend(region, addr, slot, plain_eip) {
            None => {}
            Some(owner) if owner == slot => {}
            Some(owner) => {
                let other = places.backend_use(t, owner, addr);
                problems.push(TableError::BackendConflict {
                    entry: at(),
                    backend: addr,
                    other,
                });
            }
        }
    };
    if let Some(b) = e.backend {
        claim(b, &entry, "backend", t, problems, bulk.as_deref_mut());
    }
    let mut services = Vec::with_capacity(e.services.len());
    for (s_index, s) in e.services.iter().enumerate() {
        let s_entry = || service_entry(entry(), s_index, s);
        if s.port == 0 {
            problems.invalid(s_entry(), "port", "must not be 0");
        }
        if e.services[..s_index]
            .iter()
            .any(|o| o.protocol == s.protocol && o.port == s.port)
        {
            problems.invalid(s_entry(), "port", "this protocol and port is defined twice");
        }
        if s.backends.is_empty() {
            problems.invalid(
                s_entry(),
                "backends",
                "a service needs at least one backend",
            );
        }
        if s.backends.len() > maglev::MAX_BACKENDS {
            problems.invalid(
                s_entry(),
                "backends",
                format!("at most {} backends per service", maglev::MAX_BACKENDS),
            );
        }
        let mut backends = Vec::with_capacity(s.backends.len());
        for (b_index, b) in s.backends.iter().enumerate() {
            let b_entry = || s_entry().then("backends", b_index);
            let port = b.port.unwrap_or(s.port);
            if port == 0 {
                problems.invalid(b_entry(), "port", "must not be 0");
            }
            if backends
                .iter()
                .any(|x: &Backend| x.address == b.address && x.port == port)
            {
                problems.invalid(
                    b_entry(),
                    "address",
                    format!("{}:{port} is listed twice", b.address),
                );
            }
            claim(
                b.address,
                &b_entry,
                "address",
                t,
                problems,
                bulk.as_deref_mut(),
            );
            if let Some(region) = region {
                let key = (region, addr_key(b.address), s.protocol.number(), port);
                if let Some(b) = bulk.as_deref_mut() {
                    b.service_return.push(key, s.port);
                } else if let Some(previous) = t.service_return.insert(key, s.port) {
                    if previous != s.port {
                        problems.invalid(
                            b_entry(),
                            "port",
                            format!(
                                "{}:{port} already serves port {previous}; returns from it could not be told apart",
                                b.address
                            ),
                        );
                    }
                }
            }
            backends.push(Backend {
                address: b.address,
                port,
                weight: b.weight,
                healthy: true,
            });
        }
        let mut service = Service::new(s.protocol.number(), s.port, backends.into_boxed_slice());
        if problems.none() {
            service.fill_maglev();
        }
        services.push(service);
    }
    if let (Some(region), true) = (region, e.address.is_ipv6()) {
        t.ipv6_eips[region as usize] += 1;
    }
    let acl = e.acl().and_then(|a| match a.validate() {
        Ok(()) => Some(Arc::new(a.compile())),
        Err(reason) => {
            problems.invalid(entry(), "acl", reason);
            None
        }
    });
    t.put_eip(
        slot,
        NewEip {
            address: e.address,
            region: region.unwrap_or(RegionId::MAX),
            backend: e.backend,
            services: if services.is_empty() {
                places.no_services.clone()
            } else {
                services.into()
            },
            limits: e
                .limits()
                .map_or(super::limits::Limits::INHERIT, |l| l.compile()),
            acl,
        },
    );
    if let (IpAddr::V4(a), Some(b)) = (e.address, bulk) {
        b.v4.push(u32::from(a), t.eips.entry(slot));
    }
}

/// Removes the EIP in `slot` and everything that points at it; with `free`, the
/// slot can be handed out again (without, the EIP is about to be replaced).
pub(super) fn remove(t: &mut Tables, slot: EipId, free: bool) -> Option<()> {
    let e = t.eips.get(slot)?;
    let (address, region, backend) = (e.address, e.region, e.backend);
    let services = t.eips.services_arc(slot);
    t.eips.take(slot, free)?;
    match address {
        IpAddr::V4(a) => t.eip_v4.remove(u32::from(a)).map(|e| e.slot()),
        IpAddr::V6(a) => t.eip_v6.remove(&u128::from(a)),
    };
    if (region as usize) < t.regions.len() {
        if address.is_ipv6() {
            t.ipv6_eips[region as usize] -= 1;
        }
        let owned = |t: &Tables, addr: IpAddr| t.backend_owner(region, addr) == Some(slot);
        let services = services.as_deref().unwrap_or(&[]);
        for s in services {
            for b in s.backends.iter() {
                if owned(t, b.address) {
                    let key = (region, addr_key(b.address), s.protocol, b.port);
                    t.service_return.remove(&key);
                }
            }
        }
        for addr in backend.into_iter().chain(
            services
                .iter()
                .flat_map(|s| s.backends.iter().map(|b| b.address)),
        ) {
            if owned(t, addr) {
                t.release_backend(region, addr);
            }
        }
    }
    Some(())
}

/// Why `addr` may be neither an EIP nor a backend, if it may not: a martian
/// (`crate::protect::unusable`) or one of the POP's own addresses.
fn refused_address(t: &Tables, addr: IpAddr) -> Option<String> {
    if let Some(why) = crate::protect::unusable(addr) {
        return Some(format!("is a martian address ({why})"));
    }
    t.protection
        .own_addresses()
        .contains(&addr)
        .then(|| "is one of this POP's own addresses (a VTEP, path endpoint, probe address, region VTEP or `protection.own_addresses`)".to_string())
}
