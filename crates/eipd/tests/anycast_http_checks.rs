//! HTTP backend checks end to end on `scripts/anycast-testbed.sh`: POP A
//! checks the two backends of the service EIP with `GET /healthz` through its
//! tunnel. nginx in the region answers 503 on one backend's `/healthz` while
//! TCP connects (and every other page) still work there: a TCP check would
//! keep it; the HTTP check takes it out of the service's Maglev table within
//! the detection time, and only its flows move. When it answers 200 again it
//! comes back and its flows return. Judged with curl through the EIP (status
//! of `/healthz`, backend of `/whoami`) and with pinned 5-tuples.

mod common;
// Shared with anycast_e2e.rs, which uses what this test does not.
#[allow(dead_code)]
#[path = "anycast/harness.rs"]
mod harness;

use common::{require_root, wait_for_log};
use harness::{whoami, Anycast};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Check every 100 ms, lost after 200 ms, down after 3: a wrong status is
/// seen after about `3 * 100` ms, silence after at most `3 * 100 + 200`.
const CHECK: &str = r#"  check = { kind = "http", path = "/healthz", expect = "200-299", interval_ms = 100, timeout_ms = 200, down_after = 3, up_after = 2 }"#;
const DETECTION: Duration = Duration::from_millis(500);
const SICK: &str = "10.1.0.21";

/// POP A's configuration with the HTTP check on the service of the service EIP.
fn configure(tb: &Anycast) {
    let path = tb.var("AT_POPA_CONFIG").to_string();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if line.trim_start().starts_with("backends = [") && line.contains(SICK) {
            out.push_str(CHECK);
            out.push('\n');
        }
    }
    assert_eq!(out.matches(CHECK).count(), 1, "{out}");
    std::fs::write(&path, out).unwrap();
}

/// Waits for `needle` in POP A's log after `from` bytes; the time from `since`.
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

/// `curl` of `page` through the service EIP from the client, `n` times (new
/// connections, so new client ports): each answer's status and body.
fn curl_eip(tb: &Anycast, page: &str, n: usize) -> Vec<(u16, String)> {
    let url = format!("http://{}{page}", tb.var("AT_EIP2"));
    (0..n)
        .map(|_| {
            let out = tb
                .ns(
                    "AT_NS_CLIENT",
                    &[
                        "curl",
                        "-sS",
                        "--max-time",
                        "5",
                        "-w",
                        "\n%{http_code}",
                        &url,
                    ],
                )
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
            let code = code.trim().parse().unwrap_or_else(|_| {
                panic!(
                    "curl {url}: {text:?} {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            (code, body.trim().to_string())
        })
        .collect()
}

fn set_sick(tb: &Anycast, sick: bool) {
    let marker = std::path::Path::new(tb.var("AT_RUN_DIR")).join(format!("www/sick-{SICK}"));
    if sick {
        std::fs::write(&marker, "").unwrap();
    } else {
        std::fs::remove_file(&marker).unwrap();
    }
}

#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn a_backend_answering_503_is_drained_in_time_only_its_flows_move_and_it_comes_back() {
    require_root();
    let tb = Anycast::up(&[]);
    configure(&tb);
    let _a = tb.start_pop('a');
    wait_for_log(&tb.log('a'), Duration::from_secs(10), |t| {
        t.contains("backend checks: 2 backend(s) checked")
    });
    let t = Instant::now();
    while tb.bgp_paths().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(20), "pool not announced");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The router's kernel has the route (BGP's table can be ahead of it).
    tb.wait_next_hop(
        Some(tb.var("AT_POPA_INET_IP")),
        Instant::now(),
        Duration::from_secs(5),
    );
    let shown = tb.eipctl_json('a', &["show", "eips"]).to_string();
    assert!(
        shown.contains(r#""kind":"http""#) && shown.contains("/healthz"),
        "{shown}"
    );

    // Healthy: every /healthz through the EIP is 200, from both backends.
    let answers = curl_eip(&tb, "/healthz", 16);
    assert!(answers.iter().all(|(code, _)| *code == 200), "{answers:?}");
    let ports: Vec<u16> = (42_000..42_024).collect();
    let before: BTreeMap<u16, String> = ports.iter().map(|&p| (p, whoami(&tb, p))).collect();
    let (b0, b1) = ("backend=10.1.0.20", "backend=10.1.0.21");
    assert!(before.values().any(|b| b == b0) && before.values().any(|b| b == b1));

    // 10.1.0.21's /healthz says 503; TCP to it still connects (from the
    // region itself: the whole page answers, with 503).
    let from = log_len(&tb);
    let t0 = Instant::now();
    set_sick(&tb, true);
    let direct = tb
        .ns(
            "AT_NS_REGION",
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("http://{SICK}/healthz"),
            ],
        )
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&direct.stdout), "503");
    let detected = wait_log_after(&tb, from, &format!("{SICK}:80: up -> down"), t0);
    let in_force = wait_log_after(&tb, from, "backend health in force", t0);
    println!(
        "http 503: detected after {:.0} ms, drained (tables in force) after {:.0} ms \
         (configured: down_after 3 x interval 100 ms; by silence at most {} ms)",
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
    let answers = curl_eip(&tb, "/healthz", 16);
    assert!(
        answers
            .iter()
            .all(|(code, body)| *code == 200 && body == "ok 10.1.0.20"),
        "{answers:?}"
    );
    let pages = curl_eip(&tb, "/whoami", 8);
    assert!(pages.iter().all(|(_, b)| b == b0), "{pages:?}");

    // 200 again: back after up_after checks, and its flows return.
    let from = log_len(&tb);
    let t1 = Instant::now();
    set_sick(&tb, false);
    let back = wait_log_after(&tb, from, &format!("{SICK}:80: down -> up"), t1);
    wait_log_after(&tb, from, "backend health in force", t1);
    println!(
        "http 200 again: up after {:.0} ms",
        back.as_secs_f64() * 1e3
    );
    let after: BTreeMap<u16, String> = ports.iter().map(|&p| (p, whoami(&tb, p))).collect();
    assert_eq!(after, before, "flows did not return to their backend");
    let answers = curl_eip(&tb, "/healthz", 16);
    assert!(answers.iter().all(|(code, _)| *code == 200), "{answers:?}");
    assert!(
        answers.iter().any(|(_, b)| b == "ok 10.1.0.21"),
        "{answers:?}"
    );
}
