//! Opening one queue set: a UMEM shared by one AF_XDP socket per port, all bound
//! to the same queue number.
//!
//! Sharing the UMEM between the Internet and the backbone port is what makes
//! forwarding zero-copy in user space: a frame received on one port is transmitted
//! on the other by writing its address to the other port's TX ring.
//!
//! Kernel rules that shape this code:
//! * every (device, queue) bound to a UMEM needs its own fill/completion ring pair;
//! * the first socket owns the UMEM and chooses copy/zero-copy and need-wakeup;
//!   the others bind with `XDP_SHARED_UMEM` and must pass no mode flags (EINVAL
//!   otherwise): they inherit the owner's mode. So if one device cannot do
//!   zero-copy, the whole set has to be rebuilt in copy mode, which is what
//!   [`open_queue_set`] does under [`BindPreference::Auto`].
//! * need-wakeup is always requested: in copy mode the kernel transmits only inside
//!   `sendto()`, and without the flag we could not tell when it is needed.

use std::num::NonZeroU32;

use xdpilone::{
    CompletionQueue, FillQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig,
    User,
};

use eip_dataplane::frame::PortId;

use super::config::{AfXdpConfig, BindMode, BindPreference};
use super::error::{io_from_xsk, or_permission, SetupError};
use super::umem::{UmemArea, UmemLayout};

/// A port resolved to its kernel interface.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedPort {
    pub port: PortId,
    pub interface: String,
}

/// The four rings of one port in a queue set.
pub(crate) struct DeviceRings {
    pub port: PortId,
    pub fill: FillQueue,
    pub comp: CompletionQueue,
    pub rx: RingRx,
    pub tx: RingTx,
}

/// Everything a worker needs for one queue, ready to be moved to its thread.
pub(crate) struct QueueSet {
    pub queue: u32,
    pub mode: BindMode,
    /// Copy-mode TX descriptors per `sendto()`, if the kernel let us raise it.
    pub tx_budget: Option<u32>,
    /// Index = device index in the frame ledger = port slot in the XDP program.
    pub devices: Vec<DeviceRings>,
    /// Socket handles, kept by the runtime for `XDP_STATISTICS` and the XSKMAP.
    pub sockets: Vec<User>,
    /// Declared last: dropped after the rings that point into it.
    pub area: UmemArea,
}

/// Opens and binds the sockets of `queue` on every port of `config`.
pub(crate) fn open_queue_set(
    config: &AfXdpConfig,
    ports: &[ResolvedPort],
    queue: u32,
) -> Result<QueueSet, SetupError> {
    let layout = UmemLayout::new(config.frame_size, config.frames_per_queue)?;
    match config.bind_mode {
        BindPreference::Copy => open_in_mode(config, ports, queue, layout, BindMode::Copy),
        BindPreference::ZeroCopy => open_in_mode(config, ports, queue, layout, BindMode::ZeroCopy),
        BindPreference::Auto => {
            match open_in_mode(config, ports, queue, layout, BindMode::ZeroCopy) {
                Ok(set) => Ok(set),
                // Only a refused zero-copy bind is worth a retry; anything else (no
                // permission, no interface) fails the same way in copy mode.
                Err(SetupError::Bind { .. }) => {
                    open_in_mode(config, ports, queue, layout, BindMode::Copy)
                }
                Err(e) => Err(e),
            }
        }
    }
}

