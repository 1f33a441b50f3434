//! Text forms of replies, for terminals.

mod acl;
mod explain;
mod stats;
mod watch;

pub use stats::stats;
pub use watch::Watch;

use eip_control::api::{Admin, Data, PathView, Reply, TraceEnd};
use eip_dataplane::tables::spec::EipSpec;
use eip_dataplane::tables::PathState;
use serde_json::Value;
use std::fmt::Write;
use std::net::IpAddr;

/// A successful reply as text; errors are printed by the caller.
pub fn reply(reply: &Reply) -> String {
    match &reply.data {
        None => format!("ok (table version {})\n", reply.version),
        Some(Data::Tables { summary }) => tables(summary),
        Some(Data::Paths { paths: p }) => paths(p),
        Some(Data::Eips { eips: e }) => eips(e),
        Some(Data::Acl { address, acl: a, hits }) => acl::acl(*address, a.as_ref(), hits),
        Some(Data::Spec { spec }) => match toml::to_string(spec) {
            Ok(toml) => format!("# table version {}\n{toml}", reply.version),
            Err(e) => format!("cannot show the spec as TOML ({e}); use --json\n"),
        },
        Some(Data::Stats { stats: s }) => stats(s),
        Some(Data::Explain { explain: x }) => explain::explanation(x, reply.version),
        Some(Data::Applied {
            previous_version,
            changes,
            unchanged,
            blackholed,
        }) => {
            let mut out = if *unchanged {
                format!("no change: table version stays {previous_version}\n")
            } else {
                format!(
                    "applied {changes} change{}: table version {previous_version} -> {}, in force on every worker\n",
                    plural(*changes),
                    reply.version
                )
            };
            if !blackholed.is_empty() {
                let list: Vec<String> = blackholed.iter().map(|a| a.to_string()).collect();
                out.push_str(&format!(
                    "blackholed (no usable path to their region): {}\n",
                    list.join(", ")
                ));
            }
            out
        }
        Some(Data::Reloaded {
            file,
            previous_version,
            unchanged,
            dry_run,
            diff,
            warnings,
        }) => {
            let mut out = if *unchanged {
                format!("{file}: no change: table version stays {previous_version}\n")
            } else if *dry_run {
                format!(
                    "{file}: would change {diff} (valid; nothing applied, table version stays {previous_version})\n"
                )
            } else {
                format!(
                    "{file}: {diff}: table version {previous_version} -> {}, in force on every worker\n",
                    reply.version
                )
            };
            for w in warnings {
                out.push_str(&format!("warning: {w}\n"));
            }
            out
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
        Some(Data::Bgp { bgp }) => bgp_status(bgp),
        Some(Data::Draining { wait_ms }) => format!(
            "draining: announced with GRACEFUL_SHUTDOWN for {wait_ms} ms while forwarding, then withdrawn; the daemon stops after\n"
        ),
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
        "{:<20} {:<12} {:<10} {:<9} {:<7} {:>6} {:>5} {:<7} {:>8} {:>8} {:>6}",
        "NAME",
        "REGION",
        "PORT",
        "ADMIN",
        "HEALTH",
        "WEIGHT",
        "MTU",
        "USABLE",
        "SRTT",
        "P99",
        "LOSS"
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
            "{:<20} {:<12} {:<10} {:<9} {:<7} {:>6} {:>5} {:<7} {:>8} {:>8} {:>6}",
            p.spec.name,
            p.spec.region,
            p.spec.port,
            match p.admin {
                Admin::Enabled => "enabled",
                Admin::Disabled => "disabled",
            },
            p.observed.map_or("-", state),
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
            if let Some(c) = &svc.check {
                let _ = writeln!(out, "        check: {}", c.describe());
            }
        }
        if let Some(c) = e.check() {
            let _ = writeln!(out, "    check: {}", c.describe());
        }
        if let Some(l) = e.limits() {
            let _ = writeln!(out, "    limits: {l}");
        }
        if let Some(a) = e.acl() {
            let _ = writeln!(
                out,
                "    acl: {} rule{}, default {} (eipctl show acl {})",
                a.rules.len(),
                plural(a.rules.len()),
                a.default.label(),
                e.address
            );
        }
    }
    out
}

