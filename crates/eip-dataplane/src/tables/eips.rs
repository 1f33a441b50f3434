//! Adding and removing one EIP: the checks and index updates shared by the full
//! build ([`add_all`]) and by deltas ([`super::delta`]). A check reports the same
//! [`TableError`] in both, naming entries by their place in the description.

use super::build::{check_ipv6_paths, Problems};
use super::error::Entry;
use super::sharded::Sharded;
use super::slab::EipSlab;
use super::spec::{EipSpec, PopSpec, ServiceSpec};
use super::{addr_key, Backend, Eip, EipId, RegionId, Service, TableError, Tables};
use crate::maglev;
use rustc_hash::FxHashMap;
use std::net::IpAddr;

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
            .iter()
            .position(|e| e.address == address)
            .unwrap_or(self.spec.eips.len())
    }

    /// Where the EIP in `slot` first uses `addr` as a backend: the EIP (its 1:1
    /// backend) or the service backend.
    fn backend_use(&self, t: &Tables, slot: EipId, addr: IpAddr) -> Entry {
        let index = self.index_of_slot(t, slot);
        let Some(e) = self.spec.eips.get(index) else {
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

/// Adds every EIP of `spec` to `t` (whose small parts are built). With
/// `previous`, an EIP that is in it keeps its slot.
pub(super) fn add_all(
    spec: &PopSpec,
    previous: Option<&Tables>,
    t: &mut Tables,
    problems: &mut Problems,
) {
    let n = spec.eips.len();
    let v6 = spec.eips.iter().filter(|e| e.address.is_ipv6()).count();
    t.eips = EipSlab::with_capacity(n);
    t.eip_v4 = Sharded::with_capacity(n - v6);
    t.eip_v6 = Sharded::with_capacity(v6);
    t.backend_owner = Sharded::with_capacity(n);
    let mut slots: Vec<Option<EipId>> = match previous {
        None => vec![None; n],
        Some(prev) => {
            // A slot goes to the first entry of an address only (a duplicate is
            // reported below, as a duplicate).
            let mut taken = rustc_hash::FxHashSet::default();
            spec.eips
                .iter()
                .map(|e| prev.eip_slot(e.address).filter(|&s| taken.insert(s)))
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
    let mut slot_index = vec![u32::MAX; t.eips.slot_capacity()];
    for (i, slot) in slots.iter().enumerate() {
        let s = slot.unwrap_or_default() as usize;
        if slot_index[s] == u32::MAX {
            slot_index[s] = i as u32;
        }
    }
    let places = Places {
        spec,
        slot_index: Some(slot_index),
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
            e,
            &|| i,
            slot,
            &mut ipv6_checked,
            problems,
        );
    }
}

/// Checks `e` and adds it to `t` in `slot` (taken), reporting problems as
/// `eips[index()]`. The EIP's address must not be in `t` yet (else
/// [`TableError::DuplicateEip`]).
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
) {
    let entry = || Entry::item("eips", index()).label(e.address);
    let region = region_index.get(e.region.as_str()).copied();
    if region.is_none() {
        problems.unknown(entry(), "region", "region", &e.region);
    }
    let first = match e.address {
        IpAddr::V4(a) => t.eip_v4.claim(u32::from(a), slot),
        IpAddr::V6(a) => t.eip_v6.claim(u128::from(a), slot),
    };
    if let Some(first) = first.filter(|&f| f != slot) {
        problems.push(TableError::DuplicateEip {
            address: e.address,
            first: places.index_of_slot(t, first),
            second: index(),
        });
    }
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
    // Makes `addr` a backend of this EIP in its region; `at` is where it is used.
    let claim = |addr: IpAddr,
                 at: &dyn Fn() -> Entry,
                 field: &'static str,
                 t: &mut Tables,
                 problems: &mut Problems| {
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
        match t.backend_owner.claim((region, addr_key(addr)), slot) {
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
        claim(b, &entry, "backend", t, problems);
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
            claim(b.address, &b_entry, "address", t, problems);
            if let Some(region) = region {
                let key = (region, addr_key(b.address), s.protocol.number(), port);
                if let Some(previous) = t.service_return.insert(key, s.port) {
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
        let mut service = Service {
            protocol: s.protocol.number(),
            port: s.port,
            backends: backends.into_boxed_slice(),
            maglev: Box::default(),
        };
        if problems.none() {
            service.fill_maglev();
        }
        services.push(service);
    }
    if let (Some(region), true) = (region, e.address.is_ipv6()) {
        t.ipv6_eips[region as usize] += 1;
    }
    t.eips.put(
        slot,
        Eip {
            address: e.address,
            region: region.unwrap_or(RegionId::MAX),
            backend: e.backend,
            services: if services.is_empty() {
                places.no_services.clone()
            } else {
                services.into()
            },
        },
    );
}

/// Removes the EIP in `slot` and everything that points at it; with `free`, the
/// slot can be handed out again (without, the EIP is about to be replaced).
pub(super) fn remove(t: &mut Tables, slot: EipId, free: bool) -> Option<Eip> {
    let e = t.eips.take(slot, free)?;
    match e.address {
        IpAddr::V4(a) => t.eip_v4.remove(&u32::from(a)),
        IpAddr::V6(a) => t.eip_v6.remove(&u128::from(a)),
    };
    let region = e.region;
    if (region as usize) < t.regions.len() {
        if e.address.is_ipv6() {
            t.ipv6_eips[region as usize] -= 1;
        }
        let owned = |t: &Tables, addr: IpAddr| {
            t.backend_owner.get(&(region, addr_key(addr))) == Some(&slot)
        };
        for s in e.services.iter() {
            for b in s.backends.iter() {
                if owned(t, b.address) {
                    let key = (region, addr_key(b.address), s.protocol, b.port);
                    t.service_return.remove(&key);
                }
            }
        }
        for addr in e.backend.into_iter().chain(
            e.services
                .iter()
                .flat_map(|s| s.backends.iter().map(|b| b.address)),
        ) {
            if owned(t, addr) {
                t.backend_owner.remove(&(region, addr_key(addr)));
            }
        }
    }
    Some(e)
}
