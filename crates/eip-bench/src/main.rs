//! Replay benchmark: the production pipeline over in-memory traffic, batched as the
//! AF_XDP workers batch it, on one pinned core.
//!
//! Each case builds its tables, prepares a pool of frames (the pcap fixtures in
//! `pcap-fixtures/bench/`, or synthetic and deterministic where a pcap would be too
//! large: 1M EIPs, 1000 backends), then repeatedly copies a batch into UMEM-like buffers (as
//! the NIC would) and times `Pipeline::process` on it. Reported: packets per second
//! of `process` on one core, ns per packet, and per-batch latency percentiles.
//! The last line is `pipeline_mpps_per_core=<n>` for the 64-byte, 1k-EIP case.

#![forbid(unsafe_code)]

mod minimal;
mod publish;
mod workloads;

use anyhow::{bail, Context, Result};
use arrayvec::ArrayVec;
use clap::Parser;
use eip_dataplane::{Frame, Pipeline, Timestamp, Verdict};
use hdrhistogram::Histogram;
use minimal::MiniTables;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use workloads::Workload;

const HEADROOM: usize = 256;
const CHUNK: usize = 2048;
const MAX_BATCH: usize = 256;

#[derive(Parser)]
#[command(about = "Pipeline replay benchmark (in memory, one core)")]
struct Args {
    /// Seconds of measurement per run.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Runs per case; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Run a fixed number of packets per run instead of `--seconds` (rounded up to
    /// whole batches): the same work on every machine, for instruction counts
    /// (`scripts/callgrind.sh`).
    #[arg(long)]
    packets: Option<u64>,
    /// Frames per batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Only cases whose name contains this.
    #[arg(long)]
    case: Option<String>,
    /// CI mode: short runs (0.3 s x 3).
    #[arg(long)]
    quick: bool,
    /// Core to pin to.
    #[arg(long, default_value_t = 1)]
    core: usize,
    /// Instead of the cases: the 64B, 1M-EIP workload while a control thread
    /// publishes this many table versions (one-EIP changes), against a quiet
    /// run of as many batches (`publish.rs`). Each run lasts until every
    /// version is adopted.
    #[arg(long)]
    publish_versions: Option<u64>,
    /// Core of the control thread of `--publish-versions` (default: another
    /// core than `--core`).
    #[arg(long)]
    control_core: Option<usize>,
    /// Replay this pcap (with --config) as an extra case.
    #[arg(long, requires = "config")]
    pcap: Option<PathBuf>,
    #[arg(long)]
    config: Option<PathBuf>,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One case's measured figures. `mpps` is the median over runs of packets / time in
/// `process`; the batch percentiles pool all runs. On a shared machine the median
/// batch shows the undisturbed rate, the mean includes preemption.
struct Result1 {
    name: String,
    batch: usize,
    frames: usize,
    mpps: f64,
    ns_per_packet: f64,
    batch_p50_ns: u64,
    batch_p99_ns: u64,
    batch_p999_ns: u64,
    tx_share: f64,
    build_ms: f64,
    bytes_per_eip: f64,
    /// The minimal loop over the same frames (median of the same runs).
    minimal_ns_per_packet: f64,
    /// Share of frames the minimal loop transmitted: below 100% its figure is not
    /// a bound for the case.
    minimal_tx_share: f64,
    /// MiB on transparent huge pages and MiB resident while the pipeline ran.
    huge_pages: Option<(u64, u64)>,
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.seconds = 0.3;
        args.runs = 3;
    }
    if args.batch == 0 || args.batch > MAX_BATCH {
        bail!("--batch must be 1..={MAX_BATCH}");
    }
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let pinned = cores
        .iter()
        .find(|c| c.id == args.core)
        .or(cores.first())
        .map(|c| core_affinity::set_for_current(*c))
        .unwrap_or(false);
    if let Some(versions) = args.publish_versions {
        let control = match args.control_core {
            Some(id) => cores.iter().find(|c| c.id == id).copied(),
            None => cores.iter().find(|c| c.id != args.core).copied(),
        };
        eprintln!(
            "pinned to core {}: {pinned}; control thread on core {:?}; batch {}; {} run(s)",
            args.core,
            control.map(|c| c.id),
            args.batch,
            args.runs
        );
        let (w, spec) = workloads::small_frames_to(1_000_000, 65_536);
        eprintln!(
            "case {}: {} frames in pool, tables built in {:.1} ms",
            w.name,
            w.frames.len(),
            w.build_ms
        );
        let report = publish::measure(w, spec, versions, args.runs, args.batch, control)?;
        report.print();
        return Ok(());
    }
    let length = match args.packets {
        Some(n) => format!("{n} packets"),
        None => format!("{:.1} s", args.seconds),
    };
    eprintln!(
        "pinned to core {}: {pinned}; batch {}; {} run(s) of {length} per case",
        args.core, args.batch, args.runs
    );

