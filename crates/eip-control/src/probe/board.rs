//! What the prober publishes for other threads: the control thread owns the
//! [`Prober`]; the threads that answer queries read the board.

use super::Prober;
use crate::health::HealthSnapshot;
use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

/// The prober's latest snapshots, for threads that answer queries (the
/// control socket) while the control thread owns the [`Prober`].
///
/// The control thread calls [`Self::publish`] at reporting rate and after
/// events; readers call [`Self::get`]. A closure over an `Arc<HealthBoard>`
/// (`move |name: &str| board.get(name)`) is a `state::HealthSource`.
#[derive(Debug, Default)]
pub struct HealthBoard {
    paths: RwLock<HashMap<String, HealthSnapshot>>,
}

impl HealthBoard {
    /// Replaces the published snapshots with the prober's current ones.
    pub fn publish(&self, prober: &Prober) {
        let fresh: HashMap<String, HealthSnapshot> = prober
            .path_healths()
            .map(|(name, health)| (name.to_string(), health.snapshot()))
            .collect();
        *self.paths.write().unwrap_or_else(PoisonError::into_inner) = fresh;
    }

    /// The last published snapshot of `path`.
    pub fn get(&self, path: &str) -> Option<HealthSnapshot> {
        self.paths
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .cloned()
    }
}
