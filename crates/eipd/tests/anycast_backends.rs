//! Backend health checks end to end on `scripts/anycast-testbed.sh`: POP A
//! checks the backends of the service EIP (TCP to nginx in the region) through
//! its tunnel; a backend that stops answering (nftables drop at the region,
//! carrier up) is drained within the configured detection time while flows
//! pinned to the other backend keep it; when every backend of the EIP fails,
//! its /32 is withdrawn from the FRR router, and announced again after
//! recovery and the hold-down.

mod common;
// Shared with anycast_e2e.rs, which uses what this test does not.
#[allow(dead_code)]
#[path = "anycast/harness.rs"]
mod harness;

use common::{require_root, wait_for_log};
use harness::{nft, whoami, Anycast};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Check every 100 ms, lost after 200 ms, down after 3: detection within
/// `3 * 100 + 200` = 500 ms of the failure.
const CHECK: &str = r#"check = { kind = "tcp", port = 80, interval_ms = 100, timeout_ms = 200, down_after = 3, up_after = 2 }"#;
const DETECTION: Duration = Duration::from_millis(500);

/// POP A's configuration with the check on the service EIP, its own /32 and
/// withdrawal when its backends are down.
fn configure(tb: &Anycast) {
    let path = tb.var("AT_POPA_CONFIG").to_string();
    let eip2 = tb.var("AT_EIP2").to_string();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = String::new();
    let mut in_eip2 = false;
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with("address = ") {
            in_eip2 = line.contains(&format!("\"{eip2}\""));
        }
        if in_eip2 && line.starts_with("backend = ") {
            out.push_str(CHECK);
            out.push('\n');
            in_eip2 = false;
        }
        if line == "[bgp]" {
            out.push_str("withdraw_when_backends_down = true\n");
        }
    }
    let out = out.replacen(
        "prefixes = [ {",
        &format!("prefixes = [ {{ prefix = \"{eip2}/32\" }}, {{"),
        1,
    );
    assert!(out.contains(CHECK) && out.contains("withdraw_when_backends_down"));
    std::fs::write(&path, out).unwrap();
}

fn wait_peers(tb: &Anycast, prefix: &str, want: bool, timeout: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let peers = tb.bgp_paths_to(prefix);
        if peers.is_empty() != want {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < timeout,
            "router paths to {prefix}: {peers:?}, wanted some: {want}\nPOP A:\n{}",
            std::fs::read_to_string(tb.log('a')).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for `needle` to appear in POP A's log after `from` bytes; returns
/// the time from `since`.
fn wait_log_after(tb: &Anycast, from: usize, needle: &str, since: Instant) -> Duration {
    loop {
        let text = std::fs::read_to_string(tb.log('a')).unwrap_or_default();
        if text.get(from..).is_some_and(|t| t.contains(needle)) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "no {needle:?} in POP A's log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn log_len(tb: &Anycast) -> usize {
    std::fs::metadata(tb.log('a')).map_or(0, |m| m.len() as usize)
}

fn drop_port_80(tb: &Anycast, table: &str, backend: &str) {
    nft(
        tb,
        "AT_NS_REGION",
        &format!(
            "table inet {table} {{\n chain in {{ type filter hook input priority 0; ip daddr {backend} tcp dport 80 drop; }}\n}}\n"
        ),
    );
}

fn undo(tb: &Anycast, table: &str) {
    nft(tb, "AT_NS_REGION", &format!("delete table inet {table}\n"));
}

#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn a_silent_backend_is_drained_in_time_and_an_eip_with_none_left_is_withdrawn() {
    require_root();
    let tb = Anycast::up(&[]);
    configure(&tb);
    let eip2 = tb.var("AT_EIP2").to_string();
    let prefix = format!("{eip2}/32");
    let _a = tb.start_pop('a');
    wait_for_log(&tb.log('a'), Duration::from_secs(10), |t| {
        t.contains("backend checks: 3 backend(s) checked")
    });
    wait_peers(&tb, &prefix, true, Duration::from_secs(20));

    // Flows pinned by their 5-tuple: the same client port reaches the same
    // backend every time.
    let ports: Vec<u16> = (41_000..41_024).collect();
    let before: BTreeMap<u16, String> = ports.iter().map(|&p| (p, whoami(&tb, p))).collect();
    let (b0, b1) = ("backend=10.1.0.20", "backend=10.1.0.21");
    assert!(before.values().any(|b| b == b0) && before.values().any(|b| b == b1));

    // 10.1.0.21 stops answering on port 80 (its address and carrier stay up).
    let from = log_len(&tb);
    let t0 = Instant::now();
    drop_port_80(&tb, "sick21", "10.1.0.21");
    let detected = wait_log_after(&tb, from, "10.1.0.21:80: up -> down", t0);
    let in_force = wait_log_after(&tb, from, "backend health in force", t0);
    println!(
        "backend down: detected after {:.0} ms, drained (tables in force) after {:.0} ms \
         (configured detection {} ms = down_after 3 x interval 100 + timeout 200)",
        detected.as_secs_f64() * 1e3,
        in_force.as_secs_f64() * 1e3,
        DETECTION.as_millis()
    );
    assert!(
        detected <= DETECTION + Duration::from_millis(150),
        "detected after {detected:?}"
    );
    for (&port, was) in &before {
        let now = whoami(&tb, port);
        if was == b0 {
            assert_eq!(
                &now, was,
                "port {port}: a flow of the healthy backend moved"
            );
        } else {
            assert_eq!(
                now, b0,
                "port {port}: a flow of the sick backend was not moved"
            );
        }
    }
    // Still announced: one backend answers.
    assert!(!tb.bgp_paths_to(&prefix).is_empty());
    assert!(!tb.bgp_paths().is_empty());

    // Every backend of the EIP fails: its /32 is withdrawn, the pool stays.
    let t1 = Instant::now();
    drop_port_80(&tb, "sick20", "10.1.0.20");
    let withdrawn = wait_peers(&tb, &prefix, false, Duration::from_secs(5));
    println!(
        "all backends down: router lost {prefix} after {:.0} ms",
        withdrawn.as_secs_f64() * 1e3
    );
    let shown = tb.eipctl_json('a', &["show", "bgp"]).to_string();
    assert!(shown.contains("backends_down"), "{shown}");
    assert!(!tb.bgp_paths().is_empty(), "the /24 pool stays announced");

    // Recovery: back after up_after checks and the 1 s hold-down.
    let t2 = Instant::now();
    undo(&tb, "sick20");
    undo(&tb, "sick21");
    let back = wait_peers(&tb, &prefix, true, Duration::from_secs(10));
    println!(
        "recovery: router has {prefix} again after {:.0} ms (hold-down 1000 ms)",
        back.as_secs_f64() * 1e3
    );
    assert!(
        back >= Duration::from_millis(1000),
        "announced before the hold-down: {back:?}"
    );
    let _ = (t1, t2);
}
