//! The threads `eipd run` keeps besides the workers and the control thread: each
//! drives one part of the control library with the daemon's real inputs.

pub mod neighbours;
pub mod prober;

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch with milliseconds, for log lines whose timing
/// matters (path events): scripts correlate them with their own clocks.
pub fn wall_clock() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", t.as_secs(), t.subsec_millis())
}
