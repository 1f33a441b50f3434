//! The XDP program's rate caps: frames to an EIP over its inbound packets/s or
//! bits/s cap are dropped before the redirect (counted as `drop_rate`, never
//! seen by a worker), IPv4 and IPv6, an EIP's own caps and the POP default;
//! traffic within the cap passes whole; lifting the caps lets everything
//! through again.

use super::*;
use crate::{FilterDelta, XdpCaps, CAP_INHERIT};

#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn floods_over_a_cap_are_dropped_in_xdp_v4_and_v6() {
    require_root();
    let topo = Topology::new(1);
    let (src, fwd, dst) = topo.names();
    let forwarder = topo.forwarder();
    let (s0, f0) = (topo.s0, topo.f0);
    on_thread(move || {
        let (at_src, at_dst, mut rt) =
            start_two_armed(&src, &fwd, &dst, &config(vec![0], vec![]), &forwarder);
        rt.sync_maps(&source()).expect("sync");
        // EIP4: its own 100 packets/s; EIP6: the POP default, 80 kbit/s
        // (a 100-byte IPv6 packet is 800 bits: 100 packets/s).
        let caps = FilterDelta {
            set_caps: vec![(
                EIP4.into(),
                XdpCaps {
                    bps: CAP_INHERIT,
                    pps: 100,
                },
            )],
            default_caps: Some(XdpCaps {
                bps: 80_000,
                pps: 0,
            }),
            ..FilterDelta::default()
        };
        let report = rt.widen_maps(&caps).expect("widen");
        assert_eq!((report.caps.added, report.caps.total), (1, 1));
        let to_f0 = L2 {
            dst: f0,
            src: s0,
            vlan: None,
        };
        let v4 = |seq: u32| udp4(to_f0, CLIENT, EIP4, 1000, 80, &payload(seq, 0));
        // 40 (IPv6) + 8 (UDP) + 52 = 100 bytes.
        let v6 = |seq: u32| {
            let mut p = payload(seq, 0);
            p.resize(52, 0);
            udp6(to_f0, "2001:db8:c::1".parse().unwrap(), EIP6, 1000, 80, &p)
        };

        // A burst of 400 each within a few ms: a couple of buckets' worth pass.
        let before = rt.filter_stats().unwrap();
        send_paced(&at_src, (0..400).flat_map(|i| [v4(i), v6(10_000 + i)]));
        let (seen, _) = collect(&at_dst, 800, Duration::from_secs(2));
        let after = rt.filter_stats().unwrap();
        let passed4 = seen.iter().filter(|s| **s < 10_000).count();
        let passed6 = seen.len() - passed4;
        eprintln!("burst: v4 passed {passed4}, v6 passed {passed6}, {after:?}");
        assert!((2..=40).contains(&passed4), "v4 passed {passed4} of 400");
        assert!((2..=40).contains(&passed6), "v6 passed {passed6} of 400");
        assert_eq!(
            after.drop_rate - before.drop_rate,
            800 - seen.len() as u64,
            "every frame that did not pass was dropped for its cap"
        );
        assert_eq!(
            after.redirect_eip_v4 + after.redirect_eip_v6
                - before.redirect_eip_v4
                - before.redirect_eip_v6,
            seen.len() as u64,
            "no worker saw the dropped frames"
        );

        // Within the caps (one frame each per 25 ms, 40/s): all pass.
        for i in 0..20 {
            at_src.send(&v4(20_000 + i));
            at_src.send(&v6(30_000 + i));
            std::thread::sleep(Duration::from_millis(25));
        }
        let (seen, _) = collect(&at_dst, 40, Duration::from_secs(2));
        assert_eq!(seen.len(), 40, "within the caps: {seen:?}");

        // Lifted: the whole burst passes.
        let lift = FilterDelta {
            remove_caps: vec![EIP4.into()],
            default_caps: Some(XdpCaps::NONE),
            ..FilterDelta::default()
        };
        rt.widen_maps(&lift).expect("default lifted");
        let report = rt.narrow_maps(&lift).expect("narrow");
        assert_eq!((report.caps.removed, report.caps.total), (1, 0));
        let before = rt.filter_stats().unwrap();
        send_paced(
            &at_src,
            (0..100).flat_map(|i| [v4(40_000 + i), v6(50_000 + i)]),
        );
        let (seen, _) = collect(&at_dst, 200, Duration::from_secs(3));
        let after = rt.filter_stats().unwrap();
        assert_eq!(seen.len(), 200);
        assert_eq!(after.drop_rate, before.drop_rate);
        for exit in rt.stop() {
            check_exit(&exit);
        }
    });
}
