//! What the prober tells the operator: path transitions, RTT moves and region
//! mode changes, queued until the control loop logs them.

use crate::health::{SelectionMode, Transition};
use crate::units::{micros, micros_opt};
use serde::Serialize;
use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

/// Events kept for [`Prober::pop_event`](super::Prober::pop_event) when the
/// caller does not drain them.
const MAX_EVENTS: usize = 1024;

/// Something the operator should see in the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProberEvent {
    /// A path's measured state changed (or the operator's switch), with the
    /// reason.
    Path {
        path: String,
        transition: Transition,
    },
    /// An up path started or stopped carrying traffic because of its RTT.
    Rtt {
        path: String,
        #[serde(rename = "at_us", serialize_with = "micros")]
        at: Duration,
        carries_traffic: bool,
        #[serde(rename = "srtt_us", serialize_with = "micros_opt")]
        srtt: Option<Duration>,
        #[serde(rename = "best_us", serialize_with = "micros_opt")]
        best: Option<Duration>,
    },
    /// A region's set of paths changed kind: healthy paths, fallback to every
    /// path that is not disabled (none is up), or no usable path.
    Region {
        region: String,
        #[serde(rename = "at_us", serialize_with = "micros")]
        at: Duration,
        mode: SelectionMode,
    },
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl fmt::Display for ProberEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProberEvent::Path { path, transition } => write!(f, "path {path}: {transition}"),
            ProberEvent::Rtt {
                path,
                carries_traffic,
                srtt,
                best,
                ..
            } => {
                let srtt = srtt.map_or("-".to_string(), |d| format!("{:.2} ms", ms(d)));
                let best = best.map_or("-".to_string(), |d| format!("{:.2} ms", ms(d)));
                if *carries_traffic {
                    write!(
                        f,
                        "path {path}: carries traffic again (srtt {srtt}, best {best})"
                    )
                } else {
                    write!(f, "path {path}: up but too slow, carries no traffic (srtt {srtt}, best {best})")
                }
            }
            ProberEvent::Region { region, mode, .. } => match mode {
                SelectionMode::Healthy => write!(f, "region {region}: traffic on healthy paths"),
                SelectionMode::Fallback => write!(
                    f,
                    "region {region}: no path up, traffic on every path not disabled (fallback)"
                ),
                SelectionMode::NoPath => {
                    write!(f, "region {region}: no usable path, traffic dropped")
                }
            },
        }
    }
}

/// The events not yet taken, bounded: when the caller does not drain them, the
/// oldest go first, counted.
#[derive(Debug, Default)]
pub(super) struct EventQueue {
    events: VecDeque<ProberEvent>,
    dropped: u64,
}

impl EventQueue {
    pub(super) fn push(&mut self, event: ProberEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
            self.dropped += 1;
        }
        self.events.push_back(event);
    }

    pub(super) fn pop(&mut self) -> Option<ProberEvent> {
        self.events.pop_front()
    }

    /// Forgets the events waiting (not the count of those dropped).
    pub(super) fn clear(&mut self) {
        self.events.clear();
    }

    /// Events discarded because nobody took them.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped
    }
}
