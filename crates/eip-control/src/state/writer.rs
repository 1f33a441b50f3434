//! [`ControlPlane`]: the single writer that every change goes through (edit a
//! clone, build, journal, publish, wait, commit; see the [module docs](super)),
//! and the observed side (path health, next-hop MACs), which makes new table
//! generations but never a new version and never touches the disk.

use super::blackhole;
use super::delta::{eip_delta, with_small_parts};
use super::edits;
use super::journal::{EntryRef, Journal};
use super::plugins::{
    BgpService, HealthSource, Resolver, SinkError, StatsSource, TableSink, TraceService,
};
use super::store::{Boot, Resolved, StateFile};
use crate::api::{ApiError, Command, Data, ErrorCode, Op, Reply, Request};
use crate::health::Health;
use crate::report;
use eip_dataplane::tables::{PathId, PathState, PopSpec, TableDelta, Tables};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a change waits for every worker to switch, unless configured.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(2);

/// The journal is compacted into the state file once it holds this many bytes,
/// unless configured.
pub const DEFAULT_COMPACT_AT: u64 = 32 << 20;

/// The spec in force and the tables built from it.
#[derive(Debug)]
pub struct Snapshot {
    /// The operator's spec, as saved (a path's `state` is its administrative
    /// state: `up` for enabled, or `disabled`). Shared by the snapshots of
    /// observed changes, which do not change it.
    pub spec: Arc<PopSpec>,
    pub tables: Arc<Tables>,
    /// The state each path of `spec` is built with: `disabled` by the
    /// operator, else the observed health.
    pub path_states: Vec<PathState>,
    /// Path health as the prober last reported it, by path name (observed:
    /// never saved).
    pub observed: Arc<HashMap<String, Health>>,
    /// The operator's table version (what the spec's changes counted).
    version: u64,
    resolved: Resolved,
}

impl Snapshot {
    /// The operator's table version: every committed change of the spec adds
    /// one; observed changes (path health, next-hop MACs) do not.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The tables' generation: every snapshot handed to the workers adds one,
    /// observed changes included (what workers acknowledge).
    pub fn generation(&self) -> u64 {
        self.tables.generation
    }
}

/// What only the single writer touches.
struct Writer {
    sink: Box<dyn TableSink>,
    store: StateFile,
    journal: Arc<Mutex<Journal>>,
    ack_timeout: Duration,
    /// The refused-beyond limit on EIPs (the XDP filter maps' size).
    max_eips: Option<usize>,
    compact_at: u64,
    compacting: Arc<AtomicBool>,
    compaction: Option<JoinHandle<()>>,
    /// Service backends the checks measured down (observed, never saved):
    /// laid over every snapshot built (`backends`).
    backends_down: Vec<eip_dataplane::tables::BackendRef>,
}

