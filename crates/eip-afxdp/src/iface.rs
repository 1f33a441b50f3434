//! Interface lookups done before touching any AF_XDP state, so that a typo or a
//! missing queue produces a precise error instead of an EINVAL from `bind()`.
//!
//! Both lookups go through sockets (not sysfs), so they see the network namespace
//! of the calling thread, which is the namespace the sockets will be created in.

use std::ffi::CString;
use std::io;

use super::error::SetupError;

/// Kernel index of `name`.
pub fn ifindex(name: &str) -> Result<u32, SetupError> {
    let missing = || SetupError::InterfaceMissing {
        name: name.to_string(),
    };
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(missing());
    }
    let c = CString::new(name).map_err(|_| missing())?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(missing());
    }
    Ok(index)
}

/// `struct ethtool_channels` from <linux/ethtool.h>.
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// Queues of a device as `ethtool -l` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCounts {
    /// RX-capable channels (`combined + rx`).
    pub rx: u32,
    /// TX-capable channels (`combined + tx`).
    pub tx: u32,
}

/// Queue counts of `name`. `Ok(None)` if the driver does not implement the
/// query, in which case the queue is validated by `bind()` itself.
pub fn queue_counts(name: &str) -> io::Result<Option<QueueCounts>> {
    let mut channels = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    // SAFETY: an all-zero `ifreq` is a valid value (name, then a union of ints and
    // pointers).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_data = (&mut channels as *mut EthtoolChannels).cast();

    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCETHTOOL reads `req` (NUL-terminated name, data pointer) and writes
    // at most `size_of::<EthtoolChannels>()` bytes through the pointer, which points
    // to a live, writable `EthtoolChannels`.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCETHTOOL as _, &mut req as *mut libc::ifreq) };
    let err = io::Error::last_os_error();
    // SAFETY: `fd` is ours and closed exactly once.
    unsafe { libc::close(fd) };
    if rc < 0 {
        return match err.raw_os_error() {
            Some(libc::EOPNOTSUPP) => Ok(None),
            _ => Err(err),
        };
    }
    Ok(Some(QueueCounts {
        rx: channels.combined_count + channels.rx_count,
        tx: channels.combined_count + channels.tx_count,
    }))
}

/// Checks that `queue` exists on `name`, for RX and for TX. (A copy-mode socket
/// bound to a queue beyond the device's TX queues binds fine and then silently
/// never transmits.)
pub fn check_queue(name: &str, queue: u32) -> Result<(), SetupError> {
    let out_of_range = |kind, available| SetupError::QueueOutOfRange {
        interface: name.to_string(),
        queue,
        kind,
        available,
    };
    match queue_counts(name) {
        Ok(Some(c)) if queue >= c.rx => Err(out_of_range("RX", c.rx)),
        Ok(Some(c)) if queue >= c.tx => Err(out_of_range("TX", c.tx)),
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Err(SetupError::InterfaceMissing {
            name: name.to_string(),
        }),
        // Unknown failure of a diagnostic query: let bind() have the final word.
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_exists_and_nonsense_does_not() {
        assert!(ifindex("lo").unwrap() > 0);
        assert!(matches!(
            ifindex("no-such-if0"),
            Err(SetupError::InterfaceMissing { .. })
        ));
        assert!(matches!(
            ifindex(""),
            Err(SetupError::InterfaceMissing { .. })
        ));
        assert!(matches!(
            ifindex("a-name-longer-than-ifnamsiz"),
            Err(SetupError::InterfaceMissing { .. })
        ));
    }
}
