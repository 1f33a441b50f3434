//! `eipctl watch`: successive `stats` and `show_paths` replies as frames with
//! rates.

use super::stats::DRIVER_DROPS;
use super::{micros, s, state, u};
use eip_control::api::{Admin, PathView};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write;

/// Packets and bytes of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sample {
    packets: u64,
    bytes: u64,
}

impl Sample {
    fn of(v: &Value) -> Sample {
        Sample {
            packets: u(&v["packets"]),
            bytes: u(&v["bytes"]),
        }
    }
}

/// Rates between two samples; `None` when a counter went backwards (daemon
/// restart, or counters re-indexed by a table change).
fn rate(now: Sample, before: Option<Sample>, seconds: f64) -> Rate {
    let before = before?;
    if seconds <= 0.0 || now.packets < before.packets || now.bytes < before.bytes {
        return None;
    }
    Some((
        (now.packets - before.packets) as f64 / seconds,
        (now.bytes - before.bytes) as f64 * 8.0 / seconds,
    ))
}

fn si(value: f64, unit: &str) -> String {
    let (v, prefix) = match value {
        v if v >= 1e9 => (v / 1e9, "G"),
        v if v >= 1e6 => (v / 1e6, "M"),
        v if v >= 1e3 => (v / 1e3, "k"),
        v => (v, ""),
    };
    format!("{v:.1}{prefix}{unit}")
}

fn rates(r: Rate) -> (String, String) {
    match r {
        Some((pps, bps)) => (si(pps, "pps"), si(bps, "bps")),
        None => ("-".into(), "-".into()),
    }
}

/// Packets and bits per second, when known.
type Rate = Option<(f64, f64)>;

/// What the previous frame saw.
#[derive(Debug, Default)]
struct Previous {
    /// Daemon clock.
    at_ms: u64,
    /// Per EIP address: (in, out).
    eips: HashMap<String, (Sample, Sample)>,
    /// Per path name.
    paths: HashMap<String, Sample>,
}

/// `eipctl watch`: turns successive `stats` and `show_paths` replies into
/// frames with rates.
#[derive(Debug, Default)]
pub struct Watch {
    previous: Option<Previous>,
    /// Rows of EIPs shown (busiest first).
    pub top: usize,
}

impl Watch {
    pub fn new(top: usize) -> Self {
        Watch {
            previous: None,
            top,
        }
    }

