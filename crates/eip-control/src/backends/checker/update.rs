//! [`BackendChecker::update`]: which backends are checked, taken from each
//! new description by difference, so that a change costs what it changes.

use super::{health_config, BackendChecker, Checked, FIRST_IDENT};
use crate::backends::codec::MAX_TCP_PAYLOAD;
use crate::backends::http as exchange;
use crate::backends::BackendKey;
use crate::health::{Health, PathHealth};
use eip_dataplane::check_spec::{CheckKind, CheckSpec};
use eip_dataplane::tables::spec::EipSpec;
use eip_dataplane::tables::{EipList, PopSpec, Tables};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

/// More changed EIPs than this and [`BackendChecker::update`] walks them all.
const MAX_INCREMENTAL: usize = 4096;

/// What of the POP, beside its EIPs, decides every check: when it changes,
/// every EIP is looked at again.
#[derive(Debug, PartialEq)]
struct PopInputs {
    default: Option<CheckSpec>,
    regions: Vec<(String, u32)>,
    source: Option<[u8; 4]>,
    vxlan_port: u16,
}

impl PopInputs {
    fn of(spec: &PopSpec, tables: &Tables) -> PopInputs {
        PopInputs {
            default: spec.pop.backend_check.clone(),
            regions: tables
                .regions
                .iter()
                .map(|r| (r.name.clone(), r.vni))
                .collect(),
            source: tables.probe_source,
            vxlan_port: tables.vxlan_port,
        }
    }
}

/// The last description [`BackendChecker::update`] took.
#[derive(Debug)]
pub(super) struct Seen {
    inputs: PopInputs,
    /// Shares its entries with the description's list (a clone is cheap).
    eips: EipList,
}

impl BackendChecker {
    /// Takes the operator's description and its tables: which backends are
    /// checked, how, and through which region. A backend still checked the
    /// same way keeps its health and identifier; a new one starts *up* (it is
    /// in its Maglev table already) until checks overturn it; one whose check
    /// changed starts again from its last health. IPv6 backends, and TCP
    /// checks of a 1:1 backend without a `port`, are not checked.
    ///
    /// Costs what changed since the last call: only the EIPs whose entries
    /// differ are looked at (the description's EIP list tells them apart in
    /// the shards the versions do not share), unless the POP's defaults, its
    /// regions or many EIPs changed. At 1M EIPs a walk of every EIP took the
    /// prober's thread long enough for its probes to time out.
    pub fn update(&mut self, spec: &PopSpec, tables: &Tables, now: Duration) {
        let inputs = PopInputs::of(spec, tables);
        let changed = match &self.seen {
            Some(seen) if seen.inputs == inputs => {
                spec.eips.changed_since(&seen.eips, MAX_INCREMENTAL)
            }
            _ => None,
        };
        self.source = tables.probe_source;
        self.vxlan_port = tables.vxlan_port;
        let default = spec.pop.backend_check.as_ref();
        let mut old: HashMap<BackendKey, Checked> = match &changed {
            None => {
                self.unchecked_eips.clear();
                self.pending_rst.clear();
                self.by_ident.clear();
                self.targets.drain(..).map(|c| (c.key, c)).collect()
            }
            Some(addresses) => {
                let addresses: HashSet<IpAddr> = addresses.iter().copied().collect();
                for a in &addresses {
                    self.unchecked_eips.remove(a);
                }
                self.take_targets_of(&addresses)
            }
        };
        match &changed {
            None => {
                for eip in &spec.eips {
                    self.add_eip(&eip, default, tables, &mut old, now);
                }
            }
            Some(addresses) => {
                for eip in addresses.iter().filter_map(|a| spec.eips.by_address(*a)) {
                    self.add_eip(&eip, default, tables, &mut old, now);
                }
            }
        }
        self.seen = Some(Seen {
            inputs,
            eips: spec.eips.clone(),
        });
        // Spread the first checks of new backends over their interval.
        let n = self.targets.len().max(1) as u32;
        for (k, c) in self.targets.iter_mut().enumerate() {
            if c.next_check == now && c.next_seq == 0 {
                c.next_check = now + Duration::from_millis(c.spec.interval_ms) * k as u32 / n;
            }
        }
    }

