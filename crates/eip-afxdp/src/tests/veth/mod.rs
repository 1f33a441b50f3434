//! End-to-end tests of the driver on veth pairs: the shared harness here, the
//! tests by subject beside it (forwarding, setup and lifecycle, throughput).
//!
//! Topology (three namespaces, two veth pairs):
//!
//! ```text
//!  [src] s0 ──── f0 [fwd: port 0 "internet", accepts EIP]
//!                f1 [fwd: port 1 "backbone", accepts VTEP] ──── d0 [dst]
//! ```
//!
//! The forwarder under test runs in `fwd` with a [`TestForwarder`] that rewrites
//! MACs and sends each frame out of the other port, with a few UDP ports reserved
//! to exercise the other verdicts and the headroom.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{
    Accept, AfXdpConfig, AfXdpRuntime, FilterDelta, FilterSource, IdlePolicy, InjectError,
    PacketProcessor, PortConfig, SetupError, WorkerExit, XdpFilter, XdpMode, XdpModePreference,
};
use eip_dataplane::counters::DropReason;
use eip_dataplane::frame::{Frame, Verdict};

use super::packets::{find_seq, payload, udp4, udp6, udp_dport, vxlan4, L2};
use super::testbed::{enter, ip, link_stat, on_thread, require_root, veth, Netns, PacketSocket};

pub(super) const EIP4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub(super) const EIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
pub(super) const VTEP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub(super) const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub(super) const NOT_OURS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 99);

pub(super) const PORT_ENCAP: u16 = 7777;
pub(super) const PORT_CONTROL: u16 = 7778;
pub(super) const PORT_DROP: u16 = 7779;
pub(super) const PORT_KERNEL: u16 = 7780;
/// Bytes the test "encapsulation" pushes in front of the packet: the headroom the
/// driver promises (VXLAN itself needs 64).
pub(super) const ENCAP: usize = 128;

/// The filter contents of these tests.
pub(super) struct Source {
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
    vteps: Vec<Ipv4Addr>,
}

impl FilterSource for Source {
    fn eip_v4(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.v4.iter().copied()
    }
    fn eip_v6(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.v6.iter().copied()
    }
    fn local_vteps(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.vteps.iter().copied()
    }
}

pub(super) fn source() -> Source {
    Source {
        v4: vec![EIP4],
        v6: vec![EIP6],
        vteps: vec![VTEP],
    }
}

/// Forwarder: sends each frame out of `out[in_port]`, MACs rewritten for that
/// port's next hop.
#[derive(Clone)]
pub(super) struct TestForwarder {
    /// Output port per input port.
    out: [u16; 2],
    /// Per output port: (our MAC, next hop's MAC).
    macs: [([u8; 6], [u8; 6]); 2],
}

