//! What the metrics listener shows, gathered from what other threads published:
//! the control plane's tables, the prober's board, the workers' counters and
//! latencies, and the driver's and sockets' counters (copied by the control
//! thread).

use crate::processor::{sum_counters, Published};
use crate::stats_source::{socket_counters, DriverFigures};
use eip_afxdp::{WorkerCounters, WorkerSnapshot};
use eip_control::health::{Health, HealthSnapshot};
use eip_control::metrics::{
    AclHitMetrics, BuildInfo, EipMetrics, EipSeries, LatencySlot, MetricsSnapshot, PathMetrics,
    ProbeMetrics, SocketMetrics, UmemFrames, WorkerMetrics,
};
use eip_control::probe::HealthBoard;
use eip_control::state::{ControlPlane, XdpAclHits};
use eip_dataplane::counters::Counters;
use eip_dataplane::tables::PathState;
use eip_dataplane::Tables;
use std::sync::{Arc, Mutex};

/// The build, as `eipd_build_info` shows it: the package version and the git
/// commit the build script found (`unknown` outside a git checkout).
pub fn build_info() -> BuildInfo {
    BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        commit: env!("EIP_GIT_COMMIT").to_string(),
    }
}

/// Everything the metrics listener reads, all published by other threads.
pub struct MetricsSources {
    pub control: Arc<ControlPlane>,
    pub board: Arc<HealthBoard>,
    pub published: Arc<Vec<Arc<Published>>>,
    /// The driver's and the kernel sockets' figures, refreshed by the control thread.
    pub driver: Arc<Mutex<DriverFigures>>,
    /// Which EIPs get series of their own.
    pub eips: EipSeries,
    pub build: BuildInfo,
}

impl MetricsSources {
    pub fn snapshot(&self) -> MetricsSnapshot {
        let tables = Arc::clone(&self.control.snapshot().tables);
        let counters = sum_counters(&self.published);
        let xdp_hits = self
            .driver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .xdp_acl_hits
            .clone();
        // Per-EIP and per-path counters are indexed by the tables the workers ran
        // with; shown only when those are the tables in force, and an EIP's
        // only when its slot's counts are of that EIP (the epochs agree).
        let same = counters.table_version == tables.version;
        let eips = if same {
            let chosen =
                self.eips
                    .select(counters.eips.slots(), |i| match tables.eips.get(i as u32) {
                        Some(e) => counters.eip_traffic_of(i, e.epoch).0.packets,
                        None => 0,
                    });
            chosen
                .into_iter()
                .filter_map(|i| {
                    let eip = tables.eips.get(i as u32)?;
                    let (traffic_in, traffic_out) = counters.eip_traffic_of(i, eip.epoch);
                    Some(EipMetrics {
                        address: eip.address.to_string(),
                        traffic_in,
                        traffic_out,
                        policed: counters.eip_policed_of(i, eip.epoch),
                        acl: acl_metrics(&tables, i as u32, &counters, &xdp_hits),
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        let paths = tables
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let health = self.board.get(&p.name);
                PathMetrics {
                    name: p.name.clone(),
                    region: tables
                        .regions
                        .get(usize::from(p.region))
                        .map_or_else(String::new, |r| r.name.clone()),
                    traffic: if same {
                        counters.path.get(i).copied().unwrap_or_default()
                    } else {
                        Default::default()
                    },
                    up: match &health {
                        Some(h) => h.health == Health::Up,
                        None => p.state == PathState::Up,
                    },
                    probe: health.as_ref().map(probe_metrics),
                }
            })
            .collect();
        let driver = self
            .driver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .workers
            .clone();
        let workers = driver
            .iter()
            .zip(self.published.iter())
            .map(|((queue, d), published)| {
                let slot = published.latency.lock().unwrap_or_else(|e| e.into_inner());
                worker_metrics(*queue, d, &slot)
            })
            .collect();
        let xdp = self.driver.lock().unwrap_or_else(|e| e.into_inner()).xdp;
        let xdp_acl_dropped = xdp.map(|x| x.drop_acl);
        let xdp_rate_dropped = xdp.map(|x| x.drop_rate);
        let sockets = self
            .driver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sockets
            .iter()
            .map(|(queue, port, stats)| SocketMetrics {
                queue: *queue,
                port: tables
                    .ports
                    .get(usize::from(*port))
                    .map_or_else(|| port.to_string(), |p| p.name.clone()),
                counters: socket_counters(stats).to_vec(),
            })
            .collect();
        MetricsSnapshot {
            build: self.build.clone(),
            table_version: tables.version,
            counters,
            eip_count: tables.eips.len(),
            eips,
            paths,
            workers,
            sockets,
            xdp_acl_dropped,
            xdp_rate_dropped,
        }
    }
}

fn probe_metrics(h: &HealthSnapshot) -> ProbeMetrics {
    ProbeMetrics {
        srtt: h.srtt,
        loss: h.loss,
        counters: h.counters,
        rtt: h.rtt_histogram.metrics(),
    }
}

fn worker_metrics(queue: u32, d: &WorkerSnapshot, latency: &LatencySlot) -> WorkerMetrics {
    WorkerMetrics {
        queue,
        counters: WorkerCounters::NAMES
            .iter()
            .copied()
            .zip(d.counters.values())
            .collect(),
        frames: UmemFrames {
            total: d.frames.total,
            free: d.frames.free,
            held: d.frames.held,
            fill: d.frames.in_fill(),
            tx: d.frames.in_tx(),
        },
        latency: latency.histogram(),
        latency_max_ns: latency.hist.max(),
    }
}

#[cfg(test)]
mod tests;

/// The hits of each entry of the access list of the EIP in `slot` (none
/// without a list).
fn acl_metrics(
    tables: &Tables,
    slot: u32,
    counters: &Counters,
    xdp: &[XdpAclHits],
) -> Vec<AclHitMetrics> {
    let Some(acl) = tables.eips.acl(slot) else {
        return Vec::new();
    };
    eip_control::report::acl_hits(tables, slot, counters, xdp)
        .into_iter()
        .enumerate()
        .map(|(i, hits)| AclHitMetrics {
            rule: if i == acl.rules() {
                "default".into()
            } else {
                i.to_string()
            },
            action: acl.action(i).label(),
            hits,
        })
        .collect()
}
