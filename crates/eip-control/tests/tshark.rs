//! A second opinion on the replay outputs: every scenario of `pcap-fixtures/` is
//! replayed and what the POP transmits is dissected by tshark (Wireshark), which
//! shares no code with the pipeline or with the fixture generator. Checked:
//!
//! - every frame decodes down to its transport layer (through VXLAN on the backbone);
//! - no bad IPv4/TCP/UDP/ICMP/ICMPv6 checksum, no malformed packet, no expert error;
//! - backbone frames carry the configured VNIs to the configured path endpoints and
//!   their inner packets go to configured backends; Internet frames come from EIPs;
//! - each output frame dissects to the same protocols, addresses and ports as the
//!   expected frame (outer headers of backbone frames aside: the path is checked by
//!   the golden tests).
//!
//! Needs `tshark` (Debian: `apt-get install -y tshark`); the tests fail without it
//! (scripts/install-deps.sh installs it).

use eip_control::pcap::CaptureReader;
use eip_control::{config, replay};
use eip_dataplane::testkit::host::TempDir;
use eip_dataplane::Tables;
use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Fields extracted from every frame, every occurrence (outer, inner, quoted).
const FIELDS: &[&str] = &[
    "frame.protocols",
    "ip.checksum.status",
    "tcp.checksum.status",
    "udp.checksum.status",
    "icmp.checksum.status",
    "icmpv6.checksum.status",
    "icmp.type",
    "icmpv6.type",
    "_ws.malformed",
    "_ws.expert.severity",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "vxlan.vni",
];

/// Wireshark's checksum status values.
const CHECKSUM_BAD: &str = "0";
const CHECKSUM_GOOD: &str = "1";
const CHECKSUM_ILLEGAL: &str = "4";
/// `_ws.expert.severity` of PI_ERROR.
const EXPERT_ERROR: u32 = 0x0080_0000;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pcap-fixtures")
}

fn load_tables() -> Tables {
    config::load(&fixtures().join("pop.toml"))
        .expect("pop.toml loads")
        .1
}

/// One frame as tshark dissects it: the occurrences of each of [`FIELDS`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dissected(Vec<Vec<String>>);

impl Dissected {
    fn all(&self, field: &str) -> &[String] {
        let i = FIELDS
            .iter()
            .position(|f| *f == field)
            .expect("field is in FIELDS");
        &self.0[i]
    }

    fn first(&self, field: &str) -> Option<&str> {
        self.all(field).first().map(String::as_str)
    }

    fn protocols(&self) -> &str {
        self.first("frame.protocols").unwrap_or("")
    }

    /// An ICMP error carries a quote; tshark checks the quoted transport checksum
    /// over the quote even when the quote is cut short, and then calls it bad.
    fn is_icmp_error(&self) -> bool {
        let v4 = self.first("icmp.type").and_then(|t| t.parse::<u8>().ok());
        let v6 = self.first("icmpv6.type").and_then(|t| t.parse::<u8>().ok());
        matches!(v4, Some(3 | 4 | 5 | 11 | 12)) || v6.is_some_and(|t| t < 128)
    }

    /// What NAT decided, as tshark reads it: addresses and ports, outermost first,
    /// without the outer headers of a backbone frame (they are the path's, which the
    /// golden tests check byte for byte).
    fn nat_view(&self, backbone: bool) -> Vec<&[String]> {
        let outer = usize::from(backbone);
        let inner = |field: &str| {
            let all = self.all(field);
            &all[outer.min(all.len())..]
        };
        vec![
            inner("ip.src"),
            inner("ip.dst"),
            self.all("ipv6.src"),
            self.all("ipv6.dst"),
            self.all("tcp.srcport"),
            self.all("tcp.dstport"),
            inner("udp.srcport"),
            inner("udp.dstport"),
            self.all("vxlan.vni"),
        ]
    }
}

/// Runs tshark on a pcap file with checksum validation on.
fn tshark(file: &Path) -> Vec<Dissected> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n").arg("-r").arg(file);
    for pref in [
        "ip.check_checksum",
        "tcp.check_checksum",
        "udp.check_checksum",
    ] {
        cmd.args(["-o", &format!("{pref}:TRUE")]);
    }
    cmd.args(["-T", "fields", "-E", "header=n", "-E", "separator=/t"]);
    cmd.args(["-E", "occurrence=a", "-E", "aggregator=,"]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run tshark ({e}): install it (Debian: apt-get install -y tshark)")
    });
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("tshark prints UTF-8")
        .lines()
        .map(|line| {
            let mut cols: Vec<Vec<String>> = line
                .split('\t')
                .map(|c| {
                    c.split(',')
                        .filter(|v| !v.is_empty())
                        .map(String::from)
                        .collect()
                })
                .collect();
            cols.resize(FIELDS.len(), Vec::new());
            Dissected(cols)
        })
        .collect()
}

/// One port's output of one scenario, dissected, next to its expected pcap.
struct PortOutput {
    scenario: String,
    port: String,
    frames: usize,
    got: Vec<Dissected>,
    expected: Vec<Dissected>,
}

