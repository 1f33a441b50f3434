//! The harness shared by the integration tests: temporary directories, the root
//! check, and the namespace testbed (scripts/testbed.sh) with eipd and eipctl.
//! Each test crate uses part of it.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `eipctl` binary: `$EIPCTL`, else the one built beside `eipd` in the same
/// target directory (`scripts/test.sh` builds both before testing). Cargo gives a
/// test the path of its own crate's binaries only.
pub fn eipctl_exe() -> PathBuf {
    if let Some(p) = std::env::var_os("EIPCTL") {
        return PathBuf::from(p);
    }
    let beside = Path::new(env!("CARGO_BIN_EXE_eipd")).with_file_name("eipctl");
    assert!(
        beside.exists(),
        "{} not found: build it first (cargo build --release -p eipctl) or set EIPCTL",
        beside.display()
    );
    beside
}

/// Fails the test unless it runs as root (the root-only tests are `#[ignore]`d, so
/// this only fires when one is asked for explicitly without root).
pub fn require_root() {
    assert!(
        eip_dataplane::testkit::host::is_root(),
        "this test needs root (network namespaces, XDP): run it as root"
    );
}

/// A child process that is killed when the guard goes (also on panic).
pub struct Guard(pub Child);

impl Guard {
    pub fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A testbed that is always torn down, also when the test fails.
pub struct Testbed {
    id: String,
    env: HashMap<String, String>,
}

impl Testbed {
    pub fn up(extra: &[&str]) -> Testbed {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let id = format!("c{:07x}", (std::process::id() ^ nanos) & 0x0FFF_FFFF);
        let status = Command::new(repo().join("scripts/testbed.sh"))
            .args(["up", "--id", &id])
            .args(extra)
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/testbed.sh");
        let mut tb = Testbed {
            id,
            env: HashMap::new(),
        };
        assert!(status.success(), "testbed up failed");
        let out = Command::new(repo().join("scripts/testbed.sh"))
            .args(["env", "--id", &tb.id])
            .output()
            .expect("testbed env");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((k, v)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
                tb.env
                    .insert(k.to_string(), v.trim_matches('"').to_string());
            }
        }
        tb
    }

    pub fn var(&self, k: &str) -> &str {
        self.env
            .get(k)
            .unwrap_or_else(|| panic!("testbed env lacks {k}"))
    }

    pub fn run_dir(&self) -> PathBuf {
        PathBuf::from(self.var("TB_RUN_DIR"))
    }

    pub fn socket(&self) -> PathBuf {
        self.run_dir().join("control.sock")
    }

    /// A command inside one of the testbed's namespaces.
    pub fn ns(&self, ns_var: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.var(ns_var)]).args(args);
        c
    }

    /// `eipd run` with the state file and the socket in the run dir; returns
    /// once it prints "eipd: running".
    pub fn start_eipd(&self, args: &[&str], log: &Path) -> Guard {
        let file = std::fs::File::create(log).unwrap();
        let state = self.run_dir().join("state.json");
        let socket = self.socket();
        let child = self
            .ns(
                "TB_NS_POP",
                &[
                    env!("CARGO_BIN_EXE_eipd"),
                    "run",
                    "--config",
                    self.var("TB_EIPD_CONFIG"),
                    "--state",
                    state.to_str().unwrap(),
                    "--socket",
                    socket.to_str().unwrap(),
                ],
            )
            .args(args)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start eipd");
        let guard = Guard(child);
        wait_for_log(log, Duration::from_secs(30), |t| {
            t.contains("eipd: running")
        });
        guard
    }

    pub fn eipctl(&self, args: &[&str]) -> String {
        let out = Command::new(eipctl_exe())
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .expect("run eipctl");
        assert!(
            out.status.success(),
            "eipctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn eipctl_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let text = self.eipctl(&all);
        let v: Value = serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("eipctl {args:?}: not JSON ({e}): {text}"));
        assert_eq!(v["ok"], true, "eipctl {args:?}: {v}");
        v
    }
}

