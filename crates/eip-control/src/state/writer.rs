//! [`ControlPlane`]: the single writer that every change goes through (edit a
//! clone, build, save, publish, wait, commit; see the [module docs](super)).

use super::edits;
use super::plugins::{
    BgpService, HealthSource, Resolver, SinkError, StatsSource, TableSink, TraceService,
};
use super::store::{Boot, Resolved, StateFile};
use crate::api::{ApiError, Command, Data, ErrorCode, Op, Reply, Request};
use crate::health::Health;
use crate::report;
use eip_dataplane::tables::{PopSpec, Tables};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// How long a change waits for every worker to switch, unless configured.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(2);

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

    /// Prober snapshots for `show_paths`, and the measured health a path resumes
    /// when re-enabled (without, a re-enabled path is `up`).
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
            Command::Reload(r) => self.reload(r.file.as_deref(), if_version, r.dry_run),
            Command::Trace(t) => self.trace(&t),
            Command::Drain => self.drain(),
        }
    }

    /// Applies `ops` together (or, with `dry_run`, checks them).
    pub fn apply(&self, ops: &[Op], if_version: Option<u64>, dry_run: bool) -> Reply {
        let health = self.health.as_deref();
        self.change(
            |spec| edits::apply_all(ops, spec, health),
            ops.len(),
            if_version,
            dry_run,
        )
    }
    /// version. Paths the operator disabled stay disabled, unknown names are
    /// skipped (the prober may lag behind a `remove_path`).
    ///
    /// Returns the new version, or `None` when nothing changed.
    ///
    /// # Errors
    /// As for any change (e.g. `storage`, `timeout`).
    pub fn set_path_health(&self, states: &[(&str, Health)]) -> Result<Option<u64>, ApiError> {
        let reply = self.change(
            |spec| {
                edits::set_path_health(spec, states);
                Ok(())
            },
            states.len(),
            None,
            false,
        );
        changed_version(reply)
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
        let reply = self.change(|_| Ok(()), 0, None, false);
        changed_version(reply)
    }

    /// The single writer: edit a clone, build, save, publish, wait, commit.
    pub(super) fn change(
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
}

/// The version a change put in force, `None` if it changed nothing. Decided by
/// the writer's own answer, not by comparing versions around the call: another
/// client's change in between would look like ours (and was logged as "next-hop
/// MAC changed" on every operator change).
fn changed_version(reply: Reply) -> Result<Option<u64>, ApiError> {
    if let Some(e) = reply.error {
        return Err(e);
    }
    match reply.data {
        Some(Data::Applied {
            unchanged: false, ..
        }) => Ok(Some(reply.version)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AddEip, Admin, BackendRef, RemoveEip, SetPathAdmin, UpdateBackend};
    use crate::state::store::Origin;
    use crate::state::testkit::{setup, state_file};
    use eip_dataplane::tables::{MacAddr, PathState, Protocol};
    use std::fs;
    use std::path::Path;

    fn drain(address: &str) -> Op {
        Op::DrainBackend(BackendRef {
            eip: "192.0.2.20".parse().unwrap(),
            protocol: Protocol::Tcp,
            port: 80,
            address: address.parse().unwrap(),
            backend_port: None,
        })
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
    fn a_change_that_changed_nothing_is_not_reported_as_one() {
        let unchanged = Reply::ok(
            5,
            Data::Applied {
                previous_version: 4,
                changes: 0,
                unchanged: true,
            },
        );
        assert_eq!(changed_version(unchanged).unwrap(), None);
        let changed = Reply::ok(
            5,
            Data::Applied {
                previous_version: 4,
                changes: 1,
                unchanged: false,
            },
        );
        assert_eq!(changed_version(changed).unwrap(), Some(5));
    }

    #[test]
    fn trace_goes_to_the_tracer_with_the_tables_in_force() {
        use crate::api::{ErrorCode, TraceEnd, TraceRequest, TraceSummary};
        use crate::state::TraceService;

        struct FakeTracer;
        impl TraceService for FakeTracer {
            fn trace(
                &self,
                request: &TraceRequest,
                tables: &Tables,
            ) -> Result<TraceSummary, ApiError> {
                Ok(TraceSummary {
                    file: request.file.clone(),
                    written: tables.ports.len() as u64,
                    lost: 0,
                    ended: TraceEnd::Time,
                    elapsed_ms: 1,
                })
            }
        }
        let request = || Request::new(Command::Trace(TraceRequest::new("/tmp/t.pcapng")));
        let (_dir, cp, _) = setup("trace");
        let reply = cp.handle(request());
        assert_eq!(reply.error.unwrap().code, ErrorCode::Unavailable);
        let cp = cp.with_trace(Arc::new(FakeTracer));
        let reply = cp.handle(request());
        let Some(Data::Trace(summary)) = reply.data else {
            panic!("{reply:?}")
        };
        assert_eq!(summary.written, cp.snapshot().tables.ports.len() as u64);
        assert_eq!(summary.file, Path::new("/tmp/t.pcapng"));
    }
}