impl PortOutput {
    fn name(&self, frame: usize) -> String {
        format!("{}/{} frame {frame}", self.scenario, self.port)
    }

    fn is_backbone(&self) -> bool {
        self.port != "internet"
    }
}

fn frame_count(path: &Path) -> usize {
    let file = File::open(path).expect("output pcap exists");
    CaptureReader::new(file)
        .and_then(CaptureReader::read_all)
        .expect("output pcap is readable")
        .len()
}

/// Replays every scenario and dissects every non-empty output, once per test binary.
fn outputs() -> &'static [PortOutput] {
    static OUTPUTS: OnceLock<Vec<PortOutput>> = OnceLock::new();
    OUTPUTS.get_or_init(replay_and_dissect_all)
}

fn replay_and_dissect_all() -> Vec<PortOutput> {
    // Fail fast, with the installation hint, if tshark is missing.
    if let Err(e) = Command::new("tshark").arg("--version").output() {
        panic!("tshark is not installed ({e}): install it (Debian: apt-get install -y tshark)");
    }
    let tables = load_tables();
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("pcap-fixtures/ is readable")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.join("input.pcap").is_file())
        .collect();
    scenarios.sort();
    assert!(!scenarios.is_empty(), "no scenarios in pcap-fixtures/");

    let mut dirs = Vec::new();
    let mut jobs = Vec::new();
    for dir in &scenarios {
        let scenario = dir.file_name().unwrap().to_string_lossy().into_owned();
        let port = match std::fs::read_to_string(dir.join("input-port")) {
            Ok(name) => tables
                .port_by_name(name.trim())
                .expect("input-port names a port"),
            Err(_) => tables.internet_port,
        };
        let out = TempDir::new(&scenario);
        replay::replay_files(
            &tables,
            &dir.join("input.pcap"),
            &out.0,
            port,
            replay::DEFAULT_BATCH,
            None,
        )
        .unwrap_or_else(|e| panic!("replay of {scenario} failed: {e}"));
        for p in &tables.ports {
            let file = format!("{}.pcap", p.name);
            let got = out.0.join(&file);
            let frames = frame_count(&got);
            if frames > 0 {
                jobs.push((
                    scenario.clone(),
                    p.name.clone(),
                    frames,
                    got,
                    dir.join("expected").join(&file),
                ));
            }
        }
        dirs.push(out);
    }

    // tshark takes most of the time: run one per core.
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while let Some((scenario, port, frames, got, expected)) =
                    jobs.get(next.fetch_add(1, Ordering::Relaxed))
                {
                    let output = PortOutput {
                        scenario: scenario.clone(),
                        port: port.clone(),
                        frames: *frames,
                        got: tshark(got),
                        expected: tshark(expected),
                    };
                    results.lock().unwrap().push(output);
                }
            });
        }
    });
    drop(dirs);
    let mut results = results.into_inner().unwrap();
    results.sort_by(|a, b| (&a.scenario, &a.port).cmp(&(&b.scenario, &b.port)));
    results
}

