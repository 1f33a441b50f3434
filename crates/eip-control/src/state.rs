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

use crate::api::{Admin, ApiError, Command, Data, ErrorCode, Op, PathView, Query, Reply, Request};
use crate::config::{self, ConfigError};
use crate::health::{Health, HealthSnapshot};
use crate::report;
use eip_dataplane::counters::Counters;
use eip_dataplane::swap::{Publisher, SwapError};
use eip_dataplane::tables::spec::{EipSpec, PathSpec, ServiceSpec};
use eip_dataplane::tables::{MacAddr, PathState, PopSpec, TableError, Tables};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Where `eipd` keeps its state unless told otherwise.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/eipd/state.json";

/// How long a change waits for every worker to switch, unless configured.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------
// The state file
// ---------------------------------------------------------------------------

/// Why the state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("state file {path} is not a valid {{\"version\", \"spec\"}} document: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("state file {path} (table version {version}) does not build: {source}")]
    Invalid {
        path: PathBuf,
        version: u64,
        #[source]
        source: TableError,
    },
    #[error("cannot write state file {path} ({step}): {source}")]
    Write {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The state file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateDoc {
    pub version: u64,
    pub spec: PopSpec,
}

#[derive(Serialize)]
struct StateDocRef<'a> {
    version: u64,
    spec: &'a PopSpec,
}

/// Where the spec came from at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The state file: what was in force when the daemon last ran.
    StateFile,
    /// The TOML configuration, at version 1 (there was no state file).
    Config,
}

/// A spec with the tables built from it, ready for the workers and for
/// [`ControlPlane::new`].
#[derive(Debug, Clone)]
pub struct Boot {
    /// The operator's spec (what the state file holds).
    pub spec: PopSpec,
    /// Built from `spec` as resolved.
    pub tables: Arc<Tables>,
    pub origin: Origin,
    /// What resolution filled in, to notice when it changes.
    resolved: Resolved,
}

impl Boot {
    /// Builds the tables of `doc`, its spec first passed through `resolver`
    /// when there is one (the same one the [`ControlPlane`] is given).
    ///
    /// # Errors
    /// The table builder's error.
    pub fn build(
        doc: StateDoc,
        origin: Origin,
        resolver: Option<&dyn Resolver>,
    ) -> Result<Boot, TableError> {
        let (tables, resolved) = build(&doc.spec, doc.version, resolver)?;
        Ok(Boot {
            spec: doc.spec,
            tables: Arc::new(tables),
            origin,
            resolved,
        })
    }
}

/// The next-hop MACs a resolved spec uses (ports' gateways, then paths).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resolved(Vec<Option<MacAddr>>);

impl Resolved {
    fn of(spec: &PopSpec) -> Resolved {
        Resolved(
            spec.ports
                .iter()
                .map(|p| p.gateway_mac)
                .chain(spec.paths.iter().map(|p| p.next_hop_mac))
                .collect(),
        )
    }
}

/// Resolves `spec` (if there is a resolver) and builds tables of `version`.
fn build(
    spec: &PopSpec,
    version: u64,
    resolver: Option<&dyn Resolver>,
) -> Result<(Tables, Resolved), TableError> {
    match resolver {
        Some(r) => {
            let resolved = r.resolve(spec);
            Ok((Tables::build(&resolved, version)?, Resolved::of(&resolved)))
        }
        None => Ok((Tables::build(spec, version)?, Resolved::of(spec))),
    }
}

