//! The control plane's source of truth: the POP description in force (the
//! operator's intent), its table version, the observed state the tables are
//! built with (path health, next-hop MACs), and the one place that changes them.
//!
//! An operator change (one op, a transaction, a reload) goes through
//! [`ControlPlane`]'s single writer:
//!
//! 1. clone the spec and edit the clone (an op naming something that does not
//!    exist stops here), refuse more EIPs than `max_eips`;
//! 2. build the tables (version + 1, next generation) with the paths in their
//!    observed states: the full validation, with the table builder's messages;
//! 3. append the change to the journal and fsync it ([`journal`]);
//! 4. hand the tables to the workers through a [`TableSink`] and wait until every
//!    one forwards with them;
//! 5. make the new spec and tables the ones queries see, and reply; once the
//!    journal is large, compact it into the state file in the background.
//!
//! A failure in steps 1-3 changes nothing: not the spec, not the version, not the
//! files. Step 4 can time out after the tables were handed over; the change is
//! then journaled and published (a worker that is slow to pick it up will), the
//! reply says `timeout` with the new version and the lagging workers. Rolling
//! back instead would publish yet another snapshot to the same stuck worker. If
//! the sink refuses the tables, the journal is cut back to before the change.
//!
//! Journaling before publishing means a crash between the two restarts the
//! daemon with the new state, which the operator was about to be told about
//! anyway; the other order could lose a change that workers had already applied.
//!
//! Observed changes (the prober's [`ControlPlane::set_path_health`], a next-hop
//! MAC through [`ControlPlane::refresh`]) are not the operator's: they build a
//! new tables generation with the same version, write nothing to disk, and
//! work on a full disk. A path's saved `state` is its administrative state only
//! (`up` = enabled, `disabled`); a `down` in an older state file or a
//! configuration reads as enabled.
//!
//! Queries read an `Arc` of the current [`Snapshot`] and never wait for the writer.
//!
//! The parts: `store` (the state file, and booting from it and its journal or
//! from the configuration), `journal` (the append-only record of changes),
//! `plugins` (what the daemon plugs in: where tables go, where counters, next
//! hops and path health come from, who runs packet traces), `writer` (the
//! single writer and the observed side), `queries` (the read side, and
//! `trace`, which changes no state) and `edits` (what each op does to a spec).

mod blackhole;
#[cfg(test)]
mod crash_tests;
mod delta;
mod diff;
mod edits;
mod journal;
mod plugins;
mod queries;
mod reload;
mod snapshot;
mod store;
#[cfg(test)]
mod testkit;
mod writer;

pub use diff::{BgpDiff, Entries, SectionChange, SpecDiff};
pub use plugins::{
    BgpService, HealthSource, Resolver, SinkError, StatsSource, TableSink, TraceService, XdpAclHits,
};
pub use store::{
    Boot, Loaded, Origin, StartFrom, StateDoc, StateError, StateFile, DEFAULT_STATE_FILE,
};
pub use writer::{ControlPlane, Snapshot, DEFAULT_ACK_TIMEOUT, DEFAULT_COMPACT_AT};
