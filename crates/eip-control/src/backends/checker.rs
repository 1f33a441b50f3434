//! The [`BackendChecker`]: which backends are checked and how, when each check
//! is due, which answer belongs to which check, and what the results mean for
//! the tables and the announcements. See the [module docs](super).

use super::codec::{
    isn, parse_tcp_segment, source_port, tcp_reply, Answer, Segment, MAX_TCP_FRAME_LEN,
};
use super::http::{Exchange, SegmentOut};
use super::{BackendEvent, BackendKey, BackendReport, CheckerCounters};
use crate::health::{Health, HealthConfig, PathHealth};
use crate::probe::codec::{parse_reply, Ignored, Probe};
use crate::probe::PROBE_FRAME_LEN;
use eip_dataplane::check_spec::{CheckKind, CheckSpec};
use eip_dataplane::flow;
use eip_dataplane::tables::{BackendRef, Tables};
use eip_dataplane::wire::ip_proto;
use eip_dataplane::PortId;
use http::{http_port, FlowKey, HttpCheck, MAX_EXCHANGES};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

/// Events kept when the caller does not drain them.
const MAX_EVENTS: usize = 1024;
/// RSTs waiting to close accepted checks; more are dropped (the backend's
/// half-open connection then times out on its own).
const MAX_PENDING_RST: usize = 1024;
/// ICMP identifiers of backend checks: the upper half, so they never meet the
/// path prober's (which count up from 1).
const FIRST_IDENT: u16 = 0x8000;
/// What the checker keeps of one backend.
#[derive(Debug)]
struct Checked {
    key: BackendKey,
    spec: CheckSpec,
    address: [u8; 4],
    /// Port the check goes to (TCP).
    dport: u16,
    region: usize,
    vni: u32,
    ident: u16,
    next_seq: u16,
    next_check: Duration,
    health: PathHealth,
    transitions: u64,
    /// `http`: the status of the last answer.
    last_status: Option<u16>,
    /// `http`: the request sent once connected (built when configured).
    request: Box<[u8]>,
}

/// The checker of every backend with a check. Sans-IO: the caller passes `now`,
/// the tables to send with and a `send` function, and hands over the frames the
/// pipeline passed to the control thread.
#[derive(Debug)]
pub struct BackendChecker {
    nonce: u64,
    source: Option<[u8; 4]>,
    vxlan_port: u16,
    targets: Vec<Checked>,
    by_ident: HashMap<u16, usize>,
    next_ident: u16,
    /// EIPs with checked backends and also one that is not checked: never
    /// "all backends down" (EIPs with no checked backend are never either).
    unchecked_eips: HashSet<IpAddr>,
    /// What [`Self::update`] last took, to take the next by difference.
    seen: Option<update::Seen>,
    /// Accepted checks to close: (target, check sequence number).
    pending_rst: VecDeque<(usize, u16)>,
    /// HTTP exchanges by the 4-tuple the backend answers on.
    exchanges: HashMap<FlowKey, HttpCheck>,
    /// Segments HTTP exchanges asked for: (backend ident, flow, segment).
    pending_http: VecDeque<(u16, FlowKey, SegmentOut)>,
    events: VecDeque<BackendEvent>,
    counters: CheckerCounters,
    tcp_buf: Box<[u8; MAX_TCP_FRAME_LEN]>,
    icmp_buf: [u8; PROBE_FRAME_LEN],
}

/// The state machine's settings for one check.
fn health_config(spec: &CheckSpec) -> HealthConfig {
    let loss_window = 20usize.max(spec.down_after as usize);
    HealthConfig {
        interval: Duration::from_millis(spec.interval_ms),
        timeout: Duration::from_millis(spec.timeout_ms),
        rtt_window: 16,
        loss_window,
        down_after: spec.down_after,
        down_loss: 8u32.max(spec.down_after).min(loss_window as u32),
        up_after: spec.up_after,
    }
}

