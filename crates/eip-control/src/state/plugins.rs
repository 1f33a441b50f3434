//! What the daemon plugs into the [`ControlPlane`](super::ControlPlane): where
//! new tables go, and where counters, next hops and path health come from. Tests
//! plug in fakes and need no workers.

use crate::api::{ApiError, TraceRequest, TraceSummary};
use crate::health::HealthSnapshot;
use eip_dataplane::counters::Counters;
use eip_dataplane::swap::{Publisher, SwapError};
use eip_dataplane::tables::{PopSpec, Tables};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Why new tables are not (all) in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Nothing was handed over.
    #[error("tables not published: {0}")]
    Rejected(String),
    /// Handed over, but these workers still forward with older tables.
    #[error(
        "workers {lagging:?} did not switch to table version {version} within {timeout:?}; \
         the change is saved and published, and they will switch when they next poll"
    )]
    Timeout {
        version: u64,
        lagging: Vec<usize>,
        timeout: Duration,
    },
}

/// Where new tables go: the workers, in production a [`swap::Publisher`]
/// (wrap it to do more, e.g. update the XDP program's EIP filter map before
/// publishing). Tests use fakes that need no workers.
///
/// [`swap::Publisher`]: eip_dataplane::swap::Publisher
pub trait TableSink: Send {
    /// Hands `tables` over and returns once every worker forwards with them, or
    /// after `timeout` with [`SinkError::Timeout`].
    ///
    /// # Errors
    /// [`SinkError`].
    fn publish(&mut self, tables: Arc<Tables>, timeout: Duration) -> Result<(), SinkError>;
}

impl TableSink for Publisher<Tables> {
    fn publish(&mut self, tables: Arc<Tables>, timeout: Duration) -> Result<(), SinkError> {
        let waited = match Publisher::publish(self, tables) {
            Ok(ticket) => ticket.wait(timeout),
            Err(e) => return Err(SinkError::Rejected(e.to_string())),
        };
        // Old snapshots are freed here, on the control thread.
        self.collect_garbage();
        match waited {
            Ok(()) => Ok(()),
            Err(SwapError::Timeout { version, lagging }) => Err(SinkError::Timeout {
                version,
                lagging,
                timeout,
            }),
            Err(e) => Err(SinkError::Rejected(e.to_string())),
        }
    }
}

/// The workers' counters, for `stats`.
pub trait StatsSource: Send + Sync {
    /// Every worker's pipeline counters summed with [`Counters::merge`],
    /// indexed like the tables in force.
    fn counters(&self) -> Counters;

    /// Daemon-specific figures (AF_XDP ring and socket counters, ...), reported
    /// under `runtime`.
    fn runtime(&self) -> Option<Value> {
        None
    }

    /// Frames the XDP program dropped per (EIP, source prefix) of the access
    /// lists' XDP denies since each EIP's list last changed: hits of the rules
    /// they come from that no worker counted.
    fn xdp_acl_hits(&self) -> Vec<XdpAclHits> {
        Vec::new()
    }
}

/// Frames dropped in XDP for one (EIP, source prefix) of an access list, read
/// while the EIP had list `list` ([`Acl::id`](eip_dataplane::tables::acl::Acl::id)):
/// a count read under another list is not the current list's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XdpAclHits {
    pub eip: std::net::IpAddr,
    pub source: eip_dataplane::protect::Prefix,
    pub list: u64,
    pub hits: u64,
}

impl<F: Fn() -> Counters + Send + Sync> StatsSource for F {
    fn counters(&self) -> Counters {
        self()
    }
}

/// Fills in what the operator left to the daemon before tables are built: in
/// `eipd run`, next-hop MACs from the kernel's neighbour table
/// (`neighbours::resolve`). Whatever it cannot fill stays empty and the table
/// builder says so (`next_hop_mac: the MAC of next hop ... is not known`).
///
/// The operator's spec (unresolved) is what is saved and shown; the resolved one
/// is only built from. [`ControlPlane::refresh`](super::ControlPlane::refresh)
/// rebuilds when what the resolver fills in (ports' `gateway_mac`, paths'
/// `next_hop_mac`) changed.
pub trait Resolver: Send + Sync {
    fn resolve(&self, spec: &PopSpec) -> PopSpec;
}

impl<F: Fn(&PopSpec) -> PopSpec + Send + Sync> Resolver for F {
    fn resolve(&self, spec: &PopSpec) -> PopSpec {
        self(spec)
    }
}

/// The path prober's view, for `show_paths` and for re-enabled paths.
pub trait HealthSource: Send + Sync {
    /// The prober's snapshot of path `path`; `None` if it does not probe it.
    fn path_health(&self, path: &str) -> Option<HealthSnapshot>;
}

impl<F: Fn(&str) -> Option<HealthSnapshot> + Send + Sync> HealthSource for F {
    fn path_health(&self, path: &str) -> Option<HealthSnapshot> {
        self(path)
    }
}

/// BGP announcements, for `show_bgp` and `drain`: in `eipd run` with a `[bgp]`
/// section, its task that runs BIRD.
pub trait BgpService: Send + Sync {
    /// `show_bgp`: sessions, what is announced and why not (observed state).
    fn status(&self) -> Value;
    /// `drain`: announce with GRACEFUL_SHUTDOWN, wait, withdraw, stop the daemon.
    /// Returns the wait in milliseconds.
    ///
    /// # Errors
    /// `unavailable` when the daemon announces nothing.
    fn drain(&self) -> Result<u64, ApiError>;
    /// A reload that changes `[bgp]` calls this before it commits, with the
    /// new section (already validated): the speaker's own check of the
    /// configuration it would get. The running task applies the committed
    /// section itself (it follows the spec in force).
    ///
    /// # Errors
    /// `invalid_value` with the speaker's message.
    fn check(&self, _pop: &str, _spec: &eip_dataplane::bgp_spec::BgpSpec) -> Result<(), ApiError> {
        Ok(())
    }
}

/// Packet trace, for `trace`: in `eipd run`, the collector that turns the
/// workers' trace on, writes the file and turns it off.
pub trait TraceService: Send + Sync {
    /// Runs one trace to its end (count, time or shutdown) and reports it.
    /// `tables` are those in force when it starts (port names, VXLAN port).
    ///
    /// # Errors
    /// `busy` while another trace runs; `invalid_value` when the file cannot be
    /// created; `storage` when writing it fails (the trace stops).
    fn trace(&self, request: &TraceRequest, tables: &Tables) -> Result<TraceSummary, ApiError>;
}
