//! The daemon as an operator runs it, on the namespace testbed: a reload by
//! SIGHUP while traffic flows, the signals that must not kill it, the audit
//! record of every change, the start-up warning when the configuration file and
//! the state file disagree, the state file's mode, and a closed stdout.
//!
//! These tests need root: they are marked ignored, and `scripts/test.sh` runs
//! them when it runs as root.

mod common;

use common::{curl_until_ok, signal, wait_for_log, Guard, Testbed, UdpFlow};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

/// The table version in force, from `eipctl --json show tables`.
fn version(tb: &Testbed) -> u64 {
    tb.eipctl_json(&["show", "tables"])["version"]
        .as_u64()
        .expect("version")
}

/// Edit the testbed's configuration: 10.1.0.21 gets weight 0 (drained) for
/// tcp/80 of 192.0.2.20, or back to 1.
fn set_http_weight(tb: &Testbed, weight: u32) {
    let path = tb.var("TB_EIPD_CONFIG");
    let text = std::fs::read_to_string(path).unwrap();
    let pattern = |w: u32| format!(r#"{{ address = "10.1.0.21", port = 80, weight = {w} }}"#);
    let from = pattern(1 - weight.min(1));
    assert!(
        text.contains(&from),
        "the testbed config changed shape:\n{text}"
    );
    std::fs::write(path, text.replace(&from, &pattern(weight))).unwrap();
}

#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn sighup_reloads_under_traffic_and_no_signal_kills() {
    common::require_root();
    let tb = Testbed::up(&[]);
    let log = tb.run_dir().join("eipd.log");
    let mut eipd = tb.start_eipd(&["--idle-sleep"], &log);
    let page = curl_until_ok(&tb, "http://192.0.2.10/", Duration::from_secs(15));
    assert!(page.contains(tb.var("TB_PAGE_TEXT")), "page: {page}");
    let state = tb.run_dir().join("state.json");
    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "state file mode {mode:o}");

    // A UDP flow to an EIP the reload does not touch.
    let flow = UdpFlow::start(&tb);

    // SIGHUP after an edit: the backend is drained, as one new version.
    let before = version(&tb);
    set_http_weight(&tb, 0);
    signal(&eipd.0, "-HUP");
    let text = wait_for_log(&log, Duration::from_secs(10), |t| t.contains("SIGHUP: "));
    assert!(
        text.contains("EIPs: ~1 (192.0.2.20)") && text.contains("in force"),
        "{text}"
    );
    assert_eq!(version(&tb), before + 1);
    assert!(
        text.lines()
            .any(|l| l.contains("control change") && l.contains("SIGHUP")),
        "no audit record of the reload:\n{text}"
    );
    for _ in 0..6 {
        let who = curl_until_ok(&tb, "http://192.0.2.20/whoami", Duration::from_secs(10));
        assert_eq!(
            who.trim(),
            "backend=10.1.0.20",
            "the drained backend got a flow"
        );
    }

    // A change through the socket is audited with the operator's uid.
    tb.eipctl(&["drain-backend", "192.0.2.20", "udp/7", "10.1.0.21"]);
    let text = wait_for_log(&log, Duration::from_secs(5), |t| {
        t.contains("drain_backend")
    });
    assert!(
        text.lines().any(|l| l.contains("control change")
            && l.contains("uid=0")
            && l.contains("drain_backend")),
        "no audit record with the uid:\n{text}"
    );

    // SIGUSR1 prints the counters, SIGUSR2 logs path health; neither stops eipd.
    signal(&eipd.0, "-USR1");
    signal(&eipd.0, "-USR2");
    wait_for_log(&log, Duration::from_secs(5), |t| {
        t.contains("counters (SIGUSR1") && t.contains("(SIGUSR2)")
    });
    // The driver's drops are part of `stats`.
    let stats = tb.eipctl(&["stats"]);
    assert!(
        stats.contains("driver drops:") && stats.contains("kernel socket drops:"),
        "{stats}"
    );
    assert!(
        eipd.0.try_wait().unwrap().is_none(),
        "a signal stopped eipd"
    );

    // The flow lost nothing through all of it.
    let (sent, received, summary) = flow.finish();
    assert!(sent > 50 && received == sent, "unaffected flow: {summary}");

    // Restart with a configuration that differs from the state: said loudly,
    // and the state stays in force.
    set_http_weight(&tb, 1);
    signal(&eipd.0, "-TERM");
    let status = eipd.0.wait().unwrap();
    assert!(status.success(), "eipd stopped with {status}");
    let log2 = tb.run_dir().join("eipd-2.log");
    let _eipd = tb.start_eipd(&["--idle-sleep"], &log2);
    let text = std::fs::read_to_string(&log2).unwrap();
    assert!(
        text.contains("differs from the state file")
            && text.contains("STATE FILE is in force")
            && text.contains("EIPs: ~1 (192.0.2.20)"),
        "no start-up warning:\n{text}"
    );
    // eipctl reload puts the file in force.
    let out = tb.eipctl(&["reload"]);
    assert!(out.contains("EIPs: ~1 (192.0.2.20)"), "{out}");
    assert_eq!(
        count(&std::fs::read_to_string(&log2).unwrap(), "control change"),
        1
    );
}

