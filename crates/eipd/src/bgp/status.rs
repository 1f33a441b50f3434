//! What `show_bgp` and the metrics report of the BGP task: observed state,
//! never persisted.

use super::bird::SessionRow;
use super::gate::Closed;
use serde::Serialize;

/// The task's status as `show_bgp` returns it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BgpStatus {
    /// `running` (with BIRD's pid), `restarting`, `stopped`.
    pub speaker: String,
    pub speaker_pid: Option<u32>,
    pub speaker_restarts: u64,
    pub draining: bool,
    pub sessions: Vec<SessionStatus>,
    pub prefixes: Vec<PrefixStatus>,
    pub announces: u64,
    pub withdraws: u64,
    /// Changes of `[bgp]` applied to the running BIRD (`configure`).
    pub reconfigurations: u64,
    /// Changes of `[bgp]` BIRD refused (the previous one stays in force).
    pub reconfigurations_refused: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionStatus {
    pub neighbor: String,
    pub remote_as: u32,
    pub bfd: bool,
    #[serde(flatten)]
    pub row: Option<SessionRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrefixStatus {
    pub prefix: String,
    pub announced: bool,
    /// Announced with GRACEFUL_SHUTDOWN.
    pub draining: bool,
    /// Why the gate is closed, when it is.
    pub closed: Option<String>,
    pub closed_kind: Option<Closed>,
    pub announces: u64,
    pub withdraws: u64,
}
