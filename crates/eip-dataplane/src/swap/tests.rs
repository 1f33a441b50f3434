//! The handoff under test: snapshots that record on which thread they are freed,
//! workers on threads, publish/refresh races.

use super::*;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::thread::{self, ThreadId};
use std::time::Duration;

/// Records on which thread each snapshot was freed.
#[derive(Default)]
struct DropLog {
    drops: Mutex<Vec<(u64, ThreadId)>>,
}

impl DropLog {
    fn versions(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.drops.lock().unwrap().iter().map(|d| d.0).collect();
        v.sort_unstable();
        v
    }

    fn off_thread(&self, control: ThreadId) -> Vec<u64> {
        let drops = self.drops.lock().unwrap();
        drops
            .iter()
            .filter(|d| d.1 != control)
            .map(|d| d.0)
            .collect()
    }
}

struct Snap {
    version: u64,
    log: Arc<DropLog>,
}

impl Versioned for Snap {
    fn version(&self) -> u64 {
        self.version
    }
}

impl Drop for Snap {
    fn drop(&mut self) {
        let me = thread::current().id();
        self.log.drops.lock().unwrap().push((self.version, me));
    }
}

fn snap(version: u64, log: &Arc<DropLog>) -> Arc<Snap> {
    Arc::new(Snap {
        version,
        log: Arc::clone(log),
    })
}

fn setup(workers: usize) -> (Arc<DropLog>, Publisher<Snap>, Vec<Subscriber<Snap>>) {
    let log = Arc::new(DropLog::default());
    let (p, s) = channel(snap(1, &log), workers);
    (log, p, s)
}

#[test]
fn ends_move_to_their_threads() {
    fn send<S: Send>() {}
    send::<Publisher<crate::tables::Tables>>();
    send::<Subscriber<crate::tables::Tables>>();
}

#[test]
fn refresh_without_publish_keeps_the_snapshot() {
    let (_log, p, mut subs) = setup(1);
    let a: *const Snap = subs[0].refresh();
    let b: *const Snap = subs[0].refresh();
    assert_eq!(a, b);
    assert_eq!(subs[0].version(), 1);
    assert!(p.is_acknowledged(1));
    assert_eq!(p.worker_version(0), Some(1));
}

#[test]
fn publish_is_adopted_and_acknowledged_at_refresh() {
    let (log, mut p, mut subs) = setup(2);
    let ticket = p.publish(snap(2, &log)).unwrap();
    assert_eq!(ticket.version(), 2);
    assert!(!ticket.is_acknowledged());
    // Nothing changes for a worker until it refreshes.
    assert_eq!(subs[0].current().version, 1);
    assert_eq!(subs[0].refresh().version, 2);
    assert!(!ticket.is_acknowledged());
    assert_eq!(
        ticket.wait(Duration::ZERO),
        Err(SwapError::Timeout {
            version: 2,
            lagging: vec![1]
        })
    );
    assert_eq!(subs[1].refresh().version, 2);
    assert!(ticket.is_acknowledged());
    ticket.wait(Duration::ZERO).unwrap();
    // Version 1 was held by both workers and the publisher: freed once all
    // three let go, by the garbage collection (wait drained what came back).
    p.collect_garbage();
    assert_eq!(log.versions(), vec![1]);
}

#[test]
fn stale_and_equal_versions_are_rejected_without_effect() {
    let (log, mut p, mut subs) = setup(1);
    p.publish(snap(5, &log)).unwrap();
    assert_eq!(
        p.publish(snap(5, &log)).unwrap_err(),
        SwapError::Stale {
            version: 5,
            current: 5
        }
    );
    assert_eq!(
        p.publish(snap(3, &log)).unwrap_err(),
        SwapError::Stale {
            version: 3,
            current: 5
        }
    );
    assert_eq!(p.version(), 5);
    assert_eq!(subs[0].refresh().version, 5);
    // The rejected snapshots were dropped by the caller's thread right away.
    p.collect_garbage();
    assert_eq!(log.versions(), vec![1, 3, 5]);
}

