//! The anycast testbed (`scripts/anycast-testbed.sh`) driven from tests: one
//! guard that tears it down, `eipd` per POP, the router's FIB (polled, or
//! watched as it changes), its BGP table and BFD sessions, downloads, pings,
//! nftables blackholes and `eipctl` per POP.

use crate::common::{self, repo, wait_for_log, Guard};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The anycast testbed, torn down when dropped (also on failure).
pub struct Anycast {
    id: String,
    env: HashMap<String, String>,
}

impl Anycast {
    pub fn up(extra: &[&str]) -> Anycast {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let id = format!("a{:07x}", (std::process::id() ^ nanos) & 0x0FFF_FFFF);
        let script = repo().join("scripts/anycast-testbed.sh");
        let mut tb = Anycast {
            id,
            env: HashMap::new(),
        };
        let status = Command::new(&script)
            .args(["up", "--id", &tb.id])
            .args(extra)
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/anycast-testbed.sh");
        assert!(status.success(), "anycast testbed up failed");
        let out = Command::new(&script)
            .args(["env", "--id", &tb.id])
            .output()
            .unwrap();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((k, v)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
                tb.env.insert(k.into(), v.into());
            }
        }
        tb
    }

    pub fn var(&self, k: &str) -> &str {
        self.env.get(k).unwrap_or_else(|| panic!("env lacks {k}"))
    }

    pub fn ns(&self, ns_var: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.var(ns_var)]).args(args);
        c
    }

    pub fn log(&self, pop: char) -> PathBuf {
        PathBuf::from(self.var("AT_RUN_DIR")).join(format!("pop{pop}.log"))
    }

    /// `eipd run` in POP `a` or `b`; returns once it runs.
    pub fn start_pop(&self, pop: char) -> Guard {
        let up = pop.to_ascii_uppercase();
        let log = self.log(pop);
        let file = std::fs::File::create(&log).unwrap();
        let dir = self.var("AT_RUN_DIR");
        let child = self
            .ns(
                &format!("AT_NS_POP{up}"),
                &[
                    env!("CARGO_BIN_EXE_eipd"),
                    "run",
                    "--config",
                    self.var(&format!("AT_POP{up}_CONFIG")),
                    "--state",
                    &format!("{dir}/pop{pop}.state.json"),
                    "--socket",
                    self.var(&format!("AT_POP{up}_SOCKET")),
                    "--idle-sleep",
                    "--from",
                    "config",
                ],
            )
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start eipd");
        let guard = Guard(child);
        wait_for_log(&log, Duration::from_secs(30), |t| {
            t.contains("eipd: running")
        });
        guard
    }

    /// `eipctl --json` against POP `pop`'s control socket.
    pub fn eipctl_json(&self, pop: char, args: &[&str]) -> serde_json::Value {
        let socket = self.var(&format!("AT_POP{}_SOCKET", pop.to_ascii_uppercase()));
        let out = Command::new(common::eipctl_exe())
            .args(["--socket", socket, "--json"])
            .args(args)
            .output()
            .expect("run eipctl");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "eipctl {args:?}: {e}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// Return packets (EIP to client) POP `pop` forwarded for the 1:1 EIP.
    pub fn returns(&self, pop: char) -> u64 {
        let stats = self.eipctl_json(pop, &["stats"]);
        stats["data"]["stats"]["eips"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["address"] == self.var("AT_EIP1"))
            .and_then(|e| e["out"]["packets"].as_u64())
            .unwrap_or(0)
    }

    /// The router's next hop for the EIP prefix in its kernel FIB.
    pub fn next_hop(&self) -> Option<String> {
        let out = self
            .ns(
                "AT_NS_ROUTER",
                &["ip", "route", "show", self.var("AT_EIP_PREFIX")],
            )
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let words: Vec<&str> = text.split_whitespace().collect();
        words
            .iter()
            .position(|w| *w == "via")
            .and_then(|i| words.get(i + 1))
            .map(|s| s.to_string())
    }

    /// The output of one `vtysh` command on the router.
    fn vtysh(&self, command: &str) -> std::process::Output {
        self.ns(
            "AT_NS_ROUTER",
            &[
                "vtysh",
                "--vty_socket",
                self.var("AT_FRR_DIR"),
                "-c",
                command,
            ],
        )
        .output()
        .unwrap()
    }

    /// The router's BFD session with `peer` (FRR's `show bfd peers json` entry).
    pub fn bfd_peer(&self, peer: &str) -> serde_json::Value {
        let out = self.vtysh("show bfd peers json");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.as_array()
            .into_iter()
            .flatten()
            .find(|p| p["peer"] == peer)
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "the router has no BFD session with {peer}: {}",
                    String::from_utf8_lossy(&out.stdout)
                )
            })
    }

    /// The peers of every path the router's BGP has for the EIP pool.
    pub fn bgp_paths(&self) -> Vec<String> {
        self.bgp_paths_to(self.var("AT_EIP_PREFIX"))
    }

    /// The peers of every path the router's BGP has for exactly `prefix`
    /// (not a shorter prefix that covers it).
    pub fn bgp_paths_to(&self, prefix: &str) -> Vec<String> {
        let out = self.vtysh(&format!("show ip bgp {prefix} json"));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["paths"]
            .as_array()
            .map(|paths| {
                paths
                    .iter()
                    .filter(|p| p["network"].as_str().is_none_or(|n| n == prefix))
                    .filter_map(|p| p["peer"]["peerId"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until the router's FIB sends the prefix to `hop` (or nowhere);
    /// returns how long that took from `since`.
    pub fn wait_next_hop(&self, hop: Option<&str>, since: Instant, timeout: Duration) -> Duration {
        loop {
            let now = self.next_hop();
            if now.as_deref() == hop {
                return since.elapsed();
            }
            assert!(
                since.elapsed() < timeout,
                "router next hop {now:?}, expected {hop:?} within {timeout:?}\nPOP A:\n{}\nPOP B:\n{}",
                std::fs::read_to_string(self.log('a')).unwrap_or_default(),
                std::fs::read_to_string(self.log('b')).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits for the router's FIB (`fib`) to send the EIP prefix via `hop`;
    /// returns how long after `since` the kernel reported it.
    pub fn switched_to(
        &self,
        fib: &FibWatch,
        hop: &str,
        since: SystemTime,
        timeout: Duration,
    ) -> Duration {
        let took = fib
            .wait_via(self.var("AT_EIP_PREFIX"), hop, since, timeout)
            .unwrap_or_else(|e| {
                panic!(
                    "{e}\nPOP A:\n{}\nPOP B:\n{}",
                    std::fs::read_to_string(self.log('a')).unwrap_or_default(),
                    std::fs::read_to_string(self.log('b')).unwrap_or_default()
                )
            });
        assert_eq!(
            self.next_hop().as_deref(),
            Some(hop),
            "the FIB left {hop} again"
        );
        took
    }

    /// A download in the background from the client: curl of `file` (`big.bin`, or `paced.bin`: the same bytes, which nginx
    /// sends at 2.5 MB/s at most) from the EIP, limited to `rate` by curl.
    pub fn download(&self, file: &str, rate: &str) -> Child {
        let out = PathBuf::from(self.var("AT_RUN_DIR")).join("download.bin");
        self.ns(
            "AT_NS_CLIENT",
            &[
                "curl",
                "-sS",
                "--max-time",
                "60",
                // A receiver that hears nothing sends nothing; after a second
                // its keepalive tells the region which POP the flow uses now
                // (the region cannot know that the old one died).
                "--keepalive-time",
                "1",
                "--limit-rate",
                rate,
                "-o",
                out.to_str().unwrap(),
                &format!("http://{}/{file}", self.var("AT_EIP1")),
            ],
        )
        .spawn()
        .expect("curl")
    }

    pub fn downloaded_sha256(&self) -> String {
        let out = Command::new("sha256sum")
            .arg(PathBuf::from(self.var("AT_RUN_DIR")).join("download.bin"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string()
    }

    /// `ping -D` every 10 ms for `secs`, in the background.
    pub fn pinger(&self, secs: u32) -> Child {
        self.ns(
            "AT_NS_CLIENT",
            &[
                "ping",
                "-D",
                "-n",
                "-i",
                "0.01",
                "-W",
                "1",
                "-w",
                &secs.to_string(),
                self.var("AT_EIP1"),
            ],
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("ping")
    }

    /// Both POPs announce, the router prefers A.
    pub fn both_announcing(&self) -> (Guard, Guard) {
        let a = self.start_pop('a');
        let b = self.start_pop('b');
        let t = Instant::now();
        while self.bgp_paths().len() < 2 {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "router has {:?}",
                self.bgp_paths()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait_next_hop(
            Some(self.var("AT_POPA_INET_IP")),
            Instant::now(),
            Duration::from_secs(5),
        );
        (a, b)
    }
}

impl Drop for Anycast {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/anycast-testbed.sh"))
            .args(["down", "--id", &self.id])
            .stdout(Stdio::null())
            .status();
    }
}

/// The router's kernel FIB as it changes: `ip -ts monitor route` in its
/// namespace, each change stamped (wall clock) by `ip` as the kernel reports
/// it. A switch read from here is not late by the process start of a poll
/// (`Anycast::wait_next_hop` runs `ip route show` each time).
pub struct FibWatch {
    _monitor: Guard,
    lines: mpsc::Receiver<String>,
}

impl FibWatch {
    /// Returns once the monitor reports changes (it has seen a marker route
    /// come and go in a table the router does not use).
    pub fn start(tb: &Anycast) -> FibWatch {
        let mut child = tb
            .ns("AT_NS_ROUTER", &["ip", "-ts", "monitor", "route"])
            .env("TZ", "UTC")
            .stdout(Stdio::piped())
            .spawn()
            .expect("ip monitor");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let watch = FibWatch {
            _monitor: Guard(child),
            lines,
        };
        let marker = "198.18.255.1";
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            for verb in ["add", "del"] {
                let ok = tb
                    .ns(
                        "AT_NS_ROUTER",
                        &["ip", "route", verb, "unreachable", marker, "table", "250"],
                    )
                    .status()
                    .unwrap()
                    .success();
                assert!(ok, "ip route {verb} unreachable {marker} table 250");
            }
            while let Ok(line) = watch.lines.recv_timeout(Duration::from_millis(100)) {
                if line.contains(marker) {
                    // Drain the rest of the marker's lines.
                    while watch.lines.recv_timeout(Duration::from_millis(50)).is_ok() {}
                    return watch;
                }
            }
        }
        panic!("ip -ts monitor route reported nothing within 5 s");
    }

    /// Waits for the FIB to send `prefix` via `hop`; returns how long after
    /// `since` the kernel reported it.
    ///
    /// # Errors
    /// No such change within `timeout`, or one stamped before `since`.
    pub fn wait_via(
        &self,
        prefix: &str,
        hop: &str,
        since: SystemTime,
        timeout: Duration,
    ) -> Result<Duration, String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                return Err(format!(
                    "no route to {prefix} via {hop} within {timeout:?}; the FIB reported:\n{}",
                    seen.join("\n")
                ));
            };
            let Some((stamp, route)) = line.strip_prefix('[').and_then(|l| l.split_once("] "))
            else {
                seen.push(line);
                continue;
            };
            let words: Vec<&str> = route.split_whitespace().collect();
            let via = words.windows(2).any(|w| w[0] == "via" && w[1] == hop);
            if words.first() == Some(&prefix) && via {
                let at = utc_stamp(stamp).ok_or_else(|| format!("time stamp of {line:?}"))?;
                return at.duration_since(since).map_err(|e| {
                    format!(
                        "{line:?}: the FIB changed {:?} before the failure",
                        e.duration()
                    )
                });
            }
            seen.push(line);
        }
    }
}

/// `2026-12-01T08:23:38.679698` (UTC, as `TZ=UTC ip -ts` prints it).
pub fn utc_stamp(s: &str) -> Option<SystemTime> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, m, d) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':');
    let h: u64 = t.next()?.parse().ok()?;
    let min: u64 = t.next()?.parse().ok()?;
    let sec: f64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
        || h > 23
        || min > 59
        || !(0.0..61.0).contains(&sec)
    {
        return None;
    }
    // Days since 1970-01-01 in the proleptic Gregorian calendar
    // (H. Hinnant, "days_from_civil").
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    Some(
        UNIX_EPOCH
            + Duration::from_secs(days * 86_400 + h * 3_600 + min * 60)
            + Duration::from_secs_f64(sec),
    )
}

/// Loss and the longest gap between replies of a finished `ping -D`.
pub fn ping_figures(child: Child) -> (u64, u64, Duration) {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut stamps = Vec::new();
    let (mut sent, mut received) = (0, 0);
    for line in text.lines() {
        if line.contains("bytes from") {
            if let Some(t) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
                stamps.push(t.parse::<f64>().unwrap_or(0.0));
            }
        }
        if line.contains("packets transmitted") {
            let n: Vec<u64> = line
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|w| w.parse().ok())
                .collect();
            (sent, received) = (n[0], n[1]);
        }
    }
    let gap = stamps.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    (sent, received, Duration::from_secs_f64(gap))
}

pub fn nft(tb: &Anycast, ns_var: &str, rules: &str) {
    let mut c = tb
        .ns(ns_var, &["nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
    assert!(c.wait().unwrap().success(), "nft {rules}");
}

/// Packets POP `pop` received for EIP `eip`.
pub fn eip_in(tb: &Anycast, pop: char, eip: &str) -> u64 {
    let stats = tb.eipctl_json(pop, &["stats"]);
    stats["data"]["stats"]["eips"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["address"] == eip)
        .and_then(|e| e["in"]["packets"].as_u64())
        .unwrap_or(0)
}

/// `GET /whoami` of the service EIP from client port `port`. The client ends
/// the connection with a reset (SO_LINGER 0), so it keeps no TIME_WAIT and the
/// same 5-tuple can be used again at once (curl cannot do that).
const WHOAMI: &str = r#"
import socket, struct, sys
eip, port = sys.argv[1], int(sys.argv[2])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.settimeout(5)
s.bind(("0.0.0.0", port))
s.connect((eip, 80))
s.sendall(b"GET /whoami HTTP/1.0\r\nHost: eip\r\n\r\n")
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
print(data.split(b"\r\n\r\n", 1)[-1].decode())
"#;

pub fn whoami(tb: &Anycast, port: u16) -> String {
    let out = tb
        .ns(
            "AT_NS_CLIENT",
            &[
                "python3",
                "-c",
                WHOAMI,
                tb.var("AT_EIP2"),
                &port.to_string(),
            ],
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        text.starts_with("backend="),
        "whoami from port {port}: {text:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}
