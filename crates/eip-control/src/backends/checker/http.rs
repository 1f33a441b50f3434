//! The checker's side of HTTP checks: the exchanges in flight by 4-tuple,
//! the segments they ask for, their answers and their expiry. The exchange
//! itself is `backends::http` (sans-IO).

use super::{path_of, push, BackendChecker};
use crate::backends::codec::{source_port, TcpOut, TcpSegment, RST};
use crate::backends::http::{Exchange, SegmentIn, Verdict};
use crate::probe::codec::Ignored;
use eip_dataplane::check_spec::CheckKind;
use eip_dataplane::flow;
use eip_dataplane::tables::Tables;
use eip_dataplane::wire::ip_proto;
use eip_dataplane::PortId;
use std::time::Duration;

/// HTTP exchanges kept at once (in flight, or done and absorbing late
/// segments until their timeout); a check due while full is not sent.
pub(super) const MAX_EXCHANGES: usize = 4096;
/// Segments of HTTP exchanges waiting to be sent; more are dropped (the
/// exchange then times out).
const MAX_PENDING_HTTP: usize = 4096;

/// The 4-tuple of an HTTP exchange as the backend answers it: backend
/// address, backend port, our port.
pub(super) type FlowKey = ([u8; 4], u16, u16);

/// One HTTP exchange and the check it is.
#[derive(Debug)]
pub(super) struct HttpCheck {
    pub(super) ident: u16,
    pub(super) seq: u16,
    pub(super) exchange: Exchange,
    /// When it is forgotten (sent + timeout).
    pub(super) expires: Duration,
}

/// Our port for HTTP check `seq` of backend `ident`: as for TCP checks, one
/// per sequence number modulo 16,384, shifted by the identifier so that two
/// backends at the same address and port rarely share a 4-tuple.
pub(super) fn http_port(ident: u16, seq: u16) -> u16 {
    source_port(seq.wrapping_add(ident.wrapping_mul(613)))
}

impl BackendChecker {
    /// Sends the segments HTTP exchanges asked for; returns how many.
    pub(super) fn send_http_segments<E>(
        &mut self,
        source: [u8; 4],
        tables: &Tables,
        send: &mut impl FnMut(PortId, &[u8]) -> Result<(), E>,
    ) -> Result<usize, E> {
        let mut sent = 0;
        while let Some(&(ident, flow, out)) = self.pending_http.front() {
            if let Some(&i) = self.by_ident.get(&ident) {
                let c = &self.targets[i];
                let (target, dport, sport) = flow;
                let hash = flow::hash_v4(source, target, sport, dport, ip_proto::TCP);
                if let Some(path) = path_of(tables, c.region, hash) {
                    let frame = TcpOut {
                        template: &tables.paths[path].template,
                        hash,
                        source,
                        target,
                        sport,
                        dport,
                        seq_number: out.seq,
                        ack_number: out.ack,
                        flags: out.flags,
                        payload: if out.with_request { &c.request } else { &[] },
                    }
                    .emit(&mut self.tcp_buf[..]);
                    send(tables.paths[path].port, frame)?;
                    if out.flags & RST != 0 {
                        self.counters.rsts_sent += 1;
                    }
                    self.counters.http_segments_sent += 1;
                    sent += 1;
                }
            }
            self.pending_http.pop_front();
        }
        Ok(sent)
    }

    /// A segment of an HTTP exchange in flight (or done).
    pub(super) fn match_http(
        &mut self,
        now: Duration,
        flow: FlowKey,
        seg: &TcpSegment<'_>,
    ) -> Result<(), Ignored> {
        let x = self
            .exchanges
            .get_mut(&flow)
            .expect("looked up by the caller");
        let &i = self
            .by_ident
            .get(&x.ident)
            .ok_or(Ignored::UnknownIdent { ident: x.ident })?;
        let c = &mut self.targets[i];
        if seg.vni != c.vni || c.spec.kind != CheckKind::Http {
            return Err(Ignored::WrongSource {
                from: seg.src.into(),
                vni: seg.vni,
                target: c.address.into(),
                expected_vni: c.vni,
            });
        }
        let was_done = x.exchange.is_done();
        let step = x
            .exchange
            .on_segment(&SegmentIn {
                seq: seg.seq,
                ack: seg.ack,
                flags: seg.flags,
                payload: seg.payload,
            })
            .map_err(|_| Ignored::WrongNonce)?;
        if was_done {
            self.counters.http_late += 1;
            return Ok(());
        }
        if let Some(out) = step.send {
            if self.pending_http.len() < MAX_PENDING_HTTP {
                self.pending_http.push_back((x.ident, flow, out));
            }
        }
        let Some(verdict) = step.verdict else {
            self.counters.http_segments += 1;
            return Ok(());
        };
        let seq = x.seq;
        let t = match verdict {
            Verdict::Status(status) if c.spec.http_expect().contains(status) => {
                c.health.probe_reply(seq, now)
            }
            Verdict::Status(_) => {
                self.counters.http_bad_status += 1;
                c.health.probe_failed(seq, now)
            }
            Verdict::Refused | Verdict::Reset => {
                self.counters.refused += 1;
                c.health.probe_failed(seq, now)
            }
            Verdict::Closed | Verdict::Garbled => {
                self.counters.http_garbled += 1;
                c.health.probe_failed(seq, now)
            }
        };
        if let Verdict::Status(status) = verdict {
            c.last_status = Some(status);
        }
        if let Some(t) = t {
            c.transitions += 1;
            push(&mut self.events, &mut self.counters, c, t);
        }
        Ok(())
    }

    /// HTTP exchanges past their timeout: forgotten; a connected one is reset
    /// so the backend does not keep it.
    pub(super) fn expire_exchanges(&mut self, now: Duration) {
        let pending = &mut self.pending_http;
        self.exchanges.retain(|&flow, x| {
            if x.expires > now {
                return true;
            }
            if let Some(out) = x.exchange.abandon() {
                if pending.len() < MAX_PENDING_HTTP {
                    pending.push_back((x.ident, flow, out));
                }
            }
            false
        });
    }
}