/// `show bgp`: the speaker, each session, each prefix and why it is not announced.
fn bgp_status(b: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "speaker: BIRD {}{}, {} restart{}{}",
        s(&b["speaker"]),
        b["speaker_pid"]
            .as_u64()
            .map_or(String::new(), |p| format!(" (pid {p})")),
        u(&b["speaker_restarts"]),
        plural(u(&b["speaker_restarts"]) as usize),
        if b["draining"].as_bool() == Some(true) {
            "; DRAINING"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "{:<28} {:>8} {:<4} {:<6} info",
        "neighbor", "AS", "BFD", "state"
    );
    for n in b["sessions"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<28} {:>8} {:<4} {:<6} {}",
            s(&n["neighbor"]),
            u(&n["remote_as"]),
            if n["bfd"].as_bool() == Some(true) {
                "on"
            } else {
                "off"
            },
            s(&n["state"]),
            s(&n["info"])
        );
    }
    let _ = writeln!(
        out,
        "{:<28} {:<22} why not announced ({} announce{}, {} withdraw{} so far)",
        "prefix",
        "announced",
        u(&b["announces"]),
        plural(u(&b["announces"]) as usize),
        u(&b["withdraws"]),
        plural(u(&b["withdraws"]) as usize)
    );
    for p in b["prefixes"].as_array().into_iter().flatten() {
        let state = match (p["announced"].as_bool(), p["draining"].as_bool()) {
            (Some(true), Some(true)) => "yes (GRACEFUL_SHUTDOWN)",
            (Some(true), _) => "yes",
            _ => "no",
        };
        let _ = writeln!(
            out,
            "{:<28} {:<22} {}",
            s(&p["prefix"]),
            state,
            s(&p["closed"])
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn show_eips_names_each_check_and_its_kind() {
        let eip: EipSpec = toml::from_str(
            r#"
address = "192.0.2.20"
region = "beijing"
check = { kind = "icmp" }
[[services]]
protocol = "tcp"
port = 80
backends = [ { address = "10.1.0.20" } ]
check = { kind = "http", path = "/healthz", expect = "200-299", interval_ms = 100, timeout_ms = 200 }
"#,
        )
        .unwrap();
        let text = eips(&[eip]);
        assert!(
            text.contains(
                "    tcp/80 -> 10.1.0.20:80 w1\n        check: http GET /healthz expect 200-299, \
                 every 100 ms, timeout 200 ms, down after 3, up after 2\n"
            ),
            "{text}"
        );
        assert!(text.contains("\n    check: icmp, every 1000 ms"), "{text}");
    }

    #[test]
    fn show_bgp_names_each_session_and_why_a_prefix_is_not_announced() {
        let status = json!({
            "speaker": "running", "speaker_pid": 42, "speaker_restarts": 1, "draining": false,
            "announces": 1, "withdraws": 1,
            "sessions": [{ "neighbor": "203.0.113.9", "remote_as": 64496, "bfd": true,
                           "protocol": "eip_n_203_0_113_9", "state": "up", "info": "Established" }],
            "prefixes": [
                { "prefix": "192.0.2.0/24", "announced": false, "draining": false,
                  "closed": "region beijing: none of its 1 backbone path(s) is measured up" },
                { "prefix": "198.51.100.0/24", "announced": true, "draining": true, "closed": "the POP is draining" },
            ],
        });
        let text = bgp_status(&status);
        assert!(
            text.starts_with("speaker: BIRD running (pid 42), 1 restart\n"),
            "{text}"
        );
        assert!(
            text.contains("203.0.113.9                     64496 on   up     Established\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "192.0.2.0/24                 no                     region beijing: none"
            ),
            "{text}"
        );
        assert!(
            text.contains("198.51.100.0/24              yes (GRACEFUL_SHUTDOWN)"),
            "{text}"
        );
    }
}
