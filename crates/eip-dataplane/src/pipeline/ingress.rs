//! Client -> EIP: choose the backend (1:1, or a service's Maglev table) and the
//! path, DNAT, clamp the MSS, encapsulate toward the EIP's region. ICMP errors about
//! the EIP's own traffic are translated for its backend; packets that cannot go
//! on get an ICMP error back.

use super::encap;
use super::frag::FragmentTarget;
use super::guard;
use super::icmp;
use super::nat;
use super::parse::{self, Fragment, IpInfo};
use super::{hash_at, icmp_header, key_at, Addr, Pipeline, Timestamp};
use crate::counters::{DropReason, Event};
use crate::frame::{Frame, Verdict};
use crate::tables::{Eip, EipId, Service, Tables};
use crate::wire::icmpv4::{self, Icmpv4Packet};
use crate::wire::icmpv6::{self, Icmpv6Packet};
use crate::wire::ip_proto;
use std::net::IpAddr;

impl Pipeline {
    /// Client -> EIP: choose backend and path, NAT, clamp, encapsulate.
    #[inline(always)]
    pub(super) fn ingress(
        &mut self,
        now: Timestamp,
        t: &Tables,
        frame: &mut Frame<'_>,
        ip: IpInfo,
        eip_id: EipId,
    ) -> Result<Verdict, DropReason> {
        let eip = &t.eips.at(eip_id);
        guard::ingress(t, frame.port(), frame.data(), &ip)?;
        if let Some(acl) = t.eips.acl(eip_id) {
            // Before anything answers the sender (an ICMP error) or looks
            // further: a refused source learns nothing.
            let data = frame.data();
            let src = key_at(data, ip.src(), ip.v6);
            let src = if ip.v6 { src } else { u128::from(src as u32) };
            let ports = parse::ports(data, &ip);
            let dport = ports.present.then_some(ports.dst);
            self.filter(acl, eip_id, eip.epoch, ip.v6, src, ip.protocol, dport)?;
        }
        if ip.ttl <= 1 {
            return Ok(self.originate_icmp(
                now,
                frame,
                &ip,
                icmp::ErrorKind::TimeExceeded,
                DropReason::TtlExpired,
            ));
        }
        let data = frame.data();
        if parse::l4_invalid(data, &ip) {
            return Err(DropReason::BadL4Header);
        }
        let ports = parse::ports(data, &ip);
        guard::tunnel_port(t, eip.address, &ip, &ports)?;
        let icmp_proto = if ip.v6 {
            ip_proto::ICMPV6
        } else {
            ip_proto::ICMP
        };
        let (hash_ports, icmp_error) = match ports.present {
            true => ((ports.src, ports.dst), false),
            false if ip.protocol == icmp_proto && ip.has_l4() => {
                let msg = icmp_header(data, &ip)?;
                let (is_error, echo, ident) = if ip.v6 {
                    let m = Icmpv6Packet::new_unchecked(msg);
                    (
                        m.is_error(),
                        m.msg_type() == icmpv6::ECHO_REQUEST,
                        m.echo_ident(),
                    )
                } else {
                    let m = Icmpv4Packet::new_unchecked(msg);
                    (
                        m.is_error(),
                        m.msg_type() == icmpv4::ECHO_REQUEST,
                        m.echo_ident(),
                    )
                };
                ((if echo { ident } else { 0 }, 0), is_error)
            }
            false => ((0, 0), false),
        };

        // Backend, optional new destination port, and the flow hash that picks the path.
        let region = &t.regions[eip.region as usize];
        let (backend, new_port, hash, fixed_path) = if icmp_error {
            let q = icmp::translate_ingress_error(t, eip, frame.data_mut(), &ip)?;
            self.counters.event(Event::IcmpErrorTranslated);
            (q.backend, None, q.flow_hash, None)
        } else {
            let hash = hash_at(data, &ip, hash_ports.0, hash_ports.1);
            match ip.fragment {
                Fragment::Later { ident } => {
                    let src = key_at(data, ip.src(), ip.v6);
                    match self.fragments.lookup(now, src, ident, eip_id, ip.protocol) {
                        Some(f) => (
                            Addr {
                                bytes: f.backend,
                                len: ip.addr_len(),
                            },
                            None,
                            hash,
                            Some(f.path),
                        ),
                        None if eip.services.is_empty() => {
                            let b = eip.backend.ok_or(DropReason::NoService)?;
                            (Addr::of(b), None, hash, None)
                        }
                        None => return Err(DropReason::FragmentWithoutHead),
                    }
                }
                _ => {
                    let (b, port) = choose_backend(
                        t,
                        eip,
                        ip.protocol,
                        ports.present.then_some(ports.dst),
                        hash,
                    )?;
                    (b, port, hash, None)
                }
            }
        };
        if backend.len != ip.addr_len() {
            return Err(DropReason::FamilyMismatch);
        }

        let path_id = match fixed_path {
            Some(p) => p,
            None => {
                if region.path_table.is_empty() {
                    return Err(DropReason::NoPath);
                }
                region.path_for(hash)
            }
        };
        if region.panic {
            self.counters.event(Event::PanicPath);
        }
        let path = &t.paths[path_id as usize];
        if let Fragment::First { ident } = ip.fragment {
            let src = key_at(frame.data(), ip.src(), ip.v6);
            self.fragments.insert(
                now,
                src,
                ident,
                eip_id,
                ip.protocol,
                FragmentTarget {
                    backend: backend.bytes,
                    path: path_id,
                },
            );
        }

        // MTU: never emit more than the path carries.
        if ip.total_len() > path.inner_mtu as usize {
            if ip.dont_frag {
                let kind = icmp::ErrorKind::TooBig {
                    mtu: path.inner_mtu,
                };
                return Ok(self.originate_icmp(now, frame, &ip, kind, DropReason::TooBig));
            }
            return Err(DropReason::TooBig);
        }

        self.police(t, eip_id, || eip.epoch, true, ip.total_len())?;

        // No headroom for the encapsulation: dropped before anything is
        // rewritten or counted (as the fast path drops it).
        if frame.head() + ip.l3 < crate::tables::ENCAP_LEN {
            return Err(DropReason::NoRoom);
        }
        let data = frame.data_mut();
        if ip.protocol == ip_proto::TCP
            && ports.present
            && encap::clamp_mss(data, &ip, path.inner_mtu)
        {
            self.counters.event(Event::MssClamped);
        }
        nat::rewrite_addr(data, &ip, ip.dst(), backend.as_slice());
        if let Some(port) = new_port {
            nat::rewrite_port(data, &ip, ip.l4 + 2, port);
        }
        nat::decrement_ttl(data, &ip);

        let inner_len = ip.total_len();
        encap::encapsulate(frame, &ip, path, hash)?;
        self.counters.eip_in_at(eip_id, eip.epoch).add(inner_len);
        self.counters.path[path_id as usize].add(frame.len());
        self.counters.event(Event::Encapsulated);
        if ip.is_fragment() {
            self.counters.event(Event::Fragments);
        }
        Ok(Verdict::Tx(path.port))
    }
}

