//! Anycast end to end on `scripts/anycast-testbed.sh`: two POPs, each `eipd` with
//! BIRD 2 as its child, announcing 192.0.2.0/24 to an FRR router (bgpd + bfdd)
//! that prefers POP A; the region steers returns to the ingress POP. Real BIRD,
//! FRR, Linux vxlan, nginx, curl and ping; every failure is made for real
//! (`kill -9`, nftables drops with the carrier up, SIGTERM).
//!
//! The figures each test measures are printed (`--nocapture` shows them);
//! `measure_failover` repeats them for the README's table.

mod common;
#[path = "anycast/harness.rs"]
mod harness;

use common::{require_root, wait_for_log, Guard};
use harness::{eip_in, nft, ping_figures, utc_stamp, whoami, Anycast, FibWatch};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn a_pop_announces_only_while_it_forwards_and_the_router_learns_both() {
    require_root();
    let tb = Anycast::up(&[]);
    assert!(
        tb.bgp_paths().is_empty(),
        "nothing announced before eipd runs"
    );
    // POP A's backbone answers no probe: eipd runs, its BGP session comes up,
    // but the region has no path measured up, so nothing is announced.
    nft(
        &tb,
        "AT_NS_REGION",
        &format!(
            "table inet blackhole {{\n chain in {{ type filter hook prerouting priority raw; iifname \"{}\" drop; }}\n}}\n",
            tb.var("AT_REGION_BBA_IF")
        ),
    );
    let _a = tb.start_pop('a');
    wait_for_log(&tb.log('a'), Duration::from_secs(15), |t| {
        t.contains("session with") && t.contains("established")
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        tb.bgp_paths().is_empty(),
        "announced without a path up: {:?}",
        tb.bgp_paths()
    );
    let bgp = tb.eipctl_json('a', &["show", "bgp"]);
    let prefix = &bgp["data"]["bgp"]["prefixes"][0];
    assert_eq!(prefix["announced"], false, "{bgp}");
    assert_eq!(prefix["closed_kind"]["kind"], "region_down", "{bgp}");
    assert_eq!(
        bgp["data"]["bgp"]["sessions"][0]["info"], "Established",
        "{bgp}"
    );
    let log = std::fs::read_to_string(tb.log('a')).unwrap();
    assert!(log.contains("not announced: region beijing"), "{log}");
    // The path comes up: announced.
    let opened = Instant::now();
    assert!(tb
        .ns(
            "AT_NS_REGION",
            &["nft", "delete", "table", "inet", "blackhole"]
        )
        .status()
        .unwrap()
        .success());
    tb.wait_next_hop(
        Some(tb.var("AT_POPA_INET_IP")),
        opened,
        Duration::from_secs(10),
    );
    let _b = tb.start_pop('b');
    let t = Instant::now();
    while tb.bgp_paths().len() < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "router has {:?}",
            tb.bgp_paths()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut peers = tb.bgp_paths();
    peers.sort();
    assert_eq!(
        peers,
        vec![
            tb.var("AT_POPA_INET_IP").to_string(),
            tb.var("AT_POPB_INET_IP").to_string()
        ]
    );
    // Preferred: A (B prepends).
    assert_eq!(tb.next_hop().as_deref(), Some(tb.var("AT_POPA_INET_IP")));
    let page = tb
        .ns(
            "AT_NS_CLIENT",
            &[
                "curl",
                "-sS",
                "--max-time",
                "5",
                &format!("http://{}/", tb.var("AT_EIP1")),
            ],
        )
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&page.stdout).contains("hello from region beijing"));
}

/// What one failover run measured.
#[derive(Debug, Clone, Copy)]
struct Figures {
    /// From the failure (for a cut: once `nft` made it and returned) to the
    /// router's kernel reporting its FIB pointing at POP B.
    switch: Duration,
    /// Longest gap between ping replies (every 10 ms) across the failover.
    gap: Duration,
    lost: u64,
    /// Backbone only: from the path declared down to the withdraw (eipd's log).
    withdraw: Option<Duration>,
}

