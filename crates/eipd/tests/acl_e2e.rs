//! Per-EIP access lists on the namespace testbed (scripts/testbed.sh) with
//! real packets: UDP and TCP frames sent by scapy from the client namespace to
//! EIP1, captured in the region by tcpdump and judged by tshark (each case has
//! its own source port). Allowed and denied sources, the edges of a /25 and of
//! a port range, first match, a protocol qualifier, a list replaced at run
//! time through `eipctl acl` (default deny, /0, removed), and the per-rule
//! hits `eipctl show acl` reports. IPv6: the testbed's namespaces run no
//! IPv6 stack, so an IPv6 EIP added at run time gets raw frames from scapy
//! and its traffic is captured as VXLAN on the region's backbone link, where
//! tshark decodes the inner IPv6 packet.
//!
//! Needs root: ignored by default; `scripts/test.sh` runs it as root.

mod common;

use common::{Guard, Testbed};
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts eipd and waits until the client reaches EIP1 (ping).
fn ready(tb: &Testbed) -> Guard {
    let log = tb.run_dir().join("eipd.log");
    let guard = tb.start_eipd(&[], &log);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = tb
            .ns("TB_NS_CLIENT", &["ping", "-c1", "-W1", tb.var("TB_EIP1")])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        if ok {
            return guard;
        }
        assert!(Instant::now() < deadline, "EIP1 never answered ping");
    }
}

/// Where a family's probes go and how they are captured and judged.
struct Family<'a> {
    /// scapy's layer: `IP` or `IPv6`.
    layer: &'static str,
    eip: &'a str,
    /// The backend the EIP translates to: what an arriving packet carries.
    backend: &'a str,
    /// Capture: namespace variable, interface, tcpdump filter.
    capture: (&'static str, &'a str, String),
    /// tshark's source field.
    source: &'static str,
}

