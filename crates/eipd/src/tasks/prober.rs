//! The path prober's thread: sends probes through a worker's TX ring, reads the
//! replies the workers hand to the control queue, feeds them to the
//! [`Prober`] and asks the control plane to put its verdicts in force. The
//! backend checks ([`BackendChecker`]) share the thread, the TX ring and the
//! control queue: each answer goes to the checker first, and what is not a
//! check answer to the prober.

use anyhow::{Context, Result};
use eip_afxdp::AfXdpRuntime;
use eip_control::backends::{BackendBoard, BackendChecker};
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
    backend_board: Arc<BackendBoard>,
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
    let mut checker = BackendChecker::new(nonce.rotate_left(17));
    let mut spec = Arc::clone(&control.snapshot().spec);
    checker.update(&spec, &tables, epoch.elapsed());
    if !checker.is_empty() {
        tracing::info!("backend checks: {} backend(s) checked", checker.len());
    }
    if prober.is_empty() {
        tracing::warn!("no path probing (needs pop.probe_source and a region probe_target)");
    }
    let thread = std::thread::Builder::new()
        .name("eipd-prober".into())
        .spawn(move || {
            let mut last_publish = Instant::now();
            let mut send_failed_logged: Option<Instant> = None;
            let mut asked: Option<(u64, Instant)> = None;
            let mut backends_asked: Option<(Vec<_>, Instant)> = None;
            while !stop.load(Ordering::Relaxed) {
                // Tables changed (operator, neighbour MAC, our own verdicts).
                let current = control.snapshot();
                if current.tables.version != tables.version {
                    tables = Arc::clone(&current.tables);
                    prober.update_tables(&tables, epoch.elapsed());
                }
                if !Arc::ptr_eq(&current.spec, &spec) {
                    spec = Arc::clone(&current.spec);
                    checker.update(&spec, &current.tables, epoch.elapsed());
                }
                // Checks ride the paths the tables in force give their flows.
                if let Err(e) = checker.poll(epoch.elapsed(), &current.tables, |port, frame| {
                    inject.push(port, frame)
                }) {
                    tracing::debug!("backend checks not sent: {e}");
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
                    let at = Duration::from_nanos(packet.rx_ns);
                    if !checker.on_frame(at, packet.data()) {
                        let _ = prober.on_frame(at, packet.data());
                    }
                }
                prober.tick(epoch.elapsed());
                let mut news = false;
                checker.tick(epoch.elapsed());
                while let Some(event) = checker.pop_event() {
                    tracing::warn!("{event}");
                    news = true;
                }
                let verdicts = checker.service_health();
                let again = backends_asked.as_ref().is_none_or(|(v, at)| {
                    *v != verdicts || at.elapsed() >= PROBER_RETRY && verdicts.iter().any(|b| !b.1)
                });
                if again && (backends_asked.is_some() || verdicts.iter().any(|b| !b.1)) {
                    match control.set_backend_health(&verdicts) {
                        Ok(Some(generation)) => tracing::info!(
                            "backend health in force, tables generation {generation}"
                        ),
                        Ok(None) => {}
                        Err(e) => tracing::error!("backend health not applied: {e}"),
                    }
                    backends_asked = Some((verdicts, Instant::now()));
                }
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
                    backend_board.publish(&checker);
                    last_publish = Instant::now();
                }
                let sleep = prober
                    .next_deadline()
                    .into_iter()
                    .chain(checker.next_deadline())
                    .min()
                    .map_or(PROBER_TICK, |d| d.saturating_sub(epoch.elapsed()))
                    .min(PROBER_TICK);
                std::thread::sleep(sleep);
            }
        })
        .context("spawning the prober thread")?;
    Ok(thread)
}
