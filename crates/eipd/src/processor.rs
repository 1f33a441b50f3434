//! The production packet processor: what every AF_XDP worker runs on each batch.
//!
//! It is the pipeline plus the worker's side of the table swap and of the
//! publication of counters and batch latencies. It implements the driver's
//! [`PacketProcessor`], but nothing in it needs a NIC, so the tests below drive it
//! with plain buffers, without root.

use eip_afxdp::PacketProcessor;
use eip_control::metrics::LatencySlot;
use eip_dataplane::counters::Counters;
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
}

impl PipelineWorker {
    pub fn new(tables: Subscriber<Tables>, published: Arc<Published>) -> PipelineWorker {
        PipelineWorker {
            pipeline: Pipeline::default(),
            tables,
            published,
            latency: LatencySlot::default(),
        }
    }
}

impl PacketProcessor for PipelineWorker {
    fn on_poll(&mut self) {
        self.tables.refresh();
    }

    fn process_batch(&mut self, now_ns: u64, frames: &mut [Frame<'_>], verdicts: &mut [Verdict]) {
        let start = Instant::now();
        self.pipeline
            .process(Timestamp(now_ns), self.tables.current(), frames, verdicts);
        // One clock pair per batch; `saturating_record` never allocates.
        let ns = start.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        self.latency.hist.saturating_record(ns.max(1));
        self.latency.sum_ns = self.latency.sum_ns.wrapping_add(ns);
    }

    fn on_publish(&mut self) {
        // Never wait for the reader: skip this publication if it holds the lock.
        if let Ok(mut c) = self.published.counters.try_lock() {
            c.copy_from(self.pipeline.counters());
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
    use eip_control::pcap::CaptureReader;
    use eip_dataplane::counters::Event;
    use eip_dataplane::swap;
    use std::path::Path;

    fn fixtures() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../pcap-fixtures"))
    }

    fn tables(version: u64) -> Arc<Tables> {
        let (spec, _) = eip_control::config::load(&fixtures().join("pop.toml")).unwrap();
        Arc::new(Tables::build(&spec, version).unwrap())
    }

    /// The first frame of the 1:1 ingress fixture, in a buffer with headroom.
    fn ingress_frame() -> Vec<u8> {
        let file = std::fs::File::open(fixtures().join("ingress-1to1/input.pcap")).unwrap();
        let records = CaptureReader::new(file).unwrap().read_all().unwrap();
        let mut buf = vec![0u8; 256 + 2048];
        let data = &records[0].data;
        buf[256..256 + data.len()].copy_from_slice(data);
        buf.truncate(256 + data.len() + 512);
        buf
    }

    fn run_batch(worker: &mut PipelineWorker, template: &[u8], len: usize) -> Verdict {
        let mut buf = template.to_vec();
        let internet = worker.tables.current().internet_port;
        let mut frames = [Frame::new(&mut buf, 256, len, internet)];
        let mut verdicts = [Verdict::ToKernel];
        worker.process_batch(1, &mut frames, &mut verdicts);
        verdicts[0]
    }

    #[test]
    fn forwards_publishes_and_adopts_new_tables_at_a_poll() {
        let (mut publisher, mut subscribers) = swap::channel(tables(1), 1);
        let published = Arc::new(Published::default());
        let mut worker = PipelineWorker::new(subscribers.pop().unwrap(), Arc::clone(&published));
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
        worker.on_publish();
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
        worker.on_publish();
        assert_eq!(sum_counters(&[published]).table_version, 2);
    }
}
