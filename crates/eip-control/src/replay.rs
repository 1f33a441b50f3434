//! The capture driver: runs the production pipeline over recorded frames.
//!
//! Frames (from a pcap or pcapng file) are copied into buffers laid out like AF_XDP
//! UMEM chunks (headroom in front), processed in batches exactly as a worker does,
//! and every transmitted frame is written to `<output-dir>/<port-name>.pcap` with its
//! input timestamp. Optionally, every frame the pipeline dropped is written as it
//! arrived to a pcapng file, its drop reason as the packet's comment.

use crate::pcap::{CaptureError, CaptureReader, PcapNgWriter, PcapWriter};
use arrayvec::ArrayVec;
use eip_dataplane::{Counters, DropReason, Frame, Pipeline, PortId, Tables, Timestamp, Verdict};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Bytes in front of each frame, as the AF_XDP driver leaves them.
pub const HEADROOM: usize = 256;
/// Largest frame replayed (jumbo).
pub const MAX_FRAME: usize = 9216;
/// Buffer per frame: headroom, the largest frame, and room behind it for ICMP quotes.
pub const BUFFER_SIZE: usize = HEADROOM + MAX_FRAME + 256;
/// Frames per batch, as a worker pulls them.
pub const DEFAULT_BATCH: usize = 64;
/// Largest batch: frames of a batch live in a fixed array, not on the heap.
pub const MAX_BATCH: usize = 256;

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {source}")]
    Input {
        path: PathBuf,
        #[source]
        source: CaptureError,
    },
    #[error("cannot write {path}: {source}")]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot replay {path}: record {index} has {len} bytes; at most {MAX_FRAME} are replayed"
    )]
    Oversize {
        path: PathBuf,
        index: u64,
        len: usize,
    },
}

/// What a replay did.
#[derive(Debug, Clone)]
pub struct ReplayOutcome {
    pub counters: Counters,
    /// Frames written per port, in port order.
    pub written: Vec<u64>,
    /// Frames read from the input.
    pub frames: u64,
    /// Frames whose verdict was a drop (handed to [`ReplaySink::dropped`]). Fewer
    /// than the drop counters when the pipeline answered a dropped frame with an
    /// ICMP error: that frame is counted as dropped but transmitted as the error.
    pub dropped: u64,
}

/// Where a replay's frames go.
pub trait ReplaySink {
    type Error;

    /// A frame the pipeline transmitted on `port`, as it left (rewritten).
    ///
    /// # Errors
    /// The sink's own; it stops the replay.
    fn transmit(
        &mut self,
        port: PortId,
        timestamp_ns: u64,
        frame: &[u8],
    ) -> Result<(), Self::Error>;

    /// A frame the pipeline dropped, as it arrived. Ignored unless overridden.
    ///
    /// # Errors
    /// The sink's own; it stops the replay.
    fn dropped(
        &mut self,
        reason: DropReason,
        timestamp_ns: u64,
        frame: &[u8],
    ) -> Result<(), Self::Error> {
        let _ = (reason, timestamp_ns, frame);
        Ok(())
    }
}

/// Failure inside [`replay_stream`], before file names are attached.
#[derive(Debug, thiserror::Error)]
pub enum ReplayStepError<E> {
    #[error(transparent)]
    Input(CaptureError),
    #[error(transparent)]
    Output(E),
    #[error("record {index} has {len} bytes; at most {MAX_FRAME} are replayed")]
    Oversize { index: u64, len: usize },
}