impl BackendChecker {
    /// A checker with nothing to check yet ([`Self::update`] gives it the
    /// POP). Answers without `nonce` are not counted.
    pub fn new(nonce: u64) -> BackendChecker {
        BackendChecker {
            nonce,
            source: None,
            vxlan_port: 4789,
            targets: Vec::new(),
            by_ident: HashMap::new(),
            next_ident: FIRST_IDENT,
            unchecked_eips: HashSet::new(),
            seen: None,
            pending_rst: VecDeque::new(),
            exchanges: HashMap::new(),
            pending_http: VecDeque::new(),
            events: VecDeque::new(),
            counters: CheckerCounters::default(),
            tcp_buf: Box::new([0; MAX_TCP_FRAME_LEN]),
            icmp_buf: [0; PROBE_FRAME_LEN],
        }
    }

    /// Sends the RSTs that close accepted checks, then every check that is
    /// due, through `send(port, frame)`, each over the path the region's table
    /// gives its flow (as data). A region with no usable path gets no checks
    /// (its backends are not charged). Returns how many frames were sent.
    ///
    /// # Errors
    /// The first error of `send`; what was not sent stays due.
    pub fn poll<E>(
        &mut self,
        now: Duration,
        tables: &Tables,
        mut send: impl FnMut(PortId, &[u8]) -> Result<(), E>,
    ) -> Result<usize, E> {
        let Some(source) = self.source else {
            return Ok(0);
        };
        let mut sent = 0;
        while let Some(&(i, seq)) = self.pending_rst.front() {
            let c = &self.targets[i];
            let sport = source_port(seq);
            let hash = flow::hash_v4(source, c.address, sport, c.dport, ip_proto::TCP);
            if let Some(path) = path_of(tables, c.region, hash) {
                let frame = Segment {
                    template: &tables.paths[path].template,
                    hash,
                    source,
                    target: c.address,
                    sport,
                    dport: c.dport,
                    seq_number: isn(c.ident, seq, self.nonce).wrapping_add(1),
                    syn: false,
                }
                .emit(&mut self.tcp_buf[..]);
                send(tables.paths[path].port, frame)?;
                self.counters.rsts_sent += 1;
                sent += 1;
            }
            self.pending_rst.pop_front();
        }
        sent += self.send_http_segments(source, tables, &mut send)?;
        for c in &mut self.targets {
            if c.next_check > now {
                continue;
            }
            let interval = Duration::from_millis(c.spec.interval_ms);
            let seq = c.next_seq;
            let sport = match c.spec.kind {
                CheckKind::Http => http_port(c.ident, seq),
                _ => source_port(seq),
            };
            let (hash, sport) = match c.spec.kind {
                CheckKind::Tcp | CheckKind::Http => (
                    flow::hash_v4(source, c.address, sport, c.dport, ip_proto::TCP),
                    sport,
                ),
                _ => (
                    flow::hash_v4(source, c.address, c.ident, 0, ip_proto::ICMP),
                    0,
                ),
            };
            if c.spec.kind == CheckKind::Http && self.exchanges.len() >= MAX_EXCHANGES {
                self.counters.http_busy += 1;
                c.next_check = now + interval;
                continue;
            }
            if let Some(path) = path_of(tables, c.region, hash) {
                let template = &tables.paths[path].template;
                let frame = match c.spec.kind {
                    CheckKind::Tcp | CheckKind::Http => Segment {
                        template,
                        hash,
                        source,
                        target: c.address,
                        sport,
                        dport: c.dport,
                        seq_number: isn(c.ident, seq, self.nonce),
                        syn: true,
                    }
                    .emit(&mut self.tcp_buf[..]),
                    _ => Probe {
                        template,
                        hash,
                        source,
                        target: c.address,
                        ident: c.ident,
                        seq,
                        nonce: self.nonce,
                        sent: now,
                    }
                    .emit(&mut self.icmp_buf),
                };
                if let Err(e) = send(tables.paths[path].port, frame) {
                    self.counters.send_failed += 1;
                    return Err(e);
                }
                sent += 1;
                self.counters.checks_sent += 1;
                if c.spec.kind == CheckKind::Http {
                    let exchange = Exchange::new(isn(c.ident, seq, self.nonce), c.request.len());
                    let check = HttpCheck {
                        ident: c.ident,
                        seq,
                        exchange,
                        expires: now + Duration::from_millis(c.spec.timeout_ms),
                    };
                    // A 4-tuple still in use by another exchange: the older
                    // one is forgotten (its check times out).
                    self.exchanges.insert((c.address, c.dport, sport), check);
                }
                c.next_seq = seq.wrapping_add(1);
                if let Some(t) = c.health.probe_sent(seq, now) {
                    c.transitions += 1;
                    push(&mut self.events, &mut self.counters, c, t);
                }
            } else {
                self.counters.no_path += 1;
            }
            c.next_check = if now.saturating_sub(c.next_check) >= interval {
                now + interval
            } else {
                c.next_check + interval
            };
        }
        Ok(sent)
    }

