//! The connections the accept loop tracks: their activity, and which one gives
//! way when a new operator arrives and every slot is taken.

use std::collections::HashMap;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub(super) struct Clients {
    pub(super) next_id: u64,
    /// Each connection: a second handle, to shut it down on stop or eviction, and
    /// its activity.
    pub(super) streams: HashMap<u64, Slot>,
    pub(super) threads: Vec<JoinHandle<()>>,
}

/// One connection as the accept loop sees it.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) stream: UnixStream,
    pub(super) activity: Arc<Activity>,
    /// Closed to make room: no longer counted against the limit.
    pub(super) evicted: bool,
}

/// When a connection last finished a request, and whether it is in one now;
/// written by its own thread, read by the accept loop.
#[derive(Debug)]
pub(super) struct Activity {
    /// Milliseconds since `epoch` at the end of the last request (or the accept).
    pub(super) last_ms: AtomicU64,
    pub(super) in_request: AtomicBool,
    pub(super) epoch: Instant,
}

impl Activity {
    pub(super) fn new() -> Activity {
        Activity {
            last_ms: AtomicU64::new(0),
            in_request: AtomicBool::new(false),
            epoch: Instant::now(),
        }
    }

    pub(super) fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis().min(u128::from(u64::MAX)) as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long the connection has been idle; zero while it is in a request.
    pub(super) fn idle(&self) -> Duration {
        if self.in_request.load(Ordering::Relaxed) {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }
}

impl Clients {
    /// Connections that count against the limit.
    pub(super) fn active(&self) -> usize {
        self.streams.values().filter(|s| !s.evicted).count()
    }

    /// Closes the connection idle the longest, if idle at least `min_idle`.
    /// Returns whether one was closed.
    pub(super) fn evict_idlest(&mut self, min_idle: Duration) -> bool {
        let idlest = self
            .streams
            .values_mut()
            .filter(|s| !s.evicted)
            .map(|s| (s.activity.idle(), s))
            .filter(|(idle, _)| *idle >= min_idle)
            .max_by_key(|(idle, _)| *idle);
        match idlest {
            Some((_, slot)) => {
                slot.evicted = true;
                let _ = slot.stream.shutdown(Shutdown::Both);
                true
            }
            None => false,
        }
    }
}
