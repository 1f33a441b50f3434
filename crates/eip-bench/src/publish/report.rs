//! What `--publish-versions` prints.

use super::batches::Batches;
use hdrhistogram::Histogram;
use std::time::Duration;

/// The goal (issue #8): batch p99.9 while publishing at most this many times
/// the quiet run's.
pub const GOAL_RATIO: f64 = 2.0;

/// Batch latencies of the quiet and the publishing runs, pooled over runs.
pub struct Report {
    pub name: String,
    pub batch: usize,
    /// Versions published per run.
    pub versions: u64,
    /// Versions the worker adopted, over all runs.
    pub adopted: u64,
    pub quiet: Batches,
    pub publishing: Batches,
    /// Per run: publishing p99.9 / quiet p99.9, of all batches and of those
    /// during which the worker kept its core.
    pub p999_ratios: Vec<(f64, f64)>,
    /// Per run: first publish to last acknowledgement.
    pub windows: Vec<Duration>,
    /// Per version: `apply` + publish + acknowledgement (ns).
    pub changes: Histogram<u64>,
    /// The refreshes that adopted a version (ns).
    pub refresh: Histogram<u64>,
    /// Whether the kernel said when the worker lost its core.
    pub run_delay_known: bool,
}

fn median(v: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn p(h: &Histogram<u64>, q: f64) -> u64 {
    h.value_at_quantile(q)
}

impl Report {
    /// Medians over runs of the p99.9 ratio: all batches, batches during
    /// which the worker kept its core.
    pub fn p999_ratio(&self) -> (f64, f64) {
        (
            median(self.p999_ratios.iter().map(|r| r.0)),
            median(self.p999_ratios.iter().map(|r| r.1)),
        )
    }

    pub fn print(&self) {
        let runs = self.p999_ratios.len();
        println!();
        println!(
            "| {} (batch {}), {runs} run(s) | batches | lost the core | versions adopted | batch p50 (ns) | batch p99 (ns) | batch p99.9 (ns) | p99.9, core kept (ns) |",
            self.name, self.batch
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        let row = |name: String, b: &Batches, adopted: String| {
            println!(
                "| {name} | {} | {} | {adopted} | {} | {} | {} | {} |",
                b.all.len(),
                b.lost_core,
                p(&b.all, 0.5),
                p(&b.all, 0.99),
                p(&b.all, 0.999),
                p(&b.kept_core, 0.999)
            );
        };
        row("quiet".into(), &self.quiet, "0".into());
        row(
            format!("publishing {} versions per run", self.versions),
            &self.publishing,
            format!("{} / {}", self.adopted, self.versions * runs as u64),
        );
        let ratio = |q: f64, f: fn(&Batches) -> &Histogram<u64>| {
            p(f(&self.publishing), q) as f64 / p(f(&self.quiet), q) as f64
        };
        println!(
            "| publishing / quiet | | | | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
            ratio(0.5, |b| &b.all),
            ratio(0.99, |b| &b.all),
            ratio(0.999, |b| &b.all),
            ratio(0.999, |b| &b.kept_core)
        );
        let a = &self.publishing.adopting;
        println!(
            "| batches that adopted a version | {} | | | {} | {} | {} (max {}) | max {} |",
            a.len(),
            p(a, 0.5),
            p(a, 0.99),
            p(a, 0.999),
            a.max(),
            self.publishing.adopting_kept_max
        );
        let window = median(self.windows.iter().map(|w| w.as_secs_f64()));
        println!();
        println!(
            "adopting refresh p50 {} ns, p99 {} ns, max {} ns; publishing window {:.0} ms per run (median; {:.0} versions/s); one change (apply, publish, acknowledgement) p50 {:.0} us, p99 {:.0} us, max {:.0} us",
            p(&self.refresh, 0.5),
            p(&self.refresh, 0.99),
            self.refresh.max(),
            window * 1e3,
            self.versions as f64 / window,
            p(&self.changes, 0.5) as f64 / 1e3,
            p(&self.changes, 0.99) as f64 / 1e3,
            self.changes.max() as f64 / 1e3,
        );
        if !self.run_delay_known {
            println!("(no /proc/thread-self/schedstat: every batch counted as keeping its core)");
        }
        let per_run: Vec<String> = self
            .p999_ratios
            .iter()
            .map(|(all, kept)| format!("{all:.2} ({kept:.2})"))
            .collect();
        let (all, kept) = self.p999_ratio();
        let verdict = |r: f64| if r <= GOAL_RATIO { "met" } else { "not met" };
        println!(
            "p99.9 publishing / quiet per run, all batches (core kept): {}; median {all:.2}x ({kept:.2}x): goal (at most {GOAL_RATIO}x) {} ({})",
            per_run.join(", "),
            verdict(all),
            verdict(kept)
        );
        println!("publish_p999_ratio={all:.2}");
        println!("publish_p999_ratio_core_kept={kept:.2}");
    }
}
