//! The path-health prober: ICMP echo through each backbone path's own tunnel,
//! sent and matched without I/O of its own.
//!
//! The parts: the probe on the wire (`codec`), the [`Prober`] that schedules
//! probes and matches replies, the [`ProberEvent`]s that tell the operator what
//! changed, and the [`HealthBoard`] that shows the result to other threads.
//!
//! # What a probe is
//!
//! Every path of a region that has a `probe_target` is probed when the POP has a
//! `probe_source`. A probe is an ICMP echo request from `probe_source` to the
//! region's `probe_target`, encapsulated with *that path's* VXLAN template
//! exactly as the pipeline encapsulates data (outer lengths and checksum, UDP
//! source port from the flow hash of the inner ICMP flow, inner ethertype), and
//! sent out of the path's port through the AF_XDP worker's TX ring (see
//! `eip_dataplane::afxdp::inject`). So it crosses the same next hop, link, ECMP
//! hash bucket and VXLAN endpoint as the data of that path, and its fate is
//! theirs. The region's VXLAN device answers; the pipeline hands the reply
//! (an ICMP packet to `probe_source` from a known tunnel) to the control thread
//! (`Verdict::ToControl`), which gives it to [`Prober::on_frame`].
//!
//! The reply returns however the region routes VXLAN to our VTEP: a path's
//! health covers its forward direction only (its link and next hop), plus
//! whichever return path the region's routing picks. To fail a path on
//! purpose, break its forward direction.
//!
//! * The echo **identifier** names the path: a number the prober gives each
//!   path when it first sees it, kept while the path exists (by name) across
//!   table rebuilds, and not reused soon after a path is removed, so a late
//!   reply cannot be credited to the wrong path.
//! * The **sequence number** is a per-path 16-bit counter; [`PathHealth`]
//!   matches it to the probe in flight.
//! * The **payload** (16 bytes) carries this prober's `nonce` and the send time:
//!   a reply to a probe of an earlier `eipd` (same identifiers, same
//!   sequence numbers after a restart) or a forged one is not counted.
//!
//! # Sans-IO
//!
//! Like [`PathHealth`] the prober reads no clock and owns no socket: the caller
//! passes `now` (a [`Duration`] since an epoch of its choosing) and a `send`
//! function, and hands over the frames it received. The frame of a probe is
//! built in a buffer the prober owns, so probing allocates nothing per probe.
//!
//! # Which paths carry traffic
//!
//! After [`Prober::tick`] the prober knows the [`PathState`] each probed path
//! should have in the table ([`Prober::path_states`]): per region, the paths
//! that are up and within an RTT tolerance of the fastest ([`select`]), with
//! hysteresis: a path joins that set within [`ProberConfig::join`] of the best
//! smoothed RTT and leaves it only beyond the wider [`ProberConfig::leave`], so
//! two paths of similar RTT do not take turns carrying the traffic. Up/down
//! itself is damped by [`PathHealth`] (consecutive losses, loss window,
//! consecutive replies). Every change is reported as a [`ProberEvent`].
//!
//! [`PathHealth`]: crate::health::PathHealth
//! [`select`]: crate::health::select
//! [`PathState`]: eip_dataplane::tables::PathState
//! [`Duration`]: std::time::Duration

mod board;
pub(crate) mod codec;
mod config;
mod event;
mod prober;
#[cfg(test)]
mod testing;

pub use board::HealthBoard;
pub use codec::{Ignored, INNER_LEN, PAYLOAD_LEN, PROBE_FRAME_LEN};
pub use config::{ProberConfig, ProberConfigError};
pub use event::ProberEvent;
pub use prober::{Matched, PathReport, Prober, ProberCounters};
