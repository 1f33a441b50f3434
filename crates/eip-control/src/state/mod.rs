//! The control plane's source of truth: the POP description in force, its table
//! version, and the one place that changes them.
//!
//! A change (one op, a transaction, or the prober's path states) goes through
//! [`ControlPlane`]'s single writer:
//!
//! 1. clone the spec and edit the clone (an op naming something that does not
//!    exist stops here);
//! 2. `Tables::build(&new, version + 1)`: the full validation, with the table
//!    builder's messages;
//! 3. save `{version, spec}` to the state file atomically ([`StateFile::save`]);
//! 4. hand the tables to the workers through a [`TableSink`] and wait until every
//!    one forwards with them;
//! 5. make the new spec and tables the ones queries see, and reply.
//!
//! A failure in steps 1-3 changes nothing: not the spec, not the version, not the
//! file. Step 4 can time out after the tables were handed over; the change is then
//! saved and published (a worker that is slow to pick it up will), the reply says
//! `timeout` with the new version and the lagging workers. Rolling back instead
//! would publish yet another snapshot to the same stuck worker.
//!
//! Saving before publishing means a crash between the two restarts the daemon
//! with the new state, which the operator was about to be told about anyway; the
//! other order could lose a change that workers had already applied.
//!
//! Queries read an `Arc` of the current [`Snapshot`] and never wait for the writer.
//!
//! The parts: `store` (the state file, and booting from it or from the
//! configuration), `plugins` (what the daemon plugs in: where tables go, where
//! counters, next hops and path health come from, who runs packet traces),
//! `writer` (the single writer), `queries` (the read side, and `trace`, which
//! changes no state) and `edits` (what each op does to a spec).

mod diff;
mod edits;
mod journal;
mod plugins;
mod queries;
mod reload;
mod store;
#[cfg(test)]
mod testkit;
mod writer;

pub use diff::{Entries, SpecDiff};
pub use plugins::{HealthSource, Resolver, SinkError, StatsSource, TableSink, TraceService};
pub use store::{Boot, Origin, StartFrom, StateDoc, StateError, StateFile, DEFAULT_STATE_FILE};
pub use writer::{ControlPlane, Snapshot, DEFAULT_ACK_TIMEOUT, DEFAULT_COMPACT_AT};
