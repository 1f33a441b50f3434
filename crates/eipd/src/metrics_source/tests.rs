//! The metrics of a daemon without a NIC: a control plane booted from the
//! fixture POP, two workers' published counters and latencies, driver and
//! socket counters as the control thread copies them, rendered and checked by
//! `promtool`.

use super::*;
use crate::stats_source::DriverFigures;
use eip_afxdp::SocketStats;
use eip_control::metrics::{render, testkit};
use eip_control::state::StateFile;
use eip_dataplane::counters::Counters;
use eip_dataplane::swap;
use std::path::Path;

fn sources(eips: EipSeries) -> MetricsSources {
    let dir = std::env::temp_dir().join(format!(
        "eipd-metrics-{}-{}",
        std::process::id(),
        eips.to_string().replace(':', "-")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../pcap-fixtures/pop.toml"
    ));
    let store = StateFile::new(dir.join("state.json"));
    let boot = store.boot(config, None).unwrap();
    let tables = Arc::clone(&boot.tables);
    let (publisher, _subscribers) = swap::channel(Arc::clone(&tables), 2);
    let control = Arc::new(ControlPlane::new(store, boot, publisher));
    // Nothing here changes the tables: the state file is not written again.
    let _ = std::fs::remove_dir_all(&dir);

    let published = crate::processor::Published::per_worker(2);
    {
        let mut c = published[1].counters.lock().unwrap();
        *c = Counters::new(tables.eips.len(), tables.paths.len());
        c.table_version = tables.version;
        for _ in 0..3 {
            c.eips.inbound(2).add(100);
        }
        c.eips.inbound(0).add(60);
        c.path[0].add(150);
        let mut latency = published[1].latency.lock().unwrap();
        for ns in [900, 3_000, 40_000] {
            latency.hist.record(ns).unwrap();
            latency.sum_ns += ns;
        }
    }
    let mut worker = WorkerSnapshot::default();
    worker.counters.rx_packets = 4;
    worker.counters.busy_ns = 2_500_000_000;
    worker.frames.total = 4096;
    let stats = SocketStats {
        rx_fill_ring_empty_descs: 9,
        ..Default::default()
    };
    MetricsSources {
        control,
        board: Arc::new(HealthBoard::default()),
        published,
        driver: Arc::new(Mutex::new(DriverFigures {
            workers: vec![(0, worker), (1, worker)],
            sockets: vec![(0, 0, stats), (0, 1, stats), (1, 0, stats)],
            xdp: None,
            xdp_acl_hits: Vec::new(),
        })),
        eips,
        build: build_info(),
    }
}

#[test]
fn daemon_metrics_pass_promtool() {
    let text = render(&sources(EipSeries::default()).snapshot());
    testkit::check_metrics(&text);
    let lines: Vec<&str> = text.lines().collect();
    for want in [
        "eipd_eips 5",
        "eipd_path_packets_total{path=\"bj-telecom\",region=\"beijing\"} 1",
        "eipd_worker_rx_packets_total{queue=\"1\"} 4",
        "eipd_worker_busy_seconds_total{queue=\"0\"} 2.5",
        "eipd_xsk_rx_fill_ring_empty_descs_total{queue=\"0\",port=\"backbone\"} 9",
        "eipd_batch_latency_seconds_count{queue=\"1\"} 3",
        "eipd_batch_latency_seconds_bucket{queue=\"1\",le=\"0.00005\"} 3",
        "eipd_batch_latency_seconds_count{queue=\"0\"} 0",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in\n{text}");
    }
    // Every driver counter has a family, in base units.
    for field in WorkerCounters::NAMES {
        let family = match field.strip_suffix("_ns") {
            Some(base) => format!("eipd_worker_{base}_seconds_total"),
            None => format!("eipd_worker_{field}_total"),
        };
        assert!(
            text.contains(&format!("# TYPE {family} counter")),
            "{family}"
        );
    }
    for l in lines.iter().filter(|l| !l.starts_with('#')) {
        assert!(!l.split('{').next().unwrap().contains("_ns"), "{l}");
    }
    // docs/metrics.md describes every family.
    let docs = include_str!("../../../../docs/metrics.md");
    for l in &lines {
        if let Some(family) = l.strip_prefix("# TYPE ") {
            let family = family.split(' ').next().unwrap();
            assert!(
                docs.contains(&format!("`{family}`")),
                "{family} is not in docs/metrics.md"
            );
        }
    }
}

#[test]
fn per_eip_series_follow_the_option() {
    let eip_lines = |eips| {
        let text = render(&sources(eips).snapshot());
        text.lines()
            .filter(|l| l.starts_with("eipd_eip_packets_total"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert!(eip_lines(EipSeries::None).is_empty());
    assert_eq!(eip_lines(EipSeries::All).len(), 2 * 5);
    // The busiest first: EIP 2 (3 packets in), then EIP 0 (1).
    let top = eip_lines(EipSeries::Top(1));
    assert_eq!(top.len(), 2, "{top:?}");
    assert!(top[0].ends_with("direction=\"in\"} 3"), "{top:?}");
}

#[test]
fn build_info_names_version_and_commit() {
    let b = build_info();
    // The same shape `--version` shows (packaging/build-version.rs: `-dirty` for
    // uncommitted changes).
    eip_dataplane::testkit::host::assert_version_line(
        "eipd",
        &b.version,
        &format!("eipd {} ({})", env!("CARGO_PKG_VERSION"), b.commit),
    );
}
