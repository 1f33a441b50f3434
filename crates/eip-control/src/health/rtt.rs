//! RTT of one path: RFC 6298 smoothed RTT and RTT variation (alpha 1/8, beta
//! 1/4) over every reply that came in time, nearest-rank percentiles over the
//! last `rtt_window` of them, and a cumulative histogram of all of them (for
//! the metrics).

use super::ring::Ring;
use crate::metrics::RttHistogram;
use std::time::Duration;

/// The RTT measurements of one path, in storage allocated once.
#[derive(Debug, Clone)]
pub(super) struct RttStats {
    estimator: Option<RttEstimator>,
    /// RTTs of the last `rtt_window` replies in time.
    window: Ring<Duration>,
    /// Every RTT in time since the path was created.
    histogram: RttHistogram,
}

impl RttStats {
    pub(super) fn new(rtt_window: usize) -> Self {
        RttStats {
            estimator: None,
            window: Ring::new(rtt_window),
            histogram: RttHistogram::rtt(),
        }
    }

    /// Adds the RTT of a reply that came in time.
    pub(super) fn sample(&mut self, rtt: Duration) {
        match &mut self.estimator {
            Some(estimator) => estimator.update(rtt),
            None => self.estimator = Some(RttEstimator::new(rtt)),
        }
        self.window.push(rtt);
        self.histogram.record(rtt);
    }

    /// Every RTT in time so far, in fixed buckets.
    pub(super) fn histogram(&self) -> &RttHistogram {
        &self.histogram
    }

    /// Smoothed RTT, once a reply has come in time.
    pub(super) fn srtt(&self) -> Option<Duration> {
        self.estimator.map(|e| e.srtt)
    }

    /// RTT variation, once a reply has come in time.
    pub(super) fn rttvar(&self) -> Option<Duration> {
        self.estimator.map(|e| e.rttvar)
    }

    /// p50, p90 and p99 over the window. Allocates (sorts a copy of the
    /// window): call it at reporting rate, not per probe.
    pub(super) fn percentiles(&self) -> [Option<Duration>; 3] {
        let mut sorted = self.window.values().to_vec();
        sorted.sort_unstable();
        [50, 90, 99].map(|p| percentile(&sorted, p))
    }

    /// The RTTs in the window, in no particular order.
    #[cfg(test)]
    pub(super) fn window(&self) -> &[Duration] {
        self.window.values()
    }
}

/// RFC 6298 smoothed RTT and RTT variation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RttEstimator {
    srtt: Duration,
    rttvar: Duration,
}

impl RttEstimator {
    /// First measurement: SRTT = R, RTTVAR = R/2 (RFC 6298 section 2.2).
    fn new(sample: Duration) -> Self {
        RttEstimator {
            srtt: sample,
            rttvar: sample / 2,
        }
    }

    /// RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|, then SRTT = 7/8 SRTT + 1/8 R
    /// (section 2.3), in whole nanoseconds, rounding down.
    fn update(&mut self, sample: Duration) {
        let (srtt, rttvar, r) = (
            self.srtt.as_nanos(),
            self.rttvar.as_nanos(),
            sample.as_nanos(),
        );
        self.rttvar = duration_from_nanos((3 * rttvar + srtt.abs_diff(r)) / 4);
        self.srtt = duration_from_nanos((7 * srtt + r) / 8);
    }
}

fn duration_from_nanos(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    Duration::new(secs, (nanos % NANOS_PER_SEC) as u32)
}

/// Nearest-rank percentile `p` (1..=100) of `sorted`: the smallest value with at
/// least `p` % of the values at or below it.
fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::testing::{config, ms, Driver};

    #[test]
    fn rtt_estimator_follows_rfc_6298() {
        let mut d = Driver::new(config());
        assert_eq!(d.path.srtt(), None);
        d.reply(ms(100 - 90)); // 10 ms
        assert_eq!(d.path.srtt(), Some(ms(10)));
        assert_eq!(d.path.rttvar(), Some(ms(5)));
        d.reply(ms(20));
        // RTTVAR = 3/4 * 5 + 1/4 * |10 - 20| = 6.25; SRTT = 7/8 * 10 + 1/8 * 20 = 11.25
        assert_eq!(d.path.rttvar(), Some(Duration::from_micros(6_250)));
        assert_eq!(d.path.srtt(), Some(Duration::from_micros(11_250)));
        d.reply(ms(3));
        // RTTVAR = 3/4 * 6.25 + 1/4 * 8.25 = 6.75; SRTT = 7/8 * 11.25 + 3/8 = 10.21875
        assert_eq!(d.path.rttvar(), Some(Duration::from_micros(6_750)));
        assert_eq!(d.path.srtt(), Some(Duration::from_nanos(10_218_750)));
        // Lost probes do not feed the estimator.
        d.lose();
        assert_eq!(d.path.srtt(), Some(Duration::from_nanos(10_218_750)));
    }

    #[test]
    fn histogram_counts_replies_in_time_only() {
        let mut d = Driver::new(config());
        d.reply(ms(3));
        d.reply(ms(30));
        d.lose();
        let m = d.path.snapshot().rtt_histogram.metrics();
        assert_eq!((m.count, m.sum_ns), (2, 33_000_000));
        let at = |bound: u64| m.buckets.iter().find(|b| b.0 == bound).unwrap().1;
        assert_eq!((at(2_500_000), at(5_000_000), at(50_000_000)), (0, 1, 2));
    }

    #[test]
    fn percentiles_over_the_window() {
        let mut c = config();
        c.timeout = ms(200);
        let mut d = Driver::new(c);
        let empty = d.path.snapshot();
        assert_eq!(
            (empty.p50, empty.p90, empty.p99, empty.srtt),
            (None, None, None, None)
        );
        // 1..=100 ms in a shuffled order.
        for i in 0..100u64 {
            d.reply(ms((i * 37) % 100 + 1));
        }
        let s = d.path.snapshot();
        assert_eq!(
            (s.p50, s.p90, s.p99),
            (Some(ms(50)), Some(ms(90)), Some(ms(99)))
        );
        // 100 more, all 150 ms: the window (100) holds only these.
        for _ in 0..100 {
            d.reply(ms(150));
        }
        let s = d.path.snapshot();
        assert_eq!((s.p50, s.p99), (Some(ms(150)), Some(ms(150))));

        // Small window: the last 10 of 1..=20 are 11..=20.
        let mut c = config();
        c.rtt_window = 10;
        let mut d = Driver::new(c);
        for i in 1..=20 {
            d.reply(ms(i));
        }
        let s = d.path.snapshot();
        assert_eq!(
            (s.p50, s.p90, s.p99),
            (Some(ms(15)), Some(ms(19)), Some(ms(20)))
        );
        assert_eq!(percentile(&[ms(4)], 99), Some(ms(4)));
    }
}
