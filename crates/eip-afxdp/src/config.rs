//! What the operator asks of the AF_XDP driver, and what the kernel granted.

use std::fmt;
use std::time::Duration;

use eip_dataplane::frame::PortId;

use super::error::SetupError;
use super::frames::MAX_DEVICES;

/// Which traffic the XDP program diverts to user space on a port.
///
/// Everything else on the port (ARP, ND, BGP, SSH, traffic to the host's own
/// addresses) is passed to the kernel untouched. A two-armed POP accepts EIP
/// traffic on the Internet port and VXLAN only on the backbone port, so that a
/// VXLAN packet spoofed from the Internet never reaches the decapsulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    /// IPv4/IPv6 packets whose destination is an EIP.
    pub eip: bool,
    /// UDP to a local VTEP address on the VXLAN port.
    pub vtep: bool,
}

impl Accept {
    /// Internet-facing port.
    pub const INTERNET: Accept = Accept {
        eip: true,
        vtep: false,
    };
    /// Backbone-facing port.
    pub const BACKBONE: Accept = Accept {
        eip: false,
        vtep: true,
    };
    /// One-armed: both on the same interface.
    pub const BOTH: Accept = Accept {
        eip: true,
        vtep: true,
    };
}

/// One port the driver serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// The pipeline's index of this port (`Frame::port`, `Verdict::Tx`).
    pub port: PortId,
    /// Kernel interface name.
    pub interface: String,
    /// What the XDP program diverts to user space on this interface.
    pub accept: Accept,
}

/// XDP attach mode to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpModePreference {
    /// Native (driver) mode, falling back to generic (skb) mode.
    #[default]
    Auto,
    /// Native only.
    Driver,
    /// Generic only (any driver, slower: runs after skb allocation).
    Skb,
}

/// XDP attach mode obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// Native: the program runs in the driver before any skb exists.
    Driver,
    /// Generic: the program runs on an skb in the core stack.
    Skb,
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdpMode::Driver => "native (driver)",
            XdpMode::Skb => "generic (skb)",
        })
    }
}

/// AF_XDP bind mode to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindPreference {
    /// Zero-copy, falling back to copy mode (veth and most virtual devices).
    #[default]
    Auto,
    /// Zero-copy only.
    ZeroCopy,
    /// Copy only.
    Copy,
}

/// AF_XDP bind mode obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// The NIC DMAs straight into UMEM frames.
    ZeroCopy,
    /// The kernel copies each packet between its buffers and UMEM frames.
    Copy,
}

impl fmt::Display for BindMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BindMode::ZeroCopy => "zero-copy",
            BindMode::Copy => "copy",
        })
    }
}

/// What an idle worker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdlePolicy {
    /// Spin forever (lowest latency; the core is 100% busy, which is the point of
    /// pinning it).
    #[default]
    BusyPoll,
    /// After `after_empty_polls` consecutive empty polls, sleep `sleep` per poll
    /// until traffic returns. For shared machines and tests.
    Backoff {
        after_empty_polls: u32,
        sleep: Duration,
    },
}

/// Configuration of the AF_XDP driver.
#[derive(Debug, Clone)]
pub struct AfXdpConfig {
    /// One port (one-armed) or two (Internet + backbone), all sharing each
    /// queue set's UMEM so a frame received on one can be sent on the other
    /// without a copy.
    pub ports: Vec<PortConfig>,
    /// Device queues to serve; one worker thread and one UMEM per queue. The same
    /// queue number is used on every port.
    pub queues: Vec<u32>,
    /// CPU for the worker of `queues[i]`; workers beyond the list are not pinned.
    pub cpus: Vec<usize>,
    /// Bytes per UMEM frame: 2048 or 4096.
    pub frame_size: u32,
    /// UMEM frames per queue set.
    pub frames_per_queue: u32,
    /// Entries in each fill, completion, RX and TX ring (power of two).
    pub ring_size: u32,
    /// Extra bytes the kernel leaves in front of received packets, on top of the
    /// 256-byte `XDP_PACKET_HEADROOM` it always leaves.
    pub umem_headroom: u32,
    /// Headroom the pipeline needs in front of a received packet (VXLAN: 64).
    /// Checked at setup against the headroom the kernel provides.
    pub min_headroom: u32,
    /// Frames per worker batch.
    pub batch_size: usize,
    /// XDP attach mode to ask for.
    pub xdp_mode: XdpModePreference,
    /// AF_XDP bind mode to ask for.
    pub bind_mode: BindPreference,
    /// Capacity of each of the IPv4 and IPv6 EIP filter maps.
    pub max_eips: u32,
    /// Capacity of the VTEP filter map.
    pub max_vteps: u32,
    /// UDP destination port of VXLAN.
    pub vxlan_port: u16,
    /// Packets that may wait for the control thread (copied) before new ones are
    /// dropped.
    pub control_queue_depth: usize,
    /// What an idle worker does.
    pub idle: IdlePolicy,
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        AfXdpConfig {
            ports: Vec::new(),
            queues: vec![0],
            cpus: Vec::new(),
            frame_size: 2048,
            frames_per_queue: 8192,
            ring_size: 2048,
            umem_headroom: 0,
            min_headroom: 128,
            batch_size: 64,
            xdp_mode: XdpModePreference::Auto,
            bind_mode: BindPreference::Auto,
            max_eips: 1 << 17,
            max_vteps: 64,
            vxlan_port: 4789,
            control_queue_depth: 256,
            idle: IdlePolicy::BusyPoll,
        }
    }
}