impl PacketProcessor for TestForwarder {
    fn process_batch(&mut self, _now_ns: u64, frames: &mut [Frame<'_>], verdicts: &mut [Verdict]) {
        for (frame, verdict) in frames.iter_mut().zip(verdicts.iter_mut()) {
            let out = self.out[usize::from(frame.port().min(1))];
            let (ours, next_hop) = self.macs[out as usize];
            *verdict = match udp_dport(frame.data()) {
                Some(PORT_CONTROL) => Verdict::ToControl,
                Some(PORT_DROP) => Verdict::Drop(DropReason::Truncated),
                Some(PORT_KERNEL) => Verdict::ToKernel,
                Some(PORT_ENCAP) => {
                    // Grow into the headroom, as VXLAN encapsulation does.
                    if !frame.push_head(ENCAP) {
                        *verdict = Verdict::Drop(DropReason::NoRoom);
                        continue;
                    }
                    let d = frame.data_mut();
                    d[..6].copy_from_slice(&next_hop);
                    d[6..12].copy_from_slice(&ours);
                    d[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
                    d[14..ENCAP].fill(0xee);
                    Verdict::Tx(out)
                }
                _ => {
                    let d = frame.data_mut();
                    d[..6].copy_from_slice(&next_hop);
                    d[6..12].copy_from_slice(&ours);
                    Verdict::Tx(out)
                }
            };
        }
    }
}

/// The three namespaces and what the test needs to know about them.
pub(super) struct Topology {
    src: Netns,
    fwd: Netns,
    dst: Netns,
    s0: [u8; 6],
    f0: [u8; 6],
    f1: [u8; 6],
    d0: [u8; 6],
}

impl Topology {
    fn new(queues: u32) -> Topology {
        let (src, fwd, dst) = (Netns::new("s"), Netns::new("f"), Netns::new("d"));
        veth(&src, "s0", &fwd, "f0", queues);
        veth(&fwd, "f1", &dst, "d0", queues);
        Topology {
            s0: src.mac("s0"),
            f0: fwd.mac("f0"),
            f1: fwd.mac("f1"),
            d0: dst.mac("d0"),
            src,
            fwd,
            dst,
        }
    }

    fn forwarder(&self) -> TestForwarder {
        TestForwarder {
            out: [1, 0],
            macs: [(self.f0, self.s0), (self.f1, self.d0)],
        }
    }

    fn names(&self) -> (String, String, String) {
        (
            self.src.name.clone(),
            self.fwd.name.clone(),
            self.dst.name.clone(),
        )
    }
}

/// Packet sockets on the sender and receiver ends and a two-armed runtime in the
/// forwarder's namespace (called on the test's own thread: `enter` is per thread).
pub(super) fn start_two_armed(
    src: &str,
    fwd: &str,
    dst: &str,
    cfg: &AfXdpConfig,
    forwarder: &TestForwarder,
) -> (PacketSocket, PacketSocket, AfXdpRuntime) {
    enter(src);
    let at_src = PacketSocket::open("s0");
    enter(dst);
    let at_dst = PacketSocket::open("d0");
    enter(fwd);
    let rt = AfXdpRuntime::start(cfg, |_| forwarder.clone()).expect("start");
    eprintln!("setup: {:?}", rt.report());
    (at_src, at_dst, rt)
}

pub(super) fn config(queues: Vec<u32>, cpus: Vec<usize>) -> AfXdpConfig {
    AfXdpConfig {
        ports: vec![
            PortConfig {
                port: 0,
                interface: "f0".into(),
                accept: Accept::INTERNET,
            },
            PortConfig {
                port: 1,
                interface: "f1".into(),
                accept: Accept::BACKBONE,
            },
        ],
        queues,
        cpus,
        // 2048 frames per fill ring: at the test's pacing that covers a worker
        // preempted for 30 ms on a busy machine.
        frames_per_queue: 8192,
        ring_size: 2048,
        // Do not monopolise a shared test machine between bursts.
        idle: IdlePolicy::Backoff {
            after_empty_polls: 10_000,
            sleep: Duration::from_micros(50),
        },
        ..AfXdpConfig::default()
    }
}

/// Receives test frames until `want` distinct sequence numbers arrived or
/// `timeout` passed; returns them with the first frame seen.
pub(super) fn collect(
    sock: &PacketSocket,
    want: usize,
    timeout: Duration,
) -> (BTreeSet<u32>, Option<Vec<u8>>) {
    let mut seen = BTreeSet::new();
    let mut first = None;
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + timeout;
    while seen.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(n) = sock.recv(&mut buf, left) else {
            break;
        };
        if let Some(seq) = find_seq(&buf[..n]) {
            seen.insert(seq);
            first.get_or_insert_with(|| buf[..n].to_vec());
        }
    }
    (seen, first)
}

pub(super) fn send_paced(sock: &PacketSocket, frames: impl Iterator<Item = Vec<u8>>) {
    for (i, f) in frames.enumerate() {
        sock.send(&f);
        // veth's per-queue ring holds 256 frames: give NAPI a chance to drain
        // it, and keep the rate well below what a preempted worker could lose.
        if i % 64 == 63 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Prints every counter on the path, to see where frames went missing.
pub(super) fn diagnose(rt: &AfXdpRuntime, links: &[(&str, &str)]) {
    std::thread::sleep(Duration::from_millis(100));
    eprintln!("filter: {:?}", rt.filter_stats());
    for (q, s) in rt.worker_stats() {
        eprintln!("worker q{q}: {:?}", s);
    }
    for (q, p, s) in rt.socket_stats() {
        eprintln!("socket q{q} port {p}: {s:?}");
    }
    for (ns, dev) in links {
        let stat = |s| link_stat(ns, dev, s);
        eprintln!(
            "{dev}: rx {} rx_dropped {} tx {} tx_dropped {}",
            stat("rx_packets"),
            stat("rx_dropped"),
            stat("tx_packets"),
            stat("tx_dropped")
        );
    }
}

pub(super) fn expect_count(
    rt: &AfXdpRuntime,
    links: &[(&str, &str)],
    got: usize,
    want: usize,
    what: &str,
) {
    if got != want {
        diagnose(rt, links);
        panic!("{what}: {got} of {want}");
    }
}

pub(super) fn check_exit(exit: &WorkerExit) {
    exit.audit
        .as_ref()
        .unwrap_or_else(|e| panic!("queue {}: ledger audit: {e}", exit.queue));
    assert_eq!(
        exit.frames.accounted(),
        exit.frames.total,
        "every frame accounted for: {:?}",
        exit.frames
    );
    assert_eq!(exit.frames.held, 0, "no frame left in the worker's hands");
    assert_eq!(
        exit.frames.in_tx(),
        0,
        "every transmitted frame completed: {:?}",
        exit.frames
    );
    assert_eq!(
        exit.counters.rx_invalid + exit.counters.completion_invalid,
        0,
        "{:?}",
        exit.counters
    );
}

mod acl;
mod forwarding;
mod lifecycle;
mod limits;
mod throughput;