impl Figures {
    fn print(&self, kind: &str) {
        println!(
            "figure {kind}: router switch {:.1} ms, longest ping gap {:.1} ms, {} pings lost{}",
            ms(self.switch),
            ms(self.gap),
            self.lost,
            self.withdraw.map_or(String::new(), |w| format!(
                ", withdraw {:.1} ms after the path was declared down",
                ms(w)
            ))
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The time stamp (seconds) of the first log line containing `needle`.
fn log_time(log: &str, needle: &str) -> Option<f64> {
    log.lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|t| t.parse().ok())
}

/// kill -9 of POP A's eipd during a download of about 6 s: BIRD dies with it, the
/// session closes, the router moves to B; the download ends with the right bytes.
fn kill_9(tb: &Anycast) -> Figures {
    let (mut a, _b) = tb.both_announcing();
    let fib = FibWatch::start(tb);
    let pinger = tb.pinger(6);
    let started = Instant::now();
    let mut curl = tb.download("paced.bin", "700k");
    std::thread::sleep(Duration::from_millis(1500));
    let killed = SystemTime::now();
    a.kill9();
    let switch = tb.switched_to(
        &fib,
        tb.var("AT_POPB_INET_IP"),
        killed,
        Duration::from_secs(5),
    );
    assert!(curl.wait().unwrap().success(), "the download failed");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(5),
        "the download took only {took:?}: raise the size or lower the rate"
    );
    assert_eq!(tb.downloaded_sha256(), tb.var("AT_BIGFILE_SHA256"));
    let (sent, received, gap) = ping_figures(pinger);
    assert!(switch < Duration::from_secs(1), "switch took {switch:?}");
    Figures {
        switch,
        gap,
        lost: sent - received,
        withdraw: None,
    }
}

/// Every backbone path of POP A blackholed (carrier up): the probes declare
/// them down, A withdraws, traffic goes via B.
fn backbone(tb: &Anycast) -> (Figures, (Guard, Guard)) {
    let pops = tb.both_announcing();
    let fib = FibWatch::start(tb);
    let pinger = tb.pinger(5);
    std::thread::sleep(Duration::from_millis(500));
    nft(
        tb,
        "AT_NS_REGION",
        &format!(
            "table inet blackhole {{ chain in {{ type filter hook prerouting priority raw; iifname \"{0}\" drop; }}\n\
             chain out {{ type filter hook postrouting priority raw; oifname \"{0}\" drop; }}\n}}\n",
            tb.var("AT_REGION_BBA_IF")
        ),
    );
    let dropped = SystemTime::now();
    let switch = tb.switched_to(
        &fib,
        tb.var("AT_POPB_INET_IP"),
        dropped,
        Duration::from_secs(10),
    );
    let log = std::fs::read_to_string(tb.log('a')).unwrap();
    assert!(log.contains("withdraw: region beijing"), "{log}");
    let down = log_time(&log, "up -> down").expect("path declared down in the log");
    let withdrawn = log_time(&log, "withdraw: region beijing").unwrap();
    let (sent, received, gap) = ping_figures(pinger);
    let page = tb
        .ns(
            "AT_NS_CLIENT",
            &[
                "curl",
                "-sS",
                "--max-time",
                "5",
                &format!("http://{}/", tb.var("AT_EIP1")),
            ],
        )
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&page.stdout).contains("hello from region beijing"));
    let figures = Figures {
        switch,
        gap,
        lost: sent - received,
        withdraw: Some(Duration::from_secs_f64((withdrawn - down).max(0.0))),
    };
    (figures, pops)
}

/// The testbed's BFD timers (`--bfd-interval-ms`, `--bfd-multiplier`).
fn bfd_timers(tb: &Anycast) -> (u64, u64) {
    let get = |k| tb.var(k).parse::<u64>().unwrap();
    (get("AT_BFD_INTERVAL_MS"), get("AT_BFD_MULTIPLIER"))
}

