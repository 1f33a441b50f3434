//! The BGP task's series, appended to the metrics listener's page
//! (Prometheus text format; names under `eipd_bgp_`, documented in
//! `docs/metrics.md`).

use super::BgpStatus;
use std::fmt::Write;

/// The series of `status` as Prometheus text.
pub fn render(status: &BgpStatus) -> String {
    let mut out = String::new();
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        &mut out,
        "eipd_bgp_transitions_total",
        "counter",
        "Announcements and withdrawals of each prefix (the log says why each happened).",
    );
    for p in &status.prefixes {
        for (kind, n) in [("announce", p.announces), ("withdraw", p.withdraws)] {
            let _ = writeln!(
                out,
                "eipd_bgp_transitions_total{{prefix=\"{}\",transition=\"{kind}\"}} {n}",
                p.prefix
            );
        }
    }
    family(
        &mut out,
        "eipd_bgp_prefix_announced",
        "gauge",
        "1 while the prefix is announced (also while draining), else 0.",
    );
    for p in &status.prefixes {
        let _ = writeln!(
            out,
            "eipd_bgp_prefix_announced{{prefix=\"{}\"}} {}",
            p.prefix,
            u8::from(p.announced)
        );
    }
    family(
        &mut out,
        "eipd_bgp_session_established",
        "gauge",
        "1 while the BGP session with the neighbour is established.",
    );
    for s in &status.sessions {
        let up = s
            .row
            .as_ref()
            .is_some_and(super::bird::SessionRow::established);
        let _ = writeln!(
            out,
            "eipd_bgp_session_established{{neighbor=\"{}\"}} {}",
            s.neighbor,
            u8::from(up)
        );
    }
    family(
        &mut out,
        "eipd_bgp_speaker_restarts_total",
        "counter",
        "Times BIRD was started again after it exited.",
    );
    let _ = writeln!(
        out,
        "eipd_bgp_speaker_restarts_total {}",
        status.speaker_restarts
    );
    family(
        &mut out,
        "eipd_bgp_reconfigurations_total",
        "counter",
        "Changes of [bgp] applied to the running BIRD (applied) or refused by it (refused).",
    );
    for (result, n) in [
        ("applied", status.reconfigurations),
        ("refused", status.reconfigurations_refused),
    ] {
        let _ = writeln!(
            out,
            "eipd_bgp_reconfigurations_total{{result=\"{result}\"}} {n}"
        );
    }
    family(
        &mut out,
        "eipd_bgp_draining",
        "gauge",
        "1 while the POP drains (GRACEFUL_SHUTDOWN, then withdraw).",
    );
    let _ = writeln!(out, "eipd_bgp_draining {}", u8::from(status.draining));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::PrefixStatus;

    #[test]
    fn every_prefix_has_both_transition_series() {
        let status = BgpStatus {
            prefixes: vec![PrefixStatus {
                prefix: "192.0.2.0/24".into(),
                announced: true,
                draining: false,
                closed: None,
                closed_kind: None,
                announces: 2,
                withdraws: 1,
            }],
            ..BgpStatus::default()
        };
        let text = render(&status);
        assert!(text.contains(
            "eipd_bgp_transitions_total{prefix=\"192.0.2.0/24\",transition=\"announce\"} 2\n"
        ));
        assert!(text.contains(
            "eipd_bgp_transitions_total{prefix=\"192.0.2.0/24\",transition=\"withdraw\"} 1\n"
        ));
        assert!(text.contains("eipd_bgp_prefix_announced{prefix=\"192.0.2.0/24\"} 1\n"));
        assert!(text.contains("# TYPE eipd_bgp_speaker_restarts_total counter\n"));
        assert!(text.contains("eipd_bgp_reconfigurations_total{result=\"applied\"} 0\n"));
        let docs = include_str!("../../../../docs/metrics.md");
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let family = line.split_whitespace().nth(2).unwrap();
            assert!(
                docs.contains(&format!("`{family}`")),
                "{family} is not in docs/metrics.md"
            );
        }
    }
}
