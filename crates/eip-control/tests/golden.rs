//! Golden pcap tests: every scenario under `pcap-fixtures/` is replayed through the
//! production pipeline (the same code path as `eipd replay`) and must transmit exactly
//! the expected frames on every port, byte for byte and with the input timestamps,
//! and move exactly the expected counters.
//!
//! The expected outputs are generated from the written specification by
//! `pcap-fixtures/make_fixtures.py`, independently of the Rust code; these tests never
//! run Python. See `pcap-fixtures/README.md` for the scenarios and the comparison rule.

use eip_control::pcap::{CaptureReader, Record};
use eip_control::{config, replay, report};
use eip_dataplane::testkit::host::TempDir;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};

/// One test per scenario directory, so that a failure names its scenario.
macro_rules! golden {
    ($($test:ident: $dir:literal,)*) => {
        /// Every scenario directory, in the order of the tests.
        const SCENARIOS: &[&str] = &[$($dir),*];
        $(
            #[test]
            fn $test() {
                check($dir);
            }
        )*
    };
}

golden! {
    ingress_1to1: "ingress-1to1",
    ingress_service: "ingress-service",
    icmp_echo: "icmp-echo",
    return_traffic: "return",
    tunnel_reject: "tunnel-reject",
    icmp_error_ingress: "icmp-error-ingress",
    icmp_error_return: "icmp-error-return",
    mtu: "mtu",
    fragments: "fragments",
    ttl_ingress: "ttl-ingress",
    ttl_return: "ttl-return",
    ipv6: "ipv6",
    vlan: "vlan",
    not_ours: "not-ours",
    malformed: "malformed",
}

#[test]
fn every_scenario_directory_has_a_test() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixtures())
        .expect("pcap-fixtures/ is readable")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.join("input.pcap").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let tested: BTreeSet<String> = SCENARIOS.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        on_disk, tested,
        "add new scenario directories to the golden! list"
    );
}

/// Scenarios whose input also exists as pcapng (`input.pcapng`, converted from
/// `input.pcap` by Wireshark's editcap, see `pcap-fixtures/README.md`).
const PCAPNG_TWINS: &[&str] = &["return"];

/// A pcapng input replays exactly like its classic twin: every output file
/// byte-identical (so also equal to the expected outputs) and the same counters.
#[test]
fn pcapng_twin_replays_like_its_pcap() {
    for scenario in PCAPNG_TWINS {
        let classic = TempDir::new(&format!("{scenario}-pcap"));
        let pcapng = TempDir::new(&format!("{scenario}-pcapng"));
        let problems = differences_of(scenario, "input.pcap", &classic);
        assert!(problems.is_empty(), "{scenario}/input.pcap: {problems:#?}");
        let problems = differences_of(scenario, "input.pcapng", &pcapng);
        assert!(
            problems.is_empty(),
            "{scenario}/input.pcapng: {problems:#?}"
        );
        let (_, tables) = config::load(&fixtures().join("pop.toml")).expect("pop.toml loads");
        for p in &tables.ports {
            let file = format!("{}.pcap", p.name);
            let from_pcap = std::fs::read(classic.0.join(&file)).expect("output exists");
            let from_pcapng = std::fs::read(pcapng.0.join(&file)).expect("output exists");
            assert!(
                from_pcap == from_pcapng,
                "{scenario}: {file} from input.pcapng differs from {file} from input.pcap"
            );
        }
        let transmitted = tables
            .ports
            .iter()
            .map(|p| read_pcap(&classic.0.join(format!("{}.pcap", p.name))).len())
            .sum::<usize>();
        assert!(
            transmitted > 0,
            "{scenario}: the twin check needs a scenario that transmits"
        );
    }
}

#[test]
fn every_pcapng_twin_is_listed() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixtures())
        .expect("pcap-fixtures/ is readable")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.join("input.pcapng").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let listed: BTreeSet<String> = PCAPNG_TWINS.iter().map(|s| s.to_string()).collect();
    assert_eq!(on_disk, listed, "list pcapng twins in PCAPNG_TWINS");
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pcap-fixtures")
}

