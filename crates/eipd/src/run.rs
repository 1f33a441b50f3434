//! `eipd run`: the data plane on AF_XDP. This file wires the parts together and
//! owns the control thread's loop; each part lives beside it:
//!
//! | step | file |
//! |---|---|
//! | boot from the state file, else the configuration | `eip_control::state` (`StateFile`) |
//! | next hops from the kernel's neighbour table | [`crate::tasks::neighbours`] |
//! | AF_XDP settings from ports and options | [`crate::boot`] |
//! | what each worker runs per batch | [`crate::processor`] |
//! | a change from the socket to the workers | `eip_control::state` (`ControlPlane`) → [`crate::publish`] |
//! | path probes and verdicts | [`crate::tasks::prober`] |
//! | packet trace (`eipctl trace`) | [`crate::trace`] |
//! | metrics | [`crate::metrics_source`] |
//! | the final report | [`crate::shutdown`] |
//! | BGP announcements (BIRD as a child), gated by the data plane | [`crate::bgp`] |
//! | readiness for systemd (`READY=1`, `STATUS=`, `STOPPING=1`) | [`crate::notify`] |
//!
//! The calling thread is the control thread: it owns the AF_XDP runtime, applies
//! every new table snapshot (filter maps, then workers) and answers, and on
//! SIGINT/SIGTERM stops the workers and prints the final report.