    /// Takes the targets of `eips` out (to be matched again by key), keeping
    /// the others in order, their identifiers and their pending RSTs.
    fn take_targets_of(&mut self, eips: &HashSet<IpAddr>) -> HashMap<BackendKey, Checked> {
        let mut taken = HashMap::new();
        let mut moved = vec![None; self.targets.len()];
        let mut kept = Vec::with_capacity(self.targets.len());
        for (i, c) in self.targets.drain(..).enumerate() {
            if eips.contains(&c.key.eip) {
                taken.insert(c.key, c);
            } else {
                moved[i] = Some(kept.len());
                kept.push(c);
            }
        }
        self.targets = kept;
        self.by_ident = self
            .targets
            .iter()
            .enumerate()
            .map(|(i, c)| (c.ident, i))
            .collect();
        self.pending_rst = self
            .pending_rst
            .drain(..)
            .filter_map(|(i, seq)| Some((moved.get(i).copied().flatten()?, seq)))
            .collect();
        taken
    }

    /// Adds the checks of one EIP's backends, taking back from `old` those
    /// checked the same way before.
    fn add_eip(
        &mut self,
        eip: &EipSpec,
        default: Option<&CheckSpec>,
        tables: &Tables,
        old: &mut HashMap<BackendKey, Checked>,
        now: Duration,
    ) {
        let Some(region) = tables.regions.iter().position(|r| r.name == eip.region) else {
            return;
        };
        let eip_check = eip.check().or(default);
        if eip_check.is_none() && eip.services.iter().all(|s| s.check.is_none()) {
            return; // nothing of it is checked (most EIPs of a large POP)
        }
        let mut checked = false;
        let mut unchecked = false;
        let mut wanted: Vec<(BackendKey, Option<(CheckSpec, u16)>)> = Vec::new();
        if let Some(backend) = eip.backend {
            let check = eip_check
                .filter(|c| c.kind == CheckKind::Icmp || c.port.is_some())
                .map(|c| (c.clone(), c.port.unwrap_or(0)));
            let key = BackendKey {
                eip: eip.address,
                service: None,
                backend,
                port: 0,
            };
            wanted.push((key, check));
        }
        for s in &eip.services {
            let check = s.check.as_ref().or(eip_check);
            for b in &s.backends {
                let port = b.port.unwrap_or(s.port);
                let key = BackendKey {
                    eip: eip.address,
                    service: Some((s.protocol, s.port)),
                    backend: b.address,
                    port,
                };
                wanted.push((key, check.map(|c| (c.clone(), c.port.unwrap_or(port)))));
            }
        }
        for (key, check) in wanted {
            let (IpAddr::V4(address), Some((check, dport))) = (key.backend, check) else {
                unchecked = true;
                continue;
            };
            if check.kind == CheckKind::None || self.by_ident.len() >= 0x8000 {
                unchecked = true;
                continue;
            }
            let mut c = match old.remove(&key) {
                Some(c) if c.spec == check => c,
                prev => {
                    let was_up = prev
                        .as_ref()
                        .is_none_or(|p| p.health.health() == Health::Up);
                    let ident = match prev {
                        Some(p) => p.ident,
                        None => self.allocate_ident(old),
                    };
                    let mut health = PathHealth::new(health_config(&check), now)
                        .expect("check settings validated when parsed");
                    if was_up {
                        health.assume_up(now);
                    }
                    Checked {
                        key,
                        spec: check,
                        address: [0; 4],
                        dport: 0,
                        region: 0,
                        vni: 0,
                        ident,
                        next_seq: 0,
                        next_check: now,
                        health,
                        transitions: 0,
                        last_status: None,
                        request: Box::default(),
                    }
                }
            };
            c.address = address.octets();
            c.dport = dport;
            if c.spec.kind == CheckKind::Http {
                let host = match &c.spec.host {
                    Some(h) => h.clone(),
                    None if dport == 80 => address.to_string(),
                    None => format!("{address}:{dport}"),
                };
                c.request = exchange::request(c.spec.http_path(), &host).into();
                if c.request.len() > MAX_TCP_PAYLOAD {
                    // Path and host are bounded when parsed; never here.
                    unchecked = true;
                    continue;
                }
            }
            c.region = region;
            c.vni = tables.regions[region].vni;
            self.by_ident.insert(c.ident, self.targets.len());
            self.targets.push(c);
            checked = true;
        }
        // Only an EIP with checked backends can be found all down; one of
        // them unchecked keeps it up.
        if checked && unchecked {
            self.unchecked_eips.insert(eip.address);
        }
    }

    fn allocate_ident(&mut self, pending: &HashMap<BackendKey, Checked>) -> u16 {
        loop {
            let ident = self.next_ident;
            self.next_ident = self.next_ident.wrapping_add(1).max(FIRST_IDENT);
            let in_use =
                self.by_ident.contains_key(&ident) || pending.values().any(|c| c.ident == ident);
            if !in_use {
                return ident;
            }
        }
    }
}