impl<'a> Family<'a> {
    /// IPv4 to EIP1: captured where the backend receives it (after the
    /// region's vxlan device).
    fn v4(tb: &'a Testbed) -> Family<'a> {
        let backend = tb.var("TB_EIP1_BACKEND");
        Family {
            layer: "IP",
            eip: tb.var("TB_EIP1"),
            backend,
            capture: (
                "TB_NS_REGION",
                "any",
                format!("dst host {backend} and (udp or tcp) and not port 4789"),
            ),
            source: "ip.src",
        }
    }

    /// IPv6 to `eip`: captured as VXLAN on the region's backbone link.
    fn v6(tb: &'a Testbed, eip: &'a str, backend: &'a str) -> Family<'a> {
        Family {
            layer: "IPv6",
            eip,
            backend,
            capture: (
                "TB_NS_REGION",
                tb.var("TB_REGION_BB0_IF"),
                "udp port 4789".to_string(),
            ),
            source: "ipv6.src",
        }
    }
}

/// One probe: a source address, protocol, source port (its tag in the
/// capture) and destination port.
#[derive(Clone, Copy, Debug)]
struct Probe {
    src: &'static str,
    tcp: bool,
    sport: u16,
    dport: u16,
}

fn udp(src: &'static str, sport: u16, dport: u16) -> Probe {
    Probe {
        src,
        tcp: false,
        sport,
        dport,
    }
}

/// Sends `probes` with scapy from the client namespace to the family's EIP
/// while tcpdump captures in the region what reaches the backend; returns the
/// (source, source port) pairs that arrived addressed to the backend.
fn run(tb: &Testbed, family: &Family, name: &str, probes: &[Probe]) -> BTreeSet<(String, u16)> {
    let (eip, backend) = (family.eip, family.backend);
    let file = tb.run_dir().join(format!("acl-{name}.pcap"));
    let (ns, interface, filter) = &family.capture;
    let tcpdump = Guard(
        tb.ns(
            ns,
            &[
                "tcpdump",
                "-i",
                interface,
                "-nn",
                "-U",
                "-w",
                file.to_str().unwrap(),
                filter,
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump"),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let layers: Vec<String> = probes
        .iter()
        .map(|p| {
            let l4 = if p.tcp {
                format!("TCP(sport={}, dport={}, flags='S')", p.sport, p.dport)
            } else {
                format!(
                    "UDP(sport={}, dport={}) / Raw(b'acl-e2e')",
                    p.sport, p.dport
                )
            };
            format!("{}(src='{}', dst='{eip}') / {l4}", family.layer, p.src)
        })
        .collect();
    let script = format!(
        "from scapy.all import *\nconf.verb = 0\nfor p in [{}]:\n    sendp(Ether(src='{}', dst='{}') / p, iface='{}')\n",
        layers.join(", "),
        tb.var("TB_CLIENT_MAC"),
        tb.var("TB_POP_INET_MAC"),
        tb.var("TB_CLIENT_IF"),
    );
    let status = tb
        .ns("TB_NS_CLIENT", &["/usr/bin/python3", "-c", &script])
        .status()
        .expect("run scapy");
    assert!(status.success(), "scapy failed");
    std::thread::sleep(Duration::from_secs(1));
    drop(tcpdump);
    // The last UDP port is the inner one when the capture is VXLAN.
    let dst = family.source.replace("src", "dst");
    let out = Command::new("tshark")
        .args([
            "-r",
            file.to_str().unwrap(),
            "-T",
            "fields",
            "-E",
            "occurrence=l",
        ])
        .args(["-e", family.source, "-e", &dst])
        .args(["-e", "udp.srcport", "-e", "tcp.srcport"])
        .output()
        .expect("tshark");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f.get(1).and_then(|d| d.parse::<std::net::IpAddr>().ok()) != backend.parse().ok() {
                return None;
            }
            // TCP first: inside VXLAN the UDP port may be the outer one.
            let port = f.get(3).filter(|s| !s.is_empty()).or(f.get(2))?;
            Some((f.first()?.to_string(), port.parse().ok()?))
        })
        .collect()
}

/// Runs `cases` (a probe and whether it must reach the backend) and checks
/// each; returns nothing, panics with the whole capture on a mismatch.
fn judge(tb: &Testbed, name: &str, cases: &[(Probe, bool)]) {
    judge_in(tb, &Family::v4(tb), name, cases);
}

/// [`judge`] for `family`.
fn judge_in(tb: &Testbed, family: &Family, name: &str, cases: &[(Probe, bool)]) {
    let probes: Vec<Probe> = cases.iter().map(|c| c.0).collect();
    let seen = run(tb, family, name, &probes);
    for (p, pass) in cases {
        let arrived = seen.contains(&(p.src.to_string(), p.sport));
        assert_eq!(
            arrived,
            *pass,
            "{name}: {p:?} {} the backend; capture: {seen:?}",
            if arrived { "reached" } else { "did not reach" }
        );
    }
}

fn acl_drops(tb: &Testbed) -> u64 {
    tb.eipctl_json(&["stats"])["data"]["stats"]["drops"]["acl_denied"]
        .as_u64()
        .unwrap_or(0)
}

fn hits(tb: &Testbed) -> Vec<u64> {
    hits_of(tb, tb.var("TB_EIP1"))
}

fn hits_of(tb: &Testbed, eip: &str) -> Vec<u64> {
    let v: Value = tb.eipctl_json(&["show", "acl", eip]);
    v["data"]["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits: {v}"))
        .iter()
        .map(|h| h.as_u64().unwrap())
        .collect()
}

#[test]
#[ignore = "needs root (network namespaces, XDP, scapy, tcpdump, tshark): scripts/test.sh runs it as root"]
fn access_lists_pass_and_drop_real_packets_and_change_at_run_time() {
    common::require_root();
    let tb = Testbed::up(&[]);
    let _eipd = ready(&tb);
    let eip = tb.var("TB_EIP1").to_string();
    let client = "203.0.113.2";
    assert_eq!(tb.var("TB_CLIENT_IP"), client);

    // A list from a file: first match, a /25 with an exception, a UDP port range.
    let file = tb.run_dir().join("rules.toml");
    std::fs::write(
        &file,
        r#"default = "allow"
rules = [
  { action = "allow", source = "198.51.100.130" },
  { action = "deny", source = "198.51.100.128/25" },
  { action = "deny", source = "203.0.113.2/32", protocol = "udp", ports = "1000-2000" },
]
"#,
    )
    .unwrap();
    tb.eipctl(&["acl", &eip, "--file", file.to_str().unwrap()]);
    let shown = tb.eipctl(&["show", "acl", &eip]);
    assert!(
        shown.contains("198.51.100.128/25") && shown.contains("1000-2000"),
        "{shown}"
    );
    assert_eq!(hits(&tb), [0, 0, 0, 0]);
    let drops_before = acl_drops(&tb);
    judge(
        &tb,
        "file",
        &[
            (udp("198.51.100.130", 41001, 7001), true),
            (udp("198.51.100.128", 41002, 7001), false),
            (udp("198.51.100.255", 41003, 7001), false),
            (udp("198.51.100.127", 41004, 7001), true),
            (udp(client, 41005, 999), true),
            (udp(client, 41006, 1000), false),
            (udp(client, 41007, 2000), false),
            (udp(client, 41008, 2001), true),
            (
                Probe {
                    src: client,
                    tcp: true,
                    sport: 41009,
                    dport: 1500,
                },
                true,
            ),
        ],
    );
    assert_eq!(acl_drops(&tb) - drops_before, 4);
    // Rule 0 once, rule 1 twice, rule 2 twice, the default four times.
    assert_eq!(hits(&tb), [1, 2, 2, 4]);

    // Replaced at run time, inline: default deny with one allowed port.
    tb.eipctl(&[
        "acl",
        &eip,
        "--rules",
        r#"default = "deny"
rules = [{ action = "allow", source = "203.0.113.2", protocol = "udp", ports = 7001 }]"#,
    ]);
    judge(
        &tb,
        "inline",
        &[
            (udp(client, 42001, 7001), true),
            (udp(client, 42002, 7002), false),
            (udp("198.51.100.130", 42003, 7001), false),
        ],
    );
    assert_eq!(hits(&tb), [1, 2], "a new list counts from zero");

    // /0: every IPv4 source.
    tb.eipctl(&[
        "acl",
        &eip,
        "--rules",
        r#"rules = [{ action = "deny", source = "0.0.0.0/0" }]"#,
    ]);
    judge(
        &tb,
        "all",
        &[
            (udp(client, 43001, 7001), false),
            (udp("198.51.100.127", 43002, 7001), false),
        ],
    );

    // A bad list is refused and changes nothing.
    let out = Command::new(common::eipctl_exe())
        .arg("--socket")
        .arg(tb.socket())
        .args([
            "acl",
            &eip,
            "--rules",
            r#"rules = [{ action = "deny", source = "10.0.0.0/33" }]"#,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rules[0]") && err.contains(&eip), "{err}");
    judge(&tb, "still-all", &[(udp(client, 44001, 7001), false)]);

    // Removed: everything passes again.
    tb.eipctl(&["acl", &eip, "--clear"]);
    judge(
        &tb,
        "cleared",
        &[
            (udp(client, 45001, 1500), true),
            (udp("198.51.100.128", 45002, 7001), true),
        ],
    );
    let shown = tb.eipctl(&["show", "acl", &eip]);
    assert!(shown.contains("no access list"), "{shown}");
}

/// `stats` runtime figures: (worker rx packets, XDP EIP redirects, XDP ACL
/// drops, pipeline acl_denied drops), after the driver figures refreshed.
fn figures(tb: &Testbed) -> (u64, u64, u64, u64) {
    // The control thread copies the driver's figures every 200 ms.
    std::thread::sleep(Duration::from_millis(600));
    let s = &tb.eipctl_json(&["stats"])["data"]["stats"];
    let n = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("not a count: {s}"));
    (
        n(&s["runtime"]["driver"]["rx_packets"]),
        n(&s["runtime"]["xdp"]["redirect_eip_v4"]),
        n(&s["runtime"]["xdp"]["drop_acl"]),
        n(&s["drops"]["acl_denied"]),
    )
}

/// `count` copies of one UDP frame from `src` to EIP1, sent by scapy.
fn burst(tb: &Testbed, src: &str, dport: u16, count: u32) {
    let script = format!(
        "from scapy.all import *\nconf.verb = 0\nsendp(Ether(src='{}', dst='{}') / IP(src='{src}', dst='{}') / UDP(sport=40000, dport={dport}) / Raw(b'xdp'), iface='{}', count={count})\n",
        tb.var("TB_CLIENT_MAC"),
        tb.var("TB_POP_INET_MAC"),
        tb.var("TB_EIP1"),
        tb.var("TB_CLIENT_IF"),
    );
    let ok = tb
        .ns("TB_NS_CLIENT", &["/usr/bin/python3", "-c", &script])
        .status()
        .expect("run scapy")
        .success();
    assert!(ok, "scapy failed");
}

#[test]
#[ignore = "needs root (network namespaces, XDP, scapy): scripts/test.sh runs it as root"]
fn plain_denies_drop_in_xdp_and_no_worker_sees_them() {
    common::require_root();
    let tb = Testbed::up(&[]);
    let _eipd = ready(&tb);
    let eip = tb.var("TB_EIP1").to_string();
    const N: u64 = 400;
    // The /25 deny has no qualifier and no allow before it: XDP applies it.
    // The UDP port rule needs ports: the workers apply it.
    tb.eipctl(&[
        "acl",
        &eip,
        "--rules",
        r#"rules = [
  { action = "deny", source = "198.51.100.128/25" },
  { action = "deny", source = "203.0.113.2", protocol = "udp", ports = "1000-2000" },
]"#,
    ]);
    let before = figures(&tb);
    burst(&tb, "198.51.100.200", 7001, N as u32);
    let after = figures(&tb);
    let (rx, redirected, xdp, denied) = (
        after.0 - before.0,
        after.1 - before.1,
        after.2 - before.2,
        after.3 - before.3,
    );
    eprintln!("XDP deny: {N} sent; worker rx +{rx}, XDP redirects +{redirected}, XDP ACL drops +{xdp}, acl_denied +{denied}");
    assert_eq!(xdp, N, "every frame dropped in XDP");
    assert_eq!(redirected, 0, "none redirected to a worker");
    assert_eq!(denied, 0, "no worker counted one");
    // ... and the rule they are XDP's for counts them (the default none).
    assert_eq!(hits(&tb), [N, 0, 0]);
    // Only the path probes' replies (about 10/s) reach the workers meanwhile.
    assert!(rx < N / 4, "worker rx moved by {rx} for {N} denied frames");

    // The control: a rule with ports is the workers' to apply.
    let before = figures(&tb);
    burst(&tb, "203.0.113.2", 1500, N as u32);
    let after = figures(&tb);
    let (rx, xdp, denied) = (after.0 - before.0, after.2 - before.2, after.3 - before.3);
    eprintln!(
        "user-space deny: {N} sent; worker rx +{rx}, XDP ACL drops +{xdp}, acl_denied +{denied}"
    );
    assert!(rx >= N, "the workers see them: rx +{rx}");
    assert_eq!((xdp, denied), (0, N));

    // An allow before the deny takes it out of XDP at the next swap: the
    // workers see the frames again, and still deny them.
    tb.eipctl(&[
        "acl",
        &eip,
        "--rules",
        r#"rules = [
  { action = "allow", source = "198.51.100.130" },
  { action = "deny", source = "198.51.100.128/25" },
]"#,
    ]);
    let before = figures(&tb);
    burst(&tb, "198.51.100.200", 7001, N as u32);
    let after = figures(&tb);
    let (xdp, denied) = (after.2 - before.2, after.3 - before.3);
    assert_eq!((xdp, denied), (0, N), "after the change: in user space");

    // Removed: nothing dropped anywhere.
    tb.eipctl(&["acl", &eip, "--clear"]);
    let before = figures(&tb);
    burst(&tb, "198.51.100.200", 7001, 50);
    let after = figures(&tb);
    assert_eq!((after.2 - before.2, after.3 - before.3), (0, 0));
    assert!(after.1 - before.1 >= 50);
}

#[test]
#[ignore = "needs root (network namespaces, XDP, scapy, tcpdump, tshark): scripts/test.sh runs it as root"]
fn ipv6_access_lists_pass_and_drop_real_packets() {
    common::require_root();
    let tb = Testbed::up(&[]);
    let _eipd = ready(&tb);
    let (eip, backend) = ("2001:db8:e1::10", "fd00:1::10");
    tb.eipctl(&["add-eip", eip, "--region", "beijing", "--backend", backend]);
    // Rule 0 is XDP's (no qualifier, no allow before it); the rest the workers'.
    tb.eipctl(&[
        "acl",
        eip,
        "--rules",
        r#"rules = [
  { action = "deny", source = "2001:db8:bad::/48" },
  { action = "allow", source = "2001:db8:c::130" },
  { action = "deny", source = "2001:db8:c::/48" },
  { action = "deny", source = "2001:db8:d::1", protocol = "udp", ports = "1000-2000" },
]"#,
    ]);
    assert_eq!(hits_of(&tb, eip), [0, 0, 0, 0, 0]);
    let before = figures(&tb);
    let family = Family::v6(&tb, eip, backend);
    let d = "2001:db8:d::1";
    judge_in(
        &tb,
        &family,
        "v6",
        &[
            (udp("2001:db8:bad::1", 46001, 7001), false),
            (udp("2001:db8:bae::1", 46002, 7001), true),
            (udp("2001:db8:c::130", 46003, 7001), true),
            (udp("2001:db8:c::131", 46004, 7001), false),
            (
                udp("2001:db8:c:ffff:ffff:ffff:ffff:ffff", 46005, 7001),
                false,
            ),
            (
                udp("2001:db8:b:ffff:ffff:ffff:ffff:ffff", 46006, 7001),
                true,
            ),
            (udp(d, 46007, 999), true),
            (udp(d, 46008, 1000), false),
            (udp(d, 46009, 2000), false),
            (udp(d, 46010, 2001), true),
            (
                Probe {
                    src: d,
                    tcp: true,
                    sport: 46011,
                    dport: 1500,
                },
                true,
            ),
        ],
    );
    let after = figures(&tb);
    // The /48 of rule 0 died in XDP (counted for rule 0 all the same); rule
    // 1 once, rule 2 twice, rule 3 twice, the default five times.
    assert_eq!(after.2 - before.2, 1, "one frame dropped in XDP");
    assert_eq!(after.3 - before.3, 4, "four denied by the workers");
    assert_eq!(hits_of(&tb, eip), [1, 1, 2, 2, 5]);

    // A new list that keeps rule 0's prefix in XDP counts from zero.
    tb.eipctl(&[
        "acl",
        eip,
        "--rules",
        r#"rules = [{ action = "deny", source = "2001:db8:bad::/48" }]"#,
    ]);
    assert_eq!(hits_of(&tb, eip), [0, 0]);
    judge_in(
        &tb,
        &family,
        "v6-again",
        &[
            (udp("2001:db8:bad::2", 47001, 7001), false),
            (udp("2001:db8:c::131", 47002, 7001), true),
        ],
    );
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(hits_of(&tb, eip), [1, 1]);
}
