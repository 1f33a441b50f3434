//! `eipd run`: the data plane on AF_XDP.
//!
//! The calling thread is the control thread. It boots from the state file (same
//! tables, same version as when eipd last ran) or else the TOML configuration,
//! resolving next-hop MACs from the kernel's neighbour table; starts one pinned
//! poll-mode worker per queue; serves the control socket (changes go through one
//! writer, [`ControlPlane`]); hands every new table snapshot to the workers through
//! [`eip_dataplane::swap`] while keeping the XDP filter maps in sync; and on
//! SIGINT/SIGTERM stops the workers and prints the final counters and frame
//! accounting.

use anyhow::{bail, Context, Result};
use eip_afxdp::{
    Accept, AfXdpConfig, AfXdpRuntime, BindPreference, FilterSource, IdlePolicy, PacketProcessor,
    PortConfig, WorkerCounters, WorkerSnapshot, XdpModePreference,
};
use eip_control::health::{Health, HealthConfig};
use eip_control::metrics::{
    self, LatencySlot, MetricsSnapshot, PathMetrics, UmemFrames, WorkerMetrics,
};
use eip_control::probe::{HealthBoard, Prober, ProberConfig};
use eip_control::state::{ControlPlane, SinkError, StateFile, TableSink};
use eip_control::{neighbours, report, server};
use eip_dataplane::counters::Counters;
use eip_dataplane::swap::{self, Publisher, Subscriber};
use eip_dataplane::tables::{PathState, PopSpec, PortRole};
use eip_dataplane::{Frame, Pipeline, Tables, Timestamp, Verdict};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
}

/// One worker's pipeline, fed by the AF_XDP driver.
struct PipelineWorker {
    pipeline: Pipeline,
    tables: Subscriber<Tables>,
    /// The worker's counters as of its last publication, for the control thread.
    published: Arc<Mutex<Counters>>,
    /// Batch latencies since the last publication that reached `latency_shared`.
    latency: LatencySlot,
    /// Batch latencies since start, for the control thread.
    latency_shared: Arc<Mutex<LatencySlot>>,
}

impl PacketProcessor for PipelineWorker {
    fn on_poll(&mut self) {
        self.tables.refresh();
    }

