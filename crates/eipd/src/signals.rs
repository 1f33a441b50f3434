//! What each signal means to `eipd run`; none kills it without a clean stop.
//!
//! | signal | meaning |
//! |---|---|
//! | SIGTERM, SIGINT | stop: detach XDP, join the workers, print the final report |
//! | SIGHUP | reload the configuration file as one change (like `eipctl reload`) |
//! | SIGUSR1 | print the counters (as the final report does) to stdout |
//! | SIGUSR2 | log every path's health |
//! | SIGPIPE | ignored (Rust's default): a closed stdout or stderr fails writes, which `eipd` drops |
//!
//! Handlers only set flags; the control thread acts on them between swaps.

use crate::processor::{sum_counters, Published};
use anyhow::{Context, Result};
use eip_control::api::Data;
use eip_control::probe::HealthBoard;
use eip_control::report;
use eip_control::state::ControlPlane;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Flags set by the signal handlers.
pub struct Signals {
    pub stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
    counters: Arc<AtomicBool>,
    paths: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers.
    ///
    /// # Errors
    /// The system refused a handler.
    pub fn install() -> Result<Signals> {
        let s = Signals {
            stop: Arc::default(),
            reload: Arc::default(),
            counters: Arc::default(),
            paths: Arc::default(),
        };
        for (signal, flag) in [
            (SIGINT, &s.stop),
            (SIGTERM, &s.stop),
            (SIGHUP, &s.reload),
            (SIGUSR1, &s.counters),
            (SIGUSR2, &s.paths),
        ] {
            signal_hook::flag::register(signal, Arc::clone(flag))
                .context("installing signal handlers")?;
        }
        Ok(s)
    }

    /// Acts on the signals that arrived since the last call. Called by the
    /// control thread; a reload runs on a thread of its own, because the change
    /// waits for this very thread to put the new tables in force.
    pub fn serve(
        &self,
        control: &Arc<ControlPlane>,
        published: &[Arc<Published>],
        board: &HealthBoard,
    ) {
        if self.reload.swap(false, Ordering::Relaxed) {
            let control = Arc::clone(control);
            let spawned = std::thread::Builder::new()
                .name("eipd-reload".into())
                .spawn(move || reload(&control));
            if let Err(e) = spawned {
                tracing::error!("SIGHUP: cannot start the reload: {e}");
            }
        }
        if self.counters.swap(false, Ordering::Relaxed) {
            let tables = std::sync::Arc::clone(&control.snapshot().tables);
            crate::say!("counters (SIGUSR1, table version {}):", tables.version);
            crate::say_raw!(
                "{}",
                report::counters_text(&tables, &sum_counters(published))
            );
        }
        if self.paths.swap(false, Ordering::Relaxed) {
            for path in &control.snapshot().tables.paths {
                match board.get(&path.name) {
                    Some(h) => tracing::info!(
                        "path {}: {:?}, loss {:.3}, srtt {:?}, p99 {:?} (SIGUSR2)",
                        path.name,
                        h.health,
                        h.loss,
                        h.srtt,
                        h.p99
                    ),
                    None => tracing::info!("path {}: not probed (SIGUSR2)", path.name),
                }
            }
        }
    }
}

/// SIGHUP: the configuration file applied like `eipctl reload`, and logged.
fn reload(control: &ControlPlane) {
    let reply = control.reload(None, None, false);
    match (&reply.error, &reply.data) {
        (
            None,
            Some(Data::Reloaded {
                file,
                unchanged: true,
                ..
            }),
        ) => {
            tracing::info!("SIGHUP: {file}: no change, table version {}", reply.version)
        }
        (
            None,
            Some(Data::Reloaded {
                file,
                previous_version,
                diff,
                warnings,
                ..
            }),
        ) => {
            tracing::info!(
                "SIGHUP: {file}: {diff}: table version {previous_version} -> {} in force",
                reply.version
            );
            for w in warnings {
                tracing::warn!("SIGHUP: {w}");
            }
        }
        (Some(e), _) => tracing::error!(
            "SIGHUP: reload refused, table version {} stays: {}",
            reply.version,
            e.message
        ),
        _ => tracing::info!("SIGHUP: table version {}", reply.version),
    }
    tracing::info!(
        target: "audit",
        ok = reply.ok,
        version = reply.version,
        request = "reload (SIGHUP; the sender is not known)",
        "control change"
    );
}
