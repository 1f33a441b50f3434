//! What the metrics listener shows, gathered from what other threads published:
//! the control plane's tables, the prober's board, the workers' counters and
//! latencies, and the driver's counters (copied by the control thread).

use crate::processor::{sum_counters, Published};
use crate::stats_source::DriverFigures;
use eip_afxdp::WorkerCounters;
use eip_control::health::Health;
use eip_control::metrics::{LatencySlot, MetricsSnapshot, PathMetrics, UmemFrames, WorkerMetrics};
use eip_control::probe::HealthBoard;
use eip_control::state::ControlPlane;
use eip_dataplane::tables::PathState;
use std::sync::{Arc, Mutex};

/// Everything the metrics listener reads, all published by other threads.
pub struct MetricsSources {
    pub control: Arc<ControlPlane>,
    pub board: Arc<HealthBoard>,
    pub published: Arc<Vec<Arc<Published>>>,
    /// The driver's figures, refreshed by the control thread.
    pub driver: Arc<Mutex<DriverFigures>>,
}

impl MetricsSources {
    pub fn snapshot(&self) -> MetricsSnapshot {
        let tables = Arc::clone(&self.control.snapshot().tables);
        let counters = sum_counters(&self.published);
        // Per-EIP and per-path counters are indexed by the tables the workers ran
        // with; shown only when those are the tables in force.
        let same = counters.table_version == tables.version;
        let eips = if same {
            tables.eips.iter().map(|e| e.address.to_string()).collect()
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
                    traffic: if same {
                        counters.path.get(i).copied().unwrap_or_default()
                    } else {
                        Default::default()
                    },
                    up: match &health {
                        Some(h) => h.health == Health::Up,
                        None => p.state == PathState::Up,
                    },
                    rtt: health.as_ref().map_or([None; 3], |h| [h.p50, h.p90, h.p99]),
                    loss: health.as_ref().map(|h| h.loss),
                }
            })
            .collect();
        let driver = self
            .driver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .workers
            .clone();
        let mut all = LatencySlot::default();
        let workers = driver
            .iter()
            .zip(self.published.iter())
            .map(|((queue, d), published)| {
                let slot = published.latency.lock().unwrap_or_else(|e| e.into_inner());
                all.add(&slot);
                WorkerMetrics {
                    queue: *queue,
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
                    latency: slot.summary(),
                }
            })
            .collect();
        MetricsSnapshot {
            table_version: tables.version,
            counters,
            eips,
            paths,
            workers,
            latency: all.summary(),
        }
    }
}
