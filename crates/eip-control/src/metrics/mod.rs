//! Prometheus metrics for `eipd run`: text exposition (format 0.0.4) built from
//! plain snapshots by a pure function ([`render`]), and a tiny std-only HTTP
//! listener ([`spawn`]) that serves it on `GET /metrics`.
//!
//! The listener runs on its own thread and answers one request at a time; it
//! never touches the workers: everything it shows was already published by them
//! (pipeline counters, batch latency histograms, AF_XDP driver counters) or by the
//! control plane and the prober (tables, path health).
//!
//! The snapshot types are here; beside them [`render`] (the exposition),
//! [`histogram`] (bucket bounds, HDR to buckets), [`eips`] (which EIPs get
//! series) and [`listener`] (the HTTP side).

mod acl;
mod eips;
pub mod histogram;
mod listener;
#[cfg(test)]
mod promtool_tests;
mod render;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use eips::{EipSeries, EipSeriesError, DEFAULT_TOP_EIPS};
pub use histogram::{HistogramMetrics, RttHistogram};
pub use listener::{check_address, spawn};
pub use render::{escape_label, render};

use crate::health::ProbeCounters;
use eip_dataplane::counters::{Counters, Traffic};
use hdrhistogram::Histogram;
use std::time::Duration;

/// Quantiles of the batch latency report at stop (`max` apart).
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

    /// Buckets at [`histogram::BATCH_LATENCY_BOUNDS_NS`], count and exact sum,
    /// for the metrics. Allocates the bucket list: call it at scrape rate.
    pub fn histogram(&self) -> HistogramMetrics {
        histogram::from_hdr(&self.hist, self.sum_ns, &histogram::BATCH_LATENCY_BOUNDS_NS)
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

/// What the report at stop shows of a batch latency histogram.
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
    /// Batch processing time since start.
    pub latency: HistogramMetrics,
    /// Longest batch since start, in ns.
    pub latency_max_ns: u64,
}

/// Kernel statistics of one AF_XDP socket (one per worker and port).
#[derive(Debug, Clone, Default)]
pub struct SocketMetrics {
    pub queue: u32,
    /// Port name.
    pub port: String,
    /// Counters by name (`rx_fill_ring_empty_descs`, ...), same names and order
    /// for every socket.
    pub counters: Vec<(&'static str, u64)>,
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
    pub region: String,
    pub traffic: Traffic,
    /// Measured health (prober), else the table state: 1 up, 0 down/disabled.
    pub up: bool,
    /// What the prober measured; `None` when the path is not probed.
    pub probe: Option<ProbeMetrics>,
}

/// The prober's measurements of one path.
#[derive(Debug, Clone, Default)]
pub struct ProbeMetrics {
    /// RFC 6298 smoothed RTT, once a reply came in time.
    pub srtt: Option<Duration>,
    /// Lost / sent probes over the prober's loss window.
    pub loss: f64,
    pub counters: ProbeCounters,
    /// RTT of every reply in time since the path was first probed.
    pub rtt: HistogramMetrics,
}

/// One EIP's traffic.
#[derive(Debug, Clone, Default)]
pub struct EipMetrics {
    pub address: String,
    /// Client to backend.
    pub traffic_in: Traffic,
    /// Backend to client.
    pub traffic_out: Traffic,
    /// Packets its rate limits dropped.
    pub policed: eip_dataplane::counters::Policed,
    /// Hits of each entry of its access list (empty without one).
    pub acl: Vec<AclHitMetrics>,
}

/// One entry of an EIP's access list: a rule (its index from 0) or `default`.
#[derive(Debug, Clone, Default)]
pub struct AclHitMetrics {
    pub rule: String,
    /// `allow` or `deny`.
    pub action: &'static str,
    pub hits: u64,
}

/// What `eipd_build_info` shows.
#[derive(Debug, Clone, Default)]
pub struct BuildInfo {
    pub version: String,
    /// Short git commit, `unknown` when not built from a git checkout.
    pub commit: String,
}

/// Everything [`render`] shows, copied out of the running daemon.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    pub build: BuildInfo,
    /// Table version in force.
    pub table_version: u64,
    /// Pipeline counters of all workers, summed (the per-EIP vectors are not
    /// shown from here: see `eips`).
    pub counters: Counters,
    /// Number of EIPs in the tables in force.
    pub eip_count: usize,
    /// The EIPs chosen by [`EipSeries`] (empty when the counters are of another
    /// table version than the tables at hand).
    pub eips: Vec<EipMetrics>,
    pub paths: Vec<PathMetrics>,
    pub workers: Vec<WorkerMetrics>,
    pub sockets: Vec<SocketMetrics>,
    /// Frames the XDP program dropped for the EIPs' access lists (summed over
    /// CPUs); `None` without an XDP program.
    pub xdp_acl_dropped: Option<u64>,
    /// Frames the XDP program dropped over an EIP's inbound rate cap (summed
    /// over CPUs); `None` without an XDP program.
    pub xdp_rate_dropped: Option<u64>,
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