fn open_in_mode(
    config: &AfXdpConfig,
    ports: &[ResolvedPort],
    queue: u32,
    layout: UmemLayout,
    mode: BindMode,
) -> Result<QueueSet, SetupError> {
    let area = UmemArea::new(layout)?;
    let umem_config = UmemConfig {
        fill_size: config.ring_size,
        complete_size: config.ring_size,
        frame_size: config.frame_size,
        headroom: config.umem_headroom,
        flags: 0,
    };
    // SAFETY: `area` is a fresh page-aligned mapping of exactly `layout.bytes()`
    // bytes, and it is moved into the returned `QueueSet` together with every ring
    // created from this UMEM, so it outlives all of them (the `Umem` value itself
    // is dropped at the end of this function; the sockets keep the kernel object).
    let umem = unsafe { Umem::new(umem_config, area.as_raw_slice()) }.map_err(|e| {
        let source = io_from_xsk(e);
        match source.raw_os_error() {
            Some(libc::EAFNOSUPPORT) => SetupError::AfXdpUnsupported { source },
            _ => or_permission(
                source,
                || "creating an AF_XDP socket and registering its UMEM".into(),
                |source| SetupError::UmemRegister { queue, source },
            ),
        }
    })?;

    let ring = NonZeroU32::new(config.ring_size).expect("validated: ring_size >= 64");
    let budget = copy_tx_budget(config);
    let mut tx_budget = (mode == BindMode::Copy).then_some(budget);
    let mut devices = Vec::with_capacity(ports.len());
    let mut sockets = Vec::with_capacity(ports.len());
    for (slot, port) in ports.iter().enumerate() {
        let step = |step: &'static str| {
            let interface = port.interface.clone();
            move |e: xdpilone::Errno| {
                let source = io_from_xsk(e);
                match source.raw_os_error() {
                    Some(libc::ENODEV) => SetupError::InterfaceMissing { name: interface },
                    _ => SetupError::Socket {
                        interface,
                        queue,
                        step,
                        source,
                    },
                }
            }
        };

        let mut info = IfInfo::invalid();
        let name = std::ffi::CString::new(port.interface.as_str()).map_err(|_| {
            SetupError::InterfaceMissing {
                name: port.interface.clone(),
            }
        })?;
        info.from_name(&name).map_err(step("interface lookup"))?;
        info.set_queue(queue);

        // The first port's socket is the UMEM's own file descriptor.
        let socket = if slot == 0 {
            Socket::with_shared(&info, &umem)
        } else {
            Socket::new(&info)
        }
        .map_err(step("socket creation"))?;
        let device = umem
            .fq_cq(&socket)
            .map_err(step("fill/completion ring setup"))?;
        let bind_flags = if slot == 0 {
            SocketConfig::XDP_BIND_NEED_WAKEUP
                | match mode {
                    BindMode::ZeroCopy => SocketConfig::XDP_BIND_ZEROCOPY,
                    BindMode::Copy => SocketConfig::XDP_BIND_COPY,
                }
        } else {
            0 // inherited from the UMEM owner; the kernel refuses flags here
        };
        let user = umem
            .rx_tx(
                &socket,
                &SocketConfig {
                    rx_size: Some(ring),
                    tx_size: Some(ring),
                    bind_flags,
                },
            )
            .map_err(step("RX/TX ring setup"))?;
        let rx = user.map_rx().map_err(step("RX ring mmap"))?;
        let tx = user.map_tx().map_err(step("TX ring mmap"))?;
        umem.bind(&user).map_err(|e| SetupError::Bind {
            interface: port.interface.clone(),
            queue,
            mode,
            source: io_from_xsk(e),
        })?;
        let (fill, comp) = device.into_parts();
        if mode == BindMode::Copy && !set_tx_budget(user.as_raw_fd(), budget) {
            tx_budget = None;
        }
        devices.push(DeviceRings {
            port: port.port,
            fill,
            comp,
            rx,
            tx,
        });
        sockets.push(user);
    }
    Ok(QueueSet {
        queue,
        mode,
        tx_budget,
        devices,
        sockets,
        area,
    })
}

/// `XDP_MAX_TX_SKB_BUDGET` (Linux 6.17+): descriptors one `sendto()` may transmit
/// in copy mode (the kernel's default is 32).
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
const SOL_XDP: libc::c_int = 283;

/// Copy-mode TX budget per `sendto()`: enough for a few batches, so one wakeup per
/// loop iteration keeps up with RX; within the kernel's allowed [32, ring size].
fn copy_tx_budget(config: &AfXdpConfig) -> u32 {
    (4 * config.batch_size as u32).clamp(32, config.ring_size)
}

/// Raises the copy-mode TX budget of socket `fd`. False on kernels without the
/// option (ENOPROTOOPT) or when refused; the worker then kicks more often.
fn set_tx_budget(fd: libc::c_int, budget: u32) -> bool {
    // SAFETY: `fd` is a live AF_XDP socket owned by the caller; the option reads
    // exactly one u32 from a valid pointer.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            SOL_XDP,
            XDP_MAX_TX_SKB_BUDGET,
            (&budget as *const u32).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    rc == 0
}
