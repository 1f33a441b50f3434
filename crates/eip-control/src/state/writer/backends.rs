//! Backend health on the observed side: the checks' verdicts put in force as
//! a new tables generation (never a new version, never on disk), and laid
//! over every snapshot an operator change builds, so that a change never
//! brings a backend measured down back into its Maglev table.

use super::{unpoison, ControlPlane, Snapshot};
use crate::api::ApiError;
use eip_dataplane::tables::{BackendRef, Tables};
use std::sync::Arc;

/// `tables` with every backend of `down` out of its Maglev table (those the
/// tables do not have are skipped). Costs one service per backend down.
pub(super) fn overlay(mut tables: Tables, down: &[BackendRef], generation: u64) -> Tables {
    for r in down {
        if let Some(t) = tables.with_backend_health(r, false, generation) {
            tables = t;
        }
    }
    tables
}

impl ControlPlane {
    /// Puts the backend checks' verdicts in force: each service backend named
    /// `false` leaves its Maglev table (only its flows move), each named
    /// `true` is back. Observed state, like path health: kept in memory only,
    /// never a new operator version; the tables get a new generation.
    ///
    /// Returns the new generation, or `None` when nothing changed.
    ///
    /// # Errors
    /// `internal` when the tables cannot be handed over, `timeout` (the new
    /// states stand) when a worker is slow to switch.
    pub fn set_backend_health(
        &self,
        states: &[(BackendRef, bool)],
    ) -> Result<Option<u64>, ApiError> {
        let mut writer = unpoison(self.writer.lock());
        let down: Vec<BackendRef> = states
            .iter()
            .filter(|(_, healthy)| !healthy)
            .map(|(r, _)| *r)
            .collect();
        let current = self.snapshot();
        let generation = current.generation() + 1;
        let mut tables = (*current.tables).clone();
        let mut changed = false;
        for (r, healthy) in states {
            let was_down = writer.backends_down.contains(r);
            if was_down != *healthy {
                continue;
            }
            if let Some(t) = tables.with_backend_health(r, *healthy, generation) {
                tables = t;
                changed = true;
            }
        }
        // Backends no longer reported (removed, or checks turned off) are back.
        for r in &writer.backends_down {
            if !states.iter().any(|(s, _)| s == r) {
                if let Some(t) = tables.with_backend_health(r, true, generation) {
                    tables = t;
                    changed = true;
                }
            }
        }
        writer.backends_down = down;
        if !changed {
            return Ok(None);
        }
        self.publish_generation(&mut writer, tables, generation, |tables| Snapshot {
            spec: Arc::clone(&current.spec),
            tables,
            path_states: current.path_states.clone(),
            observed: Arc::clone(&current.observed),
            version: current.version,
            resolved: current.resolved.clone(),
        })
    }

    /// The service backends the checks last reported down.
    pub fn backends_down(&self) -> Vec<BackendRef> {
        unpoison(self.writer.lock()).backends_down.clone()
    }
}

#[cfg(test)]
mod tests {
    use crate::api::{Op, UpdateBackend};
    use crate::state::testkit::{disk, setup};
    use eip_dataplane::tables::{BackendRef, Protocol, Tables};
    use std::net::IpAddr;

    /// A backend of the example's 192.0.2.20 tcp/80.
    fn backend(last: u8, backend_port: u16) -> BackendRef {
        BackendRef {
            eip: "192.0.2.20".parse().unwrap(),
            protocol: Protocol::Tcp,
            port: 80,
            backend: IpAddr::from([10, 1, 0, last]),
            backend_port,
        }
    }

    /// The service's Maglev table: slot -> backend address.
    fn maglev(t: &Tables) -> Vec<IpAddr> {
        let slot = t.eip_slot("192.0.2.20".parse().unwrap()).unwrap();
        let eip = t.eips.get(slot).unwrap();
        let s = eip.services.iter().find(|s| s.port == 80).unwrap();
        s.maglev
            .iter()
            .map(|&i| s.backends[usize::from(i)].address)
            .collect()
    }

    #[test]
    fn a_backend_down_leaves_maglev_alone_moves_only_its_flows_and_survives_changes() {
        let (dir, cp, sink) = setup("backends");
        let before = disk(&dir);
        let (version, generation) = (cp.version(), cp.snapshot().generation());
        let healthy = maglev(&cp.snapshot().tables);
        let (a, b) = (backend(20, 80), backend(21, 8080));
        assert_eq!(
            cp.set_backend_health(&[(a, true), (b, false)]),
            Ok(Some(generation + 1))
        );
        // Observed: no new version, nothing on disk.
        assert_eq!(cp.version(), version);
        assert_eq!(disk(&dir), before);
        let sick = maglev(&cp.snapshot().tables);
        assert!(!sick.contains(&b.backend));
        // Only the flows of the backend that went down move: every slot of
        // another backend keeps it (Maglev's minimal disruption).
        let mut moved = 0;
        for (old, new) in healthy.iter().zip(&sick) {
            if *old == b.backend {
                moved += 1;
            } else {
                assert_eq!(old, new);
            }
        }
        assert!(moved > 0);
        // The same verdicts again change nothing.
        assert_eq!(cp.set_backend_health(&[(a, true), (b, false)]), Ok(None));
        // An operator change to the same EIP rebuilds it: the backend stays out.
        let op = Op::UpdateBackend(UpdateBackend {
            eip: a.eip,
            protocol: Protocol::Tcp,
            port: 80,
            address: a.backend,
            backend_port: None,
            weight: 2,
        });
        let reply = cp.apply(&[op], None, false);
        assert!(reply.ok, "{reply:?}");
        assert!(!maglev(&cp.snapshot().tables).contains(&b.backend));
        // Back up: back in.
        assert!(cp
            .set_backend_health(&[(a, true), (b, true)])
            .unwrap()
            .is_some());
        assert!(maglev(&cp.snapshot().tables).contains(&b.backend));
        assert_eq!(cp.version(), version + 1);
        let published = sink.published.lock().unwrap().clone();
        assert!(published.windows(2).all(|w| w[0] < w[1]), "{published:?}");
    }
}
