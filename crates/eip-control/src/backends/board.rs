//! What the checker publishes for other threads (queries, metrics, the BGP
//! gate) while the control thread owns the [`BackendChecker`].

use super::{BackendChecker, BackendReport, CheckerCounters};
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{PoisonError, RwLock};

#[derive(Debug, Default)]
pub struct BackendBoard {
    inner: RwLock<Published>,
}

#[derive(Debug, Default, Clone)]
struct Published {
    reports: Vec<BackendReport>,
    eips_down: HashSet<IpAddr>,
    counters: CheckerCounters,
}

impl BackendBoard {
    /// Replaces what is published with the checker's current state.
    pub fn publish(&self, checker: &BackendChecker) {
        let fresh = Published {
            reports: checker.reports(),
            eips_down: checker.eips_down(),
            counters: *checker.counters(),
        };
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = fresh;
    }

    pub fn reports(&self) -> Vec<BackendReport> {
        self.read().reports.clone()
    }

    /// True when every backend of `eip` is checked and down.
    pub fn eip_down(&self, eip: IpAddr) -> bool {
        self.read().eips_down.contains(&eip)
    }

    pub fn counters(&self) -> CheckerCounters {
        self.read().counters
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Published> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }
}