    fn process_batch(&mut self, now_ns: u64, frames: &mut [Frame<'_>], verdicts: &mut [Verdict]) {
        let start = Instant::now();
        self.pipeline
            .process(Timestamp(now_ns), self.tables.current(), frames, verdicts);
        // One clock pair per batch; `saturating_record` never allocates.
        let ns = start.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        self.latency.hist.saturating_record(ns.max(1));
        self.latency.sum_ns = self.latency.sum_ns.wrapping_add(ns);
    }

    fn on_publish(&mut self) {
        // Never wait for the reader: skip this publication if it holds the lock.
        if let Ok(mut c) = self.published.try_lock() {
            c.copy_from(self.pipeline.counters());
        }
        // Same for the latencies; what is not handed over now stays local and is
        // added at the next publication. Same bounds: `add` does not allocate.
        if !self.latency.hist.is_empty() {
            if let Ok(mut shared) = self.latency_shared.try_lock() {
                shared.add(&self.latency);
                self.latency.reset();
            }
        }
    }
}

/// How long to wait at start for unresolved next hops before giving up.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the neighbour table is re-read.
const NEIGHBOUR_REFRESH: Duration = Duration::from_secs(1);
/// How long a table swap may take to reach every worker.
const SWAP_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs until SIGINT or SIGTERM.
pub fn run(opts: &RunOptions) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }

    if let Some(addr) = opts.metrics {
        metrics::check_address(addr, opts.metrics_any)?;
    }
    let store = StateFile::new(&opts.state);
    let (doc, origin) = store.load_or_config(&opts.config)?;
    wait_for_neighbours(&doc.spec, &stop)?;
    let resolver = |spec: &PopSpec| {
        let table = neighbours::read_kernel_table().unwrap_or_default();
        let (filled, missing) = neighbours::resolve(spec, &table);
        for a in missing {
            let _ = neighbours::solicit(a);
        }
        filled
    };
    let boot = store.boot(&opts.config, Some(&resolver))?;
    eprintln!(
        "eipd: table version {} from {}",
        boot.tables.version,
        match origin {
            eip_control::state::Origin::StateFile => opts.state.display().to_string(),
            eip_control::state::Origin::Config => opts.config.display().to_string(),
        }
    );
    let tables = Arc::clone(&boot.tables);
    let afxdp = afxdp_config(&tables, &boot.spec, opts)?;
    let (mut publisher, subscribers) = swap::channel(Arc::clone(&tables), afxdp.queues.len());
    let published: Arc<Vec<Arc<Mutex<Counters>>>> =
        Arc::new((0..afxdp.queues.len()).map(|_| Arc::default()).collect());
    let latencies: Arc<Vec<Arc<Mutex<LatencySlot>>>> =
        Arc::new((0..afxdp.queues.len()).map(|_| Arc::default()).collect());
    let mut subscribers = subscribers.into_iter();
    let mut slots = published.iter();
    let mut latency_slots = latencies.iter();
    let mut runtime = AfXdpRuntime::start(&afxdp, |_queue| PipelineWorker {
        pipeline: Pipeline::default(),
        tables: subscribers.next().expect("one subscriber per queue"),
        published: Arc::clone(slots.next().expect("one counter slot per queue")),
        latency: LatencySlot::default(),
        latency_shared: Arc::clone(latency_slots.next().expect("one latency slot per queue")),
    })
    .context("starting the AF_XDP data plane")?;
    runtime
        .sync_maps(&*tables)
        .context("loading EIPs and VTEPs into the XDP filter")?;

    // Changes arrive on socket threads; the runtime stays on this thread, which
    // applies each new snapshot (filter maps, then workers) and answers.
    let (swap_tx, swap_rx) = mpsc::channel::<SwapRequest>();
    let stats_source = Arc::clone(&published);
    let board = Arc::new(HealthBoard::default());
    let health_view = Arc::clone(&board);
    let metrics_board = Arc::clone(&board);
    let control = Arc::new(
        ControlPlane::new(store, boot, ChannelSink(swap_tx))
            .with_resolver(Arc::new(resolver))
            .with_health(Arc::new(move |path: &str| health_view.get(path)))
            .with_stats(Arc::new(move || sum_counters(&stats_source)))
            .with_ack_timeout(SWAP_TIMEOUT),
    );
    let server = server::spawn(
        &opts.socket,
        Arc::clone(&control),
        server::ServerConfig::default(),
    )
    .with_context(|| format!("control socket {}", opts.socket.display()))?;
    spawn_neighbour_refresh(Arc::clone(&control), Arc::clone(&stop));
    let prober = spawn_prober(
        &runtime,
        Arc::clone(&control),
        board,
        opts.health.clone(),
        Arc::clone(&stop),
    )?;
    // The driver counters live in the runtime (this thread); the loop below copies
    // them here for the metrics listener.
    let driver_stats = Arc::new(Mutex::new(runtime.worker_stats()));
    if let Some(addr) = opts.metrics {
        let sources = MetricsSources {
            control: Arc::clone(&control),
            board: metrics_board,
            published: Arc::clone(&published),
            latencies: Arc::clone(&latencies),
            driver: Arc::clone(&driver_stats),
        };
        let bound = metrics::spawn(addr, move || metrics::render(&sources.snapshot()))?;
        println!("  metrics on http://{bound}/metrics");
    }
    print_setup(&runtime, &tables);
    println!(
        "  control socket {} (eipctl --socket {0}), state file {}",
        opts.socket.display(),
        opts.state.display()
    );

    let started = Instant::now();
    let mut last_stats = Instant::now();
    let mut last_rx = 0u64;
    let mut last_latency = merged_latency(&latencies);
    let mut last_driver = Instant::now();
    while !stop.load(Ordering::Relaxed) {
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
            let _ = request.reply.send(result);
        }
        if opts.metrics.is_some() && last_driver.elapsed() >= Duration::from_millis(200) {
            let fresh = runtime.worker_stats();
            *driver_stats.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
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
                let latency = merged_latency(&latencies);
                let mut recent = latency.clone();
                let p99 = match recent.hist.subtract(&last_latency.hist) {
                    Ok(()) if !recent.hist.is_empty() => {
                        format!("{:.1} us", recent.hist.value_at_quantile(0.99) as f64 / 1e3)
                    }
                    _ => "-".to_string(),
                };
                eprintln!(
                    "eipd: {:.0} s: {:.0} pps in, batch p99 {p99} ({} batches), table version {}",
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

    eprintln!("eipd: stopping");
    drop(server);
    let _ = prober.join();
    let socket_stats = runtime.socket_stats();
    let exits = runtime.stop();
    let latest = Arc::clone(publisher.latest());
    let total = sum_counters(&published);
    println!("final counters (table version {}):", latest.version);
    print!("{}", report::counters_text(&latest, &total));
    let mut workers = WorkerCounters::default();
    let mut frames_ok = true;
    for exit in &exits {
        workers.merge(&exit.counters);
        let f = &exit.frames;
        let ok = exit.audit.is_ok() && f.accounted() == f.total;
        frames_ok &= ok;
        println!(
            "worker queue {}: rx {} tx {}; UMEM frames accounted {}/{} (free {}, fill {}, tx {}, held {}){}",
            exit.queue,
            exit.counters.rx_packets,
            exit.counters.tx_packets,
            f.accounted(),
            f.total,
            f.free,
            f.fill.iter().sum::<u32>(),
            f.in_tx(),
            f.held,
            match &exit.audit {
                Ok(()) => String::new(),
                Err(e) => format!(" AUDIT FAILED: {e}"),
            }
        );
    }
    for (queue, slot) in afxdp.queues.iter().zip(latencies.iter()) {
        let s = slot.lock().unwrap_or_else(|e| e.into_inner()).summary();
        println!(
            "worker queue {queue}: batch latency p50 {} p90 {} p99 {} p99.9 {} max {} ({} batches)",
            micros(s.quantiles_ns[0]),
            micros(s.quantiles_ns[1]),
            micros(s.quantiles_ns[2]),
            micros(s.quantiles_ns[3]),
            micros(s.max_ns),
            s.count
        );
    }
    println!("driver counters (all workers):");
    for (name, value) in WorkerCounters::NAMES.iter().zip(workers.values()) {
        if value > 0 {
            println!("  {name:<28} {value:>12}");
        }
    }
    for (queue, port, stats) in socket_stats {
        if let Ok(s) = stats {
            println!("  socket queue {queue} port {port}: {s:?}");
        }
    }
    println!("XDP program detached");
    if !frames_ok {
        bail!("UMEM frame accounting failed (see above)");
    }
    Ok(())
}

/// The AF_XDP settings for the configured ports.
fn afxdp_config(tables: &Tables, spec: &PopSpec, opts: &RunOptions) -> Result<AfXdpConfig> {
    let mut ports = Vec::new();
    for (i, p) in spec.ports.iter().enumerate() {
        let Some(interface) = p.interface.clone() else {
            bail!("ports[{i}] ({:?}) has no `interface`: eipd run needs the kernel interface to bind to", p.name);
        };
        let accept = match p.role {
            PortRole::Internet => Accept::INTERNET,
            PortRole::Backbone => Accept::BACKBONE,
            PortRole::Both => Accept::BOTH,
        };
        ports.push(PortConfig {
            port: i as u16,
            interface,
            accept,
        });
    }
    let cpus = match &opts.cpus {
        Some(c) => c.clone(),
        None => default_cpus(opts.queues.len()),
    };
    let eips = (tables.eips.len() as u32).saturating_mul(2).max(1 << 16);
    Ok(AfXdpConfig {
        ports,
        queues: opts.queues.clone(),
        cpus,
        xdp_mode: opts.xdp_mode,
        bind_mode: opts.bind_mode,
        vxlan_port: tables.vxlan_port,
        max_eips: eips,
        idle: if opts.idle_sleep {
            IdlePolicy::Backoff {
                after_empty_polls: 1000,
                sleep: Duration::from_micros(100),
            }
        } else {
            IdlePolicy::BusyPoll
        },
        ..AfXdpConfig::default()
    })
}

/// Worker i on the (i+1)-th CPU this process may run on (its affinity mask, e.g.
/// from `taskset`), wrapping, so that with more than one CPU the first one is left
/// to the kernel and the control thread.
fn default_cpus(workers: usize) -> Vec<usize> {
    let mut allowed: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    allowed.sort_unstable();
    if allowed.is_empty() {
        return Vec::new();
    }
    (0..workers)
        .map(|i| allowed[(i + 1) % allowed.len()])
        .collect()
}

/// Waits (a while) until every next hop given as an address is in the kernel's
/// neighbour table, soliciting the missing ones, so the first tables can be built.
fn wait_for_neighbours(spec: &PopSpec, stop: &AtomicBool) -> Result<()> {
    let deadline = Instant::now() + RESOLVE_TIMEOUT;
    loop {
        if neighbours::wanted(spec).is_empty() {
            return Ok(());
        }
        let table = neighbours::read_kernel_table().context("reading /proc/net/arp")?;
        let (_, missing) = neighbours::resolve(spec, &table);
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline || stop.load(Ordering::Relaxed) {
            bail!(
                "next hops not in the kernel's neighbour table after {} s: {} (check the addresses and links, or give the MACs)",
                RESOLVE_TIMEOUT.as_secs(),
                list(&missing)
            );
        }
        for a in &missing {
            let _ = neighbours::solicit(*a);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Re-reads the neighbour table every second; the control plane rebuilds and
/// swaps tables only when a resolved next-hop MAC changed.
fn spawn_neighbour_refresh(control: Arc<ControlPlane>, stop: Arc<AtomicBool>) {
    let _ = std::thread::Builder::new()
        .name("eipd-neighbours".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(NEIGHBOUR_REFRESH);
                match control.refresh() {
                    Ok(Some(version)) => {
                        eprintln!("eipd: next-hop MAC changed; table version {version} in force")
                    }
                    Ok(None) => {}
                    Err(e) => eprintln!("eipd: neighbour refresh: {e}"),
                }
            }
        });
}

/// A new snapshot for the control thread to apply, and where to answer.
struct SwapRequest {
    tables: Arc<Tables>,
    timeout: Duration,
    reply: mpsc::Sender<Result<(), SinkError>>,
}

/// The control plane's [`TableSink`]: hands snapshots to the control thread, which
/// owns the AF_XDP runtime, and waits for its answer.
struct ChannelSink(mpsc::Sender<SwapRequest>);

impl TableSink for ChannelSink {
    fn publish(&mut self, tables: Arc<Tables>, timeout: Duration) -> Result<(), SinkError> {
        let (reply, answer) = mpsc::channel();
        self.0
            .send(SwapRequest {
                tables,
                timeout,
                reply,
            })
            .map_err(|_| SinkError::Rejected("the data plane is shutting down".into()))?;
        answer
            .recv_timeout(timeout + Duration::from_secs(1))
            .map_err(|_| SinkError::Rejected("the data plane did not answer".into()))?
    }
}

/// Every EIP and VTEP of two snapshots: diverted to the workers during a swap, so
/// that neither the EIPs being removed nor those being added are ever passed to
/// the kernel while some worker still (or already) serves them.
struct Union<'a>(&'a Tables, &'a Tables);

impl FilterSource for Union<'_> {
    fn eip_v4(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.0.eip_v4_addresses().chain(self.1.eip_v4_addresses())
    }
    fn eip_v6(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.0.eip_v6_addresses().chain(self.1.eip_v6_addresses())
    }
    fn local_vteps(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.0
            .local_vteps
            .iter()
            .chain(&self.1.local_vteps)
            .copied()
    }
}

/// Puts a new snapshot in force: filter maps widened to old + new, workers
/// swapped (and acknowledged), filter maps narrowed to the new tables.
fn apply_swap(
    runtime: &mut AfXdpRuntime,
    publisher: &mut Publisher<Tables>,
    tables: &Arc<Tables>,
    timeout: Duration,
) -> Result<(), SinkError> {
    let old = Arc::clone(publisher.latest());
    runtime
        .sync_maps(&Union(&old, tables))
        .map_err(|e| SinkError::Rejected(format!("XDP filter map: {e}")))?;
    let result = TableSink::publish(publisher, Arc::clone(tables), timeout);
    if let Err(e) = runtime.sync_maps(&**publisher.latest()) {
        eprintln!("eipd: XDP filter map after swap: {e}");
    }
    result
}

/// Everything the metrics listener reads, all published by other threads.
struct MetricsSources {
    control: Arc<ControlPlane>,
    board: Arc<HealthBoard>,
    published: Arc<Vec<Arc<Mutex<Counters>>>>,
    latencies: Arc<Vec<Arc<Mutex<LatencySlot>>>>,
    /// (queue, driver snapshot), refreshed by the control thread.
    driver: Arc<Mutex<Vec<(u32, WorkerSnapshot)>>>,
}

impl MetricsSources {
    fn snapshot(&self) -> MetricsSnapshot {
        let tables = Arc::clone(&self.control.snapshot().tables);
        let counters = sum_counters(&self.published);
        // Per-EIP and per-path counters are indexed by the tables the workers ran
        // with; shown only when those are the tables in force.
        let same = counters.table_version == tables.version;
        let eips = if same {
            tables.eips.iter().map(|e| e.address.to_string()).collect()
        } else {
            Vec::new()
        };
        let paths = tables
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let health = self.board.get(&p.name);
                PathMetrics {
                    name: p.name.clone(),
                    traffic: if same {
                        counters.path.get(i).copied().unwrap_or_default()
                    } else {
                        Default::default()
                    },
                    up: match &health {
                        Some(h) => h.health == Health::Up,
                        None => p.state == PathState::Up,
                    },
                    rtt: health.as_ref().map_or([None; 3], |h| [h.p50, h.p90, h.p99]),
                    loss: health.as_ref().map(|h| h.loss),
                }
            })
            .collect();
        let driver = self
            .driver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut all = LatencySlot::default();
        let workers = driver
            .iter()
            .zip(self.latencies.iter())
            .map(|((queue, d), slot)| {
                let slot = slot.lock().unwrap_or_else(|e| e.into_inner());
                all.add(&slot);
                WorkerMetrics {
                    queue: *queue,
                    counters: WorkerCounters::NAMES
                        .iter()
                        .copied()
                        .zip(d.counters.values())
                        .collect(),
                    frames: UmemFrames {
                        total: d.frames.total,
                        free: d.frames.free,
                        held: d.frames.held,
                        fill: d.frames.in_fill(),
                        tx: d.frames.in_tx(),
                    },
                    latency: slot.summary(),
                }
            })
            .collect();
        MetricsSnapshot {
            table_version: tables.version,
            counters,
            eips,
            paths,
            workers,
            latency: all.summary(),
        }
    }
}