    type Make = Box<dyn Fn() -> Result<Workload>>;
    let mut cases: Vec<(String, Make)> = vec![
        (
            workloads::HEADLINE.into(),
            Box::new(workloads::small_frames_1k_eips),
        ),
        (workloads::IMIX.into(), Box::new(workloads::imix_1k_eips)),
        (
            workloads::RETURNS.into(),
            Box::new(|| Ok(workloads::returns_1k_eips())),
        ),
        (
            workloads::MILLION.into(),
            Box::new(|| Ok(workloads::small_frames_1m_eips())),
        ),
        (
            workloads::SERVICE.into(),
            Box::new(|| Ok(workloads::service_1000_backends())),
        ),
        (
            workloads::HEADLINE_LIMITED.into(),
            Box::new(workloads::small_frames_1k_eips_limited),
        ),
        (
            workloads::RETURNS_LIMITED.into(),
            Box::new(|| Ok(workloads::returns_1k_eips_limited())),
        ),
        (
            workloads::HEADLINE_LISTED.into(),
            Box::new(workloads::small_frames_1k_eips_listed),
        ),
    ];
    if let (Some(pcap), Some(config)) = (args.pcap.clone(), args.config.clone()) {
        let name = format!("pcap {}", pcap.display());
        cases.push((name, Box::new(move || workloads::from_pcap(&config, &pcap))));
    }

    let mut results = Vec::new();
    for (name, make) in &cases {
        if args.case.as_deref().is_some_and(|c| !name.contains(c)) {
            continue;
        }
        let w = make()?;
        eprintln!(
            "case {}: {} frames in pool, tables built in {:.1} ms",
            w.name,
            w.frames.len(),
            w.build_ms
        );
        results.push(measure(&w, &args).with_context(|| format!("case {}", w.name))?);
    }
    print_table(&results);
    if let Some(note) = huge_pages_note(&results) {
        println!("\n{note}");
    }
    if let Some(path) = &args.json {
        let v: Vec<_> = results
            .iter()
            .map(|r| {
                serde_json::json!({
                    "case": r.name, "mpps_per_core": r.mpps, "ns_per_packet": r.ns_per_packet,
                    "batch_p50_ns": r.batch_p50_ns, "batch_p99_ns": r.batch_p99_ns, "batch_p999_ns": r.batch_p999_ns,
                    "tx_share": r.tx_share, "table_build_ms": r.build_ms, "table_bytes_per_eip": r.bytes_per_eip,
                    "minimal_ns_per_packet": r.minimal_ns_per_packet, "minimal_tx_share": r.minimal_tx_share,
                })
            })
            .collect();
        std::fs::write(path, serde_json::to_string_pretty(&v)?)?;
    }
    if let Some(r) = results.iter().find(|r| r.name == workloads::HEADLINE) {
        println!("pipeline_mpps_per_core={:.2}", r.mpps);
    }
    Ok(())
}

