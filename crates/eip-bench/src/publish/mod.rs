//! Adoption under publication: does taking a new table version stall forwarding?
//!
//! The worker side runs on the pinned core exactly as an eipd worker runs: a
//! [`Subscriber`] of the swap channel refreshed at every batch boundary (eipd's
//! `PipelineWorker::on_poll`), then [`Pipeline::process`] with the snapshot it
//! returns, which sizes the worker's counters for a new snapshot (its `adopt`).
//! Both are timed as the batch. Meanwhile a control thread on another core
//! publishes versions, each a one-EIP change built with [`Tables::apply`] (an EIP
//! added, then removed, a new one each pair, as `scripts/scale.sh` does) and put
//! in force by the control plane's own [`TableSink::publish`] for a
//! [`Publisher`]: publish, wait until the worker acknowledges, free the old
//! snapshots on the control thread.
//!
//! Each run is a publishing run, from the worker's first batch until the last
//! version is acknowledged (however long that takes), then a quiet run of as
//! many batches with the same worker, subscriber and tables. The worker counts
//! the versions it adopts; a run in which it did not adopt every one is an error.

use crate::workloads::{Workload, REGION};
use crate::{one_run, Length};
use anyhow::{anyhow, ensure, Context, Result};
use core_affinity::CoreId;
use eip_control::state::TableSink;
use eip_dataplane::swap::{self, Publisher, Subscriber, Versioned};
use eip_dataplane::tables::spec::PopSpec;
use eip_dataplane::tables::TableDelta;
use eip_dataplane::testkit::pop;
use eip_dataplane::{Pipeline, Tables, Timestamp};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Index of the first EIP the control thread adds ([`pop::eip_addr`]): above
/// any workload's.
const FIRST_EXTRA: u32 = 2_000_000;

/// A batch longer than this is a stall (as the AF_XDP worker counts them).
const STALL_NS: u64 = 1_000_000;

/// How long the control thread waits for an acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// The goal (issue #8): batch p99.9 while publishing at most this many times
/// the quiet run's.
pub const GOAL_RATIO: f64 = 2.0;

/// Counts the versions a worker adopts: refreshes after which it forwards with
/// another snapshot than before (not the refreshes themselves), and how long
/// the refreshes that adopted took.
#[derive(Debug, Clone)]
pub struct Adoptions {
    last: u64,
    count: u64,
    /// Duration (ns) of each refresh that adopted a version.
    refresh: Histogram<u64>,
}

impl Adoptions {
    /// Counting from a worker that forwards with `version`.
    pub fn new(version: u64) -> Self {
        Adoptions {
            last: version,
            count: 0,
            refresh: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds"),
        }
    }

    /// The worker forwards this batch with `version`; its refresh took
    /// `refresh_ns`.
    #[inline]
    pub fn observe(&mut self, version: u64, refresh_ns: u64) {
        if version != self.last {
            self.last = version;
            self.count += 1;
            self.refresh.saturating_record(refresh_ns.max(1));
        }
    }

    /// Versions adopted so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Sets the flag when dropped: the worker stops even if the control thread
/// fails or panics.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// What the control thread measured in one run.
struct Published {
    /// From the first publish to the last acknowledgement.
    window: Duration,
    /// Per version: `apply`, publish and acknowledgement (ns).
    changes: Histogram<u64>,
}

/// The control plane's loop: `versions` one-EIP changes, each applied to the
/// last published snapshot, published, acknowledged, its predecessor freed
/// here. `next` is the index of the next EIP to add; an odd `versions` leaves
/// the last one in `spec` and in the tables.
fn publish_versions(
    publisher: &mut Publisher<Tables>,
    spec: &mut PopSpec,
    next: &mut u32,
    versions: u64,
) -> Result<Published> {
    let mut changes = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let started = Instant::now();
    for _ in 0..versions {
        let address = pop::eip_addr(FIRST_EXTRA + *next);
        let delta = if spec.eips.contains(address.into()) {
            spec.eips.remove(address.into());
            *next += 1;
            TableDelta {
                remove: vec![address.into()],
                ..TableDelta::default()
            }
        } else {
            let e = pop::one_to_one(address, REGION, pop::backend_addr(FIRST_EXTRA + *next));
            spec.eips.push(e.clone());
            TableDelta {
                upsert: vec![e],
                ..TableDelta::default()
            }
        };
        let t0 = Instant::now();
        let latest = publisher.latest();
        let tables = latest
            .apply(&delta, spec, latest.version + 1, latest.version() + 1)
            .map_err(|e| anyhow!("applying {delta:?}: {e:?}"))?;
        TableSink::publish(publisher, Arc::new(tables), ACK_TIMEOUT)?;
        let _ = changes.record(t0.elapsed().as_nanos().max(1) as u64);
    }
    Ok(Published {
        window: started.elapsed(),
        changes,
    })
}

/// Batch latencies of the quiet and the publishing runs, pooled over runs.
pub struct Report {
    pub name: String,
    pub batch: usize,
    /// Versions published per run.
    pub versions: u64,
    /// Versions the worker adopted, over all runs.
    pub adopted: u64,
    pub quiet: Histogram<u64>,
    pub publishing: Histogram<u64>,
    /// Per run: publishing p99.9 / quiet p99.9.
    pub p999_ratios: Vec<f64>,
    /// Per run: first publish to last acknowledgement.
    pub windows: Vec<Duration>,
    /// Per version: `apply` + publish + acknowledgement (ns).
    pub changes: Histogram<u64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

impl Report {
    /// Median over runs of the p99.9 ratio.
    pub fn p999_ratio(&self) -> f64 {
        median(&self.p999_ratios)
    }

