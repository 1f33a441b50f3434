//! Backend health checks: whether what is behind an EIP answers, measured
//! through the tunnel exactly as data, and damped like path probes.
//!
//! # What a check is
//!
//! A backend with a check (`check` on a service or EIP, or the POP's
//! `backend_check`; see `docs/config.md`) is checked every `interval_ms` from
//! the POP's `probe_source`, encapsulated with the template of the path that
//! the region's table gives the check's flow (so checks ride healthy paths,
//! spread as data is). The pipeline hands answers to `probe_source` to the
//! control thread, which gives them to [`BackendChecker::on_frame`] (and to the
//! path prober what is not a check answer).
//!
//! * **tcp**: a SYN to the backend's port. SYN-ACK = success (the checker then
//!   sends a RST, so no connection is left half-open), RST = failure at once,
//!   silence for `timeout_ms` = loss (a failure too). See `codec`.
//! * **http**: a TCP connection driven by crafted segments (`http`, a sans-IO
//!   state machine): SYN, then on SYN-ACK an ACK carrying `GET <path>`; the
//!   status line of the answer is judged against `expect`, then a RST closes
//!   the connection. A wrong status, a RST, or no status line in `timeout_ms`
//!   is a failure. Exchanges are found by their 4-tuple.
//! * **icmp**: an echo request to the backend, identifiers from 0x8000 up so
//!   they never meet the path prober's.
//!
//! Results feed one [`PathHealth`](crate::health::PathHealth) per backend:
//! `down_after` failures in a row put it down, `up_after` successes bring it
//! back. A backend starts up (it is in its Maglev table already).
//!
//! # What the results do
//!
//! [`BackendChecker::service_health`] goes to `ControlPlane::set_backend_health`:
//! a service backend that is down leaves its Maglev table (only its flows
//! move), as a new tables generation, never a new version, never on disk.
//! [`BackendChecker::eips_down`] tells the BGP gate which EIPs have no backend
//! up (`withdraw_when_backends_down`).

mod board;
mod checker;
pub mod codec;
pub mod http;
mod metrics;

pub use board::BackendBoard;
pub use checker::BackendChecker;
pub use metrics::render_metrics;

use crate::health::{Health, HealthSnapshot, Transition};
use eip_dataplane::check_spec::CheckSpec;
use eip_dataplane::tables::Protocol;
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;

/// One checked backend: of a service (`service` = protocol and port) or the
/// 1:1 backend of an EIP (`service` none, `port` 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct BackendKey {
    pub eip: IpAddr,
    pub service: Option<(Protocol, u16)>,
    pub backend: IpAddr,
    pub port: u16,
}

impl fmt::Display for BackendKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.service {
            Some((p, port)) => {
                let p = if p == Protocol::Tcp { "tcp" } else { "udp" };
                write!(
                    f,
                    "{} {p}/{port} -> {}:{}",
                    self.eip, self.backend, self.port
                )
            }
            None => write!(f, "{} -> {}", self.eip, self.backend),
        }
    }
}

/// A backend's measured state changed, with the reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackendEvent {
    pub backend: String,
    pub transition: Transition,
}

impl fmt::Display for BackendEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "backend {}: {}", self.backend, self.transition)
    }
}

/// One checked backend for queries and metrics: the check configured and
/// the health observed, apart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackendReport {
    #[serde(flatten)]
    pub key: BackendKey,
    /// Configured: how it is checked.
    pub check: CheckSpec,
    pub check_port: Option<u16>,
    /// `http`: the status of the last answer (observed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// Observed.
    pub health: Health,
    /// Up/down transitions since it was first checked.
    pub transitions: u64,
    pub snapshot: HealthSnapshot,
}

/// Checker-wide counters, one per cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CheckerCounters {
    pub checks_sent: u64,
    pub rsts_sent: u64,
    pub send_failed: u64,
    /// Checks not sent because the backend's region had no usable path.
    pub no_path: u64,
    /// Answers matched to a check (refusals included).
    pub answers: u64,
    /// Of those, RSTs.
    pub refused: u64,
    pub ignored_malformed: u64,
    pub ignored_unknown: u64,
    pub ignored_wrong_source: u64,
    pub ignored_wrong_nonce: u64,
    pub events_dropped: u64,
    /// HTTP: segments sent after the SYN (requests, ACKs, RSTs).
    pub http_segments_sent: u64,
    /// HTTP: segments received that gave no verdict yet (SYN-ACK, ACK).
    pub http_segments: u64,
    /// HTTP: segments of exchanges already judged, absorbed.
    pub http_late: u64,
    /// HTTP: answers with a status outside `expect` (failures).
    pub http_bad_status: u64,
    /// HTTP: answers closed before a status line, or no HTTP/1 (failures).
    pub http_garbled: u64,
    /// HTTP: checks not sent because too many exchanges were open.
    pub http_busy: u64,
}
