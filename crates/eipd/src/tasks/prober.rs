//! The path prober's thread: sends probes through a worker's TX ring, reads the
//! replies the workers hand to the control queue, feeds them to the
//! [`Prober`] and asks the control plane to put its verdicts in force.

use anyhow::{Context, Result};
use eip_afxdp::AfXdpRuntime;
use eip_control::health::HealthConfig;
use eip_control::probe::{HealthBoard, Prober, ProberConfig};
use eip_control::state::ControlPlane;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest sleep of the prober thread (reply times come from the worker's
/// receive timestamp, so this only bounds how late a probe or a verdict can be).
const PROBER_TICK: Duration = Duration::from_millis(2);
/// Least time between two attempts to put the same verdicts in force.
const PROBER_RETRY: Duration = Duration::from_secs(1);

/// Runs the path prober on its own thread. It must not be the control thread:
/// `ControlPlane::set_path_health` waits for the control thread to swap the
/// tables in.
pub fn spawn(
    runtime: &AfXdpRuntime,
    control: Arc<ControlPlane>,
    board: Arc<HealthBoard>,
    health: HealthConfig,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>> {
    let inject = Arc::clone(runtime.inject_queue());
    let replies = Arc::clone(runtime.control_queue());
    let epoch = runtime.epoch();
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()) << 32;
    let mut tables = Arc::clone(&control.snapshot().tables);
    let config = ProberConfig {
        nonce,
        health,
        ..ProberConfig::default()
    };
    let mut prober = Prober::new(&tables, config, epoch.elapsed()).context("path prober")?;
    if prober.is_empty() {
        tracing::warn!("no path probing (needs pop.probe_source and a region probe_target)");
    }
    let thread = std::thread::Builder::new()
        .name("eipd-prober".into())
        .spawn(move || {
            let mut last_publish = Instant::now();
            let mut send_failed_logged: Option<Instant> = None;
            let mut asked: Option<(u64, Instant)> = None;
            while !stop.load(Ordering::Relaxed) {
                // Tables changed (operator, neighbour MAC, our own verdicts).
                let current = control.snapshot();
                if current.tables.version != tables.version {
                    tables = Arc::clone(&current.tables);
                    prober.update_tables(&tables, epoch.elapsed());
                }
                if let Err(e) = prober.poll(epoch.elapsed(), |port, frame| inject.push(port, frame))
                {
                    if send_failed_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        tracing::warn!(
                            "probes not sent: {e} ({} so far)",
                            prober.counters().send_failed
                        );
                        send_failed_logged = Some(Instant::now());
                    }
                }
                while let Some(packet) = replies.pop() {
                    let _ = prober.on_frame(Duration::from_nanos(packet.rx_ns), packet.data());
                }
                prober.tick(epoch.elapsed());
                let mut news = false;
                while let Some(event) = prober.pop_event() {
                    tracing::warn!("{event}");
                    news = true;
                }
                let retry =
                    asked.is_none_or(|(v, at)| v != tables.version || at.elapsed() >= PROBER_RETRY);
                if prober.differs_from(&tables) && retry {
                    asked = Some((tables.version, Instant::now()));
                    match control.set_path_health(&prober.table_health()) {
                        Ok(Some(generation)) => {
                            tracing::info!("path states in force, tables generation {generation}")
                        }
                        Ok(None) => {}
                        Err(e) => tracing::error!("path states not applied: {e}"),
                    }
                }
                if news || last_publish.elapsed() >= Duration::from_secs(1) {
                    board.publish(&prober);
                    last_publish = Instant::now();
                }
                let sleep = prober
                    .next_deadline()
                    .map_or(PROBER_TICK, |d| d.saturating_sub(epoch.elapsed()))
                    .min(PROBER_TICK);
                std::thread::sleep(sleep);
            }
        })
        .context("spawning the prober thread")?;
    Ok(thread)
}
