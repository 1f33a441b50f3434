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

/// `eipctl reload FILE`: a relative path is resolved where eipctl runs, the
/// daemon says what differs, `--dry-run` applies nothing, a broken file is
/// refused with exit status 1 and the table version stays.
#[test]
fn reload_applies_a_configuration_file() {
    let rig = rig("reload", ServerConfig::default());
    let s = &rig.socket;
    let edited = fs::read_to_string(&rig.config).unwrap()
        + "\n[[eips]]\naddress = \"192.0.2.88\"\nregion = \"beijing\"\nbackend = \"10.1.0.88\"\n";
    fs::write(rig.dir.join("next.toml"), &edited).unwrap();
    let run_in_dir = |args: &[&str]| eipctl_in(&rig.dir, s, args);
    let (code, out, err) = run_in_dir(&["reload", "next.toml", "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("would change EIPs: +1 (192.0.2.88)"), "{out}");
    assert_eq!(rig.control.version(), 1);
    let (code, out, err) = run_in_dir(&["reload", "next.toml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("EIPs: +1 (192.0.2.88): table version 1 -> 2"),
        "{out}"
    );
    let (code, out, _) = run_in_dir(&["reload", "next.toml"]);
    assert_eq!(code, 0);
    assert!(out.contains("no change"), "{out}");
    fs::write(
        rig.dir.join("next.toml"),
        edited.replace("10.1.0.88", "10.1.0.10"),
    )
    .unwrap();
    let (code, _, err) = run_in_dir(&["reload", "next.toml"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("10.1.0.10"), "{err}");
    assert_eq!(rig.control.version(), 2);
}

/// `eipctl validate` needs no daemon: every problem of the file, each with its
/// line and column, on stderr, exit 1; an unreadable file is exit 2.
#[test]
fn validate_reports_every_problem_with_its_place() {
    let dir = temp_dir("validate");
    let no_socket = dir.join("none.sock");
    let file = dir.join("pop.toml");
    let line_of = |text: &str, wanted: &str| text.lines().position(|l| l == wanted).unwrap() + 1;

    let text = EXAMPLE.replacen("mtu = 1550 ", "mtu = 100  ", 1).replacen(
        "address = \"192.0.2.10\"\nregion = \"beijing\"",
        "address = \"192.0.2.10\"\nregion = \"tokyo\"",
        1,
    );
    let mtu = line_of(
        &text,
        "mtu = 100                          # outer IPv4 MTU of the link",
    );
    let region = line_of(&text, "region = \"tokyo\"");
    fs::write(&file, &text).unwrap();
    let (code, out, err) = eipctl(&no_socket, &["validate", file.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    let path = file.display();
    assert_eq!(
        err,
        format!(
            "{path}:{mtu}:7: paths[0].mtu: 100 is outside 626..=9216\n\
             {path}:{region}:10: eips[0].region: names region \"tokyo\", which is not defined\n\
             2 errors\n"
        )
    );

    fs::write(
        &file,
        EXAMPLE.replacen("[[eips]]", "[[eips]]\nbakend = \"10.1.0.1\"", 1),
    )
    .unwrap();
    let (code, _, err) = eipctl(&no_socket, &["validate", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    let line = line_of(
        &EXAMPLE.replacen("[[eips]]", "[[eips]]\nbakend = \"10.1.0.1\"", 1),
        "bakend = \"10.1.0.1\"",
    );
    assert!(
        // The EIP whose entry holds it is named too.
        err.starts_with(&format!(
            "{path}:{line}:1: eips[0] (192.0.2.10): unknown field `bakend`"
        )),
        "{err}"
    );
    assert!(err.ends_with("| ^^^^^^\n"), "{err}");

    let (code, _, err) = eipctl(
        &no_socket,
        &["validate", dir.join("missing.toml").to_str().unwrap()],
    );
    assert_eq!(code, 2);
    assert!(err.contains("cannot read configuration"), "{err}");
    fs::remove_dir_all(&dir).unwrap();
}