/// POP A's Internet link blackholed at the router (carrier up): only BFD sees
/// it this fast (the BGP hold time is 3 s). The router's session with A must
/// run the testbed's timers on both ends (FRR's profile and A's BIRD).
fn internet_link(tb: &Anycast) -> Figures {
    let (_a, _b) = tb.both_announcing();
    let (interval, multiplier) = bfd_timers(tb);
    let pop_a = tb.var("AT_POPA_INET_IP");
    let t = Instant::now();
    loop {
        // Up, and past the poll sequence that leaves the slow start-up rate.
        let peer = tb.bfd_peer(pop_a);
        let timers = [
            ("transmit-interval", interval),
            ("receive-interval", interval),
            ("remote-transmit-interval", interval),
            ("remote-receive-interval", interval),
            ("detect-multiplier", multiplier),
            ("remote-detect-multiplier", multiplier),
        ];
        if peer["status"] == "up" && timers.iter().all(|(k, v)| peer[k].as_u64() == Some(*v)) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "BFD with POP A is not up at {interval} ms x {multiplier} on both ends: {peer}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let fib = FibWatch::start(tb);
    let pinger = tb.pinger(5);
    std::thread::sleep(Duration::from_millis(500));
    nft(
        tb,
        "AT_NS_ROUTER",
        &format!(
            "table inet blackhole {{ chain in {{ type filter hook prerouting priority raw; iifname \"{0}\" drop; }}\n\
             chain out {{ type filter hook postrouting priority raw; oifname \"{0}\" drop; }}\n}}\n",
            tb.var("AT_ROUTER_POPA_IF")
        ),
    );
    let dropped = SystemTime::now();
    let switch = tb.switched_to(
        &fib,
        tb.var("AT_POPB_INET_IP"),
        dropped,
        Duration::from_secs(3),
    );
    let (sent, received, gap) = ping_figures(pinger);
    let detect = Duration::from_millis(interval * multiplier);
    assert!(
        switch < detect + Duration::from_secs(1),
        "switch took {switch:?}: BFD ({interval} ms x {multiplier}) did not act"
    );
    // The last packet from A arrived at most one interval before the cut; a
    // quarter off for the clock starting once nft returned.
    let soonest = Duration::from_millis(interval * (multiplier - 1) * 3 / 4);
    assert!(
        switch >= soonest,
        "switch after {switch:?}: sooner than BFD ({interval} ms x {multiplier}) can see a cut"
    );
    Figures {
        switch,
        gap,
        lost: sent - received,
        withdraw: None,
    }
}

/// `eipctl drain` on POP A during a download: GRACEFUL_SHUTDOWN moves the
/// router to B before A withdraws; nothing is lost. Also: returns leave through
/// the ingress POP, and follow the flow when it moves.
fn drain(tb: &Anycast) -> Figures {
    let (a, _b) = tb.both_announcing();
    let fib = FibWatch::start(tb);
    let pinger = tb.pinger(5);
    let mut curl = tb.download("big.bin", "2500k");
    std::thread::sleep(Duration::from_millis(500));
    // Returns leave through the POP the flow entered: A only.
    let (a0, b0) = (tb.returns('a'), tb.returns('b'));
    assert!(a0 > 0 && b0 == 0, "returns via A {a0}, via B {b0}");
    let drained = SystemTime::now();
    let reply = tb.eipctl_json('a', &["drain"]);
    assert_eq!(reply["data"]["kind"], "draining", "{reply}");
    let switch = tb.switched_to(
        &fib,
        tb.var("AT_POPB_INET_IP"),
        drained,
        Duration::from_secs(2),
    );
    // The flow moved to B while A still forwards (it drains for 2 s): its
    // returns follow it to B, none leave through A any more.
    std::thread::sleep(Duration::from_millis(300));
    let a1 = tb.returns('a');
    std::thread::sleep(Duration::from_millis(600));
    let (a2, b2) = (tb.returns('a'), tb.returns('b'));
    assert_eq!(a1, a2, "returns still leave through A after the flow moved");
    assert!(b2 > 0, "no return through B");
    assert!(curl.wait().unwrap().success(), "the download failed");
    assert_eq!(tb.downloaded_sha256(), tb.var("AT_BIGFILE_SHA256"));
    let (sent, received, gap) = ping_figures(pinger);
    let log = wait_for_log(&tb.log('a'), Duration::from_secs(10), |t| {
        t.contains("final counters")
    });
    assert!(log.contains("drain asked on the control socket"), "{log}");
    assert!(
        log.contains("GRACEFUL_SHUTDOWN") && log.contains("BIRD stopped"),
        "{log}"
    );
    drop(a);
    Figures {
        switch,
        gap,
        lost: sent - received,
        withdraw: None,
    }
}

#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn kill_9_of_pop_a_moves_a_download_to_pop_b() {
    require_root();
    kill_9(&Anycast::up(&[])).print("kill9");
}

