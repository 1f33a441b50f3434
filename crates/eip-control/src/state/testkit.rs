//! What the state tests share: the example POP, a fresh directory per test, a
//! control plane over a sink that records what it was handed.

use super::plugins::{SinkError, TableSink};
use super::store::{Origin, StateDoc, StateFile};
use super::writer::ControlPlane;
use eip_dataplane::tables::Tables;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(super) const EXAMPLE: &str = include_str!("../../../../docs/example-pop.toml");

pub(super) fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "eip-state-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[derive(Clone, Default)]
pub(super) struct FakeSink {
    /// Generations handed over.
    pub(super) published: Arc<Mutex<Vec<u64>>>,
    pub(super) mode: Arc<Mutex<Option<SinkError>>>,
}

impl TableSink for FakeSink {
    fn publish(&mut self, tables: Arc<Tables>, _: Duration) -> Result<(), SinkError> {
        let mode = self.mode.lock().unwrap().clone();
        if !matches!(mode, Some(SinkError::Rejected(_))) {
            self.published.lock().unwrap().push(tables.generation);
        }
        mode.map_or(Ok(()), Err)
    }
}

pub(super) fn setup(tag: &str) -> (PathBuf, ControlPlane, FakeSink) {
    let dir = temp_dir(tag);
    let config = dir.join("pop.toml");
    fs::write(&config, EXAMPLE).unwrap();
    let store = StateFile::new(dir.join("state").join("state.json"));
    let boot = store.boot(&config, None).unwrap();
    assert_eq!(boot.origin, Origin::Config);
    let sink = FakeSink::default();
    let cp = ControlPlane::new(store, boot, sink.clone());
    (dir, cp, sink)
}

/// The last committed state on disk: the state file and its journal.
pub(super) fn state_file(dir: &Path) -> StateDoc {
    StateFile::new(dir.join("state/state.json"))
        .load()
        .unwrap()
        .expect("a state file")
}

/// The bytes of the state file and of its journal (empty when absent).
pub(super) fn disk(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let read = |name: &str| fs::read(dir.join("state").join(name)).unwrap_or_default();
    (read("state.json"), read("state.json.journal"))
}
