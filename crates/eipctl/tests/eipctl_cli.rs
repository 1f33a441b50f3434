//! `eipctl` itself against a real server: every subcommand's text and JSON output
//! and its exit codes. `explain` is in `eipctl_explain.rs`, exit codes and
//! abbreviations in `eipctl_exit.rs`.

mod common;

use common::*;

#[test]
fn eipctl_end_to_end() {
    let rig = rig("ctl", ServerConfig::default());
    let s = &rig.socket;

    let (code, out, _) = eipctl(s, &["show", "tables"]);
    assert_eq!(code, 0);
    assert!(out.contains("table version 1"), "{out}");
    let (code, out, _) = eipctl(s, &["show", "paths"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("sha-bj-telecom") && out.contains("USABLE"),
        "{out}"
    );
    let (code, out, _) = eipctl(s, &["show", "eips"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("tcp/80 -> 10.1.0.20:80 w1, 10.1.0.21:8080 w2"),
        "{out}"
    );
    // The spec as TOML is a configuration eipctl validate accepts.
    let (code, out, _) = eipctl(s, &["show", "spec"]);
    assert_eq!(code, 0);
    let dumped = rig.dir.join("dumped.toml");
    fs::write(&dumped, &out).unwrap();
    let (code, out, err) = eipctl(s, &["validate", dumped.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = eipctl(s, &["stats"]);
    assert_eq!(code, 0);
    assert!(out.contains("192.0.2.10"), "{out}");

    let (code, out, _) = eipctl(
        s,
        &[
            "add-eip",
            "192.0.2.60",
            "--region",
            "beijing",
            "--backend",
            "10.1.0.60",
        ],
    );
    assert_eq!(code, 0);
    assert!(out.contains("table version 1 -> 2"), "{out}");
    let (code, _, _) = eipctl(
        s,
        &[
            "add-service",
            "192.0.2.60",
            "tcp/443",
            "--backend",
            "10.1.0.61",
            "--backend",
            "10.1.0.62:8443@2",
        ],
    );
    assert_eq!(code, 0);
    let (code, _, _) = eipctl(
        s,
        &["drain-backend", "192.0.2.60", "tcp/443", "10.1.0.62:8443"],
    );
    assert_eq!(code, 0);
    let (code, _, _) = eipctl(
        s,
        &[
            "update-backend",
            "192.0.2.60",
            "tcp/443",
            "10.1.0.61",
            "--weight",
            "4",
        ],
    );
    assert_eq!(code, 0);
    let (code, _, _) = eipctl(s, &["set-path-admin", "sha-bj-unicom", "disabled"]);
    assert_eq!(code, 0);
    let (code, out, _) = eipctl(
        s,
        &["--json", "update-path", "sha-bj-unicom", "--weight", "2"],
    );
    assert_eq!(code, 0);
    let reply: Reply = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(reply.version, 7);

    // Refusals: exit 1, the message on stderr.
    let (code, out, err) = eipctl(s, &["remove-eip", "192.0.2.99"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("EIP 192.0.2.99 does not exist (not_found), table version 7"),
        "{err}"
    );
    let (code, _, err) = eipctl(s, &["--if-version", "3", "remove-eip", "192.0.2.60"]);
    assert_eq!(code, 1);
    assert!(err.contains("version_conflict"), "{err}");

    // apply, with --dry-run first.
    let file = rig.dir.join("ops.json");
    fs::write(
        &file,
        r#"[{"cmd":"remove_eip","address":"192.0.2.60"},{"cmd":"set_path_admin","name":"sha-bj-unicom","admin":"enabled"}]"#,
    )
    .unwrap();
    let (code, out, _) = eipctl(s, &["apply", file.to_str().unwrap(), "--dry-run"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("would make table version 8 (nothing applied)"),
        "{out}"
    );
    let (code, out, _) = eipctl(s, &["apply", file.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        out.contains("applied 2 changes: table version 7 -> 8"),
        "{out}"
    );
    // A malformed file is caught before anything is sent.
    fs::write(&file, r#"{"ops":[{"cmd":"remove_eip","address":"nope"}]}"#).unwrap();
    let (code, _, err) = eipctl(s, &["apply", file.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("ops[0]: remove_eip: address: invalid IP address syntax"),
        "{err}"
    );

    let (code, out, _) = eipctl(s, &["watch", "--count", "2", "--interval-ms", "50"]);
    assert_eq!(code, 0);
    assert_eq!(out.matches("\x1b[H\x1b[2J").count(), 2);
    assert!(
        out.contains("sha-bj-telecom") && out.contains("192.0.2.10"),
        "{out}"
    );

    // No daemon: exit 3.
    let (code, _, err) = eipctl(&rig.dir.join("none.sock"), &["show", "tables"]);
    assert_eq!(code, 3);
    assert!(err.contains("cannot connect"), "{err}");
}