impl Testbed {
    /// Is an XDP program attached to any interface of the POP namespace?
    pub fn xdp_attached(&self) -> bool {
        let out = Command::new("ip")
            .args(["-n", self.var("TB_NS_POP"), "link", "show"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/testbed.sh"))
            .args(["down", "--id", &self.id])
            .stdout(Stdio::null())
            .status();
    }
}

/// Waits until `ok` holds for the log's text; panics with the log otherwise.
pub fn wait_for_log(log: &Path, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if ok(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting on the eipd log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// curl from the client namespace until it answers (forwarding may take a moment
/// to settle after a start); panics after `timeout`.
pub fn curl_until_ok(tb: &Testbed, url: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let out = tb
            .ns("TB_NS_CLIENT", &["curl", "-sS", "--max-time", "3", url])
            .output()
            .unwrap();
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "curl {url} never answered: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sends a signal (`-INT`, `-KILL`, ...) to a child.
pub fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status();
}

/// Counts UDP echo request/replies to 192.0.2.10:7 in lock step (one request in
/// flight, each waited for up to 1 s, paced at 2 ms) until stdin closes; prints
/// "ready" after the first reply of a warm-up and a summary line at the end.
pub const UDP_PROBE: &str = r#"
import os, select, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("192.0.2.10", 7))
s.setblocking(False)
def recv():
    try:
        return int(s.recv(2048).split()[0])
    except (OSError, ValueError, IndexError):
        return None
t_end = time.monotonic() + 15
while True:
    s.send(b"-1 warmup")
    r, _, _ = select.select([s], [], [], 0.2)
    if r and recv() == -1:
        break
    if time.monotonic() > t_end:
        print("warm-up failed", flush=True)
        sys.exit(1)
time.sleep(0.3)
while select.select([s], [], [], 0)[0]:
    recv()
print("ready", flush=True)
seen = set(); sent = 0; late = 0; max_rtt = 0.0; eof = False
interval = 0.002; nxt = time.monotonic()
while not eof:
    seq = sent; sent += 1
    t0 = time.monotonic()
    s.send(b"%d udp-probe" % seq)
    got = False
    while not got:
        rem = t0 + 1.0 - time.monotonic()
        if rem <= 0:
            break
        watch = [s] if eof else [s, sys.stdin]
        r, _, _ = select.select(watch, [], [], rem)
        if sys.stdin in r and not os.read(0, 4096):
            eof = True
        if s in r:
            n = recv()
            if n is None or n < 0:
                continue
            seen.add(n)
            if n == seq:
                got = True
                max_rtt = max(max_rtt, time.monotonic() - t0)
            else:
                late += 1
    nxt += interval
    d = nxt - time.monotonic()
    if d > 0:
        time.sleep(d)
    else:
        nxt = time.monotonic()
end = time.monotonic() + 1.0
while time.monotonic() < end:
    if select.select([s], [], [], max(0.0, end - time.monotonic()))[0]:
        n = recv()
        if n is not None and n >= 0:
            seen.add(n); late += 1
print("sent %d received %d late %d max_rtt_ms %.1f" % (sent, len(seen), late, max_rtt * 1000), flush=True)
"#;

/// A UDP request/response flow to 192.0.2.10:7 from the client namespace
/// ([`UDP_PROBE`]), counting every request it sends and every reply it gets.
pub struct UdpFlow {
    child: Guard,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl UdpFlow {
    /// Starts the flow and returns once its first request was answered.
    pub fn start(tb: &Testbed) -> UdpFlow {
        use std::io::BufRead;
        let mut child = Guard(
            tb.ns("TB_NS_CLIENT", &["/usr/bin/python3", "-c", UDP_PROBE])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start the UDP probe"),
        );
        let mut out = std::io::BufReader::new(child.0.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "UDP echo through 192.0.2.10 never answered"
        );
        UdpFlow { child, out }
    }

    /// Stops the flow (closing its stdin ends it after a last drain) and
    /// returns (sent, received, the probe's summary line).
    pub fn finish(mut self) -> (u64, u64, String) {
        use std::io::BufRead;
        drop(self.child.0.stdin.take());
        let mut summary = String::new();
        self.out.read_line(&mut summary).unwrap();
        let _ = self.child.0.wait();
        let fields: Vec<&str> = summary.split_whitespace().collect();
        assert!(
            fields.len() == 8 && fields[0] == "sent" && fields[2] == "received",
            "probe summary: {summary}"
        );
        (
            fields[1].parse().unwrap(),
            fields[3].parse().unwrap(),
            summary.trim().to_string(),
        )
    }
}
