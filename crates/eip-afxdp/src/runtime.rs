//! Bringing the driver up and down: the order of setup steps, and who owns what
//! while it runs.
//!
//! Setup order, each step failing with a [`SetupError`] that names what to fix:
//! 1. validate the configuration (no kernel state touched);
//! 2. resolve interfaces and check queue numbers (`ethtool -l`);
//! 3. load the XDP program with maps sized from the configuration;
//! 4. open and bind one queue set (UMEM + one socket per port) per queue;
//! 5. register the sockets in the XSKMAP, build each worker, which fills its
//!    fill rings;
//! 6. attach the program to every port (native, falling back to generic);
//! 7. spawn one pinned worker thread per queue set.
//!
//! Sockets are registered and fill rings filled before the program is attached,
//! so no packet the program diverts finds an empty XSKMAP slot or no buffer
//! (a worker thread may take a while to be scheduled on a busy machine). A failure at any step drops
//! everything built so far (RAII): sockets close, the program detaches.
//!
//! The caller then syncs the filter maps with [`AfXdpRuntime::sync_maps`]: until
//! then the program diverts nothing and all traffic reaches the kernel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Instant;

use xdpilone::User;

use eip_dataplane::frame::PortId;

use super::config::{AfXdpConfig, BindMode, XdpMode};
use super::control::ControlQueue;
use super::error::{io_from_xsk, SetupError};
use super::iface;
use super::inject::{InjectQueue, DEFAULT_INJECT_DEPTH};
use super::program::{
    AclEntry, FilterDelta, FilterSizes, FilterSource, FilterStats, SyncReport, XdpFilter,
};
use super::socket::{open_queue_set, ResolvedPort};
use super::stats::{SocketStats, WorkerSnapshot, WorkerStats};
use super::worker::{PacketProcessor, Worker, WorkerExit, WorkerParams};

/// What the kernel granted, per port and per queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupReport {
    /// One entry per port.
    pub ports: Vec<PortReport>,
    /// One entry per queue (worker).
    pub queues: Vec<QueueReport>,
}

/// XDP attach result of one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortReport {
    /// Pipeline port id.
    pub port: PortId,
    /// Interface name.
    pub interface: String,
    /// Kernel interface index.
    pub ifindex: u32,
    /// Mode the XDP program runs in on this interface.
    pub xdp_mode: XdpMode,
}

/// Socket and thread result of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueReport {
    /// Device queue.
    pub queue: u32,
    /// Copy or zero-copy.
    pub bind_mode: BindMode,
    /// CPU the worker was asked to run on.
    pub cpu: Option<usize>,
    /// Whether pinning to `cpu` succeeded.
    pub pinned: bool,
    /// Copy mode: TX descriptors per `sendto()` (`None`: kernel default of 32,
    /// the option needs Linux 6.17).
    pub tx_budget: Option<u32>,
}

struct WorkerHandle {
    queue: u32,
    stats: Arc<WorkerStats>,
    /// Frames the control thread sends through this worker.
    inject: Arc<InjectQueue>,
    /// (port, socket) for `XDP_STATISTICS`; also keeps the sockets open.
    sockets: Vec<(PortId, User)>,
    join: Option<JoinHandle<WorkerExit>>,
}

/// A running AF_XDP driver. Dropping it stops the workers and detaches the
/// program; [`Self::stop`] does the same and returns the workers' final reports.
pub struct AfXdpRuntime {
    stop: Arc<AtomicBool>,
    workers: Vec<WorkerHandle>,
    control: Arc<ControlQueue>,
    /// Zero of the workers' clock (`now_ns`, [`ControlPacket::rx_ns`](super::control::ControlPacket::rx_ns)).
    epoch: Instant,
    report: SetupReport,
    // After the workers: detach only once nobody polls the sockets any more.
    filter: XdpFilter,
}