/// The JSON file `{version, spec}` that survives restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads and parses the state file; `Ok(None)` if there is none. Does not
    /// build tables ([`StateFile::boot`] does).
    ///
    /// # Errors
    /// A file that exists but cannot be read or parsed: the daemon must not
    /// silently fall back to an older configuration.
    pub fn load(&self) -> Result<Option<StateDoc>, StateError> {
        let text = match fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let doc: StateDoc = serde_json::from_slice(&text).map_err(|e| StateError::Syntax {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        if doc.version == 0 {
            return Err(StateError::Syntax {
                path: self.path.clone(),
                message: "version must be at least 1".into(),
            });
        }
        Ok(Some(doc))
    }

    /// The state file's document if there is one, else the TOML configuration's
    /// spec at version 1. Writes nothing: [`boot`](Self::boot) saves the initial
    /// state once it builds. For a daemon that must prepare something from the
    /// spec (e.g. wait for next hops to resolve) before calling `boot`.
    ///
    /// # Errors
    /// A broken state file or an unreadable configuration.
    pub fn load_or_config(&self, config_path: &Path) -> Result<(StateDoc, Origin), StateError> {
        if let Some(doc) = self.load()? {
            return Ok((doc, Origin::StateFile));
        }
        let spec = config::load_spec(config_path)?;
        Ok((StateDoc { version: 1, spec }, Origin::Config))
    }

    /// What `eipd` starts with: the state file if present (same spec, same
    /// version), else the TOML configuration at version 1, built with
    /// [`Boot::build`]. A configuration is saved as the state file only once it
    /// builds, so a broken first configuration leaves no state behind.
    ///
    /// # Errors
    /// A broken state file or configuration (naming the file and the entry), or
    /// a state file that cannot be written.
    pub fn boot(
        &self,
        config_path: &Path,
        resolver: Option<&dyn Resolver>,
    ) -> Result<Boot, StateError> {
        let (doc, origin) = self.load_or_config(config_path)?;
        let version = doc.version;
        let boot = Boot::build(doc, origin, resolver).map_err(|source| match origin {
            Origin::StateFile => StateError::Invalid {
                path: self.path.clone(),
                version,
                source,
            },
            Origin::Config => StateError::Config(ConfigError::Invalid {
                path: config_path.to_path_buf(),
                source,
            }),
        })?;
        if origin == Origin::Config {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir)
                    .map_err(|source| self.write_error("create directory", source))?;
            }
            self.save(1, &boot.spec)?;
        }
        Ok(boot)
    }

    /// Replaces the file atomically: a temporary file in the same directory is
    /// written and fsynced, renamed over the state file, and the directory is
    /// fsynced so that the rename survives a crash. Readers see the old or the new
    /// file, never a mix.
    ///
    /// # Errors
    /// The step that failed. The temporary file is removed; the state file is
    /// unchanged unless the final directory sync failed (the caller restores it).
    pub fn save(&self, version: u64, spec: &PopSpec) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(&StateDocRef { version, spec })
            .map_err(|e| self.write_error("serialize", io::Error::other(e)))?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "state".into());
        let tmp = dir.join(format!(".{name}.tmp"));
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(|e| ("create temporary file", e))?;
            f.write_all(&bytes).map_err(|e| ("write", e))?;
            f.write_all(b"\n").map_err(|e| ("write", e))?;
            f.sync_all().map_err(|e| ("fsync", e))?;
            fs::rename(&tmp, &self.path).map_err(|e| ("rename", e))
        })();
        if let Err((step, source)) = written {
            let _ = fs::remove_file(&tmp);
            return Err(self.write_error(step, source));
        }
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| self.write_error("fsync directory", source))
    }

    fn write_error(&self, step: &'static str, source: io::Error) -> StateError {
        StateError::Write {
            path: self.path.clone(),
            step,
            source,
        }
    }
}

// ---------------------------------------------------------------------------
// What the daemon plugs in
// ---------------------------------------------------------------------------

/// Why new tables are not (all) in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Nothing was handed over.
    #[error("tables not published: {0}")]
    Rejected(String),
    /// Handed over, but these workers still forward with older tables.
    #[error(
        "workers {lagging:?} did not switch to table version {version} within {timeout:?}; \
         the change is saved and published, and they will switch when they next poll"
    )]
    Timeout {
        version: u64,
        lagging: Vec<usize>,
        timeout: Duration,
    },
}

/// Where new tables go: the workers, in production a [`swap::Publisher`]
/// (wrap it to do more, e.g. update the XDP program's EIP filter map before
/// publishing). Tests use fakes that need no workers.
///
/// [`swap::Publisher`]: eip_dataplane::swap::Publisher
pub trait TableSink: Send {
    /// Hands `tables` over and returns once every worker forwards with them, or
    /// after `timeout` with [`SinkError::Timeout`].
    ///
    /// # Errors
    /// [`SinkError`].
    fn publish(&mut self, tables: Arc<Tables>, timeout: Duration) -> Result<(), SinkError>;
}

impl TableSink for Publisher<Tables> {
    fn publish(&mut self, tables: Arc<Tables>, timeout: Duration) -> Result<(), SinkError> {
        let waited = match Publisher::publish(self, tables) {
            Ok(ticket) => ticket.wait(timeout),
            Err(e) => return Err(SinkError::Rejected(e.to_string())),
        };
        // Old snapshots are freed here, on the control thread.
        self.collect_garbage();
        match waited {
            Ok(()) => Ok(()),
            Err(SwapError::Timeout { version, lagging }) => Err(SinkError::Timeout {
                version,
                lagging,
                timeout,
            }),
            Err(e) => Err(SinkError::Rejected(e.to_string())),
        }
    }
}

/// The workers' counters, for `stats`.
pub trait StatsSource: Send + Sync {
    /// Every worker's pipeline counters summed with [`Counters::merge`],
    /// indexed like the tables in force.
    fn counters(&self) -> Counters;

    /// Daemon-specific figures (AF_XDP ring and socket counters, ...), reported
    /// under `runtime`.
    fn runtime(&self) -> Option<Value> {
        None
    }
}

impl<F: Fn() -> Counters + Send + Sync> StatsSource for F {
    fn counters(&self) -> Counters {
        self()
    }
}

/// Fills in what the operator left to the daemon before tables are built: in
/// `eipd run`, next-hop MACs from the kernel's neighbour table
/// (`neighbours::resolve`). Whatever it cannot fill stays empty and the table
/// builder says so (`next_hop_mac: the MAC of next hop ... is not known`).
///
/// The operator's spec (unresolved) is what is saved and shown; the resolved one
/// is only built from. [`ControlPlane::refresh`] rebuilds when what the resolver
/// fills in (ports' `gateway_mac`, paths' `next_hop_mac`) changed.
pub trait Resolver: Send + Sync {
    fn resolve(&self, spec: &PopSpec) -> PopSpec;
}

impl<F: Fn(&PopSpec) -> PopSpec + Send + Sync> Resolver for F {
    fn resolve(&self, spec: &PopSpec) -> PopSpec {
        self(spec)
    }
}

