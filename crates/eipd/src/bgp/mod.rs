//! BGP announcements of this POP, through BIRD 2 run as a supervised child.
//!
//! | part | file |
//! |---|---|
//! | BIRD's configuration, generated once from `[bgp]` | [`conf`] |
//! | BIRD as a child process, its control socket | [`bird`] |
//! | when a prefix may be announced (pure), damping | [`gate`] |
//! | the task: gate every prefix, enable/disable, drain | this file |
//!
//! The task runs on a thread of its own for the whole life of `eipd`: BIRD is
//! started by this thread under `PR_SET_PDEATHSIG`, so it dies with it. Each
//! pass (every 20 ms) reads what the data plane reports ([`DataplaneFacts`],
//! written by the control thread; path health from the prober's board), runs
//! each prefix's gate and damper, and makes BIRD's pre-declared protocols
//! match. BIRD is restarted (after a second) if it exits.

pub mod bird;
pub mod conf;
pub mod gate;
mod metrics;

pub use metrics::render as render_metrics;

use bird::{Bird, SessionRow};
use eip_control::api::ApiError;
use eip_control::health::Health;
use eip_control::probe::HealthBoard;
use eip_control::state::BgpService;
use eip_control::state::ControlPlane;
use eip_dataplane::bgp_spec::BgpSpec;
use gate::{Closed, Damper, Facts, Transition};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the task gates the prefixes.
const PASS: Duration = Duration::from_millis(20);
/// How often the sessions are read from BIRD.
const SESSIONS_EVERY: Duration = Duration::from_millis(500);
/// Wait before starting BIRD again after it exited.
const RESTART_AFTER: Duration = Duration::from_secs(1);

/// What the control thread reports about the data plane.
#[derive(Debug, Default)]
pub struct DataplaneFacts {
    pub xdp_attached: AtomicBool,
    pub version: AtomicU64,
    pub workers_current: AtomicBool,
}

impl DataplaneFacts {
    /// Called by the control thread every pass of its loop.
    pub fn update(&self, attached: bool, version: u64, workers_current: bool) {
        self.version.store(version, Ordering::Relaxed);
        self.workers_current
            .store(workers_current, Ordering::Relaxed);
        self.xdp_attached.store(attached, Ordering::Relaxed);
    }
}

/// What `show_bgp` reports: observed state, never persisted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BgpStatus {
    /// `running` (with BIRD's pid), `restarting`, `stopped`.
    pub speaker: String,
    pub speaker_pid: Option<u32>,
    pub speaker_restarts: u64,
    pub draining: bool,
    pub sessions: Vec<SessionStatus>,
    pub prefixes: Vec<PrefixStatus>,
    pub announces: u64,
    pub withdraws: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionStatus {
    pub neighbor: String,
    pub remote_as: u32,
    pub bfd: bool,
    #[serde(flatten)]
    pub row: Option<SessionRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrefixStatus {
    pub prefix: String,
    pub announced: bool,
    /// Announced with GRACEFUL_SHUTDOWN.
    pub draining: bool,
    /// Why the gate is closed, when it is.
    pub closed: Option<String>,
    pub closed_kind: Option<Closed>,
    pub announces: u64,
    pub withdraws: u64,
}

/// What BIRD should have enabled for one prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    Announce,
    Drain,
}

struct Shared {
    drain: AtomicBool,
    drained: AtomicBool,
    stop: AtomicBool,
    status: Mutex<BgpStatus>,
}

/// The running BGP task.
pub struct BgpTask {
    shared: Arc<Shared>,
    drain_wait: Duration,
    thread: Option<JoinHandle<()>>,
}

/// What the control socket sees of the task (`show_bgp`, `drain`); made before
/// the control plane, joined to the task once it runs.
pub struct BgpView {
    shared: OnceLock<Arc<Shared>>,
    /// The daemon's stop flag: `drain` stops the daemon as SIGTERM does, and the
    /// control thread drains before it stops the workers.
    stop: Arc<AtomicBool>,
    drain_wait_ms: u64,
}

