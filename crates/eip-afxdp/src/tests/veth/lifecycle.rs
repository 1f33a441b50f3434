//! Setup errors that name the problem, the filter at 100k EIPs, and the program
//! going away with the process.

use super::*;

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
    // The big difference went in batches: the kernel holds what the counts say.
    assert!(
        filter.eip_v4_batches(),
        "the kernel refused the batch calls"
    );
    assert_eq!(filter.kernel_key_counts(), (100_000, 10_000, 1));
    // Someone removed one of the 500 keys about to go: the batch delete steps
    // over it and counts it as gone.
    filter.delete_eip_v4_behind_our_back(Ipv4Addr::from(0x0a00_0000 + 250));
    let r = filter
        .remove_keys(&FilterDelta {
            remove_v4: v4(0..500),
            ..FilterDelta::default()
        })
        .unwrap();
    assert_eq!((r.eip_v4.removed, r.eip_v4.total), (500, 99_500));
    assert_eq!(filter.kernel_key_counts(), (99_500, 10_000, 1));
    // Someone removed another: a whole sync reads back what the kernel holds
    // and puts it back.
    filter.delete_eip_v4_behind_our_back(Ipv4Addr::from(0x0a00_0000 + 600));

    let t = Instant::now();
    let r = filter
        .sync_maps(&Source {
            v4: v4(500..100_500),
            v6,
            vteps: vec![],
        })
        .unwrap();
    eprintln!("sync of 110k keys over 110k: {:?} ({r:?})", t.elapsed());
    assert_eq!(
        (r.eip_v4.added, r.eip_v4.removed, r.eip_v4.total),
        (501, 0, 100_000)
    );
    assert_eq!((r.eip_v6.added, r.eip_v6.removed), (0, 0));
    assert_eq!((r.vtep_v4.removed, r.vtep_v4.total), (1, 0));
    assert_eq!(filter.kernel_key_counts(), (100_000, 10_000, 0));
    // A few keys inserted one by one: those already there are not counted.
    let r = filter
        .insert_keys(&FilterDelta {
            add_v4: v4(100_480..100_520),
            ..FilterDelta::default()
        })
        .unwrap();
    assert_eq!((r.eip_v4.added, r.eip_v4.total), (20, 100_020));
    assert_eq!(filter.kernel_key_counts(), (100_020, 10_000, 0));
    assert!(
        filter.eip_v4_batches(),
        "the kernel refused the batch calls"
    );

    let too_many = filter.sync_maps(&Source {
        v4: v4(0..120_001),
        v6: vec![],
        vteps: vec![],
    });
    assert!(
        matches!(too_many, Err(SetupError::Map { map: "eip_v4", .. })),
        "{too_many:?}"
    );
    // Refused before anything moved.
    assert_eq!(filter.kernel_key_counts(), (100_020, 10_000, 0));
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
            "tests::veth::lifecycle::helper_attach_and_wait_for_kill",
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
