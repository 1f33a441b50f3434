//! Prometheus histograms: fixed bucket bounds per family, cumulative counts at
//! scrape time.
//!
//! Two sources feed them. Batch latency is kept by each worker in an HDR
//! histogram ([`super::LatencySlot`]); [`from_hdr`] folds it into the fixed
//! buckets when a scrape asks. Path RTT is counted straight into a
//! [`FixedHistogram`] by the path's health state machine, one array slot per
//! probe reply, allocation-free.

use hdrhistogram::Histogram;
use std::time::Duration;

/// Upper bounds (ns) of the batch latency buckets: 0.5 µs .. 50 ms in 1-2-5
/// steps. A batch usually takes a few µs; tens of µs mean a busy or disturbed
/// core; a ms or more is a stall.
pub const BATCH_LATENCY_BOUNDS_NS: [u64; 17] = [
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
];

/// Upper bounds (ns) of the path RTT buckets: 50 µs .. 1 s in 1-2.5-5 steps (a
/// probe is lost after its timeout, 500 ms by default, at most 60 s: slower
/// replies land in `+Inf`).
pub const RTT_BOUNDS_NS: [u64; 14] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

/// A histogram ready to render: cumulative counts at each bound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramMetrics {
    /// (upper bound in ns, observations at or below it), bounds ascending;
    /// `+Inf` is [`Self::count`].
    pub buckets: Vec<(u64, u64)>,
    pub count: u64,
    /// Sum of the observations in ns (exact, not bucketed).
    pub sum_ns: u64,
}

/// Folds an HDR histogram into buckets at `bounds_ns`, with `sum_ns` kept
/// beside it (HDR histograms do not keep an exact sum).
///
/// An HDR bucket counts at a bound when the highest value it stands for is at
/// or below that bound, so a bucket never holds an observation above its
/// bound; one within the histogram's precision (2 significant digits: 1%)
/// below a bound may land in the next bucket. Walks the recorded values once.
pub fn from_hdr(hist: &Histogram<u64>, sum_ns: u64, bounds_ns: &[u64]) -> HistogramMetrics {
    let mut per_bucket = vec![0u64; bounds_ns.len()];
    for v in hist.iter_recorded() {
        let i = bounds_ns.partition_point(|&b| b < v.value_iterated_to());
        if let Some(slot) = per_bucket.get_mut(i) {
            *slot += v.count_at_value();
        }
    }
    HistogramMetrics {
        buckets: cumulate(bounds_ns, &per_bucket),
        count: hist.len(),
        sum_ns,
    }
}

fn cumulate(bounds_ns: &[u64], per_bucket: &[u64]) -> Vec<(u64, u64)> {
    let mut total = 0;
    bounds_ns
        .iter()
        .zip(per_bucket)
        .map(|(&b, &n)| {
            total += n;
            (b, total)
        })
        .collect()
}

/// Counts at fixed bounds, the count and the exact sum, in storage of a fixed
/// size: recording is one search over `N` bounds and three additions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHistogram<const N: usize> {
    bounds_ns: &'static [u64; N],
    /// Observations per bucket (not cumulative); those above the last bound
    /// are only in `count`.
    counts: [u64; N],
    count: u64,
    sum_ns: u64,
}

/// Histogram of probe round-trip times ([`RTT_BOUNDS_NS`]).
pub type RttHistogram = FixedHistogram<{ RTT_BOUNDS_NS.len() }>;

impl RttHistogram {
    /// An empty RTT histogram.
    pub fn rtt() -> Self {
        FixedHistogram::new(&RTT_BOUNDS_NS)
    }
}

impl<const N: usize> FixedHistogram<N> {
    /// An empty histogram with these upper bounds (ns, ascending).
    pub fn new(bounds_ns: &'static [u64; N]) -> Self {
        debug_assert!(bounds_ns.windows(2).all(|w| w[0] < w[1]));
        FixedHistogram {
            bounds_ns,
            counts: [0; N],
            count: 0,
            sum_ns: 0,
        }
    }

    /// Counts one observation. Never allocates; the sum saturates (after 584
    /// years of summed time).
    pub fn record(&mut self, value: Duration) {
        let ns = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        let i = self.bounds_ns.partition_point(|&b| b < ns);
        if let Some(slot) = self.counts.get_mut(i) {
            *slot += 1;
        }
        self.count += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// What a scrape shows. Allocates the bucket list: call it at scrape rate.
    pub fn metrics(&self) -> HistogramMetrics {
        HistogramMetrics {
            buckets: cumulate(self.bounds_ns, &self.counts),
            count: self.count,
            sum_ns: self.sum_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(v: u64) -> Duration {
        Duration::from_micros(v)
    }

    #[test]
    fn fixed_buckets_are_cumulative_and_le_is_inclusive() {
        let mut h = RttHistogram::rtt();
        for v in [us(10), us(50), us(51), us(300), us(2_000_000)] {
            h.record(v);
        }
        let m = h.metrics();
        assert_eq!(m.count, 5);
        assert_eq!(m.sum_ns, 2_000_411_000);
        assert_eq!(m.buckets.len(), RTT_BOUNDS_NS.len());
        assert_eq!(m.buckets[0], (50_000, 2), "10 us and exactly 50 us");
        assert_eq!(m.buckets[1], (100_000, 3));
        assert_eq!(m.buckets[3], (500_000, 4));
        // The 2 s reply is above every bound: only in the count (+Inf).
        assert_eq!(m.buckets.last(), Some(&(1_000_000_000, 4)));
        assert!(m.buckets.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn hdr_folds_into_buckets_without_counting_above_a_bound() {
        let mut hist = super::super::latency_histogram();
        let mut sum = 0;
        for v in [300, 900, 1_500, 4_000, 40_000, 7_000_000, 900_000_000] {
            hist.record(v).unwrap();
            sum += v;
        }
        let m = from_hdr(&hist, sum, &BATCH_LATENCY_BOUNDS_NS);
        assert_eq!((m.count, m.sum_ns), (7, sum));
        let at = |bound: u64| m.buckets.iter().find(|b| b.0 == bound).unwrap().1;
        assert_eq!(at(500), 1);
        assert_eq!(at(1_000), 2);
        assert_eq!(at(2_000), 3);
        assert_eq!(at(5_000), 4);
        assert_eq!(at(50_000), 5);
        assert_eq!(at(5_000_000), 5);
        assert_eq!(at(10_000_000), 6);
        // 0.9 s: above the last bound, only in +Inf.
        assert_eq!(at(100_000_000), 6);
        // Exactly at a bound, the HDR bucket (1000..=1003 ns at 2 significant
        // digits) reaches above it: counted in the next bucket, never below.
        let mut hist = super::super::latency_histogram();
        hist.record(1_000).unwrap();
        let m = from_hdr(&hist, 1_000, &BATCH_LATENCY_BOUNDS_NS);
        assert_eq!((m.buckets[1], m.buckets[2]), ((1_000, 0), (2_000, 1)));
        let empty = from_hdr(&super::super::latency_histogram(), 0, &[1, 2]);
        assert_eq!(empty.buckets, vec![(1, 0), (2, 0)]);
    }
}
