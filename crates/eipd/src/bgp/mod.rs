//! BGP announcements of this POP, through BIRD 2 run as a supervised child.
//!
//! | part | file |
//! |---|---|
//! | BIRD's configuration, generated from `[bgp]` | [`conf`] |
//! | BIRD as a child process, its control socket | [`bird`] |
//! | when a prefix may be announced (pure), damping | [`gate`] |
//! | a reload that changes `[bgp]`, applied to the running BIRD | [`live`] |
//! | what `show_bgp` and the metrics report | [`status`], `metrics` |
//! | what the control socket sees: status, drain, a reload's check | `view` |
//! | the task: gate every prefix, enable/disable, drain | this file |
//!
//! The task runs on a thread of its own for the whole life of `eipd`: BIRD is
//! started by this thread under `PR_SET_PDEATHSIG`, so it dies with it. Each
//! pass (every 20 ms) reads what the data plane reports ([`DataplaneFacts`],
//! written by the control thread; path health from the prober's board), runs
//! each prefix's gate and damper, and makes BIRD's pre-declared protocols
//! match. BIRD is restarted (after a second) if it exits. Each pass also
//! follows the spec in force, so a reload that changes `[bgp]` is applied to
//! the running BIRD ([`live`]).

pub mod bird;
pub mod conf;
pub mod gate;
mod live;
mod metrics;
pub mod status;
mod view;

pub use metrics::render as render_metrics;
pub use status::{BgpStatus, PrefixStatus, SessionStatus};
pub use view::BgpView;

use bird::{Bird, SessionRow};
use conf::Mode;
use eip_control::health::Health;
use eip_control::probe::HealthBoard;
use eip_control::state::ControlPlane;
use eip_dataplane::bgp_spec::BgpSpec;
use eip_dataplane::tables::PopSpec;
use gate::{Facts, Transition};
use live::PrefixState;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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

struct Shared {
    drain: AtomicBool,
    drained: AtomicBool,
    stop: AtomicBool,
    /// `drain_wait_ms` of the section in force (a reload may change it).
    drain_wait_ms: AtomicU64,
    status: Mutex<BgpStatus>,
}