fn read_pcap(path: &Path) -> Vec<Record> {
    let file = File::open(path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    CaptureReader::new(file)
        .and_then(CaptureReader::read_all)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Pipeline bugs found by a scenario and not fixed yet: (scenario, why, the start of
/// each difference it causes). Such a scenario passes while it shows exactly these
/// differences, and fails once they are gone, so that the entry gets removed.
const KNOWN_FAILURES: &[(&str, &str, &[&str])] = &[];

/// Replays one scenario; compares outputs and counters; fails with every difference.
fn check(scenario: &str) {
    let problems = differences(scenario);
    let report = || {
        format!(
            "scenario {scenario:?}: {} difference(s) from pcap-fixtures/{scenario}/expected\n\n{}",
            problems.len(),
            problems.join("\n\n")
        )
    };
    let Some((_, why, known)) = KNOWN_FAILURES.iter().find(|k| k.0 == scenario) else {
        assert!(problems.is_empty(), "{}", report());
        return;
    };
    assert!(
        !problems.is_empty(),
        "scenario {scenario:?} passes now: remove it from KNOWN_FAILURES ({why})"
    );
    let expected = problems.len() == known.len()
        && problems
            .iter()
            .zip(known.iter())
            .all(|(p, k)| p.starts_with(k));
    assert!(expected, "known failure ({why}) changed:\n{}", report());
    eprintln!("scenario {scenario:?}: known failure: {why}\n{}", report());
}

/// Every way the replay of `scenario` differs from its expected outputs and counters.
fn differences(scenario: &str) -> Vec<String> {
    differences_of(scenario, "input.pcap", &TempDir::new(scenario))
}

/// Every way the replay of `input` (a file of `scenario`'s directory), written to
/// `out`, differs from the scenario's expected outputs and counters.
fn differences_of(scenario: &str, input: &str, out: &TempDir) -> Vec<String> {
    let root = fixtures();
    let (_, tables) = config::load(&root.join("pop.toml")).expect("pop.toml loads");
    let dir = root.join(scenario);
    let port_name = match std::fs::read_to_string(dir.join("input-port")) {
        Ok(name) => name.trim().to_string(),
        Err(_) => tables.ports[tables.internet_port as usize].name.clone(),
    };
    let port = tables
        .port_by_name(&port_name)
        .unwrap_or_else(|| panic!("input-port {port_name:?} is not a port of pop.toml"));
    let outcome = replay::replay_files(
        &tables,
        &dir.join(input),
        &out.0,
        port,
        replay::DEFAULT_BATCH,
        None,
    )
    .unwrap_or_else(|e| panic!("replay of {scenario}/{input} failed: {e}"));

    let mut problems = Vec::new();
    for p in &tables.ports {
        let file = format!("{}.pcap", p.name);
        let expected = read_pcap(&dir.join("expected").join(&file));
        let got = read_pcap(&out.0.join(&file));
        compare_frames(&p.name, &expected, &got, &mut problems);
    }
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("expected-counters.json"))
            .expect("expected-counters.json is readable"),
    )
    .expect("expected-counters.json is JSON");
    compare_counters(
        &expected,
        &report::counters_json(&tables, &outcome.counters),
        &mut problems,
    );
    problems
}

/// Frame-by-frame comparison of one port's output.
fn compare_frames(port: &str, expected: &[Record], got: &[Record], problems: &mut Vec<String>) {
    if expected.len() != got.len() {
        problems.push(format!(
            "port {port:?}: {} frame(s) expected, {} transmitted",
            expected.len(),
            got.len()
        ));
    }
    for (i, (e, g)) in expected.iter().zip(got).enumerate() {
        if e.timestamp_ns != g.timestamp_ns {
            problems.push(format!(
                "port {port:?}, frame {i}: timestamp {} ns expected, {} ns written",
                e.timestamp_ns, g.timestamp_ns
            ));
        }
        if e.data != g.data {
            problems.push(frame_diff(port, i, &e.data, &g.data));
        }
    }
}

/// A readable description of how two frames differ: where, in which header field,
/// and a hex dump of both around the first difference.
fn frame_diff(port: &str, index: usize, expected: &[u8], got: &[u8]) -> String {
    let first = expected
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(got.len()));
    let differing = expected.iter().zip(got).filter(|(a, b)| a != b).count()
        + expected.len().abs_diff(got.len());
    let mut s = format!(
        "port {port:?}, frame {index}: first difference at offset {first} ({}), \
         {differing} byte(s) differ; length expected {}, got {}",
        field_at(expected, first),
        expected.len(),
        got.len()
    );
    let start = (first / 16).saturating_sub(1) * 16;
    let end = (first / 16 + 4) * 16;
    for row in (start..end.min(expected.len().max(got.len()))).step_by(16) {
        let hex = |frame: &[u8]| -> String {
            (row..row + 16)
                .map(|o| {
                    frame
                        .get(o)
                        .map_or("  ".to_string(), |b| format!("{b:02x}"))
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let marks: String = (row..row + 16)
            .map(|o| {
                if expected.get(o) == got.get(o) {
                    "   "
                } else {
                    "^^ "
                }
            })
            .collect();
        let _ = write!(
            s,
            "\n  {row:04x}  expected {}\n        got      {}",
            hex(expected),
            hex(got)
        );
        if marks.contains('^') {
            let _ = write!(s, "\n                 {}", marks.trim_end());
        }
    }
    s
}

/// Exact match of every counter: the listed ones must have their value, all others 0.
fn compare_counters(expected: &Value, got: &Value, problems: &mut Vec<String>) {
    for group in ["drops", "events"] {
        let want = expected[group].as_object().cloned().unwrap_or_default();
        let have = got[group]
            .as_object()
            .expect("counters_json has drops and events");
        for name in want.keys().filter(|k| !have.contains_key(*k)) {
            problems.push(format!(
                "counter {group}.{name} is expected but does not exist"
            ));
        }
        for (name, value) in have {
            let w = want.get(name).and_then(Value::as_u64).unwrap_or(0);
            let h = value.as_u64().unwrap_or(0);
            if w != h {
                problems.push(format!("counter {group}.{name}: expected {w}, got {h}"));
            }
        }
    }
}

/// Names the header field at `offset` of an Ethernet frame: walks Ethernet, VLAN
/// tags, IPv4/IPv6, TCP/UDP/ICMP, VXLAN (to the inner frame) and ICMP quotes.
fn field_at(frame: &[u8], offset: usize) -> String {
    eth_field(frame, 0, "", offset).unwrap_or_else(|| "beyond the headers".to_string())
}

type Fields = &'static [(usize, usize, &'static str)];

/// The field of `fields` (offset, length, name) relative to `base` covering `offset`.
fn in_fields(fields: Fields, base: usize, prefix: &str, offset: usize) -> Option<String> {
    fields
        .iter()
        .find(|(at, len, _)| (base + at..base + at + len).contains(&offset))
        .map(|(_, _, name)| format!("{prefix}{name}"))
}

fn be16(frame: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]))
}

