//! `eipctl`'s exit statuses (0 done, 1 refused, 2 bad input, 3 no daemon), its
//! error messages (each cause once), and subcommand abbreviations.

mod common;

use common::*;

/// How often `needle` occurs in `err`.
fn count(err: &str, needle: &str) -> usize {
    err.matches(needle).count()
}

#[test]
fn cannot_reach_the_daemon_is_3() {
    let dir = temp_dir("exit3");
    // No socket file.
    let missing = dir.join("none.sock");
    let (code, out, err) = eipctl(&missing, &["show", "tables"]);
    assert_eq!(code, 3, "{err}");
    assert!(out.is_empty());
    let cause = std::io::Error::from_raw_os_error(2).to_string();
    assert_eq!(
        err,
        format!(
            "eipctl: cannot connect to {}: {cause}\neipctl: is eipd running? (the socket is chosen with --socket)\n",
            missing.display()
        )
    );
    assert_eq!(count(&err, &cause), 1, "{err}");

    // A socket nobody listens on any more.
    let stale = dir.join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let (code, _, err) = eipctl(&stale, &["stats"]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(count(&err, "Connection refused"), 1, "{err}");

    // Connected, but the connection closes without a reply.
    let closing = dir.join("closing.sock");
    let listener = UnixListener::bind(&closing).unwrap();
    let closer = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut line = [0u8; 256];
        let _ = conn.read(&mut line);
    });
    let (code, _, err) = eipctl(&closing, &["show", "paths"]);
    closer.join().unwrap();
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        err,
        "eipctl: the daemon closed the connection without a reply\n"
    );

    // Connected, but no reply in time.
    let silent = dir.join("silent.sock");
    let listener = UnixListener::bind(&silent).unwrap();
    let holder = thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        thread::sleep(Duration::from_millis(2500));
        drop(conn);
    });
    let started = Instant::now();
    let (code, _, err) = eipctl(&silent, &["--timeout", "1", "st"]);
    assert!(started.elapsed() < Duration::from_millis(2400));
    holder.join().unwrap();
    assert_eq!(code, 3, "{err}");
    assert_eq!(err, "eipctl: no reply within 1s\n");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn refused_is_1_and_bad_input_is_2() {
    let rig = rig("exit12", ServerConfig::default());
    let s = &rig.socket;
    let (code, out, err) = eipctl(s, &["remove-eip", "192.0.2.99"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(
        err,
        "eipctl: remove_eip: EIP 192.0.2.99 does not exist (not_found), table version 1\n"
    );
    let (code, _, err) = eipctl(
        s,
        &[
            "--if-version",
            "9",
            "set-path-admin",
            "sha-bj-unicom",
            "disabled",
        ],
    );
    assert_eq!(code, 1, "{err}");

    // clap's own usage errors, and ours, are 2; nothing reaches the daemon.
    for args in [
        &["show", "nonsense"][..],
        &["frobnicate"],
        &["add-eip", "192.0.2.70"],
        &["explain", "sctp", "198.51.100.7:1", "192.0.2.10:2"],
        &["explain", "tcp", "198.51.100.7:1", "192.0.2.10:http"],
        &[
            "add-service",
            "192.0.2.20",
            "tcp/99999",
            "--backend",
            "10.1.0.1",
        ],
        &[
            "update-backend",
            "192.0.2.20",
            "tcp/80",
            "10.1.0.20@2",
            "--weight",
            "1",
        ],
    ] {
        let (code, out, err) = eipctl(s, args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty() && !err.is_empty(), "{args:?}");
    }
    assert_eq!(rig.control.version(), 1);

    // A configuration that cannot be read: bad input, its cause once.
    let missing = rig.dir.join("missing.toml");
    let (code, _, err) = eipctl(s, &["validate", missing.to_str().unwrap()]);
    assert_eq!(code, 2);
    let cause = std::io::Error::from_raw_os_error(2).to_string();
    assert_eq!(
        err,
        format!(
            "eipctl: cannot read configuration {}: {cause}\n",
            missing.display()
        )
    );
}

#[test]
fn abbreviations() {
    let rig = rig("abbrev", ServerConfig::default());
    let s = &rig.socket;
    let (code, short, _) = eipctl(s, &["sh", "paths"]);
    assert_eq!(code, 0);
    let (_, full, _) = eipctl(s, &["show", "paths"]);
    assert_eq!(short, full);
    let (code, out, _) = eipctl(s, &["st"]);
    assert_eq!(code, 0);
    assert!(out.contains("events:"), "{out}");
    let (code, out, _) = eipctl(s, &["--json", "set", "sha-bj-unicom", "disabled"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"previous_version\":1"), "{out}");

    // Ambiguous: every candidate named, usage error.
    let (code, out, err) = eipctl(s, &["u", "192.0.2.10"]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.starts_with(
            "error: 'u' is ambiguous: it starts update-eip, update-backend, update-path\n"
        ),
        "{err}"
    );
    let (code, _, err) = eipctl(s, &["re", "192.0.2.10"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("remove-eip, remove-service, remove-backend, remove-path"),
        "{err}"
    );

    // Help, by full name and by abbreviation.
    for args in [&["help", "explain"][..], &["ex", "--help"]] {
        let (code, out, _) = eipctl(s, args);
        assert_eq!(code, 0);
        assert!(out.contains("Usage: eipctl explain"), "{out}");
    }
    let (code, out, _) = eipctl(s, &["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("Exit status:") && out.contains("3  the daemon cannot be reached"));
}
