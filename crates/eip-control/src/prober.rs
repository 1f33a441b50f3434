//! The path-health prober: ICMP echo through each backbone path's own tunnel,
//! sent and matched without I/O of its own.
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

use crate::health::{
    select, Candidate, Health, HealthConfig, HealthConfigError, HealthSnapshot, PathHealth,
    RttTolerance, SelectionMode, Transition,
};
use eip_dataplane::flow;
use eip_dataplane::pipeline::write_encap_header;
use eip_dataplane::tables::{PathId, PathState, PopSpec, Tables, ENCAP_LEN};
use eip_dataplane::wire::ethernet::{self, EthernetFrame};
use eip_dataplane::wire::icmpv4::{self, Icmpv4Packet};
use eip_dataplane::wire::ipv4::{Ipv4Packet, Ipv4Repr};
use eip_dataplane::wire::udp::UdpPacket;
use eip_dataplane::wire::vxlan::VxlanHeader;
use eip_dataplane::wire::{ethertype, ip_proto};
use eip_dataplane::PortId;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

/// Bytes of echo data: the prober's nonce and the send time, 8 bytes each.
pub const PAYLOAD_LEN: usize = 16;
/// Inner IPv4 packet of a probe: IPv4 20 + ICMP 8 + payload.
pub const INNER_LEN: usize = 20 + icmpv4::HEADER_LEN + PAYLOAD_LEN;
/// A whole probe frame: the path's encapsulation and the inner packet.
pub const PROBE_FRAME_LEN: usize = ENCAP_LEN + INNER_LEN;
/// TTL of the inner packet.
const INNER_TTL: u8 = 64;
/// Events kept for [`Prober::pop_event`] when the caller does not drain them.
const MAX_EVENTS: usize = 1024;

/// Prober settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ProberConfig {
    /// Interval, timeout and flap damping, the same for every path.
    pub health: HealthConfig,
    /// An up path starts carrying traffic when its smoothed RTT is within this
    /// of the best in its region (default `best * 1.2 + 2 ms`).
    pub join: RttTolerance,
    /// ... and stops only beyond this (default `best * 1.5 + 5 ms`). At least
    /// as wide as `join`.
    pub leave: RttTolerance,
    /// Echoed in every probe's payload; replies without it are ignored. Give
    /// each process a different one (e.g. from the clock and the pid), so a
    /// restarted daemon does not count replies to its predecessor's probes.
    pub nonce: u64,
}

impl Default for ProberConfig {
    fn default() -> Self {
        ProberConfig {
            health: HealthConfig::default(),
            join: RttTolerance::default(),
            leave: RttTolerance::new(1.5, Duration::from_millis(5)).expect("1.5 is a valid factor"),
            nonce: 0,
        }
    }
}

/// A prober setting that makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProberConfigError {
    #[error(transparent)]
    Health(#[from] HealthConfigError),
    #[error(
        "RTT hysteresis: leave tolerance ({leave_factor} x + {leave_slack:?}) must be at least \
         the join tolerance ({join_factor} x + {join_slack:?})"
    )]
    Hysteresis {
        join_factor: f64,
        join_slack: Duration,
        leave_factor: f64,
        leave_slack: Duration,
    },
}

impl ProberConfig {
    /// # Errors
    /// The first [`ProberConfigError`] found.
    pub fn validate(&self) -> Result<(), ProberConfigError> {
        self.health.validate()?;
        if self.leave.factor() < self.join.factor() || self.leave.slack() < self.join.slack() {
            return Err(ProberConfigError::Hysteresis {
                join_factor: self.join.factor(),
                join_slack: self.join.slack(),
                leave_factor: self.leave.factor(),
                leave_slack: self.leave.slack(),
            });
        }
        Ok(())
    }
}

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

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_nanos() as f64 / 1000.0)
}

fn micros_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => micros(d, s),
        None => s.serialize_none(),
    }
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

/// Why [`Prober::on_frame`] did not count a frame as a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    /// A header is missing, short or inconsistent.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// No prober source address configured, or the inner packet is not an
    /// ICMP echo reply to it (e.g. an ICMP error about a probe).
    #[error("not an ICMP echo reply to the probe source")]
    NotEchoReply,
    /// The ICMP checksum is wrong.
    #[error("bad ICMP checksum")]
    BadChecksum,
    /// The identifier names no path probed now.
    #[error("echo identifier {ident} names no probed path")]
    UnknownIdent { ident: u16 },
    /// The reply did not come from the path's target and VNI.
    #[error("reply from {from} in VNI {vni}, but that path probes {target} in VNI {expected_vni}")]
    WrongSource {
        from: Ipv4Addr,
        vni: u32,
        target: Ipv4Addr,
        expected_vni: u32,
    },
    /// The payload does not carry this prober's nonce (a reply to another
    /// prober instance, or forged).
    #[error("echo data without this prober's nonce")]
    WrongNonce,
}

/// A reply that was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched {
    /// Index of the path in the tables the prober last saw.
    pub path: PathId,
    pub seq: u16,
    /// `now` minus the send time echoed in the payload (for tracing; the state
    /// machine measures from its own record of the probe).
    pub rtt: Duration,
}

/// Prober-wide counters, one per cause (per-path ones are in the snapshots).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProberCounters {
    pub probes_sent: u64,
    /// Probes the send function refused (inject queue full): not sent, not
    /// counted against the path, retried at the next poll.
    pub send_failed: u64,
    /// Replies matched to a path (in time or late: see the path's counters).
    pub replies: u64,
    pub ignored_malformed: u64,
    pub ignored_not_echo_reply: u64,
    pub ignored_bad_checksum: u64,
    pub ignored_unknown_ident: u64,
    pub ignored_wrong_source: u64,
    pub ignored_wrong_nonce: u64,
}

/// One probed path, for `show_paths` and the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathReport {
    pub name: String,
    pub region: String,
    pub port: PortId,
    /// ICMP echo identifier of its probes.
    pub ident: u16,
    /// What the prober asks the table to use (`health.state` is the measured
    /// one: an up path too slow to carry traffic is `down` here).
    pub table_state: PathState,
    pub health: HealthSnapshot,
}

/// What the prober keeps of a path.
#[derive(Debug)]
struct Probed {
    name: String,
    /// Index in the tables last seen.
    index: PathId,
    region: usize,
    port: PortId,
    weight: u32,
    template: [u8; ENCAP_LEN],
    target: [u8; 4],
    vni: u32,
    ident: u16,
    /// Flow hash of the probe's inner flow (outer UDP source port).
    hash: u64,
    next_seq: u16,
    next_probe: Duration,
    health: PathHealth,
    /// The state the prober asks for, as of the last selection.
    table_state: PathState,
    /// `health.state()` at the last selection.
    selected_health: PathState,
}

#[derive(Debug)]
struct RegionSet {
    name: String,
    /// Indices into `Prober::paths`.
    paths: Vec<usize>,
    mode: Option<SelectionMode>,
}

/// The prober of every path. See the [module docs](self).
#[derive(Debug)]
pub struct Prober {
    config: ProberConfig,
    source: Option<[u8; 4]>,
    vxlan_port: u16,
    paths: Vec<Probed>,
    regions: Vec<RegionSet>,
    by_ident: HashMap<u16, usize>,
    next_ident: u16,
    /// Where the next [`Prober::poll`] starts, so a send function that keeps
    /// failing does not always starve the same paths.
    cursor: usize,
    events: VecDeque<ProberEvent>,
    events_dropped: u64,
    counters: ProberCounters,
    buf: [u8; PROBE_FRAME_LEN],
}