    /// Takes a frame the pipeline passed to the control thread, received at
    /// `now`. Returns false when it is not for the checker (an ICMP echo
    /// reply with a path probe's identifier, or anything not TCP): offer it to
    /// the path prober. Every TCP segment to the probe source is the
    /// checker's; one that matches no check is counted by cause.
    pub fn on_frame(&mut self, now: Duration, frame: &[u8]) -> bool {
        let Some(source) = self.source else {
            return false;
        };
        match parse_tcp_segment(frame, self.vxlan_port) {
            Ok(seg) => {
                let flow = (seg.src, seg.sport, seg.dport);
                let result = if seg.dst == source && self.exchanges.contains_key(&flow) {
                    self.match_http(now, flow, &seg)
                } else {
                    tcp_reply(&seg).and_then(|r| self.match_tcp(now, source, r))
                };
                self.count(result);
                true
            }
            Err(Ignored::NotEchoReply) => match parse_reply(frame, self.vxlan_port) {
                Ok(r) if r.dst == source && self.by_ident.contains_key(&r.ident) => {
                    let &i = self.by_ident.get(&r.ident).expect("checked above");
                    let c = &mut self.targets[i];
                    let result = if r.src != c.address || r.vni != c.vni {
                        Err(Ignored::WrongSource {
                            from: r.src.into(),
                            vni: r.vni,
                            target: c.address.into(),
                            expected_vni: c.vni,
                        })
                    } else if r.nonce != self.nonce || c.spec.kind != CheckKind::Icmp {
                        Err(Ignored::WrongNonce)
                    } else {
                        if let Some(t) = c.health.probe_reply(r.seq, now) {
                            c.transitions += 1;
                            push(&mut self.events, &mut self.counters, c, t);
                        }
                        Ok(())
                    };
                    self.count(result);
                    true
                }
                _ => false,
            },
            Err(e) => {
                // Malformed outer headers or TCP: the prober would refuse it too.
                self.count(Err(e));
                true
            }
        }
    }

    fn match_tcp(
        &mut self,
        now: Duration,
        source: [u8; 4],
        r: super::codec::TcpReply,
    ) -> Result<(), Ignored> {
        if r.dst != source {
            return Err(Ignored::NotEchoReply);
        }
        let named = r.isn ^ self.nonce as u32;
        let (ident, seq) = ((named >> 16) as u16, named as u16);
        let &i = self
            .by_ident
            .get(&ident)
            .ok_or(Ignored::UnknownIdent { ident })?;
        let c = &mut self.targets[i];
        if r.src != c.address || r.vni != c.vni || r.sport != c.dport {
            return Err(Ignored::WrongSource {
                from: r.src.into(),
                vni: r.vni,
                target: c.address.into(),
                expected_vni: c.vni,
            });
        }
        if r.dport != source_port(seq) || c.spec.kind != CheckKind::Tcp {
            return Err(Ignored::WrongNonce);
        }
        let t = match r.answer {
            Answer::Accepted => {
                if self.pending_rst.len() < MAX_PENDING_RST {
                    self.pending_rst.push_back((i, seq));
                }
                c.health.probe_reply(seq, now)
            }
            Answer::Refused => {
                self.counters.refused += 1;
                c.health.probe_failed(seq, now)
            }
        };
        if let Some(t) = t {
            c.transitions += 1;
            push(&mut self.events, &mut self.counters, c, t);
        }
        Ok(())
    }

