//! Tests of the [`Prober`]: matching replies, and a simulated network of two
//! paths with a fake clock whose replies cross the production pipeline.

use super::*;
use crate::health::Reason;
use crate::probe::testing::*;
use crate::probe::{HealthBoard, PAYLOAD_LEN};
use eip_dataplane::tables::spec::*;
use eip_dataplane::wire::icmpv4::{self, Icmpv4Packet};
use eip_dataplane::Verdict;
use etherparse::PacketBuilder;

#[test]
fn replies_pass_the_pipeline_and_are_matched() {
    let t = tables(&spec(), 1);
    let mut p = Prober::new(&t, config(), ms(0)).unwrap();
    let mut probes = poll_all(&mut p, ms(0));
    probes.extend(poll_all(&mut p, ms(5)));
    for (i, (_, probe)) in probes.iter().enumerate() {
        let reply = region_reply(probe, i);
        let port = t.port_by_name(&format!("backbone{i}")).unwrap();
        let (verdict, frame) = pipeline(&t, &reply, port);
        assert_eq!(verdict, Verdict::ToControl, "the pipeline hands it over");
        let sent = ms(5 * i as u64);
        let m = p.on_frame(sent + ms(2), &frame).unwrap();
        assert_eq!(
            m,
            Matched {
                path: i as PathId,
                seq: 0,
                rtt: ms(2)
            }
        );
        let snap = p.snapshot(&format!("bb{i}")).unwrap();
        assert_eq!((snap.counters.received, snap.srtt), (1, Some(ms(2))));
        // A duplicate is matched to the path but counted unmatched there.
        p.on_frame(sent + ms(3), &frame).unwrap();
        assert_eq!(p.snapshot(&format!("bb{i}")).unwrap().counters.unmatched, 1);
    }
    assert_eq!(p.counters().replies, 4);
}

#[test]
fn foreign_frames_are_ignored_and_counted() {
    let t = tables(&spec(), 1);
    let mut p = Prober::new(&t, config(), ms(0)).unwrap();
    let probe = poll_all(&mut p, ms(0)).remove(0).1;
    let good = region_reply(&probe, 0);
    let inner_ip = 50 + 14; // offset of the inner IPv4 header in a reply
    let icmp = inner_ip + 20;

    // Edits of the ICMP message that keep its checksum right.
    let edit = |f: &[u8], at: usize, value: u8| {
        let mut f = f.to_vec();
        f[icmp + at] = value;
        Icmpv4Packet::new_unchecked(&mut f[icmp..icmp + 8 + PAYLOAD_LEN]).fill_checksum();
        f
    };
    let nonce = edit(&good, 8, good[icmp + 8] ^ 0xff);
    assert_eq!(p.on_frame(ms(1), &nonce), Err(Ignored::WrongNonce));

    let mut checksum = good.clone();
    checksum[icmp + 9] ^= 1;
    assert_eq!(p.on_frame(ms(1), &checksum), Err(Ignored::BadChecksum));

    let ident = edit(&good, 4, good[icmp + 4] ^ 0x80);
    assert!(matches!(
        p.on_frame(ms(1), &ident),
        Err(Ignored::UnknownIdent { .. })
    ));

    let mut vni = good.clone();
    vni[48] = 7;
    assert_eq!(
        p.on_frame(ms(1), &vni),
        Err(Ignored::WrongSource {
            from: Ipv4Addr::from(PROBE_TARGET),
            vni: 7,
            target: Ipv4Addr::from(PROBE_TARGET),
            expected_vni: VNI,
        })
    );

    let request = edit(&good, 0, icmpv4::ECHO_REQUEST);
    assert_eq!(p.on_frame(ms(1), &request), Err(Ignored::NotEchoReply));

    assert!(matches!(
        p.on_frame(ms(1), &good[..good.len() - 20]),
        Err(Ignored::Malformed(_))
    ));
    assert!(matches!(
        p.on_frame(ms(1), &[0; 10]),
        Err(Ignored::Malformed(_))
    ));
    let mut port = good.clone();
    port[37] = 0x12;
    assert_eq!(
        p.on_frame(ms(1), &port),
        Err(Ignored::Malformed("UDP (not to the VXLAN port)"))
    );

    // None of them touched the path; the real reply still counts.
    assert_eq!(p.snapshot("bb0").unwrap().counters.received, 0);
    p.on_frame(ms(1), &good).unwrap();
    let c = *p.counters();
    assert_eq!(
        (
            c.replies,
            c.ignored_wrong_nonce,
            c.ignored_bad_checksum,
            c.ignored_unknown_ident,
            c.ignored_wrong_source,
            c.ignored_not_echo_reply,
            c.ignored_malformed
        ),
        (1, 1, 1, 1, 1, 1, 3)
    );
}