/// Replays frames from `input`, all arriving on `input_port`, handing every
/// transmitted frame and every dropped frame to `sink`.
///
/// Each batch slot keeps the frame as read (it is also the read buffer), so a
/// dropped frame is handed over as it arrived, not as the pipeline left it. The
/// buffers are allocated once: `batch` UMEM-like buffers and `batch` read buffers
/// that grow to the largest frame read.
///
/// # Errors
/// When the input cannot be read, holds a frame over [`MAX_FRAME`] bytes, or the
/// sink fails.
pub fn replay_stream<R: Read, S: ReplaySink>(
    tables: &Tables,
    mut input: CaptureReader<R>,
    input_port: PortId,
    batch: usize,
    sink: &mut S,
) -> Result<ReplayOutcome, ReplayStepError<S::Error>> {
    let batch = batch.clamp(1, MAX_BATCH);
    let mut pipeline = Pipeline::default();
    let mut buffers: Vec<Vec<u8>> = (0..batch).map(|_| vec![0u8; BUFFER_SIZE]).collect();
    let mut arrived: Vec<Vec<u8>> = (0..batch).map(|_| Vec::with_capacity(2048)).collect();
    let mut stamps = vec![0u64; batch];
    let mut verdicts = vec![Verdict::ToKernel; batch];
    let mut written = vec![0u64; tables.ports.len()];
    let mut frames_total = 0u64;
    let mut dropped = 0u64;
    loop {
        let mut n = 0;
        while n < batch {
            let Some(ts) = input
                .next_into(&mut arrived[n])
                .map_err(ReplayStepError::Input)?
            else {
                break;
            };
            let record = &arrived[n];
            if record.len() > MAX_FRAME {
                return Err(ReplayStepError::Oversize {
                    index: frames_total,
                    len: record.len(),
                });
            }
            buffers[n][HEADROOM..HEADROOM + record.len()].copy_from_slice(record);
            stamps[n] = ts;
            n += 1;
            frames_total += 1;
        }
        if n == 0 {
            break;
        }
        let now = Timestamp(stamps[n - 1]);
        let mut frames: ArrayVec<Frame<'_>, MAX_BATCH> = buffers[..n]
            .iter_mut()
            .zip(&arrived)
            .map(|(b, record)| Frame::new(b, HEADROOM, record.len(), input_port))
            .collect();
        pipeline.process(now, tables, &mut frames, &mut verdicts[..n]);
        for (i, frame) in frames.iter().enumerate() {
            match verdicts[i] {
                Verdict::Tx(port) => {
                    sink.transmit(port, stamps[i], frame.data())
                        .map_err(ReplayStepError::Output)?;
                    written[port as usize] += 1;
                }
                Verdict::Drop(reason) => {
                    sink.dropped(reason, stamps[i], &arrived[i])
                        .map_err(ReplayStepError::Output)?;
                    dropped += 1;
                }
                Verdict::ToKernel | Verdict::ToControl => {}
            }
        }
    }
    Ok(ReplayOutcome {
        counters: pipeline.counters().clone(),
        written,
        frames: frames_total,
        dropped,
    })
}

/// The files of [`replay_files`]: one classic pcap per port, and the dropped
/// frames' pcapng when asked for.
struct FileSink {
    ports: Vec<(PathBuf, PcapWriter<File>)>,
    dropped: Option<(PathBuf, PcapNgWriter<File>)>,
}

impl ReplaySink for FileSink {
    type Error = ReplayError;

    fn transmit(
        &mut self,
        port: PortId,
        timestamp_ns: u64,
        frame: &[u8],
    ) -> Result<(), ReplayError> {
        let (path, writer) = &mut self.ports[port as usize];
        writer
            .write(timestamp_ns, frame)
            .map_err(|source| output_error(path, source))
    }

    fn dropped(
        &mut self,
        reason: DropReason,
        timestamp_ns: u64,
        frame: &[u8],
    ) -> Result<(), ReplayError> {
        let Some((path, writer)) = &mut self.dropped else {
            return Ok(());
        };
        writer
            .write(timestamp_ns, frame, reason.label())
            .map_err(|source| output_error(path, source))
    }
}

fn output_error(path: &Path, source: std::io::Error) -> ReplayError {
    ReplayError::Output {
        path: path.to_path_buf(),
        source,
    }
}