fn measure(w: &Workload, args: &Args) -> Result<Result1> {
    let mini = MiniTables::new(&w.tables, w.returns);
    let mut runs = Vec::with_capacity(args.runs);
    let mut minimal_runs = Vec::with_capacity(args.runs);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut tx_share = 0.0;
    let mut minimal_tx_share = 0.0;
    let mut huge_pages = None;
    let length = match args.packets {
        Some(n) => Length::Packets(n),
        None => Length::Seconds(args.seconds),
    };
    for _ in 0..args.runs {
        // Pipeline and minimal loop alternate within a run: their ratio is
        // measured under the same load.
        let mut pipeline = Pipeline::default();
        // As a worker that has forwarded with these tables before: adopting
        // them (sizing the per-EIP counters) is a per-version cost, outside
        // the run (and outside `Pipeline::process`, which callgrind counts).
        pipeline.prepare(&w.tables);
        let now = std::cell::Cell::new(1_000_000_000u64);
        let (mpps, share, h) = one_run(&w.frames, w.input_port, args.batch, length, |f, v| {
            now.set(now.get() + 1_000);
            pipeline.process(Timestamp(now.get()), &w.tables, f, v)
        });
        runs.push(mpps);
        huge_pages = huge_pages_mib();
        hist.add(&h)?;
        tx_share = share;
        let (mpps, share, _) = one_run(&w.frames, w.input_port, args.batch, length, |f, v| {
            mini.process(f, v)
        });
        minimal_runs.push(mpps);
        minimal_tx_share = share;
    }
    let mpps = median(&mut runs);
    Ok(Result1 {
        name: w.name.clone(),
        batch: args.batch,
        frames: w.frames.len(),
        mpps,
        ns_per_packet: 1_000.0 / mpps,
        batch_p50_ns: hist.value_at_quantile(0.5),
        batch_p99_ns: hist.value_at_quantile(0.99),
        batch_p999_ns: hist.value_at_quantile(0.999),
        tx_share,
        build_ms: w.build_ms,
        bytes_per_eip: w.tables.heap_bytes() as f64 / w.tables.eips.len().max(1) as f64,
        minimal_ns_per_packet: 1_000.0 / median(&mut minimal_runs),
        minimal_tx_share,
        huge_pages,
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// How long one run lasts.
#[derive(Clone, Copy)]
pub(crate) enum Length<'a> {
    Seconds(f64),
    Packets(u64),
    /// Until the flag is set (looked at after every batch).
    Until(&'a AtomicBool),
}

/// One run of `process` (the pipeline or the minimal loop) over the pool, batch by
/// batch: returns Mpps of `process`, the share of frames transmitted, and the
/// per-batch latency histogram.
fn one_run(
    pool: &[Vec<u8>],
    port: u16,
    batch: usize,
    length: Length<'_>,
    mut process: impl FnMut(&mut [Frame<'_>], &mut [Verdict]),
) -> (f64, f64, Histogram<u64>) {
    observed_run(pool, port, batch, length, |f, v| process(f, v), |(), _| {})
}

/// [`one_run`], and after each batch, outside its timing, `after` gets what
/// `process` returned for it and its duration (ns).
pub(crate) fn observed_run<R>(
    pool: &[Vec<u8>],
    port: u16,
    batch: usize,
    length: Length<'_>,
    mut process: impl FnMut(&mut [Frame<'_>], &mut [Verdict]) -> R,
    mut after: impl FnMut(R, u64),
) -> (f64, f64, Histogram<u64>) {
    let mut buffers: Vec<Vec<u8>> = (0..batch).map(|_| vec![0u8; CHUNK]).collect();
    let mut lens = vec![0usize; batch];
    let mut verdicts = vec![Verdict::ToKernel; batch];
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    let started = Instant::now();
    let mut busy = Duration::ZERO;
    let mut packets = 0u64;
    let mut tx = 0u64;
    let mut next = 0usize;
    let done = |packets: u64| match length {
        Length::Seconds(s) => started.elapsed() >= Duration::from_secs_f64(s),
        Length::Packets(n) => packets >= n,
        Length::Until(flag) => flag.load(Ordering::Acquire),
    };
    while !done(packets) {
        // Several batches between clock checks keep the loop itself cheap.
        for _ in 0..64 {
            match length {
                Length::Packets(n) if packets >= n => break,
                Length::Until(flag) if flag.load(Ordering::Acquire) => break,
                _ => {}
            }
            for (buf, len) in buffers.iter_mut().zip(lens.iter_mut()) {
                let f = &pool[next];
                buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
                *len = f.len();
                next += 1;
                if next == pool.len() {
                    next = 0;
                }
            }
            let mut frames: ArrayVec<Frame<'_>, MAX_BATCH> = buffers
                .iter_mut()
                .zip(&lens)
                .map(|(b, &len)| Frame::new(b, HEADROOM, len, port))
                .collect();
            let t0 = Instant::now();
            let r = process(&mut frames, &mut verdicts[..batch]);
            let dt = t0.elapsed();
            busy += dt;
            let ns = dt.as_nanos().max(1) as u64;
            let _ = hist.record(ns);
            after(r, ns);
            packets += batch as u64;
            tx += verdicts[..batch]
                .iter()
                .filter(|v| matches!(v, Verdict::Tx(_)))
                .count() as u64;
        }
    }
    let mpps = packets as f64 / busy.as_secs_f64() / 1e6;
    (mpps, tx as f64 / packets as f64, hist)
}

/// MiB of this process on transparent huge pages and MiB resident, from
/// `/proc/self/smaps_rollup`.
fn huge_pages_mib() -> Option<(u64, u64)> {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let kib = |field: &str| -> Option<u64> {
        let line = rollup.lines().find(|l| l.starts_with(field))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((kib("AnonHugePages:")? / 1024, kib("Rss:")? / 1024))
}

/// A line on huge pages under the table: the 1M-EIP case's rate depends on
/// them (TLB misses), and glibc uses them only when asked
/// (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, as the packaged unit does) and
/// where the kernel offers them.
fn huge_pages_note(results: &[Result1]) -> Option<String> {
    let cases: Vec<String> = results
        .iter()
        .filter_map(|r| {
            let (huge, rss) = r.huge_pages?;
            Some(format!("{} {huge} of {rss}", r.name))
        })
        .collect();
    if cases.is_empty() {
        return None;
    }
    let asked = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.hugetlb=1"));
    Some(format!(
        "Transparent huge pages while each case ran, MiB of resident: {} ({}).",
        cases.join("; "),
        if asked {
            "asked for with GLIBC_TUNABLES=glibc.malloc.hugetlb=1"
        } else {
            "not asked for: GLIBC_TUNABLES=glibc.malloc.hugetlb=1 does, as the packaged unit"
        }
    ))
}

fn print_table(results: &[Result1]) {
    println!();
    println!(
        "| case | frames in pool | Mpps/core | ns/packet | minimal loop ns/packet | ratio | Mpps at median batch | batch p50 (ns) | batch p99 (ns) | batch p99.9 (ns) | forwarded | table build (ms) | table bytes/EIP |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        // The minimal loop is a bound only where it forwards what the pipeline does.
        let bound = if r.minimal_tx_share + 1e-9 >= r.tx_share {
            format!(
                "{:.1} | {:.2}x",
                r.minimal_ns_per_packet,
                r.ns_per_packet / r.minimal_ns_per_packet
            )
        } else {
            format!(
                "({:.1}: forwards {:.0}%) | -",
                r.minimal_ns_per_packet,
                r.minimal_tx_share * 100.0
            )
        };
        println!(
            "| {} | {} | {:.2} | {:.1} | {bound} | {:.2} | {} | {} | {} | {:.0}% | {:.1} | {:.0} |",
            r.name,
            r.frames,
            r.mpps,
            r.ns_per_packet,
            r.batch as f64 * 1e3 / r.batch_p50_ns as f64,
            r.batch_p50_ns,
            r.batch_p99_ns,
            r.batch_p999_ns,
            r.tx_share * 100.0,
            r.build_ms,
            r.bytes_per_eip
        );
    }
}
