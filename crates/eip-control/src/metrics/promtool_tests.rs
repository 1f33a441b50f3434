//! The exposition, the alert rules and the Grafana dashboard, checked by
//! `promtool` (Debian package `prometheus`; a missing promtool fails these
//! tests, it never skips them).

use super::testkit::{check_metrics, promtool, snapshot};
use super::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

fn ops(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../ops")
        .join(file)
}

#[test]
fn promtool_accepts_the_exposition() {
    check_metrics(&render(&snapshot()));
    // No per-EIP series, no path, no worker: families without samples.
    check_metrics(&render(&MetricsSnapshot::default()));
}

#[test]
#[should_panic(expected = "promtool check metrics")]
fn promtool_check_is_not_vacuous() {
    // A counter without `_total`, a unit abbreviation and a gauge with a
    // quantile label, as the exposition had before histograms.
    check_metrics(
        "# HELP x_ns x\n# TYPE x_ns counter\nx_ns 1\n\
         # HELP y_seconds y\n# TYPE y_seconds gauge\ny_seconds{quantile=\"0.5\"} 1\n",
    );
}

#[test]
fn promtool_accepts_a_scrape_of_the_listener() {
    let addr = spawn("127.0.0.1:0".parse().unwrap(), || render(&snapshot())).unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: eipd\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(body.contains("# TYPE eipd_path_rtt_seconds histogram"));
    check_metrics(body);
}

fn promtool_files(args: &[&str], file: &Path) {
    let path = file.to_str().unwrap();
    let out = promtool(&[args, &[path]].concat(), "");
    assert!(
        out.status.success(),
        "promtool {} {path}: {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_checks_and_unit_tests_the_alert_rules() {
    promtool_files(&["check", "rules"], &ops("prometheus/eipd-alerts.yml"));
    promtool_files(&["test", "rules"], &ops("prometheus/eipd-alerts.test.yml"));
}

/// The `eipd_*` names a text mentions.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("eipd_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// True if `name` is a sample name of the exposition: a family, or a
/// histogram's `_bucket`/`_sum`/`_count`.
fn exposed(exposition: &str, name: &str) -> bool {
    exposition.contains(&format!("# TYPE {name} "))
        || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|base| exposition.contains(&format!("# TYPE {base} histogram")))
        })
}

#[test]
fn rules_and_dashboard_name_only_metrics_that_exist() {
    let exposition = render(&snapshot());
    let rules = std::fs::read_to_string(ops("prometheus/eipd-alerts.yml")).unwrap();
    let dashboard = std::fs::read_to_string(ops("grafana/eipd.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let panels = json["panels"].as_array().unwrap();
    assert!(panels.len() >= 8, "{} panels", panels.len());
    let exprs: Vec<&str> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(!exprs.is_empty());
    for (what, text) in [("rules", rules.as_str()), ("dashboard", &exprs.join("\n"))] {
        let names = metric_names(text);
        assert!(!names.is_empty(), "{what} names no eipd metric");
        for name in names {
            assert!(exposed(&exposition, &name), "{what}: {name} is not exposed");
        }
    }
}
