//! End to end on a namespace testbed: `eipd run` on AF_XDP in a POP namespace
//! between a client namespace and a region namespace where Linux's own vxlan device
//! terminates the tunnel and nginx/socat serve the backends (scripts/testbed.sh).
//! Real software on both sides judges the result: curl, sha256 of a 10 MB file,
//! ping, tcpdump's checksum validation.
//!
//! These tests need root: they are marked ignored, and `scripts/test.sh` runs them
//! when it runs as root.

mod common;

use common::{repo, signal, Testbed};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn selftest(args: &[&str], eipd_args: &str, log: &Path) {
    let out = Command::new(repo().join("scripts/testbed-selftest.sh"))
        .args(["--mode", "eipd"])
        .args(args)
        .env("EIPD", env!("CARGO_BIN_EXE_eipd"))
        .env("EIPD_ARGS", eipd_args)
        .env("EIPD_LOG", log)
        .output()
        .expect("run scripts/testbed-selftest.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && stdout.contains(" 0 failed"),
        "selftest failed"
    );
}

/// TCP (page and 10 MB file, sha256 checked), UDP echo, ping of both EIPs, the
/// service spread over both backends, checksums on both links, the POP's own
/// address answering ping and ARP, clean stop with every frame accounted, and no
/// XDP program left.
#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn http_udp_ping_through_the_eip() {
    common::require_root();
    let log = std::env::temp_dir().join(format!("eipd-e2e-{}.log", std::process::id()));
    selftest(&["--paths", "1"], "--idle-sleep", &log);
    let _ = std::fs::remove_file(log);
}

/// Two workers on a two-queue veth: both carry traffic.
#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn two_workers_on_two_queues_both_carry_traffic() {
    common::require_root();
    let log = std::env::temp_dir().join(format!("eipd-e2e-2q-{}.log", std::process::id()));
    selftest(&["--queues", "2"], "--queues 0,1 --idle-sleep", &log);
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    for queue in [0, 1] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("worker queue {queue}:")))
            .unwrap_or_else(|| panic!("no final line for queue {queue}:\n{text}"));
        let rx: u64 = line
            .split_whitespace()
            .nth(4)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(rx > 0, "worker of queue {queue} received nothing: {line}");
    }
}

/// The XDP program goes away with the process, even on SIGKILL (bpf_link).
#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn no_xdp_program_left_after_kill_9() {
    common::require_root();
    let tb = Testbed::up(&["--no-services"]);
    let log = PathBuf::from(tb.var("TB_RUN_DIR")).join("eipd.log");
    let mut eipd = tb.start_eipd(&["--idle-sleep"], &log);
    assert!(
        tb.xdp_attached(),
        "eipd runs but no XDP program is attached"
    );
    eipd.kill9();
    let deadline = Instant::now() + Duration::from_secs(3);
    while tb.xdp_attached() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !tb.xdp_attached(),
        "an XDP program is still attached after kill -9"
    );
}

/// A soak of traffic (default 60 s; EIP_SOAK_SECONDS), then SIGINT: eipd exits 0
/// and every UMEM frame is accounted for.
#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn soak_ends_with_every_frame_accounted() {
    common::require_root();
    let seconds: u64 = std::env::var("EIP_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let tb = Testbed::up(&[]);
    let log = PathBuf::from(tb.var("TB_RUN_DIR")).join("eipd.log");
    let mut eipd = tb.start_eipd(&["--idle-sleep"], &log);
    let started = Instant::now();
    let mut downloads = 0;
    let mut pinger = Command::new("ip")
        .args([
            "netns",
            "exec",
            tb.var("TB_NS_CLIENT"),
            "ping",
            "-q",
            "-i",
            "0.01",
            "192.0.2.20",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    while started.elapsed() < Duration::from_secs(seconds) {
        let out = tb
            .ns(
                "TB_NS_CLIENT",
                &[
                    "sh",
                    "-c",
                    "curl -sS --max-time 10 http://192.0.2.10/big.bin | sha256sum | cut -d' ' -f1",
                ],
            )
            .output()
            .expect("curl");
        let sum = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(
            sum,
            tb.var("TB_BIGFILE_SHA256"),
            "download {downloads} corrupted"
        );
        downloads += 1;
    }
    let _ = pinger.kill();
    let _ = pinger.wait();
    signal(&eipd.0, "-INT");
    let status = eipd.0.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    eprintln!("{downloads} downloads of 10 MiB in {seconds} s\n{text}");
    assert!(status.success(), "eipd exited with {status}");
    let line = text
        .lines()
        .find(|l| l.contains("UMEM frames accounted"))
        .expect("frame accounting line");
    let counts = line
        .split("accounted ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap();
    let (seen, total) = counts.split_once('/').unwrap();
    assert_eq!(seen, total, "frames lost: {line}");
    assert!(!text.contains("AUDIT FAILED"));
}
