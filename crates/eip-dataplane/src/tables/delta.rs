//! Changes to a snapshot that cost what they change: EIP deltas from the
//! operator ([`Tables::apply`]) and observed health ([`Tables::with_path_states`],
//! [`Tables::with_backend_health`]). Each returns a new snapshot that shares every
//! EIP chunk and index shard it does not touch with `self`.

use super::build::{self, check_ipv6_paths, fill_path_table, Problems};
use super::eips::{self, Places};
use super::slab::NewEip;
use super::spec::{EipSpec, PathState, PopSpec, Protocol};
use super::{PathId, TableError, Tables};
use rustc_hash::FxHashSet;
use std::net::IpAddr;
use std::sync::Arc;

/// What changed in the operator's description, for [`Tables::apply`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableDelta {
    /// EIPs added, or replaced whole (matched by address). A replaced EIP keeps
    /// its slot.
    pub upsert: Vec<EipSpec>,
    /// Addresses of EIPs removed (an address the tables do not have is ignored,
    /// as a build of the description without it would).
    pub remove: Vec<IpAddr>,
    /// The `pop`, `ports`, `regions` or `paths` sections changed: they are rebuilt
    /// from the description (cheap). If the regions' names or order changed, the
    /// whole snapshot is rebuilt ([`Tables::rebuild`], slots kept).
    pub small_parts: bool,
}

impl TableDelta {
    /// Whether the delta changes nothing.
    pub fn is_empty(&self) -> bool {
        self.upsert.is_empty() && self.remove.is_empty() && !self.small_parts
    }
}

/// A service backend, for [`Tables::with_backend_health`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendRef {
    /// The EIP's address.
    pub eip: IpAddr,
    pub protocol: Protocol,
    /// The service's port.
    pub port: u16,
    pub backend: IpAddr,
    /// The backend's port (the service's port unless the description says other).
    pub backend_port: u16,
}

impl Tables {
    /// The snapshot after `delta`, with `version` and `generation`. `spec` is the
    /// operator's description *after* the change: the small parts are rebuilt
    /// from it when `delta.small_parts`, and errors name entries by their place in
    /// it. Costs what the delta touches (a few chunks and shards per EIP), not the
    /// size of the tables.
    ///
    /// Checks the touched EIPs exactly as [`Tables::build`] checks them (same
    /// [`TableError`]s); the result looks up like a build of `spec`.
    ///
    /// # Errors
    /// Every problem found; `self` is unchanged (nothing is built).
    pub fn apply(
        &self,
        delta: &TableDelta,
        spec: &PopSpec,
        version: u64,
        generation: u64,
    ) -> Result<Tables, Vec<TableError>> {
        let mut problems = Problems::default();
        build::check_eip_count(spec, &mut problems);
        let mut t = if delta.small_parts {
            let mut small = build::build_small(spec, version, &mut problems);
            let same_regions = small.regions.len() == self.regions.len()
                && small
                    .regions
                    .iter()
                    .zip(&self.regions)
                    .all(|(a, b)| a.name == b.name);
            if !same_regions {
                return Tables::rebuild(spec, self, version, generation);
            }
            small.eips = self.eips.clone();
            small.eip_v4 = self.eip_v4.clone();
            small.eip_v6 = self.eip_v6.clone();
            small.owner_v4 = self.owner_v4.clone();
            small.owner_v6 = self.owner_v6.clone();
            small.service_return = self.service_return.clone();
            small.ipv6_eips = self.ipv6_eips.clone();
            small
        } else {
            self.clone()
        };
        t.version = version;
        t.generation = generation;
        // Small and resolved per packet: always the description's.
        t.default_limits = build::default_limits(spec);

        let places = Places {
            spec,
            slot_index: None,
            no_services: Arc::from(Vec::new()),
        };
        let mut ipv6_checked = vec![false; t.regions.len()];
        if delta.small_parts {
            // New paths must still carry the IPv6 EIPs already in their regions.
            #[allow(clippy::needless_range_loop)] // `t` is borrowed by the check
            for region in 0..t.regions.len() {
                if t.ipv6_eips[region] > 0 && !ipv6_checked[region] {
                    ipv6_checked[region] = true;
                    let name = &t.regions[region].name;
                    let first = spec
                        .eips
                        .iter()
                        .find(|e| e.address.is_ipv6() && e.region == name);
                    if let Some(first) = first {
                        check_ipv6_paths(&t, region as u16, first.address, &mut problems);
                    }
                }
            }
        }

        for &addr in &delta.remove {
            if let Some(slot) = t.eip_slot(addr) {
                eips::remove(&mut t, slot, true);
            }
        }
        // Replaced EIPs leave first (keeping their slots): an upsert may take a
        // backend from another EIP of the same delta.
        let mut seen = FxHashSet::default();
        let mut slots = Vec::with_capacity(delta.upsert.len());
        for e in &delta.upsert {
            if !seen.insert(e.address) {
                let (first, second) = two_places(spec, e.address);
                problems.push(TableError::DuplicateEip {
                    address: e.address,
                    first,
                    second,
                });
                slots.push(None);
                continue;
            }
            let slot = t.eip_slot(e.address);
            if let Some(slot) = slot {
                eips::remove(&mut t, slot, false);
            }
            slots.push(Some(slot));
        }
        let regions = build::region_index(&t);
        for (e, slot) in delta.upsert.iter().zip(slots) {
            let Some(slot) = slot else { continue };
            let slot = slot.unwrap_or_else(|| t.eips.allocate());
            let index = || places.index_of(e.address);
            eips::insert(
                &mut t,
                &regions,
                &places,
                e,
                &index,
                slot,
                &mut ipv6_checked,
                &mut problems,
                None,
            );
        }
        problems.into_result(t)
    }