impl Prober {
    /// A prober for the probeable paths of `tables`: all paths of the regions
    /// with a `probe_target`, if `tables.probe_source` is set; none otherwise.
    /// Each starts in its table state (up, or down: [`PathHealth::assume_up`])
    /// until probes overturn it; their first probes are spread over one interval
    /// from `now`.
    ///
    /// # Errors
    /// An invalid `config`.
    pub fn new(
        tables: &Tables,
        config: ProberConfig,
        now: Duration,
    ) -> Result<Prober, ProberConfigError> {
        config.validate()?;
        let mut prober = Prober {
            config,
            source: None,
            vxlan_port: tables.vxlan_port,
            paths: Vec::new(),
            regions: Vec::new(),
            by_ident: HashMap::new(),
            next_ident: 1,
            cursor: 0,
            events: VecDeque::new(),
            events_dropped: 0,
            counters: ProberCounters::default(),
            buf: [0; PROBE_FRAME_LEN],
        };
        prober.update_tables(tables, now);
        // Paths the tables hold as up start up: no rebuild and no fallback at
        // start (or after a restart) while probes confirm them. Paths added
        // later start down and earn their place.
        for p in &mut prober.paths {
            if tables.paths[usize::from(p.index)].state == PathState::Up {
                p.health.assume_up(now);
            }
        }
        for r in &mut prober.regions {
            r.mode = None;
        }
        prober.events.clear();
        prober.reselect(now);
        let n = prober.paths.len() as u32;
        let interval = prober.config.health.interval;
        for (k, p) in prober.paths.iter_mut().enumerate() {
            p.next_probe = now + interval * k as u32 / n.max(1);
        }
        Ok(prober)
    }

    /// Takes a new table snapshot: templates (next-hop MACs), ports, weights and
    /// the operator's switch (a path `disabled` in the table is measured but
    /// never asked to carry traffic). Paths that still exist keep their health,
    /// identifier and sequence numbers (matched by name); new ones start down
    /// and are probed at once; removed ones are forgotten, and their
    /// identifiers are not given again until the identifier counter wraps
    /// (65,535 new paths later).
    pub fn update_tables(&mut self, tables: &Tables, now: Duration) {
        self.source = tables.probe_source;
        self.vxlan_port = tables.vxlan_port;
        let mut old: HashMap<String, Probed> =
            self.paths.drain(..).map(|p| (p.name.clone(), p)).collect();
        self.by_ident.clear();
        // Region modes survive, so that the change a rebuild brings is logged.
        let modes: HashMap<String, SelectionMode> = self
            .regions
            .drain(..)
            .filter_map(|r| Some((r.name, r.mode?)))
            .collect();
        let Some(source) = self.source else {
            return;
        };
        for (index, path) in tables.paths.iter().enumerate() {
            let region = &tables.regions[usize::from(path.region)];
            let Some(target) = region.probe_target else {
                continue;
            };
            let target = target.octets();
            let mut probed = match old.remove(&path.name) {
                Some(p) => p,
                None => {
                    let ident = self.allocate_ident(&old);
                    Probed {
                        name: path.name.clone(),
                        index: 0,
                        region: 0,
                        port: 0,
                        weight: 0,
                        template: [0; ENCAP_LEN],
                        target,
                        vni: 0,
                        ident,
                        hash: 0,
                        next_seq: 0,
                        next_probe: now,
                        health: PathHealth::new(self.config.health.clone(), now)
                            .expect("validated in Prober::new"),
                        table_state: PathState::Down,
                        selected_health: PathState::Down,
                    }
                }
            };
            probed.index = index as PathId;
            probed.port = path.port;
            probed.weight = path.weight;
            probed.template = path.template;
            probed.target = target;
            probed.vni = region.vni;
            probed.hash = flow::hash_v4(source, target, probed.ident, 0, ip_proto::ICMP);
            let enabled = path.state != PathState::Disabled;
            if let Some(t) = probed.health.set_enabled(enabled, now) {
                push_event(
                    &mut self.events,
                    &mut self.events_dropped,
                    ProberEvent::Path {
                        path: probed.name.clone(),
                        transition: t,
                    },
                );
            }
            let slot = self.paths.len();
            self.by_ident.insert(probed.ident, slot);
            let r = match self.regions.iter().position(|r| r.name == region.name) {
                Some(r) => r,
                None => {
                    self.regions.push(RegionSet {
                        name: region.name.clone(),
                        paths: Vec::new(),
                        mode: modes.get(&region.name).copied(),
                    });
                    self.regions.len() - 1
                }
            };
            self.regions[r].paths.push(slot);
            probed.region = r;
            self.paths.push(probed);
        }
        self.cursor = 0;
        self.reselect(now);
    }

    /// Next free identifier after the last one given, skipping 0 and those in
    /// use: by the paths placed so far (`by_ident`) and those not yet moved
    /// back from `pending`.
    fn allocate_ident(&mut self, pending: &HashMap<String, Probed>) -> u16 {
        loop {
            let ident = self.next_ident;
            self.next_ident = self.next_ident.wrapping_add(1).max(1);
            let in_use =
                self.by_ident.contains_key(&ident) || pending.values().any(|p| p.ident == ident);
            if !in_use {
                return ident;
            }
        }
    }

    /// Sends the probe of every path whose interval has elapsed, through
    /// `send(port, frame)` (e.g. `|port, frame| inject_queue.push(port, frame)`).
    /// Returns how many were sent.
    ///
    /// Probes go out every `interval` on a fixed schedule; if the caller was
    /// late by more than an interval, the schedule restarts from `now` rather
    /// than sending a burst to catch up.
    ///
    /// # Errors
    /// The first error of `send`: that probe and the ones not tried yet stay
    /// due for the next poll, and the path is not charged a loss (the probe
    /// never left). Counted in [`ProberCounters::send_failed`].
    pub fn poll<E>(
        &mut self,
        now: Duration,
        mut send: impl FnMut(PortId, &[u8]) -> Result<(), E>,
    ) -> Result<usize, E> {
        let Some(source) = self.source else {
            return Ok(0);
        };
        let n = self.paths.len();
        let interval = self.config.health.interval;
        let mut sent = 0;
        for k in 0..n {
            let i = (self.cursor + k) % n;
            let p = &mut self.paths[i];
            if p.next_probe > now {
                continue;
            }
            let seq = p.next_seq;
            let frame = build_probe(&mut self.buf, p, source, seq, self.config.nonce, now);
            if let Err(e) = send(p.port, frame) {
                self.counters.send_failed += 1;
                self.cursor = i;
                return Err(e);
            }
            p.next_seq = seq.wrapping_add(1);
            p.next_probe = if now.saturating_sub(p.next_probe) >= interval {
                now + interval
            } else {
                p.next_probe + interval
            };
            sent += 1;
            self.counters.probes_sent += 1;
            if let Some(t) = p.health.probe_sent(seq, now) {
                let path = p.name.clone();
                self.push(ProberEvent::Path {
                    path,
                    transition: t,
                });
            }
        }
        if n > 0 {
            self.cursor = (self.cursor + 1) % n;
        }
        Ok(sent)
    }

    /// Takes a frame the pipeline passed to the control thread
    /// (`Verdict::ToControl`) received at `now`, and credits the reply to its
    /// path.
    ///
    /// `now` should be when the worker received the frame, on the clock the
    /// probes were sent by: a caller that passes the time it drained the
    /// control queue adds its polling delay to every RTT (on the testbed, a
    /// 0.23 ms RTT measured 1.1 ms with a 1 ms drain loop; with a 10 ms loop
    /// every RTT reads about 10 ms and RTT selection is blind).
    ///
    /// # Errors
    /// Why the frame was not a reply to one of our probes (also counted).
    pub fn on_frame(&mut self, now: Duration, frame: &[u8]) -> Result<Matched, Ignored> {
        let result = self.match_reply(now, frame);
        let c = &mut self.counters;
        match result {
            Ok(_) => c.replies += 1,
            Err(Ignored::Malformed(_)) => c.ignored_malformed += 1,
            Err(Ignored::NotEchoReply) => c.ignored_not_echo_reply += 1,
            Err(Ignored::BadChecksum) => c.ignored_bad_checksum += 1,
            Err(Ignored::UnknownIdent { .. }) => c.ignored_unknown_ident += 1,
            Err(Ignored::WrongSource { .. }) => c.ignored_wrong_source += 1,
            Err(Ignored::WrongNonce) => c.ignored_wrong_nonce += 1,
        }
        result
    }

