//! [`Tracer`]: runs one trace at a time for the control socket. It creates the
//! file, puts a session in force, drains the workers' lanes into the file until
//! `count` frames or `seconds`, withdraws the session, closes the file and
//! reports. It runs on the socket thread that carries the request.

use super::{Session, TraceHub};
use eip_control::api::{ApiError, ErrorCode, TraceEnd, TraceRequest, TraceSummary};
use eip_control::state::TraceService;
use eip_control::trace::{Matcher, TraceFile, TraceRecord, WallClock};
use eip_dataplane::Tables;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::thread;
use std::time::{Duration, Instant};

/// Records per lane: enough for a burst at both points, bounded in memory
/// (at most 1024 × snap bytes per worker).
const MIN_RECORDS: usize = 64;
const MAX_RECORDS: usize = 1024;

/// How long the collector sleeps when the lanes are empty.
const IDLE: Duration = Duration::from_millis(2);

/// How long to wait for the workers to let go of a session at the end.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(1);

/// The daemon's trace service.
#[derive(Debug)]
pub struct Tracer {
    hub: Arc<TraceHub>,
    /// Frames per worker batch (the driver's batch size).
    batch: usize,
    /// Zero of the workers' clock.
    epoch: Instant,
    /// The daemon is stopping: end the trace now.
    stop: Arc<AtomicBool>,
    /// Held while a trace runs: one at a time.
    running: Mutex<()>,
}

impl Tracer {
    pub fn new(hub: Arc<TraceHub>, batch: usize, epoch: Instant, stop: Arc<AtomicBool>) -> Self {
        Tracer {
            hub,
            batch: batch.max(1),
            epoch,
            stop,
            running: Mutex::new(()),
        }
    }

    /// Runs a trace into `out` (already created) until its end.
    fn run(
        &self,
        request: &TraceRequest,
        tables: &Tables,
        out: File,
    ) -> Result<TraceSummary, ApiError> {
        let started = Instant::now();
        let storage = |e: io::Error, written: u64| {
            ApiError::new(
                ErrorCode::Storage,
                format!(
                    "trace: writing {} failed after {written} frames: {e}",
                    request.file.display()
                ),
            )
        };
        let ports = tables.ports.iter().map(|p| p.name.clone()).collect();
        let mut file =
            TraceFile::new(out, ports, WallClock::now(self.epoch)).map_err(|e| storage(e, 0))?;
        let records = usize::try_from(request.count.saturating_mul(2))
            .unwrap_or(MAX_RECORDS)
            .clamp(MIN_RECORDS, MAX_RECORDS);
        let session = Arc::new(Session::new(
            Matcher::new(&request.filter),
            self.hub.lanes(),
            records,
            request.snap as usize,
            self.batch,
        ));
        self.hub.set(Some(Arc::clone(&session)));
        let deadline = started + Duration::from_secs(request.seconds);
        let mut drained: Vec<(usize, TraceRecord)> = Vec::with_capacity(records);
        let mut failure = None;
        let ended = loop {
            drain(&session, &mut drained);
            for (_, record) in &drained {
                if file.written() >= request.count {
                    break;
                }
                if let Err(e) = file.write(record) {
                    failure = Some(e);
                    break;
                }
            }
            give_back(&session, &mut drained);
            if failure.is_some() || file.written() >= request.count {
                break TraceEnd::Count;
            }
            if self.stop.load(Ordering::Relaxed) {
                break TraceEnd::Shutdown;
            }
            if Instant::now() >= deadline {
                break TraceEnd::Time;
            }
            thread::sleep(IDLE);
        };

        // Off: withdraw the session and wait until no worker uses it, so that
        // its records are freed here, not on a worker.
        let generation = self.hub.set(None);
        let until = Instant::now() + RELEASE_TIMEOUT;
        while !self.hub.all_adopted(generation) && Instant::now() < until {
            thread::sleep(IDLE);
        }
        let lost = session.lost();
        drop(session);

        let written = file.written();
        if let Some(e) = failure {
            return Err(storage(e, written));
        }
        file.finish().map_err(|e| storage(e, written))?;
        Ok(TraceSummary {
            file: request.file.clone(),
            written,
            lost,
            ended,
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }
}

impl TraceService for Tracer {
    fn trace(&self, request: &TraceRequest, tables: &Tables) -> Result<TraceSummary, ApiError> {
        request.validate()?;
        let _running =
            match self.running.try_lock() {
                Ok(guard) => guard,
                // A trace that panicked left nothing to undo but its file.
                Err(TryLockError::Poisoned(guard)) => guard.into_inner(),
                Err(TryLockError::WouldBlock) => return Err(ApiError::new(
                    ErrorCode::Busy,
                    "a trace is running already; one runs at a time, try again when it has ended",
                )),
            };
        // Owner-only, and never over an existing file or through a symlink: the
        // daemon runs as root.
        let out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&request.file)
            .map_err(|e| {
                ApiError::invalid(format!(
                    "trace: cannot create {}: {e}{}",
                    request.file.display(),
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        " (a trace never overwrites a file)"
                    } else {
                        ""
                    }
                ))
            })?;
        self.run(request, tables, out)
    }
}

/// Takes every filled record of every lane, oldest first across lanes (a
/// lane's own records are in order; ties keep rx before tx).
fn drain(session: &Session, into: &mut Vec<(usize, TraceRecord)>) {
    for (i, lane) in session.lanes.iter().enumerate() {
        while let Some(r) = lane.full.pop() {
            into.push((i, r));
        }
    }
    into.sort_by_key(|(_, r)| r.timestamp_ns);
}

