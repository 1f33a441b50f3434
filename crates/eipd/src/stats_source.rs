//! What `eipctl stats` and `watch` see of this daemon: the pipeline's counters,
//! and under `runtime` the AF_XDP driver's own counters and the kernel sockets'
//! drops, so that overload (fill ring empty, TX ring full, socket drops) shows
//! where operators look and not only in the final report.

use crate::processor::{sum_counters, Published};
use eip_afxdp::{AfXdpRuntime, FilterStats, SocketStats, WorkerCounters, WorkerSnapshot};
use eip_control::state::{StatsSource, XdpAclHits};
use eip_dataplane::counters::Counters;
use eip_dataplane::PortId;
use eip_dataplane::Tables;
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};

/// The driver's figures as the control thread last copied them out of the
/// runtime (which only that thread may touch).
#[derive(Debug, Default, Clone)]
pub struct DriverFigures {
    /// (queue, last published worker snapshot).
    pub workers: Vec<(u32, WorkerSnapshot)>,
    /// Kernel socket statistics: (queue, port, stats) of the sockets whose
    /// `getsockopt` succeeded.
    pub sockets: Vec<(u32, PortId, SocketStats)>,
    /// The XDP program's counters, if they could be read.
    pub xdp: Option<FilterStats>,
    /// Its access-list drops per (EIP, source prefix).
    pub xdp_acl_hits: Vec<XdpAclHits>,
}

impl DriverFigures {
    /// Copies them out of `runtime` (the control thread's), except the
    /// access-list drops (one read per entry: see [`Self::xdp_acl_hits_of`]).
    pub fn read(runtime: &AfXdpRuntime) -> DriverFigures {
        DriverFigures {
            workers: runtime.worker_stats(),
            sockets: DriverFigures::readable(runtime.socket_stats()),
            xdp: runtime.filter_stats().ok(),
            xdp_acl_hits: Vec::new(),
        }
    }

    /// The XDP program's drops per access-list entry (none if unreadable),
    /// each tagged with the list its EIP has in `tables`, the tables in force
    /// (the program zeroes a kept entry when the list changes, after the swap).
    pub fn xdp_acl_hits_of(runtime: &AfXdpRuntime, tables: &Tables) -> Vec<XdpAclHits> {
        runtime
            .filter_acl_hits()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|((eip, source), hits)| {
                let slot = tables.eip_slot(eip)?;
                Some(XdpAclHits {
                    eip,
                    source,
                    list: tables.eips.acl(slot)?.id,
                    hits,
                })
            })
            .collect()
    }

    /// The kernel statistics that could be read.
    pub fn readable(
        sockets: Vec<(u32, PortId, std::io::Result<SocketStats>)>,
    ) -> Vec<(u32, PortId, SocketStats)> {
        sockets
            .into_iter()
            .filter_map(|(queue, port, stats)| Some((queue, port, stats.ok()?)))
            .collect()
    }

    /// The `runtime` object of `stats`: `driver` (worker counters summed over
    /// queues) and `sockets` (kernel counters summed over sockets).
    pub fn to_json(&self) -> Value {
        let mut total = WorkerCounters::default();
        for (_, w) in &self.workers {
            total.merge(&w.counters);
        }
        let driver: Map<String, Value> = WorkerCounters::NAMES
            .iter()
            .zip(total.values())
            .map(|(name, v)| ((*name).to_string(), json!(v)))
            .collect();
        let mut sockets: Map<String, Value> = Map::new();
        for (_, _, stats) in &self.sockets {
            for (name, v) in socket_counters(stats) {
                let sum = sockets.get(name).and_then(Value::as_u64).unwrap_or(0) + v;
                sockets.insert(name.to_string(), json!(sum));
            }
        }
        let mut v = json!({ "driver": driver, "sockets": sockets });
        if let Some(x) = &self.xdp {
            v["xdp"] = json!({
                "pass_not_ours": x.pass_not_ours,
                "pass_unknown_port": x.pass_unknown_port,
                "pass_short": x.pass_short,
                "redirect_eip_v4": x.redirect_eip_v4,
                "redirect_eip_v6": x.redirect_eip_v6,
                "redirect_vtep": x.redirect_vtep,
                "no_socket": x.no_socket,
                "drop_acl": x.drop_acl,
                "drop_rate": x.drop_rate,
            });
        }
        v
    }
}

/// A socket's kernel counters by name: the one list `stats` and the metrics use.
pub fn socket_counters(s: &SocketStats) -> [(&'static str, u64); 6] {
    [
        ("rx_dropped", s.rx_dropped),
        ("rx_invalid_descs", s.rx_invalid_descs),
        ("tx_invalid_descs", s.tx_invalid_descs),
        ("rx_ring_full", s.rx_ring_full),
        ("rx_fill_ring_empty_descs", s.rx_fill_ring_empty_descs),
        ("tx_ring_empty_descs", s.tx_ring_empty_descs),
    ]
}

/// The daemon's [`StatsSource`].
pub struct DaemonStats {
    pub published: Arc<Vec<Arc<Published>>>,
    pub driver: Arc<Mutex<DriverFigures>>,
}

impl StatsSource for DaemonStats {
    fn counters(&self) -> Counters {
        sum_counters(&self.published)
    }

    fn xdp_acl_hits(&self) -> Vec<XdpAclHits> {
        self.driver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .xdp_acl_hits
            .clone()
    }

    fn runtime(&self) -> Option<Value> {
        Some(
            self.driver
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .to_json(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_and_socket_drops_are_reported() {
        let mut w = WorkerSnapshot::default();
        w.counters.tx_ring_full = 3;
        w.counters.free_list_empty = 2;
        let mut w2 = w;
        w2.counters.tx_ring_full = 4;
        let sockets = vec![
            (
                0,
                0,
                Ok(SocketStats {
                    rx_fill_ring_empty_descs: 5,
                    rx_dropped: 1,
                    ..Default::default()
                }),
            ),
            (0, 1, Err(std::io::Error::other("closed"))),
            (
                1,
                0,
                Ok(SocketStats {
                    rx_fill_ring_empty_descs: 6,
                    ..Default::default()
                }),
            ),
        ];
        let figures = DriverFigures {
            workers: vec![(0, w), (1, w2)],
            sockets: DriverFigures::readable(sockets),
            xdp: Some(eip_afxdp::FilterStats {
                drop_acl: 9,
                redirect_eip_v4: 3,
                ..Default::default()
            }),
            xdp_acl_hits: Vec::new(),
        };
        let v = figures.to_json();
        assert_eq!(v["xdp"]["drop_acl"], 9);
        assert_eq!(v["xdp"]["redirect_eip_v4"], 3);
        assert_eq!(v["driver"]["tx_ring_full"], 7);
        assert_eq!(v["driver"]["free_list_empty"], 4);
        assert_eq!(v["sockets"]["rx_fill_ring_empty_descs"], 11);
        assert_eq!(v["sockets"]["rx_dropped"], 1);
    }
}