/// Applies requests to the POP description; shared by the socket server's
/// threads (`Arc<ControlPlane>`). Changes are serialized; queries are not.
pub struct ControlPlane {
    writer: Mutex<Writer>,
    current: RwLock<Arc<Snapshot>>,
    pub(super) stats: Option<Arc<dyn StatsSource>>,
    pub(super) health: Option<Arc<dyn HealthSource>>,
    pub(super) tracer: Option<Arc<dyn TraceService>>,
    pub(super) bgp: Option<Arc<dyn BgpService>>,
    resolver: Option<Arc<dyn Resolver>>,
    /// What `reload` reads when the request names no file.
    pub(super) config_path: Option<PathBuf>,
    pub(super) started: Instant,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

/// Ignores lock poisoning: state is replaced only as a whole, at the end of a
/// change, so a panicking holder cannot leave it half-edited.
fn unpoison<G>(r: Result<G, PoisonError<G>>) -> G {
    r.unwrap_or_else(PoisonError::into_inner)
}

/// What a committed change writes to the journal.
#[derive(Clone, Copy)]
pub(super) enum Journaled<'a> {
    Ops(&'a [Op]),
    Spec(&'a PopSpec),
}

impl<'a> From<Journaled<'a>> for EntryRef<'a> {
    fn from(j: Journaled<'a>) -> EntryRef<'a> {
        match j {
            Journaled::Ops(ops) => EntryRef::Ops(ops),
            Journaled::Spec(spec) => EntryRef::Spec(spec),
        }
    }
}

impl ControlPlane {
    /// A control plane in force with `boot` (whose tables the workers already
    /// have), journaling to `store`'s journal and publishing to `sink`.
    pub fn new(store: StateFile, boot: Boot, sink: impl TableSink + 'static) -> Self {
        let path_states = boot.spec.paths.iter().map(|p| p.state).collect();
        let journal = Journal::new(store.journal_path());
        ControlPlane {
            writer: Mutex::new(Writer {
                sink: Box::new(sink),
                store,
                journal: Arc::new(Mutex::new(journal)),
                ack_timeout: DEFAULT_ACK_TIMEOUT,
                max_eips: None,
                compact_at: DEFAULT_COMPACT_AT,
                compacting: Arc::new(AtomicBool::new(false)),
                compaction: None,
                backends_down: Vec::new(),
            }),
            current: RwLock::new(Arc::new(Snapshot {
                version: boot.tables.version,
                spec: Arc::new(boot.spec),
                tables: boot.tables,
                path_states,
                observed: Arc::default(),
                resolved: boot.resolved,
            })),
            stats: None,
            health: None,
            tracer: None,
            bgp: None,
            resolver: None,
            config_path: None,
            started: Instant::now(),
        }
    }

    /// Counters for `stats` (without, `stats` replies `unavailable`).
    pub fn with_stats(mut self, stats: Arc<dyn StatsSource>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Prober snapshots for `show_paths`, and the measured health of a path
    /// the prober has not reported yet (without, such a path is `up`).
    pub fn with_health(mut self, health: Arc<dyn HealthSource>) -> Self {
        self.health = Some(health);
        self
    }

    /// BGP for `show_bgp` and `drain` (without, both reply `unavailable`).
    pub fn with_bgp(mut self, bgp: Arc<dyn BgpService>) -> Self {
        self.bgp = Some(bgp);
        self
    }

    /// Packet traces for `trace` (without, `trace` replies `unavailable`).
    pub fn with_trace(mut self, tracer: Arc<dyn TraceService>) -> Self {
        self.tracer = Some(tracer);
        self
    }

    /// Resolution of the spec before each build (give [`Boot::build`] the same).
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// How long a change waits for the workers (default [`DEFAULT_ACK_TIMEOUT`]).
    pub fn with_ack_timeout(mut self, timeout: Duration) -> Self {
        unpoison(self.writer.get_mut()).ack_timeout = timeout;
        self
    }

    /// Refuses any change that would leave more than `max` EIPs (the size the
    /// XDP filter maps were created with), before anything is applied.
    pub fn with_max_eips(mut self, max: usize) -> Self {
        unpoison(self.writer.get_mut()).max_eips = Some(max);
        self
    }

    /// Compacts the journal into the state file once it holds `bytes` bytes
    /// (default [`DEFAULT_COMPACT_AT`]).
    pub fn with_compaction_at(mut self, bytes: u64) -> Self {
        unpoison(self.writer.get_mut()).compact_at = bytes;
        self
    }

    /// Waits for a running compaction to finish (tests, shutdown).
    pub fn wait_for_compaction(&self) {
        let handle = unpoison(self.writer.lock()).compaction.take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// The spec and tables in force.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&*self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The operator's table version in force.
    pub fn version(&self) -> u64 {
        self.snapshot().version()
    }

    /// Answers one request.
    pub fn handle(&self, request: Request) -> Reply {
        let if_version = request.if_version;
        let blackhole_ok = request.blackhole_ok;
        match request.command {
            Command::Query(q) => self.query(q),
            Command::Change(op) => self.apply_with(&[op], if_version, false, blackhole_ok),
            Command::Transaction(ops) => self.apply_with(&ops, if_version, false, blackhole_ok),
            Command::Validate(ops) => self.apply_with(&ops, if_version, true, blackhole_ok),
            Command::Reload(r) => {
                self.reload_with(r.file.as_deref(), if_version, r.dry_run, blackhole_ok)
            }
            Command::Trace(t) => self.trace(&t),
            Command::Drain => self.drain(),
        }
    }

    /// Applies `ops` together (or, with `dry_run`, checks them).
    pub fn apply(&self, ops: &[Op], if_version: Option<u64>, dry_run: bool) -> Reply {
        self.apply_with(ops, if_version, dry_run, false)
    }

    /// [`apply`](Self::apply); with `blackhole_ok`, also a change that leaves a
    /// region that has EIPs with no usable path (else refused: `would_blackhole`).
    pub fn apply_with(
        &self,
        ops: &[Op],
        if_version: Option<u64>,
        dry_run: bool,
        blackhole_ok: bool,
    ) -> Reply {
        self.change(
            |spec| edits::apply_all(ops, spec),
            Journaled::Ops(ops),
            ops.len(),
            if_version,
            (dry_run, blackhole_ok),
        )
    }

    /// Puts the prober's verdicts in force: each named path `up` or `down`.
    /// Observed state: kept in memory only, never written to disk, never a new
    /// operator version; the tables get a new generation. Paths the operator
    /// disabled stay disabled (their health is remembered for when they are
    /// enabled again); unknown names are kept too (the prober may lag behind
    /// an `add_path`).
    ///
    /// Returns the new tables generation, or `None` when no path's state in
    /// the tables changed.
    ///
    /// # Errors
    /// `internal` when the tables cannot be built or handed over, `timeout`
    /// (the new states stand) when a worker is slow to switch.
    pub fn set_path_health(&self, states: &[(&str, Health)]) -> Result<Option<u64>, ApiError> {
        self.observe(|observed| {
            for (name, health) in states {
                observed.insert((*name).to_string(), *health);
            }
        })
    }

    /// Rebuilds the tables if what the [`Resolver`] fills in changed (a
    /// neighbour's MAC moved): call it when the neighbour table changes.
    /// Observed state, like path health: a new generation, no new version.
    ///
    /// Returns the new generation, or `None` when nothing changed.
    ///
    /// # Errors
    /// As [`set_path_health`](Self::set_path_health); e.g. a next hop that is
    /// no longer resolved fails the build, and the tables in force stay (with
    /// the last known MAC).
    pub fn refresh(&self) -> Result<Option<u64>, ApiError> {
        self.observe(|_| {})
    }

    /// The observed side: new health or resolution, same spec, same version.
    fn observe(
        &self,
        update: impl FnOnce(&mut HashMap<String, Health>),
    ) -> Result<Option<u64>, ApiError> {
        let mut writer = unpoison(self.writer.lock());
        let current = self.snapshot();
        let mut observed = (*current.observed).clone();
        update(&mut observed);
        let states = edits::effective_states(&current.spec, &observed, self.health.as_deref());
        let small = self.small_parts(&current.spec, &states);
        let resolution = Resolved::of(&small);
        if states == current.path_states && resolution == current.resolved {
            if observed != *current.observed {
                // A disabled path's health, kept for when it is enabled again.
                *unpoison(self.current.write()) = Arc::new(Snapshot {
                    spec: Arc::clone(&current.spec),
                    tables: Arc::clone(&current.tables),
                    path_states: states,
                    observed: Arc::new(observed),
                    version: current.version,
                    resolved: resolution,
                });
            }
            return Ok(None);
        }
        let generation = current.generation() + 1;
        let tables = if resolution == current.resolved {
            // Health only: the region's path table, every EIP shard shared.
            let changed: Vec<(PathId, PathState)> = states
                .iter()
                .zip(&current.path_states)
                .enumerate()
                .filter(|(_, (new, old))| new != old)
                .map(|(i, (new, _))| (i as PathId, *new))
                .collect();
            current.tables.with_path_states(&changed, generation)
        } else {
            // A next-hop MAC: the small parts rebuilt, the EIPs shared.
            let delta = TableDelta {
                small_parts: true,
                ..TableDelta::default()
            };
            current
                .tables
                .apply(&delta, &small, current.version, generation)
                .map_err(|mut e| {
                    ApiError::new(
                        ErrorCode::Internal,
                        format!("tables not built: {}", e.swap_remove(0)),
                    )
                })?
        };
        let tables = backends::overlay(tables, &writer.backends_down, generation);
        self.publish_generation(&mut writer, tables, generation, |tables| Snapshot {
            spec: Arc::clone(&current.spec),
            tables,
            path_states: states,
            observed: Arc::new(observed),
            version: current.version,
            resolved: resolution,
        })
    }

    /// The single writer: edit a clone, build, journal, publish, wait, commit.
    pub(super) fn change(
        &self,
        edit: impl FnOnce(&mut PopSpec) -> Result<(), ApiError>,
        journaled: Journaled<'_>,
        changes: usize,
        if_version: Option<u64>,
        (dry_run, blackhole_ok): (bool, bool),
    ) -> Reply {
        let mut writer = unpoison(self.writer.lock());
        let current = self.snapshot();
        let version = current.version();
        if let Some(expected) = if_version.filter(|&v| v != version) {
            return Reply::error(
                version,
                ApiError::new(
                    ErrorCode::VersionConflict,
                    format!(
                        "the request expects table version {expected}, but {version} is in force"
                    ),
                ),
            );
        }
        let mut spec = (*current.spec).clone();
        if let Err(e) = edit(&mut spec) {
            return Reply::error(version, e);
        }
        edits::intent(&mut spec);
        let blackholed = blackhole::newly_blackholed(&current.spec, &spec);
        if !blackholed.is_empty() && !blackhole_ok {
            return Reply::error(version, blackhole::refusal(&blackholed));
        }
        let blackholed = blackhole::eips(blackholed);
        if let Some(max) = writer.max_eips.filter(|&m| spec.eips.len() > m) {
            return Reply::error(
                version,
                ApiError::invalid(format!(
                    "the change would leave {} EIPs, more than the {max} this daemon's XDP \
                     filter maps were sized for at start (max_eips = {max}); raise `[pop] max_eips` \
                     (or `eipd run --max-eips`) and restart, or remove EIPs first",
                    spec.eips.len()
                )),
            );
        }
        let states = edits::effective_states(&spec, &current.observed, self.health.as_deref());
        let small = self.small_parts(&spec, &states);
        let resolution = Resolved::of(&small);
        let next = version + 1;
        let generation = current.generation() + 1;
        let (delta, unchanged) = match journaled {
            Journaled::Ops(ops) => {
                let observed_differs =
                    resolution != current.resolved || states != current.path_states;
                let (delta, unchanged) = eip_delta(ops, &current.spec, &spec, observed_differs);
                (Some(delta), unchanged)
            }
            Journaled::Spec(_) => (None, spec == *current.spec),
        };
        if unchanged {
            let data = if dry_run {
                Data::Validated {
                    changes,
                    unchanged,
                    would_be_version: version,
                    summary: report::summary_json(&current.tables),
                }
            } else {
                Data::Applied {
                    previous_version: version,
                    changes,
                    unchanged,
                    blackholed: Vec::new(),
                }
            };
            return Reply::ok(version, data);
        }
        let built = with_small_parts(&mut spec, small, |full| match &delta {
            Some(delta) => current.tables.apply(delta, full, next, generation),
            None => Tables::rebuild(full, &current.tables, next, generation),
        });
        let tables = match built {
            Ok(t) => t,
            Err(mut e) => return Reply::error(version, e.swap_remove(0).into()),
        };
        let tables = Arc::new(backends::overlay(tables, &writer.backends_down, generation));
        if dry_run {
            return Reply::ok(
                version,
                Data::Validated {
                    changes,
                    unchanged,
                    would_be_version: next,
                    summary: report::summary_json(&tables),
                },
            );
        }
        let journal = Arc::clone(&writer.journal);
        let mut journal = unpoison(journal.lock());
        let before = match journal.append(next, journaled.into()) {
            Ok(before) => before,
            Err(e) => {
                return Reply::error(version, ApiError::new(ErrorCode::Storage, e.to_string()))
            }
        };
        let timeout = writer.ack_timeout;
        let published = writer.sink.publish(Arc::clone(&tables), timeout);
        if let Err(SinkError::Rejected(reason)) = &published {
            if let Err(e) = journal.truncate(before) {
                tracing::error!("a change that was not published stays in the journal: {e}");
            }
            return Reply::error(
                version,
                ApiError::new(
                    ErrorCode::Internal,
                    format!("tables not published: {reason}"),
                ),
            );
        }
        let snapshot = Arc::new(Snapshot {
            spec: Arc::new(spec),
            tables,
            path_states: states,
            observed: Arc::clone(&current.observed),
            version: next,
            resolved: resolution,
        });
        *unpoison(self.current.write()) = Arc::clone(&snapshot);
        let journal_len = journal.len().unwrap_or(0);
        drop(journal);
        if journal_len >= writer.compact_at {
            writer.compact(snapshot, journal_len);
        }
        drop(writer);
        let data = Data::Applied {
            previous_version: version,
            changes,
            unchanged,
            blackholed,
        };
        match published {
            Err(e) => Reply {
                data: Some(data),
                ..Reply::error(next, ApiError::new(ErrorCode::Timeout, e.to_string()))
            },
            Ok(()) => Reply::ok(next, data),
        }
    }

    /// The parts of `spec` other than its EIPs (pop, ports, regions, paths),
    /// resolved if there is a resolver, with the paths in `states`. Cheap: no
    /// EIP is copied.
    fn small_parts(&self, spec: &PopSpec, states: &[PathState]) -> PopSpec {
        let mut small = PopSpec {
            pop: spec.pop.clone(),
            ports: spec.ports.clone(),
            regions: spec.regions.clone(),
            paths: spec.paths.clone(),
            eips: Default::default(),
            bgp: spec.bgp.clone(),
            limits: None,
            protection: spec.protection.clone(),
        };
        if let Some(r) = &self.resolver {
            small = r.resolve(&small);
        }
        for (p, s) in small.paths.iter_mut().zip(states) {
            p.state = *s;
        }
        small
    }
}

impl Writer {
    /// Writes `snapshot` as the state file in the background, then keeps only
    /// the journal's records after `journal_len` (those after the snapshot).
    fn compact(&mut self, snapshot: Arc<Snapshot>, journal_len: u64) {
        if self.compacting.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(h) = self.compaction.take() {
            let _ = h.join();
        }
        let store = self.store.clone();
        let journal = Arc::clone(&self.journal);
        let flag = Arc::clone(&self.compacting);
        let spawned = std::thread::Builder::new()
            .name("eipd-compact".into())
            .spawn(move || {
                let started = Instant::now();
                let done = store
                    .save(snapshot.version(), &snapshot.spec)
                    .and_then(|()| unpoison(journal.lock()).rotate(journal_len));
                match done {
                    Ok(()) => tracing::info!(
                        "state: journal compacted into {} at table version {} in {:?}",
                        store.path().display(),
                        snapshot.version(),
                        started.elapsed()
                    ),
                    Err(e) => tracing::error!("state: journal not compacted: {e}"),
                }
                flag.store(false, Ordering::Release);
            });
        match spawned {
            Ok(h) => self.compaction = Some(h),
            Err(e) => {
                tracing::error!("state: no compaction thread: {e}");
                self.compacting.store(false, Ordering::Release);
            }
        }
    }
}

mod backends;
mod generation;
#[cfg(test)]
mod tests;