#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn pop_a_withdraws_when_its_backbone_paths_are_blackholed() {
    require_root();
    let tb = Anycast::up(&[]);
    let (figures, _pops) = backbone(&tb);
    figures.print("backbone");
    // Repaired: A announces again, but only after the hold-down (1 s in the
    // testbed) of its path staying up.
    let repaired = Instant::now();
    assert!(tb
        .ns(
            "AT_NS_REGION",
            &["nft", "delete", "table", "inet", "blackhole"]
        )
        .status()
        .unwrap()
        .success());
    tb.wait_next_hop(
        Some(tb.var("AT_POPA_INET_IP")),
        repaired,
        Duration::from_secs(15),
    );
    let log = std::fs::read_to_string(tb.log('a')).unwrap();
    let up = log_time(&log, "down -> up").expect("path back up in the log");
    let announces: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("announce: the data plane forwards it"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(announces.len(), 2, "{log}");
    assert!(
        announces[1] - up >= 1.0,
        "announced {:.3} s after the path came up, before the hold-down",
        announces[1] - up
    );
}

#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn bfd_takes_pop_a_down_when_its_internet_link_is_blackholed() {
    require_root();
    internet_link(&Anycast::up(&[])).print("bfd");
}

#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn bfd_at_50_ms_x_3_on_both_ends_takes_pop_a_down_when_its_internet_link_is_blackholed() {
    require_root();
    internet_link(&Anycast::up(&[
        "--bfd-interval-ms",
        "50",
        "--bfd-multiplier",
        "3",
    ]))
    .print("bfd50");
}

#[test]
fn fib_monitor_time_stamps_are_read_as_utc() {
    let at = |s| utc_stamp(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap());
    assert_eq!(
        at("1970-01-01T00:00:01.5"),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(
        at("2024-02-29T23:59:59.000000"),
        Some(Duration::from_secs(1_709_251_199))
    );
    assert_eq!(
        at("2026-12-01T08:23:38.679698"),
        Some(Duration::from_micros(1_796_113_418_679_698))
    );
    assert_eq!(at("2026-13-01T08:23:38.679698"), None);
    assert_eq!(at("2026-12-01 08:23:38"), None);
}

#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn a_graceful_drain_of_pop_a_loses_nothing_and_returns_follow_the_flow() {
    require_root();
    let f = drain(&Anycast::up(&[]));
    f.print("drain");
    assert_eq!(f.lost, 0, "pings lost during the drain");
}