/// The path prober's view, for `show_paths` and for re-enabled paths.
pub trait HealthSource: Send + Sync {
    /// The prober's snapshot of path `path`; `None` if it does not probe it.
    fn path_health(&self, path: &str) -> Option<HealthSnapshot>;
}

impl<F: Fn(&str) -> Option<HealthSnapshot> + Send + Sync> HealthSource for F {
    fn path_health(&self, path: &str) -> Option<HealthSnapshot> {
        self(path)
    }
}

// ---------------------------------------------------------------------------
// The control plane
// ---------------------------------------------------------------------------

/// The spec in force and the tables built from it (`tables.version` is the
/// version).
#[derive(Debug)]
pub struct Snapshot {
    /// The operator's spec, as saved.
    pub spec: PopSpec,
    pub tables: Arc<Tables>,
    resolved: Resolved,
}

impl Snapshot {
    pub fn version(&self) -> u64 {
        self.tables.version
    }
}

/// What only the single writer touches.
struct Writer {
    sink: Box<dyn TableSink>,
    store: StateFile,
    ack_timeout: Duration,
}

/// Applies requests to the POP description; shared by the socket server's
/// threads (`Arc<ControlPlane>`). Changes are serialized; queries are not.
pub struct ControlPlane {
    writer: Mutex<Writer>,
    current: RwLock<Arc<Snapshot>>,
    stats: Option<Arc<dyn StatsSource>>,
    health: Option<Arc<dyn HealthSource>>,
    resolver: Option<Arc<dyn Resolver>>,
    started: Instant,
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

impl ControlPlane {
    /// A control plane in force with `boot` (whose tables the workers already
    /// have), saving to `store` and publishing to `sink`.
    pub fn new(store: StateFile, boot: Boot, sink: impl TableSink + 'static) -> Self {
        ControlPlane {
            writer: Mutex::new(Writer {
                sink: Box::new(sink),
                store,
                ack_timeout: DEFAULT_ACK_TIMEOUT,
            }),
            current: RwLock::new(Arc::new(Snapshot {
                spec: boot.spec,
                tables: boot.tables,
                resolved: boot.resolved,
            })),
            stats: None,
            health: None,
            resolver: None,
            started: Instant::now(),
        }
    }

    /// Counters for `stats` (without, `stats` replies `unavailable`).
    pub fn with_stats(mut self, stats: Arc<dyn StatsSource>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Prober snapshots for `show_paths`, and the measured health a path resumes
    /// when re-enabled (without, a re-enabled path is `up`).
    pub fn with_health(mut self, health: Arc<dyn HealthSource>) -> Self {
        self.health = Some(health);
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

    /// The spec and tables in force.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&*self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The table version in force.
    pub fn version(&self) -> u64 {
        self.snapshot().version()
    }

    /// Answers one request.
    pub fn handle(&self, request: Request) -> Reply {
        let if_version = request.if_version;
        match request.command {
            Command::Query(q) => self.query(q),
            Command::Change(op) => self.apply(&[op], if_version, false),
            Command::Transaction(ops) => self.apply(&ops, if_version, false),
            Command::Validate(ops) => self.apply(&ops, if_version, true),
        }
    }

    /// Applies `ops` together (or, with `dry_run`, checks them).
    pub fn apply(&self, ops: &[Op], if_version: Option<u64>, dry_run: bool) -> Reply {
        let health = self.health.as_deref();
        self.change(
            |spec| {
                for (i, op) in ops.iter().enumerate() {
                    edit::apply(op, spec, health).map_err(|e| {
                        if ops.len() > 1 {
                            e.context(&format!("ops[{i}] ({})", op.name()))
                        } else {
                            e.context(op.name())
                        }
                    })?;
                }
                Ok(())
            },
            ops.len(),
            if_version,
            dry_run,
        )
    }

    /// The prober's verdicts: sets each named path `up` or `down`, in one new
    /// version. Paths the operator disabled stay disabled, unknown names are
    /// skipped (the prober may lag behind a `remove_path`).
    ///
    /// Returns the new version, or `None` when nothing changed.
    ///
    /// # Errors
    /// As for any change (e.g. `storage`, `timeout`).
    pub fn set_path_health(&self, states: &[(&str, Health)]) -> Result<Option<u64>, ApiError> {
        let before = self.version();
        let reply = self.change(
            |spec| {
                for (name, health) in states {
                    if let Some(p) = spec.paths.iter_mut().find(|p| p.name == *name) {
                        if p.state != PathState::Disabled {
                            p.state = measured(*health);
                        }
                    }
                }
                Ok(())
            },
            states.len(),
            None,
            false,
        );
        match reply.error {
            Some(e) => Err(e),
            None if reply.version == before => Ok(None),
            None => Ok(Some(reply.version)),
        }
    }

    /// Rebuilds the spec in force if what the [`Resolver`] fills in changed (a
    /// neighbour's MAC moved): call it when the neighbour table changes.
    ///
    /// Returns the new version, or `None` when nothing changed.
    ///
    /// # Errors
    /// As for any change; e.g. a next hop that is no longer resolved fails the
    /// build, and the tables in force stay (with the last known MAC).
    pub fn refresh(&self) -> Result<Option<u64>, ApiError> {
        let before = self.version();
        let reply = self.change(|_| Ok(()), 0, None, false);
        match reply.error {
            Some(e) => Err(e),
            None if reply.version == before => Ok(None),
            None => Ok(Some(reply.version)),
        }
    }

    /// The single writer: edit a clone, build, save, publish, wait, commit.
    fn change(
        &self,
        edit: impl FnOnce(&mut PopSpec) -> Result<(), ApiError>,
        changes: usize,
        if_version: Option<u64>,
        dry_run: bool,
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
        let mut spec = current.spec.clone();
        if let Err(e) = edit(&mut spec) {
            return Reply::error(version, e);
        }
        let resolved = self.resolver.as_ref().map(|r| r.resolve(&spec));
        let built_from = resolved.as_ref().unwrap_or(&spec);
        let resolution = Resolved::of(built_from);
        let unchanged = spec == current.spec && resolution == current.resolved;
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
                }
            };
            return Reply::ok(version, data);
        }
        let next = version + 1;
        let tables = match Tables::build(built_from, next) {
            Ok(t) => Arc::new(t),
            Err(e) => return Reply::error(version, e.into()),
        };
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
        if let Err(e) = writer.store.save(next, &spec) {
            // The rename may have happened before a failing directory sync.
            let _ = writer.store.save(version, &current.spec);
            return Reply::error(version, ApiError::new(ErrorCode::Storage, e.to_string()));
        }
        let timeout = writer.ack_timeout;
        let published = writer.sink.publish(Arc::clone(&tables), timeout);
        if let Err(SinkError::Rejected(reason)) = &published {
            let _ = writer.store.save(version, &current.spec);
            return Reply::error(
                version,
                ApiError::new(
                    ErrorCode::Internal,
                    format!("tables not published: {reason}"),
                ),
            );
        }
        *unpoison(self.current.write()) = Arc::new(Snapshot {
            spec,
            tables,
            resolved: resolution,
        });
        drop(writer);
        let data = Data::Applied {
            previous_version: version,
            changes,
            unchanged,
        };
        match published {
            Err(e) => Reply {
                data: Some(data),
                ..Reply::error(next, ApiError::new(ErrorCode::Timeout, e.to_string()))
            },
            Ok(()) => Reply::ok(next, data),
        }
    }

