//! End-to-end tests of the driver on veth pairs.
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
    Accept, AfXdpConfig, AfXdpRuntime, FilterSource, IdlePolicy, InjectError, PacketProcessor,
    PortConfig, SetupError, WorkerExit, XdpFilter, XdpMode, XdpModePreference,
};
use eip_dataplane::counters::DropReason;
use eip_dataplane::frame::{Frame, Verdict};

use super::packets::{find_seq, payload, udp4, udp6, udp_dport, vxlan4, L2};
use super::testbed::{enter, ip, link_stat, on_thread, require_root, veth, Netns, PacketSocket};

const EIP4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const EIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const VTEP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const NOT_OURS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 99);

const PORT_ENCAP: u16 = 7777;
const PORT_CONTROL: u16 = 7778;
const PORT_DROP: u16 = 7779;
const PORT_KERNEL: u16 = 7780;
/// Bytes the test "encapsulation" pushes in front of the packet: the headroom the
/// driver promises (VXLAN itself needs 64).
const ENCAP: usize = 128;

/// The filter contents of these tests.
struct Source {
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

fn source() -> Source {
    Source {
        v4: vec![EIP4],
        v6: vec![EIP6],
        vteps: vec![VTEP],
    }
}

/// Forwarder: sends each frame out of `out[in_port]`, MACs rewritten for that
/// port's next hop.
#[derive(Clone)]
struct TestForwarder {
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
struct Topology {
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
fn start_two_armed(
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

fn config(queues: Vec<u32>, cpus: Vec<usize>) -> AfXdpConfig {
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
fn collect(
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

fn send_paced(sock: &PacketSocket, frames: impl Iterator<Item = Vec<u8>>) {
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
fn diagnose(rt: &AfXdpRuntime, links: &[(&str, &str)]) {
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

fn expect_count(rt: &AfXdpRuntime, links: &[(&str, &str)], got: usize, want: usize, what: &str) {
    if got != want {
        diagnose(rt, links);
        panic!("{what}: {got} of {want}");
    }
}

fn check_exit(exit: &WorkerExit) {
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

#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn veth_two_armed_forwarder_moves_and_classifies_packets() {
    require_root();
    let topo = Topology::new(1);
    let (src, fwd, dst) = topo.names();
    let forwarder = topo.forwarder();
    let (s0, f0, f1, d0) = (topo.s0, topo.f0, topo.f1, topo.d0);
    on_thread(move || {
        let (at_src, at_dst, mut rt) =
            start_two_armed(&src, &fwd, &dst, &config(vec![0], vec![]), &forwarder);
        let sync = rt.sync_maps(&source()).expect("sync");
        assert_eq!(
            (sync.eip_v4.added, sync.eip_v6.added, sync.vtep_v4.added),
            (1, 1, 1)
        );

        let to_f0 = L2 {
            dst: f0,
            src: s0,
            vlan: None,
        };
        let to_f1 = L2 {
            dst: f1,
            src: d0,
            vlan: None,
        };

        // 1. IPv4 to the EIP: forwarded with the MACs rewritten.
        const N: u32 = 1000;
        send_paced(
            &at_src,
            (0..N).map(|i| {
                udp4(
                    to_f0,
                    CLIENT,
                    EIP4,
                    1000 + (i % 50) as u16,
                    80,
                    &payload(i, 0),
                )
            }),
        );
        let (seen, first) = collect(&at_dst, N as usize, Duration::from_secs(5));
        let links = [
            (src.as_str(), "s0"),
            (fwd.as_str(), "f0"),
            (fwd.as_str(), "f1"),
            (dst.as_str(), "d0"),
        ];
        expect_count(
            &rt,
            &links,
            seen.len(),
            N as usize,
            "IPv4 EIP frames forwarded",
        );
        let first = first.unwrap();
        assert_eq!(
            (&first[..6], &first[6..12]),
            (&d0[..], &f1[..]),
            "MACs rewritten"
        );

        // 2. IPv6 to the EIP, and IPv4 behind an 802.1Q tag.
        send_paced(
            &at_src,
            (0..10).map(|i| {
                udp6(
                    to_f0,
                    "2001:db8::1".parse().unwrap(),
                    EIP6,
                    1000,
                    80,
                    &payload(10_000 + i, 0),
                )
            }),
        );
        send_paced(
            &at_src,
            (0..10).map(|i| {
                udp4(
                    L2 {
                        vlan: Some(100),
                        ..to_f0
                    },
                    CLIENT,
                    EIP4,
                    1000,
                    80,
                    &payload(20_000 + i, 0),
                )
            }),
        );
        let (seen, _) = collect(&at_dst, 20, Duration::from_secs(3));
        expect_count(
            &rt,
            &links,
            seen.len(),
            20,
            "IPv6 and VLAN-tagged EIP frames forwarded",
        );

        // 3. Encapsulation into the headroom: the TX descriptor starts 64 bytes early.
        send_paced(
            &at_src,
            (0..10).map(|i| {
                udp4(
                    to_f0,
                    CLIENT,
                    EIP4,
                    1000,
                    PORT_ENCAP,
                    &payload(30_000 + i, 0),
                )
            }),
        );
        let (seen, first) = collect(&at_dst, 10, Duration::from_secs(3));
        expect_count(&rt, &links, seen.len(), 10, "encapsulated frames forwarded");
        let first = first.unwrap();
        assert_eq!(
            &first[12..14],
            &0x88b5u16.to_be_bytes(),
            "outer header written in the headroom"
        );
        assert_eq!(
            first.len(),
            ENCAP + 14 + 20 + 8 + 12,
            "frame grew by the encapsulation"
        );
        assert_eq!(
            find_seq(&first[ENCAP..]),
            Some(30_000),
            "inner frame intact behind it"
        );

        // 4. Other verdicts.
        send_paced(
            &at_src,
            (0..5).map(|i| {
                udp4(
                    to_f0,
                    CLIENT,
                    EIP4,
                    1000,
                    PORT_CONTROL,
                    &payload(40_000 + i, 0),
                )
            }),
        );
        send_paced(
            &at_src,
            (0..7).map(|i| {
                udp4(
                    to_f0,
                    CLIENT,
                    EIP4,
                    1000,
                    PORT_DROP,
                    &payload(50_000 + i, 0),
                )
            }),
        );
        send_paced(
            &at_src,
            (0..3).map(|i| {
                udp4(
                    to_f0,
                    CLIENT,
                    EIP4,
                    1000,
                    PORT_KERNEL,
                    &payload(60_000 + i, 0),
                )
            }),
        );

        // 5. Not ours: a non-EIP destination, and VXLAN arriving on the Internet
        // port (which does not accept VTEP traffic). Both go to the kernel.
        let before = rt.filter_stats().unwrap();
        send_paced(
            &at_src,
            (0..10).map(|i| udp4(to_f0, CLIENT, NOT_OURS, 1000, 80, &payload(70_000 + i, 0))),
        );
        send_paced(
            &at_src,
            (0..10).map(|i| vxlan4(to_f0, CLIENT, VTEP, 1000, 42, &payload(80_000 + i, 0))),
        );
        let (leaked, _) = collect(&at_dst, 1, Duration::from_millis(300));
        assert!(
            leaked.is_empty(),
            "non-owned traffic must not be forwarded: {leaked:?}"
        );
        let after = rt.filter_stats().unwrap();
        assert!(
            after.pass_not_ours >= before.pass_not_ours + 20,
            "{before:?} -> {after:?}"
        );

        // 6. VXLAN to the VTEP on the backbone port: forwarded back to the Internet side.
        let inner = udp4(
            L2 {
                dst: [0x02; 6],
                src: [0x04; 6],
                vlan: None,
            },
            Ipv4Addr::new(10, 0, 0, 1),
            CLIENT,
            80,
            1000,
            &payload(90_000, 0),
        );
        send_paced(
            &at_dst,
            (0..10).map(|i| {
                vxlan4(
                    to_f1,
                    Ipv4Addr::new(192, 0, 2, 200),
                    VTEP,
                    40_000 + i,
                    42,
                    &inner,
                )
            }),
        );
        let (seen, first) = collect(&at_src, 1, Duration::from_secs(3));
        expect_count(&rt, &links, seen.len(), 1, "VXLAN to the VTEP forwarded");
        assert_eq!(
            (
                &first.as_ref().unwrap()[..6],
                &first.as_ref().unwrap()[6..12]
            ),
            (&s0[..], &f0[..])
        );

        std::thread::sleep(Duration::from_millis(100));
        let control: Vec<u32> = std::iter::from_fn(|| {
            rt.control_queue()
                .pop()
                .map(|p| find_seq(p.data()).unwrap())
        })
        .collect();
        assert_eq!(
            control,
            (40_000..40_005).collect::<Vec<_>>(),
            "ToControl frames copied in order"
        );

        let fs = rt.filter_stats().unwrap();
        eprintln!("filter: {fs:?}");
        assert_eq!(fs.redirect_eip_v6, 10);
        assert!(fs.redirect_eip_v4 >= u64::from(N) + 10 + 10 + 5 + 7 + 3);
        assert!(fs.redirect_vtep >= 10);
        assert_eq!(fs.no_socket, 0);
        for (queue, port, stats) in rt.socket_stats() {
            eprintln!("socket q{queue} port {port}: {:?}", stats.unwrap());
        }

        let exits = rt.stop();
        assert_eq!(exits.len(), 1);
        let c = exits[0].counters;
        eprintln!("worker: {c:?}");
        check_exit(&exits[0]);
        assert_eq!((c.to_control, c.dropped, c.to_kernel), (5, 7, 3));
        assert_eq!(
            c.rx_packets,
            c.tx_packets + c.to_control + c.dropped + c.to_kernel + c.tx_ring_full
        );
        assert_eq!(c.tx_packets, u64::from(N) + 20 + 10 + 10);
    });
}

/// One-armed (a single port accepting EIP and VTEP traffic, frames hairpinned
/// out of the port they came in on) with the XDP program forced into generic
/// (skb) mode.
#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn veth_one_armed_generic_xdp() {
    require_root();
    let topo = Topology::new(1);
    let (src, fwd, _) = topo.names();
    let (s0, f0) = (topo.s0, topo.f0);
    let forwarder = TestForwarder {
        out: [0, 0],
        macs: [(f0, s0), (f0, s0)],
    };
    on_thread(move || {
        enter(&src);
        let at_src = PacketSocket::open("s0");
        enter(&fwd);
        let mut cfg = config(vec![0], vec![]);
        cfg.ports.truncate(1);
        cfg.ports[0].accept = Accept::BOTH;
        cfg.xdp_mode = XdpModePreference::Skb;
        let mut rt = AfXdpRuntime::start(&cfg, |_| forwarder.clone()).expect("start");
        eprintln!("setup: {:?}", rt.report());
        assert_eq!(rt.report().ports[0].xdp_mode, XdpMode::Skb);
        rt.sync_maps(&source()).unwrap();

        let to_f0 = L2 {
            dst: f0,
            src: s0,
            vlan: None,
        };
        const N: u32 = 200;
        send_paced(
            &at_src,
            (0..N).map(|i| udp4(to_f0, CLIENT, EIP4, 1000, 80, &payload(i, 0))),
        );
        send_paced(
            &at_src,
            (0..10).map(|i| vxlan4(to_f0, CLIENT, VTEP, 1000, 42, &payload(N + i, 0))),
        );
        let (seen, first) = collect(&at_src, N as usize + 10, Duration::from_secs(5));
        let links = [(src.as_str(), "s0"), (fwd.as_str(), "f0")];
        expect_count(
            &rt,
            &links,
            seen.len(),
            N as usize + 10,
            "hairpinned frames",
        );
        let first = first.unwrap();
        assert_eq!((&first[..6], &first[6..12]), (&s0[..], &f0[..]));

        let exits = rt.stop();
        check_exit(&exits[0]);
        assert_eq!(exits[0].counters.tx_packets, u64::from(N) + 10);
    });
}

#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn veth_two_queues_two_workers() {
    require_root();
    let topo = Topology::new(2);
    let (src, fwd, dst) = topo.names();
    let forwarder = topo.forwarder();
    let (s0, f0) = (topo.s0, topo.f0);
    on_thread(move || {
        let (at_src, at_dst, mut rt) = start_two_armed(
            &src,
            &fwd,
            &dst,
            &config(vec![0, 1], vec![0, 1]),
            &forwarder,
        );
        assert_eq!(rt.report().queues.len(), 2);
        rt.sync_maps(&source()).unwrap();

        // Many flows, so the sender's TX queue hash (which picks the RX queue
        // on the veth peer) spreads them over both queues.
        const N: u32 = 2000;
        let to_f0 = L2 {
            dst: f0,
            src: s0,
            vlan: None,
        };
        send_paced(
            &at_src,
            (0..N).map(|i| {
                udp4(
                    to_f0,
                    CLIENT,
                    EIP4,
                    1024 + (i % 512) as u16,
                    80,
                    &payload(i, 0),
                )
            }),
        );
        let (seen, _) = collect(&at_dst, N as usize, Duration::from_secs(5));
        assert_eq!(seen.len(), N as usize);

        let exits = rt.stop();
        assert_eq!(exits.len(), 2);
        for e in &exits {
            eprintln!(
                "queue {}: rx {} tx {}",
                e.queue, e.counters.rx_packets, e.counters.tx_packets
            );
            check_exit(e);
            assert!(
                e.counters.rx_packets > 0,
                "queue {} got no traffic",
                e.queue
            );
        }
        assert_eq!(
            exits.iter().map(|e| e.counters.tx_packets).sum::<u64>(),
            u64::from(N)
        );
    });
}

/// Frames the control thread injects leave on the chosen port, through the
/// worker's TX ring, while the worker keeps forwarding; the ledger accounts for
/// every frame.
#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn veth_injected_frames_leave_on_their_port() {
    require_root();
    let topo = Topology::new(1);
    let (src, fwd, dst) = topo.names();
    let forwarder = topo.forwarder();
    let (s0, f0, f1, d0) = (topo.s0, topo.f0, topo.f1, topo.d0);
    on_thread(move || {
        let (at_src, at_dst, mut rt) =
            start_two_armed(&src, &fwd, &dst, &config(vec![0], vec![]), &forwarder);
        rt.sync_maps(&source()).unwrap();
        let inject = rt.inject_queue().clone();
        assert!(Arc::ptr_eq(&inject, rt.inject_queue_of(0).unwrap()));
        assert!(rt.inject_queue_of(7).is_none());

        // Out of the backbone port (1) to d0, and of the Internet port (0) to s0,
        // with forwarded traffic in between.
        const N: u32 = 300;
        let to_d0 = L2 {
            dst: d0,
            src: f1,
            vlan: None,
        };
        let to_s0 = L2 {
            dst: s0,
            src: f0,
            vlan: None,
        };
        let to_f0 = L2 {
            dst: f0,
            src: s0,
            vlan: None,
        };
        let probe = |l2, i: u32| udp4(l2, VTEP, NOT_OURS, 5000, 6000, &payload(i, 16));
        for i in 0..N {
            let frame = probe(to_d0, i);
            // Like a prober: if the worker is behind, wait a little.
            let deadline = Instant::now() + Duration::from_secs(1);
            while let Err(e) = inject.push(1, &frame) {
                assert!(matches!(e, InjectError::Full { .. }), "{e}");
                assert!(Instant::now() < deadline, "worker takes no frames");
                std::thread::sleep(Duration::from_micros(100));
            }
            if i % 64 == 63 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        send_paced(
            &at_src,
            (0..10).map(|i| udp4(to_f0, CLIENT, EIP4, 1000, 80, &payload(1000 + i, 0))),
        );
        for i in 0..10 {
            inject.push(0, &probe(to_s0, 2000 + i)).unwrap();
        }
        assert_eq!(
            inject.push(5, &probe(to_s0, 0)),
            Err(InjectError::UnknownPort { port: 5 })
        );
        assert!(matches!(
            inject.push(1, &[0u8; 4096]),
            Err(InjectError::BadLength { len: 4096, .. })
        ));

        let (at_d0, first) = collect(&at_dst, N as usize + 10, Duration::from_secs(5));
        let links = [
            (src.as_str(), "s0"),
            (fwd.as_str(), "f0"),
            (fwd.as_str(), "f1"),
            (dst.as_str(), "d0"),
        ];
        let injected: BTreeSet<u32> = at_d0.iter().copied().filter(|&s| s < N).collect();
        expect_count(
            &rt,
            &links,
            injected.len(),
            N as usize,
            "injected on port 1",
        );
        let forwarded = at_d0.iter().filter(|&&s| (1000..1010).contains(&s)).count();
        expect_count(&rt, &links, forwarded, 10, "forwarded meanwhile");
        assert_eq!(
            first.unwrap(),
            probe(to_d0, 0),
            "the frame arrives byte for byte"
        );
        let (at_s0, _) = collect(&at_src, 10, Duration::from_secs(3));
        assert_eq!(at_s0, (2000..2010).collect(), "injected on port 0");

        let exits = rt.stop();
        let c = exits[0].counters;
        eprintln!("worker: {c:?}");
        check_exit(&exits[0]);
        assert_eq!(c.injected, u64::from(N) + 10);
        assert_eq!(
            (c.inject_no_frame, c.inject_ring_full, c.inject_no_port),
            (0, 0, 0)
        );
        assert_eq!(
            c.tx_packets, 10,
            "injected frames are not counted as forwarded"
        );
    });
}

#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn setup_errors_name_the_problem() {
    require_root();
    let topo = Topology::new(1);
    let (_, fwd, _) = topo.names();
    let forwarder = topo.forwarder();
    on_thread(move || {
        enter(&fwd);
        let mut cfg = config(vec![0], vec![]);
        cfg.ports[1].interface = "nosuch0".into();
        match AfXdpRuntime::start(&cfg, |_| forwarder.clone()) {
            Err(SetupError::InterfaceMissing { name }) => assert_eq!(name, "nosuch0"),
            other => panic!("expected InterfaceMissing, got {other:?}"),
        }
        let cfg = config(vec![3], vec![]);
        match AfXdpRuntime::start(&cfg, |_| forwarder.clone()) {
            Err(e @ SetupError::QueueOutOfRange { .. }) => {
                eprintln!("{e}");
                assert!(matches!(
                    e,
                    SetupError::QueueOutOfRange {
                        queue: 3,
                        available: 1,
                        ..
                    }
                ));
            }
            other => panic!("expected QueueOutOfRange, got {other:?}"),
        }
        // Nothing may stay attached after a failed start.
        let links = ip(&["link", "show", "f0"]);
        assert!(!links.contains("xdp"), "{links}");
    });
}

/// Without capabilities, `start` says which ones are missing. Capabilities are
/// per thread on Linux, so the test drops its thread's effective set instead of
/// needing an unprivileged user.
#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn permission_denied_names_the_capabilities() {
    require_root();
    on_thread(|| {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy, Default)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        // aya probes kernel features once per process and caches the answers;
        // probing without capabilities would poison them for the other tests.
        let _ = aya::features();
        let mut header = Header {
            version: 0x2008_0522,
            pid: 0,
        };
        let mut data = [Data::default(); 2];
        // SAFETY: capget/capset with a v3 header read/write exactly two `Data`
        // entries; pid 0 is the calling thread.
        unsafe {
            assert_eq!(
                libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()),
                0
            );
            data[0].effective = 0;
            data[1].effective = 0;
            assert_eq!(
                libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()),
                0
            );
        }
        let mut cfg = config(vec![0], vec![]);
        cfg.ports.truncate(1);
        cfg.ports[0].interface = "lo".into();
        cfg.ports[0].accept = Accept::BOTH;
        let fwd = TestForwarder {
            out: [0, 0],
            macs: [([0; 6], [0; 6]); 2],
        };
        match AfXdpRuntime::start(&cfg, |_| fwd.clone()) {
            Err(e @ SetupError::PermissionDenied { .. }) => {
                eprintln!("{e}");
                assert!(e.to_string().contains("CAP_BPF"), "{e}");
            }
            other => panic!("expected PermissionDenied, got {other:?}"),
        }
    });
}

#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn sync_maps_handles_100k_eips() {
    require_root();
    let mut filter = XdpFilter::load(crate::program::FilterSizes {
        ports: 2,
        queues_per_port: 1,
        max_eips: 120_000,
        max_vteps: 16,
        vxlan_port: 4789,
    })
    .expect("load");
    let v4 = |range: std::ops::Range<u32>| {
        range
            .map(|i| Ipv4Addr::from(0x0a00_0000 + i))
            .collect::<Vec<_>>()
    };
    let v6: Vec<Ipv6Addr> = (0..10_000u128)
        .map(|i| Ipv6Addr::from(0x2001_0db8_u128 << 96 | i))
        .collect();
    let t = Instant::now();
    let r = filter
        .sync_maps(&Source {
            v4: v4(0..100_000),
            v6: v6.clone(),
            vteps: vec![VTEP],
        })
        .unwrap();
    eprintln!("initial sync of 110k keys: {:?} ({r:?})", t.elapsed());
    assert_eq!(
        (r.eip_v4.added, r.eip_v6.added, r.vtep_v4.added),
        (100_000, 10_000, 1)
    );

