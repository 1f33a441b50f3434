//! The Prometheus text exposition (format 0.0.4) of a [`MetricsSnapshot`]: a pure
//! function, tested line by line.

use super::{LatencySummary, MetricsSnapshot, LATENCY_QUANTILES};
use eip_dataplane::counters::{DropReason, Event};
use std::fmt::Write as _;

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes HELP text: backslash and newline.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn sample(out: &mut String, name: &str, pairs: &[(&str, &str)], value: impl std::fmt::Display) {
    let _ = writeln!(out, "{name}{} {value}", labels(pairs));
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn summary(out: &mut String, name: &str, pairs: &[(&str, &str)], s: &LatencySummary) {
    for (q, v) in LATENCY_QUANTILES.iter().zip(s.quantiles_ns) {
        let q = q.to_string();
        let mut with_q = pairs.to_vec();
        with_q.push(("quantile", &q));
        sample(out, name, &with_q, seconds(v));
    }
    sample(out, &format!("{name}_sum"), pairs, seconds(s.sum_ns));
    sample(out, &format!("{name}_count"), pairs, s.count);
}

/// The Prometheus text exposition (format 0.0.4) of a snapshot.
pub fn render(s: &MetricsSnapshot) -> String {
    let mut out = String::new();
    let o = &mut out;

    header(
        o,
        "eipd_table_version",
        "gauge",
        "Version of the tables in force.",
    );
    sample(o, "eipd_table_version", &[], s.table_version);

    header(
        o,
        "eipd_drops_total",
        "counter",
        "Frames dropped by the pipeline, by reason.",
    );
    for r in DropReason::ALL {
        sample(
            o,
            "eipd_drops_total",
            &[("reason", r.label())],
            s.counters.dropped(*r),
        );
    }
    header(
        o,
        "eipd_events_total",
        "counter",
        "Pipeline events (frames not dropped), by event.",
    );
    for e in Event::ALL {
        sample(
            o,
            "eipd_events_total",
            &[("event", e.label())],
            s.counters.happened(*e),
        );
    }

    let eip_traffic = |i: usize| {
        (
            s.counters.eip_in.get(i).copied().unwrap_or_default(),
            s.counters.eip_out.get(i).copied().unwrap_or_default(),
        )
    };
    for (name, help, bytes) in [
        (
            "eipd_eip_packets_total",
            "Packets per EIP: in = client to backend, out = backend to client. Resets when the table version changes.",
            false,
        ),
        (
            "eipd_eip_bytes_total",
            "Bytes per EIP (inner packets): in = client to backend, out = backend to client. Resets when the table version changes.",
            true,
        ),
    ] {
        header(o, name, "counter", help);
        for (i, eip) in s.eips.iter().enumerate() {
            let (tin, tout) = eip_traffic(i);
            for (dir, t) in [("in", tin), ("out", tout)] {
                let v = if bytes { t.bytes } else { t.packets };
                sample(o, name, &[("eip", eip), ("direction", dir)], v);
            }
        }
    }

    header(
        o,
        "eipd_path_packets_total",
        "counter",
        "Encapsulated packets sent over each backbone path. Resets when the table version changes.",
    );
    for p in &s.paths {
        sample(
            o,
            "eipd_path_packets_total",
            &[("path", &p.name)],
            p.traffic.packets,
        );
    }
    header(
        o,
        "eipd_path_bytes_total",
        "counter",
        "Encapsulated bytes (outer) sent over each backbone path. Resets when the table version changes.",
    );
    for p in &s.paths {
        sample(
            o,
            "eipd_path_bytes_total",
            &[("path", &p.name)],
            p.traffic.bytes,
        );
    }
    header(
        o,
        "eipd_path_up",
        "gauge",
        "1 if the path is up (prober health, else table state), 0 otherwise.",
    );
    for p in &s.paths {
        sample(o, "eipd_path_up", &[("path", &p.name)], u8::from(p.up));
    }
    header(
        o,
        "eipd_path_rtt_seconds",
        "gauge",
        "Probe round-trip time quantiles over the prober's window.",
    );
    for p in &s.paths {
        for (q, rtt) in ["0.5", "0.9", "0.99"].iter().zip(p.rtt) {
            if let Some(rtt) = rtt {
                sample(
                    o,
                    "eipd_path_rtt_seconds",
                    &[("path", &p.name), ("quantile", q)],
                    rtt.as_secs_f64(),
                );
            }
        }
    }
    header(
        o,
        "eipd_path_loss_ratio",
        "gauge",
        "Lost probes / probes over the prober's window.",
    );
    for p in &s.paths {
        if let Some(loss) = p.loss {
            sample(o, "eipd_path_loss_ratio", &[("path", &p.name)], loss);
        }
    }

    let names = s.workers.first().map_or(&[][..], |w| &w.counters[..]);
    for (i, (name, _)) in names.iter().enumerate() {
        let metric = format!("eipd_worker_{name}_total");
        header(
            o,
            &metric,
            "counter",
            &format!("AF_XDP worker counter {name}, per device queue."),
        );
        for w in &s.workers {
            let q = w.queue.to_string();
            let value = w.counters.get(i).map_or(0, |(_, v)| *v);
            sample(o, &metric, &[("queue", &q)], value);
        }
    }

    header(
        o,
        "eipd_umem_frames",
        "gauge",
        "UMEM frames of each worker by place: total, free list, held by the worker, fill/RX rings, TX/completion rings.",
    );
    for w in &s.workers {
        let q = w.queue.to_string();
        let f = &w.frames;
        for (state, v) in [
            ("total", f.total),
            ("free", f.free),
            ("held", f.held),
            ("fill", f.fill),
            ("tx", f.tx),
        ] {
            sample(o, "eipd_umem_frames", &[("queue", &q), ("state", state)], v);
        }
    }

    header(
        o,
        "eipd_batch_latency_seconds",
        "summary",
        "Time the pipeline took per received batch, per worker, since start.",
    );
    for w in &s.workers {
        let q = w.queue.to_string();
        summary(
            o,
            "eipd_batch_latency_seconds",
            &[("queue", &q)],
            &w.latency,
        );
    }
    header(
        o,
        "eipd_batch_latency_max_seconds",
        "gauge",
        "Longest batch processing time per worker, since start.",
    );
    for w in &s.workers {
        let q = w.queue.to_string();
        sample(
            o,
            "eipd_batch_latency_max_seconds",
            &[("queue", &q)],
            seconds(w.latency.max_ns),
        );
    }
    header(
        o,
        "eipd_batch_latency_all_seconds",
        "summary",
        "Time the pipeline took per received batch, all workers merged, since start.",
    );
    summary(o, "eipd_batch_latency_all_seconds", &[], &s.latency);
    header(
        o,
        "eipd_batch_latency_all_max_seconds",
        "gauge",
        "Longest batch processing time of any worker, since start.",
    );
    sample(
        o,
        "eipd_batch_latency_all_max_seconds",
        &[],
        seconds(s.latency.max_ns),
    );
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::metrics::*;
    use eip_dataplane::counters::{Counters, Traffic};
    use std::time::Duration;

    pub(crate) fn snapshot() -> MetricsSnapshot {
        let mut counters = Counters::new(1, 1);
        counters.drop(DropReason::NoPath);
        counters.event(Event::Rx);
        counters.event(Event::Rx);
        counters.eip_in[0].add(100);
        counters.path[0].add(150);
        let mut slot = LatencySlot::default();
        for v in [1_000, 2_000, 3_000, 1_000_000] {
            slot.hist.record(v).unwrap();
            slot.sum_ns += v;
        }
        let worker = WorkerMetrics {
            queue: 0,
            counters: vec![("rx_packets", 7), ("tx_packets", 0), ("fill_ring_empty", 0)],
            frames: UmemFrames {
                total: 4096,
                free: 100,
                ..Default::default()
            },
            latency: slot.summary(),
        };
        MetricsSnapshot {
            table_version: 3,
            counters,
            eips: vec!["192.0.2.10".into()],
            paths: vec![PathMetrics {
                name: "a\"b\\c\nd".into(),
                traffic: Traffic {
                    packets: 1,
                    bytes: 150,
                },
                up: true,
                rtt: [Some(Duration::from_micros(250)), None, None],
                loss: Some(0.25),
            }],
            latency: worker.latency,
            workers: vec![worker],
        }
    }

    #[test]
    fn renders_exact_lines() {
        let text = render(&snapshot());
        let lines: Vec<&str> = text.lines().collect();
        for want in [
            "# HELP eipd_table_version Version of the tables in force.",
            "# TYPE eipd_table_version gauge",
            "eipd_table_version 3",
            "# TYPE eipd_drops_total counter",
            "eipd_drops_total{reason=\"no_path\"} 1",
            "eipd_drops_total{reason=\"truncated\"} 0",
            "eipd_events_total{event=\"rx\"} 2",
            "eipd_eip_packets_total{eip=\"192.0.2.10\",direction=\"in\"} 1",
            "eipd_eip_packets_total{eip=\"192.0.2.10\",direction=\"out\"} 0",
            "eipd_eip_bytes_total{eip=\"192.0.2.10\",direction=\"in\"} 100",
            "eipd_path_packets_total{path=\"a\\\"b\\\\c\\nd\"} 1",
            "eipd_path_bytes_total{path=\"a\\\"b\\\\c\\nd\"} 150",
            "eipd_path_up{path=\"a\\\"b\\\\c\\nd\"} 1",
            "eipd_path_rtt_seconds{path=\"a\\\"b\\\\c\\nd\",quantile=\"0.5\"} 0.00025",
            "eipd_path_loss_ratio{path=\"a\\\"b\\\\c\\nd\"} 0.25",
            "# TYPE eipd_worker_rx_packets_total counter",
            "eipd_worker_rx_packets_total{queue=\"0\"} 7",
            "eipd_worker_tx_packets_total{queue=\"0\"} 0",
            "eipd_umem_frames{queue=\"0\",state=\"total\"} 4096",
            "eipd_umem_frames{queue=\"0\",state=\"free\"} 100",
            "# TYPE eipd_batch_latency_seconds summary",
            "eipd_batch_latency_seconds{queue=\"0\",quantile=\"0.5\"} 0.000002007",
            "eipd_batch_latency_seconds_count{queue=\"0\"} 4",
            "eipd_batch_latency_seconds_sum{queue=\"0\"} 0.001006",
            "eipd_batch_latency_all_seconds_count 4",
        ] {
            assert!(lines.contains(&want), "missing {want:?} in\n{text}");
        }
        // Unmeasured RTT quantiles are left out, not shown as zero.
        assert!(!text.contains("quantile=\"0.9\"} 0\n"));
        assert!(!lines
            .iter()
            .any(|l| l.starts_with("eipd_path_rtt_seconds") && l.contains("0.99")));
        // p99.9 and max see the 1 ms batch (2 significant digits).
        let max = lines
            .iter()
            .find(|l| l.starts_with("eipd_batch_latency_max_seconds{queue=\"0\"}"))
            .unwrap();
        let v: f64 = max.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((0.00099..=0.00101).contains(&v), "{max}");
        // Every sample line belongs to a metric with a TYPE line.
        for l in lines.iter().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            let base = name
                .strip_suffix("_sum")
                .or_else(|| name.strip_suffix("_count"))
                .unwrap_or(name);
            assert!(
                text.contains(&format!("# TYPE {name} "))
                    || text.contains(&format!("# TYPE {base} summary")),
                "no TYPE for {l}"
            );
        }
    }

    #[test]
    fn escapes_labels() {
        assert_eq!(escape_label("plain"), "plain");
        assert_eq!(escape_label("a\"b"), "a\\\"b");
        assert_eq!(escape_label("a\\b"), "a\\\\b");
        assert_eq!(escape_label("a\nb"), "a\\nb");
    }
}
