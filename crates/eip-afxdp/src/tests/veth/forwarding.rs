//! Frames through the forwarder: two-armed, one-armed in generic XDP, two queues,
//! injected frames.

use super::*;

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