fn eth_field(frame: &[u8], base: usize, prefix: &str, offset: usize) -> Option<String> {
    const ETH: Fields = &[(0, 6, "Ethernet destination"), (6, 6, "Ethernet source")];
    if let Some(f) = in_fields(ETH, base, prefix, offset) {
        return Some(f);
    }
    let mut at = base + 12;
    let mut ethertype = be16(frame, at)?;
    while matches!(ethertype, 0x8100 | 0x88A8) {
        if (at..at + 4).contains(&offset) {
            return Some(format!("{prefix}VLAN tag"));
        }
        at += 4;
        ethertype = be16(frame, at)?;
    }
    if (at..at + 2).contains(&offset) {
        return Some(format!("{prefix}ethertype"));
    }
    match ethertype {
        0x0800 => ipv4_field(frame, at + 2, prefix, offset),
        0x86DD => ipv6_field(frame, at + 2, prefix, offset),
        _ => None,
    }
}

fn ipv4_field(frame: &[u8], base: usize, prefix: &str, offset: usize) -> Option<String> {
    const IPV4: Fields = &[
        (0, 1, "IPv4 version/IHL"),
        (1, 1, "IPv4 DSCP/ECN"),
        (2, 2, "IPv4 total length"),
        (4, 2, "IPv4 identification"),
        (6, 2, "IPv4 flags/fragment offset"),
        (8, 1, "IPv4 TTL"),
        (9, 1, "IPv4 protocol"),
        (10, 2, "IPv4 header checksum"),
        (12, 4, "IPv4 source"),
        (16, 4, "IPv4 destination"),
    ];
    if let Some(f) = in_fields(IPV4, base, prefix, offset) {
        return Some(f);
    }
    let header = usize::from(*frame.get(base)? & 0x0F) * 4;
    if offset < base + header {
        return Some(format!("{prefix}IPv4 options"));
    }
    if be16(frame, base + 6)? & 0x1FFF != 0 {
        return Some(format!("{prefix}IPv4 fragment data"));
    }
    l4_field(frame, base + header, *frame.get(base + 9)?, prefix, offset)
}