/// Ports per XDP program (slots in the XSKMAP key space).
pub const MAX_PORTS: usize = MAX_DEVICES;

/// Highest queue number + 1 the XSKMAP is sized for.
pub const MAX_QUEUES_PER_PORT: u32 = 256;

impl AfXdpConfig {
    /// Checks everything that does not need the kernel.
    pub fn validate(&self) -> Result<(), SetupError> {
        let bad = |msg: String| Err(SetupError::Config(msg));
        if self.ports.is_empty() || self.ports.len() > MAX_PORTS {
            return bad(format!(
                "need 1..={MAX_PORTS} ports, got {}",
                self.ports.len()
            ));
        }
        for (i, p) in self.ports.iter().enumerate() {
            if self.ports[..i]
                .iter()
                .any(|q| q.interface == p.interface || q.port == p.port)
            {
                return bad(format!(
                    "port {} / interface `{}` listed twice",
                    p.port, p.interface
                ));
            }
            if !p.accept.eip && !p.accept.vtep {
                return bad(format!(
                    "interface `{}` accepts neither EIP nor VTEP traffic",
                    p.interface
                ));
            }
        }
        if self.queues.is_empty() {
            return bad("no queues to serve".into());
        }
        for (i, q) in self.queues.iter().enumerate() {
            if self.queues[..i].contains(q) {
                return bad(format!("queue {q} listed twice"));
            }
            if *q >= MAX_QUEUES_PER_PORT {
                return bad(format!(
                    "queue {q} is beyond the supported {MAX_QUEUES_PER_PORT}"
                ));
            }
        }
        if !self.ring_size.is_power_of_two() || self.ring_size < 64 {
            return bad(format!(
                "ring_size must be a power of two >= 64, not {}",
                self.ring_size
            ));
        }
        if self.batch_size == 0 || self.batch_size > self.ring_size as usize {
            return bad(format!(
                "batch_size must be 1..=ring_size, not {}",
                self.batch_size
            ));
        }
        if (self.frames_per_queue as usize) < 4 * self.batch_size * self.ports.len() {
            return bad(format!(
                "frames_per_queue {} is too small for {} port(s) and batches of {}",
                self.frames_per_queue,
                self.ports.len(),
                self.batch_size
            ));
        }
        super::umem::UmemLayout::new(self.frame_size, self.frames_per_queue)?;
        let headroom = self
            .umem_headroom
            .saturating_add(super::umem::XDP_PACKET_HEADROOM);
        if headroom < self.min_headroom {
            return bad(format!(
                "RX headroom {headroom} is below the required {}",
                self.min_headroom
            ));
        }
        // A full-size Ethernet frame (1514) must still fit behind the headroom.
        if headroom.saturating_add(1514) > self.frame_size {
            return bad(format!(
                "umem_headroom {} leaves less than 1514 bytes per {}-byte frame",
                self.umem_headroom, self.frame_size
            ));
        }
        if self.max_eips == 0 || self.max_vteps == 0 {
            return bad("max_eips and max_vteps must be at least 1".into());
        }
        if self.control_queue_depth == 0 {
            return bad("control_queue_depth must be at least 1".into());
        }
        Ok(())
    }

    /// CPU to pin the worker of `queues[i]` to.
    pub fn cpu_for(&self, i: usize) -> Option<usize> {
        self.cpus.get(i).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_armed() -> AfXdpConfig {
        AfXdpConfig {
            ports: vec![
                PortConfig {
                    port: 0,
                    interface: "inet0".into(),
                    accept: Accept::INTERNET,
                },
                PortConfig {
                    port: 1,
                    interface: "bb0".into(),
                    accept: Accept::BACKBONE,
                },
            ],
            ..AfXdpConfig::default()
        }
    }

    #[test]
    fn default_two_armed_config_is_valid() {
        two_armed().validate().unwrap();
    }

    #[test]
    fn rejects_duplicates_and_bad_sizes() {
        let mut c = two_armed();
        c.ports[1].interface = "inet0".into();
        assert!(c.validate().is_err());
        let mut c = two_armed();
        c.queues = vec![1, 1];
        assert!(c.validate().is_err());
        let mut c = two_armed();
        c.ring_size = 1000;
        assert!(c.validate().is_err());
        let mut c = two_armed();
        c.umem_headroom = 400;
        assert!(c.validate().is_err());
        let mut c = two_armed();
        c.frames_per_queue = 100;
        assert!(c.validate().is_err());
        let mut c = two_armed();
        c.frame_size = 3000;
        assert!(c.validate().is_err());
        let mut c = two_armed();
        c.umem_headroom = u32::MAX;
        assert!(c.validate().is_err());
    }
}
