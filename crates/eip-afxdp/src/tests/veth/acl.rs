//! The XDP program's access-list tries: frames from a denied source prefix of
//! an EIP are dropped before the redirect (counted as `drop_acl`, never seen
//! by a worker), IPv4 and IPv6; other sources and other EIPs pass; removing
//! the entries lets them through again.

use super::*;
use crate::FilterDelta;
use eip_dataplane::protect::Prefix;

#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn denied_sources_are_dropped_in_xdp_v4_and_v6() {
    require_root();
    let topo = Topology::new(1);
    let (src, fwd, dst) = topo.names();
    let forwarder = topo.forwarder();
    let (s0, f0) = (topo.s0, topo.f0);
    on_thread(move || {
        let (at_src, at_dst, mut rt) =
            start_two_armed(&src, &fwd, &dst, &config(vec![0], vec![]), &forwarder);
        rt.sync_maps(&source()).expect("sync");
        let deny = FilterDelta {
            add_acl: vec![
                (EIP4.into(), Prefix::parse("198.51.100.0/25").unwrap()),
                (EIP6.into(), Prefix::parse("2001:db8:c::/48").unwrap()),
            ],
            ..FilterDelta::default()
        };
        let report = rt.widen_maps(&deny).expect("widen");
        assert_eq!((report.acl.added, report.acl.total), (2, 2));
        let to_f0 = L2 {
            dst: f0,
            src: s0,
            vlan: None,
        };
        let v4 = |from: Ipv4Addr, seq: u32| udp4(to_f0, from, EIP4, 1000, 80, &payload(seq, 0));
        let v6 = |from: &str, seq: u32| {
            udp6(
                to_f0,
                from.parse().unwrap(),
                EIP6,
                1000,
                80,
                &payload(seq, 0),
            )
        };
        let round = |base: u32| {
            let mut frames = Vec::new();
            for i in 0..20 {
                // Denied: inside the /25 and the /48 (their edges included).
                frames.push(v4(
                    Ipv4Addr::new(198, 51, 100, if i == 0 { 127 } else { i as u8 }),
                    base + i,
                ));
                frames.push(v6(
                    if i == 0 {
                        "2001:db8:c:ffff::1"
                    } else {
                        "2001:db8:c::1"
                    },
                    base + 100 + i,
                ));
                // Passed: just outside them.
                frames.push(v4(
                    Ipv4Addr::new(198, 51, 100, 128 + i as u8),
                    base + 200 + i,
                ));
                frames.push(v6("2001:db8:d::1", base + 300 + i));
            }
            frames
        };
        let before = rt.filter_stats().unwrap();
        send_paced(&at_src, round(0).into_iter());
        let (seen, _) = collect(&at_dst, 40, Duration::from_secs(3));
        std::thread::sleep(Duration::from_millis(200));
        let after = rt.filter_stats().unwrap();
        let passed: BTreeSet<u32> = (200..220).chain(300..320).collect();
        assert_eq!(
            seen, passed,
            "only the sources outside the prefixes get through"
        );
        assert_eq!(after.drop_acl - before.drop_acl, 40);
        // Counted per entry too: 20 frames each.
        let mut per_entry = rt.filter_acl_hits().expect("hits");
        per_entry.sort_by_key(|(e, _)| e.0);
        assert_eq!(
            per_entry.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            [20, 20],
            "{per_entry:?}"
        );
        // A reset (the EIP's list changed, the entry kept) starts it over.
        let reset = FilterDelta {
            reset_acl: vec![deny.add_acl[0]],
            ..FilterDelta::default()
        };
        rt.narrow_maps(&reset).expect("reset");
        let mut per_entry = rt.filter_acl_hits().expect("hits");
        per_entry.sort_by_key(|(e, _)| e.0);
        assert_eq!(
            per_entry.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            [0, 20]
        );
        assert_eq!(after.redirect_eip_v4 - before.redirect_eip_v4, 20);
        assert_eq!(after.redirect_eip_v6 - before.redirect_eip_v6, 20);

        // Removed: everything reaches the worker again.
        let undo = FilterDelta {
            remove_acl: deny.add_acl.clone(),
            ..FilterDelta::default()
        };
        let report = rt.narrow_maps(&undo).expect("narrow");
        assert_eq!((report.acl.removed, report.acl.total), (2, 0));
        let before = rt.filter_stats().unwrap();
        send_paced(&at_src, round(1000).into_iter());
        let (seen, _) = collect(&at_dst, 80, Duration::from_secs(3));
        let after = rt.filter_stats().unwrap();
        assert_eq!(seen.len(), 80);
        assert_eq!(after.drop_acl, before.drop_acl);
        for exit in rt.stop() {
            check_exit(&exit);
        }
    });
}
