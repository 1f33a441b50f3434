//! What the control socket sees of the BGP task: its status (`show_bgp`),
//! `drain`, and BIRD's check of a reload's new `[bgp]`.

use super::bird::Bird;
use super::conf::{self, Mode};
use super::{live, with_suffix, BgpStatus, Shared};
use eip_control::api::ApiError;
use eip_control::state::BgpService;
use eip_dataplane::bgp_spec::BgpSpec;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, PoisonError};

/// What the control socket sees of the task (`show_bgp`, `drain`); made before
/// the control plane, joined to the task once it runs.
pub struct BgpView {
    pub(super) shared: OnceLock<Arc<Shared>>,
    /// The daemon's stop flag: `drain` stops the daemon as SIGTERM does, and the
    /// control thread drains before it stops the workers.
    stop: Arc<AtomicBool>,
    drain_wait_ms: u64,
    /// Where a reload's new `[bgp]` is rendered for BIRD to parse
    /// (`<socket>.bird.check.conf`).
    check_conf: PathBuf,
}

impl BgpView {
    pub fn new(stop: Arc<AtomicBool>, spec: &BgpSpec, socket: &Path) -> BgpView {
        BgpView {
            shared: OnceLock::new(),
            stop,
            drain_wait_ms: spec.drain_wait_ms,
            check_conf: with_suffix(socket, ".bird.check.conf"),
        }
    }
}

impl BgpView {
    /// The task's status (`None` before it runs).
    pub fn snapshot(&self) -> Option<BgpStatus> {
        self.shared.get().map(|s| {
            s.status
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        })
    }
}

impl BgpService for BgpView {
    fn status(&self) -> serde_json::Value {
        match self.snapshot() {
            Some(status) => serde_json::to_value(status).unwrap_or_default(),
            None => serde_json::json!({ "speaker": "not started" }),
        }
    }

    fn drain(&self) -> Result<u64, ApiError> {
        if let Some(shared) = self.shared.get() {
            shared.drain.store(true, Ordering::Relaxed);
        }
        tracing::info!("bgp: drain asked on the control socket: eipd stops after it");
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.shared.get().map_or(self.drain_wait_ms, |s| {
            s.drain_wait_ms.load(Ordering::Relaxed)
        }))
    }

    /// BIRD's own parser (`bird -p`) on the configuration the new section
    /// renders to, before the reload commits it.
    fn check(&self, pop: &str, spec: &BgpSpec) -> Result<(), ApiError> {
        let text = conf::render(spec, pop, &|_| Mode::Off);
        let checked = live::write_atomically(&self.check_conf, &text)
            .map_err(|e| format!("writing {}: {e}", self.check_conf.display()))
            .and_then(|()| Bird::check(&spec.bird, &self.check_conf).map_err(|e| e.to_string()));
        let _ = std::fs::remove_file(&self.check_conf);
        checked.map_err(|e| ApiError::invalid(format!("[bgp]: {e}")))
    }
}
