//! Counter reports for operators (aligned text) and machines (JSON).

use crate::state::XdpAclHits;
use eip_dataplane::counters::{Counters, DropReason, Event};
use eip_dataplane::tables::acl::Acl;
use eip_dataplane::tables::EipId;
use eip_dataplane::Tables;
use serde_json::{json, Map, Value};
use std::fmt::Write;

/// JSON object with every counter (zeros included, so consumers see a fixed shape).
pub fn counters_json(tables: &Tables, c: &Counters) -> Value {
    let drops: Map<String, Value> = DropReason::ALL
        .iter()
        .map(|r| (r.label().to_string(), json!(c.dropped(*r))))
        .collect();
    let events: Map<String, Value> = Event::ALL
        .iter()
        .map(|e| (e.label().to_string(), json!(c.happened(*e))))
        .collect();
    let eips: Vec<Value> = tables
        .eips
        .iter()
        .map(|(i, e)| {
            let (tin, tout) = c.eip_traffic_of(i as usize, e.epoch);
            (e, tin, tout, c.eip_policed_of(i as usize, e.epoch))
        })
        .filter(|(_, tin, tout, p)| tin.packets > 0 || tout.packets > 0 || !p.is_zero())
        .map(|(e, tin, tout, p)| {
            let mut v = json!({
                "address": e.address.to_string(),
                "in": tin,
                "out": tout,
            });
            if !p.is_zero() {
                v["rate_limited"] = json!(p);
            }
            v
        })
        .collect();
    let paths: Vec<Value> = tables
        .paths
        .iter()
        .enumerate()
        .map(|(i, p)| json!({ "name": p.name, "traffic": c.path.get(i).copied().unwrap_or_default() }))
        .collect();
    json!({ "table_version": tables.version, "events": events, "drops": drops, "eips": eips, "paths": paths })
}

/// Aligned text: non-zero events and drops, then per-EIP and per-path traffic.
pub fn counters_text(tables: &Tables, c: &Counters) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "events:");
    for e in Event::ALL {
        if c.happened(*e) > 0 {
            let _ = writeln!(out, "  {:<28} {:>12}", e.label(), c.happened(*e));
        }
    }
    let _ = writeln!(
        out,
        "drops:{}",
        if c.total_drops() == 0 { " none" } else { "" }
    );
    for r in DropReason::ALL {
        if c.dropped(*r) > 0 {
            let _ = writeln!(out, "  {:<28} {:>12}", r.label(), c.dropped(*r));
        }
    }
    let mut header = false;
    for (i, e) in tables.eips.iter() {
        let i = i as usize;
        let (tin, tout) = c.eip_traffic_of(i, e.epoch);
        if tin.packets == 0 && tout.packets == 0 {
            continue;
        }
        if !header {
            let _ = writeln!(
                out,
                "eips:\n  {:<28} {:>10} {:>12} {:>10} {:>12}",
                "address", "in pkts", "in bytes", "out pkts", "out bytes"
            );
            header = true;
        }
        let _ = writeln!(
            out,
            "  {:<28} {:>10} {:>12} {:>10} {:>12}",
            e.address.to_string(),
            tin.packets,
            tin.bytes,
            tout.packets,
            tout.bytes
        );
        if let Some(p) = c.eip_policed.get(i).filter(|p| !p.is_zero()) {
            let _ = writeln!(
                out,
                "    rate limited: in {} over bps, {} over pps; out {} over bps, {} over pps",
                p.in_over_bps, p.in_over_pps, p.out_over_bps, p.out_over_pps
            );
        }
    }
    if !tables.paths.is_empty() {
        let _ = writeln!(
            out,
            "paths:\n  {:<20} {:<10} {:>10} {:>12}",
            "name", "state", "packets", "bytes"
        );
        for (i, p) in tables.paths.iter().enumerate() {
            let t = c.path.get(i).copied().unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<20} {:<10} {:>10} {:>12}",
                p.name,
                format!("{:?}", p.state).to_lowercase(),
                t.packets,
                t.bytes
            );
        }
    }
    out
}

