//! Where the bytes of a POP with many 1:1 EIPs go, part by part: heap bytes
//! live after each step, counted by an instrumented global allocator (`stats_alloc`)
//! (exact and independent of the allocator's page reuse, unlike the RSS that
//! `scripts/scale.sh` reports for the whole of eipd).
//!
//! A measurement, not a test: it asserts only that each step did its job.
//!
//!   cargo test --release -p eip-control --test measure_memory -- --ignored --nocapture
//!   (MEASURE_EIPS=1000000 by default)

use eip_control::config;
use eip_dataplane::pipeline::Pipeline;
use eip_dataplane::tables::Tables;
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::fs;
use std::net::Ipv4Addr;

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes live now.
fn live() -> usize {
    let s = ALLOCATOR.stats();
    s.bytes_allocated - s.bytes_deallocated
}

const EXAMPLE: &str = include_str!("../../../docs/example-pop.toml");

/// `n` 1:1 EIPs as an EIP list file, as `scripts/scale.sh` writes them.
fn eips_list(n: u32) -> String {
    (0..n)
        .map(|i| {
            let eip = Ipv4Addr::from(0x0A40_0000 + i);
            let backend = Ipv4Addr::from(0x0A80_0000 + i);
            format!(
                "{{\"address\": \"{eip}\", \"region\": \"beijing\", \"backend\": \"{backend}\"}}\n"
            )
        })
        .collect()
}

fn report(what: &str, bytes: usize, n: u32) {
    println!(
        "{what:<58} {:>8.1} MB {:>7.1} B per EIP",
        bytes as f64 / 1e6,
        bytes as f64 / f64::from(n)
    );
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture (release)"]
fn measure_bytes_per_eip() {
    let n: u32 = std::env::var("MEASURE_EIPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("eip-measure-mem-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("pop.toml");
    let with_list = EXAMPLE.replacen("[pop]\n", "[pop]\neips_file = \"eips.jsonl\"\n", 1);
    fs::write(&config_path, with_list).unwrap();
    fs::write(dir.join("eips.jsonl"), eips_list(n)).unwrap();
    println!("{n} extra 1:1 IPv4 EIPs, heap bytes live after each step");

    let before = live();
    let spec = config::load_spec(&config_path).unwrap();
    let description = live() - before;
    report("the operator's description (EipList)", description, n);
    println!(
        "  of which entries: {} B each (plain 1:1 IPv4; others point at a {}-byte EipSpec)",
        eip_dataplane::tables::EipList::PLAIN_ENTRY_BYTES,
        std::mem::size_of::<eip_dataplane::tables::spec::EipSpec>()
    );

    let before = live();
    let tables = Tables::build(&spec, 1).unwrap();
    let built = live() - before;
    report("the forwarding tables (Tables::build)", built, n);
    assert_eq!(tables.eips.len(), spec.eips.len());

    let before = live();
    let mut pipeline = Pipeline::default();
    pipeline.prepare(&tables);
    let counters = live() - before;
    report("one worker's counters (Pipeline::prepare)", counters, n);

    // What a worker publishes for readers (eipd's `on_publish`): per-EIP
    // traffic is shared in place, not copied.
    let before = live();
    let mut copy = eip_dataplane::Counters::default();
    copy.copy_from(pipeline.counters());
    let published = live() - before;
    report("  their publication (Counters::copy_from)", published, n);
    drop(copy);

    // What a reader adds up at each scrape (transient).
    let before = live();
    let mut sum = eip_dataplane::Counters::default();
    sum.merge(pipeline.counters());
    report(
        "  a scrape's sum (transient, not in the total)",
        live() - before,
        n,
    );
    drop(sum);

    report(
        "total for one worker",
        description + built + counters + published,
        n,
    );
    let _ = fs::remove_dir_all(&dir);
}
