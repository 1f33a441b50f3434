//! Packet trace, the parts that need no worker: the filter compiled for the
//! workers ([`Matcher`]), the record a worker fills ([`TraceRecord`]), and the
//! pcapng file the collector writes ([`TraceFile`]).
//!
//! The request is [`crate::api::TraceRequest`]; the daemon plugs its collector
//! into the control plane as a [`crate::state::TraceService`]. The worker side
//! and the collector live in `eipd` (`crates/eipd/src/trace/`).
//!
//! What a trace takes, per frame a worker handles:
//! - without a drop criterion: a frame whose headers match as it arrives, or (if
//!   transmitted) as it leaves, is recorded at `rx` (its bytes as received, with
//!   the verdict in the comment) and at `tx` or `drop` (its bytes then);
//! - with a drop criterion: a frame dropped for that reason (or any) whose headers
//!   match, at `drop` only.

mod file;
mod filter;
mod record;

pub use file::{TraceFile, WallClock};
pub use filter::Matcher;
pub use record::{Point, TraceRecord, MAX_SNAP};
