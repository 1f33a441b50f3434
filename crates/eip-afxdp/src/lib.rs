//! AF_XDP port driver: moves frames between NIC queues and the pipeline.
//!
//! This is the one module of the project with `unsafe` code (UMEM memory, the
//! interface ioctl); every block says why it is sound.
//!
//! # Shape
//! * An XDP program ([`program`], source in `crates/eip-afxdp/bpf/eip_xdp.c`) runs on
//!   every port and diverts to AF_XDP only what the data plane owns: packets to an
//!   EIP, and VXLAN to a local VTEP. Everything else (ARP, ND, BGP, SSH) goes to
//!   the kernel as if we were not there.
//! * Per device queue, one *queue set* (module `socket`): a UMEM ([`umem`]) shared by
//!   one socket per port, so forwarding between the Internet and the backbone port
//!   moves no bytes in user space.
//! * Per queue set, one pinned poll-mode [`worker`] thread, which owns the rings,
//!   the UMEM and the [`frames::FrameLedger`] that tracks where each frame is.
//! * [`runtime::AfXdpRuntime`] orders setup and teardown and is what the daemon
//!   holds.
//!
//! # Verdicts
//! * `Tx(port)`: transmitted from the frame's final `head()`, so encapsulation
//!   into the headroom costs no copy.
//! * `Drop`: recycled (the pipeline counted the reason).
//! * `ToKernel`: AF_XDP cannot hand a frame back to the kernel stack without a
//!   copy through a TAP-like device, and it should never be needed: the XDP
//!   program passes non-owned traffic itself. Such frames are counted
//!   (`to_kernel`) and recycled.
//! * `ToControl`: copied into the bounded [`control::ControlQueue`] (dropped and
//!   counted when full), recycled.
//!
//! # Injection
//! The control thread sends frames of its own (path probes) through a worker
//! with [`inject::InjectQueue`]: the worker copies them into free UMEM frames and
//! transmits them on the port's TX ring, so they take the data's exact path.
//!
//! # Using it
//! ```text
//! let mut rt = AfXdpRuntime::start(&config, |queue| MyProcessor::new(queue))?;
//! println!("{:?}", rt.report());          // XDP mode per port, copy/zero-copy per queue
//! rt.sync_maps(&tables)?;                 // after every table swap (Tables: FilterSource)
//! rt.worker_stats(); rt.socket_stats(); rt.filter_stats();   // any thread, any time
//! while let Some(p) = rt.control_queue().pop() { /* ToControl frames */ }
//! rt.inject_queue().push(port, &frame)?;  // a frame out of `port`, via worker 0
//! let exits = rt.stop();                  // joins workers, detaches XDP, reports frames
//! ```
//!
//! # Not supported
//! Unaligned UMEM chunks, multi-buffer (jumbo) frames, TX metadata/offloads,
//! sharing one UMEM across queues, re-injection of `ToKernel` frames, more than
//! one VLAN tag (QinQ) in the filter, and VTEPs on IPv6. Zero-copy mode is
//! implemented (and preferred) but was only exercised through its fallback: veth
//! refuses it.

pub mod config;
pub mod control;
pub mod error;
pub mod frames;
pub mod heap;
pub mod iface;
pub mod inject;
pub mod program;
pub mod runtime;
mod socket;
pub mod stats;
pub mod umem;
pub mod worker;

#[cfg(test)]
mod tests;

pub use config::{
    Accept, AfXdpConfig, BindMode, BindPreference, IdlePolicy, PortConfig, XdpMode,
    XdpModePreference,
};
pub use control::{ControlGuard, ControlPacket, ControlQueue};
pub use error::SetupError;
pub use frames::{FrameCounts, FrameLedger, FrameState};
pub use inject::{InjectError, InjectQueue};
pub use program::{
    AclEntry, CapsEntry, FilterDelta, FilterSource, FilterStats, SyncReport, XdpCaps, XdpFilter,
    CAP_INHERIT, XDP_MAX_RATE,
};
pub use runtime::{AfXdpRuntime, PortReport, QueueReport, SetupReport};
pub use stats::{SocketStats, WorkerCounters, WorkerSnapshot, WorkerStats};
pub use worker::{PacketProcessor, WorkerExit};