    fn count(&mut self, result: Result<(), Ignored>) {
        let c = &mut self.counters;
        match result {
            Ok(()) => c.answers += 1,
            Err(Ignored::Malformed(_) | Ignored::BadChecksum | Ignored::NotEchoReply) => {
                c.ignored_malformed += 1
            }
            Err(Ignored::UnknownIdent { .. }) => c.ignored_unknown += 1,
            Err(Ignored::WrongSource { .. }) => c.ignored_wrong_source += 1,
            Err(Ignored::WrongNonce) => c.ignored_wrong_nonce += 1,
        }
    }

    /// Declares overdue checks lost. Call it every loop, after the frames.
    pub fn tick(&mut self, now: Duration) {
        self.expire_exchanges(now);
        for c in &mut self.targets {
            if let Some(t) = c.health.tick(now) {
                c.transitions += 1;
                push(&mut self.events, &mut self.counters, c, t);
            }
        }
    }

    /// When the checker next needs [`Self::poll`] or [`Self::tick`].
    pub fn next_deadline(&self) -> Option<Duration> {
        self.targets
            .iter()
            .flat_map(|c| [Some(c.next_check), c.health.next_timeout()])
            .flatten()
            .chain(self.exchanges.values().map(|x| x.expires))
            .min()
    }

    /// The oldest event not yet taken: log it.
    pub fn pop_event(&mut self) -> Option<BackendEvent> {
        self.events.pop_front()
    }

    /// Measured health of every checked service backend, for
    /// `ControlPlane::set_backend_health`.
    pub fn service_health(&self) -> Vec<(BackendRef, bool)> {
        self.targets
            .iter()
            .filter_map(|c| {
                let (protocol, port) = c.key.service?;
                let r = BackendRef {
                    eip: c.key.eip,
                    protocol,
                    port,
                    backend: c.key.backend,
                    backend_port: c.key.port,
                };
                Some((r, c.health.health() == Health::Up))
            })
            .collect()
    }

    /// The EIPs all of whose backends are checked and down. Costs the
    /// checked backends, not the EIPs.
    pub fn eips_down(&self) -> HashSet<IpAddr> {
        let up: HashSet<IpAddr> = self
            .targets
            .iter()
            .filter(|c| c.health.health() == Health::Up)
            .map(|c| c.key.eip)
            .collect();
        self.targets
            .iter()
            .map(|c| c.key.eip)
            .filter(|e| !up.contains(e) && !self.unchecked_eips.contains(e))
            .collect()
    }

    /// A report of every checked backend. Allocates: call it at reporting rate.
    pub fn reports(&self) -> Vec<BackendReport> {
        self.targets
            .iter()
            .map(|c| BackendReport {
                key: c.key,
                check: c.spec.clone(),
                check_port: matches!(c.spec.kind, CheckKind::Tcp | CheckKind::Http)
                    .then_some(c.dport),
                last_status: c.last_status,
                health: c.health.health(),
                transitions: c.transitions,
                snapshot: c.health.snapshot(),
            })
            .collect()
    }

    pub fn counters(&self) -> &CheckerCounters {
        &self.counters
    }

    /// Number of backends checked.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// The path the region's table gives a flow hash, as the pipeline picks it.
fn path_of(tables: &Tables, region: usize, hash: u64) -> Option<usize> {
    let r = tables.regions.get(region)?;
    if r.path_table.is_empty() {
        return None;
    }
    Some(usize::from(r.path_for(hash)))
}

fn push(
    events: &mut VecDeque<BackendEvent>,
    counters: &mut CheckerCounters,
    c: &Checked,
    transition: crate::health::Transition,
) {
    if events.len() >= MAX_EVENTS {
        events.pop_front();
        counters.events_dropped += 1;
    }
    events.push_back(BackendEvent {
        backend: c.key.to_string(),
        transition,
    });
}

mod http;
mod update;

#[cfg(test)]
mod tests;