/// The service of an EIP for this protocol and destination port.
#[inline(always)]
fn find_service<'t>(t: &'t Tables, eip: &'t Eip, protocol: u8, port: u16) -> Option<&'t Service> {
    t.services_of(eip)
        .iter()
        .find(|s| s.protocol == protocol && s.port == port)
}

/// The backend (address, port) a service flow with this hash goes to; None when
/// every backend is drained.
#[inline(always)]
fn pick_backend(s: &Service, hash: u64) -> Option<(Addr, u16)> {
    if s.maglev.is_empty() {
        return None;
    }
    let b = &s.backends[s.maglev[s.slot_for(hash)] as usize];
    Some((Addr::of(b.address), b.port))
}

/// Chooses the backend of a flow: a matching service's Maglev table, else the
/// EIP's 1:1 backend. Returns the address and the new destination port, if any.
#[inline(always)]
pub(super) fn choose_target(
    t: &Tables,
    eip: &Eip,
    protocol: u8,
    dport: Option<u16>,
    hash: u64,
) -> Result<(IpAddr, Option<u16>), DropReason> {
    if let Some(dport) = dport {
        if let Some(s) = find_service(t, eip, protocol, dport) {
            if s.maglev.is_empty() {
                return Err(DropReason::NoBackend);
            }
            let b = &s.backends[s.maglev[s.slot_for(hash)] as usize];
            return Ok((b.address, (b.port != dport).then_some(b.port)));
        }
    }
    eip.backend.map(|b| (b, None)).ok_or(DropReason::NoService)
}

/// [`choose_target`] with the address as [`Addr`].
#[inline(always)]
fn choose_backend(
    t: &Tables,
    eip: &Eip,
    protocol: u8,
    dport: Option<u16>,
    hash: u64,
) -> Result<(Addr, Option<u16>), DropReason> {
    choose_target(t, eip, protocol, dport, hash).map(|(a, p)| (Addr::of(a), p))
}

/// The backend a service flow with this hash goes to (shared with ICMP translation).
#[inline]
pub(super) fn service_backend(
    t: &Tables,
    eip: &Eip,
    protocol: u8,
    port: u16,
    hash: u64,
) -> Option<(Addr, u16)> {
    pick_backend(find_service(t, eip, protocol, port)?, hash)
}