/// stdout closed (a reader that went away): eipd runs, answers, and stops
/// cleanly instead of dying on the first write.
#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn a_closed_stdout_does_not_kill_eipd() {
    common::require_root();
    let tb = Testbed::up(&[]);
    let log = tb.run_dir().join("eipd.log");
    let state = tb.run_dir().join("state.json");
    let mut child = tb
        .ns(
            "TB_NS_POP",
            &[
                env!("CARGO_BIN_EXE_eipd"),
                "run",
                "--idle-sleep",
                "--config",
                tb.var("TB_EIPD_CONFIG"),
                "--state",
                state.to_str().unwrap(),
                "--socket",
                tb.socket().to_str().unwrap(),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start eipd");
    // Close the read end at once: every write to stdout fails with EPIPE.
    drop(child.stdout.take());
    let mut eipd = Guard(child);
    wait_for_log(&log, Duration::from_secs(30), |t| {
        t.contains("table version")
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::process::Command::new(common::eipctl_exe())
        .args(["--socket", tb.socket().to_str().unwrap(), "show", "tables"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "eipd never answered");
        assert!(eipd.0.try_wait().unwrap().is_none(), "eipd died");
        std::thread::sleep(Duration::from_millis(200));
    }
    curl_until_ok(&tb, "http://192.0.2.10/", Duration::from_secs(15));
    signal(&eipd.0, "-USR1");
    std::thread::sleep(Duration::from_millis(300));
    signal(&eipd.0, "-TERM");
    let status = eipd.0.wait().unwrap();
    assert!(status.success(), "eipd ended with {status}");
}

/// `eipctl explain` names the backend a real flow reaches: the same 5-tuple sent
/// by curl lands on that backend. And a live scrape of `--metrics` passes
/// `promtool check metrics`.
#[test]
#[ignore = "needs root (network namespaces, XDP): scripts/test.sh runs it as root"]
fn explain_agrees_with_the_testbed_and_a_live_scrape_passes_promtool() {
    common::require_root();
    let tb = Testbed::up(&[]);
    let log = tb.run_dir().join("eipd.log");
    let _eipd = tb.start_eipd(&["--idle-sleep", "--metrics", "127.0.0.1:9477"], &log);
    curl_until_ok(&tb, "http://192.0.2.20/whoami", Duration::from_secs(15));
    let client = tb.var("TB_CLIENT_IP").to_string();
    let mut seen = std::collections::BTreeSet::new();
    for port in 40101..40111u16 {
        let text = tb.eipctl(&[
            "explain",
            "tcp",
            &format!("{client}:{port}"),
            "192.0.2.20:80",
        ]);
        let backend = text
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("backend"))
            .and_then(|rest| rest.trim().split(':').next())
            .unwrap_or_else(|| panic!("no backend in explain:\n{text}"))
            .to_string();
        let out = tb
            .ns(
                "TB_NS_CLIENT",
                &[
                    "curl",
                    "-sS",
                    "--max-time",
                    "5",
                    "--local-port",
                    &port.to_string(),
                    "http://192.0.2.20/whoami",
                ],
            )
            .output()
            .unwrap();
        let who = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            who.trim(),
            format!("backend={backend}"),
            "explain said {backend} for source port {port}:\n{text}"
        );
        seen.insert(backend);
    }
    assert!(
        seen.len() == 2,
        "10 flows should reach both backends: {seen:?}"
    );

    let scrape = tb
        .ns(
            "TB_NS_POP",
            &[
                "curl",
                "-sS",
                "--max-time",
                "5",
                "http://127.0.0.1:9477/metrics",
            ],
        )
        .output()
        .unwrap();
    assert!(scrape.status.success(), "scrape failed");
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus, installed by scripts/install-deps.sh)");
    use std::io::Write as _;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(&scrape.stdout)
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
        "promtool check metrics on a live scrape: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let text = String::from_utf8_lossy(&scrape.stdout);
    assert!(
        text.contains("eipd_build_info{") && text.contains("eipd_batch_latency_seconds_bucket")
    );
}
