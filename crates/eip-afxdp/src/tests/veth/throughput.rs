//! A measurement, not a check: run by hand (see the test's doc comment).

use super::*;

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
    crate::tests::testbed::run(
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
