//! Prometheus metrics for `eipd run`: text exposition (format 0.0.4) built from
//! plain snapshots by a pure function ([`render`]), and a tiny std-only HTTP
//! listener ([`spawn`]) that serves it on `GET /metrics`.
//!
//! The listener runs on its own thread and answers one request at a time; it
//! never touches the workers: everything it shows was already published by them
//! (pipeline counters, batch latency histograms, AF_XDP driver counters) or by the
//! control plane and the prober (tables, path health).
//!
//! The snapshot types are here; [`render`] (the exposition) and [`listener`] (the
//! HTTP side) beside them.

mod listener;
mod render;

pub use listener::{check_address, spawn};
pub use render::{escape_label, render};

use eip_dataplane::counters::{Counters, Traffic};
use hdrhistogram::Histogram;
use std::time::Duration;

/// Quantiles reported for batch latencies (`max` is a separate gauge).
pub const LATENCY_QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// Batch latency histogram bounds: 1 ns .. 10 s, 2 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000_000, 2).expect("valid histogram bounds")
}

/// Batch processing time in nanoseconds: a histogram plus the exact sum.
#[derive(Debug, Clone)]
pub struct LatencySlot {
    pub hist: Histogram<u64>,
    pub sum_ns: u64,
}

impl Default for LatencySlot {
    fn default() -> Self {
        LatencySlot {
            hist: latency_histogram(),
            sum_ns: 0,
        }
    }
}

impl LatencySlot {
    /// Adds `other` into this one (same bounds: never allocates).
    pub fn add(&mut self, other: &LatencySlot) {
        // Same bounds on both sides: cannot fail.
        let _ = self.hist.add(&other.hist);
        self.sum_ns = self.sum_ns.wrapping_add(other.sum_ns);
    }

    /// Empties it (keeps its allocation).
    pub fn reset(&mut self) {
        self.hist.reset();
        self.sum_ns = 0;
    }

    /// Quantiles, max, count and sum.
    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            quantiles_ns: LATENCY_QUANTILES.map(|q| {
                if self.hist.is_empty() {
                    0
                } else {
                    self.hist.value_at_quantile(q)
                }
            }),
            max_ns: self.hist.max(),
            count: self.hist.len(),
            sum_ns: self.sum_ns,
        }
    }
}

/// What is shown of a batch latency histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySummary {
    /// At [`LATENCY_QUANTILES`].
    pub quantiles_ns: [u64; 4],
    pub max_ns: u64,
    pub count: u64,
    pub sum_ns: u64,
}

/// One worker (device queue). The driver's counters come as names and values so
/// that this crate needs no driver: `eipd` fills them from the AF_XDP worker.
#[derive(Debug, Clone, Default)]
pub struct WorkerMetrics {
    pub queue: u32,
    /// Driver counters by name (`rx_packets`, `fill_ring_empty`, ...), same names and
    /// order for every worker.
    pub counters: Vec<(&'static str, u64)>,
    pub frames: UmemFrames,
    pub latency: LatencySummary,
}

/// Where a worker's UMEM frames are.
#[derive(Debug, Clone, Copy, Default)]
pub struct UmemFrames {
    pub total: u32,
    pub free: u32,
    pub held: u32,
    /// In a fill or RX ring, all devices.
    pub fill: u32,
    /// In a TX or completion ring, all devices.
    pub tx: u32,
}

/// One backbone path.
#[derive(Debug, Clone, Default)]
pub struct PathMetrics {
    pub name: String,
    pub traffic: Traffic,
    /// Measured health (prober), else the table state: 1 up, 0 down/disabled.
    pub up: bool,
    /// Prober RTT quantiles (0.5, 0.9, 0.99), when measured.
    pub rtt: [Option<Duration>; 3],
    /// Lost / sent probes over the prober's window; `None` without probing.
    pub loss: Option<f64>,
}

/// Everything [`render`] shows, copied out of the running daemon.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    /// Table version in force.
    pub table_version: u64,
    /// Pipeline counters of all workers, summed.
    pub counters: Counters,
    /// EIP addresses, indexed like `counters.eip_in`/`eip_out` (empty when the
    /// counters are of another table version than the tables at hand).
    pub eips: Vec<String>,
    pub paths: Vec<PathMetrics>,
    pub workers: Vec<WorkerMetrics>,
    /// All workers' histograms merged.
    pub latency: LatencySummary,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_add_and_reset_without_growing() {
        let mut shared = LatencySlot::default();
        let mut local = LatencySlot::default();
        local.hist.saturating_record(20_000_000_000);
        local.sum_ns = 5;
        shared.add(&local);
        local.reset();
        assert!(local.hist.is_empty());
        assert_eq!(shared.hist.len(), 1);
        assert_eq!(shared.sum_ns, 5);
    }
}
