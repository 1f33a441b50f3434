//! What the Debian package ships, checked without root: `--version` names the
//! commit, the man pages and completions are generated from the CLI, and the
//! systemd unit passes `systemd-analyze verify`.
//!
//! The package itself is built and its contents checked by `scripts/build-deb.sh`.

mod common;

use common::repo;
use eip_dataplane::testkit::host::assert_version_line;
use std::path::PathBuf;
use std::process::Command;

fn eipd(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_eipd"))
        .args(args)
        .output()
        .expect("run eipd");
    assert!(
        out.status.success(),
        "eipd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("eipd-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `eipd 0.1.0 (abc1234)`, `(abc1234-dirty)`, or `(unknown)` outside a checkout.
#[test]
fn version_names_the_commit() {
    assert_version_line("eipd", env!("CARGO_PKG_VERSION"), &eipd(&["--version"]));
}

#[test]
fn man_pages_and_completions_come_from_the_cli() {
    let dir = scratch("man");
    let listed = eipd(&["generate-man", dir.to_str().unwrap()]);
    for page in ["eipd.8", "eipd-run.8", "eipd-replay.8", "eipd-check.8"] {
        assert!(listed.contains(page), "{page} not written: {listed}");
    }
    let run = std::fs::read_to_string(dir.join("eipd-run.8")).unwrap();
    assert!(run.contains(".TH eipd-run 8"), "{run}");
    assert!(run.contains("\\-\\-probe\\-interval\\-ms"), "{run}");
    assert!(
        !dir.join("eipd-generate-man.8").exists(),
        "hidden subcommand has a page"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let bash = eipd(&["completions", "bash"]);
    assert!(bash.contains("complete -F _eipd") && bash.contains("--xdp-mode"));
    assert!(eipd(&["completions", "zsh"]).starts_with("#compdef eipd"));
    assert!(eipd(&["completions", "fish"]).contains("complete -c eipd"));
}

/// The unit as shipped, with ExecStart pointing at the binary just built (verify
/// checks that the program exists) and MANPATH at pages just generated (verify
/// runs `man` for each `Documentation=man:` entry).
#[test]
fn unit_passes_systemd_analyze_verify() {
    let unit_src = repo().join("packaging/systemd/eipd.service");
    let text = std::fs::read_to_string(&unit_src).unwrap();
    assert!(
        text.contains("\nType=notify\n"),
        "the unit must wait for READY=1"
    );
    let installed = "ExecStart=/usr/sbin/eipd ";
    assert!(
        text.contains(installed),
        "ExecStart moved: update this test"
    );

    let dir = scratch("unit");
    let unit = dir.join("eipd.service");
    let exe = env!("CARGO_BIN_EXE_eipd");
    std::fs::write(&unit, text.replace(installed, &format!("ExecStart={exe} "))).unwrap();
    let man8 = dir.join("man/man8");
    eipd(&["generate-man", man8.to_str().unwrap()]);

    let out = match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .env("MANPATH", dir.join("man"))
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run systemd-analyze ({e}): install systemd and man-db \
             (scripts/install-deps.sh does)"
        ),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on an unknown key or a bad value (it ignores them), so every
    // line on stderr is a finding, except that outside a booted systemd
    // (containers, CI) it says so there and still checks the unit.
    let findings: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !is_environment_notice(l))
        .collect();
    assert!(
        out.status.success() && findings.is_empty(),
        "systemd-analyze verify {}: {}\n{stderr}",
        unit.display(),
        out.status
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn is_environment_notice(line: &str) -> bool {
    line.contains("has not been booted with systemd")
        || line.contains("Failed to connect to bus")
        || line.contains("Failed to initialize manager")
}

/// The unit grants exactly the capabilities `eipd run` was found to need
/// (`service_e2e` runs it with only these), and bounds the service to them.
#[test]
fn unit_grants_the_afxdp_capabilities_and_no_more() {
    let text = std::fs::read_to_string(repo().join("packaging/systemd/eipd.service")).unwrap();
    let caps = |key: &str| -> Vec<String> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("unit lacks {key}"));
        let mut caps: Vec<String> = line.split_whitespace().map(String::from).collect();
        caps.sort();
        caps
    };
    let ambient = caps("AmbientCapabilities=");
    assert_eq!(
        ambient,
        [
            "CAP_BPF",
            "CAP_IPC_LOCK",
            "CAP_NET_ADMIN",
            "CAP_NET_RAW",
            "CAP_PERFMON"
        ]
    );
    assert_eq!(ambient, caps("CapabilityBoundingSet="));
    assert!(text.contains("\nDynamicUser=yes\n") && text.contains("\nLimitMEMLOCK=infinity\n"));
}
