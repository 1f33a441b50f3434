//! The `eipd replay --dropped` file, read back by tshark (Wireshark), which shares
//! no code with the writer: every scenario of `pcap-fixtures/` with drops is
//! replayed with a dropped-frames pcapng, and tshark must show one packet comment
//! per dropped frame, the drop reasons the counters count, on the frames as they
//! arrived, with their nanosecond timestamps.
//!
//! Needs `tshark` (Debian: `apt-get install -y tshark`); the test fails without it
//! (scripts/install-deps.sh installs it).

use eip_control::pcap::{CaptureReader, Record};
use eip_control::{config, replay};
use eip_dataplane::counters::{DropReason, Event};
use eip_dataplane::testkit::host::{tshark_comment_field, TempDir};
use eip_dataplane::Tables;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pcap-fixtures")
}

fn load_tables() -> Tables {
    config::load(&fixtures().join("pop.toml"))
        .expect("pop.toml loads")
        .1
}

fn read_capture(path: &Path) -> Vec<Record> {
    let file = File::open(path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    CaptureReader::new(file)
        .and_then(CaptureReader::read_all)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn assert_none(problems: Vec<String>, what: &str) {
    assert!(
        problems.is_empty(),
        "{} {what}:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Every scenario with drops, replayed with `--dropped`: tshark reads one comment
/// per dropped frame; the comments are the drop reasons the counters count (less
/// the drops answered with an ICMP error, which leave as that error); each frame is
/// an input frame, byte for byte, with its timestamp to the nanosecond.
#[test]
fn dropped_frames_carry_their_reason_as_a_comment() {
    let tables = load_tables();
    let field = tshark_comment_field();
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("pcap-fixtures/ is readable")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.join("input.pcap").is_file())
        .collect();
    scenarios.sort();
    let mut problems = Vec::new();
    let mut checked = 0;
    for dir in &scenarios {
        let scenario = dir.file_name().unwrap().to_string_lossy().into_owned();
        let port = match std::fs::read_to_string(dir.join("input-port")) {
            Ok(name) => tables
                .port_by_name(name.trim())
                .expect("input-port names a port"),
            Err(_) => tables.internet_port,
        };
        let out = TempDir::new(&format!("{scenario}-dropped"));
        let dropped_file = out.0.join("dropped.pcapng");
        let input = dir.join("input.pcap");
        let outcome = replay::replay_files(
            &tables,
            &input,
            &out.0.join("ports"),
            port,
            replay::DEFAULT_BATCH,
            Some(&dropped_file),
        )
        .unwrap_or_else(|e| panic!("replay of {scenario} failed: {e}"));
        if outcome.counters.total_drops() == 0 {
            continue;
        }
        checked += 1;

        let mut cmd = Command::new("tshark");
        cmd.arg("-n").arg("-r").arg(&dropped_file);
        cmd.args(["-T", "fields", "-E", "header=n", "-E", "separator=/t"]);
        cmd.args(["-e", field, "-e", "frame.time_epoch"]);
        let shown = cmd.output().expect("tshark runs");
        assert!(
            shown.status.success(),
            "tshark failed on {scenario}'s dropped frames: {}",
            String::from_utf8_lossy(&shown.stderr)
        );
        let shown = String::from_utf8(shown.stdout).expect("tshark prints UTF-8");
        let shown: Vec<(String, String)> = shown
            .lines()
            .map(|l| {
                let (comment, time) = l.split_once('\t').unwrap_or((l, ""));
                (comment.to_string(), time.to_string())
            })
            .collect();

        let mut by_reason: BTreeMap<&str, u64> = BTreeMap::new();
        for (comment, _) in &shown {
            *by_reason.entry(comment.as_str()).or_default() += 1;
        }
        let answered = |r: DropReason| match r {
            DropReason::TtlExpired => outcome.counters.happened(Event::IcmpTimeExceededSent),
            DropReason::TooBig => outcome.counters.happened(Event::IcmpTooBigSent),
            _ => 0,
        };
        let expected: BTreeMap<&str, u64> = DropReason::ALL
            .iter()
            .map(|r| (r.label(), outcome.counters.dropped(*r) - answered(*r)))
            .filter(|(_, n)| *n > 0)
            .collect();
        if by_reason != expected {
            problems.push(format!(
                "{scenario}: tshark shows comments {by_reason:?}, counters say {expected:?}"
            ));
        }
        if shown.len() as u64 != outcome.dropped {
            problems.push(format!(
                "{scenario}: tshark shows {} frames, replay dropped {}",
                shown.len(),
                outcome.dropped
            ));
        }

        let arrived: BTreeMap<u64, Vec<u8>> = read_capture(&input)
            .into_iter()
            .map(|r| (r.timestamp_ns, r.data))
            .collect();
        let written = read_capture(&dropped_file);
        for (i, (record, (comment, time))) in written.iter().zip(&shown).enumerate() {
            let ns = record.timestamp_ns;
            let epoch = format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000);
            if *time != epoch {
                problems.push(format!(
                    "{scenario}: dropped frame {i} ({comment}): tshark time {time}, written {epoch}"
                ));
            }
            if arrived.get(&ns) != Some(&record.data) {
                problems.push(format!(
                    "{scenario}: dropped frame {i} ({comment}) is not the input frame of time {epoch}"
                ));
            }
        }
    }
    assert!(checked >= 2, "only {checked} scenario(s) with drops");
    assert_none(problems, "problem(s) with the dropped-frames files");
}
