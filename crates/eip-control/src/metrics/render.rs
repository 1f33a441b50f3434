//! The Prometheus text exposition (format 0.0.4) of a [`MetricsSnapshot`]: a pure
//! function, tested line by line.

use super::{HistogramMetrics, MetricsSnapshot, PathMetrics};
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

pub(super) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
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

pub(super) fn sample(
    out: &mut String,
    name: &str,
    pairs: &[(&str, &str)],
    value: impl std::fmt::Display,
) {
    let _ = writeln!(out, "{name}{} {value}", labels(pairs));
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Cumulative `_bucket{le}` lines, then `_sum` (seconds) and `_count`.
fn histogram(out: &mut String, name: &str, pairs: &[(&str, &str)], h: &HistogramMetrics) {
    let bucket = format!("{name}_bucket");
    let bounds = h.buckets.iter().map(|(b, n)| (seconds(*b).to_string(), *n));
    for (le, count) in bounds.chain([("+Inf".to_string(), h.count)]) {
        let mut with_le = pairs.to_vec();
        with_le.push(("le", &le));
        sample(out, &bucket, &with_le, count);
    }
    sample(out, &format!("{name}_sum"), pairs, seconds(h.sum_ns));
    sample(out, &format!("{name}_count"), pairs, h.count);
}

/// The family of a driver or socket counter named `field`: `_total`, and a
/// field counted in nanoseconds (`busy_ns`) shown in seconds.
fn counter_family(prefix: &str, field: &str) -> (String, bool) {
    match field.strip_suffix("_ns") {
        Some(base) => (format!("{prefix}_{base}_seconds_total"), true),
        None => (format!("{prefix}_{field}_total"), false),
    }
}

/// The Prometheus text exposition (format 0.0.4) of a snapshot.
pub fn render(s: &MetricsSnapshot) -> String {
    let mut out = String::new();
    let o = &mut out;

    header(
        o,
        "eipd_build_info",
        "gauge",
        "Always 1; the labels say which build of eipd runs.",
    );
    sample(
        o,
        "eipd_build_info",
        &[("version", &s.build.version), ("commit", &s.build.commit)],
        1,
    );
    header(
        o,
        "eipd_table_version",
        "gauge",
        "Version of the tables in force.",
    );
    sample(o, "eipd_table_version", &[], s.table_version);
    pipeline(o, s);
    eips(o, s);
    super::acl::hits(o, s);
    paths(o, s);
    workers(o, s);
    out
}

fn pipeline(o: &mut String, s: &MetricsSnapshot) {
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
}

fn eips(o: &mut String, s: &MetricsSnapshot) {
    header(o, "eipd_eips", "gauge", "EIPs in the tables in force.");
    sample(o, "eipd_eips", &[], s.eip_count);
    for (name, help, bytes) in [
        (
            "eipd_eip_packets_total",
            "Packets per EIP (the EIPs chosen by --metrics-eips): in = client to backend, out = backend to client. Resets when the table version changes.",
            false,
        ),
        (
            "eipd_eip_bytes_total",
            "Bytes per EIP (inner packets; the EIPs chosen by --metrics-eips): in = client to backend, out = backend to client. Resets when the table version changes.",
            true,
        ),
    ] {
        header(o, name, "counter", help);
        for eip in &s.eips {
            for (dir, t) in [("in", eip.traffic_in), ("out", eip.traffic_out)] {
                let v = if bytes { t.bytes } else { t.packets };
                sample(o, name, &[("eip", &eip.address), ("direction", dir)], v);
            }
        }
    }
    let name = "eipd_eip_rate_limited_total";
    header(
        o,
        name,
        "counter",
        "Packets per EIP dropped by its rate limits, by direction and cap (bps, pps); only EIPs that dropped some.",
    );
    for eip in s.eips.iter().filter(|e| !e.policed.is_zero()) {
        let p = &eip.policed;
        for (dir, cap, v) in [
            ("in", "bps", p.in_over_bps),
            ("in", "pps", p.in_over_pps),
            ("out", "bps", p.out_over_bps),
            ("out", "pps", p.out_over_pps),
        ] {
            let labels = [
                ("eip", eip.address.as_str()),
                ("direction", dir),
                ("cap", cap),
            ];
            sample(o, name, &labels, v);
        }
    }
}

fn path_labels(p: &PathMetrics) -> [(&str, &str); 2] {
    [("path", &p.name), ("region", &p.region)]
}

fn paths(o: &mut String, s: &MetricsSnapshot) {
    header(
        o,
        "eipd_path_packets_total",
        "counter",
        "Encapsulated packets sent over each backbone path. Resets when the table version changes.",
    );
    for p in &s.paths {
        let name = "eipd_path_packets_total";
        sample(o, name, &path_labels(p), p.traffic.packets);
    }
    header(
        o,
        "eipd_path_bytes_total",
        "counter",
        "Encapsulated bytes (outer) sent over each backbone path. Resets when the table version changes.",
    );
    for p in &s.paths {
        sample(o, "eipd_path_bytes_total", &path_labels(p), p.traffic.bytes);
    }
    header(
        o,
        "eipd_path_up",
        "gauge",
        "1 if the path is up (prober health, else table state), 0 otherwise.",
    );
    for p in &s.paths {
        sample(o, "eipd_path_up", &path_labels(p), u8::from(p.up));
    }

    // The prober's measurements: probed paths only.
    let probed = || s.paths.iter().filter_map(|p| Some((p, p.probe.as_ref()?)));
    header(
        o,
        "eipd_path_probes_sent_total",
        "counter",
        "Probes sent over each probed path since it was first probed.",
    );
    for (p, m) in probed() {
        let name = "eipd_path_probes_sent_total";
        sample(o, name, &path_labels(p), m.counters.sent);
    }
    header(
        o,
        "eipd_path_probes_lost_total",
        "counter",
        "Probes lost (timed out or answered late) on each probed path since it was first probed.",
    );
    for (p, m) in probed() {
        let name = "eipd_path_probes_lost_total";
        sample(o, name, &path_labels(p), m.counters.lost);
    }
    header(
        o,
        "eipd_path_loss_ratio",
        "gauge",
        "Lost probes / probes over the prober's loss window.",
    );
    for (p, m) in probed() {
        sample(o, "eipd_path_loss_ratio", &path_labels(p), m.loss);
    }
    header(
        o,
        "eipd_path_srtt_seconds",
        "gauge",
        "Smoothed probe round-trip time (RFC 6298), what path selection compares.",
    );
    for (p, m) in probed() {
        if let Some(srtt) = m.srtt {
            let name = "eipd_path_srtt_seconds";
            sample(o, name, &path_labels(p), srtt.as_secs_f64());
        }
    }
    header(
        o,
        "eipd_path_rtt_seconds",
        "histogram",
        "Probe round-trip time of every reply in time, since the path was first probed.",
    );
    for (p, m) in probed() {
        histogram(o, "eipd_path_rtt_seconds", &path_labels(p), &m.rtt);
    }
}

fn workers(o: &mut String, s: &MetricsSnapshot) {
    let names = s.workers.first().map_or(&[][..], |w| &w.counters[..]);
    for (i, (field, _)) in names.iter().enumerate() {
        let (metric, in_ns) = counter_family("eipd_worker", field);
        let help = if in_ns {
            format!("AF_XDP worker counter {field}, in seconds, per device queue.")
        } else {
            format!("AF_XDP worker counter {field}, per device queue.")
        };
        header(o, &metric, "counter", &help);
        for w in &s.workers {
            let q = w.queue.to_string();
            let value = w.counters.get(i).map_or(0, |(_, v)| *v);
            if in_ns {
                sample(o, &metric, &[("queue", &q)], seconds(value));
            } else {
                sample(o, &metric, &[("queue", &q)], value);
            }
        }
    }
    let names = s.sockets.first().map_or(&[][..], |k| &k.counters[..]);
    for (i, (field, _)) in names.iter().enumerate() {
        let metric = format!("eipd_xsk_{field}_total");
        header(
            o,
            &metric,
            "counter",
            &format!(
                "AF_XDP socket counter {field} (kernel XDP_STATISTICS), per device queue and port."
            ),
        );
        for k in &s.sockets {
            let q = k.queue.to_string();
            let value = k.counters.get(i).map_or(0, |(_, v)| *v);
            sample(o, &metric, &[("queue", &q), ("port", &k.port)], value);
        }
    }

    super::acl::xdp_dropped(o, s);
    if let Some(dropped) = s.xdp_rate_dropped {
        let name = "eipd_xdp_rate_limited_total";
        header(
            o,
            name,
            "counter",
            "Frames the XDP program dropped before any worker saw them: over an EIP's inbound rate cap (per-queue buckets; per-CPU counters, summed).",
        );
        sample(o, name, &[], dropped);
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
        "histogram",
        "Time the pipeline took per received batch, per worker, since start.",
    );
    for w in &s.workers {
        let q = w.queue.to_string();
        histogram(
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
            seconds(w.latency_max_ns),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::ProbeCounters;
    use crate::metrics::*;
    use eip_dataplane::counters::{Counters, Traffic};
    use std::time::Duration;

    fn snapshot() -> MetricsSnapshot {
        let mut counters = Counters::new(1, 1);
        counters.drop(DropReason::NoPath);
        counters.event(Event::Rx);
        counters.event(Event::Rx);
        let mut slot = LatencySlot::default();
        for v in [1_000, 2_000, 3_000, 1_000_000] {
            slot.hist.record(v).unwrap();
            slot.sum_ns += v;
        }
        let mut rtt = RttHistogram::rtt();
        rtt.record(Duration::from_micros(250));
        rtt.record(Duration::from_millis(3));
        let worker = WorkerMetrics {
            queue: 0,
            counters: vec![("rx_packets", 7), ("tx_packets", 0), ("busy_ns", 1_500)],
            frames: UmemFrames {
                total: 4096,
                free: 100,
                ..Default::default()
            },
            latency: slot.histogram(),
            latency_max_ns: slot.hist.max(),
        };
        let path = |name: &str, probe| PathMetrics {
            name: name.into(),
            region: "eu".into(),
            traffic: Traffic {
                packets: 1,
                bytes: 150,
            },
            up: true,
            probe,
        };
        MetricsSnapshot {
            build: BuildInfo {
                version: "0.1.0".into(),
                commit: "abc1234".into(),
            },
            table_version: 3,
            counters,
            eip_count: 2,
            eips: vec![EipMetrics {
                address: "192.0.2.10".into(),
                traffic_in: Traffic {
                    packets: 1,
                    bytes: 100,
                },
                traffic_out: Traffic::default(),
                policed: Default::default(),
                acl: vec![
                    AclHitMetrics {
                        rule: "0".into(),
                        action: "deny",
                        hits: 5,
                    },
                    AclHitMetrics {
                        rule: "default".into(),
                        action: "allow",
                        hits: 1,
                    },
                ],
            }],
            paths: vec![
                path(
                    "a\"b\\c\nd",
                    Some(ProbeMetrics {
                        srtt: Some(Duration::from_micros(250)),
                        loss: 0.25,
                        counters: ProbeCounters {
                            sent: 8,
                            lost: 2,
                            ..Default::default()
                        },
                        rtt: rtt.metrics(),
                    }),
                ),
                path("static", None),
            ],
            workers: vec![worker],
            xdp_acl_dropped: Some(12),
            xdp_rate_dropped: Some(34),
            sockets: vec![SocketMetrics {
                queue: 0,
                port: "uplink".into(),
                counters: vec![("rx_fill_ring_empty_descs", 4)],
            }],
        }
    }

    #[test]
    fn renders_exact_lines() {
        let text = render(&snapshot());
        let lines: Vec<&str> = text.lines().collect();
        let p = "path=\"a\\\"b\\\\c\\nd\",region=\"eu\"";
        for want in [
            "# TYPE eipd_build_info gauge".to_string(),
            "eipd_build_info{version=\"0.1.0\",commit=\"abc1234\"} 1".into(),
            "# HELP eipd_table_version Version of the tables in force.".into(),
            "# TYPE eipd_table_version gauge".into(),
            "eipd_table_version 3".into(),
            "# TYPE eipd_drops_total counter".into(),
            "eipd_drops_total{reason=\"no_path\"} 1".into(),
            "eipd_drops_total{reason=\"truncated\"} 0".into(),
            "eipd_events_total{event=\"rx\"} 2".into(),
            "eipd_eips 2".into(),
            "eipd_eip_packets_total{eip=\"192.0.2.10\",direction=\"in\"} 1".into(),
            "eipd_eip_packets_total{eip=\"192.0.2.10\",direction=\"out\"} 0".into(),
            "eipd_eip_bytes_total{eip=\"192.0.2.10\",direction=\"in\"} 100".into(),
            "# TYPE eipd_acl_hits_total counter".into(),
            "eipd_acl_hits_total{eip=\"192.0.2.10\",rule=\"0\",action=\"deny\"} 5".into(),
            "eipd_acl_hits_total{eip=\"192.0.2.10\",rule=\"default\",action=\"allow\"} 1".into(),
            format!("eipd_path_packets_total{{{p}}} 1"),
            format!("eipd_path_bytes_total{{{p}}} 150"),
            format!("eipd_path_up{{{p}}} 1"),
            "eipd_path_up{path=\"static\",region=\"eu\"} 1".into(),
            format!("eipd_path_probes_sent_total{{{p}}} 8"),
            format!("eipd_path_probes_lost_total{{{p}}} 2"),
            format!("eipd_path_loss_ratio{{{p}}} 0.25"),
            format!("eipd_path_srtt_seconds{{{p}}} 0.00025"),
            "# TYPE eipd_path_rtt_seconds histogram".into(),
            format!("eipd_path_rtt_seconds_bucket{{{p},le=\"0.0001\"}} 0"),
            format!("eipd_path_rtt_seconds_bucket{{{p},le=\"0.00025\"}} 1"),
            format!("eipd_path_rtt_seconds_bucket{{{p},le=\"0.0025\"}} 1"),
            format!("eipd_path_rtt_seconds_bucket{{{p},le=\"0.005\"}} 2"),
            format!("eipd_path_rtt_seconds_bucket{{{p},le=\"1\"}} 2"),
            format!("eipd_path_rtt_seconds_bucket{{{p},le=\"+Inf\"}} 2"),
            format!("eipd_path_rtt_seconds_sum{{{p}}} 0.00325"),
            format!("eipd_path_rtt_seconds_count{{{p}}} 2"),
            "# TYPE eipd_worker_rx_packets_total counter".into(),
            "eipd_worker_rx_packets_total{queue=\"0\"} 7".into(),
            "eipd_worker_tx_packets_total{queue=\"0\"} 0".into(),
            "# TYPE eipd_worker_busy_seconds_total counter".into(),
            "eipd_worker_busy_seconds_total{queue=\"0\"} 0.0000015".into(),
            "# TYPE eipd_xsk_rx_fill_ring_empty_descs_total counter".into(),
            "eipd_xsk_rx_fill_ring_empty_descs_total{queue=\"0\",port=\"uplink\"} 4".into(),
            "eipd_umem_frames{queue=\"0\",state=\"total\"} 4096".into(),
            "# TYPE eipd_xdp_acl_dropped_total counter".into(),
            "eipd_xdp_acl_dropped_total 12".into(),
            "# TYPE eipd_xdp_rate_limited_total counter".into(),
            "eipd_xdp_rate_limited_total 34".into(),
            "eipd_umem_frames{queue=\"0\",state=\"free\"} 100".into(),
            "# TYPE eipd_batch_latency_seconds histogram".into(),
            "eipd_batch_latency_seconds_bucket{queue=\"0\",le=\"0.0000005\"} 0".into(),
            // 1 us sits in the HDR bucket 1000..=1003 ns: not counted at 1 us.
            "eipd_batch_latency_seconds_bucket{queue=\"0\",le=\"0.000001\"} 0".into(),
            "eipd_batch_latency_seconds_bucket{queue=\"0\",le=\"0.000002\"} 1".into(),
            "eipd_batch_latency_seconds_bucket{queue=\"0\",le=\"0.000005\"} 3".into(),
            "eipd_batch_latency_seconds_bucket{queue=\"0\",le=\"0.001\"} 3".into(),
            "eipd_batch_latency_seconds_bucket{queue=\"0\",le=\"0.002\"} 4".into(),
            "eipd_batch_latency_seconds_bucket{queue=\"0\",le=\"+Inf\"} 4".into(),
            "eipd_batch_latency_seconds_count{queue=\"0\"} 4".into(),
            "eipd_batch_latency_seconds_sum{queue=\"0\"} 0.001006".into(),
        ] {
            assert!(
                lines.contains(&want.as_str()),
                "missing {want:?} in\n{text}"
            );
        }
        // Unprobed paths have no probe series; nothing is shown in ns.
        assert!(!lines.iter().any(|l| l.starts_with("eipd_path_")
            && l.contains("static")
            && !l.starts_with("eipd_path_up")
            && !l.contains("_packets_")
            && !l.contains("_bytes_")));
        assert!(!lines
            .iter()
            .any(|l| !l.starts_with('#') && l.split('{').next().unwrap().contains("_ns")));
        // The max sees the 1 ms batch (2 significant digits).
        let max = lines
            .iter()
            .find(|l| l.starts_with("eipd_batch_latency_max_seconds{queue=\"0\"}"))
            .unwrap();
        let v: f64 = max.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((0.00099..=0.00101).contains(&v), "{max}");
        // Every sample line belongs to a family with HELP and TYPE lines.
        for l in lines.iter().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    text.contains(&format!("# TYPE {base} histogram"))
                        .then_some(base)
                })
                .unwrap_or(name);
            assert!(
                text.contains(&format!("# TYPE {family} "))
                    && text.contains(&format!("# HELP {family} ")),
                "no HELP/TYPE for {l}"
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