impl BgpView {
    pub fn new(stop: Arc<AtomicBool>, spec: &BgpSpec) -> BgpView {
        BgpView {
            shared: OnceLock::new(),
            stop,
            drain_wait_ms: spec.drain_wait_ms,
        }
    }
}

impl BgpView {
    /// The task's status (`None` before it runs).
    pub fn snapshot(&self) -> Option<BgpStatus> {
        self.shared.get().map(|s| {
            s.status
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        })
    }
}

impl BgpService for BgpView {
    fn status(&self) -> serde_json::Value {
        match self.snapshot() {
            Some(status) => serde_json::to_value(status).unwrap_or_default(),
            None => serde_json::json!({ "speaker": "not started" }),
        }
    }

    fn drain(&self) -> Result<u64, ApiError> {
        if let Some(shared) = self.shared.get() {
            shared.drain.store(true, Ordering::Relaxed);
        }
        tracing::info!("bgp: drain asked on the control socket: eipd stops after it");
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.drain_wait_ms)
    }
}

/// Where the task reads the data plane's state.
pub struct Inputs {
    pub control: Arc<ControlPlane>,
    pub board: Arc<HealthBoard>,
    /// Backend checks: which EIPs have every backend down.
    pub backends: Arc<eip_control::backends::BackendBoard>,
    pub facts: Arc<DataplaneFacts>,
}

impl BgpTask {
    /// Validates `spec`, writes BIRD's configuration next to the control socket
    /// (`<socket>.bird.conf`, control socket `<socket>.bird`), starts BIRD and the
    /// task. Nothing is announced until the gate of a prefix opens.
    ///
    /// # Errors
    /// The section is invalid, the files cannot be written, BIRD does not start.
    pub fn start(
        spec: &BgpSpec,
        pop_name: &str,
        socket: &Path,
        inputs: Inputs,
        view: Option<&BgpView>,
    ) -> anyhow::Result<BgpTask> {
        spec.validate()?;
        let conf = with_suffix(socket, ".bird.conf");
        let ctl = with_suffix(socket, ".bird");
        std::fs::write(&conf, conf::render(spec, pop_name))
            .map_err(|e| anyhow::anyhow!("writing BIRD's configuration {}: {e}", conf.display()))?;
        let shared = Arc::new(Shared {
            drain: AtomicBool::new(false),
            drained: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            status: Mutex::default(),
        });
        if let Some(view) = view {
            let _ = view.shared.set(Arc::clone(&shared));
        }
        // BIRD must be started by the thread that outlives it (PR_SET_PDEATHSIG
        // follows the thread), so the first start happens there too; its
        // result comes back here.
        let (started, first) = std::sync::mpsc::channel();
        let thread = {
            let shared = Arc::clone(&shared);
            let spec = spec.clone();
            std::thread::Builder::new()
                .name("eipd-bgp".into())
                .spawn(move || {
                    let bird = Bird::start(&spec.bird, &conf, &ctl);
                    match bird {
                        Ok(bird) => {
                            let _ = started.send(Ok(bird.pid()));
                            Runner::new(spec, conf, ctl, inputs, shared).run(bird);
                        }
                        Err(e) => {
                            let _ = started.send(Err(e));
                        }
                    }
                })?
        };
        let pid = first
            .recv()
            .map_err(|_| anyhow::anyhow!("the BGP task ended before starting BIRD"))??;
        tracing::info!("bgp: BIRD running (pid {pid}); prefixes are announced as their gates open");
        Ok(BgpTask {
            shared,
            drain_wait: Duration::from_millis(spec.drain_wait_ms),
            thread: Some(thread),
        })
    }

