//! Edge protection on the namespace testbed (scripts/testbed.sh) with real
//! packets, sent by scapy and judged by tcpdump/tshark: one spoofed packet from
//! an EIP starts no loop although the client side forwards like a router; bogon
//! sources and client UDP to the tunnel port never reach the backend.
//!
//! These tests need root: they are marked ignored, and `scripts/test.sh` runs
//! them when it runs as root.

mod common;

use common::{Guard, Testbed};
use serde_json::Value;
use std::path::Path;
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

/// scapy in the client namespace: sends `packets` (scapy expressions of the IP
/// layer and up) in Ethernet frames to the POP's Internet port.
fn send(tb: &Testbed, packets: &[String]) {
    let script = format!(
        "from scapy.all import *\nconf.verb = 0\nfor p in [{}]:\n    sendp(Ether(src='{}', dst='{}') / p, iface='{}')\n",
        packets.join(", "),
        tb.var("TB_CLIENT_MAC"),
        tb.var("TB_POP_INET_MAC"),
        tb.var("TB_CLIENT_IF"),
    );
    let status = tb
        .ns("TB_NS_CLIENT", &["/usr/bin/python3", "-c", &script])
        .status()
        .expect("run scapy");
    assert!(status.success(), "scapy failed");
}

/// tcpdump writing `file` in a namespace, with a BPF filter.
fn capture(tb: &Testbed, ns: &str, iface: &str, filter: &str, file: &Path) -> Guard {
    let child = tb
        .ns(
            ns,
            &[
                "tcpdump",
                "-i",
                iface,
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
        .expect("tcpdump");
    std::thread::sleep(Duration::from_millis(1500));
    Guard(child)
}

/// tshark's `fields` of every frame of `file`, one tab-separated line each.
fn dissect(file: &Path, fields: &[&str]) -> Vec<String> {
    let mut args = vec!["-r", file.to_str().unwrap(), "-T", "fields"];
    for f in fields {
        args.extend(["-e", f]);
    }
    let out = Command::new("tshark").args(&args).output().expect("tshark");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn drops(tb: &Testbed) -> Value {
    tb.eipctl_json(&["stats"])["data"]["stats"]["drops"].clone()
}

#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn one_spoofed_eip_source_starts_no_loop() {
    common::require_root();
    let tb = Testbed::up(&[]);
    let _eipd = ready(&tb);
    let eip = tb.var("TB_EIP1").to_string();
    // The client side forwards like an upstream router: whatever comes back for
    // an EIP goes to the POP again.
    let ok = tb
        .ns("TB_NS_CLIENT", &["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let file = tb.run_dir().join("loop.pcap");
    let tcpdump = capture(
        &tb,
        "TB_NS_CLIENT",
        tb.var("TB_CLIENT_IF"),
        &format!("icmp and src host {eip}"),
        &file,
    );
    // One echo request from the EIP to the EIP: unfiltered, the backend's reply
    // (to the EIP) goes out of the Internet port, comes back, and so on.
    send(
        &tb,
        &[format!(
            "IP(src='{eip}', dst='{eip}', ttl=64) / ICMP(id=0x5eed, seq=1)"
        )],
    );
    std::thread::sleep(Duration::from_secs(2));
    drop(tcpdump);
    let seen = dissect(&file, &["ip.src", "ip.dst"]);
    assert!(
        seen.len() <= 2,
        "a loop: {} packets from the EIP in 2 s",
        seen.len()
    );
    let d = drops(&tb);
    assert!(d["spoofed_eip_source"].as_u64().unwrap_or(0) >= 1, "{d}");
}

#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn bogon_sources_and_the_tunnel_port_do_not_reach_the_backend() {
    common::require_root();
    let tb = Testbed::up(&[]);
    let _eipd = ready(&tb);
    let eip = tb.var("TB_EIP1").to_string();
    let client = tb.var("TB_CLIENT_IP").to_string();
    let file = tb.run_dir().join("backend.pcap");
    let tcpdump = capture(
        &tb,
        "TB_NS_REGION",
        "any",
        &format!("udp and (dst port 7001 or (dst port 4789 and src host {client}))"),
        &file,
    );
    let udp = |src: &str, port: u16| {
        format!("IP(src='{src}', dst='{eip}', ttl=64) / UDP(sport=40000, dport={port}) / Raw(b'protect-e2e')")
    };
    send(
        &tb,
        &[
            udp("10.9.9.9", 7001),
            udp("192.168.7.7", 7001),
            udp("127.0.0.1", 7001),
            udp("224.0.0.5", 7001),
            // VXLAN to the EIP: a region that decapsulated it would inject
            // the inner frame into its network.
            format!(
                "IP(src='{client}', dst='{eip}') / UDP(sport=40001, dport=4789) / VXLAN(vni=100) / Ether() / IP(src='10.1.0.66', dst='10.1.0.10') / ICMP()"
            ),
            // The control: a clean client source reaches the backend.
            udp(&client, 7001),
        ],
    );
    std::thread::sleep(Duration::from_secs(1));
    drop(tcpdump);
    let seen = dissect(&file, &["ip.src", "udp.dstport"]);
    assert!(
        seen.iter()
            .any(|l| l.starts_with(&format!("{client}\t7001"))),
        "the clean packet must arrive (capture works): {seen:?}"
    );
    for bogon in ["10.9.9.9", "192.168.7.7", "127.0.0.1", "224.0.0.5"] {
        assert!(
            !seen.iter().any(|l| l.starts_with(bogon)),
            "{bogon} reached the region: {seen:?}"
        );
    }
    assert!(
        !seen.iter().any(|l| l.contains("4789")),
        "tunnel port reached the region: {seen:?}"
    );
    let d = drops(&tb);
    assert!(d["bogon_source"].as_u64().unwrap_or(0) >= 4, "{d}");
    assert!(d["tunnel_port"].as_u64().unwrap_or(0) >= 1, "{d}");
}
