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
            "eip=\"{}\",service=\"{service}\",backend=\"{}\",port=\"{}\",check=\"{}\"",
            r.key.eip,
            r.key.backend,
            r.key.port,
            r.check.kind.label()
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
    let http: Vec<_> = reports
        .iter()
        .filter_map(|r| Some((r, r.last_status?)))
        .collect();
    if !http.is_empty() {
        let _ = writeln!(
            out,
            "# HELP eipd_backend_http_status Status of the last answer to the backend's HTTP check.\n\
             # TYPE eipd_backend_http_status gauge"
        );
        for (r, status) in http {
            let _ = writeln!(out, "eipd_backend_http_status{{{}}} {status}", labels(r));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::BackendKey;
    use crate::health::{HealthConfig, PathHealth};
    use eip_dataplane::check_spec::{CheckKind, CheckSpec};
    use eip_dataplane::tables::Protocol;
    use std::time::Duration;

    #[test]
    fn series_carry_the_check_kind_and_http_the_last_status() {
        let health = PathHealth::new(HealthConfig::default(), Duration::ZERO).unwrap();
        let report = |kind, last_status| BackendReport {
            key: BackendKey {
                eip: "192.0.2.20".parse().unwrap(),
                service: Some((Protocol::Tcp, 80)),
                backend: "10.1.0.21".parse().unwrap(),
                port: 80,
            },
            check: CheckSpec::new(kind),
            check_port: Some(80),
            last_status,
            health: health.health(),
            transitions: 0,
            snapshot: health.snapshot(),
        };
        let page = render_metrics(&[
            report(CheckKind::Http, Some(503)),
            report(CheckKind::Tcp, None),
        ]);
        let labels = r#"eip="192.0.2.20",service="tcp/80",backend="10.1.0.21",port="80""#;
        assert!(
            page.contains(&format!("eipd_backend_up{{{labels},check=\"http\"}}")),
            "{page}"
        );
        assert!(
            page.contains(&format!("eipd_backend_up{{{labels},check=\"tcp\"}}")),
            "{page}"
        );
        assert!(
            page.contains(&format!(
                "eipd_backend_http_status{{{labels},check=\"http\"}} 503"
            )),
            "{page}"
        );
        assert_eq!(page.matches("eipd_backend_http_status{").count(), 1);
    }
}
