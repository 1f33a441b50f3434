//! The worker side's accounting: which versions it adopted, which batches its
//! core was taken from it during, and the batch latencies split accordingly.

use hdrhistogram::Histogram;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// A histogram of nanoseconds, 1 ns to 60 s.
pub fn ns_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// Counts the versions a worker adopts: refreshes after which it forwards with
/// another snapshot than before (not the refreshes themselves), and how long
/// the refreshes that adopted took.
#[derive(Debug, Clone)]
pub struct Adoptions {
    last: u64,
    count: u64,
    /// Duration (ns) of each refresh that adopted a version.
    pub refresh: Histogram<u64>,
}

impl Adoptions {
    /// Counting from a worker that forwards with `version`.
    pub fn new(version: u64) -> Self {
        Adoptions {
            last: version,
            count: 0,
            refresh: ns_histogram(),
        }
    }

    /// The worker forwards this batch with `version`; its refresh took
    /// `refresh_ns`. Whether that is a version it adopted.
    #[inline]
    pub fn observe(&mut self, version: u64, refresh_ns: u64) -> bool {
        if version == self.last {
            return false;
        }
        self.last = version;
        self.count += 1;
        self.refresh.saturating_record(refresh_ns.max(1));
        true
    }

    /// Versions adopted so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// The second field of `/proc/<tid>/schedstat`: nanoseconds the thread spent
/// runnable but waiting for a CPU (another task had its core).
pub fn parse_run_delay(schedstat: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(schedstat).ok()?;
    text.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// Whether the calling thread lost its core, between two looks: its run
/// delay from `/proc/thread-self/schedstat` (one `pread` per look, made
/// between batches, outside their timing). Unavailable without
/// `CONFIG_SCHED_INFO`.
pub struct RunDelay {
    file: Option<File>,
    last: u64,
}

impl RunDelay {
    /// For the calling thread (the file names the thread that opens it).
    pub fn of_this_thread() -> Self {
        let mut d = RunDelay {
            file: File::open("/proc/thread-self/schedstat").ok(),
            last: 0,
        };
        d.waited();
        d
    }

    /// Whether the thread waited for its core since the last look; `None`
    /// when the kernel does not say.
    pub fn waited(&mut self) -> Option<bool> {
        let mut buf = [0u8; 96];
        let n = self.file.as_ref()?.read_at(&mut buf, 0).ok()?;
        let delay = parse_run_delay(&buf[..n])?;
        let waited = delay != self.last;
        self.last = delay;
        Some(waited)
    }
}

/// Batch latencies of one kind of run (ns).
pub struct Batches {
    pub all: Histogram<u64>,
    /// Batches during which the worker kept its core (whose interval since
    /// the previous batch shows no run delay).
    pub kept_core: Histogram<u64>,
    /// Batches whose refresh adopted a version.
    pub adopting: Histogram<u64>,
    /// The slowest batch that adopted a version and kept its core (ns).
    pub adopting_kept_max: u64,
    /// Batches during which the worker waited for its core.
    pub lost_core: u64,
}

impl Default for Batches {
    fn default() -> Self {
        Batches {
            all: ns_histogram(),
            kept_core: ns_histogram(),
            adopting: ns_histogram(),
            adopting_kept_max: 0,
            lost_core: 0,
        }
    }
}

impl Batches {
    /// One batch of `ns`; `adopted` if it adopted a version, `lost_core` if
    /// the worker waited for its core meanwhile (`None`: unknown, counted as
    /// kept).
    pub fn record(&mut self, ns: u64, adopted: bool, lost_core: Option<bool>) {
        self.all.saturating_record(ns);
        if adopted {
            self.adopting.saturating_record(ns);
        }
        if lost_core == Some(true) {
            self.lost_core += 1;
        } else {
            self.kept_core.saturating_record(ns);
            if adopted {
                self.adopting_kept_max = self.adopting_kept_max.max(ns);
            }
        }
    }

    /// Adds another run's batches.
    pub fn add(&mut self, o: &Batches) {
        self.all.add(&o.all).expect("same bounds");
        self.kept_core.add(&o.kept_core).expect("same bounds");
        self.adopting.add(&o.adopting).expect("same bounds");
        self.adopting_kept_max = self.adopting_kept_max.max(o.adopting_kept_max);
        self.lost_core += o.lost_core;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adoptions_count_version_changes_not_refreshes() {
        let mut a = Adoptions::new(1);
        let adopted: Vec<bool> = [1, 1, 2, 2, 2, 3, 5, 5]
            .iter()
            .map(|&v| a.observe(v, 100 * v))
            .collect();
        assert_eq!(
            adopted,
            [false, false, true, false, false, true, true, false]
        );
        assert_eq!(a.count(), 3);
        assert_eq!(a.refresh.len(), 3);
        assert_eq!(a.refresh.max(), a.refresh.highest_equivalent(500));
    }

    #[test]
    fn run_delay_is_the_second_field() {
        assert_eq!(parse_run_delay(b"1164509 2887732 8\n"), Some(2_887_732));
        assert_eq!(parse_run_delay(b"1164509\n"), None);
        assert_eq!(parse_run_delay(b""), None);
    }

    #[test]
    fn batches_that_lost_the_core_are_kept_apart() {
        let mut b = Batches::default();
        b.record(10_000, false, Some(false));
        b.record(4_000_000, false, Some(true));
        b.record(12_000, true, None);
        b.record(5_000_000, true, Some(true));
        assert_eq!(
            (b.all.len(), b.kept_core.len(), b.adopting.len()),
            (4, 2, 2)
        );
        assert_eq!((b.lost_core, b.adopting_kept_max), (2, 12_000));
        assert!(b.kept_core.max() < 20_000);
        let mut sum = Batches::default();
        sum.add(&b);
        sum.add(&b);
        assert_eq!((sum.all.len(), sum.lost_core), (8, 4));
    }
}