    pub fn print(&self) {
        let runs = self.p999_ratios.len();
        let q = |h: &Histogram<u64>| [0.5, 0.99, 0.999].map(|p| h.value_at_quantile(p) as f64);
        let (quiet, publishing) = (q(&self.quiet), q(&self.publishing));
        println!();
        println!(
            "| {} (batch {}), {runs} run(s) | batches | versions adopted | batch p50 (ns) | batch p99 (ns) | batch p99.9 (ns) |",
            self.name, self.batch
        );
        println!("|---|---:|---:|---:|---:|---:|");
        println!(
            "| quiet | {} | 0 | {:.0} | {:.0} | {:.0} |",
            self.quiet.len(),
            quiet[0],
            quiet[1],
            quiet[2]
        );
        println!(
            "| publishing {} versions per run | {} | {} / {} | {:.0} | {:.0} | {:.0} |",
            self.versions,
            self.publishing.len(),
            self.adopted,
            self.versions * runs as u64,
            publishing[0],
            publishing[1],
            publishing[2]
        );
        println!(
            "| publishing / quiet | | | {:.2}x | {:.2}x | {:.2}x |",
            publishing[0] / quiet[0],
            publishing[1] / quiet[1],
            publishing[2] / quiet[2]
        );
        let windows: Vec<f64> = self.windows.iter().map(|w| w.as_secs_f64()).collect();
        let window = median(&windows);
        println!();
        println!(
            "publishing window {:.0} ms per run (median; {:.0} versions/s); one change (apply, publish, acknowledgement) p50 {:.0} us, p99 {:.0} us, max {:.0} us",
            window * 1e3,
            self.versions as f64 / window,
            self.changes.value_at_quantile(0.5) as f64 / 1e3,
            self.changes.value_at_quantile(0.99) as f64 / 1e3,
            self.changes.max() as f64 / 1e3,
        );
        let ratios: Vec<String> = self.p999_ratios.iter().map(|r| format!("{r:.2}")).collect();
        let ratio = self.p999_ratio();
        println!(
            "p99.9 publishing / quiet per run: {}; median {ratio:.2}x: goal (at most {GOAL_RATIO}x) {}",
            ratios.join(", "),
            if ratio <= GOAL_RATIO { "met" } else { "not met" }
        );
        println!("publish_p999_ratio={ratio:.2}");
    }
}

/// One batch as an eipd worker runs it: refresh at the boundary, then process
/// with the snapshot in force.
fn worker_batch<'f>(
    sub: &'f mut Subscriber<Tables>,
    pipeline: &'f mut Pipeline,
    now: &'f mut u64,
    adoptions: &'f mut Adoptions,
) -> impl FnMut(&mut [eip_dataplane::Frame<'_>], &mut [eip_dataplane::Verdict]) + 'f {
    move |frames, verdicts| {
        *now += 1_000;
        let t0 = Instant::now();
        let tables = sub.refresh();
        adoptions.observe(tables.version(), t0.elapsed().as_nanos() as u64);
        pipeline.process(Timestamp(*now), tables, frames, verdicts);
    }
}

/// Runs `runs` publishing runs of `versions` versions each, each followed by a
/// quiet run of as many batches, on `w` (whose tables were built from `spec`);
/// the control thread runs on `control_core` if given.
///
/// # Errors
/// A change the tables refuse, an acknowledgement that does not come, or a run
/// in which the worker did not adopt every version.
pub fn measure(
    w: Workload,
    mut spec: PopSpec,
    versions: u64,
    runs: usize,
    batch: usize,
    control_core: Option<CoreId>,
) -> Result<Report> {
    ensure!(versions > 0 && runs > 0, "nothing to measure");
    let Workload {
        name,
        tables,
        frames,
        input_port,
        ..
    } = w;
    let (mut publisher, mut subscribers) = swap::channel(Arc::new(tables), 1);
    let mut sub = subscribers.pop().context("one subscriber")?;
    let mut pipeline = Pipeline::default();
    let mut now = 1_000_000_000u64;
    // One untimed pass over the pool: sizes the counters, warms what can be.
    let mut none = Adoptions::new(sub.version());
    let warm = Length::Packets(frames.len() as u64);
    one_run(
        &frames,
        input_port,
        batch,
        warm,
        worker_batch(&mut sub, &mut pipeline, &mut now, &mut none),
    );
    let new_hist = || Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3);
    let mut report = Report {
        name,
        batch,
        versions,
        adopted: 0,
        quiet: new_hist()?,
        publishing: new_hist()?,
        p999_ratios: Vec::with_capacity(runs),
        windows: Vec::with_capacity(runs),
        changes: new_hist()?,
    };
    let mut next = 0u32;
    for run in 0..runs {
        let (go, done) = (AtomicBool::new(false), AtomicBool::new(false));
        let mut adoptions = Adoptions::new(sub.version());
        let (published, (_, _, busy)) = thread::scope(|s| {
            let (publisher, spec, next) = (&mut publisher, &mut spec, &mut next);
            let (go, done) = (&go, &done);
            let control = s.spawn(move || {
                let _stop = SetOnDrop(done);
                if let Some(core) = control_core {
                    core_affinity::set_for_current(core);
                }
                while !go.load(Ordering::Acquire) {
                    thread::yield_now();
                }
                publish_versions(publisher, spec, next, versions)
            });
            let mut process = worker_batch(&mut sub, &mut pipeline, &mut now, &mut adoptions);
            let measured = one_run(&frames, input_port, batch, Length::Until(done), |f, v| {
                go.store(true, Ordering::Release);
                process(f, v);
            });
            let published = control
                .join()
                .map_err(|_| anyhow!("the control thread panicked"));
            (published, measured)
        });
        let published = published??;
        ensure!(
            adoptions.count() == versions,
            "run {run}: the worker adopted {} of {versions} versions",
            adoptions.count()
        );
        let mut still = Adoptions::new(sub.version());
        let length = Length::Packets(busy.len() * batch as u64);
        let (_, _, quiet) = one_run(
            &frames,
            input_port,
            batch,
            length,
            worker_batch(&mut sub, &mut pipeline, &mut now, &mut still),
        );
        ensure!(
            still.count() == 0,
            "run {run}: a version adopted while quiet"
        );
        let stalls = |h: &Histogram<u64>| h.count_between(STALL_NS, u64::MAX);
        eprintln!(
            "run {run}: {} batches, {versions} versions adopted in {:.0} ms; p99.9 quiet {} ns, publishing {} ns; batches over 1 ms quiet {}, publishing {}; adopting refresh p50 {} ns max {} ns",
            busy.len(),
            published.window.as_secs_f64() * 1e3,
            quiet.value_at_quantile(0.999),
            busy.value_at_quantile(0.999),
            stalls(&quiet),
            stalls(&busy),
            adoptions.refresh.value_at_quantile(0.5),
            adoptions.refresh.max(),
        );
        report
            .p999_ratios
            .push(busy.value_at_quantile(0.999) as f64 / quiet.value_at_quantile(0.999) as f64);
        report.windows.push(published.window);
        report.adopted += adoptions.count();
        report.quiet.add(&quiet)?;
        report.publishing.add(&busy)?;
        report.changes.add(&published.changes)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::small_frames_to;

    #[test]
    fn adoptions_count_version_changes_not_refreshes() {
        let mut a = Adoptions::new(1);
        for v in [1, 1, 2, 2, 2, 3, 5, 5] {
            a.observe(v, 100 * v);
        }
        assert_eq!(a.count(), 3);
        assert_eq!(a.refresh.len(), 3);
        assert_eq!(a.refresh.max(), a.refresh.highest_equivalent(500));
    }

    #[test]
    fn every_published_version_is_adopted_and_the_eips_alternate() {
        let (w, spec) = small_frames_to(1000, 256);
        let report = measure(w, spec, 5, 2, 16, None).unwrap();
        assert_eq!(report.adopted, 10);
        assert_eq!(report.changes.len(), 10);
        assert_eq!(report.quiet.len(), report.publishing.len());
        assert!(report.publishing.len() >= 5);
        assert_eq!(report.p999_ratios.len(), 2);
    }

    #[test]
    fn the_control_loop_adds_then_removes_each_eip() {
        let (w, mut spec) = small_frames_to(10, 4);
        let (mut publisher, subscribers) = swap::channel(Arc::new(w.tables), 0);
        let mut next = 0;
        publish_versions(&mut publisher, &mut spec, &mut next, 3).unwrap();
        let t = publisher.latest();
        assert_eq!((t.version, t.version()), (4, 4));
        assert_eq!(next, 1);
        // The second EIP is in force, the first came and went.
        assert_eq!(t.eips.len(), 11);
        assert!(t.eip_v4(pop::eip_addr(FIRST_EXTRA).octets()).is_none());
        assert!(t.eip_v4(pop::eip_addr(FIRST_EXTRA + 1).octets()).is_some());
        assert_eq!(spec.eips.len(), 11);
        drop(subscribers);
    }
}
