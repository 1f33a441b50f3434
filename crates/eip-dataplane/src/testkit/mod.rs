//! Test support shared by this crate's unit tests, the other crates' integration
//! tests and the benchmark (feature `testkit`): one place that builds POP
//! descriptions ([`pop`]) and frames ([`frames`]), runs a frame through the
//! pipeline ([`run_one`]), and the few host facts tests need ([`host`]).
//!
//! Nothing here is used by production code.

pub mod frames;
pub mod host;
pub mod pop;

use crate::counters::Counters;
use crate::frame::{Frame, PortId, Verdict};
use crate::pipeline::{Pipeline, Timestamp};
use crate::tables::Tables;

/// Headroom in front of a frame [`run_one`] processes, as a UMEM chunk has it.
pub const HEADROOM: usize = 256;
/// Size of the buffer [`run_one`] puts a frame in, as a UMEM chunk.
pub const BUFFER_LEN: usize = 2048;

/// Runs one frame, arrived on `port`, through a fresh pipeline at time 1 s.
/// Returns the verdict, the frame as the pipeline left it, and the counters.
///
/// # Panics
/// If `input` does not fit in a [`BUFFER_LEN`] buffer after [`HEADROOM`].
pub fn run_one(tables: &Tables, input: &[u8], port: PortId) -> (Verdict, Vec<u8>, Counters) {
    let mut buf = vec![0u8; BUFFER_LEN];
    buf[HEADROOM..HEADROOM + input.len()].copy_from_slice(input);
    let mut frames = [Frame::new(&mut buf, HEADROOM, input.len(), port)];
    let mut verdicts = [Verdict::ToKernel];
    let mut pipeline = Pipeline::default();
    pipeline.process(Timestamp(1_000_000_000), tables, &mut frames, &mut verdicts);
    (
        verdicts[0],
        frames[0].data().to_vec(),
        pipeline.counters().clone(),
    )
}
