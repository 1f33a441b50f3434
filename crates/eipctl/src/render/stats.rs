//! `stats` as text, including the daemon's own drops (driver, kernel sockets).

use super::{s, u};
use serde_json::Value;
use std::fmt::Write;

/// `stats` as text: non-zero events and drops, per-EIP and per-path traffic.
pub fn stats(stats: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "table version {}", u(&stats["table_version"]));
    for section in ["events", "drops"] {
        let counters = stats[section].as_object().into_iter().flatten();
        nonzero_section(&mut out, section, counters.map(|(k, v)| (k.as_str(), u(v))));
    }
    let eips = stats["eips"].as_array().map_or(&[][..], |v| v.as_slice());
    if !eips.is_empty() {
        let _ = writeln!(
            out,
            "eips:\n  {:<28} {:>12} {:>14} {:>12} {:>14}",
            "ADDRESS", "IN PKTS", "IN BYTES", "OUT PKTS", "OUT BYTES"
        );
        for e in eips {
            let _ = writeln!(
                out,
                "  {:<28} {:>12} {:>14} {:>12} {:>14}",
                s(&e["address"]),
                u(&e["in"]["packets"]),
                u(&e["in"]["bytes"]),
                u(&e["out"]["packets"]),
                u(&e["out"]["bytes"])
            );
        }
    }
    let paths = stats["paths"].as_array().map_or(&[][..], |v| v.as_slice());
    if !paths.is_empty() {
        let _ = writeln!(
            out,
            "paths:\n  {:<20} {:>12} {:>14}",
            "NAME", "PACKETS", "BYTES"
        );
        for p in paths {
            let _ = writeln!(
                out,
                "  {:<20} {:>12} {:>14}",
                s(&p["name"]),
                u(&p["traffic"]["packets"]),
                u(&p["traffic"]["bytes"])
            );
        }
    }
    if let Some(runtime) = stats.get("runtime") {
        runtime_drops(&mut out, runtime);
    }
    out
}

/// Driver counters that mean a frame was lost or the worker fell behind.
pub(super) const DRIVER_DROPS: &[&str] = &[
    "tx_ring_full",
    "free_list_empty",
    "to_control_dropped",
    "inject_no_frame",
    "inject_ring_full",
    "tx_no_port",
    "tx_invalid",
    "inject_no_port",
    "rx_invalid",
    "completion_invalid",
    "to_kernel",
    "stalls",
];

/// The daemon's own drops (AF_XDP driver, kernel sockets): an overloaded POP
/// shows here, not in the pipeline's drop reasons.
fn runtime_drops(out: &mut String, runtime: &Value) {
    let u = |v: &Value| v.as_u64().unwrap_or(0);
    let driver = DRIVER_DROPS.iter().map(|k| (*k, u(&runtime["driver"][*k])));
    nonzero_section(out, "driver drops", driver);
    let sockets = runtime["sockets"].as_object().into_iter().flatten();
    nonzero_section(
        out,
        "kernel socket drops",
        sockets.map(|(k, v)| (k.as_str(), u(v))),
    );
}

/// `title:` and its non-zero counters one per line, or `title: none`.
fn nonzero_section<'a>(
    out: &mut String,
    title: &str,
    counters: impl Iterator<Item = (&'a str, u64)>,
) {
    let nonzero: Vec<(&str, u64)> = counters.filter(|(_, v)| *v > 0).collect();
    let _ = writeln!(
        out,
        "{title}:{}",
        if nonzero.is_empty() { " none" } else { "" }
    );
    for (k, v) in nonzero {
        let _ = writeln!(out, "  {k:<28} {v:>14}");
    }
}
