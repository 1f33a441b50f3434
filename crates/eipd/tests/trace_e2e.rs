//! `eipctl trace` end to end on the namespace testbed (scripts/testbed.sh): eipd
//! on AF_XDP, curl and ping through an EIP while a trace runs, and the pcapng the
//! daemon wrote read back by tshark (Wireshark), which shares no code with it.
//!
//! These tests need root: they are marked ignored, and `scripts/test.sh` runs them
//! when it runs as root.

mod common;

use common::{curl_until_ok, eipctl_exe, Testbed};
use eip_dataplane::testkit::host::tshark_comment_field;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const EIP: &str = "192.0.2.10";
const BACKEND: &str = "10.1.0.10";

/// `eipctl trace ARGS --output FILE` in the background.
fn start_trace(tb: &Testbed, args: &[&str], file: &Path) -> Child {
    Command::new(eipctl_exe())
        .arg("--socket")
        .arg(tb.socket())
        .arg("trace")
        .args(args)
        .arg("--output")
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run eipctl trace")
}

/// Waits for a trace to end, running `traffic` until it does.
fn finish(mut trace: Child, timeout: Duration, mut traffic: impl FnMut()) -> Output {
    let deadline = Instant::now() + timeout;
    while trace.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "eipctl trace did not end");
        traffic();
    }
    let out = trace.wait_with_output().unwrap();
    eprintln!(
        "eipctl trace: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One frame as tshark dissects it.
#[derive(Debug)]
struct Dissected {
    interface: String,
    comment: String,
    protocols: String,
    /// Every IPv4 source and destination (outer and inner), comma-separated.
    src: String,
    dst: String,
}

fn tshark(file: &Path) -> Vec<Dissected> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-T", "fields", "-E", "separator=|"])
        .args(["-e", "frame.interface_name", "-e", tshark_comment_field()])
        .args(["-e", "frame.protocols", "-e", "ip.src", "-e", "ip.dst"])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark -r {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // A sample, as the operator would see it.
    let summary = Command::new("tshark").arg("-r").arg(file).output().unwrap();
    eprintln!(
        "tshark -r {} (first lines):\n{}",
        file.display(),
        String::from_utf8_lossy(&summary.stdout)
            .lines()
            .take(12)
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!(
        "interface|comment|protocols|ip.src|ip.dst (first lines):\n{}",
        text.lines().take(8).collect::<Vec<_>>().join("\n")
    );
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            assert_eq!(f.len(), 5, "{l}");
            Dissected {
                interface: f[0].into(),
                comment: f[1].into(),
                protocols: f[2].into(),
                src: f[3].into(),
                dst: f[4].into(),
            }
        })
        .collect()
}

fn has(list: &str, addr: &str) -> bool {
    list.split(',').any(|a| a == addr)
}

/// A trace on the EIP while curl and ping go through it: tshark finds the
/// client's frames received on the Internet port, the same frames leaving on the
/// backbone in VXLAN to the backend, the return both ways, and a comment on
/// every frame. A second trace meanwhile is refused as busy. Then, with the
/// region's only path disabled, a drop trace catches the `no_path` drops.
#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn trace_writes_rx_tx_and_drops_to_pcapng() {
    common::require_root();
    let tb = Testbed::up(&["--paths", "1"]);
    let log = tb.run_dir().join("eipd.log");
    let _eipd = tb.start_eipd(&["--idle-sleep"], &log);
    let url = format!("http://{EIP}/");
    curl_until_ok(&tb, &url, Duration::from_secs(20));

    let file = tb.run_dir().join("eip.pcapng");
    let trace = start_trace(
        &tb,
        &["--eip", EIP, "--count", "60", "--seconds", "20"],
        &file,
    );
    std::thread::sleep(Duration::from_millis(700));
    // One at a time: a second one is refused (exit status 1, `busy`).
    let second = tb.run_dir().join("second.pcapng");
    let refused = finish(
        start_trace(&tb, &["--seconds", "1"], &second),
        Duration::from_secs(10),
        || std::thread::sleep(Duration::from_millis(20)),
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("(busy)"));
    assert!(!second.exists());

    let ping = tb
        .ns(
            "TB_NS_CLIENT",
            &["ping", "-c", "3", "-i", "0.2", "-W", "1", EIP],
        )
        .output()
        .unwrap();
    assert!(ping.status.success(), "ping {EIP} failed");
    let out = finish(trace, Duration::from_secs(40), || {
        let _ = curl_until_ok(&tb, &url, Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(100));
    });
    assert!(out.status.success(), "eipctl trace failed");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("wrote 60 frames to "), "{said}");
    assert!(said.contains("(ended by count)"), "{said}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "trace file mode");

    let frames = tshark(&file);
    assert_eq!(frames.len(), 60);
    assert!(
        frames.iter().all(|f| f.comment.contains(" queue 0")),
        "a frame without its comment: {frames:#?}"
    );
    // The client's frames as received on the Internet port, to the EIP...
    let rx = frames
        .iter()
        .filter(|f| f.interface == "rx:internet" && has(&f.dst, EIP))
        .collect::<Vec<_>>();
    assert!(!rx.is_empty(), "no rx on internet: {frames:#?}");
    assert!(rx.iter().all(|f| f
        .comment
        .starts_with("rx port internet queue 0 verdict tx port backbone0")));
    assert!(rx.iter().any(|f| f.protocols.contains("tcp")));
    assert!(rx.iter().any(|f| f.protocols.contains("icmp")));
    // ... as sent on the backbone: VXLAN to the backend.
    let tx = frames
        .iter()
        .filter(|f| f.interface == "tx:backbone0")
        .collect::<Vec<_>>();
    assert!(
        tx.iter().any(|f| f.protocols.contains("vxlan")
            && has(&f.dst, BACKEND)
            && f.comment == "tx port backbone0 queue 0"),
        "no VXLAN tx on the backbone: {frames:#?}"
    );
    // The return: VXLAN in from the backend, out to the client from the EIP.
    assert!(frames.iter().any(|f| f.interface == "rx:backbone0"
        && f.protocols.contains("vxlan")
        && has(&f.src, BACKEND)
        && f.comment
            .starts_with("rx port backbone0 queue 0 verdict tx port internet")));
    assert!(frames.iter().any(|f| f.interface == "tx:internet"
        && has(&f.src, EIP)
        && f.comment == "tx port internet queue 0"));

    // Drops: the region's only path disabled, the EIP's traffic dies `no_path`.
    tb.eipctl(&["--blackhole-ok", "set-path-admin", "bb0", "disabled"]);
    let drops = tb.run_dir().join("drops.pcapng");
    let trace = start_trace(
        &tb,
        &["--drop", "no_path", "--count", "3", "--seconds", "10"],
        &drops,
    );
    let out = finish(trace, Duration::from_secs(30), || {
        let _ = tb
            .ns("TB_NS_CLIENT", &["ping", "-c", "1", "-W", "1", EIP])
            .output();
    });
    assert!(out.status.success(), "drop trace failed");
    tb.eipctl(&["set-path-admin", "bb0", "enabled"]);
    let frames = tshark(&drops);
    assert_eq!(frames.len(), 3);
    for f in &frames {
        assert_eq!(f.interface, "drop:internet", "{f:?}");
        assert_eq!(f.comment, "drop no_path port internet queue 0", "{f:?}");
        assert!(has(&f.dst, EIP) && f.protocols.contains("icmp"), "{f:?}");
    }
    // Forwarding resumes; tracing is off again.
    curl_until_ok(&tb, &url, Duration::from_secs(20));
}
