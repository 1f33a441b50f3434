//! The [`Prober`] itself: which paths it probes and under which identifier,
//! when each probe is due, which reply belongs to which probe, and which up
//! paths carry traffic (RTT selection with hysteresis). See the
//! [module docs](super) for what a probe is.

use super::codec::{parse_reply, Ignored, Probe, PROBE_FRAME_LEN};
use super::event::EventQueue;
use super::{ProberConfig, ProberConfigError, ProberEvent};
use crate::health::{select, Candidate, Health, HealthSnapshot, PathHealth, SelectionMode};
use eip_dataplane::flow;
use eip_dataplane::tables::{PathId, PathState, PopSpec, Tables, ENCAP_LEN};
use eip_dataplane::wire::ip_proto;
use eip_dataplane::PortId;
use serde::Serialize;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

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

/// The prober of every path. See the [module docs](super).
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
    events: EventQueue,
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
            events: EventQueue::default(),
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
                self.events.push(ProberEvent::Path {
                    path: probed.name.clone(),
                    transition: t,
                });
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
            let frame = Probe {
                template: &p.template,
                hash: p.hash,
                source,
                target: p.target,
                ident: p.ident,
                seq,
                nonce: self.config.nonce,
                sent: now,
            }
            .emit(&mut self.buf);
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
                self.events.push(ProberEvent::Path {
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
            self.events.push(ProberEvent::Path {
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
                self.events.push(ProberEvent::Path {
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
                    self.events.push(event);
                }
                p.table_state = state;
                p.selected_health = health;
            }
            if self.regions[r].mode != Some(join.mode) {
                let first = self.regions[r].mode.is_none();
                self.regions[r].mode = Some(join.mode);
                if !first || join.mode != SelectionMode::Healthy {
                    let region = self.regions[r].name.clone();
                    self.events.push(ProberEvent::Region {
                        region,
                        at: now,
                        mode: join.mode,
                    });
                }
            }
        }
    }

    /// The oldest event not yet taken: log it.
    pub fn pop_event(&mut self) -> Option<ProberEvent> {
        self.events.pop()
    }

    /// Events discarded because nobody took them (more than 1,024 waiting).
    pub fn events_dropped(&self) -> u64 {
        self.events.dropped()
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

    /// Each probed path's name and health state machine, for
    /// [`HealthBoard::publish`](super::HealthBoard::publish).
    pub(super) fn path_healths(&self) -> impl Iterator<Item = (&str, &PathHealth)> + '_ {
        self.paths.iter().map(|p| (p.name.as_str(), &p.health))
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

#[cfg(test)]
mod tests;
