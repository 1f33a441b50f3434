//! Text forms of replies, for terminals.

use eip_control::api::{Data, PathView, Reply, TraceEnd};
use eip_dataplane::tables::spec::EipSpec;
use eip_dataplane::tables::PathState;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write;
use std::net::IpAddr;

/// A successful reply as text; errors are printed by the caller.
pub fn reply(reply: &Reply) -> String {
    match &reply.data {
        None => format!("ok (table version {})\n", reply.version),
        Some(Data::Tables { summary }) => tables(summary),
        Some(Data::Paths { paths: p }) => paths(p),
        Some(Data::Eips { eips: e }) => eips(e),
        Some(Data::Spec { spec }) => match toml::to_string(spec) {
            Ok(toml) => format!("# table version {}\n{toml}", reply.version),
            Err(e) => format!("cannot show the spec as TOML ({e}); use --json\n"),
        },
        Some(Data::Stats { stats: s }) => stats(s),
        Some(Data::Applied {
            previous_version,
            changes,
            unchanged,
        }) => {
            if *unchanged {
                format!("no change: table version stays {previous_version}\n")
            } else {
                format!(
                    "applied {changes} change{}: table version {previous_version} -> {}, in force on every worker\n",
                    plural(*changes),
                    reply.version
                )
            }
        }
        Some(Data::Validated {
            changes,
            unchanged,
            would_be_version,
            summary,
        }) => {
            let head = if *unchanged {
                format!(
                    "valid: the {changes} change{} would change nothing\n",
                    plural(*changes)
                )
            } else {
                format!(
                    "valid: {changes} change{} would make table version {would_be_version} (nothing applied)\n",
                    plural(*changes)
                )
            };
            head + &tables(summary)
        }
        Some(Data::Trace(t)) => {
            let lost = if t.lost > 0 {
                format!(
                    "; {} matching frame{} lost (the daemon could not keep up)",
                    t.lost,
                    plural(t.lost as usize)
                )
            } else {
                String::new()
            };
            format!(
                "wrote {} frame{} to {} in {:.1} s (ended by {}){lost}\n",
                t.written,
                plural(t.written as usize),
                t.file.display(),
                t.elapsed_ms as f64 / 1000.0,
                match t.ended {
                    TraceEnd::Count => "count",
                    TraceEnd::Time => "time",
                    TraceEnd::Shutdown => "daemon shutdown",
                }
            )
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn list(v: &Value) -> String {
    let items: Vec<String> = v.as_array().into_iter().flatten().map(s).collect();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// `report::summary_json` as text.
pub fn tables(summary: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pop {}, table version {}",
        s(&summary["pop"]),
        u(&summary["table_version"])
    );
    let ports: Vec<String> = summary["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{} ({})", s(&p["name"]), s(&p["role"])))
        .collect();
    let _ = writeln!(out, "  ports:    {}", ports.join(", "));
    for r in summary["regions"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  region {}: vni {}, vtep {}, paths: {}, usable: {}{}",
            s(&r["name"]),
            u(&r["vni"]),
            s(&r["vtep"]),
            list(&r["paths"]),
            list(&r["usable_paths"]),
            if r["panic"] == Value::Bool(true) {
                " (no path up: using paths that are down)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        out,
        "  eips:     {} ({} services, {} service backends)",
        u(&summary["eips"]),
        u(&summary["services"]),
        u(&summary["backends"])
    );
    let _ = writeln!(
        out,
        "  memory:   {} KiB of tables",
        u(&summary["table_bytes"]) / 1024
    );
    out
}

fn state(state: PathState) -> &'static str {
    match state {
        PathState::Up => "up",
        PathState::Down => "down",
        PathState::Disabled => "disabled",
    }
}

fn micros(v: &Value) -> String {
    match v.as_f64() {
        Some(us) if us >= 10_000.0 => format!("{:.0}ms", us / 1000.0),
        Some(us) => format!("{:.2}ms", us / 1000.0),
        None => "-".into(),
    }
}

/// `show_paths` as a table.
pub fn paths(paths: &[PathView]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<12} {:<10} {:<9} {:>6} {:>5} {:<7} {:>8} {:>8} {:>6}",
        "NAME", "REGION", "PORT", "STATE", "WEIGHT", "MTU", "USABLE", "SRTT", "P99", "LOSS"
    );
    for p in paths {
        let h = p.health.as_ref();
        let field = |k: &str| h.map(|h| micros(&h[k])).unwrap_or_else(|| "-".into());
        let loss = h
            .and_then(|h| h["loss"].as_f64())
            .map_or_else(|| "-".into(), |l| format!("{:.1}%", l * 100.0));
        let usable = match (p.usable, p.region_panic) {
            (true, true) => "panic",
            (true, false) => "yes",
            (false, _) => "no",
        };
        let _ = writeln!(
            out,
            "{:<20} {:<12} {:<10} {:<9} {:>6} {:>5} {:<7} {:>8} {:>8} {:>6}",
            p.spec.name,
            p.spec.region,
            p.spec.port,
            state(p.spec.state),
            p.spec.weight,
            p.spec.mtu,
            usable,
            field("srtt_us"),
            field("p99_us"),
            loss
        );
    }
    out
}

fn endpoint(address: IpAddr, port: u16) -> String {
    match address {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// `show_eips`: one line per EIP, one per service under it.
pub fn eips(eips: &[EipSpec]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<28} {:<12} {:<28} {:>8}",
        "ADDRESS", "REGION", "BACKEND", "SERVICES"
    );
    for e in eips {
        let backend = e.backend.map_or_else(|| "-".into(), |b| b.to_string());
        let _ = writeln!(
            out,
            "{:<28} {:<12} {:<28} {:>8}",
            e.address.to_string(),
            e.region,
            backend,
            e.services.len()
        );
        for svc in &e.services {
            let members: Vec<String> = svc
                .backends
                .iter()
                .map(|b| {
                    let w = if b.weight == 0 {
                        " drained".to_string()
                    } else {
                        format!(" w{}", b.weight)
                    };
                    endpoint(b.address, b.port.unwrap_or(svc.port)) + &w
                })
                .collect();
            let proto = format!("{:?}", svc.protocol).to_lowercase();
            let _ = writeln!(out, "    {proto}/{} -> {}", svc.port, members.join(", "));
        }
    }
    out
}

/// `stats` as text: non-zero events and drops, per-EIP and per-path traffic.
pub fn stats(stats: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "table version {}", u(&stats["table_version"]));
    for section in ["events", "drops"] {
        let nonzero: Vec<(&String, u64)> = stats[section]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k, u(v)))
            .filter(|(_, v)| *v > 0)
            .collect();
        let _ = writeln!(
            out,
            "{section}:{}",
            if nonzero.is_empty() { " none" } else { "" }
        );
        for (k, v) in nonzero {
            let _ = writeln!(out, "  {k:<28} {v:>14}");
        }
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
        let _ = writeln!(out, "runtime: {runtime}");
    }
    out
}

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
        let _ = writeln!(
            out,
            "table version {version}   drops total {drops}{}",
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
                state(p.spec.state),
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
}