    fn query(&self, query: Query) -> Reply {
        let snap = self.snapshot();
        let version = snap.version();
        let data = match query {
            Query::ShowTables => Data::Tables {
                summary: report::summary_json(&snap.tables),
            },
            Query::ShowPaths => Data::Paths {
                paths: self.paths(&snap),
            },
            Query::ShowEips(filter) => Data::Eips {
                eips: snap
                    .spec
                    .eips
                    .iter()
                    .filter(|e| filter.address.is_none_or(|a| a == e.address))
                    .cloned()
                    .collect(),
            },
            Query::ShowSpec => Data::Spec {
                spec: Box::new(snap.spec.clone()),
            },
            Query::Stats => match &self.stats {
                Some(source) => Data::Stats {
                    stats: self.stats_json(&snap.tables, source.as_ref()),
                },
                None => {
                    return Reply::error(
                        version,
                        ApiError::new(
                            ErrorCode::Unavailable,
                            "this daemon has no statistics source",
                        ),
                    )
                }
            },
        };
        Reply::ok(version, data)
    }

    fn paths(&self, snap: &Snapshot) -> Vec<PathView> {
        let t = &snap.tables;
        let usable: Vec<BTreeSet<u16>> = t
            .regions
            .iter()
            .map(|r| r.path_table.iter().copied().collect())
            .collect();
        snap.spec
            .paths
            .iter()
            .zip(&t.paths)
            .enumerate()
            .map(|(i, (spec, path))| {
                let region = path.region as usize;
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&path.template[..6]);
                PathView {
                    spec: spec.clone(),
                    next_hop_mac_in_use: MacAddr(mac),
                    usable: usable[region].contains(&(i as u16)),
                    region_panic: t.regions[region].panic,
                    health: self
                        .health
                        .as_ref()
                        .and_then(|h| h.path_health(&spec.name))
                        .and_then(|s| serde_json::to_value(s).ok()),
                }
            })
            .collect()
    }

    fn stats_json(&self, tables: &Tables, source: &dyn StatsSource) -> Value {
        let mut stats = report::counters_json(tables, &source.counters());
        stats["elapsed_ms"] = json!(self.started.elapsed().as_millis() as u64);
        if let Some(runtime) = source.runtime() {
            stats["runtime"] = runtime;
        }
        stats
    }
}

fn measured(health: Health) -> PathState {
    match health {
        Health::Up => PathState::Up,
        Health::Down => PathState::Down,
    }
}

/// What each op does to a spec. Only lookups fail here (`not_found`,
/// `duplicate`, an ambiguous backend); everything else is the table builder's to
/// judge, so the rules live in one place.
mod edit {
    use super::*;
    use crate::api::{BackendRef, UpdateEip, UpdatePath};
    use eip_dataplane::tables::Protocol;
    use std::net::IpAddr;

    /// Lists at most this many existing names in a `not_found` message.
    const LIST: usize = 8;

