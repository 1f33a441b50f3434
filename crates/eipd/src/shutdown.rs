//! What `eipd run` prints when it stops: the final pipeline counters, each
//! worker's UMEM frame accounting and batch latencies, the driver's counters.
//! A frame that cannot be accounted for makes the stop fail.

use crate::processor::{sum_counters, Published};
use anyhow::{bail, Result};
use eip_afxdp::{SocketStats, WorkerCounters, WorkerExit};
use eip_control::report;
use eip_dataplane::PortId;
use eip_dataplane::Tables;
use std::sync::Arc;

/// Prints the final report; fails if some worker lost track of a UMEM frame.
pub fn report(
    tables: &Tables,
    queues: &[u32],
    published: &[Arc<Published>],
    exits: &[WorkerExit],
    sockets: &[(u32, PortId, std::io::Result<SocketStats>)],
) -> Result<()> {
    let total = sum_counters(published);
    crate::say!("final counters (table version {}):", tables.version);
    crate::say_raw!("{}", report::counters_text(tables, &total));
    let mut workers = WorkerCounters::default();
    let mut frames_ok = true;
    for exit in exits {
        workers.merge(&exit.counters);
        let f = &exit.frames;
        let ok = exit.audit.is_ok() && f.accounted() == f.total;
        frames_ok &= ok;
        crate::say!(
            "worker queue {}: rx {} tx {}; UMEM frames accounted {}/{} (free {}, fill {}, tx {}, held {}){}",
            exit.queue,
            exit.counters.rx_packets,
            exit.counters.tx_packets,
            f.accounted(),
            f.total,
            f.free,
            f.in_fill(),
            f.in_tx(),
            f.held,
            match &exit.audit {
                Ok(()) => String::new(),
                Err(e) => format!(" AUDIT FAILED: {e}"),
            }
        );
    }
    for (queue, slot) in queues.iter().zip(published) {
        let s = slot
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .summary();
        crate::say!(
            "worker queue {queue}: batch latency p50 {} p90 {} p99 {} p99.9 {} max {} ({} batches)",
            micros(s.quantiles_ns[0]),
            micros(s.quantiles_ns[1]),
            micros(s.quantiles_ns[2]),
            micros(s.quantiles_ns[3]),
            micros(s.max_ns),
            s.count
        );
    }
    crate::say!("driver counters (all workers):");
    for (name, value) in WorkerCounters::NAMES.iter().zip(workers.values()) {
        if value > 0 {
            crate::say!("  {name:<28} {value:>12}");
        }
    }
    for (queue, port, stats) in sockets {
        if let Ok(s) = stats {
            crate::say!("  socket queue {queue} port {port}: {s:?}");
        }
    }
    crate::say!("XDP program detached");
    if !frames_ok {
        bail!("UMEM frame accounting failed (see above)");
    }
    Ok(())
}

/// Nanoseconds as microseconds with one decimal, for latency lines.
pub fn micros(ns: u64) -> String {
    format!("{:.1} us", ns as f64 / 1e3)
}