fn ipv6_field(frame: &[u8], base: usize, prefix: &str, offset: usize) -> Option<String> {
    const IPV6: Fields = &[
        (0, 4, "IPv6 version/class/flow label"),
        (4, 2, "IPv6 payload length"),
        (6, 1, "IPv6 next header"),
        (7, 1, "IPv6 hop limit"),
        (8, 16, "IPv6 source"),
        (24, 16, "IPv6 destination"),
    ];
    in_fields(IPV6, base, prefix, offset)
        .or_else(|| l4_field(frame, base + 40, *frame.get(base + 6)?, prefix, offset))
}

fn l4_field(
    frame: &[u8],
    base: usize,
    protocol: u8,
    prefix: &str,
    offset: usize,
) -> Option<String> {
    const TCP: Fields = &[
        (0, 2, "TCP source port"),
        (2, 2, "TCP destination port"),
        (4, 4, "TCP sequence number"),
        (8, 4, "TCP acknowledgment number"),
        (12, 2, "TCP data offset/flags"),
        (14, 2, "TCP window"),
        (16, 2, "TCP checksum"),
        (18, 2, "TCP urgent pointer"),
    ];
    const UDP: Fields = &[
        (0, 2, "UDP source port"),
        (2, 2, "UDP destination port"),
        (4, 2, "UDP length"),
        (6, 2, "UDP checksum"),
    ];
    const ICMP: Fields = &[
        (0, 1, "ICMP type"),
        (1, 1, "ICMP code"),
        (2, 2, "ICMP checksum"),
        (4, 4, "ICMP rest of header"),
    ];
    const VXLAN: Fields = &[
        (0, 4, "VXLAN flags"),
        (4, 3, "VXLAN VNI"),
        (7, 1, "VXLAN reserved"),
    ];
    match protocol {
        6 => in_fields(TCP, base, prefix, offset).or_else(|| {
            let header = usize::from(*frame.get(base + 12)? >> 4) * 4;
            let part = if offset < base + header {
                "TCP options"
            } else {
                "TCP payload"
            };
            Some(format!("{prefix}{part}"))
        }),
        17 => in_fields(UDP, base, prefix, offset).or_else(|| {
            if be16(frame, base + 2)? != 4789 {
                return Some(format!("{prefix}UDP payload"));
            }
            in_fields(VXLAN, base + 8, prefix, offset)
                .or_else(|| eth_field(frame, base + 16, &format!("{prefix}inner "), offset))
        }),
        1 | 58 => in_fields(ICMP, base, prefix, offset).or_else(|| {
            let quoted = format!("{prefix}quoted ");
            match *frame.get(base + 8)? >> 4 {
                4 => ipv4_field(frame, base + 8, &quoted, offset),
                6 => ipv6_field(frame, base + 8, &quoted, offset),
                _ => Some(format!("{prefix}ICMP data")),
            }
        }),
        _ => None,
    }
}

/// Keeps the helpers honest: a difference is reported with the right field names.
#[test]
fn frame_diffs_name_the_field() {
    let expected = read_pcap(&fixtures().join("ingress-1to1/expected/backbone.pcap"));
    let frame = &expected[0].data;
    assert_eq!(field_at(frame, 0), "Ethernet destination");
    assert_eq!(field_at(frame, 24), "IPv4 header checksum");
    assert_eq!(field_at(frame, 34), "UDP source port");
    assert_eq!(field_at(frame, 46), "VXLAN VNI");
    assert_eq!(field_at(frame, 64 + 8), "inner IPv4 TTL");
    assert_eq!(field_at(frame, 64 + 20 + 16), "inner TCP checksum");
    let mut changed = frame.clone();
    changed[64 + 8] ^= 1;
    let diff = frame_diff("backbone", 0, frame, &changed);
    assert!(
        diff.contains("offset 72 (inner IPv4 TTL), 1 byte(s) differ"),
        "{diff}"
    );
    assert!(diff.contains("^^"), "{diff}");
}

/// The scenarios rely on these properties of the fixture POP.
#[test]
fn fixture_pop_has_what_the_scenarios_need() {
    let tables = config::load(&fixtures().join("pop.toml"))
        .expect("pop.toml loads")
        .1;
    let beijing = tables
        .regions
        .iter()
        .find(|r| r.name == "beijing")
        .expect("region beijing");
    let usable: BTreeSet<u16> = beijing.path_table.iter().copied().collect();
    assert_eq!(usable.len(), 2, "beijing spreads flows over two paths");
    assert!(
        tables.paths.iter().any(|p| p.mtu == 1400),
        "a small-MTU path for the MTU scenarios"
    );
}