/// A network of two paths with a fake clock: each probe is answered after
/// `rtt[path]`, unless its path is cut.
struct Net {
    t: Tables,
    p: Prober,
    now: Duration,
    rtt: [Duration; 2],
    cut: [bool; 2],
    /// (due, path, reply frame)
    in_flight: Vec<(Duration, usize, Vec<u8>)>,
    events: Vec<ProberEvent>,
    /// How many probes of each path were sent.
    sent: [u64; 2],
    /// Drop every n-th probe of a path (0: none).
    lose_every: [u64; 2],
    /// Rebuild the tables when the prober's states differ, as `eipd run`
    /// does; `spec` is what they are built from.
    closed_loop: bool,
    spec: PopSpec,
    rebuilds: u32,
}

impl Net {
    fn new() -> Net {
        let t = tables(&spec(), 1);
        let p = Prober::new(&t, config(), Duration::ZERO).unwrap();
        Net {
            t,
            p,
            now: Duration::ZERO,
            rtt: [ms(2), ms(3)],
            cut: [false; 2],
            in_flight: Vec::new(),
            events: Vec::new(),
            sent: [0; 2],
            lose_every: [0; 2],
            closed_loop: false,
            spec: spec(),
            rebuilds: 0,
        }
    }

    /// Runs the loop for `d` in 1 ms steps, as the control thread would.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += ms(1);
            let now = self.now;
            let mut out = Vec::new();
            self.p
                .poll(now, |port, frame| {
                    out.push((port, frame.to_vec()));
                    Ok::<(), ()>(())
                })
                .unwrap();
            for (port, frame) in out {
                let path = usize::from(port) - 1;
                self.sent[path] += 1;
                let lost = self.cut[path]
                    || (self.lose_every[path] > 0
                        && self.sent[path].is_multiple_of(self.lose_every[path]));
                if !lost {
                    let reply = region_reply(&frame, path);
                    self.in_flight.push((now + self.rtt[path], path, reply));
                }
            }
            let (due, later): (Vec<_>, Vec<_>) =
                self.in_flight.drain(..).partition(|(at, _, _)| *at <= now);
            self.in_flight = later;
            for (_, path, reply) in due {
                let port = self.t.port_by_name(&format!("backbone{path}")).unwrap();
                let (verdict, frame) = pipeline(&self.t, &reply, port);
                assert_eq!(verdict, Verdict::ToControl);
                self.p.on_frame(now, &frame).unwrap();
            }
            self.p.tick(now);
            while let Some(e) = self.p.pop_event() {
                self.events.push(e);
            }
            if self.closed_loop && self.p.differs_from(&self.t) {
                assert!(self.p.apply_states(&mut self.spec));
                self.t = tables(&self.spec, self.t.version + 1);
                self.p.update_tables(&self.t, now);
                self.rebuilds += 1;
            }
        }
    }

    fn states(&self) -> Vec<PathState> {
        self.p.path_states().map(|(_, s)| s).collect()
    }

    fn path_events(&self, path: &str) -> Vec<(PathState, PathState, Reason)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ProberEvent::Path {
                    path: p,
                    transition,
                } if p == path => Some((transition.from, transition.to, transition.reason)),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn a_cut_path_goes_down_the_other_stays_up_and_it_comes_back() {
    use PathState::{Down, Up};
    let mut net = Net::new();
    assert_eq!(
        net.states(),
        vec![Up, Up],
        "paths start as the tables hold them"
    );
    net.run(ms(100));
    assert_eq!(net.states(), vec![Up, Up]);
    assert!(
        net.path_events("bb0").is_empty(),
        "confirmed, no transition"
    );
    let mut spec = spec();
    spec.paths[1].state = Down;
    assert!(net.p.differs_from(&tables(&spec, 2)));
    assert!(net.p.apply_states(&mut spec));
    assert!(!net.p.apply_states(&mut spec), "applied once");
    assert!(!net.p.differs_from(&tables(&spec, 2)));

    // Cut bb1: three probes in a row time out (50 ms), then it is down.
    net.events.clear();
    net.cut[1] = true;
    let cut_at = net.now;
    net.run(ms(200));
    assert_eq!(net.states(), vec![Up, Down]);
    assert_eq!(
        net.path_events("bb1"),
        vec![(Up, Down, Reason::ConsecutiveLost { count: 3 })]
    );
    assert!(net.path_events("bb0").is_empty(), "bb0 unaffected");
    let down_at = net.p.snapshot("bb1").unwrap().last_change - cut_at;
    // The 3rd probe after the cut left within 30 ms and timed out 50 ms later.
    assert!(down_at > ms(50) && down_at <= ms(81), "{down_at:?}");
    assert!(net.p.apply_states(&mut spec));
    let t = tables(&spec, 3);
    assert_eq!(t.paths[1].state, Down);
    assert!(!t.regions[0].panic, "bb0 carries everything");
    assert_eq!(
        t.regions[0].path_table.iter().filter(|&&p| p == 1).count(),
        0
    );

    // Repair it: up again after three replies in a row and once the loss
    // window holds fewer than 4 losses (the probes in flight during the cut
    // still time out after the repair, interleaved with the first replies).
    net.events.clear();
    net.cut[1] = false;
    net.run(ms(150));
    assert_eq!(net.states(), vec![Up, Up]);
    let events = net.path_events("bb1");
    assert!(
        matches!(
            events[..],
            [(Down, Up, Reason::ConsecutiveReplies { count })] if count >= 3
        ),
        "{events:?}"
    );
    assert!(net.p.snapshot("bb1").unwrap().window_lost < 4);

    // Both cut: both down, the region falls back to both (table: Down, Down).
    net.events.clear();
    net.cut = [true, true];
    net.run(ms(200));
    assert_eq!(net.states(), vec![Down, Down]);
    assert!(net.events.iter().any(|e| matches!(
        e,
        ProberEvent::Region {
            mode: SelectionMode::Fallback,
            ..
        }
    )));
    let texts: Vec<String> = net.events.iter().map(|e| e.to_string()).collect();
    assert!(
        texts.contains(&"path bb1: up -> down: 3 consecutive probes lost".to_string()),
        "{texts:?}"
    );
    assert!(texts.contains(
        &"region beijing: no path up, traffic on every path not disabled (fallback)".to_string()
    ));
}