    pub(super) fn apply(
        op: &Op,
        spec: &mut PopSpec,
        health: Option<&dyn HealthSource>,
    ) -> Result<(), ApiError> {
        match op {
            Op::AddEip(a) => {
                if let Some(i) = spec.eips.iter().position(|e| e.address == a.eip.address) {
                    return Err(ApiError::duplicate(format!(
                        "EIP {} exists already (eips[{i}]); update_eip changes it",
                        a.eip.address
                    )));
                }
                spec.eips.push(a.eip.clone());
            }
            Op::UpdateEip(u) => update_eip(eip(spec, u.address)?, u),
            Op::RemoveEip(r) => {
                let i = eip_index(spec, r.address)?;
                spec.eips.remove(i);
            }
            Op::AddService(a) => {
                let e = eip(spec, a.eip)?;
                let s = &a.service;
                if e.services
                    .iter()
                    .any(|x| x.protocol == s.protocol && x.port == s.port)
                {
                    return Err(ApiError::duplicate(format!(
                        "EIP {} has a {}/{} service already",
                        a.eip,
                        proto(s.protocol),
                        s.port
                    )));
                }
                e.services.push(s.clone());
            }
            Op::RemoveService(r) => {
                let e = eip(spec, r.eip)?;
                let i = service_index(e, r.protocol, r.port)?;
                e.services.remove(i);
            }
            Op::AddBackend(a) => {
                let s = service(spec, a.eip, a.protocol, a.port)?;
                let port = a.backend.port.unwrap_or(s.port);
                let exists = s
                    .backends
                    .iter()
                    .any(|b| b.address == a.backend.address && b.port.unwrap_or(s.port) == port);
                if exists {
                    return Err(ApiError::duplicate(format!(
                        "{} has backend {} already",
                        service_name(a.eip, a.protocol, a.port),
                        endpoint(a.backend.address, port)
                    )));
                }
                s.backends.push(a.backend.clone());
            }
            Op::UpdateBackend(u) => {
                let r = BackendRef {
                    eip: u.eip,
                    protocol: u.protocol,
                    port: u.port,
                    address: u.address,
                    backend_port: u.backend_port,
                };
                let s = service(spec, u.eip, u.protocol, u.port)?;
                let i = backend_index(s, &r)?;
                s.backends[i].weight = u.weight;
            }
            Op::DrainBackend(r) => {
                let s = service(spec, r.eip, r.protocol, r.port)?;
                let i = backend_index(s, r)?;
                s.backends[i].weight = 0;
            }
            Op::RemoveBackend(r) => {
                let s = service(spec, r.eip, r.protocol, r.port)?;
                let i = backend_index(s, r)?;
                s.backends.remove(i);
            }
            Op::AddPath(a) => {
                if let Some(i) = spec.paths.iter().position(|p| p.name == a.path.name) {
                    return Err(ApiError::duplicate(format!(
                        "path {:?} exists already (paths[{i}]); update_path changes it",
                        a.path.name
                    )));
                }
                spec.paths.push(a.path.clone());
            }
            Op::UpdatePath(u) => update_path(path(spec, &u.name)?, u),
            Op::RemovePath(r) => {
                let i = path_index(spec, &r.name)?;
                spec.paths.remove(i);
            }
            Op::SetPathAdmin(s) => {
                let p = path(spec, &s.name)?;
                p.state = match s.admin {
                    Admin::Disabled => PathState::Disabled,
                    Admin::Enabled if p.state == PathState::Disabled => health
                        .and_then(|h| h.path_health(&p.name))
                        .map_or(PathState::Up, |snap| measured(snap.health)),
                    Admin::Enabled => p.state,
                };
            }
        }
        Ok(())
    }

    fn update_eip(e: &mut EipSpec, u: &UpdateEip) {
        if let Some(region) = &u.region {
            e.region.clone_from(region);
        }
        if let Some(backend) = u.backend {
            e.backend = backend;
        }
        if let Some(services) = &u.services {
            e.services.clone_from(services);
        }
    }

    fn update_path(p: &mut PathSpec, u: &UpdatePath) {
        if let Some(region) = &u.region {
            p.region.clone_from(region);
        }
        if let Some(port) = &u.port {
            p.port.clone_from(port);
        }
        if let Some(mac) = u.next_hop_mac {
            p.next_hop_mac = mac;
        }
        if let Some(next_hop) = u.next_hop {
            p.next_hop = next_hop;
        }
        if let Some(source) = u.source {
            p.source = source;
        }
        if let Some(destination) = u.destination {
            p.destination = destination;
        }
        if let Some(mtu) = u.mtu {
            p.mtu = mtu;
        }
        if let Some(weight) = u.weight {
            p.weight = weight;
        }
    }

    fn eip_index(spec: &PopSpec, address: IpAddr) -> Result<usize, ApiError> {
        spec.eips
            .iter()
            .position(|e| e.address == address)
            .ok_or_else(|| ApiError::not_found(format!("EIP {address} does not exist")))
    }

    fn eip(spec: &mut PopSpec, address: IpAddr) -> Result<&mut EipSpec, ApiError> {
        let i = eip_index(spec, address)?;
        Ok(&mut spec.eips[i])
    }