    /// Drains (GRACEFUL_SHUTDOWN, wait, withdraw; unless done already), then
    /// stops BIRD. Called by the control thread while the workers still forward.
    pub fn shutdown(mut self) {
        self.shared.drain.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + self.drain_wait + Duration::from_secs(2);
        while !self.shared.drained.load(Ordering::Relaxed) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

/// The task's own state, on its thread.
struct Runner {
    spec: BgpSpec,
    conf: PathBuf,
    ctl: PathBuf,
    inputs: Inputs,
    shared: Arc<Shared>,
    dampers: Vec<Damper>,
    /// What BIRD has enabled, per prefix (`None`: unknown, after a restart).
    applied: Vec<Option<Mode>>,
    closed: Vec<Option<Closed>>,
    /// Announces and withdraws per prefix.
    transitions: Vec<(u64, u64)>,
    drain_started: Option<Instant>,
    sessions: Vec<Option<SessionRow>>,
    restarts: u64,
    announces: u64,
    withdraws: u64,
    epoch: Instant,
}

impl Runner {
    fn new(
        spec: BgpSpec,
        conf: PathBuf,
        ctl: PathBuf,
        inputs: Inputs,
        shared: Arc<Shared>,
    ) -> Runner {
        let n = spec.prefixes.len();
        Runner {
            sessions: vec![None; spec.neighbors.len()],
            spec,
            conf,
            ctl,
            inputs,
            shared,
            dampers: vec![Damper::default(); n],
            applied: vec![Some(Mode::Off); n],
            closed: vec![None; n],
            transitions: vec![(0, 0); n],
            drain_started: None,
            restarts: 0,
            announces: 0,
            withdraws: 0,
            epoch: Instant::now(),
        }
    }

    fn run(mut self, first: Bird) {
        let mut bird = Some(first);
        let mut last_sessions = Instant::now() - SESSIONS_EVERY;
        let mut down_since: Option<Instant> = None;
        while !self.shared.stop.load(Ordering::Relaxed) {
            if let Some(b) = bird.as_mut() {
                if !b.running() {
                    tracing::error!(
                        "bgp: BIRD (pid {}) exited; nothing is announced until it runs again",
                        b.pid()
                    );
                    bird = None;
                    down_since = Some(Instant::now());
                    self.applied.iter_mut().for_each(|a| *a = None);
                    self.sessions.iter_mut().for_each(|s| *s = None);
                }
            }
            if bird.is_none() && down_since.is_some_and(|t| t.elapsed() >= RESTART_AFTER) {
                match Bird::start(&self.spec.bird, &self.conf, &self.ctl) {
                    Ok(b) => {
                        self.restarts += 1;
                        tracing::warn!("bgp: BIRD started again (pid {})", b.pid());
                        self.applied.iter_mut().for_each(|a| *a = Some(Mode::Off));
                        bird = Some(b);
                        down_since = None;
                    }
                    Err(e) => {
                        tracing::error!("bgp: {e}; trying again in {RESTART_AFTER:?}");
                        down_since = Some(Instant::now());
                    }
                }
            }
            let wanted = self.decide();
            if let Some(b) = bird.as_ref() {
                self.apply(b, &wanted);
                if last_sessions.elapsed() >= SESSIONS_EVERY {
                    self.read_sessions(b);
                    last_sessions = Instant::now();
                }
            }
            self.publish(bird.as_ref().map(Bird::pid));
            std::thread::sleep(PASS);
        }
        if let Some(b) = bird {
            b.shutdown(Duration::from_secs(1));
        }
        self.applied.iter_mut().for_each(|a| *a = Some(Mode::Off));
        self.publish(None);
        tracing::info!("bgp: BIRD stopped");
    }

    /// Gates and damps every prefix; returns what BIRD should have enabled.
    fn decide(&mut self) -> Vec<Mode> {
        let now = self.epoch.elapsed();
        let draining = self.shared.drain.load(Ordering::Relaxed);
        if draining && self.drain_started.is_none() {
            self.drain_started = Some(Instant::now());
            tracing::info!(
                "bgp: draining: prefixes announced with GRACEFUL_SHUTDOWN (65535:0){} for {} ms, then withdrawn",
                if self.spec.drain_prepend > 0 {
                    format!(" and {} more prepend(s)", self.spec.drain_prepend)
                } else {
                    String::new()
                },
                self.spec.drain_wait_ms
            );
        }
        // Nothing announced when the drain starts: nothing to wait for.
        let nothing_announced = self.dampers.iter().all(|d| !d.announced());
        let drain_over = self.drain_started.is_some_and(|t| {
            nothing_announced || t.elapsed() >= Duration::from_millis(self.spec.drain_wait_ms)
        });
        let snapshot = self.inputs.control.snapshot();
        let f = &self.inputs.facts;
        let facts = Facts {
            xdp_attached: f.xdp_attached.load(Ordering::Relaxed),
            version: f.version.load(Ordering::Relaxed),
            workers_current: f.workers_current.load(Ordering::Relaxed),
            draining: false,
        };
        let board = &self.inputs.board;
        let health = |path: &str| board.get(path).map(|h| h.enabled && h.health == Health::Up);
        let withdraw_after = Duration::from_millis(self.spec.withdraw_after_ms);
        let hold_down = Duration::from_millis(self.spec.hold_down_ms);
        let mut wanted = Vec::with_capacity(self.spec.prefixes.len());
        for (i, p) in self.spec.prefixes.iter().enumerate() {
            let verdict = gate::gate(&p.prefix, &snapshot.spec, &facts, &health).and_then(|()| {
                if !self.spec.withdraw_when_backends_down {
                    return Ok(());
                }
                let backends = &self.inputs.backends;
                gate::backends(&p.prefix, &snapshot.spec, &|eip| backends.eip_down(eip))
            });
            let closed = verdict.err();
            let damper = &mut self.dampers[i];
            let transition = if draining {
                if drain_over {
                    damper.force_withdraw()
                } else {
                    None
                }
            } else {
                damper.step(now, closed.is_none(), withdraw_after, hold_down)
            };
            match transition {
                Some(Transition::Announce) => {
                    self.announces += 1;
                    self.transitions[i].0 += 1;
                    tracing::info!("bgp: {}: announce: the data plane forwards it", p.prefix);
                }
                Some(Transition::Withdraw) => {
                    self.withdraws += 1;
                    self.transitions[i].1 += 1;
                    let why = if draining {
                        "drain over".to_string()
                    } else {
                        closed
                            .as_ref()
                            .map_or_else(String::new, ToString::to_string)
                    };
                    tracing::warn!("bgp: {}: withdraw: {why}", p.prefix);
                }
                None => {}
            }
            if closed != self.closed[i] && !draining {
                if let Some(c) = &closed {
                    if damper.announced() {
                        tracing::warn!(
                            "bgp: {}: gate closed: {c} (withdrawn after {} ms)",
                            p.prefix,
                            self.spec.withdraw_after_ms
                        );
                    } else {
                        tracing::info!("bgp: {}: not announced: {c}", p.prefix);
                    }
                }
            }
            self.closed[i] = if draining {
                Some(Closed::Draining)
            } else {
                closed
            };
            wanted.push(match (damper.announced(), draining) {
                (false, _) => Mode::Off,
                (true, false) => Mode::Announce,
                (true, true) => Mode::Drain,
            });
        }
        wanted
    }

    /// Makes BIRD's protocols match `wanted`: enables before disables, so a
    /// prefix moving to drain is replaced in place, never withdrawn.
    fn apply(&mut self, bird: &Bird, wanted: &[Mode]) {
        for (i, &mode) in wanted.iter().enumerate() {
            if self.applied[i] == Some(mode) {
                continue;
            }
            let announce = conf::announce_protocol(i);
            let drain = conf::drain_protocol(i);
            let steps: &[(&str, bool)] = match mode {
                Mode::Off => &[(&announce, false), (&drain, false)],
                Mode::Announce => &[(&announce, true), (&drain, false)],
                Mode::Drain => &[(&drain, true), (&announce, false)],
            };
            let done = steps
                .iter()
                .all(|(protocol, on)| match bird.set_enabled(protocol, *on) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!("bgp: {e}");
                        false
                    }
                });
            self.applied[i] = done.then_some(mode);
        }
        let nothing_announced = self.dampers.iter().all(|d| !d.announced());
        let drain_over = self.drain_started.is_some_and(|t| {
            nothing_announced || t.elapsed() >= Duration::from_millis(self.spec.drain_wait_ms)
        });
        if drain_over
            && self.applied.iter().all(|a| *a == Some(Mode::Off))
            && !self.shared.drained.swap(true, Ordering::Relaxed)
        {
            tracing::info!("bgp: drained: every prefix withdrawn");
        }
    }