/// Returns drained records to their lanes' free queues.
fn give_back(session: &Session, drained: &mut Vec<(usize, TraceRecord)>) {
    for (i, r) in drained.drain(..) {
        let _ = session.lanes[i].free.push(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::{PipelineWorker, Published};
    use crate::trace::WorkerTrace;
    use eip_afxdp::PacketProcessor;
    use eip_control::api::{Command, Request};
    use eip_control::pcap::CaptureReader;
    use eip_dataplane::testkit::host::TempDir;
    use eip_dataplane::{swap, Frame, Verdict};
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
    use pcap_file::pcapng::{Block, PcapNgReader};
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn fixtures() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../pcap-fixtures"))
    }

    fn tables() -> Arc<Tables> {
        let (spec, _) = eip_control::config::load(&fixtures().join("pop.toml")).unwrap();
        Arc::new(Tables::build(&spec, 1).unwrap())
    }

    /// A worker thread forwarding the ingress fixture's first frame in a loop,
    /// polling between batches, until `stop`.
    fn spawn_worker(
        hub: &Arc<TraceHub>,
        epoch: Instant,
        stop: &Arc<AtomicBool>,
    ) -> thread::JoinHandle<()> {
        let (hub, stop) = (Arc::clone(hub), Arc::clone(stop));
        thread::spawn(move || {
            let tables = tables();
            let internet = tables.internet_port;
            let (_publisher, mut subscribers) = swap::channel(tables, 1);
            let mut worker = PipelineWorker::new(
                subscribers.pop().unwrap(),
                Arc::new(Published::default()),
                WorkerTrace::new(hub, 0, 0),
            );
            let file = File::open(fixtures().join("ingress-1to1/input.pcap")).unwrap();
            let data = CaptureReader::new(file).unwrap().read_all().unwrap()[0]
                .data
                .clone();
            while !stop.load(Ordering::Relaxed) {
                worker.on_poll();
                let mut buf = vec![0u8; 256 + data.len() + 512];
                buf[256..256 + data.len()].copy_from_slice(&data);
                let mut frames = [Frame::new(&mut buf, 256, data.len(), internet)];
                let mut verdicts = [Verdict::ToKernel];
                let now = epoch.elapsed().as_nanos() as u64;
                worker.process_batch(now, &mut frames, &mut verdicts);
                thread::sleep(Duration::from_micros(200));
            }
        })
    }

    fn comments(path: &Path) -> Vec<(u32, String)> {
        let bytes = std::fs::read(path).unwrap();
        let mut reader = PcapNgReader::new(&bytes[..]).unwrap();
        let mut out = Vec::new();
        while let Some(block) = reader.next_block() {
            if let Block::EnhancedPacket(p) = block.unwrap() {
                let c = p.options.iter().find_map(|o| match o {
                    EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                    _ => None,
                });
                out.push((p.interface_id, c.unwrap_or_default()));
            }
        }
        out
    }

    #[test]
    fn a_trace_writes_count_frames_then_turns_off() {
        let dir = TempDir::new("trace-collector");
        let hub = TraceHub::new(1);
        let epoch = Instant::now();
        let (daemon_stop, worker_stop) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let tracer = Arc::new(Tracer::new(Arc::clone(&hub), 64, epoch, daemon_stop));
        let worker = spawn_worker(&hub, epoch, &worker_stop);
        let tables = tables();

        let mut request = TraceRequest::new(dir.path().join("t.pcapng"));
        request.count = 5;
        request.filter.eip = Some("192.0.2.10".parse().unwrap());
        // While one runs, another is refused as busy (and creates no file).
        {
            let _running = tracer.running.lock().unwrap();
            let mut second = request.clone();
            second.file = dir.path().join("second.pcapng");
            let e = tracer.trace(&second, &tables).unwrap_err();
            assert_eq!(e.code, ErrorCode::Busy, "{e}");
            assert!(!second.file.exists());
        }
        let summary = tracer.trace(&request, &tables).unwrap();
        assert_eq!(summary.written, 5);
        assert_eq!(summary.ended, TraceEnd::Count);
        worker_stop.store(true, Ordering::Relaxed);
        worker.join().unwrap();

        // Off at the end, and the session is gone.
        assert!(hub.session.lock().unwrap().is_none());
        let mode = std::fs::metadata(&request.file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let frames = comments(&request.file);
        assert_eq!(frames.len(), 5);
        // rx on internet (interface 0), tx on backbone (tx:backbone is 2 + 1).
        assert_eq!(
            frames[0],
            (
                0,
                "rx port internet queue 0 verdict tx port backbone".into()
            )
        );
        assert_eq!(frames[1], (3, "tx port backbone queue 0".into()));

        // The file is never overwritten; the path must be absolute.
        let e = tracer.trace(&request, &tables).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidValue);
        assert!(e.message.contains("never overwrites"), "{e}");
        request.file = "relative.pcapng".into();
        assert!(tracer.trace(&request, &tables).is_err());
        assert!(!Path::new("relative.pcapng").exists());
    }

    #[test]
    fn a_trace_ends_after_its_time_with_what_it_found() {
        let dir = TempDir::new("trace-time");
        let hub = TraceHub::new(1);
        let stop = Arc::new(AtomicBool::new(false));
        let tracer = Tracer::new(Arc::clone(&hub), 64, Instant::now(), stop);
        // No worker adopts it: nothing is written, the trace ends on time and
        // does not wait for the missing worker longer than the release timeout.
        let mut request = TraceRequest::new(dir.path().join("t.pcapng"));
        request.seconds = 1;
        let line = Request::new(Command::Trace(request.clone())).to_line();
        assert!(line.contains("\"cmd\":\"trace\""), "{line}");
        let started = Instant::now();
        let summary = tracer.trace(&request, &tables()).unwrap();
        assert_eq!((summary.written, summary.ended), (0, TraceEnd::Time));
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(comments(&request.file).is_empty());
    }
}