#[test]
fn a_slow_worker_skips_to_the_newest_snapshot() {
    let (log, mut p, mut subs) = setup(1);
    p.publish(snap(2, &log)).unwrap();
    p.publish(snap(3, &log)).unwrap();
    p.publish(snap(4, &log)).unwrap();
    // 2 and 3 were replaced in the queue and freed by publish.
    assert_eq!(log.versions(), vec![2, 3]);
    assert_eq!(subs[0].refresh().version, 4);
    assert!(p.is_acknowledged(4));
    assert_eq!(p.collect_garbage(), 1);
    assert_eq!(log.versions(), vec![1, 2, 3]);
}

#[test]
fn ticket_wait_succeeds_once_acknowledged_and_can_be_retried() {
    let (log, mut p, mut subs) = setup(1);
    let ticket = p.publish(snap(2, &log)).unwrap();
    assert!(ticket.wait(Duration::ZERO).is_err());
    subs[0].refresh();
    assert!(ticket.wait(Duration::ZERO).is_ok());
    // An older version is acknowledged too.
    assert!(p.wait_for(1, Duration::ZERO).is_ok());
    assert!(p.wait_for(3, Duration::ZERO).is_err());
}

#[test]
fn dropped_worker_stops_holding_acknowledgements_back() {
    let (log, mut p, mut subs) = setup(2);
    let ticket = p.publish(snap(2, &log)).unwrap();
    subs[0].refresh();
    assert_eq!(
        ticket.wait(Duration::ZERO).unwrap_err().to_string(),
        "workers [1] did not acknowledge snapshot version 2 in time"
    );
    let gone = subs.pop().unwrap();
    drop(gone);
    ticket.wait(Duration::ZERO).unwrap();
    assert_eq!(p.worker_version(1), None);
    assert_eq!(p.lagging(100), vec![0]);
    // Its queued snapshot and its current one came back: nothing leaked, and
    // later publishes skip it.
    p.publish(snap(3, &log)).unwrap();
    subs[0].refresh();
    assert!(p.is_acknowledged(3));
    p.collect_garbage();
    assert_eq!(log.versions(), vec![1, 2]);
}

#[test]
fn zero_workers_acknowledge_immediately() {
    let (log, mut p, subs) = setup(0);
    assert!(subs.is_empty());
    p.publish(snap(2, &log))
        .unwrap()
        .wait(Duration::ZERO)
        .unwrap();
    assert_eq!(p.workers(), 0);
}

#[test]
fn worker_outlives_publisher() {
    let (log, mut p, mut subs) = setup(1);
    p.publish(snap(2, &log)).unwrap();
    drop(p);
    // Shutdown order the other way round: the worker still gets what was
    // queued and frees the old snapshot itself.
    assert_eq!(subs[0].refresh().version, 2);
    assert_eq!(subs[0].refresh().version, 2);
    drop(subs);
    assert_eq!(log.versions(), vec![1, 2]);
}

#[test]
fn every_snapshot_is_freed_exactly_once() {
    let (log, mut p, mut subs) = setup(3);
    for v in 2..=50 {
        p.publish(snap(v, &log)).unwrap();
        // Workers pick up at different rates.
        for (i, s) in subs.iter_mut().enumerate() {
            if v % (i as u64 + 1) == 0 {
                s.refresh();
            }
        }
    }
    drop(subs);
    p.collect_garbage();
    drop(p);
    assert_eq!(log.versions(), (1..=50).collect::<Vec<_>>());
    assert!(log.off_thread(thread::current().id()).is_empty());
}