/// The control loop of `eipd run` in miniature: the table follows the
/// prober, and data leaves the cut path.
#[test]
fn closed_loop_moves_traffic_off_a_cut_path() {
    use PathState::{Down, Up};
    let mut net = Net::new();
    net.closed_loop = true;
    // Both paths start up, as the tables hold them, and the probes confirm
    // them: no rebuild, no fallback.
    net.run(ms(200));
    assert_eq!(
        net.rebuilds, 0,
        "paths start as the tables hold them: no rebuild"
    );
    let states = |t: &Tables| t.paths.iter().map(|p| p.state).collect::<Vec<_>>();
    assert_eq!(states(&net.t), vec![Up, Up]);
    let modes: Vec<SelectionMode> = net
        .events
        .iter()
        .filter_map(|e| match e {
            ProberEvent::Region { mode, .. } => Some(*mode),
            _ => None,
        })
        .collect();
    assert!(modes.is_empty(), "no fallback at start: {modes:?}");

    // A client flow that the table puts on bb1.
    let flow_on = |t: &Tables, ident: u16| {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 2, 0x10], INET_MAC)
            .ipv4(CLIENT, EIP, 64)
            .icmpv4_echo_request(ident, 1);
        let mut f = Vec::new();
        b.write(&mut f, b"data").unwrap();
        match pipeline(t, &f, 0).0 {
            Verdict::Tx(port) => port,
            v => panic!("{v:?}"),
        }
    };
    let bb1_port = net.t.port_by_name("backbone1").unwrap();
    let ident = (0..1000u16)
        .find(|&i| flow_on(&net.t, i) == bb1_port)
        .expect("some flow on bb1");

    // Cut bb1: one rebuild, and the flow moves to bb0.
    net.cut[1] = true;
    net.run(ms(200));
    assert_eq!(net.rebuilds, 1);
    assert_eq!(states(&net.t), vec![Up, Down]);
    assert_ne!(flow_on(&net.t, ident), bb1_port);

    // Steady for 2 s: no rebuild.
    net.run(ms(2000));
    assert_eq!(net.rebuilds, 1);

    // Repaired: back on bb1 (Maglev: the same flow, the same path).
    net.cut[1] = false;
    net.run(ms(300));
    assert_eq!(net.rebuilds, 2);
    assert_eq!(flow_on(&net.t, ident), bb1_port);
}