impl AfXdpRuntime {
    /// Sets up everything and starts the workers. `make_processor(queue)` builds
    /// the processor of each worker.
    ///
    /// # Errors
    /// See [`SetupError`]; nothing stays attached or bound after an error.
    pub fn start<P, F>(config: &AfXdpConfig, mut make_processor: F) -> Result<Self, SetupError>
    where
        P: PacketProcessor + 'static,
        F: FnMut(u32) -> P,
    {
        config.validate()?;

        let mut resolved = Vec::with_capacity(config.ports.len());
        let mut ifindexes = Vec::with_capacity(config.ports.len());
        for p in &config.ports {
            ifindexes.push(iface::ifindex(&p.interface)?);
            for &q in &config.queues {
                iface::check_queue(&p.interface, q)?;
            }
            resolved.push(ResolvedPort {
                port: p.port,
                interface: p.interface.clone(),
            });
        }

        let queues_per_port = config.queues.iter().max().map_or(1, |m| m + 1);
        let mut filter = XdpFilter::load(FilterSizes {
            ports: config.ports.len() as u32,
            queues_per_port,
            max_eips: config.max_eips,
            max_vteps: config.max_vteps,
            vxlan_port: config.vxlan_port,
        })?;
        for (slot, (p, &ifindex)) in config.ports.iter().zip(&ifindexes).enumerate() {
            filter.add_port(ifindex, slot as u32, p.accept)?;
        }

        let stop = Arc::new(AtomicBool::new(false));
        let control = Arc::new(ControlQueue::new(
            config.control_queue_depth,
            config.frame_size as usize,
        ));
        let epoch = Instant::now();
        let port_ids: Vec<PortId> = config.ports.iter().map(|p| p.port).collect();

        // Workers are built (and their fill rings filled) before the program is
        // attached, so the first diverted packet already finds a buffer.
        let mut pending = Vec::with_capacity(config.queues.len());
        for &queue in &config.queues {
            let mut set = open_queue_set(config, &resolved, queue)?;
            for (slot, user) in set.sockets.iter().enumerate() {
                filter.register_socket(slot as u32, queue, user.as_raw_fd())?;
            }
            let report = (set.mode, set.tx_budget);
            let sockets: Vec<(PortId, User)> = set
                .devices
                .iter()
                .map(|d| d.port)
                .zip(std::mem::take(&mut set.sockets))
                .collect();
            let stats = Arc::new(WorkerStats::default());
            let inject = Arc::new(InjectQueue::new(
                DEFAULT_INJECT_DEPTH,
                config.frame_size as usize,
                &port_ids,
            ));
            let worker = Worker::new(
                set,
                make_processor(queue),
                WorkerParams {
                    batch: config.batch_size,
                    idle: config.idle,
                    epoch,
                },
                stop.clone(),
                stats.clone(),
                control.clone(),
                inject.clone(),
            );
            pending.push((queue, report, sockets, stats, inject, worker));
        }

        let mut ports = Vec::with_capacity(config.ports.len());
        for (p, &ifindex) in config.ports.iter().zip(&ifindexes) {
            let xdp_mode = filter.attach(&p.interface, ifindex, config.xdp_mode)?;
            ports.push(PortReport {
                port: p.port,
                interface: p.interface.clone(),
                ifindex,
                xdp_mode,
            });
        }

        let mut runtime = AfXdpRuntime {
            stop,
            workers: Vec::with_capacity(pending.len()),
            control,
            epoch,
            report: SetupReport {
                ports,
                queues: Vec::with_capacity(pending.len()),
            },
            filter,
        };
        for (i, (queue, (bind_mode, tx_budget), sockets, stats, inject, worker)) in
            pending.into_iter().enumerate()
        {
            let cpu = config.cpu_for(i);
            let (pinned_tx, pinned_rx) = mpsc::channel();
            let join = std::thread::Builder::new()
                .name(format!("afxdp-q{queue}"))
                .spawn(move || {
                    let pinned = cpu.is_some_and(|id| {
                        core_affinity::set_for_current(core_affinity::CoreId { id })
                    });
                    let _ = pinned_tx.send(pinned);
                    worker.run()
                })
                .map_err(|source| SetupError::Spawn { queue, source })?;
            let pinned = pinned_rx.recv().unwrap_or(false);
            runtime.report.queues.push(QueueReport {
                queue,
                bind_mode,
                cpu,
                pinned,
                tx_budget,
            });
            runtime.workers.push(WorkerHandle {
                queue,
                stats,
                inject,
                sockets,
                join: Some(join),
            });
        }
        Ok(runtime)
    }

