//! Where the control plane's time goes with many EIPs, step by step, without
//! root or a data plane: parse of the configuration, table build, first boot
//! (which saves the state file), one change at a time through the single
//! writer (journaled and fsynced, handed to a sink that takes it at once),
//! loading the last committed state, and a restart from it.
//!
//! A measurement, not a test: it asserts only that each step did its job.
//!
//!   cargo test --release -p eip-control --test measure_scale -- --ignored --nocapture
//!   (MEASURE_EIPS=1000000 by default)

use eip_control::api::{AddEip, Op, RemoveEip};
use eip_control::config;
use eip_control::state::{ControlPlane, SinkError, StateFile, TableSink};
use eip_dataplane::tables::spec::EipSpec;
use eip_dataplane::tables::Tables;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const EXAMPLE: &str = include_str!("../../../docs/example-pop.toml");

struct Taken;

impl TableSink for Taken {
    fn publish(&mut self, _: Arc<Tables>, _: Duration) -> Result<(), SinkError> {
        Ok(())
    }
}

/// `n` 1:1 EIPs (10.64.0.0/10 to 10.128.0.0/10), each written by `entry(eip,
/// backend)`.
fn eips(n: u32, entry: impl Fn(Ipv4Addr, Ipv4Addr) -> String) -> String {
    (0..n)
        .map(|i| {
            entry(
                Ipv4Addr::from(0x0A40_0000 + i),
                Ipv4Addr::from(0x0A80_0000 + i),
            )
        })
        .collect()
}

/// The example POP with `n` extra 1:1 EIPs written as `[[eips]]` tables.
fn config_text(n: u32) -> String {
    let listed = eips(n, |eip, backend| {
        format!("[[eips]]\naddress = \"{eip}\"\nregion = \"beijing\"\nbackend = \"{backend}\"\n")
    });
    format!("{EXAMPLE}{listed}")
}

/// The same EIPs as an EIP list file (`[pop] eips_file`), as
/// `scripts/scale.sh` writes them.
fn eips_list(n: u32) -> String {
    eips(n, |eip, backend| {
        format!("{{\"address\": \"{eip}\", \"region\": \"beijing\", \"backend\": \"{backend}\"}}\n")
    })
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    println!("{what:<44} {:>9.1} ms", t.elapsed().as_secs_f64() * 1e3);
    out
}

fn eip(k: u32) -> EipSpec {
    EipSpec::new(
        IpAddr::V4(Ipv4Addr::from(0x0AC8_0000 + k)),
        "beijing",
        Some(IpAddr::V4(Ipv4Addr::from(0x0AC9_0000 + k))),
    )
}

fn size(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture (release)"]
fn measure_control_plane_at_scale() {
    let n: u32 = std::env::var("MEASURE_EIPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("eip-measure-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let toml_path = dir.join("pop-inline.toml");
    fs::write(&toml_path, config_text(n)).unwrap();
    println!(
        "{n} extra EIPs; configuration {} MB as [[eips]] TOML",
        size(&toml_path) / 1_000_000
    );
    let inline = timed("parse the TOML configuration ([[eips]])", || {
        config::load_spec(&toml_path).unwrap()
    });
    drop(inline);
    let config_path = dir.join("pop.toml");
    let with_list = EXAMPLE.replacen("[pop]\n", "[pop]\neips_file = \"eips.jsonl\"\n", 1);
    fs::write(&config_path, with_list).unwrap();
    fs::write(dir.join("eips.jsonl"), eips_list(n)).unwrap();
    println!(
        "the same EIPs as an EIP list file: {} MB",
        size(&dir.join("eips.jsonl")) / 1_000_000
    );
    let spec = timed("parse the configuration (eips_file)", || {
        config::load_spec(&config_path).unwrap()
    });
    let eips = spec.eips.len();
    let tables = timed("build the tables", || Tables::build(&spec, 1).unwrap());
    assert_eq!(tables.eips.len(), eips);
    drop((spec, tables));

    let store = StateFile::new(dir.join("state.json"));
    let boot = timed("first boot: configuration, build, save", || {
        store.boot(&config_path, None).unwrap()
    });
    println!(
        "  state file {} MB",
        size(&dir.join("state.json")) / 1_000_000
    );
    let plane = ControlPlane::new(store.clone(), boot, Taken);

    let mut lat = Vec::new();
    for k in 0..200 {
        let op = if k % 2 == 0 {
            Op::AddEip(AddEip { eip: eip(k / 2) })
        } else {
            Op::RemoveEip(RemoveEip {
                address: eip(k / 2).address,
            })
        };
        let t = Instant::now();
        let reply = plane.apply(&[op], None, false);
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(reply.ok, "{reply:?}");
    }
    assert!(
        plane
            .apply(&[Op::AddEip(AddEip { eip: eip(999) })], None, false)
            .ok
    );
    lat.sort_by(f64::total_cmp);
    println!(
        "{:<44} {:>9.2} / {:.2} / {:.2} ms (p50/p99/max of 200)",
        "one change (journal fsync, no data plane)", lat[100], lat[198], lat[199]
    );
    let version = plane.version();
    drop(plane);

    let doc = timed("load the state file and replay the journal", || {
        store.load().unwrap().unwrap()
    });
    assert_eq!((doc.version, doc.spec.eips.len()), (version, eips + 1));
    drop(doc);
    let boot = timed("restart: load, replay, build", || {
        store.boot(&config_path, None).unwrap()
    });
    assert_eq!(boot.tables.version, version);
    let spec = boot.spec.clone();
    drop(boot);
    let bytes = rmp_serde::to_vec_named(&spec.eips).unwrap();
    let list: Vec<EipSpec> = timed("  of which: decode the EIPs into a Vec", || {
        rmp_serde::from_slice(&bytes).unwrap()
    });
    let list = timed("  of which: index them (EipList)", || {
        eip_dataplane::tables::EipList::from(list)
    });
    assert_eq!(list.len(), eips + 1);
    drop(list);
    timed("save the state file (compaction)", || {
        store.save(version, &spec).unwrap()
    });
    let _ = fs::remove_dir_all(&dir);
}
