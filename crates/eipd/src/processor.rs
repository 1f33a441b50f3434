//! The production packet processor: what every AF_XDP worker runs on each batch.
//!
//! It is the pipeline plus the worker's side of the table swap, of the
//! publication of counters and batch latencies, and of packet trace
//! ([`crate::trace`]; off, it costs one plain field test per batch). It
//! implements the driver's [`PacketProcessor`], but nothing in it needs a NIC, so
//! the tests below drive it with plain buffers, without root.

use crate::trace::WorkerTrace;
use eip_afxdp::PacketProcessor;
use eip_control::metrics::LatencySlot;
use eip_dataplane::counters::Counters;
use eip_dataplane::pipeline::PipelineConfig;
use eip_dataplane::swap::Subscriber;
use eip_dataplane::{Frame, Pipeline, Tables, Timestamp, Verdict};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What one worker publishes for the control thread: its pipeline counters and its
/// batch latencies since start. The worker only ever `try_lock`s these.
#[derive(Debug, Default)]
pub struct Published {
    pub counters: Mutex<Counters>,
    pub latency: Mutex<LatencySlot>,
}

impl Published {
    /// One slot per worker.
    pub fn per_worker(workers: usize) -> Arc<Vec<Arc<Published>>> {
        Arc::new((0..workers).map(|_| Arc::default()).collect())
    }
}

/// The pipeline counters of all workers, summed.
pub fn sum_counters(published: &[Arc<Published>]) -> Counters {
    let mut total = Counters::default();
    for p in published {
        total.merge(&p.counters.lock().unwrap_or_else(|e| e.into_inner()));
    }
    total
}

/// All workers' batch latencies since start.
pub fn merged_latency(published: &[Arc<Published>]) -> LatencySlot {
    let mut all = LatencySlot::default();
    for p in published {
        all.add(&p.latency.lock().unwrap_or_else(|e| e.into_inner()));
    }
    all
}

/// One worker's pipeline, fed by the AF_XDP driver.
pub struct PipelineWorker {
    pipeline: Pipeline,
    tables: Subscriber<Tables>,
    /// Where this worker publishes, for the control thread.
    published: Arc<Published>,
    /// Batch latencies since the last publication that reached `published`.
    latency: LatencySlot,
    /// Packet trace: off unless the control thread turned it on.
    trace: WorkerTrace,
    /// The first EIP slot of the next publication's window.
    publish_from: usize,
}

/// EIP slots whose rate-limit and access-list counters one publication copies
/// (per-EIP traffic is read in place, never copied): 16,384 slots are about
/// 600 KB, a copy of tens of microseconds; 1M policed EIPs are swept in 64
/// publications (a fraction of a second under traffic).
const PUBLISH_SLOTS: usize = 16_384;

impl PipelineWorker {
    pub fn new(
        tables: Subscriber<Tables>,
        published: Arc<Published>,
        trace: WorkerTrace,
    ) -> PipelineWorker {
        PipelineWorker {
            pipeline: Pipeline::default(),
            tables,
            published,
            latency: LatencySlot::default(),
            trace,
            publish_from: 0,
        }
    }

    /// This worker as one of `workers` that share each per-EIP rate limit
    /// (each polices `cap / workers`).
    pub fn with_workers(mut self, workers: usize) -> PipelineWorker {
        self.pipeline = Pipeline::new(PipelineConfig {
            workers: u32::try_from(workers).unwrap_or(u32::MAX),
            ..PipelineConfig::default()
        });
        self
    }
}

impl PacketProcessor for PipelineWorker {
    fn on_poll(&mut self) {
        self.tables.refresh();
        self.trace.refresh();
    }