#[test]
fn occasional_loss_does_not_flap() {
    let mut net = Net::new();
    net.run(ms(100));
    net.events.clear();
    // One probe in five lost on bb0: never two in a row, 2 in any 10; below
    // both thresholds (3 in a row, 4 in 10), so nothing changes.
    net.lose_every = [5, 0];
    net.run(ms(2000));
    assert!(net.events.is_empty(), "{:?}", net.events);
    let s = net.p.snapshot("bb0").unwrap();
    assert!(s.counters.lost >= 39, "{:?}", s.counters);
    assert_eq!(net.states(), vec![PathState::Up, PathState::Up]);

    // One in two lost on bb1: down once the window holds 4 losses, and never
    // back up: it never gets 3 replies in a row.
    net.lose_every = [0, 2];
    net.run(ms(1000));
    let changes = net.path_events("bb1");
    assert_eq!(changes.len(), 1, "down once, never back: {changes:?}");
    assert_eq!(changes[0].1, PathState::Down);
}

#[test]
fn rtt_hysteresis_keeps_similar_paths_steady() {
    use PathState::{Down, Up};
    let mut net = Net::new();
    // Both start up (as the tables hold them); bb1 at 25 ms against bb0's
    // 10 ms is beyond the leave limit of 20 ms: it stops carrying traffic.
    net.rtt = [ms(10), ms(25)];
    net.run(ms(1000));
    assert_eq!(net.states(), vec![Up, Down], "25 ms > 10 * 1.5 + 5");
    assert!(net.events.iter().any(|e| matches!(
        e,
        ProberEvent::Rtt { path, carries_traffic: false, .. } if path == "bb1"
    )));
    // It improves to 13 ms: joins once.
    net.events.clear();
    net.rtt[1] = ms(13);
    net.run(ms(1000));
    assert_eq!(net.states(), vec![Up, Up]);
    let rtt_events = |net: &Net| {
        net.events
            .iter()
            .filter(|e| matches!(e, ProberEvent::Rtt { .. }))
            .count()
    };
    assert_eq!(rtt_events(&net), 1, "{:?}", net.events);
    // Jitter between 13 and 19 ms: within the leave limit (20 ms), no change.
    net.events.clear();
    for k in 0..40 {
        net.rtt[1] = ms(13 + (k * 5) % 7);
        net.run(ms(50));
    }
    assert!(net.events.is_empty(), "{:?}", net.events);
    assert_eq!(net.states(), vec![Up, Up]);
    // 25 ms: leaves once, and does not come back while above 14 ms.
    net.rtt[1] = ms(25);
    net.run(ms(1000));
    for k in 0..40 {
        net.rtt[1] = ms(15 + (k % 5));
        net.run(ms(50));
    }
    assert_eq!(net.states(), vec![Up, Down]);
    assert_eq!(rtt_events(&net), 1, "{:?}", net.events);
    let text = net.events[0].to_string();
    assert!(text.starts_with("path bb1: up but too slow"), "{text}");
}