    /// What the kernel granted.
    pub fn report(&self) -> &SetupReport {
        &self.report
    }

    /// Makes the XDP filter divert exactly the EIPs and VTEPs of `source`.
    pub fn sync_maps<S: FilterSource + ?Sized>(
        &mut self,
        source: &S,
    ) -> Result<SyncReport, SetupError> {
        self.filter.sync_maps(source)
    }

    /// Inserts the delta's new EIPs and VTEPs into the filter maps (before a
    /// swap), refusing keys that would not fit before inserting any.
    pub fn widen_maps(&mut self, delta: &FilterDelta) -> Result<SyncReport, SetupError> {
        self.filter.insert_keys(delta)
    }

    /// Removes the delta's gone EIPs and VTEPs from the filter maps (after a
    /// swap).
    pub fn narrow_maps(&mut self, delta: &FilterDelta) -> Result<SyncReport, SetupError> {
        self.filter.remove_keys(delta)
    }

    /// The XDP program's counters.
    pub fn filter_stats(&self) -> Result<FilterStats, SetupError> {
        self.filter.stats()
    }

    /// The XDP program's drops per access-list entry (see
    /// [`XdpFilter::acl_hits`]).
    pub fn filter_acl_hits(&self) -> Result<Vec<(AclEntry, u64)>, SetupError> {
        self.filter.acl_hits()
    }

    /// Last published counters of every worker, by queue.
    pub fn worker_stats(&self) -> Vec<(u32, WorkerSnapshot)> {
        self.workers
            .iter()
            .map(|w| (w.queue, w.stats.snapshot()))
            .collect()
    }

    /// Kernel drop counters of every socket: (queue, port, stats). One
    /// `getsockopt` per socket, from the calling thread; the workers are not
    /// involved.
    pub fn socket_stats(&self) -> Vec<(u32, PortId, std::io::Result<SocketStats>)> {
        let mut out = Vec::new();
        for w in &self.workers {
            for (port, user) in &w.sockets {
                let stats = user
                    .statistics_v2()
                    .map(SocketStats::from)
                    .map_err(io_from_xsk);
                out.push((w.queue, *port, stats));
            }
        }
        out
    }

    /// Zero of the workers' clock: `epoch().elapsed()` is on the same scale as
    /// [`ControlPacket::rx_ns`](super::control::ControlPacket::rx_ns) and the `now_ns` the processors get.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Frames the pipeline sent to the control thread.
    pub fn control_queue(&self) -> &Arc<ControlQueue> {
        &self.control
    }

    /// Frames to send out of a port through the first worker (that of
    /// `config.queues[0]`): path probes leave on the same socket, TX ring and link
    /// as data. See [`super::inject`].
    pub fn inject_queue(&self) -> &Arc<InjectQueue> {
        // `start` fails unless there is at least one queue, hence one worker.
        &self.workers[0].inject
    }

    /// The inject queue of the worker serving device queue `queue`.
    pub fn inject_queue_of(&self, queue: u32) -> Option<&Arc<InjectQueue>> {
        self.workers
            .iter()
            .find(|w| w.queue == queue)
            .map(|w| &w.inject)
    }

    /// Stops and joins the workers, then detaches the program. Returns each
    /// worker's final report (a panicked worker is left out).
    pub fn stop(mut self) -> Vec<WorkerExit> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Vec<WorkerExit> {
        self.stop.store(true, Ordering::Relaxed);
        self.workers
            .iter_mut()
            .filter_map(|w| w.join.take())
            .filter_map(|j| j.join().ok())
            .collect()
    }
}

impl Drop for AfXdpRuntime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for AfXdpRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfXdpRuntime")
            .field("report", &self.report)
            .field("filter", &self.filter)
            .finish_non_exhaustive()
    }
}
