//! Next hops given as addresses: resolved from the kernel's neighbour table at
//! start (waiting a while, soliciting the missing ones) and re-read every second
//! after, so that a changed MAC reaches the tables.

use anyhow::{bail, Context, Result};
use eip_control::neighbours;
use eip_control::state::ControlPlane;
use eip_dataplane::tables::PopSpec;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long to wait at start for unresolved next hops before giving up.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the neighbour table is re-read.
const NEIGHBOUR_REFRESH: Duration = Duration::from_secs(1);

/// The control plane's resolver: fills next-hop MACs from the kernel's table and
/// solicits the ones it lacks (they are filled on a later pass).
pub fn kernel_resolver(spec: &PopSpec) -> PopSpec {
    let table = neighbours::read_kernel_table().unwrap_or_default();
    let (filled, missing) = neighbours::resolve(spec, &table);
    for a in missing {
        let _ = neighbours::solicit(a);
    }
    filled
}

/// Waits (a while) until every next hop given as an address is in the kernel's
/// neighbour table, soliciting the missing ones, so the first tables can be built.
pub fn wait_for_neighbours(spec: &PopSpec, stop: &AtomicBool) -> Result<()> {
    let deadline = Instant::now() + RESOLVE_TIMEOUT;
    loop {
        if neighbours::wanted(spec).is_empty() {
            return Ok(());
        }
        let table = neighbours::read_kernel_table().context("reading /proc/net/arp")?;
        let (_, missing) = neighbours::resolve(spec, &table);
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline || stop.load(Ordering::Relaxed) {
            bail!(
                "next hops not in the kernel's neighbour table after {} s: {} (check the addresses and links, or give the MACs)",
                RESOLVE_TIMEOUT.as_secs(),
                list(&missing)
            );
        }
        for a in &missing {
            let _ = neighbours::solicit(*a);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Re-reads the neighbour table every second; the control plane rebuilds and
/// swaps tables only when a resolved next-hop MAC changed.
pub fn spawn_refresh(control: Arc<ControlPlane>, stop: Arc<AtomicBool>) {
    let _ = std::thread::Builder::new()
        .name("eipd-neighbours".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(NEIGHBOUR_REFRESH);
                match control.refresh() {
                    Ok(Some(generation)) => {
                        tracing::info!(
                            "next-hop MAC changed; tables generation {generation} in force"
                        )
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!("neighbour refresh: {e}"),
                }
            }
        });
}

fn list(addrs: &[Ipv4Addr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