    /// One frame. `stats` is `None` when the daemon has no counters.
    pub fn frame(&mut self, version: u64, paths: &[PathView], stats: Option<&Value>) -> String {
        let mut out = String::new();
        let empty = Value::Null;
        let stats_v = stats.unwrap_or(&empty);
        let now_ms = u(&stats_v["elapsed_ms"]);
        let eip_now: HashMap<String, (Sample, Sample)> = stats_v["eips"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    s(&e["address"]),
                    (Sample::of(&e["in"]), Sample::of(&e["out"])),
                )
            })
            .collect();
        let path_now: HashMap<String, Sample> = stats_v["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| (s(&p["name"]), Sample::of(&p["traffic"])))
            .collect();
        let (seconds, eip_before, path_before) = match &self.previous {
            Some(p) => (
                now_ms.saturating_sub(p.at_ms) as f64 / 1000.0,
                Some(&p.eips),
                Some(&p.paths),
            ),
            None => (0.0, None, None),
        };
        let drops: u64 = stats_v["drops"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, v)| u(v))
            .sum();
        let runtime = &stats_v["runtime"];
        let driver_drops: u64 = DRIVER_DROPS
            .iter()
            .filter(|k| **k != "stalls")
            .map(|k| u(&runtime["driver"][*k]))
            .sum::<u64>()
            + runtime["sockets"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| k.as_str() != "tx_ring_empty_descs")
                .map(|(_, v)| u(v))
                .sum::<u64>();
        let _ = writeln!(
            out,
            "table version {version}   drops total {drops}   driver/socket drops {driver_drops}{}",
            if stats.is_none() {
                "   (no counters from this daemon)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "\n{:<20} {:<12} {:<9} {:<7} {:>8} {:>8} {:>6} {:>11} {:>11}",
            "PATH", "REGION", "STATE", "USABLE", "SRTT", "P99", "LOSS", "PPS", "BPS"
        );
        for p in paths {
            let h = p.health.as_ref();
            let field = |k: &str| h.map(|h| micros(&h[k])).unwrap_or_else(|| "-".into());
            let loss = h
                .and_then(|h| h["loss"].as_f64())
                .map_or_else(|| "-".into(), |l| format!("{:.1}%", l * 100.0));
            let now = path_now.get(&p.spec.name).copied().unwrap_or_default();
            let before = path_before.and_then(|b| b.get(&p.spec.name).copied());
            let (pps, bps) = rates(rate(now, before, seconds));
            let usable = match (p.usable, p.region_panic) {
                (true, true) => "panic",
                (true, false) => "yes",
                (false, _) => "no",
            };
            let _ = writeln!(
                out,
                "{:<20} {:<12} {:<9} {:<7} {:>8} {:>8} {:>6} {:>11} {:>11}",
                p.spec.name,
                p.spec.region,
                // What the operator said, else what the prober measured.
                match p.admin {
                    Admin::Disabled => "disabled",
                    Admin::Enabled => p.observed.map_or("up", state),
                },
                usable,
                field("srtt_us"),
                field("p99_us"),
                loss,
                pps,
                bps
            );
        }
        let mut rows: Vec<(String, Rate, Rate)> = eip_now
            .iter()
            .map(|(address, (tin, tout))| {
                let before = eip_before.and_then(|b| b.get(address).copied());
                (
                    address.clone(),
                    rate(*tin, before.map(|b| b.0), seconds),
                    rate(*tout, before.map(|b| b.1), seconds),
                )
            })
            .collect();
        let key = |r: &(String, Rate, Rate)| r.1.map_or(0.0, |x| x.1) + r.2.map_or(0.0, |x| x.1);
        rows.sort_by(|a, b| key(b).total_cmp(&key(a)).then_with(|| a.0.cmp(&b.0)));
        let _ = writeln!(
            out,
            "\n{:<28} {:>11} {:>11} {:>11} {:>11}",
            "EIP (busiest first)", "IN PPS", "IN BPS", "OUT PPS", "OUT BPS"
        );
        for (address, rin, rout) in rows.iter().take(self.top) {
            let (ipps, ibps) = rates(*rin);
            let (opps, obps) = rates(*rout);
            let _ = writeln!(
                out,
                "{address:<28} {ipps:>11} {ibps:>11} {opps:>11} {obps:>11}"
            );
        }
        if rows.len() > self.top {
            let _ = writeln!(out, "... {} more EIPs with traffic", rows.len() - self.top);
        }
        if stats.is_some() {
            self.previous = Some(Previous {
                at_ms: now_ms,
                eips: eip_now,
                paths: path_now,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn watch_computes_rates_between_frames() {
        let mut w = Watch::new(10);
        let stats = |ms: u64, pkts: u64| {
            json!({
                "elapsed_ms": ms,
                "drops": {"no_path": 1},
                "eips": [{"address": "192.0.2.1", "in": {"packets": pkts, "bytes": pkts * 100}, "out": {"packets": 0, "bytes": 0}}],
                "paths": [],
            })
        };
        let first = w.frame(3, &[], Some(&stats(1000, 10)));
        assert!(
            first.contains("192.0.2.1") && first.contains(" - "),
            "{first}"
        );
        let second = w.frame(3, &[], Some(&stats(2000, 1010)));
        // 1000 packets in 1 s, 100 kB = 800 kbit.
        assert!(
            second.contains("1.0kpps") && second.contains("800.0kbps"),
            "{second}"
        );
        // Counters going backwards give no rate rather than a huge one.
        let third = w.frame(3, &[], Some(&stats(3000, 5)));
        assert!(!third.contains("kpps"), "{third}");
    }

    #[test]
    fn stats_show_the_daemons_own_drops() {
        let stats = json!({
            "events": {}, "drops": {},
            "runtime": {
                "driver": {"tx_ring_full": 7, "rx_packets": 100, "stalls": 0},
                "sockets": {"rx_fill_ring_empty_descs": 6500000, "rx_dropped": 0},
            },
        });
        let text = super::super::stats(&stats);
        assert!(text.contains("drops: none"), "{text}");
        assert!(text.contains("driver drops:\n  tx_ring_full"), "{text}");
        assert!(!text.contains("rx_packets"), "{text}");
        assert!(
            text.contains("rx_fill_ring_empty_descs") && text.contains("6500000"),
            "{text}"
        );
        let mut w = Watch::new(10);
        let frame = w.frame(1, &[], Some(&stats));
        assert!(frame.contains("driver/socket drops 6500007"), "{frame}");
    }
}