    fn match_reply(&mut self, now: Duration, frame: &[u8]) -> Result<Matched, Ignored> {
        let source = self.source.ok_or(Ignored::NotEchoReply)?;
        let reply = parse_reply(frame, self.vxlan_port)?;
        if reply.dst != source {
            return Err(Ignored::NotEchoReply);
        }
        let &slot = self
            .by_ident
            .get(&reply.ident)
            .ok_or(Ignored::UnknownIdent { ident: reply.ident })?;
        let p = &mut self.paths[slot];
        if reply.src != p.target || reply.vni != p.vni {
            return Err(Ignored::WrongSource {
                from: Ipv4Addr::from(reply.src),
                vni: reply.vni,
                target: Ipv4Addr::from(p.target),
                expected_vni: p.vni,
            });
        }
        if reply.nonce != self.config.nonce {
            return Err(Ignored::WrongNonce);
        }
        let matched = Matched {
            path: p.index,
            seq: reply.seq,
            rtt: now.saturating_sub(Duration::from_nanos(reply.sent_ns)),
        };
        if let Some(t) = p.health.probe_reply(reply.seq, now) {
            let path = p.name.clone();
            self.push(ProberEvent::Path {
                path,
                transition: t,
            });
        }
        Ok(matched)
    }

    /// Declares overdue probes lost, then re-runs the choice of the paths that
    /// carry traffic. Call it every loop iteration, after handing over the
    /// received frames, and at least by [`Self::next_deadline`].
    pub fn tick(&mut self, now: Duration) {
        for i in 0..self.paths.len() {
            if let Some(t) = self.paths[i].health.tick(now) {
                let path = self.paths[i].name.clone();
                self.push(ProberEvent::Path {
                    path,
                    transition: t,
                });
            }
        }
        self.reselect(now);
    }

    /// Per region: [`select`] with the join tolerance, plus the paths already
    /// carrying traffic that [`select`] with the leave tolerance still keeps.
    fn reselect(&mut self, now: Duration) {
        let mut candidates = Vec::new();
        for r in 0..self.regions.len() {
            candidates.clear();
            candidates.extend(self.regions[r].paths.iter().map(|&i| {
                let p = &self.paths[i];
                Candidate {
                    state: p.health.state(),
                    srtt: p.health.srtt(),
                    weight: p.weight,
                }
            }));
            let join = select(&candidates, &self.config.join);
            let leave = select(&candidates, &self.config.leave);
            let best = candidates
                .iter()
                .filter(|c| c.state == PathState::Up && c.weight > 0)
                .filter_map(|c| c.srtt)
                .min();
            for (k, &i) in self.regions[r].paths.iter().enumerate() {
                let p = &mut self.paths[i];
                let keeps =
                    p.table_state == PathState::Up && leave.table_states[k] == PathState::Up;
                let state = if join.table_states[k] == PathState::Up || keeps {
                    PathState::Up
                } else {
                    join.table_states[k]
                };
                // Health transitions are reported where they happen. Report what
                // they do not explain: an up path that the RTT moved in or out,
                // or that came up too slow to carry traffic.
                let health = p.health.state();
                let rtt_news = health == PathState::Up
                    && p.weight > 0
                    && if p.selected_health == PathState::Up {
                        state != p.table_state
                    } else {
                        state != PathState::Up
                    };
                if rtt_news {
                    let event = ProberEvent::Rtt {
                        path: p.name.clone(),
                        at: now,
                        carries_traffic: state == PathState::Up,
                        srtt: p.health.srtt(),
                        best,
                    };
                    push_event(&mut self.events, &mut self.events_dropped, event);
                }
                p.table_state = state;
                p.selected_health = health;
            }
            if self.regions[r].mode != Some(join.mode) {
                let first = self.regions[r].mode.is_none();
                self.regions[r].mode = Some(join.mode);
                if !first || join.mode != SelectionMode::Healthy {
                    let region = self.regions[r].name.clone();
                    self.push(ProberEvent::Region {
                        region,
                        at: now,
                        mode: join.mode,
                    });
                }
            }
        }
    }

    fn push(&mut self, event: ProberEvent) {
        push_event(&mut self.events, &mut self.events_dropped, event);
    }

    /// The oldest event not yet taken: log it.
    pub fn pop_event(&mut self) -> Option<ProberEvent> {
        self.events.pop_front()
    }

    /// Events discarded because nobody took them (more than 1,024 waiting).
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    /// When the prober next needs [`Self::poll`] or [`Self::tick`]: the next
    /// probe due or the next probe to time out. `None` with no path to probe.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.paths
            .iter()
            .flat_map(|p| [Some(p.next_probe), p.health.next_timeout()])
            .flatten()
            .min()
    }

    /// The state each probed path should have in the table, as of the last
    /// [`Self::tick`]. Paths that are not probed are not listed: their state is
    /// the operator's.
    pub fn path_states(&self) -> impl Iterator<Item = (&str, PathState)> + '_ {
        self.paths.iter().map(|p| (p.name.as_str(), p.table_state))
    }

    /// The same as measured health for `ControlPlane::set_path_health`: `Up`
    /// for the paths that should carry traffic, `Down` for the others
    /// (disabled paths included; the control plane keeps them disabled).
    pub fn table_health(&self) -> Vec<(&str, Health)> {
        self.path_states()
            .map(|(name, state)| {
                let health = if state == PathState::Up {
                    Health::Up
                } else {
                    Health::Down
                };
                (name, health)
            })
            .collect()
    }

    /// True when the table's path states differ from [`Self::path_states`]: a
    /// rebuild is due.
    pub fn differs_from(&self, tables: &Tables) -> bool {
        self.paths.iter().any(|p| {
            tables
                .paths
                .get(usize::from(p.index))
                .is_some_and(|t| t.name == p.name && t.state != p.table_state)
        })
    }

    /// Writes [`Self::path_states`] into `spec` (by path name; paths the
    /// operator disabled stay disabled). Returns true if anything changed.
    pub fn apply_states(&self, spec: &mut PopSpec) -> bool {
        let mut changed = false;
        for p in &self.paths {
            if let Some(s) = spec.paths.iter_mut().find(|s| s.name == p.name) {
                if s.state != PathState::Disabled && s.state != p.table_state {
                    s.state = p.table_state;
                    changed = true;
                }
            }
        }
        changed
    }

    /// A report of every probed path. Allocates (percentiles): call it at
    /// reporting rate.
    pub fn snapshots(&self) -> Vec<PathReport> {
        self.paths
            .iter()
            .map(|p| PathReport {
                name: p.name.clone(),
                region: self.regions[p.region].name.clone(),
                port: p.port,
                ident: p.ident,
                table_state: p.table_state,
                health: p.health.snapshot(),
            })
            .collect()
    }

    /// The measured health of one path, if probed.
    pub fn snapshot(&self, path: &str) -> Option<HealthSnapshot> {
        self.paths
            .iter()
            .find(|p| p.name == path)
            .map(|p| p.health.snapshot())
    }

    pub fn counters(&self) -> &ProberCounters {
        &self.counters
    }

    pub fn config(&self) -> &ProberConfig {
        &self.config
    }

    /// Number of paths probed.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// True when nothing is probed (no `probe_source`, or no region with a
    /// `probe_target`).
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

fn push_event(events: &mut VecDeque<ProberEvent>, dropped: &mut u64, event: ProberEvent) {
    if events.len() >= MAX_EVENTS {
        events.pop_front();
        *dropped += 1;
    }
    events.push_back(event);
}

