//! For the tests here and in `eipd` (feature `testkit`): a realistic
//! [`MetricsSnapshot`] and a way to run `promtool` on what is rendered.

use super::*;
use crate::health::ProbeCounters;
use eip_dataplane::counters::{DropReason, Event};
use std::io::Write as _;
use std::process::{Command, Output, Stdio};

/// A POP at work: three workers, two regions, a path with RTT measurements, a
/// probed path with no reply yet, an unprobed path, three EIPs (one idle),
/// kernel socket counters.
pub fn snapshot() -> MetricsSnapshot {
    let mut counters = Counters::new(3, 4);
    counters.table_version = 7;
    for _ in 0..5 {
        counters.drop(DropReason::NoService);
    }
    counters.drop(DropReason::TtlExpired);
    for _ in 0..40 {
        counters.event(Event::Rx);
        counters.event(Event::Encapsulated);
    }
    let workers = (0..3u32)
        .map(|queue| {
            let mut slot = LatencySlot::default();
            for v in [800, 1_200, 2_500, 4_000, 9_000, 30_000, 250_000 << queue] {
                slot.hist.saturating_record(v);
                slot.sum_ns += v;
            }
            WorkerMetrics {
                queue,
                counters: vec![
                    ("batches", 1_000 + u64::from(queue)),
                    ("rx_packets", 40_000),
                    ("rx_bytes", 52_000_000),
                    ("free_list_empty", 0),
                    ("busy_ns", 1_250_000_000),
                    ("stalls", 2),
                ],
                frames: UmemFrames {
                    total: 4096,
                    free: 1024,
                    held: 0,
                    fill: 2048,
                    tx: 1024,
                },
                latency: slot.histogram(),
                latency_max_ns: slot.hist.max(),
            }
        })
        .collect();
    let mut rtt = RttHistogram::rtt();
    for us in [180, 220, 240, 260, 900, 4_000] {
        rtt.record(Duration::from_micros(us));
    }
    let path = |name: &str, region: &str, up, probe| PathMetrics {
        name: name.into(),
        region: region.into(),
        traffic: Traffic {
            packets: 1_000,
            bytes: 1_300_000,
        },
        up,
        probe,
    };
    MetricsSnapshot {
        build: BuildInfo {
            version: "0.1.0".into(),
            commit: "0123abc".into(),
        },
        table_version: 7,
        counters,
        eip_count: 3,
        eips: ["192.0.2.10", "192.0.2.11", "2001:db8::10"]
            .iter()
            .enumerate()
            .map(|(i, a)| EipMetrics {
                address: a.to_string(),
                traffic_in: Traffic {
                    packets: 100 * i as u64,
                    bytes: 15_000 * i as u64,
                },
                traffic_out: Traffic {
                    packets: 90 * i as u64,
                    bytes: 120_000 * i as u64,
                },
                policed: Default::default(),
                acl: Vec::new(),
            })
            .collect(),
        paths: vec![
            path(
                "eu-transit-a",
                "eu",
                true,
                Some(ProbeMetrics {
                    srtt: Some(Duration::from_micros(300)),
                    loss: 0.01,
                    counters: ProbeCounters {
                        sent: 600,
                        received: 590,
                        lost: 10,
                        late: 1,
                        unmatched: 0,
                    },
                    rtt: rtt.metrics(),
                }),
            ),
            path(
                "eu-transit-b",
                "eu",
                false,
                Some(ProbeMetrics {
                    srtt: None,
                    loss: 1.0,
                    counters: ProbeCounters {
                        sent: 12,
                        lost: 12,
                        ..Default::default()
                    },
                    rtt: RttHistogram::rtt().metrics(),
                }),
            ),
            path("us-static", "us", true, None),
        ],
        workers,
        xdp_acl_dropped: Some(0),
        xdp_rate_dropped: Some(0),
        sockets: (0..3u32)
            .flat_map(|queue| {
                ["uplink", "backbone"].map(|port| SocketMetrics {
                    queue,
                    port: port.into(),
                    counters: vec![
                        ("rx_dropped", 0),
                        ("rx_ring_full", 3),
                        ("rx_fill_ring_empty_descs", 17),
                    ],
                })
            })
            .collect(),
    }
}

/// Runs `promtool` with `args`, feeding it `stdin`.
///
/// # Panics
/// When `promtool` cannot be run: install Debian's `prometheus` package
/// (`scripts/install-deps.sh` does). A missing promtool fails the test; it
/// never passes it.
pub fn promtool(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): install Debian package `prometheus` \
                 (scripts/install-deps.sh); this test does not pass without it"
            )
        });
    let mut input = child.stdin.take().expect("piped stdin");
    input
        .write_all(stdin.as_bytes())
        .expect("writing to promtool");
    drop(input);
    child.wait_with_output().expect("waiting for promtool")
}

/// `promtool check metrics` on `exposition`.
///
/// # Panics
/// On any problem promtool reports: a parse error or a lint warning (it exits
/// non-zero for both; any output at all is taken as a problem too).
pub fn check_metrics(exposition: &str) {
    let out = promtool(&["check", "metrics"], exposition);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim().is_empty() && stderr.trim().is_empty(),
        "promtool check metrics: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
}