#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn ecmp_spreads_flows_and_a_flow_keeps_its_backend_whichever_pop_it_enters() {
    require_root();
    let tb = Anycast::up(&["--ecmp"]);
    let (mut a, b) = (tb.start_pop('a'), tb.start_pop('b'));
    let t = Instant::now();
    loop {
        let out = tb
            .ns(
                "AT_NS_ROUTER",
                &["ip", "route", "show", tb.var("AT_EIP_PREFIX")],
            )
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout)
            .matches("nexthop via")
            .count()
            == 2
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no ECMP route: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Flows spread over both POPs.
    let eip = tb.var("AT_EIP2").to_string();
    for port in 41000..41016 {
        whoami(&tb, port);
    }
    let (in_a, in_b) = (eip_in(&tb, 'a', &eip), eip_in(&tb, 'b', &eip));
    assert!(
        in_a > 0 && in_b > 0,
        "16 flows: {in_a} packets via A, {in_b} via B"
    );
    // Twelve 5-tuples: which POP each enters, and its backend.
    let mut via_a = Vec::new();
    for port in 42000..42012 {
        let before = eip_in(&tb, 'a', &eip);
        let backend = whoami(&tb, port);
        if eip_in(&tb, 'a', &eip) > before {
            via_a.push((port, backend));
        }
    }
    assert!(!via_a.is_empty(), "none of 12 flows entered POP A");
    // Remove POP A: those 5-tuples now enter B, and Maglev (the same table in
    // every POP) sends each to the same backend as before.
    let killed = Instant::now();
    a.kill9();
    tb.wait_next_hop(
        Some(tb.var("AT_POPB_INET_IP")),
        killed,
        Duration::from_secs(5),
    );
    for (port, backend) in via_a {
        assert_eq!(
            whoami(&tb, port),
            backend,
            "the flow from port {port} changed backend when it moved from POP A to B"
        );
    }
    drop(b);
}

/// The load average (`/proc/loadavg`'s first three fields).
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The README's failover table: each failure `ANYCAST_RUNS` times (default 5),
/// medians; `ANYCAST_ONLY` keeps the failures whose name contains it.
/// `cargo test -p eipd --release --test anycast_e2e -- --ignored --nocapture
/// measure_failover`.
#[test]
#[ignore = "measurement (about 5 minutes, root): run by hand for the README's table"]
fn measure_failover() {
    require_root();
    let runs: usize = std::env::var("ANYCAST_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let only = std::env::var("ANYCAST_ONLY").unwrap_or_default();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    type Scenario = fn(&Anycast) -> Figures;
    const BFD_100: &[&str] = &["--bfd-interval-ms", "100", "--bfd-multiplier", "3"];
    const BFD_50: &[&str] = &["--bfd-interval-ms", "50", "--bfd-multiplier", "3"];
    let scenarios: [(&str, &[&str], Scenario); 5] = [
        ("eipd killed (kill -9)", &[], kill_9),
        (
            "Internet link blackholed (BFD 100 ms x 3)",
            BFD_100,
            internet_link,
        ),
        (
            "Internet link blackholed (BFD 50 ms x 3)",
            BFD_50,
            internet_link,
        ),
        ("all backbone paths blackholed", &[], |tb| backbone(tb).0),
        ("graceful drain (eipctl drain)", &[], drain),
    ];
    println!("load average at the start: {}", load_average());
    let mut table = vec![
        "| failure | router switch (median ms) | longest ping gap (median ms) | pings lost (median) | withdraw after paths down (median ms) | runs |".to_string(),
        "|---|---|---|---|---|---|".to_string(),
    ];
    for (name, args, scenario) in scenarios {
        if !name.contains(&only) {
            continue;
        }
        let all: Vec<Figures> = (0..runs)
            .map(|_| {
                let f = scenario(&Anycast::up(args));
                f.print(name);
                f
            })
            .collect();
        let withdraw: Vec<f64> = all.iter().filter_map(|f| f.withdraw.map(ms)).collect();
        table.push(format!(
            "| {name} | {:.0} | {:.0} | {:.0} | {} | {runs} |",
            median(all.iter().map(|f| ms(f.switch)).collect()),
            median(all.iter().map(|f| ms(f.gap)).collect()),
            median(all.iter().map(|f| f.lost as f64).collect()),
            if withdraw.is_empty() {
                "-".to_string()
            } else {
                format!("{:.0}", median(withdraw))
            },
        ));
    }
    println!("load average at the end: {}", load_average());
    println!("{}", table.join("\n"));
}