/// The probe frame of path `p` with sequence number `seq`, built in `buf`.
fn build_probe<'b>(
    buf: &'b mut [u8; PROBE_FRAME_LEN],
    p: &Probed,
    source: [u8; 4],
    seq: u16,
    nonce: u64,
    now: Duration,
) -> &'b [u8] {
    let (hdr, inner) = buf.split_at_mut(ENCAP_LEN);
    let hdr: &mut [u8; ENCAP_LEN] = hdr.try_into().expect("ENCAP_LEN bytes");
    write_encap_header(hdr, &p.template, INNER_LEN as u16, false, p.hash);
    Ipv4Repr {
        src: source,
        dst: p.target,
        protocol: ip_proto::ICMP,
        ttl: INNER_TTL,
        payload_len: (INNER_LEN - 20) as u16,
        dont_frag: true,
        ident: seq,
        dscp_ecn: 0,
    }
    .emit(inner);
    let mut icmp = Icmpv4Packet::new_unchecked(&mut inner[20..]);
    icmp.set_msg_type(icmpv4::ECHO_REQUEST);
    icmp.set_code(0);
    icmp.set_echo_ident(p.ident);
    icmp.set_echo_seq(seq);
    let data = icmp.payload_mut();
    data[..8].copy_from_slice(&nonce.to_be_bytes());
    let sent_ns = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
    data[8..16].copy_from_slice(&sent_ns.to_be_bytes());
    icmp.fill_checksum();
    &buf[..]
}

/// The fields of an echo reply the prober checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reply {
    vni: u32,
    src: [u8; 4],
    dst: [u8; 4],
    ident: u16,
    seq: u16,
    nonce: u64,
    sent_ns: u64,
}

