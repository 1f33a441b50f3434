//! Writes the seed corpus from the golden pcap fixtures: for each scenario, one
//! input per frame and one with the scenario's first frames as a batch (so a
//! fragment meets its head). Also seeds the request and config targets from the
//! documented examples. Run by `scripts/fuzz.sh seed`; the corpus is committed.

use eip_dataplane::PortId;
use pcap_file::pcap::PcapReader;
use std::fs;
use std::path::{Path, PathBuf};

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = root.join("../pcap-fixtures");
    let out = root.join("corpus");
    let mut written = 0;
    let mut scenarios: Vec<PathBuf> = fs::read_dir(&fixtures)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("input.pcap").exists())
        .collect();
    scenarios.sort();
    let dir = out.join("pipeline");
    fs::create_dir_all(&dir)?;
    for scenario in scenarios {
        let name = scenario.file_name().unwrap().to_string_lossy().into_owned();
        let port: PortId = match fs::read_to_string(scenario.join("input-port")) {
            Ok(p) if p.trim() == "backbone" => 1,
            _ => 0,
        };
        let mut reader = PcapReader::new(fs::File::open(scenario.join("input.pcap"))?)
            .map_err(std::io::Error::other)?;
        let mut frames = Vec::new();
        while let Some(pkt) = reader.next_packet() {
            frames.push(pkt.map_err(std::io::Error::other)?.data.into_owned());
        }
        for (i, f) in frames.iter().enumerate() {
            fs::write(
                dir.join(format!("{name}-{i:02}")),
                eip_fuzz::encode(&[(port, f)]),
            )?;
            written += 1;
        }
        let batch: Vec<(PortId, &[u8])> = frames
            .iter()
            .take(eip_fuzz::MAX_FRAMES)
            .map(|f| (port, f.as_slice()))
            .collect();
        fs::write(dir.join(format!("{name}-batch")), eip_fuzz::encode(&batch))?;
        written += 1;
    }

    let dir = out.join("request");
    fs::create_dir_all(&dir)?;
    let doc = fs::read_to_string(root.join("../docs/control-socket.md"))?;
    for (i, r) in request_examples(&doc).iter().enumerate() {
        fs::write(dir.join(format!("request-{i:02}")), r)?;
        written += 1;
    }

    let dir = out.join("config");
    fs::create_dir_all(&dir)?;
    for (name, path) in [
        ("fixture-pop", fixtures.join("pop.toml")),
        ("bench-pop", fixtures.join("bench/pop-1k.toml")),
        ("example-pop", root.join("../docs/example-pop.toml")),
    ] {
        fs::copy(path, dir.join(name))?;
        written += 1;
    }
    println!("wrote {written} seeds under {}", out.display());
    Ok(())
}

/// The request lines the control-socket documentation shows: every balanced
/// `{"cmd"...}` object in it.
fn request_examples(doc: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(at) = rest.find("{\"cmd\"") {
        let text = &rest[at..];
        let mut depth = 0;
        let end = text.char_indices().find_map(|(i, c)| {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                '\n' => return Some(None),
                _ => {}
            }
            (depth == 0).then_some(Some(i + 1))
        });
        match end {
            Some(Some(end)) => {
                if !out.contains(&&text[..end]) {
                    out.push(&text[..end]);
                }
                rest = &text[end..];
            }
            _ => rest = &text[1..],
        }
    }
    out
}
