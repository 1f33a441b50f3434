//! The read side: queries answer from an `Arc` of the current [`Snapshot`] and
//! never wait for the writer. `trace` is here too: it changes no state.

use super::plugins::StatsSource;
use super::writer::{ControlPlane, Snapshot};
use crate::api::{Admin, ApiError, Data, ErrorCode, PathView, Query, Reply, TraceRequest};
use crate::health::Health;
use crate::report;
use eip_dataplane::tables::{MacAddr, PathState, Tables};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

impl ControlPlane {
    /// Answers a read-only request from the snapshot in force.
    pub(super) fn query(&self, query: Query) -> Reply {
        let snap = self.snapshot();
        let version = snap.version();
        let data = match query {
            Query::ShowTables => Data::Tables {
                summary: report::summary_json(&snap.tables),
            },
            Query::ShowPaths => Data::Paths {
                paths: self.paths(&snap),
            },
            Query::ShowEips(filter) => Data::Eips {
                eips: match filter.address {
                    Some(a) => snap
                        .spec
                        .eips
                        .by_address(a)
                        .into_iter()
                        .map(Cow::into_owned)
                        .collect(),
                    None => snap.spec.eips.iter().map(Cow::into_owned).collect(),
                },
            },
            Query::ShowAcl(q) => match snap.spec.eips.by_address(q.address) {
                Some(e) => Data::Acl {
                    address: q.address,
                    acl: e.acl().cloned(),
                    hits: match &self.stats {
                        Some(source) => snap
                            .tables
                            .eip_slot(q.address)
                            .map(|slot| {
                                report::acl_hits(
                                    &snap.tables,
                                    slot,
                                    &source.counters(),
                                    &source.xdp_acl_hits(),
                                )
                            })
                            .unwrap_or_default(),
                        None => Vec::new(),
                    },
                },
                None => {
                    return Reply::error(
                        version,
                        ApiError::not_found(format!("EIP {} does not exist", q.address)),
                    )
                }
            },
            Query::ShowSpec => Data::Spec {
                spec: Box::new((*snap.spec).clone()),
            },
            Query::Explain(flow) => match crate::explain::explain(&snap.tables, &flow) {
                Ok(explain) => Data::Explain {
                    explain: Box::new(explain),
                },
                Err(e) => return Reply::error(version, e),
            },
            Query::ShowBgp => match &self.bgp {
                Some(bgp) => Data::Bgp { bgp: bgp.status() },
                None => return Reply::error(version, no_bgp()),
            },
            Query::Stats => match &self.stats {
                Some(source) => Data::Stats {
                    stats: self.stats_json(&snap.tables, source.as_ref()),
                },
                None => {
                    return Reply::error(
                        version,
                        ApiError::new(
                            ErrorCode::Unavailable,
                            "this daemon has no statistics source",
                        ),
                    )
                }
            },
        };
        Reply::ok(version, data)
    }

    /// `drain`: the BGP task drains, then the daemon stops.
    pub(super) fn drain(&self) -> Reply {
        let version = self.version();
        match self.bgp.as_ref().map(|b| b.drain()) {
            Some(Ok(wait_ms)) => Reply::ok(version, Data::Draining { wait_ms }),
            Some(Err(e)) => Reply::error(version, e),
            None => Reply::error(version, no_bgp()),
        }
    }

    /// Runs a packet trace to its end; changes run meanwhile.
    pub(super) fn trace(&self, request: &TraceRequest) -> Reply {
        let Some(tracer) = &self.tracer else {
            return Reply::error(
                self.version(),
                ApiError::new(ErrorCode::Unavailable, "this daemon cannot trace packets"),
            );
        };
        let tables = Arc::clone(&self.snapshot().tables);
        let result = tracer.trace(request, &tables);
        // The version in force now: changes may have been made during the trace.
        match result {
            Ok(summary) => Reply::ok(self.version(), Data::Trace(summary)),
            Err(e) => Reply::error(self.version(), e),
        }
    }

    fn paths(&self, snap: &Snapshot) -> Vec<PathView> {
        let t = &snap.tables;
        let usable: Vec<BTreeSet<u16>> = t
            .regions
            .iter()
            .map(|r| r.path_table.iter().copied().collect())
            .collect();
        snap.spec
            .paths
            .iter()
            .zip(&t.paths)
            .enumerate()
            .map(|(i, (spec, path))| {
                let region = path.region as usize;
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&path.template[..6]);
                let measured = snap.observed.get(&spec.name).copied().or_else(|| {
                    self.health
                        .as_ref()
                        .and_then(|h| h.path_health(&spec.name))
                        .map(|s| s.health)
                });
                PathView {
                    spec: spec.clone(),
                    admin: if spec.state == PathState::Disabled {
                        Admin::Disabled
                    } else {
                        Admin::Enabled
                    },
                    observed: measured.map(|h| match h {
                        Health::Up => PathState::Up,
                        Health::Down => PathState::Down,
                    }),
                    next_hop_mac_in_use: MacAddr(mac),
                    usable: usable[region].contains(&(i as u16)),
                    region_panic: t.regions[region].panic,
                    health: self
                        .health
                        .as_ref()
                        .and_then(|h| h.path_health(&spec.name))
                        .and_then(|s| serde_json::to_value(s).ok()),
                }
            })
            .collect()
    }

    fn stats_json(&self, tables: &Tables, source: &dyn StatsSource) -> Value {
        let mut stats = report::counters_json(tables, &source.counters());
        stats["elapsed_ms"] = json!(self.started.elapsed().as_millis() as u64);
        if let Some(runtime) = source.runtime() {
            stats["runtime"] = runtime;
        }
        stats
    }
}

fn no_bgp() -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "this daemon announces nothing: its POP description has no [bgp] section",
    )
}
