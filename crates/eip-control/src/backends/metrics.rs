//! The backend checks' series, appended to the metrics page (Prometheus text
//! format; names under `eipd_backend_`, documented in `docs/metrics.md`).

use super::BackendReport;
use crate::health::Health;
use std::fmt::Write;

/// The series of `reports` as Prometheus text (nothing without checks).
pub fn render_metrics(reports: &[BackendReport]) -> String {
    let mut out = String::new();
    if reports.is_empty() {
        return out;
    }
    let labels = |r: &BackendReport| {
        let service = r.key.service.map_or_else(String::new, |(p, port)| {
            let p = if p == eip_dataplane::tables::Protocol::Tcp {
                "tcp"
            } else {
                "udp"
            };
            format!("{p}/{port}")
        });
        format!(
            "eip=\"{}\",service=\"{service}\",backend=\"{}\",port=\"{}\"",
            r.key.eip, r.key.backend, r.key.port
        )
    };
    let _ = writeln!(
        out,
        "# HELP eipd_backend_up 1 while the backend's health checks say up, else 0.\n\
         # TYPE eipd_backend_up gauge"
    );
    for r in reports {
        let up = u8::from(r.health == Health::Up);
        let _ = writeln!(out, "eipd_backend_up{{{}}} {up}", labels(r));
    }
    let _ = writeln!(
        out,
        "# HELP eipd_backend_transitions_total Up/down transitions of the backend's measured health.\n\
         # TYPE eipd_backend_transitions_total counter"
    );
    for r in reports {
        let _ = writeln!(
            out,
            "eipd_backend_transitions_total{{{}}} {}",
            labels(r),
            r.transitions
        );
    }
    let _ = writeln!(
        out,
        "# HELP eipd_backend_checks_total Checks sent to the backend, and their fate.\n\
         # TYPE eipd_backend_checks_total counter"
    );
    for r in reports {
        let c = &r.snapshot.counters;
        for (result, n) in [
            ("sent", c.sent),
            ("answered", c.received),
            ("failed", c.lost),
        ] {
            let _ = writeln!(
                out,
                "eipd_backend_checks_total{{{},result=\"{result}\"}} {n}",
                labels(r)
            );
        }
    }
    out
}