/// Replays `input` (pcap or pcapng) and writes `<output_dir>/<port>.pcap` for every
/// port (empty files for ports nothing was sent on, so a run's outputs are always
/// the same set), and, when `dropped` names a file, every dropped frame as it
/// arrived into that pcapng file with its drop reason (the counter's name, e.g.
/// `unknown_vtep`) as the packet comment.
///
/// # Errors
/// A [`ReplayError`] naming the file that could not be read or written.
pub fn replay_files(
    tables: &Tables,
    input: &Path,
    output_dir: &Path,
    input_port: PortId,
    batch: usize,
    dropped: Option<&Path>,
) -> Result<ReplayOutcome, ReplayError> {
    let input_err = |source| ReplayError::Input {
        path: input.to_path_buf(),
        source,
    };
    let file = File::open(input).map_err(|e| input_err(CaptureError::Io(e)))?;
    let reader = CaptureReader::new(file).map_err(input_err)?;
    std::fs::create_dir_all(output_dir).map_err(|e| output_error(output_dir, e))?;
    let mut sink = FileSink {
        ports: Vec::with_capacity(tables.ports.len()),
        dropped: None,
    };
    for p in &tables.ports {
        let path = output_dir.join(format!("{}.pcap", p.name));
        let writer = File::create(&path)
            .and_then(PcapWriter::new)
            .map_err(|e| output_error(&path, e))?;
        sink.ports.push((path, writer));
    }
    if let Some(path) = dropped {
        let interface = &tables.ports[input_port as usize].name;
        let writer = File::create(path)
            .and_then(|f| PcapNgWriter::new(f, interface))
            .map_err(|e| output_error(path, e))?;
        sink.dropped = Some((path.to_path_buf(), writer));
    }
    let outcome =
        replay_stream(tables, reader, input_port, batch, &mut sink).map_err(|e| match e {
            ReplayStepError::Input(source) => input_err(source),
            ReplayStepError::Output(e) => e,
            ReplayStepError::Oversize { index, len } => ReplayError::Oversize {
                path: input.to_path_buf(),
                index,
                len,
            },
        })?;
    for (path, writer) in sink.ports {
        writer.finish().map_err(|e| output_error(&path, e))?;
    }
    if let Some((path, writer)) = sink.dropped {
        writer.finish().map_err(|e| output_error(&path, e))?;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::pcap::Record;
    use eip_dataplane::testkit::host::TempDir;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pcap-fixtures")
    }

    fn fixture_tables() -> Tables {
        config::load(&fixtures().join("pop.toml"))
            .expect("pop.toml loads")
            .1
    }

    #[test]
    fn input_errors_name_the_file_and_what_is_wrong() {
        let tables = fixture_tables();
        let dir = TempDir::new("replay-bad-input");
        let notes = dir.0.join("notes.txt");
        std::fs::write(&notes, "these are not frames\n").unwrap();
        let out = dir.0.join("out");
        let e = replay_files(&tables, &notes, &out, 0, DEFAULT_BATCH, None).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("cannot read {}: ", notes.display())),
            "{text}"
        );
        assert!(
            text.contains("not a pcap or pcapng file: it starts with 74686573"),
            "{text}"
        );
        assert!(!out.exists(), "no outputs for an input that cannot be read");

        let missing = dir.0.join("missing.pcapng");
        let e = replay_files(&tables, &missing, &out, 0, DEFAULT_BATCH, None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("cannot read {}: I/O error", missing.display())),
            "{e}"
        );
    }

    /// Collects what a replay hands over.
    #[derive(Default)]
    struct Collect {
        transmitted: Vec<(PortId, Record)>,
        dropped: Vec<(DropReason, Record)>,
    }

    impl ReplaySink for Collect {
        type Error = std::convert::Infallible;

        fn transmit(
            &mut self,
            port: PortId,
            timestamp_ns: u64,
            frame: &[u8],
        ) -> Result<(), Self::Error> {
            let record = Record {
                timestamp_ns,
                data: frame.to_vec(),
            };
            self.transmitted.push((port, record));
            Ok(())
        }

        fn dropped(
            &mut self,
            reason: DropReason,
            timestamp_ns: u64,
            frame: &[u8],
        ) -> Result<(), Self::Error> {
            let record = Record {
                timestamp_ns,
                data: frame.to_vec(),
            };
            self.dropped.push((reason, record));
            Ok(())
        }
    }

    #[test]
    fn dropped_frames_are_handed_over_as_they_arrived() {
        let tables = fixture_tables();
        let backbone = tables.port_by_name("backbone").unwrap();
        // ttl-return: decapsulated frames, two dropped for TTL, one forwarded.
        let input = fixtures().join("ttl-return/input.pcap");
        let arrived = CaptureReader::new(File::open(&input).unwrap())
            .unwrap()
            .read_all()
            .unwrap();
        for batch in [1, 2, DEFAULT_BATCH] {
            let reader = CaptureReader::new(File::open(&input).unwrap()).unwrap();
            let mut sink = Collect::default();
            let outcome = replay_stream(&tables, reader, backbone, batch, &mut sink).unwrap();
            assert_eq!(outcome.frames, 3);
            assert_eq!(outcome.dropped, 2);
            assert_eq!(sink.transmitted.len(), 1);
            assert_eq!(sink.dropped.len(), 2);
            let mut rest = arrived.iter();
            for (reason, record) in &sink.dropped {
                assert_eq!(*reason, DropReason::TtlExpired);
                assert!(
                    rest.any(|a| a == record),
                    "batch {batch}: a dropped frame is not an input frame, in order"
                );
            }
            let (_, sent) = &sink.transmitted[0];
            assert!(
                !arrived.iter().any(|a| a.data == sent.data),
                "the forwarded frame was rewritten"
            );
        }
    }
}