    fn service_index(e: &EipSpec, protocol: Protocol, port: u16) -> Result<usize, ApiError> {
        e.services
            .iter()
            .position(|s| s.protocol == protocol && s.port == port)
            .ok_or_else(|| {
                let have: Vec<String> = e
                    .services
                    .iter()
                    .map(|s| format!("{}/{}", proto(s.protocol), s.port))
                    .collect();
                ApiError::not_found(format!(
                    "EIP {} has no {}/{port} service ({})",
                    e.address,
                    proto(protocol),
                    listing("services", &have)
                ))
            })
    }

    fn service(
        spec: &mut PopSpec,
        address: IpAddr,
        protocol: Protocol,
        port: u16,
    ) -> Result<&mut ServiceSpec, ApiError> {
        let e = eip(spec, address)?;
        let i = service_index(e, protocol, port)?;
        Ok(&mut e.services[i])
    }

    /// The backend `r` names: by address, and by port when given or needed.
    fn backend_index(s: &ServiceSpec, r: &BackendRef) -> Result<usize, ApiError> {
        let name = service_name(r.eip, r.protocol, r.port);
        let matches: Vec<usize> = (0..s.backends.len())
            .filter(|&i| {
                let b = &s.backends[i];
                b.address == r.address
                    && r.backend_port.is_none_or(|p| p == b.port.unwrap_or(s.port))
            })
            .collect();
        match matches[..] {
            [i] => Ok(i),
            [] => {
                let have: Vec<String> = s
                    .backends
                    .iter()
                    .map(|b| endpoint(b.address, b.port.unwrap_or(s.port)))
                    .collect();
                let wanted = match r.backend_port {
                    Some(p) => endpoint(r.address, p),
                    None => r.address.to_string(),
                };
                Err(ApiError::not_found(format!(
                    "{name} has no backend {wanted} ({})",
                    listing("backends", &have)
                )))
            }
            _ => {
                let ports: Vec<String> = matches
                    .iter()
                    .map(|&i| s.backends[i].port.unwrap_or(s.port).to_string())
                    .collect();
                Err(ApiError::invalid(format!(
                    "{name} has backend {} on ports {}; say which with backend_port",
                    r.address,
                    ports.join(" and ")
                )))
            }
        }
    }

