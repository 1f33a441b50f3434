//! The anycast EIP data plane's packet pipeline, as a library with no I/O.
//!
//! Everything here is a pure function of byte buffers, a [`tables::Tables`] snapshot
//! and a caller-supplied clock. The AF_XDP workers, the pcap replay tool, the tests
//! and the benchmarks all drive the same [`pipeline::Pipeline::process`].

#![forbid(unsafe_code)]

pub mod bgp_spec;
pub mod check_spec;
pub mod counters;
pub mod flow;
pub mod frame;
pub mod maglev;
pub mod pipeline;
pub mod protect;
pub mod swap;
pub mod tables;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod wire;

pub use counters::{Counters, DropReason};
pub use frame::{Frame, PortId, Verdict};
pub use pipeline::{Pipeline, Timestamp};
pub use tables::Tables;
