//! `explain` as text: the flow, then one labelled line per fact.

use eip_control::api::{Endpoint, Explain, Explanation, FlowProtocol, SizeResult};
use eip_dataplane::tables::{PathState, Protocol};
use std::fmt::Write;
use std::net::IpAddr;

/// `explain`'s answer, for the tables of `version`.
pub fn explanation(x: &Explanation, version: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}, table version {version}", flow(&x.flow));
    let mut line = |label: &str, text: String| {
        let _ = writeln!(out, "  {label:<9} {text}");
    };
    line("verdict", x.summary.clone());
    if let Some(e) = &x.eip {
        let mut text = format!("{}, region {}", e.address, e.region);
        if let Some(b) = e.backend {
            let _ = write!(text, ", 1:1 backend {b}");
        }
        if e.services > 0 {
            let _ = write!(
                text,
                ", {} service{}",
                e.services,
                if e.services == 1 { "" } else { "s" }
            );
        }
        line("eip", text);
    }
    if let Some(s) = &x.service {
        let proto = match s.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        line(
            "service",
            format!(
                "{proto}/{}: Maglev slot {} of {} -> pool member {} of {} (weight {})",
                s.port,
                s.slot,
                s.slots,
                s.pick + 1,
                s.pool,
                s.weight
            ),
        );
    }
    if let Some(b) = x.backend {
        line("backend", endpoint(b));
    }
    if let Some(t) = &x.tunnel {
        line("region", format!("{}, VNI {}", t.region, t.vni));
        let state = match (t.path_state, t.region_panic) {
            (PathState::Up, _) => "up",
            (PathState::Down, true) => "down, used because no path of the region is up",
            (PathState::Down, false) => "down",
            (PathState::Disabled, _) => "disabled",
        };
        line("path", format!("{} ({state}), port {}", t.path, t.port));
        line(
            "outer",
            format!(
                "{} -> {} (remote VTEP), UDP source port {}, next hop {}",
                t.source, t.remote_vtep, t.udp_source_port, t.next_hop_mac
            ),
        );
    }
    if let Some(m) = &x.mtu {
        line(
            "mtu",
            format!(
                "path MTU {}: inner packets up to {} bytes pass",
                m.path_mtu, m.largest_inner
            ),
        );
        if let Some(mss) = m.mss {
            let what = if mss.leaves < mss.sent {
                format!("SYN MSS {} is clamped to {}", mss.sent, mss.leaves)
            } else {
                format!("SYN MSS {} leaves unchanged", mss.sent)
            };
            line(
                "mss",
                format!("{what} (a larger MSS is clamped to {})", mss.clamp),
            );
        }
        for c in &m.checks {
            let df = if c.dont_frag { "DF" } else { "no DF" };
            let result = match &c.result {
                SizeResult::Passes => "passes".to_string(),
                SizeResult::TooBig { mtu } => {
                    format!("ICMP too big sent back (MTU {mtu})")
                }
                SizeResult::Dropped { reason } if reason == "too_big" && !c.dont_frag => {
                    "dropped (too_big): the POP does not fragment".to_string()
                }
                SizeResult::Dropped { reason } => format!("dropped ({reason})"),
            };
            line("size", format!("{} bytes, {df}: {result}", c.size));
        }
    }
    out
}

/// `tcp 198.51.100.7:40000 -> 192.0.2.20:80`, `icmp echo A -> B, identifier 1`.
fn flow(f: &Explain) -> String {
    let at = |address: IpAddr, port: Option<u16>| endpoint(Endpoint { address, port });
    match f.protocol {
        FlowProtocol::Icmp => format!(
            "icmp echo {} -> {}, identifier {}",
            f.src,
            f.dst,
            f.ident.unwrap_or_default()
        ),
        p => {
            let mut text = format!(
                "{} {} -> {}",
                p.as_str(),
                at(f.src, f.src_port),
                at(f.dst, f.dst_port)
            );
            if let Some(mss) = f.mss {
                let _ = write!(text, " (SYN, MSS {mss})");
            }
            text
        }
    }
}

fn endpoint(e: Endpoint) -> String {
    match (e.address, e.port) {
        (a, None) => a.to_string(),
        (IpAddr::V4(a), Some(p)) => format!("{a}:{p}"),
        (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
    }
}
