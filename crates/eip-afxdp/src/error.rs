//! Setup errors, worded for the operator who has to fix them.
//!
//! Every variant names the interface, queue or map involved, and errors that come
//! from the kernel carry the `io::Error` (errno) plus a hint for the errnos that
//! have a well-known cause (EPERM, EBUSY, EOPNOTSUPP, ENOMEM...).

use std::io;

use super::config::{BindMode, XdpMode};

/// Why the AF_XDP driver could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The configuration is inconsistent; nothing was touched.
    #[error("invalid AF_XDP configuration: {0}")]
    Config(String),

    /// No interface of that name in this network namespace.
    #[error("interface `{name}` does not exist (in this network namespace)")]
    InterfaceMissing { name: String },

    /// The device has fewer queues than the configuration asks for.
    #[error(
        "interface `{interface}` has {available} {kind} queue(s), so queue {queue} does not \
         exist (see `ethtool -l {interface}`; `ethtool -L {interface} combined N` adds queues)"
    )]
    QueueOutOfRange {
        interface: String,
        queue: u32,
        /// "RX" or "TX".
        kind: &'static str,
        available: u32,
    },

    /// The process lacks a capability.
    #[error(
        "{action}: permission denied; run as root, or grant CAP_NET_ADMIN, CAP_NET_RAW, \
         CAP_BPF, CAP_PERFMON (the verifier wants it for the filter's packet pointer \
         arithmetic) and CAP_IPC_LOCK (UMEM pages are locked)"
    )]
    PermissionDenied {
        action: String,
        #[source]
        source: io::Error,
    },

    /// `socket(AF_XDP)` is not available.
    #[error(
        "this kernel does not support AF_XDP sockets (needs Linux >= 4.18 built with \
         CONFIG_XDP_SOCKETS)"
    )]
    AfXdpUnsupported {
        #[source]
        source: io::Error,
    },

    /// The UMEM memory could not be mapped.
    #[error("cannot allocate {bytes} bytes for the UMEM")]
    UmemAlloc {
        bytes: usize,
        #[source]
        source: io::Error,
    },

    /// Registering the UMEM with the kernel failed.
    #[error("registering the UMEM for queue {queue} failed{}", hint(source))]
    UmemRegister {
        queue: u32,
        #[source]
        source: io::Error,
    },

    /// One of the socket setup steps (rings, mmap) failed.
    #[error("AF_XDP {step} for `{interface}` queue {queue} failed{}", hint(source))]
    Socket {
        interface: String,
        queue: u32,
        step: &'static str,
        #[source]
        source: io::Error,
    },

    /// `bind()` of an AF_XDP socket to a device queue failed.
    #[error(
        "binding AF_XDP to `{interface}` queue {queue} in {mode} mode failed{}",
        hint(source)
    )]
    Bind {
        interface: String,
        queue: u32,
        mode: BindMode,
        #[source]
        source: io::Error,
    },

    /// The embedded XDP object could not be parsed or its maps/program loaded.
    #[error("loading the XDP filter program failed")]
    XdpLoad {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// Attaching the XDP program to an interface failed.
    #[error(
        "attaching XDP to `{interface}` in {mode} mode failed (errno {}){}",
        errno.map_or_else(|| "n/a".to_string(), |e| e.to_string()),
        errno.map_or("", errno_hint)
    )]
    XdpAttach {
        interface: String,
        mode: XdpMode,
        errno: Option<i32>,
        #[source]
        source: aya::programs::ProgramError,
    },

    /// Reading or writing one of the XDP program's maps failed.
    #[error("XDP map `{map}`: {what}")]
    Map {
        map: &'static str,
        what: String,
        #[source]
        source: Option<aya::maps::MapError>,
    },

    /// The worker thread could not be started.
    #[error("spawning the worker thread for queue {queue} failed")]
    Spawn {
        queue: u32,
        #[source]
        source: io::Error,
    },
}

fn hint(e: &io::Error) -> &'static str {
    e.raw_os_error().map_or("", errno_hint)
}

/// Operator advice for errnos with a well-known cause in AF_XDP/XDP setup.
pub(crate) fn errno_hint(errno: i32) -> &'static str {
    match errno {
        libc::EPERM | libc::EACCES => {
            ": permission denied (run as root or with CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF, \
             CAP_PERFMON)"
        }
        libc::EOPNOTSUPP => ": not supported by this driver (try copy mode / generic XDP)",
        libc::EBUSY => {
            ": busy (another XDP program or AF_XDP socket owns it; check `ip link show` \
             and stop the other data plane)"
        }
        libc::ENOMEM | libc::ENOBUFS => {
            ": out of memory (raise RLIMIT_MEMLOCK / `ulimit -l`, or use fewer frames)"
        }
        libc::EINVAL => ": invalid argument (queue id beyond the device's queues, or bad flags)",
        libc::ENODEV | libc::ENXIO => ": no such device",
        _ => "",
    }
}

/// The errno at the bottom of an error chain, if any (aya wraps them in layers).
pub(crate) fn errno_of(err: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if let Some(code) = io.raw_os_error() {
                return Some(code);
            }
        }
        if let Some(nl) = e.downcast_ref::<aya::sys::NetlinkError>() {
            if let Some(code) = nl.raw_os_error() {
                return Some(code);
            }
        }
        cur = e.source();
    }
    None
}

/// `xdpilone` reports errors as a bare errno.
pub(crate) fn io_from_xsk(e: xdpilone::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.get_raw().abs())
}

/// Maps EPERM/EACCES to [`SetupError::PermissionDenied`], anything else through `other`.
pub(crate) fn or_permission(
    source: io::Error,
    action: impl FnOnce() -> String,
    other: impl FnOnce(io::Error) -> SetupError,
) -> SetupError {
    match source.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => SetupError::PermissionDenied {
            action: action(),
            source,
        },
        _ => other(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_thing_and_the_fix() {
        let e = SetupError::QueueOutOfRange {
            interface: "eth1".into(),
            queue: 4,
            kind: "RX",
            available: 2,
        };
        let msg = e.to_string();
        assert!(
            msg.contains("eth1") && msg.contains("queue 4") && msg.contains("2 RX"),
            "{msg}"
        );

        let e = SetupError::Bind {
            interface: "veth0".into(),
            queue: 0,
            mode: BindMode::ZeroCopy,
            source: io::Error::from_raw_os_error(libc::EOPNOTSUPP),
        };
        assert!(
            e.to_string()
                .contains("zero-copy mode failed: not supported"),
            "{e}"
        );

        let e = or_permission(
            io::Error::from_raw_os_error(libc::EPERM),
            || "creating an AF_XDP socket".into(),
            |source| SetupError::AfXdpUnsupported { source },
        );
        assert!(matches!(e, SetupError::PermissionDenied { .. }));
        assert!(e.to_string().contains("CAP_BPF") && e.to_string().contains("CAP_PERFMON"));
    }

    #[test]
    fn errno_is_found_through_wrappers() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] io::Error);
        let e = Outer(io::Error::from_raw_os_error(libc::EBUSY));
        assert_eq!(errno_of(&e), Some(libc::EBUSY));
    }
}