    let t = Instant::now();
    let r = filter
        .sync_maps(&Source {
            v4: v4(500..100_500),
            v6,
            vteps: vec![],
        })
        .unwrap();
    eprintln!("incremental sync: {:?} ({r:?})", t.elapsed());
    assert_eq!(
        (r.eip_v4.added, r.eip_v4.removed, r.eip_v4.total),
        (500, 500, 100_000)
    );
    assert_eq!((r.eip_v6.added, r.eip_v6.removed), (0, 0));
    assert_eq!((r.vtep_v4.removed, r.vtep_v4.total), (1, 0));

    let too_many = filter.sync_maps(&Source {
        v4: v4(0..120_001),
        v6: vec![],
        vteps: vec![],
    });
    assert!(
        matches!(too_many, Err(SetupError::Map { map: "eip_v4", .. })),
        "{too_many:?}"
    );
}

/// Child half of [`bpf_link_detaches_on_kill_9`] (not a test: `scripts/test.sh`
/// skips `helper_`): attaches in the namespace named
/// by `AFX_CHILD_NS`, says READY and waits to be killed.
#[test]
#[ignore = "helper process of bpf_link_detaches_on_kill_9"]
fn helper_attach_and_wait_for_kill() {
    let Ok(ns) = std::env::var("AFX_CHILD_NS") else {
        return;
    };
    enter(&ns);
    let mut cfg = config(vec![0], vec![]);
    cfg.ports.truncate(1);
    cfg.ports[0].accept = Accept::BOTH;
    let fwd = TestForwarder {
        out: [0, 0],
        macs: [([0; 6], [0; 6]); 2],
    };
    let _rt = AfXdpRuntime::start(&cfg, |_| fwd.clone()).expect("start");
    println!("READY");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn bpf_link_detaches_on_kill_9() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    require_root();
    let topo = Topology::new(1);
    let fwd = topo.fwd.name.clone();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tests::veth::helper_attach_and_wait_for_kill",
            "--ignored",
            "--nocapture",
        ])
        .env("AFX_CHILD_NS", &fwd)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.any(|l| l.map(|l| l.trim() == "READY").unwrap_or(false));
    assert!(ready, "child never attached");
    let attached = ip(&["-n", &fwd, "link", "show", "f0"]);
    assert!(
        attached.contains("xdp"),
        "program attached while the child lives: {attached}"
    );

    child.kill().unwrap(); // SIGKILL: no destructor runs in the child
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let link = ip(&["-n", &fwd, "link", "show", "f0"]);
        if !link.contains("xdp") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "XDP still attached 5 s after kill -9: {link}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Throughput of the forwarder on veth, 64-byte frames, copy mode.