/// Outer Ethernet (up to two VLAN tags) / IPv4 / UDP to `vxlan_port` / VXLAN /
/// inner Ethernet / IPv4 / ICMP echo reply with our 16-byte payload.
fn parse_reply(frame: &[u8], vxlan_port: u16) -> Result<Reply, Ignored> {
    let l2 = ethernet::parse_l2(frame).map_err(|_| Ignored::Malformed("outer Ethernet"))?;
    if l2.ethertype != ethertype::IPV4 {
        return Err(Ignored::Malformed("outer Ethernet (not IPv4)"));
    }
    let outer = Ipv4Packet::new_checked(&frame[l2.l3_offset..])
        .map_err(|_| Ignored::Malformed("outer IPv4"))?;
    if outer.protocol() != ip_proto::UDP || outer.is_fragment() {
        return Err(Ignored::Malformed(
            "outer IPv4 (not an unfragmented UDP datagram)",
        ));
    }
    let udp = UdpPacket::new_checked(outer.payload()).map_err(|_| Ignored::Malformed("UDP"))?;
    if udp.dst_port() != vxlan_port {
        return Err(Ignored::Malformed("UDP (not to the VXLAN port)"));
    }
    let vxlan = VxlanHeader::new_checked(udp.payload()).map_err(|_| Ignored::Malformed("VXLAN"))?;
    let inner_l2 = EthernetFrame::new_checked(vxlan.payload())
        .map_err(|_| Ignored::Malformed("inner Ethernet"))?;
    if inner_l2.ethertype() != ethertype::IPV4 {
        return Err(Ignored::NotEchoReply);
    }
    let ip = Ipv4Packet::new_checked(inner_l2.payload())
        .map_err(|_| Ignored::Malformed("inner IPv4"))?;
    if ip.protocol() != ip_proto::ICMP || ip.is_fragment() {
        return Err(Ignored::NotEchoReply);
    }
    let icmp = Icmpv4Packet::new_checked(ip.payload()).map_err(|_| Ignored::Malformed("ICMP"))?;
    if icmp.msg_type() != icmpv4::ECHO_REPLY || icmp.code() != 0 {
        return Err(Ignored::NotEchoReply);
    }
    if !icmp.verify_checksum() {
        return Err(Ignored::BadChecksum);
    }
    let data = icmp.payload();
    let (Some(nonce), Some(sent)) = (data.get(..8), data.get(8..16)) else {
        return Err(Ignored::WrongNonce);
    };
    Ok(Reply {
        vni: vxlan.vni(),
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        ident: icmp.echo_ident(),
        seq: icmp.echo_seq(),
        nonce: u64::from_be_bytes(nonce.try_into().expect("8 bytes")),
        sent_ns: u64::from_be_bytes(sent.try_into().expect("8 bytes")),
    })
}

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
            .paths
            .iter()
            .map(|p| (p.name.clone(), p.health.snapshot()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Reason;
    use eip_dataplane::tables::spec::*;
    use eip_dataplane::{Frame, Pipeline, Timestamp, Verdict};
    use etherparse::{
        Icmpv4Type, LinkHeader, NetHeaders, PacketBuilder, PacketHeaders, TransportHeader,
    };

    const POP_VTEP: [u8; 4] = [198, 51, 100, 1];
    const REGION_VTEP: [u8; 4] = [198, 51, 100, 2];
    const PROBE_SOURCE: [u8; 4] = [10, 255, 0, 1];
    const PROBE_TARGET: [u8; 4] = [10, 255, 0, 2];
    const INET_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x10];
    const BB_MAC: [[u8; 6]; 2] = [[2, 0, 0, 0, 1, 0x20], [2, 0, 0, 0, 1, 0x21]];
    const NEXT_HOP: [[u8; 6]; 2] = [[2, 0, 0, 0, 0x10, 0x20], [2, 0, 0, 0, 0x10, 0x21]];
    const POP_INNER_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
    const REGION_INNER_MAC: [u8; 6] = [2, 0, 0, 0, 0x10, 1];
    const VNI: u32 = 100;
    const NONCE: u64 = 0x5eed_0fca_fe00_0001;
    const CLIENT: [u8; 4] = [203, 0, 113, 2];
    const EIP: [u8; 4] = [192, 0, 2, 10];

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Two paths to one region, over two backbone ports (the testbed's
    /// `--paths 2`), with probing configured.
    fn spec() -> PopSpec {
        let mac = MacAddr;
        let backbone = |i: usize| PortSpec {
            name: format!("backbone{i}"),
            role: PortRole::Backbone,
            interface: None,
            mac: mac(BB_MAC[i]),
            gateway_mac: None,
            gateway: None,
        };
        let path = |i: usize| PathSpec {
            name: format!("bb{i}"),
            region: "beijing".into(),
            port: format!("backbone{i}"),
            next_hop_mac: Some(mac(NEXT_HOP[i])),
            next_hop: None,
            source: None,
            destination: None,
            mtu: 1550,
            weight: 1,
            state: PathState::Up,
        };
        PopSpec {
            pop: PopSection {
                name: "test".into(),
                vtep: Ipv4Addr::from(POP_VTEP),
                extra_vteps: vec![],
                vxlan_port: 4789,
                inner_mac: mac(POP_INNER_MAC),
                outer_ttl: 64,
                probe_source: Some(Ipv4Addr::from(PROBE_SOURCE)),
            },
            ports: vec![
                PortSpec {
                    name: "internet".into(),
                    role: PortRole::Internet,
                    interface: None,
                    mac: mac(INET_MAC),
                    gateway_mac: Some(mac([2, 0, 0, 0, 2, 0x10])),
                    gateway: None,
                },
                backbone(0),
                backbone(1),
            ],
            regions: vec![RegionSpec {
                name: "beijing".into(),
                vni: VNI,
                vtep: Ipv4Addr::from(REGION_VTEP),
                inner_mac: mac(REGION_INNER_MAC),
                probe_target: Some(Ipv4Addr::from(PROBE_TARGET)),
            }],
            paths: vec![path(0), path(1)],
            eips: vec![EipSpec {
                address: Ipv4Addr::from(EIP).into(),
                region: "beijing".into(),
                backend: Some(Ipv4Addr::new(10, 1, 0, 10).into()),
                services: vec![],
            }],
        }
    }

    fn tables(spec: &PopSpec, version: u64) -> Tables {
        Tables::build(spec, version).unwrap()
    }

    /// Interval 10 ms, timeout 50 ms; down after 3 losses in a row or 4 in the
    /// last 10, up after 3 replies in a row.
    fn config() -> ProberConfig {
        ProberConfig {
            health: HealthConfig {
                interval: ms(10),
                timeout: ms(50),
                rtt_window: 64,
                loss_window: 10,
                down_after: 3,
                down_loss: 4,
                up_after: 3,
            },
            nonce: NONCE,
            ..ProberConfig::default()
        }
    }

    /// Everything one `poll` sent.
    fn poll_all(p: &mut Prober, now: Duration) -> Vec<(PortId, Vec<u8>)> {
        let mut out = Vec::new();
        let sent = p
            .poll(now, |port, frame| {
                out.push((port, frame.to_vec()));
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(sent, out.len());
        out
    }

    /// The region's answer to a probe, as its VXLAN device sends it, built by
    /// etherparse (not by our wire layer): echo reply, same identifier,
    /// sequence number and data, in a VXLAN packet to our VTEP.
    fn region_reply(probe: &[u8], path: usize) -> Vec<u8> {
        let h = PacketHeaders::from_ethernet_slice(&probe[ENCAP_LEN - 14..]).unwrap();
        let Some(TransportHeader::Icmpv4(icmp)) = &h.transport else {
            panic!("probe is not ICMP")
        };
        let Icmpv4Type::EchoRequest(echo) = icmp.icmp_type else {
            panic!("probe is not an echo request")
        };
        let data = h.payload.slice().to_vec();
        let inner = PacketBuilder::ethernet2(REGION_INNER_MAC, POP_INNER_MAC)
            .ipv4(PROBE_TARGET, PROBE_SOURCE, 64)
            .icmpv4_echo_reply(echo.id, echo.seq);
        let mut vxlan = vec![0x08, 0, 0, 0, 0, 0, 0, 0];
        vxlan[4..7].copy_from_slice(&VNI.to_be_bytes()[1..]);
        inner.write(&mut vxlan, &data).unwrap();
        let outer = PacketBuilder::ethernet2(NEXT_HOP[path], BB_MAC[path])
            .ipv4(REGION_VTEP, POP_VTEP, 64)
            .udp(51_000, 4789);
        let mut out = Vec::new();
        outer.write(&mut out, &vxlan).unwrap();
        out
    }

    /// Runs one frame through the production pipeline.
    fn pipeline(t: &Tables, input: &[u8], port: PortId) -> (Verdict, Vec<u8>) {
        let mut buf = vec![0u8; 2048];
        buf[256..256 + input.len()].copy_from_slice(input);
        let mut frames = [Frame::new(&mut buf, 256, input.len(), port)];
        let mut verdicts = [Verdict::ToKernel];
        Pipeline::default().process(Timestamp(1), t, &mut frames, &mut verdicts);
        (verdicts[0], frames[0].data().to_vec())
    }

    #[test]
    fn probe_frames_are_byte_exact_vxlan() {
        let spec = spec();
        let t = tables(&spec, 1);
        let mut p = Prober::new(&t, config(), ms(1000)).unwrap();
        assert_eq!(p.len(), 2);
        // First probes spread over one interval: path 0 now, path 1 5 ms later.
        let first = poll_all(&mut p, ms(1000));
        assert_eq!(first.len(), 1);
        assert_eq!(p.next_deadline(), Some(ms(1005)));
        let second = poll_all(&mut p, ms(1005));
        assert_eq!(second.len(), 1);
        let reports = p.snapshots();
        for (i, (port, frame)) in first.iter().chain(&second).enumerate() {
            assert_eq!(*port, t.port_by_name(&format!("backbone{i}")).unwrap());
            assert_eq!(frame.len(), PROBE_FRAME_LEN);
            let ident = reports[i].ident;

            // Outer, checked by etherparse.
            let outer = PacketHeaders::from_ethernet_slice(frame).unwrap();
            let Some(LinkHeader::Ethernet2(eth)) = &outer.link else {
                panic!("no Ethernet")
            };
            assert_eq!((eth.destination, eth.source), (NEXT_HOP[i], BB_MAC[i]));
            let Some(NetHeaders::Ipv4(ip, _)) = &outer.net else {
                panic!("outer not IPv4")
            };
            assert_eq!((ip.source, ip.destination), (POP_VTEP, REGION_VTEP));
            assert_eq!(ip.header_checksum, ip.calc_header_checksum());
            assert_eq!(usize::from(ip.total_len), frame.len() - 14);
            assert!(ip.dont_fragment);
            assert_eq!(ip.time_to_live, 64);
            let Some(TransportHeader::Udp(udp)) = &outer.transport else {
                panic!("outer not UDP")
            };
            let hash = flow::hash_v4(PROBE_SOURCE, PROBE_TARGET, ident, 0, ip_proto::ICMP);
            assert_eq!(udp.source_port, flow::vxlan_source_port(hash));
            assert_eq!(udp.destination_port, 4789);
            assert_eq!(usize::from(udp.length), frame.len() - 34);
            assert_eq!(udp.checksum, 0);
            let vx = outer.payload.slice();
            assert_eq!(&vx[..8], &[0x08, 0, 0, 0, 0, 0, 100, 0]);

            // Inner, checked by etherparse.
            let inner = PacketHeaders::from_ethernet_slice(&vx[8..]).unwrap();
            let Some(LinkHeader::Ethernet2(eth)) = &inner.link else {
                panic!("no inner Ethernet")
            };
            assert_eq!(
                (eth.destination, eth.source, eth.ether_type.0),
                (REGION_INNER_MAC, POP_INNER_MAC, 0x0800)
            );
            let Some(NetHeaders::Ipv4(ip, _)) = &inner.net else {
                panic!("inner not IPv4")
            };
            assert_eq!((ip.source, ip.destination), (PROBE_SOURCE, PROBE_TARGET));
            assert_eq!(ip.header_checksum, ip.calc_header_checksum());
            assert_eq!(usize::from(ip.total_len), INNER_LEN);
            let Some(TransportHeader::Icmpv4(icmp)) = &inner.transport else {
                panic!("inner not ICMP")
            };
            let Icmpv4Type::EchoRequest(echo) = icmp.icmp_type else {
                panic!("not an echo request")
            };
            assert_eq!((echo.id, echo.seq), (ident, 0));
            let data = inner.payload.slice();
            assert_eq!(icmp.checksum, icmp.icmp_type.calc_checksum(data));
            assert_eq!(&data[..8], &NONCE.to_be_bytes());
            let sent = if i == 0 { ms(1000) } else { ms(1005) };
            assert_eq!(data[8..16], (sent.as_nanos() as u64).to_be_bytes());

            // And by our own wire layer: the same checks the pipeline makes.
            let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
            assert!(ip.verify_checksum());
            let udp = UdpPacket::new_checked(ip.payload()).unwrap();
            let vx = VxlanHeader::new_checked(udp.payload()).unwrap();
            assert_eq!(vx.vni(), VNI);
            let ip = Ipv4Packet::new_checked(&vx.payload()[14..]).unwrap();
            assert!(ip.verify_checksum());
            assert!(Icmpv4Packet::new_checked(ip.payload())
                .unwrap()
                .verify_checksum());
        }
        // Identifiers differ per path; sequence numbers count per path.
        assert_ne!(reports[0].ident, reports[1].ident);
        let next = poll_all(&mut p, ms(1010));
        assert_eq!(next.len(), 1);
        assert_eq!(Icmpv4Packet::new_unchecked(&next[0].1[84..]).echo_seq(), 1);
    }

    /// The prober's encapsulation writes exactly the bytes the pipeline writes
    /// for data: the same ICMP echo sent by a client to an EIP is encapsulated
    /// by the pipeline, and [`write_encap_header`] is run on its inner packet.
    #[test]
    fn encapsulation_equals_the_pipelines() {
        let t = tables(&spec(), 1);
        for ident in [1u16, 777, 40_000, 65_535] {
            let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 2, 0x10], INET_MAC)
                .ipv4(CLIENT, EIP, 64)
                .icmpv4_echo_request(ident, 9);
            let mut client = Vec::new();
            builder.write(&mut client, b"0123456789abcdef").unwrap();
            let (verdict, out) = pipeline(&t, &client, 0);
            let Verdict::Tx(port) = verdict else {
                panic!("{verdict:?}")
            };
            let hash = flow::hash_v4(CLIENT, EIP, ident, 0, ip_proto::ICMP);
            let path = &t.paths[usize::from(t.regions[0].path_for(hash))];
            assert_eq!(port, path.port);
            let mut hdr = [0u8; ENCAP_LEN];
            let inner_len = (out.len() - ENCAP_LEN) as u16;
            write_encap_header(&mut hdr, &path.template, inner_len, false, hash);
            assert_eq!(hdr, out[..ENCAP_LEN], "ident {ident}");
        }
    }

    #[test]
    fn replies_pass_the_pipeline_and_are_matched() {
        let t = tables(&spec(), 1);
        let mut p = Prober::new(&t, config(), ms(0)).unwrap();
        let mut probes = poll_all(&mut p, ms(0));
        probes.extend(poll_all(&mut p, ms(5)));
        for (i, (_, probe)) in probes.iter().enumerate() {
            let reply = region_reply(probe, i);
            let port = t.port_by_name(&format!("backbone{i}")).unwrap();
            let (verdict, frame) = pipeline(&t, &reply, port);
            assert_eq!(verdict, Verdict::ToControl, "the pipeline hands it over");
            let sent = ms(5 * i as u64);
            let m = p.on_frame(sent + ms(2), &frame).unwrap();
            assert_eq!(
                m,
                Matched {
                    path: i as PathId,
                    seq: 0,
                    rtt: ms(2)
                }
            );
            let snap = p.snapshot(&format!("bb{i}")).unwrap();
            assert_eq!((snap.counters.received, snap.srtt), (1, Some(ms(2))));
            // A duplicate is matched to the path but counted unmatched there.
            p.on_frame(sent + ms(3), &frame).unwrap();
            assert_eq!(p.snapshot(&format!("bb{i}")).unwrap().counters.unmatched, 1);
        }
        assert_eq!(p.counters().replies, 4);
    }

    #[test]
    fn foreign_frames_are_ignored_and_counted() {
        let t = tables(&spec(), 1);
        let mut p = Prober::new(&t, config(), ms(0)).unwrap();
        let probe = poll_all(&mut p, ms(0)).remove(0).1;
        let good = region_reply(&probe, 0);
        let inner_ip = 50 + 14; // offset of the inner IPv4 header in a reply
        let icmp = inner_ip + 20;

        // Edits of the ICMP message that keep its checksum right.
        let edit = |f: &[u8], at: usize, value: u8| {
            let mut f = f.to_vec();
            f[icmp + at] = value;
            Icmpv4Packet::new_unchecked(&mut f[icmp..icmp + 8 + PAYLOAD_LEN]).fill_checksum();
            f
        };
        let nonce = edit(&good, 8, good[icmp + 8] ^ 0xff);
        assert_eq!(p.on_frame(ms(1), &nonce), Err(Ignored::WrongNonce));

        let mut checksum = good.clone();
        checksum[icmp + 9] ^= 1;
        assert_eq!(p.on_frame(ms(1), &checksum), Err(Ignored::BadChecksum));

        let ident = edit(&good, 4, good[icmp + 4] ^ 0x80);
        assert!(matches!(
            p.on_frame(ms(1), &ident),
            Err(Ignored::UnknownIdent { .. })
        ));

        let mut vni = good.clone();
        vni[48] = 7;
        assert_eq!(
            p.on_frame(ms(1), &vni),
            Err(Ignored::WrongSource {
                from: Ipv4Addr::from(PROBE_TARGET),
                vni: 7,
                target: Ipv4Addr::from(PROBE_TARGET),
                expected_vni: VNI,
            })
        );

        let request = edit(&good, 0, icmpv4::ECHO_REQUEST);
        assert_eq!(p.on_frame(ms(1), &request), Err(Ignored::NotEchoReply));

        assert!(matches!(
            p.on_frame(ms(1), &good[..good.len() - 20]),
            Err(Ignored::Malformed(_))
        ));
        assert!(matches!(
            p.on_frame(ms(1), &[0; 10]),
            Err(Ignored::Malformed(_))
        ));
        let mut port = good.clone();
        port[37] = 0x12;
        assert_eq!(
            p.on_frame(ms(1), &port),
            Err(Ignored::Malformed("UDP (not to the VXLAN port)"))
        );

        // None of them touched the path; the real reply still counts.
        assert_eq!(p.snapshot("bb0").unwrap().counters.received, 0);
        p.on_frame(ms(1), &good).unwrap();
        let c = *p.counters();
        assert_eq!(
            (
                c.replies,
                c.ignored_wrong_nonce,
                c.ignored_bad_checksum,
                c.ignored_unknown_ident,
                c.ignored_wrong_source,
                c.ignored_not_echo_reply,
                c.ignored_malformed
            ),
            (1, 1, 1, 1, 1, 1, 3)
        );
    }

    /// A network of two paths with a fake clock: each probe is answered after
    /// `rtt[path]`, unless its path is cut.
    struct Net {
        t: Tables,
        p: Prober,
        now: Duration,
        rtt: [Duration; 2],
        cut: [bool; 2],
        /// (due, path, reply frame)
        in_flight: Vec<(Duration, usize, Vec<u8>)>,
        events: Vec<ProberEvent>,
        /// How many probes of each path were sent.
        sent: [u64; 2],
        /// Drop every n-th probe of a path (0: none).
        lose_every: [u64; 2],
        /// Rebuild the tables when the prober's states differ, as `eipd run`
        /// does; `spec` is what they are built from.
        closed_loop: bool,
        spec: PopSpec,
        rebuilds: u32,
    }

    impl Net {
        fn new() -> Net {
            let t = tables(&spec(), 1);
            let p = Prober::new(&t, config(), Duration::ZERO).unwrap();
            Net {
                t,
                p,
                now: Duration::ZERO,
                rtt: [ms(2), ms(3)],
                cut: [false; 2],
                in_flight: Vec::new(),
                events: Vec::new(),
                sent: [0; 2],
                lose_every: [0; 2],
                closed_loop: false,
                spec: spec(),
                rebuilds: 0,
            }
        }

        /// Runs the loop for `d` in 1 ms steps, as the control thread would.
        fn run(&mut self, d: Duration) {
            let end = self.now + d;
            while self.now < end {
                self.now += ms(1);
                let now = self.now;
                let mut out = Vec::new();
                self.p
                    .poll(now, |port, frame| {
                        out.push((port, frame.to_vec()));
                        Ok::<(), ()>(())
                    })
                    .unwrap();
                for (port, frame) in out {
                    let path = usize::from(port) - 1;
                    self.sent[path] += 1;
                    let lost = self.cut[path]
                        || (self.lose_every[path] > 0
                            && self.sent[path].is_multiple_of(self.lose_every[path]));
                    if !lost {
                        let reply = region_reply(&frame, path);
                        self.in_flight.push((now + self.rtt[path], path, reply));
                    }
                }
                let (due, later): (Vec<_>, Vec<_>) =
                    self.in_flight.drain(..).partition(|(at, _, _)| *at <= now);
                self.in_flight = later;
                for (_, path, reply) in due {
                    let port = self.t.port_by_name(&format!("backbone{path}")).unwrap();
                    let (verdict, frame) = pipeline(&self.t, &reply, port);
                    assert_eq!(verdict, Verdict::ToControl);
                    self.p.on_frame(now, &frame).unwrap();
                }
                self.p.tick(now);
                while let Some(e) = self.p.pop_event() {
                    self.events.push(e);
                }
                if self.closed_loop && self.p.differs_from(&self.t) {
                    assert!(self.p.apply_states(&mut self.spec));
                    self.t = tables(&self.spec, self.t.version + 1);
                    self.p.update_tables(&self.t, now);
                    self.rebuilds += 1;
                }
            }
        }

        fn states(&self) -> Vec<PathState> {
            self.p.path_states().map(|(_, s)| s).collect()
        }

        fn path_events(&self, path: &str) -> Vec<(PathState, PathState, Reason)> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    ProberEvent::Path {
                        path: p,
                        transition,
                    } if p == path => Some((transition.from, transition.to, transition.reason)),
                    _ => None,
                })
                .collect()
        }
    }

    #[test]
    fn a_cut_path_goes_down_the_other_stays_up_and_it_comes_back() {
        use PathState::{Down, Up};
        let mut net = Net::new();
        assert_eq!(
            net.states(),
            vec![Up, Up],
            "paths start as the tables hold them"
        );
        net.run(ms(100));
        assert_eq!(net.states(), vec![Up, Up]);
        assert!(
            net.path_events("bb0").is_empty(),
            "confirmed, no transition"
        );
        let mut spec = spec();
        spec.paths[1].state = Down;
        assert!(net.p.differs_from(&tables(&spec, 2)));
        assert!(net.p.apply_states(&mut spec));
        assert!(!net.p.apply_states(&mut spec), "applied once");
        assert!(!net.p.differs_from(&tables(&spec, 2)));

        // Cut bb1: three probes in a row time out (50 ms), then it is down.
        net.events.clear();
        net.cut[1] = true;
        let cut_at = net.now;
        net.run(ms(200));
        assert_eq!(net.states(), vec![Up, Down]);
        assert_eq!(
            net.path_events("bb1"),
            vec![(Up, Down, Reason::ConsecutiveLost { count: 3 })]
        );
        assert!(net.path_events("bb0").is_empty(), "bb0 unaffected");
        let down_at = net.p.snapshot("bb1").unwrap().last_change - cut_at;
        // The 3rd probe after the cut left within 30 ms and timed out 50 ms later.
        assert!(down_at > ms(50) && down_at <= ms(81), "{down_at:?}");
        assert!(net.p.apply_states(&mut spec));
        let t = tables(&spec, 3);
        assert_eq!(t.paths[1].state, Down);
        assert!(!t.regions[0].panic, "bb0 carries everything");
        assert_eq!(
            t.regions[0].path_table.iter().filter(|&&p| p == 1).count(),
            0
        );

        // Repair it: up again after three replies in a row and once the loss
        // window holds fewer than 4 losses (the probes in flight during the cut
        // still time out after the repair, interleaved with the first replies).
        net.events.clear();
        net.cut[1] = false;
        net.run(ms(150));
        assert_eq!(net.states(), vec![Up, Up]);
        let events = net.path_events("bb1");
        assert!(
            matches!(
                events[..],
                [(Down, Up, Reason::ConsecutiveReplies { count })] if count >= 3
            ),
            "{events:?}"
        );
        assert!(net.p.snapshot("bb1").unwrap().window_lost < 4);

        // Both cut: both down, the region falls back to both (table: Down, Down).
        net.events.clear();
        net.cut = [true, true];
        net.run(ms(200));
        assert_eq!(net.states(), vec![Down, Down]);
        assert!(net.events.iter().any(|e| matches!(
            e,
            ProberEvent::Region {
                mode: SelectionMode::Fallback,
                ..
            }
        )));
        let texts: Vec<String> = net.events.iter().map(|e| e.to_string()).collect();
        assert!(
            texts.contains(&"path bb1: up -> down: 3 consecutive probes lost".to_string()),
            "{texts:?}"
        );
        assert!(texts.contains(
            &"region beijing: no path up, traffic on every path not disabled (fallback)"
                .to_string()
        ));
    }

    /// The control loop of `eipd run` in miniature: the table follows the
    /// prober, and data leaves the cut path.
    #[test]
    fn closed_loop_moves_traffic_off_a_cut_path() {
        use PathState::{Down, Up};
        let mut net = Net::new();
        net.closed_loop = true;
        // Both paths start up, as the tables hold them, and the probes confirm
        // them: no rebuild, no fallback.
        net.run(ms(200));
        assert_eq!(
            net.rebuilds, 0,
            "paths start as the tables hold them: no rebuild"
        );
        let states = |t: &Tables| t.paths.iter().map(|p| p.state).collect::<Vec<_>>();
        assert_eq!(states(&net.t), vec![Up, Up]);
        let modes: Vec<SelectionMode> = net
            .events
            .iter()
            .filter_map(|e| match e {
                ProberEvent::Region { mode, .. } => Some(*mode),
                _ => None,
            })
            .collect();
        assert!(modes.is_empty(), "no fallback at start: {modes:?}");

        // A client flow that the table puts on bb1.
        let flow_on = |t: &Tables, ident: u16| {
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 2, 0x10], INET_MAC)
                .ipv4(CLIENT, EIP, 64)
                .icmpv4_echo_request(ident, 1);
            let mut f = Vec::new();
            b.write(&mut f, b"data").unwrap();
            match pipeline(t, &f, 0).0 {
                Verdict::Tx(port) => port,
                v => panic!("{v:?}"),
            }
        };
        let bb1_port = net.t.port_by_name("backbone1").unwrap();
        let ident = (0..1000u16)
            .find(|&i| flow_on(&net.t, i) == bb1_port)
            .expect("some flow on bb1");

        // Cut bb1: one rebuild, and the flow moves to bb0.
        net.cut[1] = true;
        net.run(ms(200));
        assert_eq!(net.rebuilds, 1);
        assert_eq!(states(&net.t), vec![Up, Down]);
        assert_ne!(flow_on(&net.t, ident), bb1_port);

        // Steady for 2 s: no rebuild.
        net.run(ms(2000));
        assert_eq!(net.rebuilds, 1);

        // Repaired: back on bb1 (Maglev: the same flow, the same path).
        net.cut[1] = false;
        net.run(ms(300));
        assert_eq!(net.rebuilds, 2);
        assert_eq!(flow_on(&net.t, ident), bb1_port);
    }

    #[test]
    fn occasional_loss_does_not_flap() {
        let mut net = Net::new();
        net.run(ms(100));
        net.events.clear();
        // One probe in five lost on bb0: never two in a row, 2 in any 10; below
        // both thresholds (3 in a row, 4 in 10), so nothing changes.
        net.lose_every = [5, 0];
        net.run(ms(2000));
        assert!(net.events.is_empty(), "{:?}", net.events);
        let s = net.p.snapshot("bb0").unwrap();
        assert!(s.counters.lost >= 39, "{:?}", s.counters);
        assert_eq!(net.states(), vec![PathState::Up, PathState::Up]);

        // One in two lost on bb1: down once the window holds 4 losses, and never
        // back up: it never gets 3 replies in a row.
        net.lose_every = [0, 2];
        net.run(ms(1000));
        let changes = net.path_events("bb1");
        assert_eq!(changes.len(), 1, "down once, never back: {changes:?}");
        assert_eq!(changes[0].1, PathState::Down);
    }

    #[test]
    fn rtt_hysteresis_keeps_similar_paths_steady() {
        use PathState::{Down, Up};
        let mut net = Net::new();
        // Both start up (as the tables hold them); bb1 at 25 ms against bb0's
        // 10 ms is beyond the leave limit of 20 ms: it stops carrying traffic.
        net.rtt = [ms(10), ms(25)];
        net.run(ms(1000));
        assert_eq!(net.states(), vec![Up, Down], "25 ms > 10 * 1.5 + 5");
        assert!(net.events.iter().any(|e| matches!(
            e,
            ProberEvent::Rtt { path, carries_traffic: false, .. } if path == "bb1"
        )));
        // It improves to 13 ms: joins once.
        net.events.clear();
        net.rtt[1] = ms(13);
        net.run(ms(1000));
        assert_eq!(net.states(), vec![Up, Up]);
        let rtt_events = |net: &Net| {
            net.events
                .iter()
                .filter(|e| matches!(e, ProberEvent::Rtt { .. }))
                .count()
        };
        assert_eq!(rtt_events(&net), 1, "{:?}", net.events);
        // Jitter between 13 and 19 ms: within the leave limit (20 ms), no change.
        net.events.clear();
        for k in 0..40 {
            net.rtt[1] = ms(13 + (k * 5) % 7);
            net.run(ms(50));
        }
        assert!(net.events.is_empty(), "{:?}", net.events);
        assert_eq!(net.states(), vec![Up, Up]);
        // 25 ms: leaves once, and does not come back while above 14 ms.
        net.rtt[1] = ms(25);
        net.run(ms(1000));
        for k in 0..40 {
            net.rtt[1] = ms(15 + (k % 5));
            net.run(ms(50));
        }
        assert_eq!(net.states(), vec![Up, Down]);
        assert_eq!(rtt_events(&net), 1, "{:?}", net.events);
        let text = net.events[0].to_string();
        assert!(text.starts_with("path bb1: up but too slow"), "{text}");
    }

    #[test]
    fn table_updates_keep_health_by_name() {
        use PathState::{Disabled, Down, Up};
        let mut net = Net::new();
        net.run(ms(100));
        let idents: Vec<u16> = net.p.snapshots().iter().map(|r| r.ident).collect();

        // Reorder the paths, disable bb0, add bb2 on backbone1 with another MAC.
        let mut spec = spec();
        spec.paths.swap(0, 1);
        spec.paths[1].state = Disabled;
        let mut bb2 = spec.paths[0].clone();
        bb2.name = "bb2".into();
        bb2.next_hop_mac = Some(MacAddr([2, 0, 0, 0, 0x10, 0x99]));
        spec.paths.push(bb2);
        let t = tables(&spec, 2);
        net.p.update_tables(&t, net.now);
        net.t = t;
        let r = net.p.snapshots();
        let names: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["bb1", "bb0", "bb2"]);
        assert_eq!((r[0].ident, r[1].ident), (idents[1], idents[0]));
        assert!(!idents.contains(&r[2].ident));
        assert_eq!(
            (r[0].table_state, r[1].table_state, r[2].table_state),
            (Up, Disabled, Down)
        );
        assert!(r[0].health.counters.received >= 8, "kept its history");
        assert_eq!(r[2].health.counters.sent, 0, "a new path starts afresh");
        let event = net.p.pop_event().unwrap();
        assert_eq!(
            event.to_string(),
            "path bb0: up -> disabled: disabled by operator"
        );
        assert_eq!(net.p.pop_event(), None);

        // bb2 is probed at once with its own template (new next-hop MAC).
        let out = poll_all(&mut net.p, net.now);
        let bb2_frame = out
            .iter()
            .find(|(_, f)| f[..6] == [2, 0, 0, 0, 0x10, 0x99])
            .expect("bb2 probed");
        assert_eq!(
            Icmpv4Packet::new_unchecked(&bb2_frame.1[84..]).echo_ident(),
            r[2].ident
        );

        // bb0 removed: its identifier is no longer accepted nor reused.
        let old_bb0 = idents[0];
        spec.paths.retain(|p| p.name != "bb0");
        let t = tables(&spec, 3);
        net.p.update_tables(&t, net.now);
        assert_eq!(net.p.len(), 2);
        spec.paths.push(PathSpec {
            name: "bb3".into(),
            ..spec.paths[0].clone()
        });
        net.p.update_tables(&tables(&spec, 4), net.now);
        let r = net.p.snapshots();
        assert!(r.iter().all(|r| r.ident != old_bb0));
    }

    #[test]
    fn send_failures_retry_without_charging_the_path() {
        let t = tables(&spec(), 1);
        let mut p = Prober::new(&t, config(), ms(0)).unwrap();
        let refused = p.poll(ms(0), |_, _| Err("full"));
        assert_eq!(refused, Err("full"));
        assert_eq!(p.counters().send_failed, 1);
        assert_eq!(p.snapshot("bb0").unwrap().counters.sent, 0);
        // Still due: sent at the next poll.
        assert_eq!(p.next_deadline(), Some(ms(0)));
        assert_eq!(poll_all(&mut p, ms(1)).len(), 1);
        assert_eq!(p.snapshot("bb0").unwrap().counters.sent, 1);
    }

    #[test]
    fn a_late_caller_gets_no_burst() {
        let t = tables(&spec(), 1);
        let mut p = Prober::new(&t, config(), ms(0)).unwrap();
        assert_eq!(poll_all(&mut p, ms(5)).len(), 2);
        // Stalled for 100 ms: one probe per path, and the schedule restarts.
        assert_eq!(poll_all(&mut p, ms(105)).len(), 2);
        assert!(poll_all(&mut p, ms(106)).is_empty());
        assert_eq!(p.next_deadline(), Some(ms(115)));
        // On schedule, probes keep their phase.
        assert_eq!(poll_all(&mut p, ms(117)).len(), 2);
        assert_eq!(p.next_deadline(), Some(ms(125)));
    }

    #[test]
    fn nothing_to_probe_without_source_or_target() {
        let mut s = spec();
        s.pop.probe_source = None;
        let mut p = Prober::new(&tables(&s, 1), config(), ms(0)).unwrap();
        assert!(p.is_empty());
        assert_eq!(p.next_deadline(), None);
        assert_eq!(poll_all(&mut p, ms(0)).len(), 0);
        let mut s = spec();
        s.regions[0].probe_target = None;
        assert!(Prober::new(&tables(&s, 1), config(), ms(0))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn config_is_validated() {
        let mut c = config();
        c.leave = RttTolerance::new(1.1, ms(5)).unwrap();
        assert!(matches!(
            c.validate(),
            Err(ProberConfigError::Hysteresis { .. })
        ));
        let mut c = config();
        c.health.interval = ms(1);
        assert!(matches!(c.validate(), Err(ProberConfigError::Health(_))));
        assert!(Prober::new(&tables(&spec(), 1), c, ms(0)).is_err());
        ProberConfig::default().validate().unwrap();
    }

    #[test]
    fn events_and_reports_serialize() {
        let mut net = Net::new();
        net.cut = [true, true];
        net.run(ms(150));
        net.cut = [false, false];
        net.run(ms(150));
        let json = serde_json::to_value(&net.events).unwrap();
        assert_eq!(json[0]["event"], "path");
        assert_eq!(json[0]["transition"]["to"], "down");
        assert!(json
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "region" && e["mode"] == "fallback"));
        assert!(json
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "path" && e["transition"]["to"] == "up"));
        let report = serde_json::to_value(net.p.snapshots()).unwrap();
        assert_eq!(report[0]["name"], "bb0");
        assert_eq!(report[0]["table_state"], "up");
        assert_eq!(report[0]["health"]["srtt_us"], 2000.0);
        let board = HealthBoard::default();
        board.publish(&net.p);
        assert_eq!(board.get("bb1").unwrap().state, PathState::Up);
        assert!(board.get("nope").is_none());
        let health = net.p.table_health();
        assert_eq!(health, vec![("bb0", Health::Up), ("bb1", Health::Up)]);
    }
}