    /// The snapshot with observed path states `states` (path index, state) and
    /// generation `generation`: only the path tables of the regions of those
    /// paths are rebuilt; every EIP chunk and index shard is shared with `self`.
    /// Up carries traffic; Down only when no path of the region is Up (the
    /// "panic" fallback); Disabled never. Unknown path indexes are ignored.
    pub fn with_path_states(&self, states: &[(PathId, PathState)], generation: u64) -> Tables {
        let mut t = self.clone();
        t.generation = generation;
        let mut touched = Vec::new();
        for &(p, state) in states {
            if let Some(path) = t.paths.get_mut(p as usize) {
                path.state = state;
                if !touched.contains(&path.region) {
                    touched.push(path.region);
                }
            }
        }
        for r in touched {
            if let Some(region) = t.regions.get_mut(r as usize) {
                fill_path_table(region, &t.paths);
            }
        }
        t
    }

    /// The snapshot with the observed health of one service backend set, and
    /// generation `generation`: an unhealthy backend gets no new flows (its
    /// service's Maglev table is rebuilt without it); nothing else is rebuilt.
    /// `None` when the tables have no such backend.
    pub fn with_backend_health(
        &self,
        backend: &BackendRef,
        healthy: bool,
        generation: u64,
    ) -> Option<Tables> {
        let slot = self.eip_slot(backend.eip)?;
        let eip = self.eips.get(slot)?;
        let mut services: Vec<_> = eip.services.to_vec();
        let service = services
            .iter_mut()
            .find(|s| s.protocol == backend.protocol.number() && s.port == backend.port)?;
        let mut backends = service.backends.to_vec();
        let b = backends
            .iter_mut()
            .find(|b| b.address == backend.backend && b.port == backend.backend_port)?;
        b.healthy = healthy;
        service.backends = backends.into_boxed_slice();
        service.fill_maglev();
        let eip = NewEip {
            address: eip.address,
            region: eip.region,
            backend: eip.backend,
            services: Arc::from(services),
            limits: self
                .eips
                .limits(slot)
                .copied()
                .unwrap_or(super::limits::Limits::INHERIT),
            acl: self.eips.acl(slot).cloned(),
        };
        let mut t = self.clone();
        t.generation = generation;
        t.put_eip(slot, eip);
        Some(t)
    }
}

/// The first two entries of `address` in the description (for a duplicate).
fn two_places(spec: &PopSpec, address: IpAddr) -> (usize, usize) {
    let mut at = spec
        .eips
        .iter()
        .enumerate()
        .filter(|(_, e)| e.address == address)
        .map(|(i, _)| i);
    let first = at.next().unwrap_or(spec.eips.len());
    (first, at.next().unwrap_or(first))
}
