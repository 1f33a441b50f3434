//! What the Debian package ships of `eipctl`, generated from its CLI: the commit in
//! `--version`, completion scripts and the section-8 man pages.

use eip_dataplane::testkit::host::assert_version_line;
use std::process::Command;

fn eipctl(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_eipctl"))
        .args(args)
        .output()
        .expect("run eipctl");
    assert!(
        out.status.success(),
        "eipctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `eipctl 0.1.0 (abc1234)`, `(abc1234-dirty)`, or `(unknown)` outside a checkout.
#[test]
fn version_names_the_commit() {
    assert_version_line("eipctl", env!("CARGO_PKG_VERSION"), &eipctl(&["--version"]));
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    let bash = eipctl(&["completions", "bash"]);
    assert!(bash.contains("complete -F _eipctl"), "{bash}");
    for word in ["add-eip", "drain-backend", "set-path-admin", "--if-version"] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    let zsh = eipctl(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef eipctl") && zsh.contains("add-service"));
    let fish = eipctl(&["completions", "fish"]);
    assert!(fish.contains("complete -c eipctl") && fish.contains("show"));
    // No daemon is asked: these work without a socket.
    let out = Command::new(env!("CARGO_BIN_EXE_eipctl"))
        .args(["--socket", "/nonexistent/eipd.sock", "completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "unknown shell is a usage error");
}

#[test]
fn man_pages_one_per_subcommand() {
    let dir = std::env::temp_dir().join(format!("eipctl-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let listed = eipctl(&["generate-man", dir.to_str().unwrap()]);
    for page in [
        "eipctl.8",
        "eipctl-show.8",
        "eipctl-add-eip.8",
        "eipctl-apply.8",
    ] {
        assert!(dir.join(page).exists(), "{page} missing; wrote:\n{listed}");
    }
    let main = std::fs::read_to_string(dir.join("eipctl.8")).unwrap();
    assert!(main.contains(".TH eipctl 8"), "{main}");
    assert!(main.contains("eipctl\\-drain\\-backend(8)"), "{main}");
    let show = std::fs::read_to_string(dir.join("eipctl-show.8")).unwrap();
    assert!(show.contains("tables") && show.contains("paths"), "{show}");
    std::fs::remove_dir_all(&dir).unwrap();
}