    fn process_batch(&mut self, now_ns: u64, frames: &mut [Frame<'_>], verdicts: &mut [Verdict]) {
        let start = Instant::now();
        let tables = self.tables.current();
        // Tracing off: this field test is all it costs.
        let tracing = self.trace.is_on();
        if tracing {
            self.trace.before(frames, tables.vxlan_port);
        }
        self.pipeline
            .process(Timestamp(now_ns), tables, frames, verdicts);
        if tracing {
            let n = frames.len();
            self.trace
                .after(now_ns, frames, &verdicts[..n], tables.vxlan_port);
        }
        // One clock pair per batch; `saturating_record` never allocates.
        let ns = start.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        self.latency.hist.saturating_record(ns.max(1));
        self.latency.sum_ns = self.latency.sum_ns.wrapping_add(ns);
    }

    fn on_publish(&mut self, last: bool) {
        // Never wait for the reader: skip this publication if it holds the lock.
        if let Ok(mut c) = self.published.counters.try_lock() {
            if last {
                c.copy_from(self.pipeline.counters());
            } else {
                self.publish_from =
                    c.copy_window_from(self.pipeline.counters(), self.publish_from, PUBLISH_SLOTS);
            }
        }
        // Same for the latencies; what is not handed over now stays local and is
        // added at the next publication. Same bounds: `add` does not allocate.
        if !self.latency.hist.is_empty() {
            if let Ok(mut shared) = self.published.latency.try_lock() {
                shared.add(&self.latency);
                self.latency.reset();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Session, TraceHub};
    use eip_control::api::TraceFilter;
    use eip_control::pcap::CaptureReader;
    use eip_control::trace::{Matcher, Point, TraceRecord};
    use eip_dataplane::counters::Event;
    use eip_dataplane::{swap, DropReason, PortId};
    use std::path::Path;

    fn fixtures() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../pcap-fixtures"))
    }

    fn tables(version: u64) -> Arc<Tables> {
        let (spec, _) = eip_control::config::load(&fixtures().join("pop.toml")).unwrap();
        Arc::new(Tables::build(&spec, version).unwrap())
    }

    /// Frame `index` of a fixture's input, in a buffer with headroom and
    /// tailroom, and its length.
    fn fixture_frame(scenario: &str, index: usize) -> (Vec<u8>, usize) {
        let file = std::fs::File::open(fixtures().join(scenario).join("input.pcap")).unwrap();
        let records = CaptureReader::new(file).unwrap().read_all().unwrap();
        let data = &records[index].data;
        let mut buf = vec![0u8; 256 + data.len() + 512];
        buf[256..256 + data.len()].copy_from_slice(data);
        (buf, data.len())
    }

    /// The first frame of the 1:1 ingress fixture, in a buffer with headroom.
    fn ingress_frame() -> Vec<u8> {
        fixture_frame("ingress-1to1", 0).0
    }

    fn port(worker: &PipelineWorker, name: &str) -> PortId {
        let t = worker.tables.current();
        t.ports.iter().position(|p| p.name == name).unwrap() as PortId
    }

    /// A batch of one frame arriving on `port`.
    fn run_batch_on(
        worker: &mut PipelineWorker,
        template: &[u8],
        len: usize,
        port: PortId,
    ) -> Verdict {
        let mut buf = template.to_vec();
        let mut frames = [Frame::new(&mut buf, 256, len, port)];
        let mut verdicts = [Verdict::ToKernel];
        worker.process_batch(1, &mut frames, &mut verdicts);
        verdicts[0]
    }

    fn run_batch(worker: &mut PipelineWorker, template: &[u8], len: usize) -> Verdict {
        let internet = worker.tables.current().internet_port;
        run_batch_on(worker, template, len, internet)
    }

    /// A worker on the fixture POP's tables, lane 0 of `hub`, serving queue 3.
    fn traced_worker(hub: &Arc<TraceHub>) -> PipelineWorker {
        let (_publisher, mut subscribers) = swap::channel(tables(1), 1);
        PipelineWorker::new(
            subscribers.pop().unwrap(),
            Arc::new(Published::default()),
            WorkerTrace::new(Arc::clone(hub), 0, 3),
        )
    }

    /// Puts a trace with `filter` in force on `hub` (one lane, 8 records, 128 bytes).
    fn start(hub: &TraceHub, filter: &str) -> Arc<Session> {
        let filter: TraceFilter = serde_json::from_str(filter).unwrap();
        let session = Arc::new(Session::new(Matcher::new(&filter), 1, 8, 128, 4));
        hub.set(Some(Arc::clone(&session)));
        session
    }

    fn taken(session: &Session) -> Vec<TraceRecord> {
        std::iter::from_fn(|| session.lanes[0].full.pop()).collect()
    }

    #[test]
    fn forwards_publishes_and_adopts_new_tables_at_a_poll() {
        let (mut publisher, mut subscribers) = swap::channel(tables(1), 1);
        let published = Arc::new(Published::default());
        let mut worker = PipelineWorker::new(
            subscribers.pop().unwrap(),
            Arc::clone(&published),
            WorkerTrace::new(TraceHub::new(1), 0, 0),
        );
        let file = std::fs::File::open(fixtures().join("ingress-1to1/input.pcap")).unwrap();
        let len = CaptureReader::new(file).unwrap().read_all().unwrap()[0]
            .data
            .len();
        let frame = ingress_frame();

        worker.on_poll();
        assert!(matches!(
            run_batch(&mut worker, &frame, len),
            Verdict::Tx(_)
        ));
        // Nothing is visible to the control thread before a publication.
        assert_eq!(
            sum_counters(&[Arc::clone(&published)]).happened(Event::Rx),
            0
        );
        worker.on_publish(false);
        let seen = sum_counters(&[Arc::clone(&published)]);
        assert_eq!(seen.happened(Event::Rx), 1);
        assert_eq!(seen.table_version, 1);
        assert_eq!(merged_latency(&[Arc::clone(&published)]).hist.len(), 1);

        // A new version is taken at the next poll (batch boundary), acknowledged.
        let ticket = publisher.publish(tables(2)).unwrap();
        assert!(!ticket.is_acknowledged());
        worker.on_poll();
        assert!(publisher.is_acknowledged(2));
        assert!(matches!(
            run_batch(&mut worker, &frame, len),
            Verdict::Tx(_)
        ));
        worker.on_publish(true);
        assert_eq!(sum_counters(&[published]).table_version, 2);
    }

    #[test]
    fn trace_off_records_nothing_and_stages_nothing() {
        let hub = TraceHub::new(1);
        let mut worker = traced_worker(&hub);
        let (frame, len) = fixture_frame("ingress-1to1", 0);
        worker.on_poll();
        for _ in 0..3 {
            assert!(matches!(
                run_batch(&mut worker, &frame, len),
                Verdict::Tx(_)
            ));
        }
        assert!(!worker.trace.is_on());
        // The staging area is the trace's only allocation: never made when off.
        assert_eq!(worker.trace.staging_capacity(), 0);

        // A trace put in force reaches the worker at its next poll only.
        let session = start(&hub, "{}");
        run_batch(&mut worker, &frame, len);
        assert!(taken(&session).is_empty());
        worker.on_poll();
        assert!(worker.trace.is_on());
        run_batch(&mut worker, &frame, len);
        assert_eq!(taken(&session).len(), 2);

        // Withdrawn: the worker lets go at its next poll and acknowledges.
        let generation = hub.set(None);
        assert!(!hub.all_adopted(generation));
        worker.on_poll();
        assert!(hub.all_adopted(generation));
        assert!(!worker.trace.is_on());
        run_batch(&mut worker, &frame, len);
        assert!(taken(&session).is_empty());
        // Every record is back or taken; the worker holds none.
        assert_eq!(session.lanes[0].free.len(), 8 - 2);
        assert_eq!(Arc::strong_count(&session), 1);
    }

    #[test]
    fn trace_on_records_rx_and_tx_of_an_ingress_frame() {
        let hub = TraceHub::new(1);
        let mut worker = traced_worker(&hub);
        let (internet, backbone) = (port(&worker, "internet"), port(&worker, "backbone"));
        let (frame, len) = fixture_frame("ingress-1to1", 0);
        let session = start(
            &hub,
            r#"{"eip":"192.0.2.10","protocol":"tcp","dst_port":443}"#,
        );
        worker.on_poll();
        let verdict = run_batch(&mut worker, &frame, len);
        assert_eq!(verdict, Verdict::Tx(backbone));
        let records = taken(&session);
        assert_eq!(records.len(), 2, "{records:?}");
        let (rx, tx) = (&records[0], &records[1]);
        assert_eq!(
            (rx.point, rx.port, rx.verdict),
            (Point::Rx, internet, verdict)
        );
        assert_eq!(
            (tx.point, tx.port, tx.verdict),
            (Point::Tx, backbone, verdict)
        );
        assert_eq!((rx.queue, rx.timestamp_ns), (3, 1));
        // Rx: the frame as received (whole: it is shorter than the snap length).
        assert_eq!(rx.bytes(), &frame[256..256 + len]);
        assert_eq!(rx.original_len as usize, len);
        // Tx: the frame as sent, VXLAN (+50 bytes), cut to the snap length.
        assert_eq!(tx.original_len as usize, len + 50);
        assert_eq!(tx.bytes().len(), 128.min(len + 50));
        assert_eq!(&tx.bytes()[12..14], &[0x08, 0x00]);
        assert_eq!(tx.bytes()[23], 17, "outer UDP");
        assert_eq!(
            rx.comment(&["internet", "backbone"]),
            "rx port internet queue 3 verdict tx port backbone"
        );

        // Another EIP's traffic is not taken.
        let other = start(&hub, r#"{"eip":"192.0.2.99"}"#);
        worker.on_poll();
        run_batch(&mut worker, &frame, len);
        assert!(taken(&other).is_empty());
        assert_eq!(other.lost(), 0);
    }

    #[test]
    fn trace_follows_the_return_through_its_nat() {
        // The return arrives as VXLAN from the backend (10.1.0.10) and leaves
        // from the EIP: the filter on the EIP matches only as it leaves, and the
        // frame is still recorded as it arrived.
        let hub = TraceHub::new(1);
        let mut worker = traced_worker(&hub);
        let (internet, backbone) = (port(&worker, "internet"), port(&worker, "backbone"));
        let (frame, len) = fixture_frame("return", 0);
        let session = start(&hub, r#"{"eip":"192.0.2.10"}"#);
        worker.on_poll();
        assert_eq!(
            run_batch_on(&mut worker, &frame, len, backbone),
            Verdict::Tx(internet)
        );
        let records = taken(&session);
        let points: Vec<_> = records.iter().map(|r| (r.point, r.port)).collect();
        assert_eq!(points, [(Point::Rx, backbone), (Point::Tx, internet)]);
        assert_eq!(records[0].bytes(), &frame[256..256 + 128]);
    }

    #[test]
    fn a_drop_filter_takes_drops_only_at_the_drop() {
        let hub = TraceHub::new(1);
        let mut worker = traced_worker(&hub);
        let backbone = port(&worker, "backbone");
        // Frame 0 of tunnel-reject comes from an unknown VTEP.
        let (reject, reject_len) = fixture_frame("tunnel-reject", 0);
        let (ingress, ingress_len) = fixture_frame("ingress-1to1", 0);
        let session = start(&hub, r#"{"drop":"unknown_vtep"}"#);
        worker.on_poll();
        let dropped = Verdict::Drop(DropReason::UnknownVtep);
        assert_eq!(
            run_batch_on(&mut worker, &reject, reject_len, backbone),
            dropped
        );
        run_batch(&mut worker, &ingress, ingress_len);
        let records = taken(&session);
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(
            (records[0].point, records[0].port, records[0].verdict),
            (Point::Drop, backbone, dropped)
        );
        assert_eq!(
            records[0].comment(&["internet", "backbone"]),
            "drop unknown_vtep port backbone queue 3"
        );
        // Another reason does not match.
        let other = start(&hub, r#"{"drop":"wrong_vni"}"#);
        worker.on_poll();
        run_batch_on(&mut worker, &reject, reject_len, backbone);
        assert!(taken(&other).is_empty());
    }

    #[test]
    fn a_full_ring_loses_records_and_counts_them() {
        let hub = TraceHub::new(1);
        let mut worker = traced_worker(&hub);
        let (frame, len) = fixture_frame("ingress-1to1", 0);
        let session = start(&hub, "{}");
        worker.on_poll();
        // 8 records, 2 per frame: the fifth frame finds none.
        for _ in 0..5 {
            assert!(matches!(
                run_batch(&mut worker, &frame, len),
                Verdict::Tx(_)
            ));
        }
        assert_eq!(session.lanes[0].full.len(), 8);
        assert_eq!(session.lost(), 2);
    }
}
