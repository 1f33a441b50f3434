//! The pcap driver: runs the production pipeline over recorded frames.
//!
//! Frames are copied into buffers laid out like AF_XDP UMEM chunks (headroom in
//! front), processed in batches exactly as a worker does, and every transmitted
//! frame is written to `<output-dir>/<port-name>.pcap` with its input timestamp.

use crate::pcap::{PcapError, PcapReader, PcapWriter};
use arrayvec::ArrayVec;
use eip_dataplane::{Counters, Frame, Pipeline, PortId, Tables, Timestamp, Verdict};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Bytes in front of each frame, as the AF_XDP driver leaves them.
pub const HEADROOM: usize = 256;
/// Largest frame replayed (jumbo) plus room behind it for ICMP quotes.
pub const BUFFER_SIZE: usize = HEADROOM + 9216 + 256;
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
        source: PcapError,
    },
    #[error("cannot write {path}: {source}")]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("record {index} has {len} bytes; at most 9216 are replayed")]
    Oversize { index: u64, len: usize },
}

/// What a replay did.
#[derive(Debug, Clone)]
pub struct ReplayOutcome {
    pub counters: Counters,
    /// Frames written per port, in port order.
    pub written: Vec<u64>,
    pub frames: u64,
}

/// Replays frames from `input`, all arriving on `input_port`, handing every
/// transmitted frame to `sink(port, timestamp_ns, bytes)`.
pub fn replay_stream<R: Read>(
    tables: &Tables,
    input: PcapReader<R>,
    input_port: PortId,
    batch: usize,
    mut sink: impl FnMut(PortId, u64, &[u8]) -> std::io::Result<()>,
) -> Result<ReplayOutcome, ReplayStepError> {
    let batch = batch.clamp(1, MAX_BATCH);
    let mut input = input;
    let mut pipeline = Pipeline::default();
    let mut buffers: Vec<Vec<u8>> = (0..batch).map(|_| vec![0u8; BUFFER_SIZE]).collect();
    let mut lens = vec![0usize; batch];
    let mut stamps = vec![0u64; batch];
    let mut verdicts = vec![Verdict::ToKernel; batch];
    let mut record = Vec::with_capacity(2048);
    let mut written = vec![0u64; tables.ports.len()];
    let mut frames_total = 0u64;
    loop {
        let mut n = 0;
        while n < batch {
            match input
                .next_into(&mut record)
                .map_err(ReplayStepError::Input)?
            {
                None => break,
                Some(ts) => {
                    if record.len() > 9216 {
                        return Err(ReplayStepError::Oversize {
                            index: frames_total,
                            len: record.len(),
                        });
                    }
                    buffers[n][HEADROOM..HEADROOM + record.len()].copy_from_slice(&record);
                    lens[n] = record.len();
                    stamps[n] = ts;
                    n += 1;
                    frames_total += 1;
                }
            }
        }
        if n == 0 {
            break;
        }
        let now = Timestamp(stamps[n - 1]);
        let mut frames: ArrayVec<Frame<'_>, MAX_BATCH> = buffers[..n]
            .iter_mut()
            .zip(&lens)
            .map(|(b, &len)| Frame::new(b, HEADROOM, len, input_port))
            .collect();
        pipeline.process(now, tables, &mut frames, &mut verdicts[..n]);
        for (i, frame) in frames.iter().enumerate() {
            if let Verdict::Tx(port) = verdicts[i] {
                sink(port, stamps[i], frame.data()).map_err(ReplayStepError::Output)?;
                written[port as usize] += 1;
            }
        }
    }
    Ok(ReplayOutcome {
        counters: pipeline.counters().clone(),
        written,
        frames: frames_total,
    })
}

/// Failure inside [`replay_stream`], before file names are attached.
#[derive(Debug, thiserror::Error)]
pub enum ReplayStepError {
    #[error(transparent)]
    Input(PcapError),
    #[error(transparent)]
    Output(std::io::Error),
    #[error("record {index} has {len} bytes; at most 9216 are replayed")]
    Oversize { index: u64, len: usize },
}

/// Replays `input` and writes `<output_dir>/<port>.pcap` for every port (empty files
/// for ports nothing was sent on, so a run's outputs are always the same set).
pub fn replay_files(
    tables: &Tables,
    input: &Path,
    output_dir: &Path,
    input_port: PortId,
    batch: usize,
) -> Result<ReplayOutcome, ReplayError> {
    let input_err = |source| ReplayError::Input {
        path: input.to_path_buf(),
        source,
    };
    let file = File::open(input).map_err(|e| input_err(PcapError::Io(e)))?;
    let reader = PcapReader::new(file).map_err(input_err)?;
    std::fs::create_dir_all(output_dir).map_err(|source| ReplayError::Output {
        path: output_dir.to_path_buf(),
        source,
    })?;
    let paths: Vec<PathBuf> = tables
        .ports
        .iter()
        .map(|p| output_dir.join(format!("{}.pcap", p.name)))
        .collect();
    let mut writers = Vec::with_capacity(paths.len());
    for path in &paths {
        let w = File::create(path)
            .and_then(PcapWriter::new)
            .map_err(|source| ReplayError::Output {
                path: path.clone(),
                source,
            })?;
        writers.push(w);
    }
    let mut failed_port = 0usize;
    let outcome = replay_stream(tables, reader, input_port, batch, |port, ts, data| {
        failed_port = port as usize;
        writers[port as usize].write(ts, data)
    })
    .map_err(|e| match e {
        ReplayStepError::Input(source) => input_err(source),
        ReplayStepError::Output(source) => ReplayError::Output {
            path: paths[failed_port].clone(),
            source,
        },
        ReplayStepError::Oversize { index, len } => ReplayError::Oversize { index, len },
    })?;
    for (w, path) in writers.into_iter().zip(&paths) {
        w.finish().map_err(|source| ReplayError::Output {
            path: path.clone(),
            source,
        })?;
    }
    Ok(outcome)
}