/// The running BGP task.
pub struct BgpTask {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
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
        live::write_atomically(&conf, &conf::render(spec, pop_name, &|_| Mode::Off))
            .map_err(|e| anyhow::anyhow!("writing BIRD's configuration {}: {e}", conf.display()))?;
        let shared = Arc::new(Shared {
            drain: AtomicBool::new(false),
            drained: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            drain_wait_ms: AtomicU64::new(spec.drain_wait_ms),
            status: Mutex::default(),
        });
        if let Some(view) = view {
            let _ = view.shared.set(Arc::clone(&shared));
        }
        // The task's thread starts BIRD (through the spawner thread, whose
        // death the kernel reports to BIRD at once: spawner.rs) and supervises
        // it; the first start's result comes back here.
        let (started, first) = std::sync::mpsc::channel();
        let thread = {
            let shared = Arc::clone(&shared);
            let spec = spec.clone();
            let pop = pop_name.to_string();
            std::thread::Builder::new()
                .name("eipd-bgp".into())
                .spawn(move || {
                    let bird = Bird::start(&spec.bird, &conf, &ctl);
                    match bird {
                        Ok(bird) => {
                            let _ = started.send(Ok(bird.pid()));
                            Runner::new(spec, pop, conf, ctl, inputs, shared).run(bird);
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
            thread: Some(thread),
        })
    }

    /// Drains (GRACEFUL_SHUTDOWN, wait, withdraw; unless done already), then
    /// stops BIRD. Called by the control thread while the workers still forward.
    pub fn shutdown(mut self) {
        self.shared.drain.store(true, Ordering::Relaxed);
        let drain_wait = Duration::from_millis(self.shared.drain_wait_ms.load(Ordering::Relaxed));
        let deadline = Instant::now() + drain_wait + Duration::from_secs(2);
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
    /// The section BIRD was last configured with.
    spec: BgpSpec,
    pop: String,
    conf: PathBuf,
    ctl: PathBuf,
    inputs: Inputs,
    shared: Arc<Shared>,
    /// Per prefix of `spec`, in its order.
    prefixes: Vec<PrefixState>,
    drain_started: Option<Instant>,
    /// Per neighbour of `spec`, in its order.
    sessions: Vec<Option<SessionRow>>,
    /// The spec whose `[bgp]` was last looked at ([`live`]).
    seen: Option<Arc<PopSpec>>,
    /// A section BIRD refused: not tried again until the spec changes.
    refused: Option<BgpSpec>,
    restarts: u64,
    announces: u64,
    withdraws: u64,
    reconfigurations: u64,
    reconfigurations_refused: u64,
    epoch: Instant,
}

impl Runner {
    fn new(
        spec: BgpSpec,
        pop: String,
        conf: PathBuf,
        ctl: PathBuf,
        inputs: Inputs,
        shared: Arc<Shared>,
    ) -> Runner {
        Runner {
            sessions: vec![None; spec.neighbors.len()],
            prefixes: vec![PrefixState::new(); spec.prefixes.len()],
            // The section the task starts with is the one in force (checked
            // on the next pass all the same).
            seen: None,
            spec,
            pop,
            conf,
            ctl,
            inputs,
            shared,
            drain_started: None,
            refused: None,
            restarts: 0,
            announces: 0,
            withdraws: 0,
            reconfigurations: 0,
            reconfigurations_refused: 0,
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
                    self.prefixes.iter_mut().for_each(|p| p.applied = None);
                    self.sessions.iter_mut().for_each(|s| *s = None);
                }
            }
            if bird.is_none() && down_since.is_some_and(|t| t.elapsed() >= RESTART_AFTER) {
                // Everything disabled, as BIRD will have it after a start.
                let text = conf::render(&self.spec, &self.pop, &|_| Mode::Off);
                if let Err(e) = live::write_atomically(&self.conf, &text) {
                    tracing::error!("bgp: writing {}: {e}", self.conf.display());
                }
                match Bird::start(&self.spec.bird, &self.conf, &self.ctl) {
                    Ok(b) => {
                        self.restarts += 1;
                        tracing::warn!("bgp: BIRD started again (pid {})", b.pid());
                        self.prefixes
                            .iter_mut()
                            .for_each(|p| p.applied = Some(Mode::Off));
                        bird = Some(b);
                        down_since = None;
                    }
                    Err(e) => {
                        tracing::error!("bgp: {e}; trying again in {RESTART_AFTER:?}");
                        down_since = Some(Instant::now());
                    }
                }
            }
            self.follow(bird.as_ref());
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
        self.prefixes
            .iter_mut()
            .for_each(|p| p.applied = Some(Mode::Off));
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
        let nothing_announced = self.prefixes.iter().all(|p| !p.damper.announced());
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
            let state = &mut self.prefixes[i];
            let damper = &mut state.damper;
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
                    state.announces += 1;
                    tracing::info!("bgp: {}: announce: the data plane forwards it", p.prefix);
                }
                Some(Transition::Withdraw) => {
                    self.withdraws += 1;
                    state.withdraws += 1;
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
            if closed != state.closed && !draining {
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
            state.closed = if draining {
                Some(gate::Closed::Draining)
            } else {
                closed
            };
            wanted.push(match (state.damper.announced(), draining) {
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
            if self.prefixes[i].applied == Some(mode) {
                continue;
            }
            let prefix = &self.spec.prefixes[i].prefix;
            let announce = conf::announce_protocol(prefix);
            let drain = conf::drain_protocol(prefix);
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
            self.prefixes[i].applied = done.then_some(mode);
        }
        let nothing_announced = self.prefixes.iter().all(|p| !p.damper.announced());
        let drain_over = self.drain_started.is_some_and(|t| {
            nothing_announced || t.elapsed() >= Duration::from_millis(self.spec.drain_wait_ms)
        });
        if drain_over
            && self.prefixes.iter().all(|p| p.applied == Some(Mode::Off))
            && !self.shared.drained.swap(true, Ordering::Relaxed)
        {
            tracing::info!("bgp: drained: every prefix withdrawn");
        }
    }

    fn read_sessions(&mut self, bird: &Bird) {
        match bird.sessions() {
            Ok(rows) => {
                for (i, s) in self.sessions.iter_mut().enumerate() {
                    let name = conf::neighbor_protocol(self.spec.neighbors[i].address);
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
                .zip(&self.prefixes)
                .map(|(p, s)| PrefixStatus {
                    prefix: p.prefix.to_string(),
                    announced: matches!(s.applied, Some(Mode::Announce | Mode::Drain)),
                    draining: s.applied == Some(Mode::Drain),
                    closed: s.closed.as_ref().map(ToString::to_string),
                    closed_kind: s.closed.clone(),
                    announces: s.announces,
                    withdraws: s.withdraws,
                })
                .collect(),
            announces: self.announces,
            withdraws: self.withdraws,
            reconfigurations: self.reconfigurations,
            reconfigurations_refused: self.reconfigurations_refused,
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
