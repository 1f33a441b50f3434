//! Network namespaces, veth pairs and raw packet sockets for the root-only tests.
//!
//! Every namespace is named `afx-<pid>-<n><role>` and deleted when its guard drops,
//! including when the test panics. All traffic stays between veths whose both ends
//! live in namespaces created here.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Fails the test unless it runs as root (these tests are `#[ignore]`d, so this
/// only fires when one is asked for explicitly without root).
pub fn require_root() {
    assert!(
        eip_dataplane::testkit::host::is_root(),
        "this test needs root (network namespaces, XDP, AF_XDP): run it as root, or leave it \
         ignored (it is marked #[ignore] for that)"
    );
}

/// Runs `cmd args...`, failing with its stderr.
pub fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `ip args...` and panics on failure (test setup).
pub fn ip(args: &[&str]) -> String {
    run("ip", args).unwrap_or_else(|e| panic!("{e}"))
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `afx-<pid>-<n><role>`, with loopback up and IPv6 off (no ND/MLD
    /// noise on the test links).
    pub fn new(role: &str) -> Netns {
        let name = format!(
            "afx-{}-{}{role}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        let _ = ns.try_exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        let _ = ns.try_exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        ns
    }

    /// Runs a command inside the namespace, panicking on failure.
    pub fn exec(&self, args: &[&str]) -> String {
        self.try_exec(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs a command inside the namespace.
    pub fn try_exec(&self, args: &[&str]) -> Result<String, String> {
        let mut full = vec!["netns", "exec", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// MAC address of `dev`.
    pub fn mac(&self, dev: &str) -> [u8; 6] {
        let text = self.exec(&["cat", &format!("/sys/class/net/{dev}/address")]);
        let mut mac = [0u8; 6];
        for (b, part) in mac.iter_mut().zip(text.trim().split(':')) {
            *b = u8::from_str_radix(part, 16).expect("hex");
        }
        mac
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace destroys its veths (and their peers elsewhere).
        if let Err(e) = run("ip", &["netns", "del", &self.name]) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Moves the calling thread into namespace `name` (other threads unaffected).
/// Sockets opened afterwards belong to it, and threads spawned afterwards start
/// in it.
pub fn enter(name: &str) {
    let f = File::open(format!("/run/netns/{name}")).expect("netns file");
    // SAFETY: `f` is an open namespace file for the duration of the call;
    // CLONE_NEWNET only switches the calling thread's network namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns({name}): {}", io::Error::last_os_error());
}

/// A device's counter from /sys inside namespace `ns` (e.g. `rx_packets`).
pub fn link_stat(ns: &str, dev: &str, stat: &str) -> u64 {
    run(
        "ip",
        &[
            "netns",
            "exec",
            ns,
            "cat",
            &format!("/sys/class/net/{dev}/statistics/{stat}"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .trim()
    .parse()
    .expect("number")
}

/// Creates veth `a` in `ns_a` paired with `b` in `ns_b`, `queues` queues each
/// way, both up.
pub fn veth(ns_a: &Netns, a: &str, ns_b: &Netns, b: &str, queues: u32) {
    let q = queues.to_string();
    ip(&[
        "-n",
        &ns_a.name,
        "link",
        "add",
        a,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "type",
        "veth",
        "peer",
        "name",
        b,
        "netns",
        &ns_b.name,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
    ]);
    ip(&["-n", &ns_a.name, "link", "set", a, "up"]);
    ip(&["-n", &ns_b.name, "link", "set", b, "up"]);
}

/// Runs `body` on a fresh thread (so `Netns::enter` never leaks into the test
/// harness's threads) and re-raises its panic.
pub fn on_thread<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    match std::thread::spawn(body).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// An AF_PACKET socket bound to one interface of the calling thread's namespace.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens a raw socket on `ifname` (all ethertypes).
    pub fn open(ifname: &str) -> PacketSocket {
        let ifindex = crate::iface::ifindex(ifname).expect("interface");
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2); the result is checked and owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        assert!(fd >= 0, "AF_PACKET socket: {}", io::Error::last_os_error());
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: all-zero is a valid sockaddr_ll; fields set below.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto;
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` is a valid sockaddr_ll and the length matches it.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind AF_PACKET: {}", io::Error::last_os_error());
        let size: libc::c_int = 16 << 20;
        // SAFETY: SO_RCVBUFFORCE reads one c_int from a valid pointer.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            );
        }
        PacketSocket { fd }
    }

    /// Sends one frame.
    pub fn send(&self, frame: &[u8]) {
        // SAFETY: the pointer/length pair describes `frame`, readable for the call.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "send: {}",
            io::Error::last_os_error()
        );
    }

    /// Next frame received (outgoing frames skipped) within `timeout`.
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) };
            if ready <= 0 {
                continue;
            }
            // SAFETY: all-zero is a valid sockaddr_ll.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: `buf` and `from` are valid for writes of the given lengths.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n > 0 && from.sll_pkttype != libc::PACKET_OUTGOING {
                return Some(n as usize);
            }
        }
    }
}