/// What a table snapshot holds, for `eipd check` / `eipctl validate`.
pub fn summary_json(t: &Tables) -> Value {
    let regions: Vec<Value> = t
        .regions
        .iter()
        .map(|r| {
            let usable: std::collections::BTreeSet<&str> = r
                .path_table
                .iter()
                .map(|&p| t.paths[p as usize].name.as_str())
                .collect();
            json!({
                "name": r.name, "vni": r.vni, "vtep": r.vtep.to_string(),
                "paths": r.paths.iter().map(|&p| &t.paths[p as usize].name).collect::<Vec<_>>(),
                "usable_paths": usable, "panic": r.panic,
            })
        })
        .collect();
    json!({
        "pop": t.pop_name,
        "table_version": t.version,
        "ports": t.ports.iter().map(|p| json!({"name": p.name, "role": p.role, "interface": p.interface})).collect::<Vec<_>>(),
        "regions": regions,
        "eips": t.eips.len(),
        "services": t.services().count(),
        "backends": t.services().map(|s| s.backends.len()).sum::<usize>(),
        "table_bytes": t.heap_bytes(),
    })
}

/// Text form of [`summary_json`].
pub fn summary_text(t: &Tables) -> String {
    let mut out = String::new();
    let backends: usize = t.services().map(|s| s.backends.len()).sum();
    let _ = writeln!(out, "pop {:?}, table version {}", t.pop_name, t.version);
    let _ = writeln!(
        out,
        "  ports:    {}",
        t.ports
            .iter()
            .map(|p| format!("{} ({:?})", p.name, p.role).to_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for r in &t.regions {
        let usable: std::collections::BTreeSet<&str> = r
            .path_table
            .iter()
            .map(|&p| t.paths[p as usize].name.as_str())
            .collect();
        let _ = writeln!(
            out,
            "  region {:?}: vni {}, vtep {}, {} paths, usable: {}{}",
            r.name,
            r.vni,
            r.vtep,
            r.paths.len(),
            if usable.is_empty() {
                "none".to_string()
            } else {
                usable.into_iter().collect::<Vec<_>>().join(", ")
            },
            if r.panic {
                " (no path up: using paths that are down)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        out,
        "  eips:     {} ({} services, {} service backends)",
        t.eips.len(),
        t.services().count(),
        backends
    );
    let _ = writeln!(out, "  memory:   {} KiB of tables", t.heap_bytes() / 1024);
    out
}

/// Hits per entry of the access list in force on the EIP in `slot` (the
/// default's last), from counters summed over the workers, plus what the XDP
/// program dropped for its rules (`xdp`, see
/// [`StatsSource::xdp_acl_hits`](crate::state::StatsSource::xdp_acl_hits)):
/// zeros until counted for that list (a changed list, or a new EIP in the
/// slot, starts from zero); empty when the EIP has no list.
pub fn acl_hits(tables: &Tables, slot: EipId, c: &Counters, xdp: &[XdpAclHits]) -> Vec<u64> {
    let Some(acl) = tables.eips.acl(slot) else {
        return Vec::new();
    };
    let mut hits = worker_acl_hits(tables, slot, acl, c);
    for x in xdp.iter().filter(|x| x.list == acl.id) {
        if let Some((s, rule)) = tables.xdp_acl_rule(x.eip, &x.source) {
            if s == slot {
                if let Some(h) = hits.get_mut(rule as usize) {
                    *h += x.hits;
                }
            }
        }
    }
    hits
}

fn worker_acl_hits(tables: &Tables, slot: EipId, acl: &Acl, c: &Counters) -> Vec<u64> {
    let s = slot as usize;
    match c.eip_acl.get(s) {
        Some(h)
            if h.acl == acl.id
                && h.hits.len() == acl.rules() + 1
                && c.extras_epoch_at(s) == tables.eips.epoch(slot) =>
        {
            h.hits.clone()
        }
        _ => vec![0; acl.rules() + 1],
    }
}
