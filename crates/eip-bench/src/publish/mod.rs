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
//!
//! On a shared machine the tail of both runs is the scheduler's: another task
//! takes the worker's core for a time slice (4 ms at `HZ=250`). Between batches,
//! outside their timing, the worker reads its run delay
//! (`/proc/thread-self/schedstat`: time runnable but waiting for its core), so
//! the report also gives the percentiles of the batches during which it kept
//! its core. A batch that blocked (a lock, a page fault) kept its core: it
//! still counts there.

mod batches;
mod report;

pub use report::Report;

use crate::workloads::{Workload, REGION};
use crate::{observed_run, Length};
use anyhow::{anyhow, ensure, Context, Result};
use batches::{ns_histogram, Adoptions, Batches, RunDelay};
use core_affinity::CoreId;
use eip_control::state::TableSink;
use eip_dataplane::swap::{self, Publisher, Subscriber, Versioned};
use eip_dataplane::tables::spec::PopSpec;
use eip_dataplane::tables::TableDelta;
use eip_dataplane::testkit::pop;
use eip_dataplane::{Frame, Pipeline, Tables, Timestamp, Verdict};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Index of the first EIP the control thread adds ([`pop::eip_addr`]): above
/// any workload's.
const FIRST_EXTRA: u32 = 2_000_000;

/// How long the control thread waits for an acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

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
    let mut changes = ns_histogram();
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

/// One batch as an eipd worker runs it: refresh at the boundary, then process
/// with the snapshot in force. Returns whether it adopted a version.
fn worker_batch<'f>(
    sub: &'f mut Subscriber<Tables>,
    pipeline: &'f mut Pipeline,
    now: &'f mut u64,
    adoptions: &'f mut Adoptions,
) -> impl FnMut(&mut [Frame<'_>], &mut [Verdict]) -> bool + 'f {
    move |frames, verdicts| {
        *now += 1_000;
        let t0 = Instant::now();
        let tables = sub.refresh();
        let adopted = adoptions.observe(tables.version(), t0.elapsed().as_nanos() as u64);
        pipeline.process(Timestamp(*now), tables, frames, verdicts);
        adopted
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
    let mut delay = RunDelay::of_this_thread();
    let mut report = Report {
        name,
        batch,
        versions,
        adopted: 0,
        quiet: Batches::default(),
        publishing: Batches::default(),
        p999_ratios: Vec::with_capacity(runs),
        windows: Vec::with_capacity(runs),
        changes: ns_histogram(),
        refresh: ns_histogram(),
        run_delay_known: delay.waited().is_some(),
    };
    // One untimed pass over the pool: sizes the counters, warms what can be.
    let mut none = Adoptions::new(sub.version());
    observed_run(
        &frames,
        input_port,
        batch,
        Length::Packets(frames.len() as u64),
        worker_batch(&mut sub, &mut pipeline, &mut now, &mut none),
        |_, _| {},
    );
    let mut next = 0u32;
    for run in 0..runs {
        let (go, done) = (AtomicBool::new(false), AtomicBool::new(false));
        let mut adoptions = Adoptions::new(sub.version());
        let mut busy = Batches::default();
        let published = thread::scope(|s| {
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
            delay.waited();
            observed_run(
                &frames,
                input_port,
                batch,
                Length::Until(done),
                |f, v| {
                    go.store(true, Ordering::Release);
                    process(f, v)
                },
                |adopted, ns| busy.record(ns, adopted, delay.waited()),
            );
            control
                .join()
                .map_err(|_| anyhow!("the control thread panicked"))
        });
        let published = published??;
        ensure!(
            adoptions.count() == versions,
            "run {run}: the worker adopted {} of {versions} versions",
            adoptions.count()
        );
        let mut still = Adoptions::new(sub.version());
        let mut quiet = Batches::default();
        delay.waited();
        observed_run(
            &frames,
            input_port,
            batch,
            Length::Packets(busy.all.len() * batch as u64),
            worker_batch(&mut sub, &mut pipeline, &mut now, &mut still),
            |adopted, ns| quiet.record(ns, adopted, delay.waited()),
        );
        ensure!(
            still.count() == 0,
            "run {run}: a version adopted while quiet"
        );
        let p999 = |h: &Histogram<u64>| h.value_at_quantile(0.999);
        eprintln!(
            "run {run}: {} batches, {versions} versions adopted in {:.0} ms; p99.9 quiet {} ns, publishing {} ns; core kept: {} ns, {} ns; lost the core: {}, {} batches; slowest adopting batch {} ns ({} ns with the core kept)",
            busy.all.len(),
            published.window.as_secs_f64() * 1e3,
            p999(&quiet.all),
            p999(&busy.all),
            p999(&quiet.kept_core),
            p999(&busy.kept_core),
            quiet.lost_core,
            busy.lost_core,
            busy.adopting.max(),
            busy.adopting_kept_max,
        );
        report.p999_ratios.push((
            p999(&busy.all) as f64 / p999(&quiet.all) as f64,
            p999(&busy.kept_core) as f64 / p999(&quiet.kept_core) as f64,
        ));
        report.windows.push(published.window);
        report.adopted += adoptions.count();
        report.refresh.add(&adoptions.refresh)?;
        report.quiet.add(&quiet);
        report.publishing.add(&busy);
        report.changes.add(&published.changes)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::small_frames_to;

    #[test]
    fn every_published_version_is_adopted_and_the_eips_alternate() {
        let (w, spec) = small_frames_to(1000, 256);
        let report = measure(w, spec, 5, 2, 16, None).unwrap();
        assert_eq!(report.adopted, 10);
        assert_eq!(report.changes.len(), 10);
        assert_eq!(report.refresh.len(), 10);
        assert_eq!(report.quiet.all.len(), report.publishing.all.len());
        assert_eq!(report.publishing.adopting.len(), 10);
        assert_eq!(report.quiet.adopting.len(), 0);
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
