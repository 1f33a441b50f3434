//! `eipd run` as the systemd unit runs it, on the namespace testbed: an
//! unprivileged user holding only the unit's `AmbientCapabilities=` (through
//! `setpriv`, as systemd would grant them), and `$NOTIFY_SOCKET` pointing at a
//! socket this test binds. Checks that those capabilities are enough to attach XDP
//! and forward, that `READY=1` comes once eipd forwards, and `STOPPING=1` on
//! SIGTERM. What systemd itself adds (the sandboxing options) is checked by
//! `systemd-analyze verify` in `packaging.rs`; no systemd runs here.
//!
//! Needs root (namespaces, setpriv): ignored unless asked for; `scripts/test.sh`
//! runs it as root.

mod common;

use common::{curl_until_ok, repo, signal, Guard, Testbed};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `nobody`: a user with no privileges of its own, like the unit's dynamic user.
const UNPRIVILEGED: &str = "65534";

/// `CAP_NET_ADMIN CAP_BPF` from the unit -> `+net_admin,+bpf` for setpriv.
fn unit_capabilities() -> String {
    let unit = std::fs::read_to_string(repo().join("packaging/systemd/eipd.service")).unwrap();
    let caps = unit
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .expect("the unit grants capabilities");
    caps.split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The next notification, or a panic naming what was expected.
fn next_notification(socket: &UnixDatagram, expected: &str) -> String {
    let mut buf = [0u8; 1024];
    match socket.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => panic!("no notification while waiting for {expected}: {e}"),
    }
}

fn open_to_all(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
#[ignore = "needs root (network namespaces, XDP, setpriv): scripts/test.sh runs it as root"]
fn unit_capabilities_suffice_and_readiness_is_notified() {
    common::require_root();
    let tb = Testbed::up(&[]);
    // Everything the unprivileged process touches lives in a directory it may
    // read (binary, configuration) and one it owns (state, control socket).
    let dir = std::env::temp_dir().join(format!("eipd-service-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("state")).unwrap();
    open_to_all(&dir, 0o755);
    let exe = dir.join("eipd");
    std::fs::copy(env!("CARGO_BIN_EXE_eipd"), &exe).unwrap();
    open_to_all(&exe, 0o755);
    let config = dir.join("pop.toml");
    std::fs::copy(tb.var("TB_EIPD_CONFIG"), &config).unwrap();
    open_to_all(&config, 0o644);
    let state = dir.join("state");
    let chown = Command::new("chown")
        .args([
            &format!("{UNPRIVILEGED}:{UNPRIVILEGED}"),
            state.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(chown.success());
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    open_to_all(&notify_path, 0o666);
    notify
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();

    let caps = unit_capabilities();
    let log = dir.join("eipd.log");
    let file = std::fs::File::create(&log).unwrap();
    let socket = state.join("control.sock");
    let started = Instant::now();
    let child = tb
        .ns("TB_NS_POP", &["setpriv"])
        .args([
            &format!("--reuid={UNPRIVILEGED}"),
            &format!("--regid={UNPRIVILEGED}"),
            "--clear-groups",
            &format!("--inh-caps=-all,{caps}"),
            &format!("--ambient-caps=-all,{caps}"),
            &format!("--bounding-set=-all,{caps}"),
            "--no-new-privs",
        ])
        .arg(&exe)
        .args(["run", "--idle-sleep", "--config"])
        .arg(&config)
        .arg("--state")
        .arg(state.join("state.json"))
        .arg("--socket")
        .arg(&socket)
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .stdin(Stdio::null())
        .spawn()
        .expect("start eipd under setpriv");
    let mut eipd = Guard(child);
    let text = || std::fs::read_to_string(&log).unwrap_or_default();

    let first = next_notification(&notify, "the starting status");
    assert!(first.starts_with("STATUS=starting"), "{first}\n{}", text());
    let ready = next_notification(&notify, "READY=1");
    assert!(
        ready.starts_with("READY=1\nSTATUS=forwarding: pop \"testbed-pop\", table version 1"),
        "{ready}\n{}",
        text()
    );
    eprintln!("READY=1 after {:?}", started.elapsed());
    // Ready means forwarding: the log says so already, and a page comes through.
    assert!(text().contains("eipd: running"), "{}", text());
    let url = format!("http://{}/", tb.var("TB_EIP1"));
    let page = curl_until_ok(&tb, &url, Duration::from_secs(10));
    assert!(page.contains(tb.var("TB_PAGE_TEXT")), "{page}");
    let tables = Command::new(common::eipctl_exe())
        .arg("--socket")
        .arg(&socket)
        .args(["show", "tables"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&tables.stdout).contains("table version 1"),
        "{tables:?}"
    );

    signal(&eipd.0, "-TERM");
    let stopping = next_notification(&notify, "STOPPING=1");
    assert!(stopping.starts_with("STOPPING=1\n"), "{stopping}");
    let status = eipd.0.wait().unwrap();
    assert!(status.success(), "eipd exited {status}:\n{}", text());
    assert!(!tb.xdp_attached(), "XDP left attached");
    drop(eipd);
    std::fs::remove_dir_all(&dir).unwrap();
}