use crate::metrics_source::{build_info, MetricsSources};
use crate::notify::Notifier;
use crate::processor::{merged_latency, PipelineWorker, Published};
use crate::publish::{apply_swap, ChannelSink, SwapRequest};
use crate::signals::Signals;
use crate::stats_source::{DaemonStats, DriverFigures};
use crate::tasks::{neighbours, prober};
use crate::trace::{TraceHub, Tracer, WorkerTrace};
use crate::{boot, shutdown};
use anyhow::{Context, Result};
use eip_afxdp::{AfXdpRuntime, BindPreference, XdpModePreference};
use eip_control::health::HealthConfig;
use eip_control::metrics::EipSeries;
use eip_control::probe::HealthBoard;
use eip_control::state::{ControlPlane, Origin, StartFrom, StateDoc, StateFile};
use eip_control::{metrics, server};
use eip_dataplane::swap;
use eip_dataplane::Tables;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What `eipd run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: PathBuf,
    /// State file: the last committed spec and version; wins over `config` when present.
    pub state: PathBuf,
    /// Control socket path.
    pub socket: PathBuf,
    /// Device queues to serve, one worker each.
    pub queues: Vec<u32>,
    /// CPU per worker (default: worker i on CPU (i + 1) mod CPUs, leaving CPU 0 to
    /// the kernel and the control thread when there is more than one).
    pub cpus: Option<Vec<usize>>,
    pub xdp_mode: XdpModePreference,
    pub bind_mode: BindPreference,
    /// Sleep when idle instead of spinning (shared machines, laptops, CI).
    pub idle_sleep: bool,
    /// Print a one-line rate summary this often.
    pub stats_every: Option<Duration>,
    /// Path probing: interval, timeout, thresholds.
    pub health: HealthConfig,
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    pub metrics: Option<SocketAddr>,
    /// Allow a non-loopback `metrics` address.
    pub metrics_any: bool,
    /// Start from the state file or the configuration when both exist.
    pub from: StartFrom,
    /// Which EIPs get series of their own in the metrics.
    pub metrics_eips: EipSeries,
    /// Most EIPs (the XDP filter maps' size), over `[pop] max_eips`; see [`boot::max_eips`].
    pub max_eips: Option<u32>,
}

impl RunOptions {
    /// The defaults `eipd run --config x` would have, for tests.
    #[cfg(test)]
    pub fn for_tests(queues: Vec<u32>) -> RunOptions {
        RunOptions {
            config: "pop.toml".into(),
            state: "state.json".into(),
            socket: "eipd.sock".into(),
            queues,
            cpus: None,
            xdp_mode: XdpModePreference::Auto,
            bind_mode: BindPreference::Auto,
            idle_sleep: false,
            stats_every: None,
            health: HealthConfig::default(),
            metrics: None,
            metrics_any: false,
            from: StartFrom::State,
            metrics_eips: EipSeries::default(),
            max_eips: None,
        }
    }
}

/// How often the driver's counters are copied out for `stats` and metrics.
const DRIVER_REFRESH: Duration = Duration::from_millis(200);
/// How long a table swap may take to reach every worker.
const SWAP_TIMEOUT: Duration = Duration::from_secs(2);

/// Warns, from a thread of its own, when the configuration file differs from
/// the state the daemon started from: reading a large configuration takes
/// seconds (about 10 s of CPU at 1M EIPs), so it runs once the daemon serves,
/// and the start neither waits for it nor shares the CPU with it.
fn warn_if_config_differs(store: &StateFile, doc: &StateDoc, config: &Path, state: &Path) {
    let (store, doc) = (store.clone(), doc.clone());
    let (file, state) = (config.to_path_buf(), state.to_path_buf());
    let spawned = std::thread::Builder::new()
        .name("eipd-config-diff".into())
        .spawn(move || {
            if let Some(diff) = store.disagreement(&doc, &file) {
                tracing::warn!(
                    "{} differs from the state file {} (version {}): {diff}. The STATE FILE is \
                     in force (it holds the changes made through the control socket). To run \
                     the configuration file instead: `eipctl reload` (or SIGHUP) now, or \
                     restart with `--from config`.",
                    file.display(),
                    state.display(),
                    doc.version
                );
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(
            "not comparing {} with the state file: {e}",
            config.display()
        );
    }
}

/// Runs until SIGINT or SIGTERM.
pub fn run(opts: &RunOptions) -> Result<()> {
    let signals = Signals::install()?;
    let stop = Arc::clone(&signals.stop);

    if let Some(addr) = opts.metrics {
        metrics::check_address(addr, opts.metrics_any)?;
    }
    let notify = Notifier::from_env().unwrap_or_else(|e| {
        tracing::warn!("NOTIFY_SOCKET: {e}; the service manager will not hear that eipd is ready");
        Notifier::disabled()
    });
    tell(&notify.status("starting: loading tables, resolving next hops"));
    let mut phases = BootPhases::start();
    let store = StateFile::new(&opts.state);
    // Read once: the state file with its journal, or the configuration.
    let loaded = store.load_for_boot(&opts.config, opts.from)?;
    let origin = loaded.origin;
    phases.mark("read");
    if let Some(bgp) = &loaded.doc.spec.bgp {
        bgp.validate().context("the [bgp] section")?;
    }
    neighbours::wait_for_neighbours(&loaded.doc.spec, &stop)?;
    phases.mark("next hops");
    let boot = store.boot_loaded(loaded, &opts.config, Some(&neighbours::kernel_resolver))?;
    phases.mark("tables");
    tracing::info!(
        "table version {} from {}",
        boot.tables.version,
        match origin {
            Origin::StateFile => opts.state.display().to_string(),
            Origin::Config => opts.config.display().to_string(),
        }
    );
    let tables = Arc::clone(&boot.tables);
    let afxdp = boot::afxdp_config(&tables, &boot.spec, opts)?;
    let (mut publisher, subscribers) = swap::channel(Arc::clone(&tables), afxdp.queues.len());
    let published = Published::per_worker(afxdp.queues.len());
    let trace_hub = TraceHub::new(afxdp.queues.len());
    let mut subscribers = subscribers.into_iter();
    let mut slots = published.iter();
    let mut lanes = 0..afxdp.queues.len();
    let workers = afxdp.queues.len();
    let mut runtime = AfXdpRuntime::start(&afxdp, |queue| {
        PipelineWorker::new(
            subscribers.next().expect("one subscriber per queue"),
            Arc::clone(slots.next().expect("one publication slot per queue")),
            WorkerTrace::new(
                Arc::clone(&trace_hub),
                lanes.next().expect("one trace lane per queue"),
                queue,
            ),
        )
        .with_workers(workers)
    })
    .context("starting the AF_XDP data plane")?;
    phases.mark("AF_XDP");
    runtime
        .sync_maps(&*tables)
        .context("loading EIPs and VTEPs into the XDP filter")?;
    phases.mark("XDP maps");

    // Changes arrive on socket threads; the runtime stays on this thread, which
    // applies each new snapshot (filter maps, then workers) and answers.
    let (swap_tx, swap_rx) = mpsc::channel::<SwapRequest>();
    // The driver's figures live in the runtime (this thread); the loop below
    // copies them here for `stats` and the metrics listener.
    let driver = Arc::new(Mutex::new(DriverFigures::read(&runtime)));
    let board = Arc::new(HealthBoard::default());
    let backend_board = Arc::new(eip_control::backends::BackendBoard::default());
    let board_for_signals = Arc::clone(&board);
    let health_view = Arc::clone(&board);
    let tracer = Tracer::new(
        trace_hub,
        afxdp.batch_size,
        runtime.epoch(),
        Arc::clone(&stop),
    );
    let bgp_view = boot
        .spec
        .bgp
        .as_ref()
        .map(|b| Arc::new(crate::bgp::BgpView::new(Arc::clone(&stop), b, &opts.socket)));
    // Compared once the daemon serves (below): it parses the whole file.
    let compare = (origin == Origin::StateFile).then(|| {
        let doc = StateDoc {
            version: boot.tables.version,
            spec: boot.spec.clone(),
        };
        (store.clone(), doc)
    });
    let mut plane = ControlPlane::new(store, boot, ChannelSink(swap_tx));
    if let Some(view) = &bgp_view {
        plane = plane.with_bgp(Arc::clone(view) as Arc<dyn eip_control::state::BgpService>);
    }
    let control = Arc::new(
        plane
            .with_resolver(Arc::new(neighbours::kernel_resolver))
            .with_health(Arc::new(move |path: &str| health_view.get(path)))
            .with_stats(Arc::new(DaemonStats {
                published: Arc::clone(&published),
                driver: Arc::clone(&driver),
            }))
            .with_trace(Arc::new(tracer))
            .with_ack_timeout(SWAP_TIMEOUT)
            .with_max_eips(afxdp.max_eips as usize)
            .with_config_path(&opts.config),
    );
    let server = server::spawn(
        &opts.socket,
        Arc::clone(&control),
        server::ServerConfig::default(),
    )
    .with_context(|| format!("control socket {}", opts.socket.display()))?;
    if let Some((store, doc)) = &compare {
        warn_if_config_differs(store, doc, &opts.config, &opts.state);
    }
    neighbours::spawn_refresh(Arc::clone(&control), Arc::clone(&stop));
    let prober = prober::spawn(
        &runtime,
        Arc::clone(&control),
        Arc::clone(&board),
        Arc::clone(&backend_board),
        opts.health.clone(),
        Arc::clone(&stop),
    )?;
    let bgp_facts = Arc::new(crate::bgp::DataplaneFacts::default());
    let bgp = crate::bgp::start_if_configured(
        &opts.socket,
        crate::bgp::Inputs {
            control: Arc::clone(&control),
            board: Arc::clone(&board),
            backends: Arc::clone(&backend_board),
            facts: Arc::clone(&bgp_facts),
        },
        bgp_view.as_deref(),
    )?;
    if let Some(addr) = opts.metrics {
        let sources = MetricsSources {
            control: Arc::clone(&control),
            board,
            published: Arc::clone(&published),
            driver: Arc::clone(&driver),
            eips: opts.metrics_eips,
            build: build_info(),
        };
        let bgp_metrics = bgp_view.clone();
        let bound = metrics::spawn(addr, move || {
            let mut page = metrics::render(&sources.snapshot());
            if let Some(status) = bgp_metrics.as_ref().and_then(|v| v.snapshot()) {
                page.push_str(&crate::bgp::render_metrics(&status));
            }
            page.push_str(&eip_control::backends::render_metrics(
                &backend_board.reports(),
            ));
            page
        })?;
        crate::say!("  metrics on http://{bound}/metrics");
    }
    print_setup(&runtime, &tables);
    crate::say!(
        "  control socket {} (eipctl --socket {0}), state file {}",
        opts.socket.display(),
        opts.state.display()
    );
    phases.mark("the rest");
    tracing::info!("forwarding after {phases}");
    // What the load freed (parsed text, the state file's bytes, entries
    // before they were packed) would stay resident: about 14 MB at 1M EIPs.
    eip_afxdp::heap::release_free_heap();
    // Forwarding: XDP attached, workers running, control socket bound.
    tell(&notify.ready(&forwarding_status(&tables, afxdp.queues.len())));

    let started = Instant::now();
    let mut last_stats = Instant::now();
    let mut last_rx = 0u64;
    let mut last_latency = merged_latency(&published);
    let mut last_driver = Instant::now();
    let (mut last_acl, mut acl_entries) = (Instant::now(), 0u32);
    while !stop.load(Ordering::Relaxed) {
        signals.serve(&control, &published, &board_for_signals);
        bgp_facts.update(
            true,
            publisher.version(),
            publisher.is_acknowledged(publisher.version()),
        );
        // Table changes are applied as soon as they arrive (a failover waits for
        // nothing else; several queued ones are taken one per pass, each pass
        // returning here at once); otherwise wake every 50 ms for signals and stats.
        if let Ok(request) = swap_rx.recv_timeout(Duration::from_millis(50)) {
            let result = apply_swap(
                &mut runtime,
                &mut publisher,
                &request.tables,
                request.timeout,
            );
            if result.is_ok() && notify.enabled() {
                tell(&notify.status(&forwarding_status(&request.tables, afxdp.queues.len())));
            }
            let _ = request.reply.send(result);
        }
        if last_driver.elapsed() >= DRIVER_REFRESH {
            let mut fresh = DriverFigures::read(&runtime);
            // One read per access-list entry: at most every 20 us per entry
            // (65,536 entries: every 1.3 s), so that the reads never take more
            // than a few percent of this thread, which also applies changes.
            let acl_every = DRIVER_REFRESH.max(Duration::from_micros(20) * acl_entries);
            let acl_read = last_acl.elapsed() >= acl_every;
            if acl_read {
                fresh.xdp_acl_hits = DriverFigures::xdp_acl_hits_of(&runtime, publisher.latest());
                acl_entries = fresh.xdp_acl_hits.len() as u32;
                last_acl = Instant::now();
            }
            let mut shared = driver.lock().unwrap_or_else(|e| e.into_inner());
            if !acl_read {
                // The last read stands (a count read under a list since
                // replaced is ignored: its entries carry that list).
                fresh.xdp_acl_hits = std::mem::take(&mut shared.xdp_acl_hits);
            }
            *shared = fresh;
            last_driver = Instant::now();
        }
        if let Some(every) = opts.stats_every {
            if last_stats.elapsed() >= every {
                let rx: u64 = runtime
                    .worker_stats()
                    .iter()
                    .map(|(_, s)| s.counters.rx_packets)
                    .sum();
                let secs = last_stats.elapsed().as_secs_f64();
                // Batch latency over this interval: all since start minus the last.
                let latency = merged_latency(&published);
                let mut recent = latency.clone();
                let p99 = match recent.hist.subtract(&last_latency.hist) {
                    Ok(()) if !recent.hist.is_empty() => {
                        shutdown::micros(recent.hist.value_at_quantile(0.99))
                    }
                    _ => "-".to_string(),
                };
                tracing::info!(
                    "{:.0} s: {:.0} pps in, batch p99 {p99} ({} batches), table version {}",
                    started.elapsed().as_secs_f64(),
                    (rx - last_rx) as f64 / secs,
                    recent.hist.len(),
                    publisher.version()
                );
                last_latency = latency;
                last_rx = rx;
                last_stats = Instant::now();
            }
        }
    }

    tracing::info!("stopping");
    tell(&notify.stopping("stopping: final counters follow"));
    if let Some(bgp) = bgp {
        // Drain while the workers still forward, then stop BIRD.
        bgp.shutdown();
    }
    drop(server);
    let _ = prober.join();
    let sockets = runtime.socket_stats();
    let exits = runtime.stop();
    let latest = Arc::clone(publisher.latest());
    shutdown::report(&latest, &afxdp.queues, &published, &exits, &sockets)
}

/// The `STATUS=` line `systemctl status` shows while forwarding.
fn forwarding_status(tables: &Tables, queues: usize) -> String {
    format!(
        "forwarding: pop {:?}, table version {}, {} EIPs, {queues} queue(s)",
        tables.pop_name,
        tables.version,
        tables.eips.len()
    )
}

/// A notification that could not be sent is logged, never fatal: the data plane
/// forwards either way (under `Type=notify` systemd then times the start out).
fn tell(sent: &std::io::Result<()>) {
    if let Err(e) = sent {
        tracing::warn!("notifying the service manager (NOTIFY_SOCKET): {e}");
    }
}

fn print_setup(runtime: &AfXdpRuntime, tables: &Tables) {
    let r = runtime.report();
    crate::say!(
        "eipd: running; pop {:?}, table version {}, {} EIPs",
        tables.pop_name,
        tables.version,
        tables.eips.len()
    );
    for p in &r.ports {
        crate::say!(
            "  port {} on {} (ifindex {}): XDP {}",
            tables.ports[p.port as usize].name,
            p.interface,
            p.ifindex,
            p.xdp_mode
        );
    }
    for q in &r.queues {
        crate::say!(
            "  queue {}: AF_XDP {}, worker on CPU {}{}",
            q.queue,
            q.bind_mode,
            q.cpu.map_or("any".into(), |c| c.to_string()),
            if q.pinned {
                " (pinned)"
            } else {
                " (not pinned)"
            }
        );
    }
    crate::say!("  stop with Ctrl-C (SIGINT) or SIGTERM: final counters follow");
}

/// How long each step of the start took, for the log line that says the
/// daemon forwards: a slow start (1M EIPs) names its slow step.
struct BootPhases {
    begun: Instant,
    last: Instant,
    steps: Vec<(&'static str, Duration)>,
}

impl BootPhases {
    fn start() -> BootPhases {
        let now = Instant::now();
        BootPhases {
            begun: now,
            last: now,
            steps: Vec::new(),
        }
    }

    fn mark(&mut self, step: &'static str) {
        let now = Instant::now();
        self.steps.push((step, now - self.last));
        self.last = now;
    }
}

impl std::fmt::Display for BootPhases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3} s (", (self.last - self.begun).as_secs_f64())?;
        for (i, (step, took)) in self.steps.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{step} {:.3} s", took.as_secs_f64())?;
        }
        write!(f, ")")
    }
}