/// Several workers spin on `refresh` while the control thread publishes 1,000
/// versions and waits for each acknowledgement.
#[test]
fn concurrent_publish_and_refresh() {
    const WORKERS: usize = 4;
    const VERSIONS: u64 = 1_000;
    use std::sync::atomic::AtomicBool;

    let control = thread::current().id();
    let (log, mut p, subs) = setup(WORKERS);
    // Highest version the control thread has seen acknowledged.
    let floor = Arc::new(AtomicU64::new(1));
    let stop = Arc::new(AtomicBool::new(false));

    let handles: Vec<_> = subs
        .into_iter()
        .map(|mut sub| {
            let floor = Arc::clone(&floor);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut last = 0;
                let mut seen = 0u64;
                let mut iterations = 0u64;
                while !stop.load(Ordering::Acquire) {
                    // Read the floor *before* refreshing: a version
                    // acknowledged before this load must be what refresh
                    // returns or older than it.
                    let acked = floor.load(Ordering::SeqCst);
                    let v = sub.refresh().version;
                    assert!(v >= last, "version went back from {last} to {v}");
                    assert!(v >= acked, "saw {v} after {acked} was acknowledged");
                    // Version 1 may be skipped if 2 came before the
                    // first refresh; every later one must be seen.
                    if v != last && v > 1 {
                        seen += 1;
                    }
                    last = v;
                    iterations += 1;
                    if iterations.is_multiple_of(64) {
                        thread::yield_now();
                    }
                }
                (last, seen)
            })
        })
        .collect();

    for v in 2..=VERSIONS + 1 {
        let ticket = p.publish(snap(v, &log)).unwrap();
        ticket.wait(Duration::from_secs(30)).unwrap();
        assert!((0..WORKERS).all(|w| p.worker_version(w).unwrap() >= v));
        floor.store(v, Ordering::SeqCst);
        p.collect_garbage();
    }
    stop.store(true, Ordering::Release);
    for h in handles {
        let (last, seen) = h.join().unwrap();
        assert_eq!(last, VERSIONS + 1);
        // Every version was waited for, so each worker saw each one.
        assert_eq!(seen, VERSIONS);
    }
    // The workers' subscribers were dropped on their threads, handing their
    // current snapshots back.
    p.collect_garbage();
    assert_eq!(log.versions(), (1..=VERSIONS).collect::<Vec<_>>());
    drop(p);
    assert_eq!(log.versions(), (1..=VERSIONS + 1).collect::<Vec<_>>());
    assert_eq!(log.off_thread(control), Vec::<u64>::new());
}

/// Publishing without waiting (workers skip versions), garbage collected only
/// now and then, and one worker stopping halfway: versions stay monotonic, the
/// return queue stays within its bound (a debug assertion would fire in the
/// worker), a stopped worker does not block acknowledgements, and every
/// snapshot is freed on the control thread.
#[test]
fn concurrent_publish_without_waiting() {
    const WORKERS: usize = 3;
    const VERSIONS: u64 = 1_000;
    use std::sync::atomic::AtomicBool;

    let control = thread::current().id();
    let (log, mut p, subs) = setup(WORKERS);
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = subs
        .into_iter()
        .map(|mut sub| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                // Worker 0 stops once it has seen version 300.
                let quit_at = if sub.index() == 0 { 300 } else { u64::MAX };
                let mut last = 0;
                while !stop.load(Ordering::Acquire) && last < quit_at {
                    let v = sub.refresh().version;
                    assert!(v >= last, "version went back from {last} to {v}");
                    last = v;
                    thread::yield_now();
                }
                last
            })
        })
        .collect();

    for v in 2..=VERSIONS + 1 {
        let ticket = p.publish(snap(v, &log)).unwrap();
        if v % 100 == 0 {
            ticket.wait(Duration::from_secs(30)).unwrap();
            p.collect_garbage();
        }
    }
    p.wait_for(VERSIONS + 1, Duration::from_secs(30)).unwrap();
    stop.store(true, Ordering::Release);
    let lasts: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(lasts[0] >= 300 && lasts[0] <= VERSIONS + 1);
    assert_eq!(&lasts[1..], &[VERSIONS + 1; WORKERS - 1]);
    assert_eq!(p.worker_version(0), None);
    p.collect_garbage();
    drop(p);
    assert_eq!(log.versions(), (1..=VERSIONS + 1).collect::<Vec<_>>());
    assert_eq!(log.off_thread(control), Vec::<u64>::new());
}