#[test]
fn table_updates_keep_health_by_name() {
    use PathState::{Disabled, Down, Up};
    let mut net = Net::new();
    net.run(ms(100));
    let idents: Vec<u16> = net.p.snapshots().iter().map(|r| r.ident).collect();

    // Reorder the paths, disable bb0, add bb2 on backbone1 with another MAC.
    let mut spec = spec();
    spec.paths.swap(0, 1);
    spec.paths[1].state = Disabled;
    let mut bb2 = spec.paths[0].clone();
    bb2.name = "bb2".into();
    bb2.next_hop_mac = Some(MacAddr([2, 0, 0, 0, 0x10, 0x99]));
    spec.paths.push(bb2);
    let t = tables(&spec, 2);
    net.p.update_tables(&t, net.now);
    net.t = t;
    let r = net.p.snapshots();
    let names: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["bb1", "bb0", "bb2"]);
    assert_eq!((r[0].ident, r[1].ident), (idents[1], idents[0]));
    assert!(!idents.contains(&r[2].ident));
    assert_eq!(
        (r[0].table_state, r[1].table_state, r[2].table_state),
        (Up, Disabled, Down)
    );
    assert!(r[0].health.counters.received >= 8, "kept its history");
    assert_eq!(r[2].health.counters.sent, 0, "a new path starts afresh");
    let event = net.p.pop_event().unwrap();
    assert_eq!(
        event.to_string(),
        "path bb0: up -> disabled: disabled by operator"
    );
    assert_eq!(net.p.pop_event(), None);

    // bb2 is probed at once with its own template (new next-hop MAC).
    let out = poll_all(&mut net.p, net.now);
    let bb2_frame = out
        .iter()
        .find(|(_, f)| f[..6] == [2, 0, 0, 0, 0x10, 0x99])
        .expect("bb2 probed");
    assert_eq!(
        Icmpv4Packet::new_unchecked(&bb2_frame.1[84..]).echo_ident(),
        r[2].ident
    );

    // bb0 removed: its identifier is no longer accepted nor reused.
    let old_bb0 = idents[0];
    spec.paths.retain(|p| p.name != "bb0");
    let t = tables(&spec, 3);
    net.p.update_tables(&t, net.now);
    assert_eq!(net.p.len(), 2);
    spec.paths.push(PathSpec {
        name: "bb3".into(),
        ..spec.paths[0].clone()
    });
    net.p.update_tables(&tables(&spec, 4), net.now);
    let r = net.p.snapshots();
    assert!(r.iter().all(|r| r.ident != old_bb0));
}

#[test]
fn send_failures_retry_without_charging_the_path() {
    let t = tables(&spec(), 1);
    let mut p = Prober::new(&t, config(), ms(0)).unwrap();
    let refused = p.poll(ms(0), |_, _| Err("full"));
    assert_eq!(refused, Err("full"));
    assert_eq!(p.counters().send_failed, 1);
    assert_eq!(p.snapshot("bb0").unwrap().counters.sent, 0);
    // Still due: sent at the next poll.
    assert_eq!(p.next_deadline(), Some(ms(0)));
    assert_eq!(poll_all(&mut p, ms(1)).len(), 1);
    assert_eq!(p.snapshot("bb0").unwrap().counters.sent, 1);
}

#[test]
fn a_late_caller_gets_no_burst() {
    let t = tables(&spec(), 1);
    let mut p = Prober::new(&t, config(), ms(0)).unwrap();
    assert_eq!(poll_all(&mut p, ms(5)).len(), 2);
    // Stalled for 100 ms: one probe per path, and the schedule restarts.
    assert_eq!(poll_all(&mut p, ms(105)).len(), 2);
    assert!(poll_all(&mut p, ms(106)).is_empty());
    assert_eq!(p.next_deadline(), Some(ms(115)));
    // On schedule, probes keep their phase.
    assert_eq!(poll_all(&mut p, ms(117)).len(), 2);
    assert_eq!(p.next_deadline(), Some(ms(125)));
}

#[test]
fn nothing_to_probe_without_source_or_target() {
    let mut s = spec();
    s.pop.probe_source = None;
    let mut p = Prober::new(&tables(&s, 1), config(), ms(0)).unwrap();
    assert!(p.is_empty());
    assert_eq!(p.next_deadline(), None);
    assert_eq!(poll_all(&mut p, ms(0)).len(), 0);
    let mut s = spec();
    s.regions[0].probe_target = None;
    assert!(Prober::new(&tables(&s, 1), config(), ms(0))
        .unwrap()
        .is_empty());
}

#[test]
fn events_and_reports_serialize() {
    let mut net = Net::new();
    net.cut = [true, true];
    net.run(ms(150));
    net.cut = [false, false];
    net.run(ms(150));
    let json = serde_json::to_value(&net.events).unwrap();
    assert_eq!(json[0]["event"], "path");
    assert_eq!(json[0]["transition"]["to"], "down");
    assert!(json
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"] == "region" && e["mode"] == "fallback"));
    assert!(json
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"] == "path" && e["transition"]["to"] == "up"));
    let report = serde_json::to_value(net.p.snapshots()).unwrap();
    assert_eq!(report[0]["name"], "bb0");
    assert_eq!(report[0]["table_state"], "up");
    assert_eq!(report[0]["health"]["srtt_us"], 2000.0);
    let board = HealthBoard::default();
    board.publish(&net.p);
    assert_eq!(board.get("bb1").unwrap().state, PathState::Up);
    assert!(board.get("nope").is_none());
    let health = net.p.table_health();
    assert_eq!(health, vec![("bb0", Health::Up), ("bb1", Health::Up)]);
}