fn assert_none(problems: Vec<String>, what: &str) {
    assert!(
        problems.is_empty(),
        "{} frame(s) {what}:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_output_frame_decodes_to_its_transport() {
    let mut problems = Vec::new();
    for o in outputs() {
        if o.got.len() != o.frames {
            problems.push(format!(
                "{}/{}: {} frames, tshark shows {}",
                o.scenario,
                o.port,
                o.frames,
                o.got.len()
            ));
        }
        for (i, f) in o.got.iter().enumerate() {
            let stack = f.protocols();
            let ip = if o.is_backbone() {
                match stack.strip_prefix("eth:ethertype:ip:udp:vxlan:eth:ethertype:") {
                    Some(inner) => inner,
                    None => {
                        problems.push(format!(
                            "{}: not Ethernet/IPv4/UDP/VXLAN/Ethernet: {stack}",
                            o.name(i)
                        ));
                        continue;
                    }
                }
            } else {
                stack.strip_prefix("eth:ethertype:").unwrap_or(stack)
            };
            let family = ip.starts_with("ip:") || ip.starts_with("ipv6:");
            let transport = [":tcp", ":udp", ":icmp", ":icmpv6"]
                .iter()
                .any(|t| ip.contains(t));
            // Fragments that do not complete a datagram and unknown protocols.
            let opaque = ip == "ip:data" || ip == "ipv6:ipv6.fraghdr:data";
            if !family || !(transport || opaque) {
                problems.push(format!(
                    "{}: no IP packet with a transport layer: {stack}",
                    o.name(i)
                ));
            }
        }
    }
    assert_none(problems, "do not decode");
}

#[test]
fn no_bad_checksum_or_malformed_frame() {
    let mut problems = Vec::new();
    for o in outputs() {
        for (i, f) in o.got.iter().enumerate() {
            let mut bad = Vec::new();
            // IPv4 header checksums: outer, inner and quoted headers are all whole.
            if f.all("ip.checksum.status")
                .iter()
                .any(|s| s != CHECKSUM_GOOD)
            {
                bad.push(format!(
                    "ip.checksum.status {:?}",
                    f.all("ip.checksum.status")
                ));
            }
            let transports: &[&str] = if f.is_icmp_error() {
                // The quoted transport checksum is compared byte for byte by the golden
                // tests; tshark would check it over a cut quote.
                &["icmp.checksum.status", "icmpv6.checksum.status"]
            } else {
                &[
                    "tcp.checksum.status",
                    "udp.checksum.status",
                    "icmp.checksum.status",
                    "icmpv6.checksum.status",
                ]
            };
            for field in transports {
                let status = f.all(field);
                let checked = if f.is_icmp_error() {
                    &status[..status.len().min(1)]
                } else {
                    status
                };
                if checked
                    .iter()
                    .any(|s| s == CHECKSUM_BAD || s == CHECKSUM_ILLEGAL)
                {
                    bad.push(format!("{field} {status:?}"));
                }
            }
            if !f.all("_ws.malformed").is_empty() {
                bad.push(format!("malformed: {:?}", f.all("_ws.malformed")));
            }
            let severity = f
                .all("_ws.expert.severity")
                .iter()
                .filter_map(|s| s.parse::<u32>().ok())
                .max();
            if !f.is_icmp_error() && severity.is_some_and(|s| s >= EXPERT_ERROR) {
                bad.push("expert info of severity error".to_string());
            }
            if !bad.is_empty() {
                problems.push(format!(
                    "{} ({}): {}",
                    o.name(i),
                    f.protocols(),
                    bad.join(", ")
                ));
            }
        }
    }
    assert_none(problems, "have bad checksums or are malformed");
}

#[test]
fn backbone_frames_reach_configured_backends_over_configured_tunnels() {
    let tables = load_tables();
    let mut backends: BTreeSet<String> = tables
        .eips
        .iter()
        .filter_map(|(_, e)| e.backend)
        .map(|b| b.to_string())
        .collect();
    for s in tables.services() {
        backends.extend(s.backends.iter().map(|b| b.address.to_string()));
    }
    let endpoints: BTreeSet<String> = tables
        .paths
        .iter()
        .map(|p| p.destination.to_string())
        .collect();
    let vnis: BTreeSet<String> = tables.regions.iter().map(|r| r.vni.to_string()).collect();
    let mut problems = Vec::new();
    for o in outputs().iter().filter(|o| o.is_backbone()) {
        for (i, f) in o.got.iter().enumerate() {
            let ip_dst = f.all("ip.dst");
            let outer = ip_dst.first().map(String::as_str).unwrap_or("-");
            // The inner destination: the only IPv6 one, or the second IPv4 one.
            let inner = f
                .first("ipv6.dst")
                .or(ip_dst.get(1).map(String::as_str))
                .unwrap_or("-");
            let vni = f.first("vxlan.vni").unwrap_or("-");
            if !endpoints.contains(outer) || !vnis.contains(vni) || !backends.contains(inner) {
                problems.push(format!(
                    "{}: to {inner} in VNI {vni} via {outer}; configured: backends {backends:?}, \
                     VNIs {vnis:?}, path endpoints {endpoints:?}",
                    o.name(i)
                ));
            }
        }
    }
    assert_none(
        problems,
        "go somewhere the configuration does not send traffic",
    );
}

#[test]
fn internet_frames_come_from_eips() {
    let tables = load_tables();
    let eips: BTreeSet<String> = tables
        .eips
        .iter()
        .map(|(_, e)| e.address.to_string())
        .collect();
    let mut problems = Vec::new();
    for o in outputs().iter().filter(|o| !o.is_backbone()) {
        for (i, f) in o.got.iter().enumerate() {
            let src = f.first("ip.src").or(f.first("ipv6.src")).unwrap_or("-");
            if !eips.contains(src) {
                problems.push(format!("{}: from {src}, not an EIP ({eips:?})", o.name(i)));
            }
        }
    }
    assert_none(
        problems,
        "leave toward the Internet from an address that is not an EIP",
    );
}

#[test]
fn outputs_dissect_like_the_expected_pcaps() {
    let mut problems = Vec::new();
    for o in outputs() {
        if o.got.len() != o.expected.len() {
            problems.push(format!(
                "{}/{}: {} frames, {} expected",
                o.scenario,
                o.port,
                o.got.len(),
                o.expected.len()
            ));
        }
        for (i, (g, e)) in o.got.iter().zip(&o.expected).enumerate() {
            let (got, want) = (g.nat_view(o.is_backbone()), e.nat_view(o.is_backbone()));
            if g.protocols() != e.protocols() || got != want {
                problems.push(format!(
                    "{}: {} {got:?}, expected {} {want:?}",
                    o.name(i),
                    g.protocols(),
                    e.protocols(),
                ));
            }
        }
    }
    assert_none(problems, "dissect differently from the expected output");
}