    fn path_index(spec: &PopSpec, name: &str) -> Result<usize, ApiError> {
        spec.paths
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| {
                let have: Vec<String> =
                    spec.paths.iter().map(|p| format!("{:?}", p.name)).collect();
                ApiError::not_found(format!(
                    "path {name:?} does not exist ({})",
                    listing("paths", &have)
                ))
            })
    }

    fn path<'a>(spec: &'a mut PopSpec, name: &str) -> Result<&'a mut PathSpec, ApiError> {
        let i = path_index(spec, name)?;
        Ok(&mut spec.paths[i])
    }

    fn listing(what: &str, have: &[String]) -> String {
        match have.len() {
            0 => format!("there are no {what}"),
            n if n <= LIST => format!("{what}: {}", have.join(", ")),
            n => format!("{what}: {}, ... ({n} in all)", have[..LIST].join(", ")),
        }
    }

    pub(super) fn proto(p: Protocol) -> &'static str {
        match p {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    fn service_name(eip: IpAddr, protocol: Protocol, port: u16) -> String {
        format!("service {eip} {}/{port}", proto(protocol))
    }

    fn endpoint(address: IpAddr, port: u16) -> String {
        match address {
            IpAddr::V4(a) => format!("{a}:{port}"),
            IpAddr::V6(a) => format!("[{a}]:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AddEip, BackendRef, RemoveEip, SetPathAdmin, UpdateBackend};
    use eip_dataplane::tables::Protocol;
    use std::sync::atomic::{AtomicU64, Ordering};

    const EXAMPLE: &str = include_str!("../../../docs/example-pop.toml");

    fn temp_dir(tag: &str) -> PathBuf {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "eip-state-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Records what was published; can be told to refuse or to time out.
    #[derive(Clone, Default)]
    struct FakeSink {
        published: Arc<Mutex<Vec<u64>>>,
        mode: Arc<Mutex<Option<SinkError>>>,
    }

    impl TableSink for FakeSink {
        fn publish(&mut self, tables: Arc<Tables>, _: Duration) -> Result<(), SinkError> {
            let mode = self.mode.lock().unwrap().clone();
            if !matches!(mode, Some(SinkError::Rejected(_))) {
                self.published.lock().unwrap().push(tables.version);
            }
            mode.map_or(Ok(()), Err)
        }
    }

    fn setup(tag: &str) -> (PathBuf, ControlPlane, FakeSink) {
        let dir = temp_dir(tag);
        let config = dir.join("pop.toml");
        fs::write(&config, EXAMPLE).unwrap();
        let store = StateFile::new(dir.join("state").join("state.json"));
        let boot = store.boot(&config, None).unwrap();
        assert_eq!(boot.origin, Origin::Config);
        let sink = FakeSink::default();
        let cp = ControlPlane::new(store, boot, sink.clone());
        (dir, cp, sink)
    }

    fn drain(address: &str) -> Op {
        Op::DrainBackend(BackendRef {
            eip: "192.0.2.20".parse().unwrap(),
            protocol: Protocol::Tcp,
            port: 80,
            address: address.parse().unwrap(),
            backend_port: None,
        })
    }

    fn state_file(dir: &Path) -> StateDoc {
        serde_json::from_slice(&fs::read(dir.join("state/state.json")).unwrap()).unwrap()
    }

    #[test]
    fn a_change_is_built_saved_published_and_then_visible() {
        let (dir, cp, sink) = setup("change");
        assert_eq!(cp.version(), 1);
        let reply = cp.apply(&[drain("10.1.0.21")], None, false);
        assert!(reply.ok, "{reply:?}");
        assert_eq!(reply.version, 2);
        assert_eq!(*sink.published.lock().unwrap(), vec![2]);
        let doc = state_file(&dir);
        assert_eq!(doc.version, 2);
        assert_eq!(doc.spec, cp.snapshot().spec);
        assert_eq!(doc.spec.eips[1].services[0].backends[1].weight, 0);
        // Draining again changes nothing: no new version, nothing published.
        let again = cp.apply(&[drain("10.1.0.21")], None, false);
        assert_eq!(again.version, 2);
        assert!(matches!(
            again.data,
            Some(Data::Applied {
                unchanged: true,
                ..
            })
        ));
        assert_eq!(sink.published.lock().unwrap().len(), 1);
        // A restart from the file has the same spec and version.
        let boot = StateFile::new(dir.join("state/state.json"))
            .boot(&dir.join("pop.toml"), None)
            .unwrap();
        assert_eq!(boot.origin, Origin::StateFile);
        assert_eq!(boot.tables.version, 2);
        assert_eq!(boot.spec, cp.snapshot().spec);
    }

    #[test]
    fn failures_change_nothing() {
        let (dir, cp, sink) = setup("fail");
        let before = fs::read(dir.join("state/state.json")).unwrap();
        let spec = cp.snapshot().spec.clone();
        let missing = cp.apply(&[drain("10.9.9.9")], None, false);
        let e = missing.error.unwrap();
        assert_eq!(e.code, ErrorCode::NotFound);
        assert_eq!(
            e.message,
            "drain_backend: service 192.0.2.20 tcp/80 has no backend 10.9.9.9 (backends: 10.1.0.20:80, 10.1.0.21:8080)"
        );
        // Second op fails: the first is not applied either.
        let bad = cp.apply(
            &[
                drain("10.1.0.21"),
                Op::RemoveEip(RemoveEip {
                    address: "192.0.2.99".parse().unwrap(),
                }),
            ],
            None,
            false,
        );
        assert_eq!(
            bad.error.unwrap().message,
            "ops[1] (remove_eip): EIP 192.0.2.99 does not exist"
        );
        // Validation by the table builder.
        let mut eip = spec.eips[0].clone();
        eip.address = "192.0.2.77".parse().unwrap();
        eip.region = "tokyo".into();
        let r = cp.apply(&[Op::AddEip(AddEip { eip })], None, false);
        let e = r.error.unwrap();
        assert_eq!(e.code, ErrorCode::NotFound);
        assert!(e.message.contains("region \"tokyo\""), "{e}");
        // Stale if_version.
        let r = cp.apply(&[drain("10.1.0.21")], Some(7), false);
        assert_eq!(r.error.unwrap().code, ErrorCode::VersionConflict);
        // The sink refusing.
        *sink.mode.lock().unwrap() = Some(SinkError::Rejected("no".into()));
        let r = cp.apply(&[drain("10.1.0.21")], None, false);
        assert_eq!(r.error.unwrap().code, ErrorCode::Internal);
        assert_eq!(cp.version(), 1);
        assert_eq!(cp.snapshot().spec, spec);
        assert_eq!(fs::read(dir.join("state/state.json")).unwrap(), before);
        assert!(sink.published.lock().unwrap().is_empty());
    }

    #[test]
    fn storage_failure_changes_nothing() {
        let (dir, cp, _sink) = setup("storage");
        // A directory where the temporary file goes makes the write fail.
        fs::create_dir(dir.join("state/.state.json.tmp")).unwrap();
        let r = cp.apply(&[drain("10.1.0.21")], None, false);
        let e = r.error.unwrap();
        assert_eq!(e.code, ErrorCode::Storage);
        assert!(e.message.contains("create temporary file"), "{e}");
        assert_eq!(cp.version(), 1);
        assert_eq!(state_file(&dir).version, 1);
    }

    #[test]
    fn timeout_is_reported_but_the_change_stands() {
        let (dir, cp, sink) = setup("timeout");
        *sink.mode.lock().unwrap() = Some(SinkError::Timeout {
            version: 2,
            lagging: vec![1],
            timeout: Duration::from_millis(5),
        });
        let r = cp.apply(&[drain("10.1.0.21")], None, false);
        assert!(!r.ok);
        assert_eq!(r.version, 2);
        let e = r.error.unwrap();
        assert_eq!(e.code, ErrorCode::Timeout);
        assert!(e.message.contains("workers [1]"), "{e}");
        assert_eq!(cp.version(), 2);
        assert_eq!(state_file(&dir).version, 2);
    }

    #[test]
    fn validate_applies_nothing() {
        let (_dir, cp, sink) = setup("validate");
        let r = cp.apply(&[drain("10.1.0.21")], None, true);
        assert!(r.ok);
        assert!(matches!(
            r.data,
            Some(Data::Validated {
                would_be_version: 2,
                ..
            })
        ));
        assert_eq!(cp.version(), 1);
        assert!(sink.published.lock().unwrap().is_empty());
    }

    #[test]
    fn path_admin_and_health() {
        let (_dir, cp, _sink) = setup("paths");
        let disable = Op::SetPathAdmin(SetPathAdmin {
            name: "sha-bj-unicom".into(),
            admin: Admin::Disabled,
        });
        assert!(cp.apply(&[disable], None, false).ok);
        let state = |cp: &ControlPlane, i: usize| cp.snapshot().spec.paths[i].state;
        assert_eq!(state(&cp, 1), PathState::Disabled);
        // The prober cannot override the operator...
        assert_eq!(
            cp.set_path_health(&[("sha-bj-unicom", Health::Up), ("gone", Health::Up)]),
            Ok(None)
        );
        // ...but moves enabled paths, once per change.
        assert_eq!(
            cp.set_path_health(&[("sha-bj-telecom", Health::Down)]),
            Ok(Some(3))
        );
        assert_eq!(
            cp.set_path_health(&[("sha-bj-telecom", Health::Down)]),
            Ok(None)
        );
        assert_eq!(state(&cp, 0), PathState::Down);
        let enable = Op::SetPathAdmin(SetPathAdmin {
            name: "sha-bj-unicom".into(),
            admin: Admin::Enabled,
        });
        assert!(cp.apply(&[enable], None, false).ok);
        // No prober: a re-enabled path is up.
        assert_eq!(state(&cp, 1), PathState::Up);
        let weight = Op::UpdateBackend(UpdateBackend {
            eip: "192.0.2.20".parse().unwrap(),
            protocol: Protocol::Tcp,
            port: 80,
            address: "10.1.0.21".parse().unwrap(),
            backend_port: Some(8080),
            weight: 5,
        });
        assert!(cp.apply(&[weight], None, false).ok);
        assert_eq!(cp.version(), 5);
    }

    #[test]
    fn a_broken_first_configuration_leaves_no_state() {
        let dir = temp_dir("firstbad");
        let config = dir.join("pop.toml");
        fs::write(&config, EXAMPLE.replacen("mtu = 1550", "mtu = 100", 1)).unwrap();
        let store = StateFile::new(dir.join("state.json"));
        let e = store.boot(&config, None).unwrap_err().to_string();
        assert!(e.contains("pop.toml") && e.contains("mtu"), "{e}");
        assert!(!dir.join("state.json").exists());
        fs::write(&config, EXAMPLE).unwrap();
        let boot = store.boot(&config, None).unwrap();
        assert_eq!((boot.origin, boot.tables.version), (Origin::Config, 1));
        assert_eq!(store.load().unwrap().unwrap().spec, boot.spec);
    }

    #[test]
    fn a_resolver_fills_in_and_refresh_follows_it() {
        let (_dir, cp, sink) = setup("resolve");
        let mac = Arc::new(Mutex::new(MacAddr([2, 0, 0, 0, 9, 9])));
        let m = Arc::clone(&mac);
        let cp = cp.with_resolver(Arc::new(move |spec: &PopSpec| {
            let mut s = spec.clone();
            s.paths[0].next_hop_mac = Some(*m.lock().unwrap());
            s
        }));
        // The first refresh picks up the resolver's MAC; the next changes nothing.
        assert_eq!(cp.refresh(), Ok(Some(2)));
        assert_eq!(cp.refresh(), Ok(None));
        assert_eq!(
            &cp.snapshot().tables.paths[0].template[..6],
            &[2, 0, 0, 0, 9, 9]
        );
        // The operator's spec is what is kept.
        assert_eq!(
            cp.snapshot().spec.paths[0].next_hop_mac,
            Some(MacAddr([2, 0, 0, 0, 2, 2]))
        );
        *mac.lock().unwrap() = MacAddr([2, 0, 0, 0, 9, 10]);
        assert_eq!(cp.refresh(), Ok(Some(3)));
        assert_eq!(*sink.published.lock().unwrap(), vec![2, 3]);
    }

    #[test]
    fn broken_state_file_is_an_error_not_a_fallback() {
        let dir = temp_dir("broken");
        let store = StateFile::new(dir.join("state.json"));
        assert!(store.load().unwrap().is_none());
        fs::write(dir.join("state.json"), "{\"version\": 3}").unwrap();
        let e = store.load().unwrap_err().to_string();
        assert!(e.contains("missing field `spec`"), "{e}");
        let spec: PopSpec = toml::from_str(EXAMPLE).unwrap();
        let mut bad = spec.clone();
        bad.paths[0].mtu = 10;
        store.save(4, &bad).unwrap();
        let config = dir.join("unused.toml");
        let e = store.boot(&config, None).unwrap_err().to_string();
        assert!(e.contains("table version 4") && e.contains("mtu"), "{e}");
        store.save(4, &spec).unwrap();
        let boot = store.boot(&config, None).unwrap();
        assert_eq!((boot.tables.version, boot.spec), (4, spec));
        assert!(!dir.join(".state.json.tmp").exists());
    }
}