    fn read_sessions(&mut self, bird: &Bird) {
        match bird.sessions() {
            Ok(rows) => {
                for (i, s) in self.sessions.iter_mut().enumerate() {
                    let name = conf::neighbor_protocol(i);
                    let fresh = rows.iter().find(|r| r.protocol == name).cloned();
                    let was = s.as_ref().is_some_and(SessionRow::established);
                    let now = fresh.as_ref().is_some_and(SessionRow::established);
                    if was != now {
                        let n = &self.spec.neighbors[i];
                        tracing::info!(
                            "bgp: session with {} (AS {}) {}",
                            n.address,
                            n.remote_as,
                            if now {
                                "established".to_string()
                            } else {
                                format!("down: {}", fresh.as_ref().map_or("", |r| r.info.as_str()))
                            }
                        );
                    }
                    *s = fresh;
                }
            }
            Err(e) => tracing::warn!("bgp: reading sessions: {e}"),
        }
    }

    fn publish(&self, pid: Option<u32>) {
        let status = BgpStatus {
            speaker: match pid {
                Some(_) => "running".into(),
                None if self.shared.stop.load(Ordering::Relaxed) => "stopped".into(),
                None => "restarting".into(),
            },
            speaker_pid: pid,
            speaker_restarts: self.restarts,
            draining: self.shared.drain.load(Ordering::Relaxed),
            sessions: self
                .spec
                .neighbors
                .iter()
                .zip(&self.sessions)
                .map(|(n, row)| SessionStatus {
                    neighbor: n.address.to_string(),
                    remote_as: n.remote_as,
                    bfd: n.bfd,
                    row: row.clone(),
                })
                .collect(),
            prefixes: self
                .spec
                .prefixes
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let applied = self.applied[i];
                    PrefixStatus {
                        prefix: p.prefix.to_string(),
                        announced: matches!(applied, Some(Mode::Announce | Mode::Drain)),
                        draining: applied == Some(Mode::Drain),
                        closed: self.closed[i].as_ref().map(ToString::to_string),
                        closed_kind: self.closed[i].clone(),
                        announces: self.transitions[i].0,
                        withdraws: self.transitions[i].1,
                    }
                })
                .collect(),
            announces: self.announces,
            withdraws: self.withdraws,
        };
        *self
            .shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = status;
    }
}

/// Starts the BGP task when the POP description has a `[bgp]` section.
///
/// # Errors
/// As [`BgpTask::start`].
pub fn start_if_configured(
    socket: &Path,
    inputs: Inputs,
    view: Option<&BgpView>,
) -> anyhow::Result<Option<BgpTask>> {
    let snapshot = inputs.control.snapshot();
    let Some(spec) = snapshot.spec.bgp.clone() else {
        return Ok(None);
    };
    let pop = snapshot.spec.pop.name.clone();
    drop(snapshot);
    BgpTask::start(&spec, &pop, socket, inputs, view).map(Some)
}
