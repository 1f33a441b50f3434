//! `eipd run`: the data plane on AF_XDP.
//!
//! The calling thread is the control thread: it builds tables (resolving next-hop
//! MACs from the kernel's neighbour table), starts one pinned poll-mode worker per
//! queue, hands them new table snapshots through [`eip_dataplane::swap`] when a
//! neighbour changes, keeps the XDP filter maps in sync, and on SIGINT/SIGTERM
//! stops the workers and prints the final counters and frame accounting.

use crate::{config, neighbours, report};
use anyhow::{bail, Context, Result};
use eip_dataplane::afxdp::{
    Accept, AfXdpConfig, AfXdpRuntime, BindPreference, IdlePolicy, PacketProcessor, PortConfig,
    WorkerCounters, XdpModePreference,
};
use eip_dataplane::counters::Counters;
use eip_dataplane::swap::{self, Subscriber};
use eip_dataplane::tables::{PopSpec, PortRole};
use eip_dataplane::{Frame, Pipeline, Tables, Timestamp, Verdict};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What `eipd run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: PathBuf,
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
}

/// One worker's pipeline, fed by the AF_XDP driver.
struct PipelineWorker {
    pipeline: Pipeline,
    tables: Subscriber<Tables>,
    /// The worker's counters as of its last publication, for the control thread.
    published: Arc<Mutex<Counters>>,
}

impl PacketProcessor for PipelineWorker {
    fn on_poll(&mut self) {
        self.tables.refresh();
    }

    fn process_batch(&mut self, now_ns: u64, frames: &mut [Frame<'_>], verdicts: &mut [Verdict]) {
        self.pipeline
            .process(Timestamp(now_ns), self.tables.current(), frames, verdicts);
    }

    fn on_publish(&mut self) {
        // Never wait for the reader: skip this publication if it holds the lock.
        if let Ok(mut c) = self.published.try_lock() {
            c.copy_from(self.pipeline.counters());
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

    let spec = config::load_spec(&opts.config)?;
    let (filled, mut neighbour_view) = resolve_at_start(&spec, &stop)?;
    let tables = Tables::build(&filled, 1)
        .with_context(|| format!("configuration {} is not usable", opts.config.display()))?;
    let afxdp = afxdp_config(&tables, &spec, opts)?;
    let tables = Arc::new(tables);
    let (mut publisher, subscribers) = swap::channel(Arc::clone(&tables), afxdp.queues.len());
    let published: Vec<Arc<Mutex<Counters>>> =
        (0..afxdp.queues.len()).map(|_| Arc::default()).collect();
    let mut subscribers = subscribers.into_iter();
    let mut slots = published.iter();
    let mut runtime = AfXdpRuntime::start(&afxdp, |_queue| PipelineWorker {
        pipeline: Pipeline::default(),
        tables: subscribers.next().expect("one subscriber per queue"),
        published: Arc::clone(slots.next().expect("one counter slot per queue")),
    })
    .context("starting the AF_XDP data plane")?;
    runtime
        .sync_maps(&*tables)
        .context("loading EIPs and VTEPs into the XDP filter")?;
    print_setup(&runtime, &tables);

    let started = Instant::now();
    let mut last_neighbours = Instant::now();
    let mut last_stats = Instant::now();
    let mut last_rx = 0u64;
    let mut current = filled;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        // Frames for the control thread (probe replies, a later milestone): take
        // them off the queue so it never fills.
        while runtime.control_queue().pop().is_some() {}
        if last_neighbours.elapsed() >= NEIGHBOUR_REFRESH {
            last_neighbours = Instant::now();
            if let Some(next) = neighbour_change(&spec, &current, &mut neighbour_view) {
                let version = publisher.version() + 1;
                match Tables::build(&next, version) {
                    Ok(t) => {
                        let t = Arc::new(t);
                        runtime.sync_maps(&*t)?;
                        publisher.publish(Arc::clone(&t))?.wait(SWAP_TIMEOUT)?;
                        publisher.collect_garbage();
                        eprintln!("eipd: next-hop MAC changed; table version {version} in force on every worker");
                        current = next;
                    }
                    Err(e) => eprintln!("eipd: keeping table version {}: {e}", publisher.version()),
                }
            }
        }
        if let Some(every) = opts.stats_every {
            if last_stats.elapsed() >= every {
                let rx: u64 = runtime
                    .worker_stats()
                    .iter()
                    .map(|(_, s)| s.counters.rx_packets)
                    .sum();
                let secs = last_stats.elapsed().as_secs_f64();
                eprintln!(
                    "eipd: {:.0} s: {:.0} pps in, table version {}",
                    started.elapsed().as_secs_f64(),
                    (rx - last_rx) as f64 / secs,
                    publisher.version()
                );
                last_rx = rx;
                last_stats = Instant::now();
            }
        }
    }

    eprintln!("eipd: stopping");
    let socket_stats = runtime.socket_stats();
    let exits = runtime.stop();
    let latest = Arc::clone(publisher.latest());
    let mut total = Counters::default();
    for p in &published {
        total.merge(&p.lock().unwrap_or_else(|e| e.into_inner()));
    }
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

/// Fills next-hop MACs from the neighbour table, soliciting unresolved ones.
fn resolve_at_start(
    spec: &PopSpec,
    stop: &AtomicBool,
) -> Result<(PopSpec, neighbours::NeighbourTable)> {
    let wanted = neighbours::wanted(spec);
    let deadline = Instant::now() + RESOLVE_TIMEOUT;
    loop {
        let table = if wanted.is_empty() {
            Default::default()
        } else {
            neighbours::read_kernel_table().context("reading /proc/net/arp")?
        };
        let (filled, missing) = neighbours::resolve(spec, &table);
        if missing.is_empty() {
            return Ok((filled, table));
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

/// A spec with changed MACs when the neighbour table moved, else None.
fn neighbour_change(
    spec: &PopSpec,
    current: &PopSpec,
    view: &mut neighbours::NeighbourTable,
) -> Option<PopSpec> {
    if neighbours::wanted(spec).is_empty() {
        return None;
    }
    let table = neighbours::read_kernel_table().ok()?;
    if table == *view {
        return None;
    }
    *view = table;
    let (filled, missing) = neighbours::resolve(spec, view);
    for a in &missing {
        let _ = neighbours::solicit(*a);
    }
    // Keep forwarding with the last known MAC of a neighbour that went stale.
    (missing.is_empty() && filled != *current).then_some(filled)
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