///
/// trafgen (pinned to CPU 0) sends 60-byte frames (64 with FCS) to the EIP into
/// `f0`. First the baseline: an XDP_DROP program on `f0`, i.e. what the generator
/// and veth can offer at all. Then the forwarder: one worker busy-polling on CPU 1
/// rewrites MACs and sends out of `f1`; an XDP_DROP sink on `d0` counts what
/// arrives, so the sink's stack costs nothing. `AFX_SECONDS` sets the duration,
/// `AFX_RING` the ring size.
#[test]
#[ignore = "measurement, run by hand with --release --nocapture (as root)"]
fn measure_veth_throughput() {
    require_root();
    let seconds: u64 = std::env::var("AFX_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let topo = Topology::new(1);
    let (src, fwd, dst) = topo.names();
    let forwarder = topo.forwarder();
    let pid = std::process::id();

    let sink_c = format!("/tmp/afxdp-sink-{pid}.c");
    let sink_o = format!("/tmp/afxdp-sink-{pid}.o");
    std::fs::write(
        &sink_c,
        "#include <linux/bpf.h>\n\
         __attribute__((section(\"xdp\"), used)) int sink(struct xdp_md *c) { (void)c; return XDP_DROP; }\n\
         char _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n",
    )
    .unwrap();
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    super::testbed::run(
        &clang,
        &[
            "-O2",
            "-target",
            "bpf",
            "-I/usr/include/x86_64-linux-gnu",
            "-c",
            &sink_c,
            "-o",
            &sink_o,
        ],
    )
    .unwrap();
    ip(&[
        "-n", &dst, "link", "set", "dev", "d0", "xdpdrv", "obj", &sink_o, "sec", "xdp",
    ]);

    let conf = format!("/tmp/afxdp-trafgen-{pid}.cfg");
    let hex = |m: [u8; 6]| {
        m.iter()
            .map(|b| format!("0x{b:02x}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // 60 bytes: Ethernet 14 + IPv4 20 + UDP 8 + 18 payload; trafgen fills the
    // checksums. The source port varies so the flow hash varies.
    std::fs::write(
        &conf,
        format!(
            "{{ {}, {}, 0x08, 0x00,\n\
               0x45, 0x00, c16(46), c16(0), c16(0x4000), 64, 17, csumip(14, 33),\n\
               198, 51, 100, 1, 203, 0, 113, 10,\n\
               dinc(1024, 4096, 1), c16(80), c16(26), csumudp(14, 34),\n\
               fill(0xab, 18) }}\n",
            hex(topo.f0),
            hex(topo.s0)
        ),
    )
    .unwrap();
    let blast = || {
        let t = Instant::now();
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &src,
                "timeout",
                "-s",
                "INT",
                &seconds.to_string(),
                "taskset",
                "-c",
                "0",
            ])
            .args(["trafgen", "-o", "s0", "-i", &conf, "-P", "1", "-q"])
            .output()
            .expect("trafgen");
        assert!(
            !out.stdout.is_empty(),
            "trafgen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed()
    };
    let mpps = |n: u64, t: Duration| n as f64 / t.as_secs_f64() / 1e6;

    // Baseline: XDP_DROP on f0.
    ip(&[
        "-n", &fwd, "link", "set", "dev", "f0", "xdpdrv", "obj", &sink_o, "sec", "xdp",
    ]);
    let before = link_stat(&fwd, "f0", "rx_packets");
    let t = blast();
    let dropped = link_stat(&fwd, "f0", "rx_packets") - before;
    ip(&["-n", &fwd, "link", "set", "dev", "f0", "xdpdrv", "off"]);
    eprintln!(
        "baseline trafgen -> XDP_DROP on f0: {:.3} Mpps",
        mpps(dropped, t)
    );

    // Forwarder.
    let (rt_tx, rt_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let fwd_ns = fwd.clone();
    let worker = std::thread::spawn(move || {
        enter(&fwd_ns);
        let mut cfg = config(vec![0], vec![1]);
        cfg.idle = IdlePolicy::BusyPoll;
        // AFX_RING: ring size; frames are 4x that (half in fill rings).
        cfg.ring_size = std::env::var("AFX_RING")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2048);
        cfg.frames_per_queue = 4 * cfg.ring_size;
        let mut rt = AfXdpRuntime::start(&cfg, |_| forwarder.clone()).expect("start");
        rt.sync_maps(&source()).unwrap();
        rt_tx.send(format!("{:?}", rt.report())).unwrap();
        done_rx.recv().unwrap();
        let sockets = rt.socket_stats();
        let exits = rt.stop();
        (exits, sockets)
    });
    eprintln!("setup: {}", rt_rx.recv().unwrap());
    let (offered0, delivered0) = (
        link_stat(&fwd, "f0", "rx_packets"),
        link_stat(&dst, "d0", "rx_packets"),
    );
    let t = blast();
    std::thread::sleep(Duration::from_millis(100));
    let offered = link_stat(&fwd, "f0", "rx_packets") - offered0;
    let delivered = link_stat(&dst, "d0", "rx_packets") - delivered0;
    done_tx.send(()).unwrap();
    let (exits, sockets) = worker.join().unwrap();
    let _ = std::fs::remove_file(&conf);
    let _ = std::fs::remove_file(&sink_c);
    let _ = std::fs::remove_file(&sink_o);

    eprintln!(
        "forwarder: offered {:.3} Mpps, delivered {:.3} Mpps ({delivered} of {offered} frames in {t:.2?})",
        mpps(offered, t),
        mpps(delivered, t)
    );
    for (q, p, s) in sockets {
        eprintln!("socket q{q} port {p}: {:?}", s.unwrap());
    }
    for e in &exits {
        let c = &e.counters;
        eprintln!(
            "worker: {c:?}\n  frames per batch {:.1}, TX wakeups per batch {:.2}, \
             busy {:.0}% of {t:.2?}, {:.0} ns per frame when busy",
            c.rx_packets as f64 / c.batches.max(1) as f64,
            c.tx_wakeups as f64 / c.batches.max(1) as f64,
            c.busy_ns as f64 / t.as_nanos() as f64 * 100.0,
            c.busy_ns as f64 / c.rx_packets.max(1) as f64,
        );
        check_exit(e);
    }
}