/// All workers' batch latencies since start.
fn merged_latency(slots: &[Arc<Mutex<LatencySlot>>]) -> LatencySlot {
    let mut all = LatencySlot::default();
    for s in slots {
        all.add(&s.lock().unwrap_or_else(|e| e.into_inner()));
    }
    all
}

fn micros(ns: u64) -> String {
    format!("{:.1} us", ns as f64 / 1e3)
}

fn sum_counters(published: &[Arc<Mutex<Counters>>]) -> Counters {
    let mut total = Counters::default();
    for p in published {
        total.merge(&p.lock().unwrap_or_else(|e| e.into_inner()));
    }
    total
}

fn list(addrs: &[Ipv4Addr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_setup(runtime: &AfXdpRuntime, tables: &Tables) {
    let r = runtime.report();
    println!(
        "eipd: running; pop {:?}, table version {}, {} EIPs",
        tables.pop_name,
        tables.version,
        tables.eips.len()
    );
    for p in &r.ports {
        println!(
            "  port {} on {} (ifindex {}): XDP {}",
            tables.ports[p.port as usize].name, p.interface, p.ifindex, p.xdp_mode
        );
    }
    for q in &r.queues {
        println!(
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
    println!("  stop with Ctrl-C (SIGINT) or SIGTERM: final counters follow");
}

/// Longest sleep of the prober thread (reply times come from the worker's
/// receive timestamp, so this only bounds how late a probe or a verdict can be).
const PROBER_TICK: Duration = Duration::from_millis(2);
/// Least time between two attempts to put the same verdicts in force.
const PROBER_RETRY: Duration = Duration::from_secs(1);

/// Runs the path prober on its own thread. It must not be the control thread:
/// `ControlPlane::set_path_health` waits for the control thread to swap the
/// tables in.
fn spawn_prober(
    runtime: &AfXdpRuntime,
    control: Arc<ControlPlane>,
    board: Arc<HealthBoard>,
    health: HealthConfig,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>> {
    let inject = Arc::clone(runtime.inject_queue());
    let replies = Arc::clone(runtime.control_queue());
    let epoch = runtime.epoch();
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()) << 32;
    let mut tables = Arc::clone(&control.snapshot().tables);
    let config = ProberConfig {
        nonce,
        health,
        ..ProberConfig::default()
    };
    let mut prober = Prober::new(&tables, config, epoch.elapsed()).context("path prober")?;
    if prober.is_empty() {
        eprintln!("eipd: no path probing (needs pop.probe_source and a region probe_target)");
    }
    let thread = std::thread::Builder::new()
        .name("eipd-prober".into())
        .spawn(move || {
            let mut last_publish = Instant::now();
            let mut send_failed_logged: Option<Instant> = None;
            let mut asked: Option<(u64, Instant)> = None;
            while !stop.load(Ordering::Relaxed) {
                // Tables changed (operator, neighbour MAC, our own verdicts).
                let current = control.snapshot();
                if current.tables.version != tables.version {
                    tables = Arc::clone(&current.tables);
                    prober.update_tables(&tables, epoch.elapsed());
                }
                if let Err(e) = prober.poll(epoch.elapsed(), |port, frame| inject.push(port, frame))
                {
                    if send_failed_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        eprintln!(
                            "eipd: probes not sent: {e} ({} so far)",
                            prober.counters().send_failed
                        );
                        send_failed_logged = Some(Instant::now());
                    }
                }
                while let Some(packet) = replies.pop() {
                    let _ = prober.on_frame(Duration::from_nanos(packet.rx_ns), packet.data());
                }
                prober.tick(epoch.elapsed());
                let mut news = false;
                while let Some(event) = prober.pop_event() {
                    eprintln!("{} eipd: {event}", wall_clock());
                    news = true;
                }
                let retry =
                    asked.is_none_or(|(v, at)| v != tables.version || at.elapsed() >= PROBER_RETRY);
                if prober.differs_from(&tables) && retry {
                    asked = Some((tables.version, Instant::now()));
                    match control.set_path_health(&prober.table_health()) {
                        Ok(Some(version)) => {
                            eprintln!(
                                "{} eipd: path states in force, table version {version}",
                                wall_clock()
                            )
                        }
                        Ok(None) => {}
                        Err(e) => eprintln!("{} eipd: path states not applied: {e}", wall_clock()),
                    }
                }
                if news || last_publish.elapsed() >= Duration::from_secs(1) {
                    board.publish(&prober);
                    last_publish = Instant::now();
                }
                let sleep = prober
                    .next_deadline()
                    .map_or(PROBER_TICK, |d| d.saturating_sub(epoch.elapsed()))
                    .min(PROBER_TICK);
                std::thread::sleep(sleep);
            }
        })
        .context("spawning the prober thread")?;
    Ok(thread)
}

/// Seconds since the Unix epoch with milliseconds, for log lines whose timing
/// matters (path events): scripts correlate them with their own clocks.
fn wall_clock() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", t.as_secs(), t.subsec_millis())
}
